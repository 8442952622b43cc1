//! [`BatchBuilder`]: encodes whole v2 batches (uncompressed, or compressed by a
//! caller-supplied codec) with a correct CRC, for tests, benches and the slow path.
//!
//! Every derived header field (`lastOffsetDelta`, `maxTimestamp`, `recordCount`) can be
//! overridden, so tests can make the odd batches a source cluster really serves:
//! compacted batches with offset gaps, empty batches, control batches.
//!
//! # References
//!
//! * Kafka `clients/.../record/MemoryRecordsBuilder.java` (what a producer writes)
//! * Kafka `clients/.../record/DefaultRecordBatch.java` (`writeHeader`)
//! * Kafka `clients/.../record/EndTransactionMarker.java` (control record key/value)
//! * KIP-98 (control batches, producer fields)

use bytes::{BufMut, Bytes, BytesMut};

use super::records::wire_len;
use super::{
    crc, field, Attributes, Compression, Record, RecordBatch, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

/// Kind of transaction marker in a control batch (`EndTransactionMarker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// Marker type 0.
    Abort,
    /// Marker type 1.
    Commit,
}

/// Builds an uncompressed (or caller-compressed) v2 batch with a correct CRC.
///
/// Defaults are what a plain Java producer sends: `baseOffset` 0, `partitionLeaderEpoch`
/// -1, no attributes, no producer id, and derived `lastOffsetDelta` (last record's
/// offset delta), `maxTimestamp` (base + largest timestamp delta) and `recordCount`.
/// Each derived field can be overridden to make deliberately odd batches (gaps, empty
/// batches, wrong counts). The default `baseTimestamp` is the fixed
/// [`DEFAULT_BASE_TIMESTAMP`](Self::DEFAULT_BASE_TIMESTAMP) for determinism; tests
/// against a real broker should pass the current time, or time-based retention may
/// delete the data.
///
/// ```
/// use kferry::batch::{BatchBuilder, Record};
/// let batch = BatchBuilder::new()
///     .base_offset(42)
///     .producer(7, 0, 100)
///     .key_value("k", "v")
///     .record(Record::new(1, None, Some("tombstone? no".into())).with_timestamp_delta(5))
///     .build();
/// assert_eq!(batch.last_offset(), 43);
/// assert!(batch.verify_crc().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: Attributes,
    base_timestamp: i64,
    max_timestamp: Option<i64>,
    last_offset_delta: Option<i32>,
    record_count: Option<i32>,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: Vec<Record>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder {
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            attributes: Attributes::default(),
            base_timestamp: Self::DEFAULT_BASE_TIMESTAMP,
            max_timestamp: None,
            last_offset_delta: None,
            record_count: None,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            records: Vec::new(),
        }
    }
}

impl BatchBuilder {
    /// Default `baseTimestamp`: 2023-11-14T22:13:20Z in milliseconds.
    pub const DEFAULT_BASE_TIMESTAMP: i64 = 1_700_000_000_000;

    /// A builder with producer defaults and no records.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `baseOffset`.
    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }
    /// Sets `partitionLeaderEpoch`.
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }
    /// Sets all attribute bits. The codec bits must match the payload:
    /// [`build`](Self::build) writes uncompressed records whatever they say.
    pub fn attributes(mut self, attributes: Attributes) -> Self {
        self.attributes = attributes;
        self
    }
    /// Sets `baseTimestamp`.
    pub fn base_timestamp(mut self, base_timestamp: i64) -> Self {
        self.base_timestamp = base_timestamp;
        self
    }
    /// Overrides the derived `maxTimestamp`.
    pub fn max_timestamp(mut self, max_timestamp: i64) -> Self {
        self.max_timestamp = Some(max_timestamp);
        self
    }
    /// Overrides the derived `lastOffsetDelta`.
    pub fn last_offset_delta(mut self, delta: i32) -> Self {
        self.last_offset_delta = Some(delta);
        self
    }
    /// Overrides the derived `recordCount`.
    pub fn record_count(mut self, count: i32) -> Self {
        self.record_count = Some(count);
        self
    }
    /// Sets `producerId`, `producerEpoch` and `baseSequence`.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }
    /// Sets or clears the transactional bit (4).
    pub fn transactional(mut self, on: bool) -> Self {
        self.attributes = set_bit(self.attributes, Attributes::TRANSACTIONAL, on);
        self
    }
    /// Adds a record as given (its offset delta may leave gaps).
    pub fn record(mut self, record: Record) -> Self {
        self.records.push(record);
        self
    }
    /// Adds records as given.
    pub fn records(mut self, records: impl IntoIterator<Item = Record>) -> Self {
        self.records.extend(records);
        self
    }
    /// Adds a keyless record at the next offset delta.
    pub fn value(self, value: impl Into<Bytes>) -> Self {
        let delta = self.next_offset_delta();
        self.record(Record::new(delta, None, Some(value.into())))
    }
    /// Adds a keyed record at the next offset delta.
    pub fn key_value(self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        let delta = self.next_offset_delta();
        self.record(Record::new(delta, Some(key.into()), Some(value.into())))
    }
    /// Makes this a control batch holding one transaction marker, as a broker writes on
    /// EndTxn: control and transactional bits set, key `(version 0, type)`, value
    /// `(version 0, coordinatorEpoch)`.
    pub fn control_marker(mut self, kind: ControlType, coordinator_epoch: i32) -> Self {
        let kind: i16 = match kind {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        };
        let key = [0i16.to_be_bytes(), kind.to_be_bytes()].concat();
        let value = [&0i16.to_be_bytes()[..], &coordinator_epoch.to_be_bytes()].concat();
        self.attributes = Attributes(self.attributes.0 | Attributes::CONTROL | Attributes::TRANSACTIONAL);
        let delta = self.next_offset_delta();
        self.record(Record::new(delta, Some(key.into()), Some(value.into())))
    }

    /// The uncompressed records section these records encode to.
    pub fn encode_records(&self) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(self.records.iter().map(|r| r.body_len() + 5).sum());
        for record in &self.records {
            record.encode(&mut out);
        }
        out.to_vec()
    }

    /// Encodes the batch with uncompressed records (the codec bits are left as set).
    pub fn build(self) -> RecordBatch {
        let payload = self.encode_records();
        self.finish(&payload)
    }

    /// Encodes the batch with records compressed by `compress` (e.g. a zstd or lz4
    /// frame encoder) and the codec bits set to `compression`.
    pub fn build_compressed(self, compression: Compression, compress: impl FnOnce(&[u8]) -> Vec<u8>) -> RecordBatch {
        let payload = compress(&self.encode_records());
        self.build_raw(compression, &payload)
    }

    /// Encodes the batch around a records section the caller already encoded (and
    /// compressed with `compression`), with the codec bits set to `compression`.
    ///
    /// Records added to the builder are not written, but still drive the derived header
    /// fields, so a caller that adds none must set `lastOffsetDelta`, `maxTimestamp` and
    /// `recordCount` itself (the slow path in [`mod@super::reencode`] does).
    pub fn build_raw(mut self, compression: Compression, payload: &[u8]) -> RecordBatch {
        self.attributes = self.attributes.with_compression(compression);
        self.finish(payload)
    }

    fn next_offset_delta(&self) -> i32 {
        self.records.last().map_or(0, |r| r.offset_delta + 1)
    }

    fn finish(&self, payload: &[u8]) -> RecordBatch {
        let len = HEADER_LEN + payload.len();
        let mut out = BytesMut::with_capacity(len);
        out.put_i64(self.base_offset);
        out.put_i32(wire_len(len - LOG_OVERHEAD));
        out.put_i32(self.partition_leader_epoch);
        out.put_u8(MAGIC_V2);
        out.put_u32(0); // CRC, filled in below
        out.put_u16(self.attributes.0);
        out.put_i32(
            self.last_offset_delta
                .unwrap_or_else(|| self.derived_last_offset_delta()),
        );
        out.put_i64(self.base_timestamp);
        out.put_i64(self.max_timestamp.unwrap_or_else(|| self.derived_max_timestamp()));
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(self.record_count.unwrap_or_else(|| wire_len(self.records.len())));
        out.put_slice(payload);
        let crc = crc::crc32c(&out[field::CRC_START..]);
        out[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        RecordBatch::parse(out.freeze()).expect("builder writes a well-formed batch")
    }

    fn derived_last_offset_delta(&self) -> i32 {
        self.records.last().map_or(0, |r| r.offset_delta)
    }

    fn derived_max_timestamp(&self) -> i64 {
        let max_delta = self.records.iter().map(|r| r.timestamp_delta).max().unwrap_or(0);
        self.base_timestamp.saturating_add(max_delta)
    }
}

fn set_bit(attributes: Attributes, bit: u16, on: bool) -> Attributes {
    Attributes(if on { attributes.0 | bit } else { attributes.0 & !bit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{decode_records, BatchError};

    #[test]
    fn builder_derives_header_fields() {
        let batch = BatchBuilder::new()
            .base_offset(100)
            .base_timestamp(1_000)
            .producer(5, 1, 30)
            .key_value("a", "1")
            .record(Record::new(3, None, Some("gap".into())).with_timestamp_delta(70))
            .build();
        assert_eq!(batch.base_offset(), 100);
        assert_eq!(batch.last_offset_delta(), 3);
        assert_eq!(batch.last_offset(), 103);
        assert_eq!(batch.record_count(), 2);
        assert!(batch.has_offset_gaps());
        assert_eq!(batch.max_timestamp(), 1_070);
        assert_eq!(
            (batch.producer_id(), batch.producer_epoch(), batch.base_sequence()),
            (5, 1, 30)
        );
        assert_eq!(batch.partition_leader_epoch(), -1);
        batch.verify_crc().unwrap();
    }

    #[test]
    fn golden_vector_round_trip() {
        use kferry_protocol_tests::golden::{hex, FETCHED_IDEMPOTENT};
        let golden = hex(FETCHED_IDEMPOTENT);
        let built = BatchBuilder::new()
            .base_offset(5)
            .partition_leader_epoch(3)
            .producer(1000, 2, 7)
            .key_value("k", "v")
            .build();
        assert_eq!(built.as_bytes()[..], golden[..]);
        let records = decode_records(&built).unwrap();
        assert_eq!(records, vec![Record::new(0, Some("k".into()), Some("v".into()))]);
    }

    #[test]
    fn control_marker_layout() {
        let batch = BatchBuilder::new()
            .producer(9, 0, -1)
            .control_marker(ControlType::Commit, 4)
            .build();
        assert!(batch.attributes().is_control() && batch.attributes().is_transactional());
        let r = &decode_records(&batch).unwrap()[0];
        assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, 1][..]));
        assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 0, 4][..]));
    }

    #[test]
    fn compressed_batches_are_refused() {
        let batch = BatchBuilder::new()
            .value("x")
            .build_compressed(Compression::Zstd, |raw| raw.to_vec());
        assert_eq!(batch.compression(), Compression::Zstd);
        assert!(matches!(decode_records(&batch), Err(BatchError::Compressed { .. })));
    }
}
