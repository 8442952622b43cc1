//! A checked cursor over a Kafka response body, for the responses kferry decodes itself.
//!
//! Why not `kafka-protocol` for these: its 0.18 decoders size a `Vec` with the element count
//! read off the wire (`Vec::with_capacity(n)`), so eight bytes of a corrupt or hostile
//! response ask for hundreds of GiB and abort the process, which no `Result` can catch.
//! Here every length is checked against the bytes that remain before anything is allocated:
//!
//! - strings and bytes must fit in what remains;
//! - an array of `n` elements whose encoding takes at least `min_size` bytes each is
//!   refused unless `n * min_size` bytes remain, so a `Vec` is never sized beyond the input;
//! - `bytes` come back as zero-copy [`Bytes`] slices of the input.
//!
//! Encodings (Kafka "protocol primitive types"): integers are big-endian. Classic versions
//! prefix strings with an `i16` length and bytes and arrays with an `i32` length, `-1`
//! meaning null. Flexible versions (KIP-482) use compact forms, an unsigned varint holding
//! `length + 1` (0 meaning null), and end every structure with a tagged-field section:
//! a count, then `tag, size, value` for each field, each an unsigned varint but the value.
//!
//! Every error names the field and the byte position (from the start of the body) where
//! the field begins.
//!
//! References: Kafka `clients/src/main/java/org/apache/kafka/common/protocol/types/Type.java`,
//! `ByteUtils.readUnsignedVarint`; KIP-482 (tagged fields); KIP-951 (`CurrentLeader`,
//! `NodeEndpoints`, shared here by Fetch and Produce).

use bytes::Bytes;
use uuid::Uuid;

/// Why a response could not be decoded: which field, where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} at byte {offset}: {problem}")]
pub struct DecodeError {
    /// The field being read, in Kafka's schema vocabulary (`partitions.records`).
    pub field: &'static str,
    /// Byte position of the field from the start of the body.
    pub offset: usize,
    pub problem: Problem,
}

/// What was wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("needs {needed} bytes, only {remaining} left")]
    Truncated { needed: usize, remaining: usize },
    #[error("invalid length {0}")]
    BadLength(i64),
    #[error("length {len} exceeds the {remaining} bytes left")]
    TooLong { len: u64, remaining: usize },
    #[error("{count} elements of at least {min_size} bytes each cannot fit in the {remaining} bytes left")]
    TooManyElements {
        count: u64,
        min_size: usize,
        remaining: usize,
    },
    #[error("unsigned varint longer than 5 bytes or above u32::MAX")]
    BadVarint,
    #[error("string is not valid UTF-8")]
    NotUtf8,
    #[error("null, but the field is not nullable")]
    UnexpectedNull,
    #[error("{0} bytes left over after the last field")]
    TrailingBytes(usize),
    #[error("version {version} is not supported (kferry decodes {min}..={max})")]
    UnsupportedVersion { version: i16, min: i16, max: i16 },
}

/// A cursor over a body that checks every read; reads past the end return an error.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
    /// Position of `buf[0]` in the whole body (tagged fields are read through sub-readers).
    base: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0, base: 0 }
    }

    /// Byte position from the start of the body.
    pub fn position(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn error_at(&self, start: usize, field: &'static str, problem: Problem) -> DecodeError {
        DecodeError {
            field,
            offset: self.base + start,
            problem,
        }
    }

    /// Fails unless every byte was read.
    pub fn finish(&self, field: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error_at(self.pos, field, Problem::TrailingBytes(n))),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let Some(bytes) = self.buf.get(self.pos..self.pos + N) else {
            let problem = Problem::Truncated {
                needed: N,
                remaining: self.remaining(),
            };
            return Err(self.error_at(self.pos, field, problem));
        };
        let out = bytes.try_into().expect("slice of length N");
        self.pos += N;
        Ok(out)
    }

    pub fn i8(&mut self, field: &'static str) -> Result<i8, DecodeError> {
        self.array(field).map(i8::from_be_bytes)
    }

    pub fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        self.array(field).map(i16::from_be_bytes)
    }

    pub fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        self.array(field).map(i32::from_be_bytes)
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.array(field).map(i64::from_be_bytes)
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    pub fn uuid(&mut self, field: &'static str) -> Result<Uuid, DecodeError> {
        self.array(field).map(Uuid::from_bytes)
    }

    /// An unsigned varint of at most 5 bytes (7 bits each, least significant first).
    pub fn uvarint(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let start = self.pos;
        let mut value: u32 = 0;
        for i in 0..5 {
            let Some(&byte) = self.buf.get(self.pos) else {
                let problem = Problem::Truncated {
                    needed: i + 1,
                    remaining: i,
                };
                return Err(self.error_at(start, field, problem));
            };
            self.pos += 1;
            // The fifth byte holds the top 4 bits of a u32; anything more is invalid.
            if i == 4 && byte > 0x0f {
                break;
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error_at(start, field, Problem::BadVarint))
    }

    /// A length prefix: `None` for null. `wide` picks `i32` over `i16` in classic versions.
    fn length(&mut self, field: &'static str, compact: bool, wide: bool) -> Result<Option<usize>, DecodeError> {
        let start = self.pos;
        let n = match (compact, wide) {
            (true, _) => i64::from(self.uvarint(field)?) - 1,
            (false, true) => i64::from(self.i32(field)?),
            (false, false) => i64::from(self.i16(field)?),
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => Err(self.error_at(start, field, Problem::BadLength(n))),
            n => Ok(Some(n as usize)),
        }
    }

    /// The next `len` bytes as a zero-copy slice of the input.
    fn slice(&mut self, start: usize, field: &'static str, len: usize) -> Result<Bytes, DecodeError> {
        if len > self.remaining() {
            let problem = Problem::TooLong {
                len: len as u64,
                remaining: self.remaining(),
            };
            return Err(self.error_at(start, field, problem));
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    /// A `string`/`compact_string` that may be null.
    pub fn nullable_string(&mut self, field: &'static str, compact: bool) -> Result<Option<String>, DecodeError> {
        let start = self.pos;
        let Some(len) = self.length(field, compact, false)? else {
            return Ok(None);
        };
        let bytes = self.slice(start, field, len)?;
        match std::str::from_utf8(&bytes) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(_) => Err(self.error_at(start, field, Problem::NotUtf8)),
        }
    }

    /// A `string`/`compact_string` that must not be null.
    pub fn string(&mut self, field: &'static str, compact: bool) -> Result<String, DecodeError> {
        let start = self.pos;
        self.nullable_string(field, compact)?
            .ok_or_else(|| self.error_at(start, field, Problem::UnexpectedNull))
    }

    /// `bytes`/`compact_bytes` (also `records`) that may be null, as a slice of the input.
    pub fn nullable_bytes(&mut self, field: &'static str, compact: bool) -> Result<Option<Bytes>, DecodeError> {
        let start = self.pos;
        match self.length(field, compact, true)? {
            None => Ok(None),
            Some(len) => self.slice(start, field, len).map(Some),
        }
    }

    /// `bytes`/`compact_bytes` that must not be null, as a slice of the input.
    pub fn bytes(&mut self, field: &'static str, compact: bool) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.nullable_bytes(field, compact)?
            .ok_or_else(|| self.error_at(start, field, Problem::UnexpectedNull))
    }

    /// The element count of an array that may be null, refused unless `count` elements of
    /// at least `min_size` bytes each fit in what remains.
    pub fn nullable_array_len(
        &mut self,
        field: &'static str,
        compact: bool,
        min_size: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let start = self.pos;
        let Some(count) = self.length(field, compact, true)? else {
            return Ok(None);
        };
        self.check_count(start, field, count as u64, min_size)?;
        Ok(Some(count))
    }

    /// The element count of an array that must not be null; see [`Reader::nullable_array_len`].
    pub fn array_len(&mut self, field: &'static str, compact: bool, min_size: usize) -> Result<usize, DecodeError> {
        let start = self.pos;
        self.nullable_array_len(field, compact, min_size)?
            .ok_or_else(|| self.error_at(start, field, Problem::UnexpectedNull))
    }

    fn check_count(&self, start: usize, field: &'static str, count: u64, min_size: usize) -> Result<(), DecodeError> {
        let min_size = min_size.max(1);
        if count.saturating_mul(min_size as u64) > self.remaining() as u64 {
            let problem = Problem::TooManyElements {
                count,
                min_size,
                remaining: self.remaining(),
            };
            return Err(self.error_at(start, field, problem));
        }
        Ok(())
    }

    /// An array that may be null, each element read by `element`.
    pub fn nullable_array<T>(
        &mut self,
        field: &'static str,
        compact: bool,
        min_size: usize,
        mut element: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        let Some(count) = self.nullable_array_len(field, compact, min_size)? else {
            return Ok(None);
        };
        // `count` is at most `remaining / min_size`: the capacity is bounded by the input.
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(element(self)?);
        }
        Ok(Some(out))
    }

    /// An array that must not be null; see [`Reader::nullable_array`].
    pub fn array_of<T>(
        &mut self,
        field: &'static str,
        compact: bool,
        min_size: usize,
        element: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let start = self.pos;
        self.nullable_array(field, compact, min_size, element)?
            .ok_or_else(|| self.error_at(start, field, Problem::UnexpectedNull))
    }

    /// A tagged-field section. `known(tag, value)` reads a field it knows from `value` (a
    /// reader over exactly that field's bytes, which it must consume entirely) and returns
    /// true, or returns false to skip a field it does not know.
    pub fn tagged_fields(
        &mut self,
        field: &'static str,
        mut known: impl FnMut(u32, &mut Reader) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        let start = self.pos;
        let count = self.uvarint(field)?;
        // Each field takes at least two bytes (tag and size).
        self.check_count(start, field, u64::from(count), 2)?;
        for _ in 0..count {
            let tag_start = self.pos;
            let tag = self.uvarint(field)?;
            let size = self.uvarint(field)? as usize;
            let value_start = self.position();
            let value = self.slice(tag_start, field, size)?;
            let mut sub = Reader {
                buf: value,
                pos: 0,
                base: value_start,
            };
            if known(tag, &mut sub)? {
                sub.finish(field)?;
            }
        }
        Ok(())
    }

    /// A tagged-field section with no field this decoder knows.
    pub fn skip_tagged_fields(&mut self, field: &'static str) -> Result<(), DecodeError> {
        self.tagged_fields(field, |_, _| Ok(false))
    }
}

/// Fails unless `min <= version <= max`.
pub fn check_version(version: i16, min: i16, max: i16) -> Result<(), DecodeError> {
    match (min..=max).contains(&version) {
        true => Ok(()),
        false => Err(DecodeError {
            field: "version",
            offset: 0,
            problem: Problem::UnsupportedVersion { version, min, max },
        }),
    }
}

/// `LeaderIdAndEpoch` (KIP-951): the leader the broker knows of, in Fetch (v12+) and
/// Produce (v10+) partition responses. Both fields are -1 when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderIdAndEpoch {
    pub leader_id: i32,
    pub leader_epoch: i32,
}

impl LeaderIdAndEpoch {
    /// Reads the struct (always in a flexible version: it only exists as a tagged field).
    pub fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        let out = LeaderIdAndEpoch {
            leader_id: r.i32("current_leader.leader_id")?,
            leader_epoch: r.i32("current_leader.leader_epoch")?,
        };
        r.skip_tagged_fields("current_leader.tagged_fields")?;
        Ok(out)
    }
}

/// `NodeEndpoint` (KIP-951): how to reach a leader named in `current_leader`, listed by
/// Fetch (v16+) and Produce (v10+) responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl NodeEndpoint {
    /// Smallest encoding: node id, empty host, port, null rack, no tagged fields.
    const MIN_SIZE: usize = 4 + 1 + 4 + 1 + 1;

    /// Reads the `node_endpoints` array (always flexible: it only exists as a tagged field).
    pub fn read_all(r: &mut Reader) -> Result<Vec<Self>, DecodeError> {
        r.array_of("node_endpoints", true, Self::MIN_SIZE, |r| {
            let out = NodeEndpoint {
                node_id: r.i32("node_endpoints.node_id")?,
                host: r.string("node_endpoints.host", true)?,
                port: r.i32("node_endpoints.port")?,
                rack: r.nullable_string("node_endpoints.rack", true)?,
            };
            r.skip_tagged_fields("node_endpoints.tagged_fields")?;
            Ok(out)
        })
    }
}

/// Test support: counts the bytes allocated by the current thread, so that tests can check
/// that decoding never allocates more than a small multiple of its input. This is the only
/// unsafe code in kferry, and it exists only in test builds: `GlobalAlloc` is an unsafe
/// trait, and this implementation only forwards to `System`.
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) mod alloc_counter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    }

    struct Counting;

    fn count(bytes: usize) {
        // `try_with`: the counter may already be gone while the thread exits.
        let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(bytes)));
    }

    // SAFETY: every method forwards to `System` with the same arguments.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            System.alloc(layout)
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            System.alloc_zeroed(layout)
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count(new_size);
            System.realloc(ptr, layout, new_size)
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Runs `f` and returns its result and the bytes this thread allocated meanwhile
    /// (freed or not: a total, which bounds the peak).
    pub(crate) fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = ALLOCATED.with(Cell::get);
        let out = f();
        (out, ALLOCATED.with(Cell::get) - before)
    }

    /// Fails unless decoding `body` allocated at most 32 bytes per input byte (+1 KiB).
    /// The worst ratio of memory to wire bytes is a flexible topic with no partitions: 3 bytes
    /// on the wire, a 64-byte struct in memory; partitions are about 5x.
    pub(crate) fn check_bounded<T, E>(
        body: bytes::Bytes,
        version: i16,
        decode: impl FnOnce(bytes::Bytes, i16) -> Result<T, E>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let len = body.len();
        let (result, allocated) = allocated_by(|| decode(body, version));
        proptest::prop_assert!(allocated <= 32 * len + 1024, "v{version}: {allocated} bytes for {len}");
        drop(result);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocation_counter_counts() {
        let (v, bytes) = alloc_counter::allocated_by(|| Vec::<u8>::with_capacity(1000));
        assert!(bytes >= 1000, "{bytes}");
        drop(v);
        let ((), bytes) = alloc_counter::allocated_by(|| ());
        assert_eq!(bytes, 0);
    }

    fn reader(bytes: &[u8]) -> Reader {
        Reader::new(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn integers_are_big_endian() {
        let mut r = reader(&[0xff, 0x01, 0x02, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0x80, 0, 0, 0]);
        assert_eq!(r.i8("a"), Ok(-1));
        assert_eq!(r.i16("b"), Ok(0x0102));
        assert_eq!(r.i32("c"), Ok(3));
        assert_eq!(r.i64("d"), Ok(4));
        assert_eq!(r.u32("e"), Ok(0x8000_0000));
        assert_eq!(r.finish("end"), Ok(()));
        let err = r.i8("f").unwrap_err();
        assert_eq!((err.field, err.offset), ("f", 19));
        assert_eq!(
            err.problem,
            Problem::Truncated {
                needed: 1,
                remaining: 0
            }
        );
    }

    #[test]
    fn uvarints() {
        for (bytes, value) in [
            (&[0x00][..], 0u32),
            (&[0x7f], 127),
            (&[0x80, 0x01], 128),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], u32::MAX),
        ] {
            let mut r = reader(bytes);
            assert_eq!(r.uvarint("v"), Ok(value), "{bytes:02x?}");
            assert_eq!(r.remaining(), 0);
        }
        for bad in [
            &[0xff, 0xff, 0xff, 0xff, 0x10][..],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
        ] {
            assert_eq!(reader(bad).uvarint("v").unwrap_err().problem, Problem::BadVarint);
        }
        let truncated = reader(&[0x80, 0x80]).uvarint("v").unwrap_err();
        assert!(matches!(truncated.problem, Problem::Truncated { .. }));
    }

    #[test]
    fn strings_classic_and_compact() {
        let mut r = reader(&[0, 2, b'h', b'i', 0xff, 0xff, 3, b'y', b'o', 0]);
        assert_eq!(r.string("a", false).as_deref(), Ok("hi"));
        assert_eq!(r.nullable_string("b", false), Ok(None));
        assert_eq!(r.string("c", true).as_deref(), Ok("yo"));
        let err = r.string("d", true).unwrap_err();
        assert_eq!((err.field, err.offset, err.problem), ("d", 9, Problem::UnexpectedNull));
        assert_eq!(
            reader(&[0xff, 0xfe]).string("s", false).unwrap_err().problem,
            Problem::BadLength(-2)
        );
        assert_eq!(
            reader(&[0, 5, b'a']).string("s", false).unwrap_err().problem,
            Problem::TooLong { len: 5, remaining: 1 }
        );
        assert_eq!(
            reader(&[2, 0xc3]).string("s", true).unwrap_err().problem,
            Problem::NotUtf8
        );
    }

    #[test]
    fn bytes_are_slices_of_the_input() {
        let input = Bytes::from_static(&[0, 0, 0, 3, 1, 2, 3, 0xff, 0xff, 0xff, 0xff, 3, 4, 5, 0]);
        let mut r = Reader::new(input.clone());
        let a = r.bytes("a", false).unwrap();
        assert_eq!(&a[..], &[1, 2, 3]);
        assert_eq!(a.as_ptr(), input[4..].as_ptr());
        assert_eq!(r.nullable_bytes("b", false), Ok(None));
        assert_eq!(&r.bytes("c", true).unwrap()[..], &[4, 5]);
        assert_eq!(r.nullable_bytes("d", true), Ok(None));
        assert_eq!(
            reader(&[0x7f, 0xff, 0xff, 0xff]).bytes("x", false).unwrap_err().problem,
            Problem::TooLong {
                len: i32::MAX as u64,
                remaining: 0
            }
        );
    }

    #[test]
    fn array_lengths_are_checked_before_allocating() {
        // 3 elements of at least 2 bytes need 6 bytes: 5 are not enough.
        let err = reader(&[0, 0, 0, 3, 0, 0, 0, 0, 0])
            .array_len("a", false, 2)
            .unwrap_err();
        assert_eq!(
            err.problem,
            Problem::TooManyElements {
                count: 3,
                min_size: 2,
                remaining: 5
            }
        );
        assert_eq!(reader(&[0, 0, 0, 3, 0, 0, 0, 0, 0, 0]).array_len("a", false, 2), Ok(3));
        assert_eq!(
            reader(&[0xff, 0xff, 0xff, 0xff]).nullable_array_len("a", false, 1),
            Ok(None)
        );
        assert_eq!(reader(&[0]).nullable_array_len("a", true, 1), Ok(None));
        assert_eq!(reader(&[1]).array_len("a", true, 100), Ok(0));
        let huge = reader(&[0xff, 0xff, 0xff, 0xff, 0x0f])
            .array_len("a", true, 1)
            .unwrap_err();
        assert!(matches!(
            huge.problem,
            Problem::TooManyElements { count: 0xffff_fffe, .. }
        ));
        let mut r = reader(&[3, 0, 7, 0, 8]); // compact: 3 means two elements
        assert_eq!(r.array_of("a", true, 2, |r| r.i16("e")), Ok(vec![7, 8]));
    }

    #[test]
    fn tagged_fields_known_unknown_and_positions() {
        // Two fields: tag 5 (unknown, 2 bytes), tag 1 (known i32 = 9), then a trailing byte.
        let mut r = reader(&[2, 5, 2, 0xaa, 0xbb, 1, 4, 0, 0, 0, 9, 0x77]);
        let mut seen = Vec::new();
        r.tagged_fields("tags", |tag, v| match tag {
            1 => {
                seen.push((v.position(), v.i32("one")?));
                Ok(true)
            }
            _ => Ok(false),
        })
        .unwrap();
        assert_eq!(seen, vec![(7, 9)]);
        assert_eq!(r.remaining(), 1);
        // A known field must use exactly its declared size.
        let err = reader(&[1, 1, 5, 0, 0, 0, 9, 0])
            .tagged_fields("tags", |_, v| v.i32("one").map(|_| true))
            .unwrap_err();
        assert_eq!((err.offset, err.problem), (7, Problem::TrailingBytes(1)));
        // A size past the end, and a count that cannot fit, are refused.
        let err = reader(&[1, 0, 9, 0]).skip_tagged_fields("tags").unwrap_err();
        assert!(matches!(err.problem, Problem::TooLong { len: 9, .. }));
        let err = reader(&[0xff, 0xff, 0xff, 0xff, 0x0f])
            .skip_tagged_fields("tags")
            .unwrap_err();
        assert!(matches!(err.problem, Problem::TooManyElements { .. }));
    }

    #[test]
    fn uuid_and_versions() {
        let id = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        assert_eq!(reader(id.as_bytes()).uuid("id"), Ok(id));
        assert!(check_version(4, 4, 17).is_ok());
        assert!(check_version(18, 4, 17).is_err());
    }
}
