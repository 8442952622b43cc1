//! Restamping a fetched batch for the target cluster: a new 61-byte header, the same
//! payload bytes.
//!
//! A forwarded batch must look like one a producer sends (see the mission's protocol
//! rules and Kafka's `LogValidator`): `baseOffset` 0, `partitionLeaderEpoch` -1, no
//! LogAppendTime bit, no transactional bit outside a transaction, and kferry's own
//! producer id, epoch and per-partition sequence so the target deduplicates retries.
//! Everything else (codec, `lastOffsetDelta`, timestamps, `recordCount`, `batchLength`)
//! is kept, and the CRC is patched from the old one with [`crc::patch_crc`] so the
//! payload is never read. The caller writes `header ‖ batch.payload()` to the wire.
//!
//! The delete-horizon bit (6, KIP-534) is cleared too. The source cleaner sets it and
//! stores its own horizon in `baseTimestamp`; kept, it would make the *target's* cleaner
//! drop tombstones on the source's schedule. Clearing it is safe: records carry
//! timestamp deltas relative to `baseTimestamp`, so their timestamps do not change.
//!
//! # References
//!
//! * Kafka `storage/.../log/LogValidator.java` (`validateBatch`: what a broker accepts)
//! * Kafka `clients/.../record/DefaultRecordBatch.java` (`incrementSequence`, header setters)
//! * Kafka `clients/.../producer/internals/RecordAccumulator.java` (what a producer sends)
//! * KIP-98 (idempotent producer sequences), KIP-534 (delete horizon)

use bytes::{BufMut, Bytes, BytesMut};

use super::{crc, field, Attributes, RecordBatch, HEADER_LEN, NO_PARTITION_LEADER_EPOCH};

/// The producer identity kferry writes into a forwarded batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerStamp {
    /// Producer id from InitProducerId on the target, or -1.
    pub producer_id: i64,
    /// Producer epoch from InitProducerId, or -1.
    pub producer_epoch: i16,
    /// Sequence of the batch's first record for this partition, or -1.
    pub base_sequence: i32,
}

impl ProducerStamp {
    /// No producer id: a plain, non-idempotent producer.
    pub const NONE: ProducerStamp = ProducerStamp {
        producer_id: super::NO_PRODUCER_ID,
        producer_epoch: super::NO_PRODUCER_EPOCH,
        base_sequence: super::NO_SEQUENCE,
    };

    /// An idempotent producer's stamp.
    pub fn new(producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        ProducerStamp {
            producer_id,
            producer_epoch,
            base_sequence,
        }
    }

    /// The stamp for the batch after one of `record_count` records.
    pub fn next(self, record_count: i32) -> Self {
        ProducerStamp {
            base_sequence: increment_sequence(self.base_sequence, record_count),
            ..self
        }
    }
}

/// Sequence `increment` records after `sequence`, wrapping past `i32::MAX` to 0 as
/// Kafka's `DefaultRecordBatch.incrementSequence` does. -1 (no sequence) stays -1.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence < 0 {
        return super::NO_SEQUENCE;
    }
    let next = (i64::from(sequence) + i64::from(increment)).rem_euclid(1 << 31);
    next as i32
}

/// The header for forwarding `batch` outside a transaction: see the module docs.
///
/// Returns a new header; `batch` is untouched and its payload is never read.
pub fn rewrite_header(batch: &RecordBatch, stamp: &ProducerStamp) -> [u8; HEADER_LEN] {
    rewrite(batch, stamp, false)
}

/// As [`rewrite_header`], but with the transactional bit (4) set, for a batch produced
/// inside kferry's own transaction (exactly-once mode, after AddPartitionsToTxn).
pub fn rewrite_header_transactional(batch: &RecordBatch, stamp: &ProducerStamp) -> [u8; HEADER_LEN] {
    rewrite(batch, stamp, true)
}

/// Copies `header ‖ payload` into one buffer (tests and the slow path; the fast path
/// writes the two parts to the socket without joining them).
pub fn assemble(header: &[u8; HEADER_LEN], payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    out.put_slice(header);
    out.put_slice(payload);
    out.freeze()
}

fn rewrite(batch: &RecordBatch, stamp: &ProducerStamp, transactional: bool) -> [u8; HEADER_LEN] {
    let old = batch.header();
    let mut new = *old;
    put(&mut new, field::BASE_OFFSET, &0i64.to_be_bytes());
    put(
        &mut new,
        field::PARTITION_LEADER_EPOCH,
        &NO_PARTITION_LEADER_EPOCH.to_be_bytes(),
    );

    let cleared = Attributes::LOG_APPEND_TIME | Attributes::TRANSACTIONAL | Attributes::DELETE_HORIZON;
    let mut attributes = batch.attributes().0 & !cleared;
    if transactional {
        attributes |= Attributes::TRANSACTIONAL;
    }
    put(&mut new, field::ATTRIBUTES, &attributes.to_be_bytes());
    put(&mut new, field::PRODUCER_ID, &stamp.producer_id.to_be_bytes());
    put(&mut new, field::PRODUCER_EPOCH, &stamp.producer_epoch.to_be_bytes());
    put(&mut new, field::BASE_SEQUENCE, &stamp.base_sequence.to_be_bytes());

    let crc = crc::patch_crc(batch.crc(), crc_span(old), crc_span(&new), batch.len() - HEADER_LEN);
    put(&mut new, field::CRC, &crc.to_be_bytes());
    new
}

fn put(header: &mut [u8; HEADER_LEN], at: usize, value: &[u8]) {
    header[at..at + value.len()].copy_from_slice(value);
}

fn crc_span(header: &[u8; HEADER_LEN]) -> &[u8; crc::HEADER_CRC_SPAN] {
    header[field::CRC_START..].try_into().expect("40-byte CRC span")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, Record};
    use proptest::prelude::*;

    fn arb_batch() -> impl Strategy<Value = RecordBatch> {
        (
            any::<i64>(),
            any::<i32>(),
            0u16..0x80,
            any::<i64>(),
            (any::<i64>(), any::<i16>(), any::<i32>()),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..40),
        )
            .prop_map(|(base, epoch, attrs, ts, (pid, pepoch, seq), values)| {
                let mut b = BatchBuilder::new()
                    .base_offset(base)
                    .partition_leader_epoch(epoch)
                    .attributes(Attributes(attrs))
                    .base_timestamp(ts)
                    .producer(pid, pepoch, seq);
                for (i, v) in values.into_iter().enumerate() {
                    b = b.record(Record::new(i as i32, None, Some(v.into())));
                }
                b.build()
            })
    }

    proptest! {
        #[test]
        fn rewritten_batch_is_valid_and_payload_untouched(
            batch in arb_batch(),
            stamp in (any::<i64>(), any::<i16>(), any::<i32>()),
            transactional: bool,
        ) {
            let stamp = ProducerStamp::new(stamp.0, stamp.1, stamp.2);
            let header = if transactional {
                rewrite_header_transactional(&batch, &stamp)
            } else {
                rewrite_header(&batch, &stamp)
            };
            let out = RecordBatch::parse(assemble(&header, &batch.payload())).unwrap();
            prop_assert!(out.verify_crc().is_ok());
            prop_assert_eq!(out.base_offset(), 0);
            prop_assert_eq!(out.partition_leader_epoch(), -1);
            prop_assert_eq!(out.producer_id(), stamp.producer_id);
            prop_assert_eq!(out.producer_epoch(), stamp.producer_epoch);
            prop_assert_eq!(out.base_sequence(), stamp.base_sequence);
            let a = out.attributes();
            prop_assert_eq!(a.is_transactional(), transactional);
            prop_assert!(!a.has_log_append_time() && !a.has_delete_horizon());
            prop_assert_eq!(a.is_control(), batch.attributes().is_control());
            prop_assert_eq!(a.compression(), batch.compression());
            prop_assert_eq!(out.batch_length(), batch.batch_length());
            prop_assert_eq!(out.last_offset_delta(), batch.last_offset_delta());
            prop_assert_eq!(out.base_timestamp(), batch.base_timestamp());
            prop_assert_eq!(out.max_timestamp(), batch.max_timestamp());
            prop_assert_eq!(out.record_count(), batch.record_count());
            prop_assert_eq!(&out.as_bytes()[HEADER_LEN..], &batch.as_bytes()[HEADER_LEN..]);
        }
    }

    #[test]
    fn golden_rewrite_matches_independent_vector() {
        use kferry_protocol_tests::golden::{hex, FETCHED_IDEMPOTENT, REWRITTEN_IDEMPOTENT};
        let batch = RecordBatch::parse(Bytes::from(hex(FETCHED_IDEMPOTENT))).unwrap();
        let header = rewrite_header(&batch, &ProducerStamp::new(4242, 0, 0));
        assert_eq!(assemble(&header, &batch.payload())[..], hex(REWRITTEN_IDEMPOTENT)[..]);
    }

    proptest! {
        /// Producer-shaped batches of every codec, once rewritten, pass the strict
        /// validator written from Kafka's rules.
        #[test]
        fn rewritten_batches_pass_the_strict_validator(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..500), 1..30),
            codec in 0u8..=4,
            source_producer in (0i64..1 << 40, 0i16..100, 0i32..1 << 30),
            stamp in (0i64..1 << 40, 0i16..=i16::MAX, 0i32..=i32::MAX),
            leader_epoch: i32,
            base in 0i64..1 << 50,
        ) {
            use kferry_protocol_tests::{codec::compress, validate_produced_batch, Expect};
            let source = values
                .into_iter()
                .fold(BatchBuilder::new(), |b, v| b.value(v))
                .base_offset(base)
                .partition_leader_epoch(leader_epoch)
                .producer(source_producer.0, source_producer.1, source_producer.2)
                .transactional(true)
                .build_compressed(Compression::from_id(codec), |raw| compress(codec, raw));
            let stamp = ProducerStamp::new(stamp.0, stamp.1, stamp.2);
            let header = rewrite_header(&source, &stamp);
            let expect = Expect {
                producer_id: Some(stamp.producer_id),
                producer_epoch: Some(stamp.producer_epoch),
                base_sequence: Some(stamp.base_sequence),
            };
            let summary = validate_produced_batch(&assemble(&header, &source.payload()), &expect);
            prop_assert!(summary.is_ok(), "{:?}", summary);
            prop_assert_eq!(summary.unwrap().record_count, source.record_count());
        }
    }

    #[test]
    fn corrupt_source_stays_corrupt() {
        let batch = BatchBuilder::new().value("hello").value("world").build();
        let mut bytes = batch.as_bytes().to_vec();
        *bytes.last_mut().unwrap() ^= 0x40;
        let corrupt = RecordBatch::parse(Bytes::from(bytes)).unwrap();
        let header = rewrite_header(&corrupt, &ProducerStamp::new(9, 0, 0));
        let out = RecordBatch::parse(assemble(&header, &corrupt.payload())).unwrap();
        assert!(out.verify_crc().is_err());
    }

    #[test]
    fn keeps_codec_and_clears_broker_bits() {
        let attrs = Attributes(Attributes::LOG_APPEND_TIME | Attributes::TRANSACTIONAL | Attributes::DELETE_HORIZON)
            .with_compression(Compression::Lz4);
        let batch = BatchBuilder::new().attributes(attrs).value("x").build();
        let header = rewrite_header(&batch, &ProducerStamp::NONE);
        let out = RecordBatch::parse(assemble(&header, &batch.payload())).unwrap();
        assert_eq!(out.attributes(), Attributes(Compression::Lz4.id().into()));
        assert_eq!(out.producer_id(), -1);
        out.verify_crc().unwrap();
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 5), 3);
        assert_eq!(increment_sequence(-1, 5), -1);
        assert_eq!(ProducerStamp::new(1, 0, 10).next(5).base_sequence, 15);
    }
}
