//! A zero-copy view of one v2 record batch: [`RecordBatch`].
//!
//! The view wraps the batch's bytes (header and payload) in a [`Bytes`] and decodes
//! header fields on demand, big-endian, straight from the buffer. Parsing checks only
//! what every accessor relies on (length, magic, `batchLength`), so it costs a few
//! comparisons; the CRC is checked on request ([`RecordBatch::verify_crc`]).
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecordBatch.java` (layout, attributes, `ensureValid`)
//! * Kafka `clients/.../record/CompressionType.java` (codec ids 0-4)
//! * KIP-98 (producer id/epoch/sequence, transactional and control bits),
//!   KIP-32 (timestamp type bit), KIP-534 (delete horizon bit), KIP-110 (zstd)

use bytes::Bytes;

use super::{crc, field, BatchError, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};

/// Compression codec, attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// 0: uncompressed.
    None,
    /// 1: gzip.
    Gzip,
    /// 2: snappy (Kafka's Java client uses xerial framing).
    Snappy,
    /// 3: lz4 (frame format).
    Lz4,
    /// 4: zstd (KIP-110; needs Produce v7+).
    Zstd,
    /// 5-7: not defined by Kafka.
    Unknown(u8),
}

impl Compression {
    /// The codec for attribute bits 0-2 (`id` is masked to 3 bits).
    pub fn from_id(id: u8) -> Self {
        match id & Attributes::COMPRESSION_MASK as u8 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => Compression::Unknown(other),
        }
    }

    /// The 3-bit codec id.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
            Compression::Unknown(id) => id & Attributes::COMPRESSION_MASK as u8,
        }
    }

    /// The codec named as Kafka's `compression.type` names it (`none`, `gzip`, `snappy`, `lz4`,
    /// `zstd`).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    /// Kafka's `compression.type` name of the codec (`unknown` for ids 5-7).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Unknown(_) => "unknown",
        }
    }
}

/// The batch `attributes` field (int16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attributes(pub u16);

impl Attributes {
    /// Bits 0-2: compression codec.
    pub const COMPRESSION_MASK: u16 = 0x07;
    /// Bit 3: timestamps are LogAppendTime (set by a broker, never by a producer).
    pub const LOG_APPEND_TIME: u16 = 0x08;
    /// Bit 4: the batch belongs to a transaction.
    pub const TRANSACTIONAL: u16 = 0x10;
    /// Bit 5: control batch (transaction marker), written only by brokers.
    pub const CONTROL: u16 = 0x20;
    /// Bit 6: `baseTimestamp` holds the log cleaner's delete horizon (KIP-534).
    pub const DELETE_HORIZON: u16 = 0x40;

    /// The compression codec.
    pub fn compression(self) -> Compression {
        Compression::from_id((self.0 & Self::COMPRESSION_MASK) as u8)
    }
    /// Whether bit 4 (transactional) is set.
    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }
    /// Whether bit 5 (control) is set.
    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }
    /// Whether bit 3 (LogAppendTime) is set.
    pub fn has_log_append_time(self) -> bool {
        self.0 & Self::LOG_APPEND_TIME != 0
    }
    /// Whether bit 6 (delete horizon) is set.
    pub fn has_delete_horizon(self) -> bool {
        self.0 & Self::DELETE_HORIZON != 0
    }
    /// These attributes with the codec bits replaced.
    pub fn with_compression(self, compression: Compression) -> Self {
        Attributes((self.0 & !Self::COMPRESSION_MASK) | u16::from(compression.id()))
    }
}

/// One v2 record batch, header and payload, viewed in place.
///
/// Cloning is cheap (a reference-count increment). Accessors never panic: [`parse`]
/// guarantees at least [`HEADER_LEN`] bytes.
///
/// [`parse`]: RecordBatch::parse
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

impl RecordBatch {
    /// Wraps `bytes`, which must hold exactly one v2 batch.
    ///
    /// Checks `len >= 61`, `magic == 2` and `12 + batchLength == len`; not the CRC.
    pub fn parse(bytes: Bytes) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::TooShort {
                len: bytes.len(),
                min: HEADER_LEN,
            });
        }
        let batch = RecordBatch { bytes };
        if batch.magic() != MAGIC_V2 {
            return Err(BatchError::BadMagic {
                offset: batch.base_offset(),
                magic: batch.magic(),
            });
        }
        let actual = batch.bytes.len() - LOG_OVERHEAD;
        if usize::try_from(batch.batch_length()).ok() != Some(actual) {
            return Err(BatchError::LengthMismatch {
                offset: batch.base_offset(),
                batch_length: batch.batch_length(),
                actual,
            });
        }
        Ok(batch)
    }

    /// `baseOffset`: offset of the first record (in the source partition).
    pub fn base_offset(&self) -> i64 {
        self.i64_at(field::BASE_OFFSET)
    }
    /// `batchLength`: bytes after the length field (`len() - 12`).
    pub fn batch_length(&self) -> i32 {
        self.i32_at(field::BATCH_LENGTH)
    }
    /// `partitionLeaderEpoch` assigned by the source broker.
    pub fn partition_leader_epoch(&self) -> i32 {
        self.i32_at(field::PARTITION_LEADER_EPOCH)
    }
    /// `magic`; always 2 for a parsed batch.
    pub fn magic(&self) -> u8 {
        self.bytes[field::MAGIC]
    }
    /// Stored `crc` (CRC-32C over bytes 21..).
    pub fn crc(&self) -> u32 {
        u32::from_be_bytes(*self.array_at(field::CRC))
    }
    /// `attributes`.
    pub fn attributes(&self) -> Attributes {
        Attributes(u16::from_be_bytes(*self.array_at(field::ATTRIBUTES)))
    }
    /// Compression codec (attribute bits 0-2).
    pub fn compression(&self) -> Compression {
        self.attributes().compression()
    }
    /// `lastOffsetDelta`: last offset minus base offset (kept by the log cleaner).
    pub fn last_offset_delta(&self) -> i32 {
        self.i32_at(field::LAST_OFFSET_DELTA)
    }
    /// `baseOffset + lastOffsetDelta`, saturating on nonsense values.
    pub fn last_offset(&self) -> i64 {
        self.base_offset().saturating_add(i64::from(self.last_offset_delta()))
    }
    /// The offset to fetch next after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    /// `baseTimestamp` (the delete horizon if [`Attributes::has_delete_horizon`]).
    pub fn base_timestamp(&self) -> i64 {
        self.i64_at(field::BASE_TIMESTAMP)
    }
    /// `maxTimestamp`.
    pub fn max_timestamp(&self) -> i64 {
        self.i64_at(field::MAX_TIMESTAMP)
    }
    /// `producerId`, -1 if none.
    pub fn producer_id(&self) -> i64 {
        self.i64_at(field::PRODUCER_ID)
    }
    /// `producerEpoch`, -1 if none.
    pub fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes(*self.array_at(field::PRODUCER_EPOCH))
    }
    /// `baseSequence`, -1 if none.
    pub fn base_sequence(&self) -> i32 {
        self.i32_at(field::BASE_SEQUENCE)
    }
    /// `recordCount` (after compaction, may be less than `lastOffsetDelta + 1`).
    pub fn record_count(&self) -> i32 {
        self.i32_at(field::RECORD_COUNT)
    }

    /// The 61 header bytes.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        self.array_at(0)
    }
    /// The records section (compressed or not), zero-copy.
    pub fn payload(&self) -> Bytes {
        self.bytes.slice(HEADER_LEN..)
    }
    /// The whole batch.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// Unwraps the whole batch.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
    /// Size of the whole batch in bytes (`12 + batchLength`).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Always false: a batch has at least its header. Use [`is_empty_batch`] for
    /// "no records".
    ///
    /// [`is_empty_batch`]: RecordBatch::is_empty_batch
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// CRC-32C over bytes 21..end, as a broker computes it.
    pub fn compute_crc(&self) -> u32 {
        crc::crc32c(&self.bytes[field::CRC_START..])
    }
    /// Checks the stored CRC against [`compute_crc`](RecordBatch::compute_crc).
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let actual = self.compute_crc();
        if actual == self.crc() {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch {
                base_offset: self.base_offset(),
                expected: self.crc(),
                actual,
            })
        }
    }
    /// True when the log cleaner removed records: `lastOffsetDelta + 1 != recordCount`.
    pub fn has_offset_gaps(&self) -> bool {
        i64::from(self.last_offset_delta()) + 1 != i64::from(self.record_count())
    }
    /// True for a batch with no records (left by the log cleaner; never forwarded).
    pub fn is_empty_batch(&self) -> bool {
        self.record_count() == 0
    }

    fn array_at<const N: usize>(&self, at: usize) -> &[u8; N] {
        self.bytes[at..at + N].try_into().expect("slice of length N")
    }
    fn i32_at(&self, at: usize) -> i32 {
        i32::from_be_bytes(*self.array_at(at))
    }
    fn i64_at(&self, at: usize) -> i64 {
        i64::from_be_bytes(*self.array_at(at))
    }
}

impl std::fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset", &self.last_offset())
            .field("len", &self.len())
            .field("record_count", &self.record_count())
            .field("attributes", &self.attributes())
            .field("producer_id", &self.producer_id())
            .field("producer_epoch", &self.producer_epoch())
            .field("base_sequence", &self.base_sequence())
            .field("crc", &format_args!("{:#010x}", self.crc()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-written vectors from the independent validator crate.
    use kferry_protocol_tests::golden::{hex, FETCHED_IDEMPOTENT as GOLDEN_HEX};

    #[test]
    fn codec_names_round_trip_and_reject_unknown_ones() {
        for id in 0..5 {
            let c = Compression::from_id(id);
            assert_eq!(Compression::from_name(c.name()), Some(c));
        }
        assert_eq!(Compression::from_name("lz4"), Some(Compression::Lz4));
        assert_eq!(Compression::from_name("keep"), None);
        assert_eq!(Compression::from_name("LZ4"), None);
        assert_eq!(Compression::Unknown(6).name(), "unknown");
    }

    #[test]
    fn golden_batch_fields() {
        let b = RecordBatch::parse(Bytes::from(hex(GOLDEN_HEX))).unwrap();
        assert_eq!(b.len(), 70);
        assert_eq!(b.base_offset(), 5);
        assert_eq!(b.batch_length(), 58);
        assert_eq!(b.partition_leader_epoch(), 3);
        assert_eq!(b.magic(), 2);
        assert_eq!(b.compression(), Compression::None);
        assert_eq!(b.last_offset(), 5);
        assert_eq!(b.base_timestamp(), 1_700_000_000_000);
        assert_eq!(b.max_timestamp(), 1_700_000_000_000);
        assert_eq!((b.producer_id(), b.producer_epoch(), b.base_sequence()), (1000, 2, 7));
        assert_eq!(b.record_count(), 1);
        assert!(!b.has_offset_gaps() && !b.is_empty_batch());
        assert_eq!(b.payload().len(), 9);
        b.verify_crc().unwrap();
    }

    #[test]
    fn parse_rejects_short_bad_magic_and_length() {
        let good = hex(GOLDEN_HEX);
        let err = RecordBatch::parse(Bytes::from(good[..60].to_vec())).unwrap_err();
        assert_eq!(err, BatchError::TooShort { len: 60, min: 61 });

        let mut bad_magic = good.clone();
        bad_magic[16] = 1;
        let err = RecordBatch::parse(Bytes::from(bad_magic)).unwrap_err();
        assert_eq!(err, BatchError::BadMagic { offset: 5, magic: 1 });

        let mut extra = good.clone();
        extra.push(0);
        let err = RecordBatch::parse(Bytes::from(extra)).unwrap_err();
        assert_eq!(
            err,
            BatchError::LengthMismatch {
                offset: 5,
                batch_length: 58,
                actual: 59
            }
        );

        let mut negative = good;
        negative[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            RecordBatch::parse(Bytes::from(negative)),
            Err(BatchError::LengthMismatch { batch_length: -1, .. })
        ));
    }

    #[test]
    fn crc_mismatch_detected() {
        let mut bytes = hex(GOLDEN_HEX);
        *bytes.last_mut().unwrap() ^= 1;
        let b = RecordBatch::parse(Bytes::from(bytes)).unwrap();
        let err = b.verify_crc().unwrap_err();
        assert!(matches!(
            err,
            BatchError::CrcMismatch {
                base_offset: 5,
                expected: 0xe8e3_fa1f,
                ..
            }
        ));
    }

    #[test]
    fn attribute_bits() {
        let a = Attributes(0x0004 | Attributes::TRANSACTIONAL | Attributes::CONTROL);
        assert_eq!(a.compression(), Compression::Zstd);
        assert!(a.is_transactional() && a.is_control());
        assert!(!a.has_log_append_time() && !a.has_delete_horizon());
        assert!(Attributes(0x48).has_log_append_time() && Attributes(0x48).has_delete_horizon());
        assert_eq!(Attributes(0x07).compression(), Compression::Unknown(7));
        assert_eq!(Attributes(0x33).with_compression(Compression::Gzip), Attributes(0x31));
        for id in 0..8 {
            assert_eq!(Compression::from_id(id).id(), id);
        }
    }

    #[test]
    fn payload_is_zero_copy() {
        let bytes = Bytes::from(hex(GOLDEN_HEX));
        let b = RecordBatch::parse(bytes.clone()).unwrap();
        assert_eq!(b.payload().as_ptr(), bytes[HEADER_LEN..].as_ptr());
        assert_eq!(b.header()[..], bytes[..HEADER_LEN]);
    }
}
