//! Fuzzes legacy (magic v0/v1) message sets: `decode_legacy` with a 1 MiB cap, then
//! `upconvert` and the engine's `slowpath::upconvert_legacy` on success.
//!
//! Input: 12 control bytes, then a message set.
//!
//! * byte 0, bits 0-1 mode: 0 the set as fuzzed; 1 every entry's size clamped and CRC
//!   recomputed (otherwise almost nothing passes the CRC-32 check); 2-3 the fixed-up set
//!   is compressed here and wrapped in one compressed message, so inner messages get
//!   fuzzed too. Bits 2-3 wrapper codec (0 zstd, which must be refused, 1 gzip,
//!   2 snappy, 3 lz4); bit 4 wrapper magic; bit 5 LogAppendTime on the wrapper; bit 6
//!   break the lz4 header checksum as pre-KIP-57 clients did.
//! * byte 1: up-conversion codec (id mod 5). Bytes 2-3: `max_batch_bytes` (u16).
//! * bytes 4-11: wrapper offset (big-endian i64); the wrapper timestamp is fixed.
#![no_main]

mod common;

use bytes::Bytes;
use common::{check_reencoded, codec, crc32_ieee, fix_legacy_set, Expected};
use kferry::batch::codec::compress;
use kferry::batch::{decode_legacy, upconvert, Compression, ReencodeOptions};
use kferry::replicate::counters::PartitionCounters;
use kferry::replicate::slowpath::{upconvert_legacy, OversizePolicy, SlowPathOptions};
use libfuzzer_sys::fuzz_target;

const MAX_OUT: usize = 1 << 20;
const WRAPPER_TIMESTAMP: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((ctl, rest)) = data.split_first_chunk::<12>() else {
        return;
    };
    let mode = ctl[0] & 3;
    let out_codec = codec(ctl[1]);
    let max_batch_bytes = usize::from(u16::from_be_bytes([ctl[2], ctl[3]]));
    let wrapper_offset = i64::from_be_bytes(ctl[4..12].try_into().unwrap());

    let mut set = rest.to_vec();
    if mode != 0 {
        fix_legacy_set(&mut set);
    }
    if mode >= 2 {
        let Some(wrapped) = wrap(ctl[0], wrapper_offset, &set) else {
            return;
        };
        set = wrapped;
    }

    let decoded = decode_legacy(&set, MAX_OUT);
    if mode >= 2 && ctl[0] & 0x5c == 0x5c {
        // lz4, magic 1, broken header checksum: only magic 0 may carry it.
        assert!(
            decoded.is_err(),
            "magic 1 lz4 wrapper with a bad header checksum accepted"
        );
    }
    let Ok(messages) = decoded else {
        return;
    };
    let value_bytes: usize = messages
        .iter()
        .map(|m| m.key.as_ref().map_or(0, Bytes::len) + m.value.as_ref().map_or(0, Bytes::len))
        .sum();
    assert!(
        value_bytes <= set.len() + MAX_OUT,
        "keys and values come from the set or the capped output"
    );

    let opts = ReencodeOptions {
        compression: out_codec,
        max_batch_bytes,
        max_decompressed: MAX_OUT,
    };
    let ordered = messages.windows(2).all(|w| w[0].offset < w[1].offset);
    match upconvert(&messages, &opts) {
        Ok(out) => {
            assert!(ordered, "up-conversion accepted offsets out of order");
            let expected: Vec<Expected> = messages
                .iter()
                .map(|m| Expected {
                    offset: m.offset,
                    timestamp: m.timestamp.max(-1),
                    key: m.key.clone(),
                    value: m.value.clone(),
                    headers: Vec::new(),
                })
                .collect();
            check_reencoded(&out, Some(&expected), out_codec, max_batch_bytes);
        }
        Err(_) => assert!(!ordered || messages.is_empty() || has_far_timestamps(&messages)),
    }

    let slow = SlowPathOptions {
        compression: Some(out_codec),
        max_message_bytes: max_batch_bytes,
        oversize: OversizePolicy::Split,
        max_decompressed: MAX_OUT,
    };
    let counters = PartitionCounters::default();
    if let Ok(forwards) = upconvert_legacy(wrapper_offset, &Bytes::from(set), &slow, &counters) {
        assert!(ordered);
        let records: i64 = forwards.iter().map(|f| i64::from(f.batch.record_count())).sum();
        assert_eq!(records, messages.len() as i64);
        for f in &forwards {
            f.batch.verify_crc().expect("up-converted batch has a valid CRC");
            assert!(f.source_base <= f.source_last);
        }
    }
});

/// Timestamps more than i64 apart cannot share a batch: the only other way `upconvert`
/// may fail on ordered messages.
fn has_far_timestamps(messages: &[kferry::batch::LegacyMessage]) -> bool {
    let ts = messages.iter().map(|m| m.timestamp.max(-1));
    let (min, max) = (ts.clone().min().unwrap(), ts.max().unwrap());
    max.checked_sub(min).is_none()
}

/// One compressed wrapper message around `inner`: codec, magic and attributes from `flags`.
fn wrap(flags: u8, offset: i64, inner: &[u8]) -> Option<Vec<u8>> {
    let compression = match (flags >> 2) & 3 {
        0 => Compression::Zstd,
        id => Compression::from_id(id),
    };
    let magic = (flags >> 4) & 1;
    let mut value = compress(compression, inner).ok()?;
    if compression == Compression::Lz4 && flags & 0x40 != 0 && value.len() > 6 {
        // Pre-KIP-57 header checksum: xxh32 over the frame magic too.
        value[6] = value[6].wrapping_add(1);
    }
    let attributes = compression.id() | if flags & 0x20 != 0 { 0x08 } else { 0 };
    let mut msg = vec![0, 0, 0, 0, magic, attributes];
    if magic == 1 {
        msg.extend_from_slice(&WRAPPER_TIMESTAMP.to_be_bytes());
    }
    msg.extend_from_slice(&(-1i32).to_be_bytes());
    msg.extend_from_slice(&(value.len() as i32).to_be_bytes());
    msg.extend_from_slice(&value);
    let crc = crc32_ieee(&msg[4..]);
    msg[..4].copy_from_slice(&crc.to_be_bytes());
    let mut entry = offset.to_be_bytes().to_vec();
    entry.extend_from_slice(&(msg.len() as i32).to_be_bytes());
    entry.extend_from_slice(&msg);
    Some(entry)
}
