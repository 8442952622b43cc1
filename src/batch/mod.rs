//! Kafka record batches (message format v2), handled without I/O.
//!
//! This layer is SANS-IO: every function takes bytes and returns values; nothing here
//! touches a socket, a clock or a runtime. The replication engine uses it to
//!
//! * walk the `records` blob of a Fetch response partition ([`BlobIter`]), which may
//!   hold legacy v0/v1 message sets and ends with a batch the broker may have cut short;
//! * look at one v2 batch through a zero-copy view ([`RecordBatch`]);
//! * restamp a batch for the target cluster by building a new 61-byte header
//!   ([`rewrite_header`]) whose CRC-32C is *patched* ([`crc::patch_crc`]) rather than
//!   recomputed, so the (possibly compressed) payload is never read, let alone decoded;
//! * decode and build uncompressed records ([`decode_records`], [`BatchBuilder`]) for
//!   tests, benches and the slow path;
//! * take the slow path for the batches Kafka forces a forwarder to decode: compacted
//!   batches with offset gaps ([`reencode::close_gaps_uncompressed`], [`reencode::reencode`]),
//!   legacy v0/v1 message sets ([`legacy::decode_legacy`], [`legacy::upconvert`]), with the
//!   four codecs in [`codec`]; read transaction markers ([`control::control_type`]); and
//!   place keyed records as Kafka's default partitioner does ([`partitioner`]).
//!
//! # Batch v2 layout
//!
//! ```text
//! offset size field                   covered by CRC
//!      0    8 baseOffset              no
//!      8    4 batchLength             no   (bytes after this field)
//!     12    4 partitionLeaderEpoch    no
//!     16    1 magic (= 2)             no
//!     17    4 crc (CRC-32C)           no
//!     21    2 attributes              yes
//!     23    4 lastOffsetDelta         yes
//!     27    8 baseTimestamp           yes
//!     35    8 maxTimestamp            yes
//!     43    8 producerId              yes
//!     51    2 producerEpoch           yes
//!     53    4 baseSequence            yes
//!     57    4 recordCount             yes
//!     61    … records (maybe compressed) yes
//! ```
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecordBatch.java` (layout, CRC range, attributes)
//! * Kafka `clients/.../record/ByteBufferLogInputStream.java` (walking a fetched blob)
//! * Kafka `storage/.../log/LogValidator.java` (what a broker accepts on produce)
//! * Kafka `clients/.../record/LegacyRecord.java`, `AbstractLegacyRecordBatch.java`
//!   (v0/v1 message sets, see [`legacy`])
//! * KIP-98 (idempotent and transactional producer: the v2 format),
//!   KIP-32 (timestamps), KIP-534 (delete horizon attribute)

pub mod blob;
pub mod builder;
pub mod codec;
pub mod control;
pub mod crc;
pub mod header;
pub mod legacy;
pub mod partitioner;
pub mod records;
pub mod reencode;
pub mod repartition;
pub mod rewrite;

pub use blob::{BlobIter, FetchedEntry};
pub use builder::{BatchBuilder, ControlType};
pub use control::control_type;
pub use header::{Attributes, Compression, RecordBatch};
pub use legacy::{decode_legacy, upconvert, LegacyMessage};
pub use partitioner::{murmur2, partition_for_key};
pub use records::{decode_records, Record};
pub use reencode::{close_gaps_uncompressed, decode_batch, reencode, ReencodeOptions, Reencoded};
pub use rewrite::{rewrite_header, ProducerStamp};

/// Size of the v2 batch header; the records (payload) start right after it.
pub const HEADER_LEN: usize = 61;

/// Size of the `baseOffset` + `batchLength` prefix shared by every format version
/// (Kafka's `Records.LOG_OVERHEAD`). `batchLength` counts the bytes after it.
pub const LOG_OVERHEAD: usize = 12;

/// The only magic (format version) kferry forwards as is.
pub const MAGIC_V2: u8 = 2;

/// `producerId` / `producerEpoch` / `baseSequence` value meaning "none" (non-idempotent).
pub const NO_PRODUCER_ID: i64 = -1;
/// See [`NO_PRODUCER_ID`].
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// See [`NO_PRODUCER_ID`].
pub const NO_SEQUENCE: i32 = -1;
/// `partitionLeaderEpoch` a producer sends; the broker assigns the real one.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Timestamp value meaning "no timestamp" (`RecordBatch.NO_TIMESTAMP`).
pub const NO_TIMESTAMP: i64 = -1;

/// Byte positions of the v2 header fields (see the table in the module docs).
pub mod field {
    /// `baseOffset`, i64.
    pub const BASE_OFFSET: usize = 0;
    /// `batchLength`, i32: length of the batch after this field.
    pub const BATCH_LENGTH: usize = 8;
    /// `partitionLeaderEpoch`, i32.
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    /// `magic`, i8; at this position in every format version.
    pub const MAGIC: usize = 16;
    /// `crc`, u32 (CRC-32C).
    pub const CRC: usize = 17;
    /// `attributes`, i16; also the first byte the CRC covers.
    pub const ATTRIBUTES: usize = 21;
    /// `lastOffsetDelta`, i32.
    pub const LAST_OFFSET_DELTA: usize = 23;
    /// `baseTimestamp`, i64 (the delete horizon when attribute bit 6 is set).
    pub const BASE_TIMESTAMP: usize = 27;
    /// `maxTimestamp`, i64.
    pub const MAX_TIMESTAMP: usize = 35;
    /// `producerId`, i64.
    pub const PRODUCER_ID: usize = 43;
    /// `producerEpoch`, i16.
    pub const PRODUCER_EPOCH: usize = 51;
    /// `baseSequence`, i32.
    pub const BASE_SEQUENCE: usize = 53;
    /// `recordCount`, i32.
    pub const RECORD_COUNT: usize = 57;
    /// First byte covered by the batch CRC.
    pub const CRC_START: usize = ATTRIBUTES;
}

/// Errors from parsing, iterating or decoding record batches.
///
/// Every variant carries enough to find the bad bytes: the batch's (base) offset in the
/// source partition and/or a byte position. All are fatal for the batch concerned: the
/// bytes will not become valid by retrying the same fetch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than the smallest valid batch (or record) needs.
    #[error("record batch too short: {len} bytes, at least {min} needed")]
    TooShort {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        min: usize,
    },
    /// A magic (format version) this code does not handle at this point.
    #[error("unsupported magic {magic} in batch at offset {offset}")]
    BadMagic {
        /// baseOffset (v2) or entry offset (v0/v1).
        offset: i64,
        /// The magic byte found.
        magic: u8,
    },
    /// `12 + batchLength` differs from the number of bytes given.
    #[error("batch at offset {offset} declares batchLength {batch_length} but {actual} bytes follow the length field")]
    LengthMismatch {
        /// baseOffset of the batch.
        offset: i64,
        /// The declared `batchLength`.
        batch_length: i32,
        /// Bytes actually present after the `batchLength` field.
        actual: usize,
    },
    /// Bytes that cannot be a valid batch, entry or record.
    #[error("corrupt record data at byte {position} (offset {offset}): {reason}")]
    Corrupt {
        /// baseOffset of the batch, or offset of the blob entry, concerned.
        offset: i64,
        /// Byte position of the problem, relative to the start of the batch or blob.
        position: usize,
        /// What is wrong, in Kafka's terms.
        reason: &'static str,
    },
    /// The stored CRC-32C does not match the bytes.
    #[error("CRC mismatch in batch at offset {base_offset}: stored {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch {
        /// baseOffset of the batch.
        base_offset: i64,
        /// CRC stored in the header.
        expected: u32,
        /// CRC computed over bytes 21.. of the batch.
        actual: u32,
    },
    /// Records of a compressed batch were asked for without decompressing them.
    #[error("batch at offset {base_offset} is compressed ({compression:?}); decompress before decoding records")]
    Compressed {
        /// baseOffset of the batch.
        base_offset: i64,
        /// The batch's codec.
        compression: Compression,
    },
    /// A payload failed to decompress (or, for an unknown codec, to compress).
    #[error("{compression:?} codec failed for the entry at offset {offset}: {reason}")]
    Codec {
        /// baseOffset of the batch or offset of the legacy wrapper; -1 when the codec
        /// was called on bare bytes ([`codec::decompress`]).
        offset: i64,
        /// The codec.
        compression: Compression,
        /// The codec library's message.
        reason: String,
    },
    /// A payload decompresses to more than the caller's cap (a decompression bomb, or a
    /// cap below the source's `max.message.bytes` × compression ratio).
    #[error("{compression:?} payload at offset {offset} decompresses to more than {limit} bytes")]
    DecompressedTooLarge {
        /// As in [`BatchError::Codec`].
        offset: i64,
        /// The codec.
        compression: Compression,
        /// The cap that was exceeded.
        limit: usize,
    },
    /// The stored CRC-32 (IEEE) of a legacy v0/v1 message does not match its bytes.
    #[error("CRC mismatch in legacy message at offset {offset}: stored {expected:#010x}, computed {actual:#010x}")]
    MessageCrcMismatch {
        /// Absolute offset of the message.
        offset: i64,
        /// CRC stored in the message.
        expected: u32,
        /// CRC-32 computed over its magic byte to its end.
        actual: u32,
    },
    /// Valid data this code will not turn into a producible batch (a control batch, a
    /// control record type other than abort/commit, a batch that is not a control batch
    /// where one is expected).
    #[error("entry at offset {offset} is not supported here: {reason}")]
    Unsupported {
        /// baseOffset of the batch or offset of the entry.
        offset: i64,
        /// What is not supported.
        reason: &'static str,
    },
}

impl BatchError {
    /// The source-partition offset the error is about, when known.
    pub fn offset(&self) -> Option<i64> {
        match *self {
            BatchError::TooShort { .. } => None,
            BatchError::BadMagic { offset, .. }
            | BatchError::LengthMismatch { offset, .. }
            | BatchError::Corrupt { offset, .. }
            | BatchError::MessageCrcMismatch { offset, .. }
            | BatchError::Unsupported { offset, .. } => Some(offset),
            BatchError::Codec { offset, .. } | BatchError::DecompressedTooLarge { offset, .. } => {
                (offset >= 0).then_some(offset)
            }
            BatchError::CrcMismatch { base_offset, .. } | BatchError::Compressed { base_offset, .. } => {
                Some(base_offset)
            }
        }
    }

    /// This error with the entry offset filled in, for codec errors raised on bare
    /// bytes; other errors are returned unchanged.
    pub(crate) fn at_offset(self, at: i64) -> Self {
        match self {
            BatchError::Codec {
                offset: -1,
                compression,
                reason,
            } => BatchError::Codec {
                offset: at,
                compression,
                reason,
            },
            BatchError::DecompressedTooLarge {
                offset: -1,
                compression,
                limit,
            } => BatchError::DecompressedTooLarge {
                offset: at,
                compression,
                limit,
            },
            other => other,
        }
    }
}
