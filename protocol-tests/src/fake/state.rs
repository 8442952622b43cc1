//! The fake broker's data: topics, partition logs as raw bytes, committed group offsets.
//!
//! A partition log is one byte blob, exactly as Fetch returns it, plus an index of its
//! entries: where each starts and ends and its last offset. A v2 batch's last offset is
//! `baseOffset + lastOffsetDelta`; a legacy entry's is its offset field (for a compressed
//! wrapper, the offset of its last inner message). Nothing else is parsed.
//!
//! References: Kafka `clients/.../record/ByteBufferLogInputStream.java` (entry framing).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use uuid::Uuid;

/// Log overhead: offset (8) and size (4).
const LOG_OVERHEAD: usize = 12;
/// Position of the magic byte in every entry.
const MAGIC_AT: usize = 16;
/// Smallest v0 message after the log overhead.
const MIN_MESSAGE: usize = 14;
/// Size of a v2 batch header, log overhead included.
const V2_HEADER: usize = 61;

/// An aborted transaction, as a read_committed Fetch lists it (KIP-98).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// Its first offset in the partition.
    pub first_offset: i64,
    /// Offset of its abort marker: Fetch lists it while it overlaps the data returned.
    pub last_offset: i64,
}

/// An offset committed through OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The committed offset.
    pub offset: i64,
    /// The commit's metadata string.
    pub metadata: Option<String>,
}

/// One whole entry of a log blob.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    last_offset: i64,
}

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
const UNDEFINED: (i32, i64) = (-1, -1);

/// One partition: its log and offsets.
#[derive(Debug, Default)]
pub(super) struct Partition {
    log: Vec<u8>,
    entries: Vec<Entry>,
    /// The leader epoch cache: (epoch, start offset) for each epoch seen in a v2 batch's
    /// `partitionLeaderEpoch`, increasing, as Kafka's `LeaderEpochFileCache` keeps it.
    epochs: Vec<(i32, i64)>,
    pub log_start_offset: i64,
    /// `None`: the log end offset.
    pub high_watermark: Option<i64>,
    /// `None`: the high watermark.
    pub last_stable_offset: Option<i64>,
    pub aborted: Vec<AbortedTxn>,
}

/// What [`Partition::read`] returns.
#[derive(Debug)]
pub(super) struct Read {
    pub records: Bytes,
    /// One past the last offset of the last whole entry returned.
    pub upper_offset: i64,
}

impl Partition {
    /// Appends whole entries; nothing is appended if any of `bytes` is not one.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), String> {
        let base = self.log.len();
        let mut new = Vec::new();
        let mut new_epochs: Vec<(i32, i64)> = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            if rest.len() < MAGIC_AT + 1 {
                return Err(format!("{} trailing bytes at byte {pos} are not an entry", rest.len()));
            }
            let offset = i64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
            let size = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s >= MIN_MESSAGE && LOG_OVERHEAD + s <= rest.len())
                .ok_or_else(|| format!("entry at byte {pos} has size {size}"))?;
            let last_offset = match rest[MAGIC_AT] {
                0 | 1 => offset,
                2 if size + LOG_OVERHEAD >= V2_HEADER => {
                    let epoch = i32::from_be_bytes(rest[12..16].try_into().expect("4 bytes"));
                    let latest = new_epochs.last().or(self.epochs.last()).map_or(-1, |e| e.0);
                    if epoch > latest {
                        new_epochs.push((epoch, offset));
                    }
                    offset + i64::from(i32::from_be_bytes(rest[23..27].try_into().expect("4 bytes")))
                }
                magic => return Err(format!("entry at byte {pos}: magic {magic} or size {size}")),
            };
            let end = pos + LOG_OVERHEAD + size;
            new.push(Entry {
                start: base + pos,
                end: base + end,
                last_offset,
            });
            pos = end;
        }
        self.log.extend_from_slice(bytes);
        self.entries.extend(new);
        self.epochs.extend(new_epochs);
        Ok(())
    }

    /// One past the last offset of the last entry (the log start offset when empty).
    pub fn log_end_offset(&self) -> i64 {
        self.entries
            .iter()
            .map(|e| e.last_offset + 1)
            .max()
            .unwrap_or(0)
            .max(self.log_start_offset)
    }

    /// Removes every entry from the one that starts at `offset` on (which must be an entry's
    /// first offset or the log end), and the epochs that start there or later, as a replica
    /// truncating its log after an unclean leader election does. A pinned high watermark or
    /// last stable offset past the new end comes down to it.
    pub fn truncate(&mut self, offset: i64) -> Result<(), String> {
        let keep = self.entries.iter().take_while(|e| e.last_offset < offset).count();
        let first_offset = |e: &Entry| i64::from_be_bytes(self.log[e.start..e.start + 8].try_into().expect("8 bytes"));
        match self.entries.get(keep) {
            Some(e) if first_offset(e) != offset => {
                return Err(format!(
                    "offset {offset} is inside the entry starting at {}",
                    first_offset(e)
                ))
            }
            None if offset != self.log_end_offset() => {
                return Err(format!("offset {offset} is past the log end {}", self.log_end_offset()))
            }
            _ => {}
        }
        let end = self.entries.get(keep).map_or(self.log.len(), |e| e.start);
        self.log.truncate(end);
        self.entries.truncate(keep);
        self.epochs.retain(|&(_, start)| start < offset);
        self.high_watermark = self.high_watermark.map(|h| h.min(offset));
        self.last_stable_offset = self.last_stable_offset.map(|l| l.min(offset));
        Ok(())
    }

    /// The largest epoch at most `requested` and the end offset of `requested` in this log,
    /// as Kafka's `LeaderEpochFileCache.endOffsetFor` answers it: for the latest epoch, the log
    /// end offset; for an older one, the start offset of the next higher epoch; (-1, -1) when
    /// `requested` is undefined or above every epoch known.
    pub fn end_offset_for(&self, requested: i32) -> (i32, i64) {
        if requested < 0 {
            return UNDEFINED;
        }
        if self.epochs.last().map(|e| e.0) == Some(requested) {
            return (requested, self.log_end_offset());
        }
        let Some(&(_, higher_start)) = self.epochs.iter().find(|e| e.0 > requested) else {
            return UNDEFINED;
        };
        match self.epochs.iter().rev().find(|e| e.0 <= requested) {
            Some(&(floor, _)) => (floor, higher_start),
            None => (requested, higher_start),
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.unwrap_or_else(|| self.log_end_offset())
    }

    pub fn last_stable_offset(&self) -> i64 {
        self.last_stable_offset.unwrap_or_else(|| self.high_watermark())
    }

    /// The entries from the first one whose last offset is at or above `fetch_offset`,
    /// below `max_offset`, up to `limit` bytes. With `min_one`, the first entry is
    /// returned whole even when larger; with `cut`, the bytes after the last whole entry
    /// are filled up to `limit` with the start of the next one, as Kafka does.
    pub fn read(&self, fetch_offset: i64, max_offset: i64, limit: usize, min_one: bool, cut: bool) -> Read {
        let first = self.entries.iter().position(|e| e.last_offset >= fetch_offset);
        let mut upper_offset = fetch_offset;
        let (Some(first), true) = (first, fetch_offset < max_offset) else {
            return Read {
                records: Bytes::new(),
                upper_offset,
            };
        };
        let start = self.entries[first].start;
        let mut end = start;
        let mut next = None;
        for e in &self.entries[first..] {
            let fits = e.end - start <= limit || (min_one && end == start);
            if e.last_offset >= max_offset || !fits {
                next = Some(*e).filter(|_| e.last_offset < max_offset);
                break;
            }
            end = e.end;
            upper_offset = e.last_offset + 1;
        }
        if let (true, Some(e)) = (cut, next) {
            end = e.end.min(start + limit).max(end);
        }
        Read {
            records: Bytes::copy_from_slice(&self.log[start..end]),
            upper_offset,
        }
    }

    /// Aborted transactions overlapping `[from, upper)`.
    pub fn aborted_between(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < upper)
            .copied()
            .collect()
    }
}

/// One topic.
#[derive(Debug)]
pub(super) struct Topic {
    pub id: Uuid,
    pub partitions: Vec<Partition>,
}

/// Everything the fake broker holds.
#[derive(Debug, Default)]
pub(super) struct State {
    pub topics: BTreeMap<String, Topic>,
    /// group -> (topic, partition) -> committed offset.
    groups: HashMap<String, HashMap<(String, i32), Committed>>,
    topics_created: u32,
}

impl State {
    pub fn create_topic(&mut self, name: &str, partitions: i32) {
        self.topics_created += 1;
        // Deterministic, distinct, never nil: "kferry-fake-" in ASCII, then a counter.
        let mut id = *b"kferry-fake-\0\0\0\0";
        id[12..].copy_from_slice(&self.topics_created.to_be_bytes());
        let id = Uuid::from_bytes(id);
        let partitions = (0..partitions).map(|_| Partition::default()).collect();
        self.topics.insert(name.to_string(), Topic { id, partitions });
    }

    /// Grows a topic to `partitions` (new ones empty); fewer than it has changes nothing.
    pub fn add_partitions(&mut self, name: &str, partitions: i32) {
        if let Some(t) = self.topics.get_mut(name) {
            while (t.partitions.len() as i32) < partitions {
                t.partitions.push(Partition::default());
            }
        }
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&Partition> {
        self.topics.get(topic)?.partitions.get(usize::try_from(partition).ok()?)
    }

    pub fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Partition> {
        self.topics
            .get_mut(topic)?
            .partitions
            .get_mut(usize::try_from(partition).ok()?)
    }

    /// The name of the topic with id `id`.
    pub fn topic_name(&self, id: Uuid) -> Option<&str> {
        self.topics.iter().find(|(_, t)| t.id == id).map(|(n, _)| n.as_str())
    }

    pub fn commit(&mut self, group: &str, topic: &str, partition: i32, committed: Committed) {
        self.groups
            .entry(group.to_string())
            .or_default()
            .insert((topic.to_string(), partition), committed);
    }

    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<&Committed> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// Every group that committed an offset, sorted.
    pub fn group_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = self.groups.keys().cloned().collect();
        out.sort();
        out
    }

    /// Every (topic, partition) the group committed, sorted.
    pub fn committed_partitions(&self, group: &str) -> Vec<(String, i32)> {
        let mut out: Vec<_> = self
            .groups
            .get(group)
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default();
        out.sort();
        out
    }
}
