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
//!
//! At scale ([`resume_partitions`]): one Fetch per target broker finds the partitions that
//! hold anything past their committed target offset ([`probe`]); only those are matched, up to
//! [`RECONCILE_CONCURRENCY`] at a time, their reads coalesced into one Fetch per broker
//! ([`reads`]).

mod probe;
pub(crate) mod reads;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use super::counters::PartitionCounters;
use super::slowpath::{release, upconvert_legacy, SlowPathOptions};
use super::txn::TxnFilter;
use crate::batch::{BlobIter, FetchedEntry, RecordBatch};
use crate::wire::admin::TopicPartition;
use crate::wire::fetch::{PartitionFetch, READ_COMMITTED};
use crate::wire::{error::check_code, Cluster, WireError};
use reads::Reads;

use super::partition::Acked;

/// Partitions matched at the same time at start. Their reads are coalesced, so this is how
/// many partitions one Fetch per broker carries at most, not how many requests are in flight
/// (one per broker and cluster). It bounds what reads hold: 256 partitions × 2 logs ×
/// [`reads::PARTITION_MAX_BYTES`] (256 KiB) = 128 MiB from Kafka at worst. Measured on tansu,
/// 10,000 partitions with a tail each are matched in 8 to 13 s (64 at a time: 31 s).
pub const RECONCILE_CONCURRENCY: usize = 256;

/// Reads the forwardable batches of one partition from an offset on.
struct BatchReader<'a> {
    reads: &'a Reads,
    topic: String,
    partition: i32,
    next: i64,
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
    fn new(reads: &'a Reads, topic: &str, partition: i32, from: i64) -> BatchReader<'a> {
        BatchReader {
            reads,
            topic: topic.to_string(),
            partition,
            next: from,
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
    ///
    /// The read shares a Fetch with other partitions' reads ([`reads`]). If it brought nothing
    /// but may have been cut short by the partitions ahead of it, it is read again, first in
    /// its Fetch: "nothing" is only ever what a one-partition Fetch would answer.
    async fn fill(&mut self) -> Result<bool, WireError> {
        let cluster = self.reads.cluster();
        let meta = cluster.metadata();
        let unknown = || WireError::UnknownTopic {
            cluster: cluster.name().to_string(),
            topic: format!("{}-{}", self.topic, self.partition),
        };
        let leader = meta.leader(&self.topic, self.partition).ok_or_else(unknown)?;
        let topic_id = meta.topics.get(&self.topic).map(|t| t.id).unwrap_or_default();
        let request = PartitionFetch {
            topic: self.topic.clone(),
            topic_id,
            partition: self.partition,
            fetch_offset: self.next,
            partition_max_bytes: reads::PARTITION_MAX_BYTES,
        };
        let mut first = false;
        loop {
            let answer = self.reads.read(leader, request.clone(), first).await?;
            let cut_short = answer.maybe_cut_short(self.next, self.reads.isolation_level());
            let Some(fetched) = answer.fetched else {
                return Ok(false);
            };
            check_code(cluster.name(), fetched.error_code, || {
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
            if self.next > before || !cut_short {
                return Ok(self.next > before);
            }
            first = true;
        }
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

impl ResumeInput {
    /// The target offset to compare from, by preference: the one in the source commit's
    /// metadata (exact), the target-side commit (made just *before* the source commit, so it is
    /// never behind it), or the target's log start; never below the log start.
    fn target_from(&self) -> i64 {
        self.committed
            .and_then(|c| c.target_next)
            .or(self.target_committed)
            .unwrap_or(self.target_earliest)
            .max(self.target_earliest)
    }

    /// The committed source offset, or the start offset when nothing was committed.
    fn source_from(&self) -> i64 {
        self.committed.map_or(self.start, |c| c.source_next)
    }

    /// Where to resume when the target holds nothing past [`ResumeInput::target_from`].
    fn nothing_on_target(&self) -> Acked {
        Acked {
            source_next: self.source_from(),
            target_next: Some(self.target_from()),
        }
    }
}

/// One partition to resume.
#[derive(Debug, Clone)]
pub struct ResumeJob {
    pub source_topic: String,
    pub target_topic: String,
    pub partition: i32,
    pub input: ResumeInput,
    /// How the fetcher treats the source's batches (reconciliation reads them the same way).
    pub opts: SlowPathOptions,
}

/// Where each job's partition resumes (in `jobs` order), and how many target batches were
/// already there.
///
/// One Fetch per target broker finds the partitions whose target holds anything past
/// [`ResumeInput::target_from`]; the others resume at once where they stood (what
/// [`resume_position`] finds for them too, with a Fetch each). The rest are matched by
/// [`resume_position`], [`RECONCILE_CONCURRENCY`] at a time, their reads coalesced into one
/// Fetch per broker per round.
pub async fn resume_partitions(
    route: &str,
    source: &Arc<Cluster>,
    target: &Arc<Cluster>,
    jobs: Vec<ResumeJob>,
) -> Result<Vec<(Acked, usize)>, WireError> {
    let started = Instant::now();
    let ends: Vec<(TopicPartition, i64)> = jobs
        .iter()
        .map(|j| ((j.target_topic.clone(), j.partition), j.input.target_from()))
        .collect();
    let nothing_past = probe::nothing_past(target, &ends).await?;
    let mut out: Vec<(Acked, usize)> = jobs.iter().map(|j| (j.input.nothing_on_target(), 0)).collect();
    let tails: Vec<usize> = (0..jobs.len()).filter(|&i| !nothing_past[i]).collect();
    let (partitions, with_tails) = (jobs.len(), tails.len());
    if !tails.is_empty() {
        for (i, resumed) in match_tails(source, target, jobs, tails).await? {
            out[i] = resumed;
        }
    }
    tracing::info!(
        route,
        partitions,
        with_tails,
        "restart reconciliation: {with_tails} of {partitions} target partitions hold batches past the \
         committed offset; done in {:?}",
        started.elapsed()
    );
    Ok(out)
}

/// Runs [`resume_position`] for the jobs at `tails`, [`RECONCILE_CONCURRENCY`] at a time;
/// returns (job index, result) in the order they finish.
async fn match_tails(
    source: &Arc<Cluster>,
    target: &Arc<Cluster>,
    jobs: Vec<ResumeJob>,
    tails: Vec<usize>,
) -> Result<Vec<(usize, (Acked, usize))>, WireError> {
    let (src_reads, src_driver) = reads::reads(source.clone(), READ_COMMITTED, RECONCILE_CONCURRENCY);
    let (tgt_reads, tgt_driver) = reads::reads(target.clone(), 0, RECONCILE_CONCURRENCY);
    // Owns every `Reads`: once it returns, the drivers see them all dropped and stop.
    let work = async move {
        let mut jobs: Vec<Option<ResumeJob>> = jobs.into_iter().map(Some).collect();
        let mut tails = tails.into_iter();
        let mut running = JoinSet::new();
        let mut done = Vec::new();
        loop {
            while running.len() < RECONCILE_CONCURRENCY {
                let Some(i) = tails.next() else { break };
                let job = jobs[i].take().expect("each partition once");
                let (src, tgt) = (src_reads.clone(), tgt_reads.clone());
                running.spawn(async move { (i, resume_position(&src, &tgt, &job).await) });
            }
            match running.join_next().await {
                None => return Ok(done),
                Some(Ok((i, Ok(resumed)))) => done.push((i, resumed)),
                Some(Ok((_, Err(e)))) => return Err(e),
                // Tasks are only cancelled by dropping `running`, so this is a panic: pass it on.
                Some(Err(e)) => std::panic::resume_unwind(e.into_panic()),
            }
        }
    };
    let (result, (), ()) = tokio::join!(work, src_driver.run(), tgt_driver.run());
    result
}

/// Where to resume one partition, and how many target batches were already there.
///
/// The first target batch from [`ResumeInput::target_from`] is looked for among the source
/// batches from the committed position on; from the match, the two logs are walked side by
/// side.
async fn resume_position(source: &Reads, target: &Reads, job: &ResumeJob) -> Result<(Acked, usize), WireError> {
    let ResumeJob {
        source_topic,
        target_topic,
        partition,
        input,
        opts,
    } = job;
    let (partition, target_from, source_from) = (*partition, input.target_from(), input.source_from());
    let mut position = input.nothing_on_target();
    let mut src = BatchReader::new(source, source_topic, partition, source_from).reading_source(*opts);
    let mut tgt = BatchReader::new(target, target_topic, partition, target_from);
    let Some(first) = tgt.next_batch().await? else {
        return Ok((position, 0));
    };
    let target_cluster = target.cluster().name();
    let Some(found) = find_in_source(&mut src, &first).await? else {
        tracing::warn!(
            cluster = target_cluster,
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
                    cluster = target_cluster,
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
pub(crate) fn same_batch(source: &RecordBatch, target: &RecordBatch) -> bool {
    source.record_count() == target.record_count()
        && source.last_offset_delta() == target.last_offset_delta()
        && source.base_timestamp() == target.base_timestamp()
        && source.max_timestamp() == target.max_timestamp()
        && source.compression() == target.compression()
        && source.payload() == target.payload()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;
    use crate::wire::ClusterConfig;
    use kferry_protocol_tests::fake::FakeBroker;

    /// A fake broker with topic "t" of `partitions` partitions, partition `p` holding the
    /// batches `log(p)`, and a [`Cluster`] with its metadata.
    pub(super) async fn fake_cluster(
        partitions: i32,
        log: impl Fn(i32) -> Vec<RecordBatch>,
    ) -> (FakeBroker, Arc<Cluster>) {
        let fake = FakeBroker::start().await.expect("fake broker");
        fake.create_topic("t", partitions);
        for p in 0..partitions {
            for batch in log(p) {
                fake.append("t", p, batch.as_bytes());
            }
        }
        let cluster = Arc::new(Cluster::new(ClusterConfig::new("fake", vec![fake.bootstrap()])));
        cluster.refresh_metadata(None).await.expect("metadata");
        (fake, cluster)
    }

    /// `n` batches of one record of `size` bytes each, from offset 0.
    pub(super) fn log(n: i64, size: usize) -> Vec<RecordBatch> {
        (0..n)
            .map(|i| BatchBuilder::new().base_offset(i).value(vec![b'x'; size]).build())
            .collect()
    }

    #[test]
    fn target_offset_is_the_committed_one_never_below_the_log_start() {
        let input = |committed: Option<(i64, Option<i64>)>, target_committed| ResumeInput {
            committed: committed.map(|(source_next, target_next)| Acked {
                source_next,
                target_next,
            }),
            target_committed,
            start: 3,
            target_earliest: 10,
        };
        let from = |i: ResumeInput| (i.source_from(), i.target_from());
        assert_eq!(
            from(input(Some((50, Some(40))), Some(30))),
            (50, 40),
            "source metadata first"
        );
        assert_eq!(
            from(input(Some((50, None)), Some(30))),
            (50, 30),
            "then the target commit"
        );
        assert_eq!(from(input(Some((50, None)), None)), (50, 10), "then the log start");
        assert_eq!(
            from(input(Some((50, Some(4))), None)),
            (50, 10),
            "never below the log start"
        );
        assert_eq!(from(input(None, None)), (3, 10), "the start offset without a commit");
    }

    /// Batches larger than a read's `partition_max_bytes` come back, from Kafka (and the fake),
    /// only for the first partition with data in a Fetch (KIP-74): every other read of the
    /// round comes back empty although its partition has data, and must not take that for
    /// the log end.
    #[tokio::test]
    async fn reads_cut_short_by_other_partitions_are_read_again_first() {
        const PARTITIONS: i32 = 6;
        let size = reads::PARTITION_MAX_BYTES as usize + 1000;
        let (fake, cluster) = fake_cluster(PARTITIONS, |_| log(2, size)).await;
        let (reads, driver) = reads::reads(cluster, 0, PARTITIONS as usize);
        let read_all = async move {
            let mut set = JoinSet::new();
            for p in 0..PARTITIONS {
                let reads = reads.clone();
                set.spawn(async move {
                    let mut reader = BatchReader::new(&reads, "t", p, 0);
                    let mut offsets = Vec::new();
                    while let Some(b) = reader.next_batch().await.expect("read") {
                        offsets.push(b.base_offset());
                    }
                    (p, offsets)
                });
            }
            drop(reads);
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.push(r.expect("reader task"));
            }
            out
        };
        let (out, ()) = tokio::join!(read_all, driver.run());
        assert_eq!(out.len(), PARTITIONS as usize);
        for (p, offsets) in out {
            assert_eq!(offsets, [0, 1], "partition {p} is read to its end");
        }
        let fetches = fake.fetches();
        assert!(
            fetches.iter().all(|(_, f)| f.response_with_records <= 1),
            "one partition gets data per Fetch here: {fetches:?}"
        );
        assert!(
            fetches.iter().any(|(_, f)| f.partitions > 1),
            "reads were coalesced: {fetches:?}"
        );
    }
}
