//! Legacy message sets (magic v0 and v1): [`decode_legacy`] and [`upconvert`].
//!
//! Old segments may still hold pre-0.11 messages, and Produce v3+ accepts only v2
//! batches, so kferry up-converts them. A message-set entry is
//!
//! ```text
//! offset      int64   absolute; for a v1 wrapper, the offset of its last inner message
//! size        int32   bytes after this field
//! crc         uint32  CRC-32 (IEEE, zlib's) over magic .. end of value
//! magic       int8    0 or 1
//! attributes  int8    bits 0-2 codec, bit 3 (v1) LogAppendTime
//! timestamp   int64   v1 only
//! key         int32 length (negative = null) + bytes
//! value       int32 length (negative = null) + bytes
//! ```
//!
//! A compressed entry is a *wrapper*: its value is a compressed message set of inner
//! messages. Inner offsets are absolute under a v0 wrapper and relative under a v1
//! wrapper (KIP-31): `absolute = wrapper.offset - last_inner.offset + inner.offset`,
//! except that a wrapper offset of 0 (produce data from some librdkafka versions) means
//! "relative offsets are absolute". Inner v1 messages take the wrapper's timestamp when
//! the wrapper says LogAppendTime. Inner messages must not be compressed, and zstd
//! never appears in legacy formats; both are errors, as in Kafka.
//!
//! LZ4 wrappers in magic 0 carry a wrong frame header checksum (pre-KIP-57 clients
//! hashed the frame magic too); Kafka ignores it for magic 0, and so does this module
//! by rewriting it before decoding ([`codec::fix_lz4_header_checksum`]). Magic 1 wrappers
//! are checked strictly.
//!
//! Up-conversion keeps keys, values and timestamps, and adds no headers (v0/v1 have
//! none). v0 has no timestamp: its records get -1 (`NO_TIMESTAMP`), as Kafka's own
//! up-conversion does, and brokers exempt -1 from timestamp validation. A v1 timestamp
//! below -1 (which some clients wrote for "unset") would make the target reject the
//! whole batch (INVALID_TIMESTAMP), so it becomes -1 too.
//!
//! # References
//!
//! * Kafka `clients/.../record/LegacyRecord.java` (layout, CRC, `timestamp()` with the
//!   wrapper's LogAppendTime)
//! * Kafka `clients/.../record/AbstractLegacyRecordBatch.java` (`DeepRecordsIterator`:
//!   relative offsets, the librdkafka zero wrapper offset, nested compression refused)
//! * Kafka `clients/.../compress/Lz4Compression.java`, `Lz4BlockInputStream.java`
//!   (`ignoreFlagDescriptorChecksum` for magic 0)
//! * Kafka `storage/.../log/LogValidator.java` (`convertAndAssignOffsetsNonCompressed`:
//!   up-conversion keeps timestamps; `validateTimestamp` exempts `NO_TIMESTAMP`)
//! * KIP-31 (relative offsets), KIP-32 (v1 timestamps), KIP-57 (lz4 checksum)

use bytes::Bytes;

use super::reencode::{encode_pending, Pending};
use super::{codec, BatchError, Compression, Record, ReencodeOptions, Reencoded, LOG_OVERHEAD, NO_TIMESTAMP};

/// crc, magic, attributes, key length, value length (`LegacyRecord.RECORD_OVERHEAD_V0`).
const MESSAGE_OVERHEAD_V0: usize = 14;
/// Bytes before the key length field, by magic.
const KEY_AT: [usize; 2] = [6, 14];
/// Attribute bits 0-2: codec.
const CODEC_MASK: u8 = 0x07;
/// Attribute bit 3 (v1): LogAppendTime.
const LOG_APPEND_TIME: u8 = 0x08;

/// One message of a legacy message set, after unwrapping compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    /// Absolute offset in the source partition.
    pub offset: i64,
    /// v1 timestamp as a consumer sees it; -1 for v0.
    pub timestamp: i64,
    /// Key, `None` for null.
    pub key: Option<Bytes>,
    /// Value, `None` for null.
    pub value: Option<Bytes>,
}

/// Decodes one or more whole legacy entries (as [`super::BlobIter`] yields them, log
/// overhead included), unwrapping compressed wrappers and checking every CRC.
///
/// `max_out` caps the bytes decompressed, in total, across all wrappers. Error
/// positions are relative to `entry_bytes`, or to the decompressed value for inner
/// messages.
pub fn decode_legacy(entry_bytes: &[u8], max_out: usize) -> Result<Vec<LegacyMessage>, BatchError> {
    let set = Bytes::copy_from_slice(entry_bytes);
    let mut budget = max_out;
    let mut out = Vec::new();
    for message in parse_set(&set)? {
        check_crc(&message, message.offset)?;
        if message.codec() == 0 {
            let offset = message.offset;
            out.push(message.into_legacy(offset, None));
        } else {
            unwrap_into(message, &mut budget, &mut out)?;
        }
    }
    Ok(out)
}

/// Builds v2 batches from decoded legacy messages, which must be in increasing offset
/// order (gaps allowed). See the module docs for timestamps.
pub fn upconvert(messages: &[LegacyMessage], opts: &ReencodeOptions) -> Result<Reencoded, BatchError> {
    let mut pending = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        if i > 0 && m.offset <= messages[i - 1].offset {
            return Err(BatchError::Corrupt {
                offset: m.offset,
                position: 0,
                reason: "legacy message offsets out of order",
            });
        }
        pending.push(Pending {
            record: Record::new(0, m.key.clone(), m.value.clone()),
            timestamp: if m.timestamp < NO_TIMESTAMP {
                NO_TIMESTAMP
            } else {
                m.timestamp
            },
            source_offset: m.offset,
        });
    }
    encode_pending(pending, opts)
}

/// A message as stored, before offsets are made absolute.
#[derive(Debug)]
struct RawMessage {
    /// The entry's offset field.
    offset: i64,
    /// Byte position of the entry in its message set.
    position: usize,
    magic: u8,
    attributes: u8,
    /// The v1 timestamp field; -1 for v0.
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    stored_crc: u32,
    computed_crc: u32,
}

impl RawMessage {
    fn codec(&self) -> u8 {
        self.attributes & CODEC_MASK
    }

    /// This (uncompressed) message at `offset`; `wrapper` is the wrapper's magic,
    /// timestamp and attributes when it came out of one.
    fn into_legacy(self, offset: i64, wrapper: Option<&RawMessage>) -> LegacyMessage {
        let timestamp = match (self.magic, wrapper) {
            (0, _) => NO_TIMESTAMP,
            (_, Some(w)) if w.magic == 1 && w.attributes & LOG_APPEND_TIME != 0 => w.timestamp,
            _ => self.timestamp,
        };
        LegacyMessage {
            offset,
            timestamp,
            key: self.key,
            value: self.value,
        }
    }
}

/// Splits a message set into its messages; every entry must be whole.
fn parse_set(set: &Bytes) -> Result<Vec<RawMessage>, BatchError> {
    let mut messages = Vec::new();
    let mut pos = 0;
    while pos < set.len() {
        let corrupt = |offset, reason| BatchError::Corrupt {
            offset,
            position: pos,
            reason,
        };
        let Some(overhead) = set.get(pos..pos + LOG_OVERHEAD) else {
            return Err(corrupt(-1, "legacy entry cut short"));
        };
        let offset = i64::from_be_bytes(overhead[..8].try_into().expect("8 bytes"));
        let size = i32::from_be_bytes(overhead[8..].try_into().expect("4 bytes"));
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s >= MESSAGE_OVERHEAD_V0)
            .ok_or(corrupt(offset, "legacy message size below the minimum"))?;
        let start = pos + LOG_OVERHEAD;
        if size > set.len() - start {
            return Err(corrupt(offset, "legacy message runs past the message set"));
        }
        messages.push(parse_message(set.slice(start..start + size), offset, pos)?);
        pos = start + size;
    }
    Ok(messages)
}

/// Parses one message (the bytes after its log overhead).
fn parse_message(buf: Bytes, offset: i64, position: usize) -> Result<RawMessage, BatchError> {
    let corrupt = |at: usize, reason| BatchError::Corrupt {
        offset,
        position: position + LOG_OVERHEAD + at,
        reason,
    };
    let magic = buf[4];
    if magic > 1 {
        return Err(BatchError::BadMagic { offset, magic });
    }
    let key_at = KEY_AT[usize::from(magic)];
    let timestamp = match buf.get(6..14) {
        Some(ts) if magic == 1 => i64::from_be_bytes(ts.try_into().expect("8 bytes")),
        _ => NO_TIMESTAMP,
    };
    let (key, value_at) = sized(&buf, key_at).ok_or(corrupt(key_at, "legacy key runs past the message"))?;
    let (value, end) = sized(&buf, value_at).ok_or(corrupt(value_at, "legacy value runs past the message"))?;
    if end != buf.len() {
        return Err(corrupt(end, "bytes remain after the legacy message value"));
    }
    Ok(RawMessage {
        offset,
        position,
        magic,
        attributes: buf[5],
        timestamp,
        key,
        value,
        stored_crc: u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")),
        computed_crc: crc32_ieee(&buf[4..]),
    })
}

/// An int32-length-prefixed field at `at` (negative length: null) and the position
/// after it; `None` if it does not fit.
fn sized(buf: &Bytes, at: usize) -> Option<(Option<Bytes>, usize)> {
    let len = i32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?);
    let start = at + 4;
    match usize::try_from(len) {
        Err(_) => Some((None, start)),
        Ok(len) if len <= buf.len() - start => Some((Some(buf.slice(start..start + len)), start + len)),
        Ok(_) => None,
    }
}

fn check_crc(message: &RawMessage, offset: i64) -> Result<(), BatchError> {
    if message.stored_crc == message.computed_crc {
        return Ok(());
    }
    Err(BatchError::MessageCrcMismatch {
        offset,
        expected: message.stored_crc,
        actual: message.computed_crc,
    })
}

/// Decompresses a wrapper and appends its inner messages with absolute offsets.
fn unwrap_into(wrapper: RawMessage, budget: &mut usize, out: &mut Vec<LegacyMessage>) -> Result<(), BatchError> {
    let corrupt = |reason| BatchError::Corrupt {
        offset: wrapper.offset,
        position: wrapper.position,
        reason,
    };
    let compression = match Compression::from_id(wrapper.codec()) {
        Compression::Zstd => return Err(corrupt("zstd is not allowed in legacy message sets")),
        c => c,
    };
    let value = wrapper
        .value
        .as_ref()
        .ok_or(corrupt("compressed wrapper with a null value"))?;
    let value = match (compression, wrapper.magic) {
        (Compression::Lz4, 0) => codec::fix_lz4_header_checksum(value),
        _ => value[..].into(),
    };
    let raw = codec::decompress(compression, &value, *budget).map_err(|e| e.at_offset(wrapper.offset))?;
    *budget -= raw.len();
    let inner = parse_set(&Bytes::from(raw))?;
    let last = inner
        .last()
        .ok_or(corrupt("compressed wrapper with no inner messages"))?;
    let base = match wrapper.magic {
        0 => 0,
        _ if wrapper.offset == 0 => 0,
        _ if wrapper.offset < last.offset => return Err(corrupt("wrapper offset below its last inner offset")),
        _ => wrapper
            .offset
            .checked_sub(last.offset)
            .ok_or(corrupt("wrapper offset minus inner offset overflows"))?,
    };
    for message in inner {
        let offset = base
            .checked_add(message.offset)
            .ok_or(corrupt("inner offset overflows"))?;
        check_crc(&message, offset)?;
        if message.codec() != 0 {
            return Err(corrupt("inner messages must not be compressed"));
        }
        out.push(message.into_legacy(offset, Some(&wrapper)));
    }
    Ok(())
}

/// CRC-32 (IEEE 802.3, as zlib and `java.util.zip.CRC32`), via flate2.
fn crc32_ieee(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

#[cfg(test)]
mod regression {
    /// fuzz/regressions/legacy_decode/wrapper_offset_minus_inner_offset_overflows: a v1 gzip
    /// wrapper at offset i64::MAX whose inner message has offset -1 must be an error, not an
    /// arithmetic overflow.
    #[test]
    fn wrapper_offset_overflow_is_an_error() {
        let input = include_bytes!("../../fuzz/regressions/legacy_decode/wrapper_offset_minus_inner_offset_overflows");
        assert!(super::decode_legacy(input, 1 << 20).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BlobIter, FetchedEntry};
    use kferry_protocol_tests::{validate_produced_batch, Expect};
    use proptest::prelude::*;

    /// Test-only legacy encoder: one message (after the log overhead), CRC included.
    fn message(magic: u8, attributes: u8, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![magic, attributes];
        if magic == 1 {
            body.extend_from_slice(&timestamp.to_be_bytes());
        }
        for field in [key, value] {
            match field {
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    body.extend_from_slice(b);
                }
            }
        }
        let mut out = crc32_ieee(&body).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    fn entry(offset: i64, message: &[u8]) -> Vec<u8> {
        let mut out = offset.to_be_bytes().to_vec();
        out.extend_from_slice(&(message.len() as i32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    /// A wrapper entry holding `inner` (offset, message) compressed with `codec`; v0 lz4
    /// gets the pre-KIP-57 header checksum, as old Kafka clients wrote it.
    fn wrapper(magic: u8, attributes: u8, offset: i64, timestamp: i64, inner: &[(i64, Vec<u8>)]) -> Vec<u8> {
        let set: Vec<u8> = inner.iter().flat_map(|(o, m)| entry(*o, m)).collect();
        let compression = Compression::from_id(attributes);
        let mut value = codec::compress(compression, &set).unwrap();
        if compression == Compression::Lz4 && magic == 0 {
            value[6] = (codec::xxh32(&value[..6], 0) >> 8) as u8;
        }
        entry(offset, &message(magic, attributes, timestamp, None, Some(&value)))
    }

    fn msg(offset: i64, timestamp: i64, key: Option<&str>, value: Option<&str>) -> LegacyMessage {
        LegacyMessage {
            offset,
            timestamp,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        }
    }

    const MAX: usize = 1 << 20;

    #[test]
    fn plain_v0_and_v1_messages() {
        let mut set = entry(5, &message(0, 0, 0, Some(b"k"), Some(b"v")));
        set.extend(entry(6, &message(1, 0, 1_600_000_000_000, None, Some(b""))));
        set.extend(entry(9, &message(1, 0, -1, Some(b""), None)));
        let got = decode_legacy(&set, MAX).unwrap();
        assert_eq!(
            got,
            [
                msg(5, -1, Some("k"), Some("v")),
                msg(6, 1_600_000_000_000, None, Some("")),
                msg(9, -1, Some(""), None)
            ]
        );
    }

    #[test]
    fn wrappers_of_every_legacy_codec() {
        for codec in [1u8, 2, 3] {
            for magic in [0u8, 1] {
                let inner: Vec<_> = (0..3)
                    .map(|i| {
                        (
                            if magic == 0 { 100 + i } else { i },
                            message(magic, 0, 1000 + i, Some(b"k"), Some(&[i as u8; 50])),
                        )
                    })
                    .collect();
                let got = decode_legacy(&wrapper(magic, codec, 102, 7, &inner), MAX).unwrap();
                let offsets: Vec<_> = got.iter().map(|m| m.offset).collect();
                assert_eq!(offsets, [100, 101, 102], "codec {codec} magic {magic}");
                let ts: Vec<_> = got.iter().map(|m| m.timestamp).collect();
                assert_eq!(ts, if magic == 0 { [-1; 3] } else { [1000, 1001, 1002] });
                assert_eq!(got[2].value.as_deref(), Some(&[2u8; 50][..]));
            }
        }
    }

    #[test]
    fn v1_wrapper_offsets_and_log_append_time() {
        let inner = [
            (0, message(1, 0, 10, None, Some(b"a"))),
            (4, message(1, 0, 20, None, Some(b"b"))),
        ];
        // Relative offsets with a gap (compacted): wrapper offset = last absolute offset.
        let got = decode_legacy(&wrapper(1, 1 | LOG_APPEND_TIME, 54, 999, &inner), MAX).unwrap();
        assert_eq!(got, [msg(50, 999, None, Some("a")), msg(54, 999, None, Some("b"))]);
        // librdkafka produce data: wrapper offset 0 means inner offsets as they are.
        let got = decode_legacy(&wrapper(1, 2, 0, 0, &inner), MAX).unwrap();
        assert_eq!(got, [msg(0, 10, None, Some("a")), msg(4, 20, None, Some("b"))]);
        let err = decode_legacy(&wrapper(1, 2, 3, 0, &inner), MAX).unwrap_err();
        assert!(matches!(err, BatchError::Corrupt { offset: 3, .. }), "{err:?}");
    }

    #[test]
    fn crc_errors_name_the_offset() {
        let mut set = entry(41, &message(0, 0, 0, None, Some(b"ok")));
        let mut bad = entry(42, &message(1, 0, 5, None, Some(b"bad")));
        *bad.last_mut().unwrap() ^= 1;
        set.extend(bad);
        assert!(matches!(
            decode_legacy(&set, MAX),
            Err(BatchError::MessageCrcMismatch { offset: 42, .. })
        ));

        let mut inner_bad = message(1, 0, 5, None, Some(b"x"));
        inner_bad[0] ^= 0xff;
        let inner = [(0, message(1, 0, 5, None, Some(b"y"))), (1, inner_bad)];
        let err = decode_legacy(&wrapper(1, 1, 71, 0, &inner), MAX).unwrap_err();
        assert!(
            matches!(err, BatchError::MessageCrcMismatch { offset: 71, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_sets_are_errors() {
        let good = entry(1, &message(0, 0, 0, None, Some(b"v")));
        assert!(decode_legacy(&good[..good.len() - 1], MAX).is_err());
        let mut long_key = good.clone();
        long_key[12 + 6..12 + 10].copy_from_slice(&100i32.to_be_bytes());
        assert!(matches!(
            decode_legacy(&long_key, MAX),
            Err(BatchError::Corrupt { offset: 1, .. })
        ));
        let nested = wrapper(0, 1, 0, 0, &[(0, message(0, 2, 0, None, Some(b"x")))]);
        assert!(matches!(
            decode_legacy(&wrapper(0, 1, 0, 0, &[(0, nested[12..].to_vec())]), MAX),
            Err(BatchError::Corrupt { .. })
        ));
        let null_value = entry(3, &message(0, 1, 0, None, None));
        assert!(matches!(
            decode_legacy(&null_value, MAX),
            Err(BatchError::Corrupt { offset: 3, .. })
        ));
        let mut magic2 = good.clone();
        magic2[16] = 2;
        assert!(matches!(
            decode_legacy(&magic2, MAX),
            Err(BatchError::BadMagic { magic: 2, .. })
        ));
    }

    #[test]
    fn decompression_budget_is_shared() {
        let inner: Vec<_> = (0..10).map(|i| (i, message(0, 0, 0, None, Some(&[0; 1000])))).collect();
        let mut set = wrapper(0, 1, 0, 0, &inner);
        set.extend(wrapper(0, 1, 0, 0, &inner));
        let one = inner.iter().map(|(_, m)| 12 + m.len()).sum::<usize>();
        assert_eq!(decode_legacy(&set, 2 * one).unwrap().len(), 20);
        let err = decode_legacy(&set, 2 * one - 1).unwrap_err();
        assert!(
            matches!(err, BatchError::DecompressedTooLarge { offset: 0, .. }),
            "{err:?}"
        );
    }

    /// Golden vectors: messages from IBM/sarama `message_test.go` (each a whole message
    /// after the log overhead, with real CRCs), wrapped here in an entry.
    mod sarama {
        pub const EMPTY_V0: &[u8] = &[167, 236, 104, 3, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255];
        pub const EMPTY_V1: &[u8] = &[
            204, 47, 121, 217, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255,
        ];
        pub const EMPTY_GZIP: &[u8] = &[
            132, 99, 80, 148, 0, 1, 255, 255, 255, 255, 0, 0, 0, 0x17, 0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 255, 1, 0,
            0, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        pub const BULK_SNAPPY: &[u8] = &[
            180, 47, 53, 209, 0, 2, 255, 255, 255, 255, 0, 0, 0, 42, 130, 83, 78, 65, 80, 80, 89, 0, 0, 0, 0, 1, 0, 0,
            0, 1, 0, 0, 0, 22, 52, 0, 0, 25, 1, 16, 14, 227, 138, 104, 118, 25, 15, 13, 1, 8, 1, 0, 0, 62, 26, 0,
        ];
        pub const BULK_GZIP: &[u8] = &[
            139, 160, 63, 141, 0, 1, 255, 255, 255, 255, 0, 0, 0, 0x27, 0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0, 99, 96,
            128, 3, 190, 202, 112, 143, 7, 12, 12, 255, 129, 0, 33, 200, 192, 136, 41, 3, 0, 199, 226, 155, 70, 52, 0,
            0, 0,
        ];
        pub const BULK_LZ4: &[u8] = &[
            246, 12, 188, 129, 1, 3, 255, 255, 249, 209, 212, 181, 73, 201, 255, 255, 255, 255, 0, 0, 0, 0x47, 0x04,
            0x22, 0x4D, 0x18, 100, 112, 185, 52, 0, 0, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 121, 87, 72, 224, 0,
            0, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 14, 121, 87, 72, 224, 0, 0, 255, 255,
            255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 71, 129, 23, 111,
        ];
        pub const BULK_ZSTD: &[u8] = &[
            203, 151, 133, 28, 1, 4, 255, 255, 249, 209, 212, 181, 73, 201, 255, 255, 255, 255, 0, 0, 0, 0x26, 0x28,
            0xb5, 0x2f, 0xfd, 0x24, 0x34, 0xcd, 0x0, 0x0, 0x78, 0x0, 0x0, 0xe, 0x79, 0x57, 0x48, 0xe0, 0x0, 0x0, 0xff,
            0xff, 0xff, 0xff, 0x0, 0x1, 0x3, 0x0, 0x3d, 0xbd, 0x0, 0x3b, 0x15, 0x0, 0xb, 0xd2, 0x34, 0xc1, 0x78,
        ];
    }

    #[test]
    fn sarama_golden_messages() {
        let empty = LegacyMessage {
            offset: 0,
            timestamp: -1,
            key: None,
            value: Some(Bytes::new()),
        };
        assert_eq!(
            decode_legacy(&entry(3, sarama::EMPTY_V0), MAX).unwrap(),
            [LegacyMessage {
                offset: 3,
                value: None,
                ..empty.clone()
            }]
        );
        assert_eq!(
            decode_legacy(&entry(4, sarama::EMPTY_V1), MAX).unwrap(),
            [LegacyMessage {
                offset: 4,
                timestamp: 0,
                value: None,
                ..empty.clone()
            }]
        );
        // Bulk wrappers hold two empty-valued v0 messages at offsets 0 and 1 (the snappy
        // one with empty rather than null keys). The lz4 one is a v1 wrapper: relative
        // inner offsets, made absolute from the wrapper offset.
        let empty_key = Some(Bytes::new());
        for (wrapper_offset, bytes, key) in [
            (0, sarama::BULK_SNAPPY, empty_key),
            (0, sarama::BULK_GZIP, None),
            (11, sarama::BULK_LZ4, None),
        ] {
            let got = decode_legacy(&entry(wrapper_offset, bytes), MAX).unwrap();
            let first = wrapper_offset.max(1) - 1;
            let m = |offset| LegacyMessage {
                offset,
                key: key.clone(),
                ..empty.clone()
            };
            assert_eq!(got, [m(first), m(first + 1)]);
        }
        // A gzip wrapper around nothing, and zstd in a legacy wrapper: Kafka refuses both.
        assert!(matches!(
            decode_legacy(&entry(0, sarama::EMPTY_GZIP), MAX),
            Err(BatchError::Corrupt { .. })
        ));
        assert!(matches!(
            decode_legacy(&entry(0, sarama::BULK_ZSTD), MAX),
            Err(BatchError::Corrupt { .. })
        ));
    }

    #[test]
    fn blob_entries_decode_and_upconvert() {
        let mut blob = entry(0, &message(0, 0, 0, Some(b"a"), Some(b"1")));
        blob.extend(wrapper(
            1,
            3,
            3,
            0,
            &[
                (0, message(1, 0, 5, Some(b"b"), None)),
                (2, message(1, 0, -7, None, Some(b"c"))),
            ],
        ));
        let mut messages = Vec::new();
        for entry in BlobIter::new(Bytes::from(blob), 0) {
            let FetchedEntry::Legacy { bytes, .. } = entry.unwrap() else {
                panic!("legacy entry expected")
            };
            messages.extend(decode_legacy(&bytes, MAX).unwrap());
        }
        let out = upconvert(&messages, &ReencodeOptions::new(Compression::Zstd)).unwrap();
        assert_eq!(out.record_offsets, [0, 1, 3]);
        let summary = validate_produced_batch(&out.batches[0], &Expect::default()).unwrap();
        let got: Vec<_> = summary
            .records
            .iter()
            .map(|r| (r.timestamp, r.key.clone(), r.value.clone()))
            .collect();
        let want = [
            (-1, Some(b"a".to_vec()), Some(b"1".to_vec())),
            (5, Some(b"b".to_vec()), None),
            (-1, None, Some(b"c".to_vec())),
        ];
        assert_eq!(got, want);
        let backwards = [messages[1].clone(), messages[0].clone()];
        assert!(upconvert(&backwards, &ReencodeOptions::new(Compression::None)).is_err());
    }

    proptest! {
        #[test]
        fn decoded_sets_upconvert_to_valid_batches(
            inner in proptest::collection::vec((proptest::option::of("[a-z]{0,8}"), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)), 0i64..1 << 42, 1i64..5), 1..30),
            magic in 0u8..=1,
            codec in 0u8..=3,
            base in 0i64..1 << 40,
            target in 0u8..=4,
            max in prop_oneof![61usize..500, Just(usize::MAX)],
        ) {
            let mut offset = base;
            let mut expected = Vec::new();
            let mut set_inner = Vec::new();
            for (key, value, ts, step) in &inner {
                let m = message(magic, 0, *ts, key.as_deref().map(str::as_bytes), value.as_deref());
                let stored = if magic == 1 && codec != 0 { offset - base } else { offset };
                set_inner.push((stored, m));
                expected.push(LegacyMessage { offset, timestamp: if magic == 0 { -1 } else { *ts }, key: key.as_deref().map(|k| Bytes::copy_from_slice(k.as_bytes())), value: value.clone().map(Bytes::from) });
                offset += step;
            }
            let last = expected.last().unwrap().offset;
            let set = if codec == 0 {
                set_inner.iter().flat_map(|(o, m)| entry(*o, m)).collect()
            } else {
                wrapper(magic, codec, last, 0, &set_inner)
            };
            let decoded = decode_legacy(&set, MAX).unwrap();
            prop_assert_eq!(&decoded, &expected);
            let opts = ReencodeOptions { max_batch_bytes: max, ..ReencodeOptions::new(Compression::from_id(target)) };
            let out = upconvert(&decoded, &opts).unwrap();
            prop_assert_eq!(out.record_offsets, expected.iter().map(|m| m.offset).collect::<Vec<_>>());
            let mut values = Vec::new();
            for b in &out.batches {
                let summary = validate_produced_batch(b, &Expect::default());
                prop_assert!(summary.is_ok(), "{:?}", summary);
                let summary = summary.unwrap();
                prop_assert!(b.len() <= max || summary.record_count == 1);
                values.extend(summary.records.into_iter().map(|r| (r.timestamp, r.value)));
            }
            prop_assert_eq!(values, expected.iter().map(|m| (m.timestamp, m.value.as_ref().map(|v| v.to_vec()))).collect::<Vec<_>>());
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_legacy(&bytes, MAX);
        }
    }
}
