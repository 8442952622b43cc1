//! Fuzzes `RecordBatch::parse` and everything readable from a parsed batch: no input
//! may panic, and a parsed batch must be internally consistent.
#![no_main]

use bytes::Bytes;
use kferry::batch::{decode_records, RecordBatch, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = RecordBatch::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert_eq!(batch.len(), data.len());
    assert_eq!(batch.batch_length() as usize + 12, data.len());
    assert_eq!(batch.payload().len(), data.len() - HEADER_LEN);
    let _ = (batch.last_offset(), batch.next_offset(), batch.compression());
    let _ = (batch.has_offset_gaps(), batch.is_empty_batch(), format!("{batch:?}"));
    let crc_ok = batch.verify_crc().is_ok();
    assert_eq!(crc_ok, batch.compute_crc() == batch.crc());
    if let Ok(records) = decode_records(&batch) {
        assert_eq!(records.len(), batch.record_count() as usize);
    }
});
