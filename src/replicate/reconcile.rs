//! Restart without duplicates: match the target's tail to the source.
//!
//! The committed position says where the source stood when progress was last committed,
//! and (in its metadata) where the target stood. Anything the target holds past that target
//! offset was written by kferry after the commit, and before it stopped or was killed. Since
//! kferry forwards payloads untouched, each such target batch has exactly the payload of the
//! next forwardable source batch; walking both logs side by side and comparing payload bytes
//! tells how far the source is already replicated. Replication resumes after the last match.
//!
//! The source side is read exactly as the fetcher reads it: through the read-committed filter
//! (aborted transactions, markers and empty batches dropped) and the same slow paths (which
//! are deterministic), so what it yields is byte for byte what kferry would have sent.
//!
//! If a target batch does not match (someone else writes to the target partition, or the
//! target was changed), kferry resumes after the last match and says so: records may then be
//! duplicated, never lost.

use std::collections::VecDeque;

use super::counters::PartitionCounters;
use super::slowpath::{release, upconvert_legacy, SlowPathOptions};
use super::txn::TxnFilter;
use crate::batch::{BlobIter, FetchedEntry, RecordBatch};
use crate::wire::fetch::{fetch, FetchParams, PartitionFetch, READ_COMMITTED};
use crate::wire::{error::check_code, Cluster, Purpose, WireError};

use super::partition::Acked;

/// Reads the forwardable batches of one partition from an offset on.
struct BatchReader<'a> {
    cluster: &'a Cluster,
    topic: String,
    partition: i32,
    next: i64,
    isolation_level: i8,
    buffered: VecDeque<RecordBatch>,
    /// The high watermark from the last fetch (-1 before the first). Taken from Fetch, not
    /// ListOffsets: some brokers (tansu 0.6) answer ListOffsets(latest) wrongly.
    high_watermark: i64,
    /// For the source: the fetcher's read-committed filter and slow-path settings.
    source: Option<(TxnFilter, SlowPathOptions)>,
    /// Counters the slow path needs; thrown away (this is not replication).
    scratch: PartitionCounters,
}

impl<'a> BatchReader<'a> {
    fn new(cluster: &'a Cluster, topic: &str, partition: i32, from: i64, isolation_level: i8) -> BatchReader<'a> {
        BatchReader {
            cluster,
            topic: topic.to_string(),
            partition,
            next: from,
            isolation_level,
            buffered: VecDeque::new(),
            high_watermark: -1,
            source: None,
            scratch: PartitionCounters::default(),
        }
    }

    /// Reads as the fetcher does: read-committed filtering and the same slow paths.
    fn reading_source(mut self, opts: SlowPathOptions) -> BatchReader<'a> {
        self.source = Some((TxnFilter::default(), opts));
        self
    }

    /// The next data batch (control and empty batches skipped); `None` at the log end.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>, WireError> {
        loop {
            if let Some(b) = self.buffered.pop_front() {
                return Ok(Some(b));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Fetches once; false when nothing new came back.
    async fn fill(&mut self) -> Result<bool, WireError> {
        let meta = self.cluster.metadata();
        let unknown = || WireError::UnknownTopic {
            cluster: self.cluster.name().to_string(),
            topic: format!("{}-{}", self.topic, self.partition),
        };
        let leader = meta.leader(&self.topic, self.partition).ok_or_else(unknown)?;
        let topic_id = meta.topics.get(&self.topic).map(|t| t.id).unwrap_or_default();
        let conn = self.cluster.broker(leader, Purpose::Control).await?;
        let params = FetchParams {
            max_wait_ms: 100,
            min_bytes: 1,
            max_bytes: 8 << 20,
            isolation_level: self.isolation_level,
        };
        let request = PartitionFetch {
            topic: self.topic.clone(),
            topic_id,
            partition: self.partition,
            fetch_offset: self.next,
            partition_max_bytes: 4 << 20,
        };
        let Some(fetched) = fetch(&conn, params, &[request]).await?.into_iter().next() else {
            return Ok(false);
        };
        check_code(self.cluster.name(), fetched.error_code, || {
            format!("Fetch {}-{}", self.topic, self.partition)
        })?;
        self.high_watermark = fetched.high_watermark;
        let before = self.next;
        if let (Some(list), Some((txn, _))) = (&fetched.aborted, self.source.as_mut()) {
            txn.handle_aborted_list(list);
        }
        for entry in BlobIter::new(fetched.records, self.next) {
            let Ok(entry) = entry else { break };
            self.next = entry.next_offset();
            if !self.take(entry) {
                break;
            }
        }
        Ok(self.next > before)
    }
}

impl BatchReader<'_> {
    /// Buffers what one fetched entry yields; false to stop reading (an entry kferry itself
    /// would stop at).
    fn take(&mut self, entry: FetchedEntry) -> bool {
        let Some((txn, opts)) = self.source.as_mut() else {
            // The target: kferry's own batches, never control or empty.
            if let FetchedEntry::Batch(b) = entry {
                self.buffered.push_back(b);
                return true;
            }
            return false;
        };
        let batch = match entry {
            FetchedEntry::Batch(b) | FetchedEntry::Straddling(b) => b,
            FetchedEntry::Legacy { offset, bytes, .. } => {
                return match upconvert_legacy(offset, &bytes, opts, &self.scratch) {
                    Ok(pieces) => {
                        self.buffered.extend(pieces.into_iter().map(|f| f.batch));
                        true
                    }
                    Err(_) => false,
                };
            }
        };
        if txn.handle_batch(batch).is_err() {
            return false;
        }
        let mut pieces = Vec::new();
        let ok = release(txn, opts, &self.scratch, false, &mut pieces).is_ok();
        self.buffered.extend(pieces.into_iter().map(|f| f.batch));
        if !ok {
            return false;
        }
        true
    }
}

/// Source batches read, at most, to find the one the target's tail starts with.
const MAX_SEARCH_BATCHES: usize = 100_000;

/// The offsets of one partition that [`resume_position`] starts from.
#[derive(Debug, Clone, Copy)]
pub struct ResumeInput {
    /// The position committed on the source, if any.
    pub committed: Option<Acked>,
    /// The target offset committed on the target cluster, if any (see [`super::progress`]).
    pub target_committed: Option<i64>,
    /// Source offset to use when nothing was committed.
    pub start: i64,
    /// The target partition's log start offset.
    pub target_earliest: i64,
}

/// Where to resume one partition, and how many target batches were already there.
///
/// The target offset to compare from is, by preference: the one in the source commit's
/// metadata (exact), the target-side commit (made just *before* the source commit, so it is
/// never behind it), or the target's log start. The first target batch from there is looked
/// for among the source batches from the committed position on; from the match, the two logs
/// are walked side by side.
pub async fn resume_position(
    source: &Cluster,
    target: &Cluster,
    source_topic: &str,
    target_topic: &str,
    partition: i32,
    input: ResumeInput,
    opts: SlowPathOptions,
) -> Result<(Acked, usize), WireError> {
    let target_from = input
        .committed
        .and_then(|c| c.target_next)
        .or(input.target_committed)
        .unwrap_or(input.target_earliest)
        .max(input.target_earliest);
    let source_from = input.committed.map_or(input.start, |c| c.source_next);
    let mut position = Acked {
        source_next: source_from,
        target_next: Some(target_from),
    };
    let mut src = BatchReader::new(source, source_topic, partition, source_from, READ_COMMITTED).reading_source(opts);
    let mut tgt = BatchReader::new(target, target_topic, partition, target_from, 0);
    let Some(first) = tgt.next_batch().await? else {
        return Ok((position, 0));
    };
    let Some(found) = find_in_source(&mut src, &first).await? else {
        tracing::warn!(
            cluster = target.name(),
            "{target_topic}-{partition}: the batch at target offset {} matches no source batch of \
             {source_topic}-{partition} from offset {source_from}; resuming there (records may be duplicated)",
            first.base_offset()
        );
        position.target_next = Some(tgt.high_watermark.max(target_from));
        return Ok((position, 0));
    };
    position = Acked {
        source_next: found.next_offset(),
        target_next: Some(first.next_offset()),
    };
    let mut matched = 1;
    while let Some(t) = tgt.next_batch().await? {
        match src.next_batch().await? {
            Some(s) if same_batch(&s, &t) => {
                position = Acked {
                    source_next: s.next_offset(),
                    target_next: Some(t.next_offset()),
                };
                matched += 1;
            }
            _ => {
                tracing::warn!(
                    cluster = target.name(),
                    "{target_topic}-{partition}: target offset {} holds a batch that does not match source \
                     {source_topic}-{partition} at offset {}; resuming there (records may be duplicated)",
                    t.base_offset(),
                    position.source_next
                );
                position.target_next = Some(tgt.high_watermark.max(target_from));
                break;
            }
        }
    }
    Ok((position, matched))
}

/// Reads source batches until one carries the same records as `target`.
async fn find_in_source(src: &mut BatchReader<'_>, target: &RecordBatch) -> Result<Option<RecordBatch>, WireError> {
    for _ in 0..MAX_SEARCH_BATCHES {
        match src.next_batch().await? {
            Some(s) if same_batch(&s, target) => return Ok(Some(s)),
            Some(_) => continue,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// Same records: same count and the same bytes after the header (kferry never changes them).
/// The header fields compared are the ones kferry never rewrites; with them, two batches of
/// one identical record each still differ by their timestamps.
fn same_batch(source: &RecordBatch, target: &RecordBatch) -> bool {
    source.record_count() == target.record_count()
        && source.last_offset_delta() == target.last_offset_delta()
        && source.base_timestamp() == target.base_timestamp()
        && source.max_timestamp() == target.max_timestamp()
        && source.compression() == target.compression()
        && source.payload() == target.payload()
}
