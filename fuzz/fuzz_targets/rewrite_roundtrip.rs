//! Fuzzes the header rewrite. Input: producer id (8 bytes), epoch (2), base sequence
//! (4), then a batch. For every batch that parses, the rewritten batch must parse,
//! carry the stamp, keep the payload byte for byte, and have a valid CRC exactly when
//! the source had one (the patch neither fixes nor breaks a CRC).
#![no_main]

use bytes::Bytes;
use kferry::batch::rewrite::assemble;
use kferry::batch::{rewrite_header, ProducerStamp, RecordBatch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 14 {
        return;
    }
    let (stamp, batch) = data.split_at(14);
    let stamp = ProducerStamp::new(
        i64::from_be_bytes(stamp[..8].try_into().unwrap()),
        i16::from_be_bytes(stamp[8..10].try_into().unwrap()),
        i32::from_be_bytes(stamp[10..14].try_into().unwrap()),
    );
    let Ok(source) = RecordBatch::parse(Bytes::copy_from_slice(batch)) else {
        return;
    };
    let header = rewrite_header(&source, &stamp);
    let out = RecordBatch::parse(assemble(&header, &source.payload())).expect("rewritten batch parses");
    assert_eq!(out.base_offset(), 0);
    assert_eq!(out.partition_leader_epoch(), -1);
    assert_eq!(
        (out.producer_id(), out.producer_epoch(), out.base_sequence()),
        (stamp.producer_id, stamp.producer_epoch, stamp.base_sequence)
    );
    assert!(!out.attributes().is_transactional() && !out.attributes().has_log_append_time());
    assert_eq!(out.payload(), source.payload());
    assert_eq!(out.verify_crc().is_ok(), source.verify_crc().is_ok());
});
