//! Hand-crafting v2 batches field by field, including invalid ones, independently of
//! kferry's own encoder. Every field is public and nothing is derived unless asked, so
//! a test can break exactly one rule.
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecordBatch.java` (`writeHeader`)
//! * Kafka `clients/.../record/DefaultRecord.java` (`writeTo`)

use crate::header::{CRC_START, HEADER_LEN};

/// A v2 batch as plain fields plus a raw (possibly compressed) records section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CraftedBatch {
    /// baseOffset.
    pub base_offset: i64,
    /// batchLength; `None` writes the correct value.
    pub batch_length: Option<i32>,
    /// partitionLeaderEpoch.
    pub partition_leader_epoch: i32,
    /// magic.
    pub magic: i8,
    /// crc; `None` writes the correct CRC-32C.
    pub crc: Option<u32>,
    /// attributes.
    pub attributes: u16,
    /// lastOffsetDelta.
    pub last_offset_delta: i32,
    /// baseTimestamp.
    pub base_timestamp: i64,
    /// maxTimestamp.
    pub max_timestamp: i64,
    /// producerId.
    pub producer_id: i64,
    /// producerEpoch.
    pub producer_epoch: i16,
    /// baseSequence.
    pub base_sequence: i32,
    /// recordCount.
    pub record_count: i32,
    /// The records section exactly as written after the header.
    pub records: Vec<u8>,
}

impl CraftedBatch {
    /// A valid, non-idempotent batch of `values.len()` keyless records, offset deltas
    /// 0.., timestamp deltas 0, base timestamp 1_700_000_000_000.
    pub fn valid(values: &[&[u8]]) -> Self {
        let records = values
            .iter()
            .enumerate()
            .flat_map(|(i, v)| record(i as i32, 0, None, Some(v), &[]))
            .collect();
        let count = values.len() as i32;
        CraftedBatch {
            base_offset: 0,
            batch_length: None,
            partition_leader_epoch: -1,
            magic: 2,
            crc: None,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: count,
            records,
        }
    }

    /// A valid batch at `base_offset` of one record per `(key, value)`, offset deltas 0..,
    /// every record at `timestamp`.
    pub fn keyed(base_offset: i64, timestamp: i64, records: &[(&[u8], &[u8])]) -> Self {
        let mut batch = CraftedBatch::valid(&[]);
        batch.records = records
            .iter()
            .enumerate()
            .flat_map(|(i, (k, v))| record(i as i32, 0, Some(k), Some(v), &[]))
            .collect();
        batch.base_offset = base_offset;
        batch.last_offset_delta = records.len() as i32 - 1;
        batch.record_count = records.len() as i32;
        batch.base_timestamp = timestamp;
        batch.max_timestamp = timestamp;
        batch
    }

    /// The batch bytes.
    pub fn encode(&self) -> Vec<u8> {
        let len = HEADER_LEN + self.records.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        let batch_length = self.batch_length.unwrap_or((len - 12) as i32);
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(self.magic as u8);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&self.last_offset_delta.to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.record_count.to_be_bytes());
        out.extend_from_slice(&self.records);
        let crc = self.crc.unwrap_or_else(|| crc32c::crc32c(&out[CRC_START..]));
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

/// One encoded record (length varint included) with attributes 0.
pub fn record(
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) -> Vec<u8> {
    let mut body = vec![0u8];
    varlong(&mut body, timestamp_delta);
    varint(&mut body, offset_delta);
    nullable(&mut body, key);
    nullable(&mut body, value);
    varint(&mut body, headers.len() as i32);
    for (k, v) in headers {
        varint(&mut body, k.len() as i32);
        body.extend_from_slice(k.as_bytes());
        nullable(&mut body, *v);
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    varint(&mut out, body.len() as i32);
    out.extend_from_slice(&body);
    out
}

/// Appends a zigzag varint.
pub fn varint(out: &mut Vec<u8>, value: i32) {
    unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends a zigzag varlong.
pub fn varlong(out: &mut Vec<u8>, value: i64) {
    unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => varint(out, -1),
        Some(b) => {
            varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}
