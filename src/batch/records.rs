//! Records inside an uncompressed v2 batch: [`Record`], its encoding, and
//! [`decode_records`]. Whole batches are built by [`super::BatchBuilder`].
//!
//! The fast path never looks inside a batch. This module serves the slow path (fixing
//! compacted batches, up-converting) and every test and bench in the project that needs
//! a realistic batch. A v2 record is:
//!
//! ```text
//! length          varint  bytes after this field
//! attributes      int8    unused, 0
//! timestampDelta  varlong relative to the batch's baseTimestamp
//! offsetDelta     varint  relative to the batch's baseOffset
//! keyLength       varint  -1 for a null key
//! key             bytes
//! valueLength     varint  -1 for a null value
//! value           bytes
//! headerCount     varint
//! headers         { keyLength varint, key utf8, valueLength varint, value bytes }*
//! ```
//!
//! Varints are zigzag-encoded (protobuf style). Decoding never trusts a length from the
//! wire for allocation: capacities are capped by the bytes that remain.
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecord.java` (record layout, `readFrom` checks)
//! * Kafka `clients/.../utils/ByteUtils.java` (`readVarint`, `readVarlong`)
//! * KIP-98 (v2 records), KIP-82 (record headers)

use bytes::{BufMut, Bytes, BytesMut};

use super::{field, BatchError, Compression, RecordBatch, HEADER_LEN};

/// Smallest encoded record: length, attributes, timestampDelta, offsetDelta, keyLength,
/// valueLength and headerCount, one byte each.
const MIN_RECORD_LEN: usize = 7;

/// One v2 record, with key, value and header values sharing the batch's buffer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Offset relative to the batch's `baseOffset`.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's `baseTimestamp`.
    pub timestamp_delta: i64,
    /// Key, `None` for a null key.
    pub key: Option<Bytes>,
    /// Value, `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in wire order; keys may repeat.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl Record {
    /// A record with no headers and timestamp delta 0.
    pub fn new(offset_delta: i32, key: Option<Bytes>, value: Option<Bytes>) -> Self {
        Record {
            offset_delta,
            key,
            value,
            ..Record::default()
        }
    }
    /// This record with `timestamp_delta` set.
    pub fn with_timestamp_delta(mut self, timestamp_delta: i64) -> Self {
        self.timestamp_delta = timestamp_delta;
        self
    }
    /// This record with one more header.
    pub fn with_header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((key.into(), value));
        self
    }

    /// Encoded size, excluding the leading length varint.
    pub(super) fn body_len(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| varint_len(wire_len(k.len())) + k.len() + nullable_len(v.as_ref()))
            .sum();
        1 + varlong_len(self.timestamp_delta)
            + varint_len(self.offset_delta)
            + nullable_len(self.key.as_ref())
            + nullable_len(self.value.as_ref())
            + varint_len(wire_len(self.headers.len()))
            + headers
    }

    /// Appends the record, length prefix included, to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        put_varint(out, wire_len(self.body_len()));
        out.put_u8(0); // attributes
        put_varlong(out, self.timestamp_delta);
        put_varint(out, self.offset_delta);
        put_nullable(out, self.key.as_ref());
        put_nullable(out, self.value.as_ref());
        put_varint(out, wire_len(self.headers.len()));
        for (key, value) in &self.headers {
            put_varint(out, wire_len(key.len()));
            out.put_slice(key.as_bytes());
            put_nullable(out, value.as_ref());
        }
    }
}

/// Decodes the records of an uncompressed batch.
///
/// Fails with [`BatchError::Compressed`] for a compressed batch, and with
/// [`BatchError::Corrupt`] (position relative to the batch start) when a record is
/// malformed, when fewer than `recordCount` records are present, or when bytes remain
/// after the last one. Zero-copy: keys and values are slices of the batch.
pub fn decode_records(batch: &RecordBatch) -> Result<Vec<Record>, BatchError> {
    let compression = batch.compression();
    if compression != Compression::None {
        return Err(BatchError::Compressed {
            base_offset: batch.base_offset(),
            compression,
        });
    }
    decode_payload(batch.payload(), batch.record_count(), batch.base_offset())
}

/// Decodes `record_count` records from an uncompressed records section (a batch's
/// payload, or a compressed payload once decompressed), as [`decode_records`] does.
/// Error positions are `61 +` the position in `payload`.
pub(crate) fn decode_payload(payload: Bytes, record_count: i32, base_offset: i64) -> Result<Vec<Record>, BatchError> {
    let mut cursor = Cursor::new(payload, base_offset);
    let count =
        usize::try_from(record_count).map_err(|_| cursor.corrupt_at(field::RECORD_COUNT, "negative recordCount"))?;
    let mut records = Vec::with_capacity(count.min(cursor.remaining() / MIN_RECORD_LEN));
    for _ in 0..count {
        records.push(cursor.record()?);
    }
    if cursor.remaining() != 0 {
        return Err(cursor.corrupt("bytes remain after recordCount records"));
    }
    Ok(records)
}

/// Reads records from a payload, reporting positions relative to the batch start.
pub(crate) struct Cursor {
    buf: Bytes,
    pos: usize,
    base_offset: i64,
}

impl Cursor {
    /// A cursor at the start of `payload`, the records section of batch `base_offset`.
    pub(crate) fn new(payload: Bytes, base_offset: i64) -> Self {
        Cursor {
            buf: payload,
            pos: 0,
            base_offset,
        }
    }
    /// Position in the payload.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn corrupt(&self, reason: &'static str) -> BatchError {
        self.corrupt_at(HEADER_LEN + self.pos, reason)
    }
    fn corrupt_at(&self, position: usize, reason: &'static str) -> BatchError {
        BatchError::Corrupt {
            offset: self.base_offset,
            position,
            reason,
        }
    }

    fn record(&mut self) -> Result<Record, BatchError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| self.corrupt("negative record length"))?;
        if len > self.remaining() {
            return Err(self.corrupt("record length exceeds the batch"));
        }
        let end = self.pos + len;
        let mut body = Cursor {
            buf: self.buf.slice(..end),
            pos: self.pos,
            base_offset: self.base_offset,
        };
        let record = body.record_body()?;
        if body.pos != end {
            return Err(body.corrupt("record length does not match its fields"));
        }
        self.pos = end;
        Ok(record)
    }

    fn record_body(&mut self) -> Result<Record, BatchError> {
        let _attributes = self.take(1)?;
        let timestamp_delta = self.varlong()?;
        let offset_delta = self.varint()?;
        let key = self.nullable()?;
        let value = self.nullable()?;
        let count = self.varint()?;
        let count = usize::try_from(count).map_err(|_| self.corrupt("negative header count"))?;
        let mut headers = Vec::with_capacity(count.min(self.remaining() / 2));
        for _ in 0..count {
            headers.push(self.header()?);
        }
        Ok(Record {
            offset_delta,
            timestamp_delta,
            key,
            value,
            headers,
        })
    }

    fn header(&mut self) -> Result<(String, Option<Bytes>), BatchError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| self.corrupt("negative header key length"))?;
        let at = self.pos;
        let raw = self.take(len)?;
        let key =
            String::from_utf8(raw.to_vec()).map_err(|_| self.corrupt_at(HEADER_LEN + at, "header key is not UTF-8"))?;
        Ok((key, self.nullable()?))
    }

    fn nullable(&mut self) -> Result<Option<Bytes>, BatchError> {
        let len = self.varint()?;
        // Kafka reads any negative length as null.
        match usize::try_from(len) {
            Ok(len) => self.take(len).map(Some),
            Err(_) => Ok(None),
        }
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, BatchError> {
        if len > self.remaining() {
            return Err(self.corrupt("field length exceeds the record"));
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    pub(crate) fn varint(&mut self) -> Result<i32, BatchError> {
        let raw = self.unsigned_varint(5)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }
    pub(crate) fn varlong(&mut self) -> Result<i64, BatchError> {
        let raw = self.unsigned_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// Reads an unsigned LEB128 value of at most `max_bytes` bytes; excess high bits of
    /// the last byte are dropped, as Kafka's `ByteUtils` does.
    fn unsigned_varint(&mut self, max_bytes: usize) -> Result<u64, BatchError> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.corrupt("varint runs past the end"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7F).wrapping_shl(7 * i as u32);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.corrupt("varint is too long"))
    }
}

pub(crate) fn put_varint(out: &mut BytesMut, value: i32) {
    put_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}
pub(crate) fn put_varlong(out: &mut BytesMut, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}
fn put_unsigned(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}
fn put_nullable(out: &mut BytesMut, bytes: Option<&Bytes>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, wire_len(b.len()));
            out.put_slice(b);
        }
    }
}

pub(crate) fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}
fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}
fn unsigned_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}
fn nullable_len(bytes: Option<&Bytes>) -> usize {
    bytes.map_or(1, |b| varint_len(wire_len(b.len())) + b.len())
}
/// A length as Kafka's int32; builders panic on > 2 GiB fields, which no batch holds.
pub(super) fn wire_len(len: usize) -> i32 {
    i32::try_from(len).expect("record field longer than i32::MAX")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;
    use proptest::prelude::*;

    fn arb_bytes() -> impl Strategy<Value = Option<Bytes>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from))
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<i32>(),
            any::<i64>(),
            arb_bytes(),
            arb_bytes(),
            proptest::collection::vec(("[a-z\\u{e9}]{0,12}", arb_bytes()), 0..4),
        )
            .prop_map(|(offset_delta, timestamp_delta, key, value, headers)| Record {
                offset_delta,
                timestamp_delta,
                key,
                value,
                headers,
            })
    }

    proptest! {
        #[test]
        fn records_round_trip(records in proptest::collection::vec(arb_record(), 0..20)) {
            let batch = BatchBuilder::new().records(records.clone()).build();
            prop_assert!(batch.verify_crc().is_ok());
            prop_assert_eq!(decode_records(&batch).unwrap(), records);
        }

        #[test]
        fn decode_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..200), count in -2i32..10) {
            let mut bytes = BatchBuilder::new().record_count(count).build().as_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            let batch_length = (bytes.len() - 12) as i32;
            bytes[8..12].copy_from_slice(&batch_length.to_be_bytes());
            let batch = RecordBatch::parse(Bytes::from(bytes)).unwrap();
            let _ = decode_records(&batch);
        }

        #[test]
        fn varint_sizes_match_encoding(v: i32, l: i64) {
            let mut out = BytesMut::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            out.clear();
            put_varlong(&mut out, l);
            prop_assert_eq!(out.len(), varlong_len(l));
        }
    }

    #[test]
    fn decode_errors_carry_positions() {
        // recordCount says 2 but only one record is present.
        let batch = BatchBuilder::new().value("v").record_count(2).build();
        let err = decode_records(&batch).unwrap_err();
        assert!(matches!(err, BatchError::Corrupt { position, .. } if position == batch.len()));
        // Trailing bytes after the declared records.
        let batch = BatchBuilder::new().value("v").value("w").record_count(1).build();
        assert!(matches!(
            decode_records(&batch),
            Err(BatchError::Corrupt {
                reason: "bytes remain after recordCount records",
                ..
            })
        ));
    }

    #[test]
    fn huge_declared_counts_do_not_allocate() {
        let batch = BatchBuilder::new().value("v").record_count(i32::MAX).build();
        assert!(decode_records(&batch).is_err());
    }
}
