//! Golden v2 batches as hand-written hex, one field a line, with CRCs computed
//! independently (a bit-serial CRC-32C, not kferry's code).
//!
//! * [`FETCHED_IDEMPOTENT`]: a batch as a source broker serves it (offset 5).
//! * [`REWRITTEN_IDEMPOTENT`]: the same batch as kferry must forward it with producer
//!   id 4242, epoch 0, sequence 0 (baseOffset 0, leader epoch -1, new CRC; the records
//!   are byte-identical).
//! * [`PRODUCED_WITH_HEADERS`]: two records from a plain producer: a keyed record with
//!   a header, and a null-key null-value record 7 ms later.
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecordBatch.java`, `DefaultRecord.java`

/// A batch as fetched: one record, key "k", value "v", at offset 5, written by producer
/// 1000 (epoch 2, sequence 7) in leader epoch 3.
pub const FETCHED_IDEMPOTENT: &str = concat!(
    "0000000000000005", // baseOffset = 5
    "0000003a",         // batchLength = 58 (70 - 12)
    "00000003",         // partitionLeaderEpoch = 3
    "02",               // magic = 2
    "e8e3fa1f",         // crc = CRC-32C of bytes 21..70
    "0000",             // attributes: no codec, CreateTime, not transactional
    "00000000",         // lastOffsetDelta = 0
    "0000018bcfe56800", // baseTimestamp = 1_700_000_000_000
    "0000018bcfe56800", // maxTimestamp = 1_700_000_000_000
    "00000000000003e8", // producerId = 1000
    "0002",             // producerEpoch = 2
    "00000007",         // baseSequence = 7
    "00000001",         // recordCount = 1
    "10",               // record 0: length = 8 (zigzag varint)
    "00",               //   attributes = 0
    "00",               //   timestampDelta = 0
    "00",               //   offsetDelta = 0
    "02",               //   keyLength = 1
    "6b",               //   key = "k"
    "02",               //   valueLength = 1
    "76",               //   value = "v"
    "00",               //   header count = 0
);

/// [`FETCHED_IDEMPOTENT`] restamped for the target with producer 4242, epoch 0,
/// sequence 0.
pub const REWRITTEN_IDEMPOTENT: &str = concat!(
    "0000000000000000", // baseOffset = 0 (the broker assigns offsets)
    "0000003a",         // batchLength = 58, unchanged
    "ffffffff",         // partitionLeaderEpoch = -1, as a producer sends
    "02",               // magic = 2
    "2adb8a56",         // crc, recomputed for the new header
    "0000",             // attributes, unchanged
    "00000000",         // lastOffsetDelta = 0
    "0000018bcfe56800", // baseTimestamp, unchanged
    "0000018bcfe56800", // maxTimestamp, unchanged
    "0000000000001092", // producerId = 4242
    "0000",             // producerEpoch = 0
    "00000000",         // baseSequence = 0
    "00000001",         // recordCount = 1
    "1000000002",
    "6b",
    "02",
    "76",
    "00", // record 0, byte-identical to the source
);

/// A plain producer's batch of two records.
pub const PRODUCED_WITH_HEADERS: &str = concat!(
    "0000000000000000", // baseOffset = 0
    "00000051",         // batchLength = 81 (93 - 12)
    "ffffffff",         // partitionLeaderEpoch = -1
    "02",               // magic = 2
    "17f80de6",         // crc = CRC-32C of bytes 21..93
    "0000",             // attributes = 0
    "00000001",         // lastOffsetDelta = 1
    "0000018bcfe56800", // baseTimestamp = 1_700_000_000_000
    "0000018bcfe56807", // maxTimestamp = 1_700_000_000_007
    "ffffffffffffffff", // producerId = -1
    "ffff",             // producerEpoch = -1
    "ffffffff",         // baseSequence = -1
    "00000002",         // recordCount = 2
    "30",               // record 0: length = 24
    "00",               //   attributes = 0
    "00",               //   timestampDelta = 0
    "00",               //   offsetDelta = 0
    "06",               //   keyLength = 3
    "6b6579",           //   key = "key"
    "0c",               //   valueLength = 6
    "76616c756531",     //   value = "value1"
    "02",               //   header count = 1
    "0a",               //     header key length = 5
    "7472616365",       //     header key = "trace"
    "04",               //     header value length = 2
    "7431",             //     header value = "t1"
    "0c",               // record 1: length = 6
    "00",               //   attributes = 0
    "0e",               //   timestampDelta = 7
    "02",               //   offsetDelta = 1
    "01",               //   keyLength = -1 (null)
    "01",               //   valueLength = -1 (null)
    "00",               //   header count = 0
);

/// Decodes a hex string without separators; panics on bad input (test data only).
pub fn hex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() & 1, 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{header, validate_produced_batch, Expect, Header, Violation};

    #[test]
    fn fetched_batch_fields_and_crc() {
        let bytes = hex(FETCHED_IDEMPOTENT);
        let h = Header::read(&bytes).unwrap();
        assert_eq!(
            (h.base_offset, h.batch_length, h.partition_leader_epoch, h.magic),
            (5, 58, 3, 2)
        );
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence, h.record_count),
            (1000, 2, 7, 1)
        );
        assert_eq!(h.crc, crc32c::crc32c(&bytes[header::CRC_START..]));
        header::check_framing(&h, bytes.len()).unwrap();
        // As fetched it is not producible: the broker would refuse its baseOffset.
        let err = validate_produced_batch(&bytes, &Expect::default()).unwrap_err();
        assert_eq!(err, Violation::NonZeroBaseOffset { base_offset: 5 });
    }

    #[test]
    fn rewritten_batch_is_producible() {
        let bytes = hex(REWRITTEN_IDEMPOTENT);
        let expect = Expect {
            producer_id: Some(4242),
            producer_epoch: Some(0),
            base_sequence: Some(0),
        };
        let summary = validate_produced_batch(&bytes, &expect).unwrap();
        assert_eq!(summary.records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(bytes[61..], hex(FETCHED_IDEMPOTENT)[61..]);
    }

    #[test]
    fn produced_batch_with_headers() {
        let s = validate_produced_batch(&hex(PRODUCED_WITH_HEADERS), &Expect::default()).unwrap();
        assert_eq!(s.record_count, 2);
        let (r0, r1) = (&s.records[0], &s.records[1]);
        assert_eq!(
            (r0.key.as_deref(), r0.value.as_deref()),
            (Some(&b"key"[..]), Some(&b"value1"[..]))
        );
        assert_eq!(r0.headers, vec![("trace".to_owned(), Some(b"t1".to_vec()))]);
        assert_eq!(
            (r1.offset_delta, r1.timestamp, r1.key.clone(), r1.value.clone()),
            (1, 1_700_000_000_007, None, None)
        );
    }
}
