//! Strict decoding of the (decompressed) records section of a produced batch.
//!
//! Stricter than a broker on purpose: Kafka reads any negative key or value length as
//! null and ignores the record attributes byte, but a correct producer writes exactly
//! -1 and 0, so anything else here is a violation.
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecord.java` (`readFrom`, `sizeInBytes`)
//! * Kafka `clients/.../utils/ByteUtils.java` (zigzag varints, at most 5 / 10 bytes)
//! * Kafka `clients/.../producer/internals/ProducerBatch` / `MemoryRecordsBuilder`
//!   (offset deltas 0..n-1, negative timestamps other than -1 refused)

use crate::header::Header;
use crate::{ValidatedRecord, Violation};

/// Decodes exactly `header.record_count` records from `raw` and checks each one.
pub fn decode_all(header: &Header, raw: &[u8]) -> Result<Vec<ValidatedRecord>, Violation> {
    let declared = header.record_count;
    let count = usize::try_from(declared).unwrap_or(0);
    // Each record takes at least 7 bytes: never trust the count for allocation.
    let mut records = Vec::with_capacity(count.min(raw.len() / 7));
    let mut reader = Reader {
        buf: raw,
        pos: 0,
        index: 0,
    };
    while records.len() < count {
        if reader.pos == raw.len() {
            return Err(Violation::MissingRecords {
                declared,
                found: records.len(),
            });
        }
        reader.index = records.len();
        records.push(reader.record(header)?);
    }
    if reader.pos != raw.len() {
        return Err(Violation::TrailingRecordBytes {
            remaining: raw.len() - reader.pos,
        });
    }
    Ok(records)
}

/// Checks `maxTimestamp` against the records (CreateTime).
pub fn check_max_timestamp(header: &Header, records: &[ValidatedRecord]) -> Result<(), Violation> {
    let expected = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(header.base_timestamp);
    if header.max_timestamp != expected {
        return Err(Violation::MaxTimestampMismatch {
            max_timestamp: header.max_timestamp,
            expected,
        });
    }
    Ok(())
}

/// Record headers in wire order.
type Headers = Vec<(String, Option<Vec<u8>>)>;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    index: usize,
}

impl Reader<'_> {
    fn malformed(&self, reason: &'static str) -> Violation {
        Violation::MalformedRecord {
            index: self.index,
            reason,
        }
    }

    fn record(&mut self, header: &Header) -> Result<ValidatedRecord, Violation> {
        let declared = i64::from(self.varint()?);
        let index = self.index;
        let available = self.buf.len() - self.pos;
        let overrun = |available| Violation::RecordOverrun {
            index,
            declared,
            available,
        };
        let len = usize::try_from(declared)
            .ok()
            .filter(|&len| len <= available)
            .ok_or(overrun(available))?;
        let mut body = Reader {
            buf: &self.buf[..self.pos + len],
            pos: self.pos,
            index,
        };
        let record = body.fields(header).map_err(|v| match v {
            Violation::MalformedRecord { reason: OVERRUN, .. } => overrun(len),
            other => other,
        })?;
        if body.pos != self.pos + len {
            let actual = body.pos - self.pos;
            return Err(Violation::RecordLengthMismatch {
                index,
                declared,
                actual,
            });
        }
        self.pos += len;
        Ok(record)
    }

    fn fields(&mut self, header: &Header) -> Result<ValidatedRecord, Violation> {
        let attributes = self.bytes(1)?[0];
        if attributes != 0 {
            return Err(Violation::RecordAttributes {
                index: self.index,
                attributes,
            });
        }
        let timestamp_delta = self.varlong()?;
        let offset_delta = self.varint()?;
        if usize::try_from(offset_delta).ok() != Some(self.index) {
            return Err(Violation::OffsetDeltaNotConsecutive {
                index: self.index,
                offset_delta,
            });
        }
        let timestamp = self.timestamp(header.base_timestamp, timestamp_delta)?;
        let key = self.nullable()?;
        let value = self.nullable()?;
        let headers = self.headers()?;
        Ok(ValidatedRecord {
            offset_delta,
            timestamp,
            key,
            value,
            headers,
        })
    }

    fn timestamp(&self, base: i64, delta: i64) -> Result<i64, Violation> {
        match base.checked_add(delta) {
            Some(t) if t >= 0 || t == -1 => Ok(t),
            Some(t) => Err(Violation::InvalidTimestamp {
                index: self.index,
                timestamp: t,
            }),
            None => Err(self.malformed("baseTimestamp + timestampDelta overflows")),
        }
    }

    fn headers(&mut self) -> Result<Headers, Violation> {
        let count = self.varint()?;
        let left = self.buf.len() - self.pos;
        // A header takes at least two bytes (key length and value length).
        let sane = usize::try_from(count).ok().filter(|&c| c <= left / 2);
        let count = sane.ok_or(Violation::BadHeaderCount {
            index: self.index,
            count,
        })?;
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let key_len = usize::try_from(self.varint()?).map_err(|_| self.malformed("negative header key length"))?;
            let not_utf8 = self.malformed("header key is not UTF-8");
            let key = std::str::from_utf8(self.bytes(key_len)?)
                .map_err(|_| not_utf8)?
                .to_owned();
            headers.push((key, self.nullable()?));
        }
        Ok(headers)
    }

    fn nullable(&mut self) -> Result<Option<Vec<u8>>, Violation> {
        match self.varint()? {
            -1 => Ok(None),
            len if len < -1 => Err(self.malformed("length below -1 (null is exactly -1)")),
            len => Ok(Some(self.bytes(len as usize)?.to_vec())),
        }
    }

    fn bytes(&mut self, len: usize) -> Result<&[u8], Violation> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.buf.len());
        let end = end.ok_or(self.malformed(OVERRUN))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn varint(&mut self) -> Result<i32, Violation> {
        let raw = self.unsigned(5)?;
        let raw = u32::try_from(raw).map_err(|_| self.malformed("varint exceeds 32 bits"))?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, Violation> {
        let raw = self.unsigned(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn unsigned(&mut self, max_bytes: u32) -> Result<u64, Violation> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.bytes(1)?[0];
            value |= u64::from(byte & 0x7F).checked_shl(7 * i).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("varint is too long"))
    }
}

/// Reason used internally when a field runs past its record's declared length.
const OVERRUN: &str = "field runs past the end of the record";
