//! Every way a produced batch can break Kafka's rules, one variant each.
//!
//! # References
//!
//! * Kafka `storage/.../log/LogValidator.java` (`validateBatch`, `validateRecord`,
//!   `validateTimestamp`)
//! * Kafka `clients/.../record/DefaultRecordBatch.java` (`ensureValid`, record iterators)
//! * Kafka `clients/.../record/DefaultRecord.java` (`readFrom`)

/// A rule of Kafka's produce path that a batch breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// Fewer than 61 bytes: not even a v2 header.
    #[error("batch is {len} bytes, shorter than the 61-byte v2 header")]
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// `12 + batchLength` exceeds the bytes given (or `batchLength` is below 49).
    #[error("batchLength {batch_length} needs {} bytes but {len} were given", i64::from(*batch_length) + 12)]
    LengthMismatch {
        /// Declared `batchLength`.
        batch_length: i32,
        /// Bytes given.
        len: usize,
    },
    /// Bytes after the batch: a Produce v3+ partition must hold exactly one batch.
    #[error("{extra} bytes follow the batch; a produced partition must hold exactly one batch")]
    TrailingBytes {
        /// Bytes after `12 + batchLength`.
        extra: usize,
    },
    /// Magic is not 2 (Produce v3+ accepts only v2 batches).
    #[error("magic {magic}, but Produce v3+ accepts only magic 2")]
    BadMagic {
        /// The magic byte.
        magic: i8,
    },
    /// `baseOffset` is not 0, as a producer always sends.
    #[error("baseOffset {base_offset}, a producer sends 0")]
    NonZeroBaseOffset {
        /// The baseOffset.
        base_offset: i64,
    },
    /// The stored CRC-32C does not match bytes 21..end (broker: CORRUPT_MESSAGE).
    #[error("stored CRC {stored:#010x} but bytes 21.. compute to {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// `recordCount <= 0`.
    #[error("recordCount {record_count}; a produced batch needs at least one record")]
    NoRecords {
        /// The recordCount.
        record_count: i32,
    },
    /// `lastOffsetDelta + 1 != recordCount` (a gapped or inconsistent batch).
    #[error("lastOffsetDelta {last_offset_delta} + 1 != recordCount {record_count}")]
    OffsetRangeMismatch {
        /// The lastOffsetDelta.
        last_offset_delta: i32,
        /// The recordCount.
        record_count: i32,
    },
    /// Attribute bit 5: clients may not write control records.
    #[error("control bit (5) set; clients may not write control batches")]
    ControlBit,
    /// Attribute bit 4 outside a transaction.
    #[error("transactional bit (4) set outside a transaction")]
    TransactionalBit,
    /// Attribute bit 3: only brokers set LogAppendTime.
    #[error("LogAppendTime bit (3) set; a producer must send CreateTime")]
    LogAppendTimeBit,
    /// Attribute bit 6: only the log cleaner sets the delete horizon.
    #[error("delete-horizon bit (6) set; only the log cleaner sets it")]
    DeleteHorizonBit,
    /// Attribute bits 7-15 are not defined.
    #[error("undefined attribute bits set: attributes {attributes:#06x}")]
    ReservedAttributeBits {
        /// The attributes.
        attributes: u16,
    },
    /// Codec id outside 0..=4.
    #[error("unknown compression codec {codec}")]
    UnknownCodec {
        /// Attribute bits 0-2.
        codec: u8,
    },
    /// `producerId` below -1.
    #[error("producerId {producer_id} is negative but not -1")]
    InvalidProducerId {
        /// The producerId.
        producer_id: i64,
    },
    /// A producer id with a negative epoch.
    #[error("producerId {producer_id} with negative producerEpoch {producer_epoch}")]
    InvalidProducerEpoch {
        /// The producerId.
        producer_id: i64,
        /// The producerEpoch.
        producer_epoch: i16,
    },
    /// A producer id with a negative base sequence (broker: "Invalid sequence number").
    #[error("producerId {producer_id} with negative baseSequence {base_sequence}")]
    InvalidSequence {
        /// The producerId.
        producer_id: i64,
        /// The baseSequence.
        base_sequence: i32,
    },
    /// No producer id (-1) but an epoch or sequence other than -1.
    #[error("producerId -1 but producerEpoch {producer_epoch} / baseSequence {base_sequence} are not -1")]
    StrayProducerFields {
        /// The producerEpoch.
        producer_epoch: i16,
        /// The baseSequence.
        base_sequence: i32,
    },
    /// A header field differs from what the test expected.
    #[error("{field} is {actual}, expected {expected}")]
    Unexpected {
        /// Kafka's name of the field.
        field: &'static str,
        /// Expected value.
        expected: i64,
        /// Value in the batch.
        actual: i64,
    },
    /// The payload does not decompress with the batch's codec.
    #[error("payload does not decompress as codec {codec}: {reason}")]
    Decompression {
        /// Codec id.
        codec: u8,
        /// What the decompressor said.
        reason: String,
    },
    /// The records end before `recordCount` records were read.
    #[error("recordCount {declared} but the records end after {found}")]
    MissingRecords {
        /// The recordCount.
        declared: i32,
        /// Records read.
        found: usize,
    },
    /// Bytes remain after `recordCount` records.
    #[error("{remaining} bytes remain after the last record")]
    TrailingRecordBytes {
        /// Bytes left.
        remaining: usize,
    },
    /// A record's length varint says more bytes than its fields take.
    #[error("record {index}: length varint says {declared} bytes, its fields take {actual}")]
    RecordLengthMismatch {
        /// Record index in the batch.
        index: usize,
        /// Declared length.
        declared: i64,
        /// Bytes the fields take.
        actual: usize,
    },
    /// A record's length varint is negative or beyond the records section, or its
    /// fields run past the declared length.
    #[error("record {index}: length varint says {declared} bytes, but its fields or the batch allow {available}")]
    RecordOverrun {
        /// Record index in the batch.
        index: usize,
        /// Declared length.
        declared: i64,
        /// Bytes available to the record.
        available: usize,
    },
    /// A record that cannot be parsed.
    #[error("record {index}: {reason}")]
    MalformedRecord {
        /// Record index in the batch.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Record offset deltas must be 0, 1, 2, …
    #[error("record {index} has offsetDelta {offset_delta}, expected {index}")]
    OffsetDeltaNotConsecutive {
        /// Record index in the batch.
        index: usize,
        /// Its offsetDelta.
        offset_delta: i32,
    },
    /// A record attributes byte other than 0.
    #[error("record {index} has attributes {attributes:#04x}, expected 0")]
    RecordAttributes {
        /// Record index in the batch.
        index: usize,
        /// The attributes byte.
        attributes: u8,
    },
    /// A negative header count, or more headers than bytes to hold them.
    #[error("record {index} declares {count} headers")]
    BadHeaderCount {
        /// Record index in the batch.
        index: usize,
        /// The header count.
        count: i32,
    },
    /// A record timestamp below 0 other than -1 (NO_TIMESTAMP), or overflowing.
    #[error("record {index} has timestamp {timestamp}; must be >= 0 or -1")]
    InvalidTimestamp {
        /// Record index in the batch.
        index: usize,
        /// baseTimestamp + timestampDelta.
        timestamp: i64,
    },
    /// `maxTimestamp` differs from the largest record timestamp.
    #[error("maxTimestamp {max_timestamp} but the largest record timestamp is {expected}")]
    MaxTimestampMismatch {
        /// The header's maxTimestamp.
        max_timestamp: i64,
        /// baseTimestamp + the largest timestampDelta.
        expected: i64,
    },
    /// A record without a key, for a compacted target ([`crate::BatchSummary::check_keyed`]).
    #[error("record {index} has no key; a compacted topic rejects it")]
    MissingKey {
        /// Record index in the batch.
        index: usize,
    },
}
