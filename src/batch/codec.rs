//! Kafka's record codecs, for the slow path: [`decompress`] and [`compress`].
//!
//! * **gzip**: RFC 1952 members; several concatenated members decode as one stream, as
//!   Java's `GZIPInputStream` does. Compression level 6, Kafka's default.
//! * **snappy**: the Java client writes xerial framing: the magic `\x82SNAPPY\0`, two
//!   int32 versions (1, 1), then `[int32 length][raw snappy block]` for each 32 KiB of
//!   input. Other clients (librdkafka, sarama with some settings) write one bare raw
//!   snappy block; xerial's `SnappyInputStream` falls back to that when the magic is
//!   absent, and so does [`decompress`]. A magic header in place of a block length starts
//!   a concatenated stream and is skipped, as xerial does.
//! * **lz4**: the LZ4 frame format. Output matches Kafka's `Lz4BlockOutputStream`: 64 KiB
//!   independent blocks, no block or content checksums. Magic-0 message sets carry a
//!   wrong header checksum; see [`fix_lz4_header_checksum`].
//! * **zstd**: zstd frames (KIP-110), level 3, Kafka's default.
//!
//! Decompression is capped: a caller passes `max_out`, and a payload that would expand
//! beyond it fails with [`BatchError::DecompressedTooLarge`] after at most `max_out + 1`
//! bytes were produced. Lengths a payload declares (raw snappy) are checked against the
//! cap before anything is allocated.
//!
//! Errors raised here carry offset -1 (the codec sees bare bytes); callers holding a
//! batch fill it in.
//!
//! # References
//!
//! * Kafka `clients/.../compress/GzipCompression.java`, `SnappyCompression.java`,
//!   `Lz4Compression.java`, `ZstdCompression.java`, `Lz4BlockOutputStream.java`,
//!   `Lz4BlockInputStream.java` (`ignoreFlagDescriptorChecksum`)
//! * xerial snappy-java `SnappyCodec.java`, `SnappyInputStream.java` (framing, raw fallback)
//! * LZ4 frame format specification (`lz4_Frame_format.md`), xxHash specification
//! * KIP-57 (lz4 header checksum fixed for magic >= 1), KIP-110 (zstd)

use std::borrow::Cow;
use std::io::{Read, Write};

use super::{BatchError, Compression};

/// xerial snappy-java stream magic.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic plus the two int32 version fields.
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's default block size.
const XERIAL_BLOCK: usize = 32 << 10;
/// LZ4 frame magic number (little-endian on the wire).
const LZ4_MAGIC: u32 = 0x184D_2204;
/// Kafka's gzip level (`Deflater.DEFAULT_COMPRESSION`).
const GZIP_LEVEL: u32 = 6;
/// Kafka's zstd level (`ZstdCompression.DEFAULT_LEVEL`).
const ZSTD_LEVEL: i32 = 3;

/// Decompresses a records section (or a legacy wrapper's value) compressed with
/// `compression`, failing if the output would exceed `max_out` bytes.
pub fn decompress(compression: Compression, payload: &[u8], max_out: usize) -> Result<Vec<u8>, BatchError> {
    match compression {
        Compression::None if payload.len() > max_out => Err(too_large(compression, max_out)),
        Compression::None => Ok(payload.to_vec()),
        Compression::Gzip => read_capped(compression, flate2::read::MultiGzDecoder::new(payload), max_out),
        Compression::Snappy if payload.starts_with(&XERIAL_MAGIC) => snappy_xerial(payload, max_out),
        Compression::Snappy => {
            let mut out = Vec::new();
            snappy_block(payload, &mut out, max_out)?;
            Ok(out)
        }
        Compression::Lz4 => read_capped(compression, lz4_flex::frame::FrameDecoder::new(payload), max_out),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(payload).map_err(|e| codec_error(compression, e))?;
            read_capped(compression, decoder, max_out)
        }
        Compression::Unknown(_) => Err(unknown_codec(compression)),
    }
}

/// Compresses a records section as Kafka's Java producer does (see the module docs).
pub fn compress(compression: Compression, raw: &[u8]) -> Result<Vec<u8>, BatchError> {
    let fail = |e: std::io::Error| codec_error(compression, e);
    match compression {
        Compression::None => Ok(raw.to_vec()),
        Compression::Gzip => {
            let level = flate2::Compression::new(GZIP_LEVEL);
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 2 + 64), level);
            enc.write_all(raw).map_err(fail)?;
            enc.finish().map_err(fail)
        }
        Compression::Snappy => snappy_xerial_compress(raw),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::with_capacity(raw.len() / 2 + 64));
            enc.write_all(raw).map_err(fail)?;
            enc.finish().map_err(|e| codec_error(compression, e))
        }
        Compression::Zstd => zstd::bulk::compress(raw, ZSTD_LEVEL).map_err(fail),
        Compression::Unknown(_) => Err(unknown_codec(compression)),
    }
}

/// An LZ4 frame whose header checksum (HC) byte is set to the correct value.
///
/// Kafka clients before KIP-57 computed HC over the frame magic *and* the descriptor
/// instead of the descriptor alone, and brokers still store magic-0 message sets that
/// way. Kafka reads magic 0 with `ignoreFlagDescriptorChecksum`; `lz4_flex` always
/// checks HC, so this rewrites the byte instead, which is equivalent to ignoring it.
/// Borrows when HC is already right (or the frame header is too short to tell, in which
/// case the decoder reports the problem).
pub fn fix_lz4_header_checksum(frame: &[u8]) -> Cow<'_, [u8]> {
    let Some(magic) = frame.first_chunk::<4>() else {
        return Cow::Borrowed(frame);
    };
    let Some(&flg) = frame.get(4) else {
        return Cow::Borrowed(frame);
    };
    let content_size = if flg & 0x08 != 0 { 8 } else { 0 };
    let dict_id = if flg & 0x01 != 0 { 4 } else { 0 };
    let hc_at = 4 + 2 + content_size + dict_id;
    if u32::from_le_bytes(*magic) != LZ4_MAGIC || frame.len() <= hc_at {
        return Cow::Borrowed(frame);
    }
    let hc = (xxh32(&frame[4..hc_at], 0) >> 8) as u8;
    if frame[hc_at] == hc {
        return Cow::Borrowed(frame);
    }
    let mut fixed = frame.to_vec();
    fixed[hc_at] = hc;
    Cow::Owned(fixed)
}

fn read_capped(compression: Compression, reader: impl Read, max_out: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max_out).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| codec_error(compression, e))?;
    if out.len() > max_out {
        return Err(too_large(compression, max_out));
    }
    Ok(out)
}

fn snappy_xerial(payload: &[u8], max_out: usize) -> Result<Vec<u8>, BatchError> {
    let fail = |reason: &str| codec_error(Compression::Snappy, reason);
    let mut rest = payload
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| fail("xerial header cut short"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.starts_with(&XERIAL_MAGIC) {
            // A concatenated stream: skip its header, as SnappyInputStream does.
            rest = rest
                .get(XERIAL_HEADER_LEN..)
                .ok_or_else(|| fail("xerial header cut short"))?;
            continue;
        }
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| fail("xerial block length cut short"))?;
        let len = usize::try_from(i32::from_be_bytes(*len)).map_err(|_| fail("negative xerial block length"))?;
        let block = tail
            .get(..len)
            .ok_or_else(|| fail("xerial block runs past the payload"))?;
        snappy_block(block, &mut out, max_out)?;
        rest = &tail[len..];
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its declared length against the cap
/// before allocating.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<(), BatchError> {
    let fail = |e: snap::Error| codec_error(Compression::Snappy, e);
    let len = snap::raw::decompress_len(block).map_err(fail)?;
    let start = out.len();
    if len > max_out - start {
        return Err(too_large(Compression::Snappy, max_out));
    }
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(fail)?;
    out.truncate(start + written);
    Ok(())
}

fn snappy_xerial_compress(raw: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + raw.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes()); // version
    out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
    let mut encoder = snap::raw::Encoder::new();
    let mut block = vec![0; snap::raw::max_compress_len(XERIAL_BLOCK.min(raw.len()))];
    for chunk in raw.chunks(XERIAL_BLOCK) {
        let len = encoder
            .compress(chunk, &mut block)
            .map_err(|e| codec_error(Compression::Snappy, e))?;
        let len_field = i32::try_from(len).expect("a snappy block of 32 KiB input fits in i32");
        out.extend_from_slice(&len_field.to_be_bytes());
        out.extend_from_slice(&block[..len]);
    }
    Ok(out)
}

/// xxHash32 of `data` (the LZ4 frame format's checksum).
pub(crate) fn xxh32(data: &[u8], seed: u32) -> u32 {
    const P1: u32 = 0x9E37_79B1;
    const P2: u32 = 0x85EB_CA77;
    const P3: u32 = 0xC2B2_AE3D;
    const P4: u32 = 0x27D4_EB2F;
    const P5: u32 = 0x1656_67B1;
    let round = |acc: u32, lane: u32| acc.wrapping_add(lane.wrapping_mul(P2)).rotate_left(13).wrapping_mul(P1);
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);

    let stripes = data.chunks_exact(16);
    let mut tail = stripes.remainder();
    let mut h = if data.len() >= 16 {
        let mut acc = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        for stripe in stripes {
            for (lane, a) in acc.iter_mut().enumerate() {
                *a = round(*a, word(&stripe[4 * lane..]));
            }
        }
        acc[0]
            .rotate_left(1)
            .wrapping_add(acc[1].rotate_left(7))
            .wrapping_add(acc[2].rotate_left(12))
            .wrapping_add(acc[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(data.len() as u32);
    while let Some((w, rest)) = tail.split_first_chunk::<4>() {
        h = h
            .wrapping_add(u32::from_le_bytes(*w).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        tail = rest;
    }
    for &byte in tail {
        h = h
            .wrapping_add(u32::from(byte).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

fn codec_error(compression: Compression, reason: impl std::fmt::Display) -> BatchError {
    BatchError::Codec {
        offset: -1,
        compression,
        reason: reason.to_string(),
    }
}

fn unknown_codec(compression: Compression) -> BatchError {
    codec_error(
        compression,
        format_args!("codec id {} is not defined by Kafka", compression.id()),
    )
}

fn too_large(compression: Compression, limit: usize) -> BatchError {
    BatchError::DecompressedTooLarge {
        offset: -1,
        compression,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kferry_protocol_tests::codec as independent;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 % 7)
            .collect()
    }

    #[test]
    fn every_codec_round_trips_and_matches_the_independent_codec() {
        for raw in [Vec::new(), b"x".to_vec(), sample(100_000)] {
            for c in ALL {
                let ours = compress(c, &raw).unwrap();
                assert_eq!(decompress(c, &ours, raw.len()).unwrap(), raw, "{c:?}");
                assert_eq!(independent::decompress(c.id(), &ours).unwrap(), raw, "{c:?}");
                let theirs = independent::compress(c.id(), &raw);
                assert_eq!(decompress(c, &theirs, raw.len()).unwrap(), raw, "{c:?}");
            }
        }
    }

    #[test]
    fn raw_and_concatenated_snappy_are_accepted() {
        let raw = sample(70_000);
        let bare = independent::compress_snappy_raw(&raw);
        assert_eq!(decompress(Compression::Snappy, &bare, raw.len()).unwrap(), raw);
        let mut twice = compress(Compression::Snappy, &raw[..40_000]).unwrap();
        twice.extend_from_slice(&compress(Compression::Snappy, &raw[40_000..]).unwrap());
        assert_eq!(decompress(Compression::Snappy, &twice, raw.len()).unwrap(), raw);
    }

    #[test]
    fn output_is_capped() {
        let raw = vec![0u8; 1 << 20];
        for c in ALL {
            let payload = compress(c, &raw).unwrap();
            assert_eq!(decompress(c, &payload, raw.len()).unwrap().len(), raw.len());
            let err = decompress(c, &payload, raw.len() - 1).unwrap_err();
            assert_eq!(
                err,
                BatchError::DecompressedTooLarge {
                    offset: -1,
                    compression: c,
                    limit: raw.len() - 1
                }
            );
            assert_eq!(err.clone().at_offset(7).offset(), Some(7));
        }
        // A raw snappy block declaring 1 GiB fails before allocating.
        let bomb = [0x80, 0x80, 0x80, 0x80, 0x04];
        assert!(matches!(
            decompress(Compression::Snappy, &bomb, 1 << 20),
            Err(BatchError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_unknown_codecs_fail() {
        for c in &ALL[1..] {
            let err = decompress(*c, b"definitely not compressed", 1 << 20).unwrap_err();
            assert!(matches!(err, BatchError::Codec { offset: -1, .. }), "{c:?}: {err:?}");
        }
        let framed = compress(Compression::Snappy, &sample(1000)).unwrap();
        assert!(decompress(Compression::Snappy, &framed[..framed.len() - 3], 1 << 20).is_err());
        assert!(decompress(Compression::Snappy, &framed[..12], 1 << 20).is_err());
        assert!(matches!(
            compress(Compression::Unknown(6), b"x"),
            Err(BatchError::Codec { .. })
        ));
        assert!(decompress(Compression::Unknown(5), b"x", 10).is_err());
    }

    #[test]
    fn xxh32_matches_reference_values() {
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        // lz4_flex writes xxh32(content) as the content checksum: an independent check
        // of the 16-byte stripe path.
        for len in [15, 16, 17, 100, 1000] {
            let raw = sample(len);
            let info = lz4_flex::frame::FrameInfo::new().content_checksum(true);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            enc.write_all(&raw).unwrap();
            let frame = enc.finish().unwrap();
            let stored = u32::from_le_bytes(frame[frame.len() - 4..].try_into().unwrap());
            assert_eq!(xxh32(&raw, 0), stored, "len {len}");
        }
    }

    #[test]
    fn kafka_v0_lz4_header_checksum_is_repaired() {
        let raw = sample(5000);
        let good = compress(Compression::Lz4, &raw).unwrap();
        assert!(matches!(fix_lz4_header_checksum(&good), Cow::Borrowed(_)));
        // Pre-KIP-57 Kafka: HC = (xxh32(magic ‖ FLG ‖ BD) >> 8) & 0xFF.
        let mut broken = good.clone();
        broken[6] = (xxh32(&good[..6], 0) >> 8) as u8;
        assert_ne!(broken[6], good[6]);
        assert!(decompress(Compression::Lz4, &broken, raw.len()).is_err());
        let fixed = fix_lz4_header_checksum(&broken);
        assert_eq!(&fixed[..], &good[..]);
        assert_eq!(decompress(Compression::Lz4, &fixed, raw.len()).unwrap(), raw);
        for short in [&b""[..], b"\x04\x22\x4d", b"\x04\x22\x4d\x18\x60"] {
            assert!(matches!(fix_lz4_header_checksum(short), Cow::Borrowed(_)));
        }
    }
}
