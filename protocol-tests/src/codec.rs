//! Decompressing (and, for tests, compressing) batch payloads with Kafka's four codecs.
//!
//! * gzip: one gzip member (RFC 1952).
//! * snappy: the Java client writes xerial framing (magic `\x82SNAPPY\0`, two int32
//!   versions, then int32-length-prefixed raw blocks); some clients (librdkafka, for one)
//!   write a bare raw snappy block. Both are accepted.
//! * lz4: the LZ4 frame format (Kafka's `KafkaLZ4BlockOutputStream`, KIP-57 fixed its
//!   header checksum for magic >= 1).
//! * zstd: a zstd frame (KIP-110).
//!
//! Output is capped at [`MAX_DECOMPRESSED`] bytes so a hostile payload cannot exhaust
//! memory.
//!
//! # References
//!
//! * Kafka `clients/.../compress/*` (`GzipCompression`, `SnappyCompression`,
//!   `Lz4Compression`, `ZstdCompression`) and `KafkaLZ4BlockOutputStream.java`
//! * xerial snappy-java `SnappyCodec` / `SnappyOutputStream` (framing)
//! * KIP-57 (lz4 frame checksum), KIP-110 (zstd)

use std::io::{Read, Write};

use crate::Violation;

/// Largest decompressed records section accepted.
pub const MAX_DECOMPRESSED: usize = 256 << 20;

/// Codec ids, attribute bits 0-2.
pub mod id {
    /// No compression.
    pub const NONE: u8 = 0;
    /// gzip.
    pub const GZIP: u8 = 1;
    /// snappy.
    pub const SNAPPY: u8 = 2;
    /// lz4 frame.
    pub const LZ4: u8 = 3;
    /// zstd.
    pub const ZSTD: u8 = 4;
}

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK: usize = 32 << 10;

/// The uncompressed records section of a payload compressed with `codec`.
pub fn decompress(codec: u8, payload: &[u8]) -> Result<Vec<u8>, Violation> {
    let fail = |reason: String| Violation::Decompression { codec, reason };
    match codec {
        id::NONE => Ok(payload.to_vec()),
        id::GZIP => read_capped(flate2::read::GzDecoder::new(payload)).map_err(fail),
        id::SNAPPY if payload.starts_with(&XERIAL_MAGIC) => snappy_xerial(payload).map_err(fail),
        id::SNAPPY => snappy_raw(payload).map_err(fail),
        id::LZ4 => read_capped(lz4_flex::frame::FrameDecoder::new(payload)).map_err(fail),
        id::ZSTD => {
            let decoder = zstd::stream::read::Decoder::new(payload).map_err(|e| fail(e.to_string()))?;
            read_capped(decoder).map_err(fail)
        }
        other => Err(Violation::UnknownCodec { codec: other }),
    }
}

/// Compresses a records section as a Java producer would (xerial framing for snappy).
///
/// For tests, e.g. with kferry's `BatchBuilder::build_compressed`. Panics on an unknown
/// codec.
pub fn compress(codec: u8, raw: &[u8]) -> Vec<u8> {
    match codec {
        id::NONE => raw.to_vec(),
        id::GZIP => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(raw).expect("write to Vec");
            enc.finish().expect("write to Vec")
        }
        id::SNAPPY => snappy_xerial_compress(raw),
        id::LZ4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
            enc.write_all(raw).expect("write to Vec");
            enc.finish().expect("write to Vec")
        }
        id::ZSTD => zstd::encode_all(raw, 3).expect("zstd encode"),
        other => panic!("unknown codec {other}"),
    }
}

/// Compresses a records section as one bare raw snappy block (librdkafka style).
pub fn compress_snappy_raw(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).expect("snappy encode")
}

fn read_capped(reader: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(format!("more than {MAX_DECOMPRESSED} bytes"));
    }
    Ok(out)
}

fn snappy_raw(block: &[u8]) -> Result<Vec<u8>, String> {
    let len = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
    if len > MAX_DECOMPRESSED {
        return Err(format!("block claims {len} bytes"));
    }
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|e| e.to_string())
}

fn snappy_xerial(payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut rest = payload.get(XERIAL_HEADER_LEN..).ok_or("xerial header cut short")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or("xerial block length cut short")?;
        let len = usize::try_from(i32::from_be_bytes(*len)).map_err(|_| "negative xerial block length")?;
        let block = tail.get(..len).ok_or("xerial block runs past the payload")?;
        out.extend_from_slice(&snappy_raw(block)?);
        if out.len() > MAX_DECOMPRESSED {
            return Err(format!("more than {MAX_DECOMPRESSED} bytes"));
        }
        rest = &tail[len..];
    }
    Ok(out)
}

fn snappy_xerial_compress(raw: &[u8]) -> Vec<u8> {
    let mut out = XERIAL_MAGIC.to_vec();
    out.extend_from_slice(&1i32.to_be_bytes()); // version
    out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
    for chunk in raw.chunks(XERIAL_BLOCK) {
        let block = compress_snappy_raw(chunk);
        out.extend_from_slice(&(block.len() as i32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let raw: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in 0..=4 {
            assert_eq!(decompress(codec, &compress(codec, &raw)).unwrap(), raw, "codec {codec}");
        }
        assert_eq!(decompress(id::SNAPPY, &compress_snappy_raw(&raw)).unwrap(), raw);
    }

    #[test]
    fn garbage_is_a_violation() {
        for codec in 1..=4 {
            let err = decompress(codec, b"definitely not compressed").unwrap_err();
            assert!(matches!(err, Violation::Decompression { .. }), "codec {codec}: {err:?}");
        }
        assert_eq!(decompress(5, b""), Err(Violation::UnknownCodec { codec: 5 }));
    }

    #[test]
    fn cut_xerial_stream_is_a_violation() {
        let framed = compress(id::SNAPPY, b"hello hello hello");
        let err = decompress(id::SNAPPY, &framed[..framed.len() - 3]).unwrap_err();
        assert!(matches!(err, Violation::Decompression { codec: 2, .. }));
    }
}
