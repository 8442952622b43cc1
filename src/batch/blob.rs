//! Walking the `records` blob of a Fetch response partition: [`BlobIter`].
//!
//! A fetched blob is a concatenation of log entries, each starting with
//! `offset: i64, length: i32` (the 12-byte log overhead) and carrying its magic at byte
//! 16. Entries are v2 record batches or, from old segments, v0/v1 message-set entries.
//! Brokers cut the response at the fetch's `max_bytes`, so the last entry may be
//! partial; this is normal and not an error. The first batch may also start before the
//! fetch offset, because brokers serve whole batches.
//!
//! [`BlobIter`] yields one [`FetchedEntry`] per whole entry, zero-copy, and:
//!
//! * skips entries that end below the fetch offset (counted, never yielded);
//! * yields a v2 batch that *contains* the fetch offset but starts before it as
//!   [`FetchedEntry::Straddling`], a separate variant so that no caller can forward it
//!   by accident: its records below the fetch offset were already replicated;
//! * stops with `None` at a partial trailing entry and reports its size through
//!   [`BlobIter::truncated_bytes`];
//! * stops after yielding one error for bytes that cannot be a log entry (a length
//!   below the minimum for its magic, an unknown magic).
//!
//! Batch CRCs are not checked here (see [`RecordBatch::verify_crc`]); the CRC patch in
//! [`crate::batch::rewrite`] keeps a corrupt batch detectably corrupt anyway.
//!
//! A blob that is truncated and yields nothing means one entry is larger than the
//! fetch's `max_bytes` (only possible on pre-KIP-74 fetch versions): fetch again with a
//! larger limit.
//!
//! # References
//!
//! * Kafka `clients/.../record/ByteBufferLogInputStream.java` (`nextBatch`: the same
//!   17-byte peek, minimum sizes and truncation rule)
//! * Kafka `clients/.../record/LegacyRecord.java` (v0/v1 record overheads)
//! * Kafka `clients/.../consumer/internals/CompletedFetch.java` (skipping below the
//!   fetch offset)
//! * KIP-74 (fetch returns at least one whole batch), KIP-98 (v2 batches)

use std::iter::FusedIterator;

use bytes::Bytes;

use super::{field, BatchError, RecordBatch, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};

/// Bytes needed to read an entry's offset, length and magic (`HEADER_SIZE_UP_TO_MAGIC`).
const HEADER_SIZE_UP_TO_MAGIC: usize = field::MAGIC + 1;
/// Smallest v0 message after the log overhead (`LegacyRecord.RECORD_OVERHEAD_V0`).
const MIN_LENGTH_V0: usize = 14;
/// Smallest v1 message after the log overhead (`LegacyRecord.RECORD_OVERHEAD_V1`).
const MIN_LENGTH_V1: usize = 22;
/// Smallest v2 `batchLength`: the header after the log overhead.
const MIN_LENGTH_V2: usize = HEADER_LEN - LOG_OVERHEAD;

/// One whole log entry from a fetched blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchedEntry {
    /// A v2 batch whose `baseOffset` is at or above the fetch offset.
    Batch(RecordBatch),
    /// A v2 batch with `baseOffset < fetch offset <= lastOffset`. Its leading records
    /// are below the fetch offset: forwarding it whole would duplicate them.
    Straddling(RecordBatch),
    /// A v0/v1 message-set entry, to be reported or up-converted; `bytes` is the whole
    /// entry including its 12-byte log overhead. For a compressed wrapper, `offset` is
    /// the offset of its last inner message.
    Legacy {
        /// The entry's offset field.
        offset: i64,
        /// 0 or 1.
        magic: u8,
        /// The whole entry.
        bytes: Bytes,
    },
}

impl FetchedEntry {
    /// The v2 batch, straddling or not.
    pub fn batch(&self) -> Option<&RecordBatch> {
        match self {
            FetchedEntry::Batch(b) | FetchedEntry::Straddling(b) => Some(b),
            FetchedEntry::Legacy { .. } => None,
        }
    }
    /// The offset after this entry: where fetching resumes once it is handled.
    pub fn next_offset(&self) -> i64 {
        match self {
            FetchedEntry::Batch(b) | FetchedEntry::Straddling(b) => b.next_offset(),
            FetchedEntry::Legacy { offset, .. } => offset.saturating_add(1),
        }
    }
    /// Size of the entry in bytes.
    pub fn len(&self) -> usize {
        match self {
            FetchedEntry::Batch(b) | FetchedEntry::Straddling(b) => b.len(),
            FetchedEntry::Legacy { bytes, .. } => bytes.len(),
        }
    }
    /// Always false: every entry has at least its log overhead.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Iterator over the whole entries of a fetched `records` blob; see the module docs.
#[derive(Debug, Clone)]
pub struct BlobIter {
    blob: Bytes,
    pos: usize,
    fetch_offset: i64,
    skipped: usize,
    next_fetch_offset: Option<i64>,
    done: bool,
}

impl BlobIter {
    /// Iterates `blob`, fetched at `fetch_offset`.
    pub fn new(blob: Bytes, fetch_offset: i64) -> Self {
        BlobIter {
            blob,
            pos: 0,
            fetch_offset,
            skipped: 0,
            next_fetch_offset: None,
            done: false,
        }
    }

    /// Entries skipped so far because they end below the fetch offset.
    pub fn skipped_below_fetch_offset(&self) -> usize {
        self.skipped
    }
    /// Bytes consumed so far (whole entries, yielded or skipped).
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Bytes of a partial trailing entry, once the iterator has returned `None`
    /// (before that, or after an error, the count of unread bytes).
    pub fn truncated_bytes(&self) -> usize {
        self.blob.len() - self.pos
    }
    /// Whether the blob ended with a partial entry (see [`truncated_bytes`]).
    ///
    /// [`truncated_bytes`]: BlobIter::truncated_bytes
    pub fn is_truncated(&self) -> bool {
        self.truncated_bytes() > 0
    }
    /// One past the last offset of the last whole entry read (yielded or skipped):
    /// the next fetch offset once all yielded entries are handled. `None` if no whole
    /// entry was read.
    pub fn next_fetch_offset(&self) -> Option<i64> {
        self.next_fetch_offset
    }

    /// Reads the entry at `pos`: `Ok(None)` when the rest is a partial entry.
    fn read_entry(&self) -> Result<Option<FetchedEntry>, BatchError> {
        let rest = &self.blob[self.pos..];
        if rest.len() < HEADER_SIZE_UP_TO_MAGIC {
            return Ok(None);
        }
        let offset = i64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        let corrupt = |reason| BatchError::Corrupt {
            offset,
            position: self.pos,
            reason,
        };
        let length = match usize::try_from(length) {
            Ok(len) if len >= MIN_LENGTH_V0 => len,
            _ => return Err(corrupt("entry length below the smallest message size")),
        };
        if LOG_OVERHEAD + length > rest.len() {
            return Ok(None);
        }
        let bytes = self.blob.slice(self.pos..self.pos + LOG_OVERHEAD + length);
        match rest[field::MAGIC] {
            MAGIC_V2 if length < MIN_LENGTH_V2 => Err(corrupt("batchLength below the v2 header size")),
            MAGIC_V2 => Ok(Some(FetchedEntry::Batch(RecordBatch::parse(bytes)?))),
            1 if length < MIN_LENGTH_V1 => Err(corrupt("entry length below the v1 message size")),
            magic @ (0 | 1) => Ok(Some(FetchedEntry::Legacy { offset, magic, bytes })),
            magic => Err(BatchError::BadMagic { offset, magic }),
        }
    }

    /// Sorts a whole entry against the fetch offset: `None` to skip it.
    fn classify(&self, entry: FetchedEntry) -> Option<FetchedEntry> {
        match entry {
            FetchedEntry::Batch(batch) if batch.last_offset() < self.fetch_offset => None,
            FetchedEntry::Batch(batch) if batch.base_offset() < self.fetch_offset => {
                Some(FetchedEntry::Straddling(batch))
            }
            FetchedEntry::Legacy { offset, .. } if offset < self.fetch_offset => None,
            other => Some(other),
        }
    }
}

impl Iterator for BlobIter {
    type Item = Result<FetchedEntry, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let entry = match self.read_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            };
            self.pos += entry.len();
            self.next_fetch_offset = Some(entry.next_offset());
            match self.classify(entry) {
                Some(entry) => return Some(Ok(entry)),
                None => self.skipped += 1,
            }
        }
        self.done = true;
        None
    }
}

impl FusedIterator for BlobIter {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn batch_at(base: i64, count: i32) -> RecordBatch {
        (0..count)
            .fold(BatchBuilder::new().base_offset(base), |b, i| b.value(format!("v{i}")))
            .build()
    }

    fn blob_of(batches: &[RecordBatch]) -> Bytes {
        let mut out = BytesMut::new();
        for b in batches {
            out.extend_from_slice(b.as_bytes());
        }
        out.freeze()
    }

    /// A v1 message entry: offset, length, crc, magic 1, attributes, timestamp, null
    /// key, value "x" (the CRC is not checked here).
    fn legacy_v1(offset: i64) -> Vec<u8> {
        let mut e = offset.to_be_bytes().to_vec();
        e.extend_from_slice(&23i32.to_be_bytes());
        e.extend_from_slice(&[0, 0, 0, 0, 1, 0]);
        e.extend_from_slice(&0i64.to_be_bytes());
        e.extend_from_slice(&(-1i32).to_be_bytes());
        e.extend_from_slice(&1i32.to_be_bytes());
        e.push(b'x');
        e
    }

    #[test]
    fn yields_whole_batches_and_reports_truncation() {
        let batches = [batch_at(10, 3), batch_at(13, 2), batch_at(15, 4)];
        let full = blob_of(&batches);
        let cut = full.slice(..full.len() - 5);
        let mut it = BlobIter::new(cut.clone(), 10);
        assert_eq!(it.next(), Some(Ok(FetchedEntry::Batch(batches[0].clone()))));
        let second = it.next().unwrap().unwrap();
        assert_eq!(
            second.batch().unwrap().as_bytes().as_ptr(),
            cut[batches[0].len()..].as_ptr()
        );
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        assert_eq!(it.truncated_bytes(), batches[2].len() - 5);
        assert!(it.is_truncated());
        assert_eq!(it.next_fetch_offset(), Some(15));
    }

    #[test]
    fn skips_below_and_flags_straddling() {
        let blob = blob_of(&[batch_at(0, 5), batch_at(5, 5), batch_at(10, 5)]);
        let mut it = BlobIter::new(blob, 7);
        assert!(matches!(it.next(), Some(Ok(FetchedEntry::Straddling(b))) if b.base_offset() == 5));
        assert!(matches!(it.next(), Some(Ok(FetchedEntry::Batch(b))) if b.base_offset() == 10));
        assert_eq!(it.next(), None);
        assert_eq!(it.skipped_below_fetch_offset(), 1);
        assert!(!it.is_truncated());
        assert_eq!(it.next_fetch_offset(), Some(15));
    }

    #[test]
    fn legacy_entries_are_passed_through() {
        let mut blob = legacy_v1(3);
        blob.extend_from_slice(&legacy_v1(4));
        blob.extend_from_slice(batch_at(5, 1).as_bytes());
        let items: Vec<_> = BlobIter::new(Bytes::from(blob), 4).collect::<Result<_, _>>().unwrap();
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[0], FetchedEntry::Legacy { offset: 4, magic: 1, bytes } if bytes.len() == 35));
        assert!(matches!(&items[1], FetchedEntry::Batch(b) if b.base_offset() == 5));
    }

    #[test]
    fn corrupt_length_and_magic_end_iteration() {
        let mut blob = batch_at(0, 1).as_bytes().to_vec();
        let mut bad = batch_at(1, 1).as_bytes().to_vec();
        bad[8..12].copy_from_slice(&5i32.to_be_bytes());
        blob.extend_from_slice(&bad);
        let mut it = BlobIter::new(Bytes::from(blob.clone()), 0);
        assert!(it.next().unwrap().is_ok());
        let err = it.next().unwrap().unwrap_err();
        assert!(matches!(err, BatchError::Corrupt { offset: 1, position, .. } if position == blob.len() - bad.len()));
        assert_eq!(it.next(), None);

        let mut magic3 = batch_at(0, 1).as_bytes().to_vec();
        magic3[16] = 3;
        let mut it = BlobIter::new(Bytes::from(magic3), 0);
        assert_eq!(it.next(), Some(Err(BatchError::BadMagic { offset: 0, magic: 3 })));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn short_tails_are_truncation() {
        let blob = batch_at(0, 1).as_bytes().clone();
        for cut in 0..blob.len() {
            let mut it = BlobIter::new(blob.slice(..cut), 0);
            assert_eq!(it.next(), None, "cut at {cut}");
            assert_eq!(it.truncated_bytes(), cut);
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..400), fetch: i64) {
            let mut it = BlobIter::new(Bytes::from(bytes.clone()), fetch);
            let consumed: usize = it.by_ref().flatten().map(|entry| entry.len()).sum();
            prop_assert!(it.position() <= bytes.len());
            prop_assert!(consumed <= it.position());
        }

        #[test]
        fn every_cut_yields_a_prefix(counts in proptest::collection::vec(1i32..5, 1..6), cut_frac in 0.0f64..=1.0) {
            let mut base = 0;
            let batches: Vec<_> = counts.iter().map(|&c| { let b = batch_at(base, c); base += i64::from(c); b }).collect();
            let blob = blob_of(&batches);
            let cut = (blob.len() as f64 * cut_frac) as usize;
            let got: Vec<_> = BlobIter::new(blob.slice(..cut), 0).collect::<Result<_, _>>().unwrap();
            let whole: usize = got.iter().map(FetchedEntry::len).sum();
            prop_assert_eq!(got.len(), batches.iter().scan(0, |n, b| { *n += b.len(); Some(*n) }).filter(|&n| n <= cut).count());
            prop_assert!(cut - whole < batches.get(got.len()).map_or(1, |b| b.len()));
        }
    }
}
