//! The v2 batch header, read field by field, and the header rules of the produce path.
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecordBatch.java` (field offsets, attribute bits)
//! * Kafka `storage/.../log/LogValidator.java` (`validateBatch`)
//! * KIP-98 (producer fields), KIP-534 (delete horizon bit)

use crate::{Expect, Violation};

/// Size of the v2 batch header.
pub const HEADER_LEN: usize = 61;
/// First byte covered by the CRC (the attributes).
pub const CRC_START: usize = 21;

/// Every field of a v2 batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Offset 0, i64.
    pub base_offset: i64,
    /// Offset 8, i32.
    pub batch_length: i32,
    /// Offset 12, i32.
    pub partition_leader_epoch: i32,
    /// Offset 16, i8.
    pub magic: i8,
    /// Offset 17, u32.
    pub crc: u32,
    /// Offset 21, i16 (kept unsigned here for bit tests).
    pub attributes: u16,
    /// Offset 23, i32.
    pub last_offset_delta: i32,
    /// Offset 27, i64.
    pub base_timestamp: i64,
    /// Offset 35, i64.
    pub max_timestamp: i64,
    /// Offset 43, i64.
    pub producer_id: i64,
    /// Offset 51, i16.
    pub producer_epoch: i16,
    /// Offset 53, i32.
    pub base_sequence: i32,
    /// Offset 57, i32.
    pub record_count: i32,
}

impl Header {
    /// Reads the header of `batch`; needs at least 61 bytes.
    pub fn read(batch: &[u8]) -> Result<Header, Violation> {
        let h: &[u8; HEADER_LEN] = batch
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(Violation::TooShort { len: batch.len() })?;
        let be = |at: usize, n: usize| h[at..at + n].iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        Ok(Header {
            base_offset: be(0, 8) as i64,
            batch_length: be(8, 4) as u32 as i32,
            partition_leader_epoch: be(12, 4) as u32 as i32,
            magic: h[16] as i8,
            crc: be(17, 4) as u32,
            attributes: be(21, 2) as u16,
            last_offset_delta: be(23, 4) as u32 as i32,
            base_timestamp: be(27, 8) as i64,
            max_timestamp: be(35, 8) as i64,
            producer_id: be(43, 8) as i64,
            producer_epoch: be(51, 2) as u16 as i16,
            base_sequence: be(53, 4) as u32 as i32,
            record_count: be(57, 4) as u32 as i32,
        })
    }

    /// Codec id, attribute bits 0-2.
    pub fn codec(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }
}

/// `12 + batchLength` must be exactly the bytes given.
pub fn check_framing(header: &Header, len: usize) -> Result<(), Violation> {
    let declared = usize::try_from(header.batch_length).ok().map(|l| l + 12);
    match declared {
        Some(total) if total >= HEADER_LEN && total == len => Ok(()),
        Some(total) if total >= HEADER_LEN && total < len => Err(Violation::TrailingBytes { extra: len - total }),
        _ => Err(Violation::LengthMismatch {
            batch_length: header.batch_length,
            len,
        }),
    }
}

/// Magic and baseOffset, as a producer writes them.
pub fn check_identity(header: &Header) -> Result<(), Violation> {
    if header.magic != 2 {
        return Err(Violation::BadMagic { magic: header.magic });
    }
    if header.base_offset != 0 {
        return Err(Violation::NonZeroBaseOffset {
            base_offset: header.base_offset,
        });
    }
    Ok(())
}

/// Offset range and count (`LogValidator.validateBatch`).
pub fn check_count(header: &Header) -> Result<(), Violation> {
    if header.record_count <= 0 {
        return Err(Violation::NoRecords {
            record_count: header.record_count,
        });
    }
    if i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count) {
        return Err(Violation::OffsetRangeMismatch {
            last_offset_delta: header.last_offset_delta,
            record_count: header.record_count,
        });
    }
    Ok(())
}

/// Attribute bits a producer may set outside a transaction: only the codec.
pub fn check_attributes(header: &Header) -> Result<(), Violation> {
    let a = header.attributes;
    if a & 0x20 != 0 {
        return Err(Violation::ControlBit);
    }
    if a & 0x10 != 0 {
        return Err(Violation::TransactionalBit);
    }
    if a & 0x08 != 0 {
        return Err(Violation::LogAppendTimeBit);
    }
    if a & 0x40 != 0 {
        return Err(Violation::DeleteHorizonBit);
    }
    if a & 0xFF80 != 0 {
        return Err(Violation::ReservedAttributeBits { attributes: a });
    }
    if header.codec() > 4 {
        return Err(Violation::UnknownCodec { codec: header.codec() });
    }
    Ok(())
}

/// Producer id, epoch and sequence must be all set or all -1.
pub fn check_producer(header: &Header) -> Result<(), Violation> {
    let (id, epoch, sequence) = (header.producer_id, header.producer_epoch, header.base_sequence);
    match id {
        -1 if epoch != -1 || sequence != -1 => Err(Violation::StrayProducerFields {
            producer_epoch: epoch,
            base_sequence: sequence,
        }),
        -1 => Ok(()),
        id if id < -1 => Err(Violation::InvalidProducerId { producer_id: id }),
        id if epoch < 0 => Err(Violation::InvalidProducerEpoch {
            producer_id: id,
            producer_epoch: epoch,
        }),
        id if sequence < 0 => Err(Violation::InvalidSequence {
            producer_id: id,
            base_sequence: sequence,
        }),
        _ => Ok(()),
    }
}

/// The fields a test pinned in `expect`.
pub fn check_expected(header: &Header, expect: &Expect) -> Result<(), Violation> {
    let pairs = [
        ("producerId", expect.producer_id, header.producer_id),
        (
            "producerEpoch",
            expect.producer_epoch.map(i64::from),
            i64::from(header.producer_epoch),
        ),
        (
            "baseSequence",
            expect.base_sequence.map(i64::from),
            i64::from(header.base_sequence),
        ),
    ];
    for (field, expected, actual) in pairs {
        if let Some(expected) = expected.filter(|&e| e != actual) {
            return Err(Violation::Unexpected {
                field,
                expected,
                actual,
            });
        }
    }
    Ok(())
}
