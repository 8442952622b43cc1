//! A strict, independent validator for the record batches kferry produces.
//!
//! [`validate_produced_batch`] applies the rules a stock Apache Kafka broker (2.3+)
//! enforces on a Produce v3+ partition, plus the habits of a correct Java producer
//! that brokers happen to tolerate (exact `-1` for null, record attributes 0,
//! `maxTimestamp` equal to the largest record timestamp). It decompresses the payload
//! (gzip, snappy in xerial framing or raw, lz4 frame, zstd) and decodes every record.
//!
//! The crate deliberately does not depend on kferry: it is written from Kafka's rules,
//! not from kferry's code, so the two can check each other. It also offers
//! [`craft`] (hand-made batches, valid or not), [`codec::compress`] (payloads as a Java
//! producer compresses them), [`golden`] (hand-written hex vectors), [`legacy`] (v0/v1
//! message sets as old brokers stored them) and [`fake`], a fake source broker that serves
//! whatever log bytes a test gives it, for edge cases no real broker here can produce.
//!
//! # References
//!
//! * Kafka `storage/.../log/LogValidator.java` (`validateBatch`, `validateRecord`,
//!   `validateTimestamp`) and `UnifiedLog.analyzeAndValidateRecords` (CRC, one batch)
//! * Kafka `clients/.../record/DefaultRecordBatch.java`, `DefaultRecord.java`
//! * KIP-98 (v2 format, idempotence), KIP-32 (timestamps), KIP-110 (zstd)

#![deny(unsafe_code)]

pub mod codec;
pub mod craft;
pub mod fake;
pub mod golden;
pub mod header;
pub mod legacy;
mod records;
mod violation;

pub use header::Header;
pub use violation::Violation;

/// Header fields a test expects; `None` accepts any value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expect {
    /// Expected `producerId`.
    pub producer_id: Option<i64>,
    /// Expected `producerEpoch`.
    pub producer_epoch: Option<i16>,
    /// Expected `baseSequence`.
    pub base_sequence: Option<i32>,
}

/// What a valid batch holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    /// `recordCount` (equal to `records.len()`).
    pub record_count: i32,
    /// Codec id, attribute bits 0-2.
    pub compression: u8,
    /// Every record, decompressed and decoded.
    pub records: Vec<ValidatedRecord>,
}

impl BatchSummary {
    /// A compacted target rejects records without a key (`LogValidator.validateKey`).
    pub fn check_keyed(&self) -> Result<(), Violation> {
        match self.records.iter().position(|r| r.key.is_none()) {
            Some(index) => Err(Violation::MissingKey { index }),
            None => Ok(()),
        }
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedRecord {
    /// offsetDelta (equal to the record's index).
    pub offset_delta: i32,
    /// Absolute timestamp: baseTimestamp + timestampDelta (-1 for none).
    pub timestamp: i64,
    /// Key, `None` for null.
    pub key: Option<Vec<u8>>,
    /// Value, `None` for null.
    pub value: Option<Vec<u8>>,
    /// Headers in wire order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Checks that `batch` is exactly one v2 batch a Kafka broker accepts from a
/// (non-transactional) producer, and that it matches `expect`.
///
/// Returns the first rule broken, checking framing, then the header, then the CRC,
/// then the records.
pub fn validate_produced_batch(batch: &[u8], expect: &Expect) -> Result<BatchSummary, Violation> {
    let h = Header::read(batch)?;
    header::check_framing(&h, batch.len())?;
    header::check_identity(&h)?;
    let computed = crc32c::crc32c(&batch[header::CRC_START..]);
    if computed != h.crc {
        return Err(Violation::CrcMismatch {
            stored: h.crc,
            computed,
        });
    }
    header::check_attributes(&h)?;
    header::check_count(&h)?;
    header::check_producer(&h)?;
    header::check_expected(&h, expect)?;

    let raw = codec::decompress(h.codec(), &batch[header::HEADER_LEN..])?;
    let records = records::decode_all(&h, &raw)?;
    records::check_max_timestamp(&h, &records)?;
    Ok(BatchSummary {
        record_count: h.record_count,
        compression: h.codec(),
        records,
    })
}

#[cfg(test)]
mod tests;
