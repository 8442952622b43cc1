//! Fuzzes the v2 slow path: `decode_batch`, `reencode` (every output codec, fuzzed
//! `max_batch_bytes`), `close_gaps_uncompressed` and the engine's `slowpath::prepare`.
//!
//! Input: 4 control bytes, then a batch (at least 61 bytes).
//!
//! * byte 0: bits 0-2 output codec (id mod 5); bit 3 keep the CRC as fuzzed (default:
//!   recompute it, or every slow path stops at the CRC check); bits 4-6 `k`: for
//!   `k` in 1..=4 the payload is treated as raw records and compressed here with codec
//!   `k` (so records inside compressed batches get fuzzed too); bit 7 oversize = fail.
//! * bytes 1-2: `max_batch_bytes` (big-endian u16, 0 allowed).
//! * byte 3: `prepare`'s route codec: id mod 6, 5 meaning "keep the batch's own".
//!
//! `batchLength` and magic are fixed up so the batch always parses. On `Ok`, every
//! output is checked by `common::check_reencoded`.
#![no_main]

mod common;

use common::{as_batch, check_reencoded, codec, expected_from_batch, MAX_DECOMPRESSED};
use kferry::batch::codec::compress;
use kferry::batch::{close_gaps_uncompressed, decode_batch, reencode, Compression, ReencodeOptions, HEADER_LEN};
use kferry::replicate::counters::PartitionCounters;
use kferry::replicate::slowpath::{prepare, OversizePolicy, SlowPathOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((ctl, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    if rest.len() < HEADER_LEN {
        return;
    }
    let out_codec = codec(ctl[0] & 7);
    let fix_crc = ctl[0] & 0x08 == 0;
    let pre_compress = (ctl[0] >> 4) & 7;
    let max_batch_bytes = usize::from(u16::from_be_bytes([ctl[1], ctl[2]]));
    let route_codec = match ctl[3] % 6 {
        5 => None,
        id => Some(codec(id)),
    };

    let mut bytes = rest.to_vec();
    if (1..=4).contains(&pre_compress) {
        let c = Compression::from_id(pre_compress);
        let Ok(payload) = compress(c, &bytes[HEADER_LEN..]) else {
            return;
        };
        bytes.truncate(HEADER_LEN);
        bytes.extend_from_slice(&payload);
        let attributes = (u16::from_be_bytes([bytes[21], bytes[22]]) & !7) | u16::from(pre_compress);
        bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    }
    let batch = as_batch(bytes, fix_crc);

    let decoded = decode_batch(&batch, MAX_DECOMPRESSED);
    if let Ok(records) = &decoded {
        assert_eq!(records.len(), batch.record_count() as usize);
    }
    let expected = decoded.ok().map(|r| expected_from_batch(&batch, r));

    let opts = ReencodeOptions {
        compression: out_codec,
        max_batch_bytes,
        max_decompressed: MAX_DECOMPRESSED,
    };
    if let Ok(out) = reencode(&batch, &opts) {
        let expected = expected.as_deref().expect("reencode succeeded, so decode_batch did");
        check_reencoded(&out, Some(expected), out_codec, max_batch_bytes);
    }

    if let Ok(out) = close_gaps_uncompressed(&batch) {
        assert!(out.batches.len() <= 1, "close_gaps writes one batch");
        check_reencoded(&out, expected.as_deref(), Compression::None, usize::MAX);
        if let Some(b) = out.batches.first() {
            // Records are copied, not decoded: the output grows only under LogAppendTime.
            if !batch.attributes().has_log_append_time() {
                assert!(b.len() <= batch.len(), "close_gaps never grows a batch");
            }
        }
    }

    let slow = SlowPathOptions {
        compression: route_codec,
        max_message_bytes: max_batch_bytes,
        oversize: if ctl[0] & 0x80 != 0 {
            OversizePolicy::Fail
        } else {
            OversizePolicy::Split
        },
        max_decompressed: MAX_DECOMPRESSED,
    };
    let counters = PartitionCounters::default();
    if let Ok(forwards) = prepare(batch.clone(), &slow, &counters) {
        let fast = forwards.len() == 1 && forwards[0].batch.as_bytes() == batch.as_bytes();
        let mut previous = None;
        for f in &forwards {
            if fast {
                // The batch as fetched, with the offsets it claims (which the read-committed
                // filter has already vetted in the engine).
                assert_eq!(
                    (f.source_base, f.source_last),
                    (batch.base_offset(), batch.last_offset())
                );
                continue;
            }
            let b = &f.batch;
            b.verify_crc().expect("slow-path output has a valid CRC");
            assert!(!b.has_offset_gaps());
            assert!(
                b.len() <= max_batch_bytes || b.record_count() == 1,
                "slow-path batch of {} records is {} bytes, over max_message_bytes {max_batch_bytes}",
                b.record_count(),
                b.len()
            );
            assert!(f.source_base <= f.source_last);
            assert!(batch.base_offset() <= f.source_base && f.source_last <= batch.last_offset());
            assert!(previous.is_none_or(|p| p < f.source_base), "forwards in source order");
            previous = Some(f.source_last);
        }
    }
});
