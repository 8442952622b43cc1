//! Shared by the slow-path targets: input fix-ups that get arbitrary bytes past the CRC
//! checks, and the invariants every re-encoded output must satisfy.
#![allow(dead_code)]

use bytes::Bytes;
use kferry::batch::{decode_batch, Compression, Record, RecordBatch, Reencoded, LOG_OVERHEAD};

/// The five codecs Kafka defines, by id.
pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Cap on decompressed bytes in the slow-path targets: small, so a fuzzed decompression
/// bomb stays cheap, yet far above what a 4 KiB input holds uncompressed.
pub const MAX_DECOMPRESSED: usize = 1 << 20;

/// A known codec chosen by a fuzzed byte.
pub fn codec(byte: u8) -> Compression {
    CODECS[usize::from(byte) % CODECS.len()]
}

/// Makes `bytes` (at least 61 long) a batch `RecordBatch::parse` accepts: `batchLength`
/// set to the length, magic 2, and (if `fix_crc`) the CRC-32C recomputed.
pub fn as_batch(mut bytes: Vec<u8>, fix_crc: bool) -> RecordBatch {
    let len = i32::try_from(bytes.len() - LOG_OVERHEAD).expect("fuzz inputs are small");
    bytes[8..12].copy_from_slice(&len.to_be_bytes());
    bytes[16] = 2;
    let batch = RecordBatch::parse(Bytes::from(bytes.clone())).expect("length and magic were fixed");
    if !fix_crc {
        return batch;
    }
    bytes[17..21].copy_from_slice(&batch.compute_crc().to_be_bytes());
    let batch = RecordBatch::parse(Bytes::from(bytes)).expect("still well-formed");
    assert!(batch.verify_crc().is_ok());
    batch
}

/// CRC-32 (IEEE) for legacy messages, independent of kferry.
pub fn crc32_ieee(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h.finalize()
}

/// Makes every entry of a legacy message set whole and CRC-valid: each `size` is clamped
/// to the bytes present (the last entry takes the rest) and each CRC recomputed. Keeps
/// magic, attributes and field lengths as fuzzed, so parsing still has work to do.
pub fn fix_legacy_set(set: &mut [u8]) {
    let mut pos = 0;
    while pos + LOG_OVERHEAD <= set.len() {
        let avail = set.len() - pos - LOG_OVERHEAD;
        let size = i32::from_be_bytes(set[pos + 8..pos + 12].try_into().unwrap());
        let size = match usize::try_from(size) {
            Ok(s) if s <= avail => s,
            _ => avail,
        };
        set[pos + 8..pos + 12].copy_from_slice(&(size as i32).to_be_bytes());
        let msg = &mut set[pos + LOG_OVERHEAD..pos + LOG_OVERHEAD + size];
        if msg.len() >= 5 {
            let crc = crc32_ieee(&msg[4..]);
            msg[..4].copy_from_slice(&crc.to_be_bytes());
        }
        pos += LOG_OVERHEAD + size;
    }
}

/// What one source record must look like after any slow path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Absolute source offset.
    pub offset: i64,
    /// Absolute timestamp as a consumer sees it.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The records of a v2 source batch as the slow path must reproduce them.
pub fn expected_from_batch(batch: &RecordBatch, records: Vec<Record>) -> Vec<Expected> {
    let log_append = batch.attributes().has_log_append_time();
    records
        .into_iter()
        .map(|r| Expected {
            offset: batch.base_offset().wrapping_add(i64::from(r.offset_delta)),
            timestamp: if log_append {
                batch.max_timestamp()
            } else {
                batch.base_timestamp().wrapping_add(r.timestamp_delta)
            },
            key: r.key,
            value: r.value,
            headers: r.headers,
        })
        .collect()
}

/// Checks a slow-path result against the source records: every output batch parses, has
/// a valid CRC, producer-style header fields, the requested codec and consecutive offset
/// deltas `0..n`; batches fit `max_batch_bytes` unless they hold a single record; the
/// record count matches `record_offsets`, which are the source offsets in order; keys,
/// values, headers and timestamps survive.
///
/// `expected` is `None` when the source records do not decode (possible for
/// `close_gaps_uncompressed`, which copies record bodies without reading them): then only
/// the framing is checked, and the deltas when the output decodes.
pub fn check_reencoded(out: &Reencoded, expected: Option<&[Expected]>, codec: Compression, max_batch_bytes: usize) {
    let mut seen = Vec::with_capacity(out.record_offsets.len());
    let mut total = 0usize;
    for bytes in &out.batches {
        let b = RecordBatch::parse(bytes.clone()).expect("output batch parses");
        b.verify_crc().expect("output batch has a valid CRC");
        assert_eq!(b.compression(), codec, "output codec");
        assert_eq!(
            b.attributes().0,
            u16::from(codec.id()),
            "attributes hold the codec only"
        );
        assert_eq!(
            (b.base_offset(), b.partition_leader_epoch()),
            (0, -1),
            "producer-style base offset and leader epoch"
        );
        assert_eq!(
            (b.producer_id(), b.producer_epoch(), b.base_sequence()),
            (-1, -1, -1),
            "no producer stamp yet"
        );
        let count = b.record_count();
        assert!(count >= 1, "no empty output batch");
        assert_eq!(b.last_offset_delta(), count - 1, "lastOffsetDelta + 1 == recordCount");
        assert!(!b.has_offset_gaps());
        assert!(
            b.len() <= max_batch_bytes || count == 1,
            "batch of {count} records is {} bytes, limit {max_batch_bytes}",
            b.len()
        );
        total += count as usize;
        let records = match decode_batch(&b, usize::MAX) {
            Ok(records) => records,
            Err(_) if expected.is_none() => continue,
            Err(e) => panic!("output records of decodable source records fail to decode: {e}"),
        };
        assert_eq!(records.len(), count as usize);
        let mut max_ts = i64::MIN;
        for (i, r) in records.into_iter().enumerate() {
            assert_eq!(r.offset_delta, i as i32, "consecutive offset deltas");
            let timestamp = b.base_timestamp().wrapping_add(r.timestamp_delta);
            max_ts = max_ts.max(timestamp);
            seen.push((timestamp, r.key, r.value, r.headers));
        }
        assert_eq!(
            b.max_timestamp(),
            max_ts,
            "maxTimestamp is the largest record timestamp"
        );
    }
    assert_eq!(total, out.record_offsets.len(), "record count matches record_offsets");
    assert!(
        out.record_offsets.windows(2).all(|w| w[0] < w[1]),
        "source offsets increase"
    );
    let Some(expected) = expected else {
        return;
    };
    assert_eq!(seen.len(), expected.len(), "every source record is kept");
    for (i, ((timestamp, key, value, headers), e)) in seen.into_iter().zip(expected).enumerate() {
        assert_eq!(out.record_offsets[i], e.offset, "record {i}: source offset");
        assert_eq!(timestamp, e.timestamp, "record {i}: timestamp");
        assert_eq!(
            (&key, &value, &headers),
            (&e.key, &e.value, &e.headers),
            "record {i}: content"
        );
    }
}
