//! Encoding legacy message sets (magic v0 and v1) as old Kafka brokers stored them,
//! independently of kferry's decoder, for the fake source broker and for tests.
//!
//! A message-set entry is
//!
//! ```text
//! offset      int64   absolute; for a compressed wrapper, the offset of its last inner message
//! size        int32   bytes after this field
//! crc         uint32  CRC-32 (IEEE, as java.util.zip.CRC32) of magic .. end of value
//! magic       int8    0 or 1
//! attributes  int8    bits 0-2 codec, bit 3 (v1 only) LogAppendTime
//! timestamp   int64   v1 only
//! key         int32 length (-1 = null) + bytes
//! value       int32 length (-1 = null) + bytes
//! ```
//!
//! A compressed entry is a *wrapper* whose value is the compressed message set of its
//! inner messages. As a broker stores them ([`wrapper_entry`]):
//!
//! * v0 wrappers hold inner messages with absolute offsets;
//! * v1 wrappers hold relative inner offsets `0..n` (KIP-31), the wrapper offset is the
//!   absolute offset of the last inner message, and the wrapper timestamp is the largest
//!   inner timestamp (CreateTime) or the append time (LogAppendTime, [`Wrapper::log_append_time`]);
//! * gzip is one gzip member, snappy uses the xerial framing of the Java client, lz4 is an
//!   LZ4 frame whose header checksum is *wrong* under magic 0 (pre-KIP-57 clients hashed
//!   the frame magic too) and right under magic 1. zstd never appears in legacy formats.
//!
//! # References
//!
//! * Kafka `clients/.../record/LegacyRecord.java` (layout, CRC, `computeAttributes`)
//! * Kafka `clients/.../record/MemoryRecordsBuilder.java` (wrapper offset and timestamp)
//! * Kafka `clients/.../compress/KafkaLZ4BlockOutputStream.java`
//!   (`useBrokenFlagDescriptorChecksum` for magic 0)
//! * KIP-31 (relative offsets), KIP-32 (v1 timestamps), KIP-57 (lz4 checksum)

use crate::codec::{self, id};

/// Attribute bit 3 (v1): the timestamp is LogAppendTime.
pub const LOG_APPEND_TIME: u8 = 0x08;
/// The timestamp v0 messages are given by up-conversion (`RecordBatch.NO_TIMESTAMP`).
pub const NO_TIMESTAMP: i64 = -1;

/// One message to encode: a timestamp (ignored by magic 0), a key and a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyRecord {
    /// CreateTime timestamp (written by magic 1 only).
    pub timestamp: i64,
    /// Key, `None` for null.
    pub key: Option<Vec<u8>>,
    /// Value, `None` for null.
    pub value: Option<Vec<u8>>,
}

impl LegacyRecord {
    /// A record with the given timestamp, key and value.
    pub fn new(timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> LegacyRecord {
        LegacyRecord {
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
        }
    }
}

/// One message (the bytes after the log overhead), CRC included.
pub fn message(magic: u8, attributes: u8, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u8> {
    assert!(magic <= 1, "legacy magic is 0 or 1, not {magic}");
    let mut body = vec![magic, attributes];
    if magic == 1 {
        body.extend_from_slice(&timestamp.to_be_bytes());
    }
    for field in [key, value] {
        match field {
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(bytes) => {
                body.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                body.extend_from_slice(bytes);
            }
        }
    }
    let mut out = crc32_ieee(&body).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// A whole entry: `offset`, size, then `message`.
pub fn entry(offset: i64, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + message.len());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(message.len() as i32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Uncompressed entries, one per record, at offsets `first_offset..`.
pub fn plain_entries(magic: u8, first_offset: i64, records: &[LegacyRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let m = message(magic, 0, r.timestamp, r.key.as_deref(), r.value.as_deref());
        out.extend(entry(first_offset + i as i64, &m));
    }
    out
}

/// A compressed wrapper entry as a broker stores it; see the module docs.
#[derive(Debug, Clone)]
pub struct Wrapper<'a> {
    /// 0 or 1.
    pub magic: u8,
    /// [`id::GZIP`], [`id::SNAPPY`] or [`id::LZ4`].
    pub codec: u8,
    /// Absolute offset of the first inner message; the others follow one by one.
    pub first_offset: i64,
    /// The inner messages.
    pub records: &'a [LegacyRecord],
    /// v1 only: mark the wrapper LogAppendTime with this timestamp (inner messages then
    /// read as this timestamp); `None` writes CreateTime and the largest inner timestamp.
    pub log_append_time: Option<i64>,
}

impl Wrapper<'_> {
    /// The whole wrapper entry.
    pub fn encode(&self) -> Vec<u8> {
        assert!(!self.records.is_empty(), "a wrapper holds at least one message");
        assert!(
            matches!(self.codec, id::GZIP | id::SNAPPY | id::LZ4),
            "legacy codecs are gzip, snappy and lz4, not {}",
            self.codec
        );
        let last_offset = self.first_offset + self.records.len() as i64 - 1;
        let mut inner = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            let stored = match self.magic {
                0 => self.first_offset + i as i64,
                _ => i as i64,
            };
            let m = message(self.magic, 0, r.timestamp, r.key.as_deref(), r.value.as_deref());
            inner.extend(entry(stored, &m));
        }
        let mut value = codec::compress(self.codec, &inner);
        if self.codec == id::LZ4 && self.magic == 0 {
            break_lz4_header_checksum(&mut value);
        }
        let (attributes, timestamp) = match self.log_append_time {
            Some(t) => (self.codec | LOG_APPEND_TIME, t),
            None => (self.codec, self.records.iter().map(|r| r.timestamp).max().unwrap_or(-1)),
        };
        entry(
            last_offset,
            &message(self.magic, attributes, timestamp, None, Some(&value)),
        )
    }
}

/// A CreateTime wrapper entry of `records` at `first_offset..` (see [`Wrapper`]).
pub fn wrapper_entry(magic: u8, codec: u8, first_offset: i64, records: &[LegacyRecord]) -> Vec<u8> {
    Wrapper {
        magic,
        codec,
        first_offset,
        records,
        log_append_time: None,
    }
    .encode()
}

/// Rewrites an LZ4 frame's header checksum the way pre-KIP-57 Kafka clients computed it:
/// over the frame magic as well as the descriptor (`(xxh32(bytes[0..6]) >> 8) & 0xff`).
/// Expects the 7-byte header of a frame without content size or dictionary id.
pub fn break_lz4_header_checksum(frame: &mut [u8]) {
    assert_eq!(frame[4] & 0x09, 0, "frame with content size or dictionary id");
    frame[6] = (twox_hash::XxHash32::oneshot(0, &frame[..6]) >> 8) as u8;
}

/// CRC-32 (IEEE 802.3), as `java.util.zip.CRC32` and zlib compute it.
pub fn crc32_ieee(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout_and_crc() {
        // The empty v0 and v1 messages of IBM/sarama `message_test.go` (real CRCs).
        assert_eq!(
            message(0, 0, 0, None, None),
            [167, 236, 104, 3, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]
        );
        assert_eq!(
            message(1, 0, 0, None, None),
            [204, 47, 121, 217, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]
        );
        let e = entry(7, &message(1, 0, 5, Some(b"k"), Some(b"vv")));
        assert_eq!(&e[..8], &7i64.to_be_bytes());
        assert_eq!(i32::from_be_bytes(e[8..12].try_into().unwrap()) as usize, e.len() - 12);
    }

    #[test]
    fn wrappers_decompress_to_their_inner_set() {
        let records = [
            LegacyRecord::new(10, Some(b"a"), Some(b"1")),
            LegacyRecord::new(30, None, Some(b"2")),
        ];
        for magic in [0u8, 1] {
            for codec in [id::GZIP, id::SNAPPY, id::LZ4] {
                let w = wrapper_entry(magic, codec, 100, &records);
                assert_eq!(&w[..8], &101i64.to_be_bytes(), "wrapper offset = last inner");
                let attributes = w[17];
                assert_eq!(attributes, codec);
                let value_at = 12 + if magic == 0 { 14 } else { 22 };
                let mut value = w[value_at..].to_vec();
                if codec == id::LZ4 && magic == 0 {
                    // A strict decoder refuses the pre-KIP-57 checksum; fixed, it decodes.
                    assert!(codec::decompress(codec, &value).is_err());
                    value[6] = (twox_hash::XxHash32::oneshot(0, &value[4..6]) >> 8) as u8;
                }
                let inner = codec::decompress(codec, &value).unwrap();
                let first = if magic == 0 { 100 } else { 0 };
                assert_eq!(&inner[..8], &(first as i64).to_be_bytes(), "magic {magic}");
            }
        }
    }
}
