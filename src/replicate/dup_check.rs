//! Checking a "duplicate" Produce answer against the target's log.
//!
//! An idempotent producer takes DUPLICATE_SEQUENCE_NUMBER (or a success without a base offset,
//! -1) to mean "the broker already holds this batch". tansu 0.6 on S3 storage persists a
//! producer's sequence before the batch itself, so a broker killed between the two answers the
//! resent batch that way although it never stored it (`docs/DESIGN.md` §6). So the sink does not
//! trust such an answer: it reads the target partition where the batch should be and compares
//! records ([`same_batch`], the payload matching of restart reconciliation). Found, the batch is
//! acknowledged at its real target offset; missing, the sink resends it under a new producer id.
//!
//! Where to look: from the acknowledged target position (where the batch would have been
//! written) when the sink knows it, forward to the high watermark; a lost batch can leave a
//! hole, so a batch found further on is still "present" (shifted). When the position is unknown
//! (repartitioned routes), from the log start, jumping to the tail: twice the records of this
//! batch and of every later batch already sent (only those can have been written after it),
//! plus [`TAIL_MARGIN_RECORDS`].
//!
//! [`DupSearch`] is the decision, sans I/O; [`locate`] drives it with Fetch requests.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use super::reconcile::same_batch;
use crate::batch::{BlobIter, FetchedEntry, RecordBatch};
use crate::wire::error::check_code;
use crate::wire::fetch::{fetch, FetchParams, PartitionFetch};
use crate::wire::{Cluster, Purpose, WireError, EARLIEST};

/// Records searched before the tail, on top of the batches in flight, when the target
/// position is unknown.
pub const TAIL_MARGIN_RECORDS: i64 = 10_000;
/// Target batches compared at most before the batch is declared missing.
const MAX_EXAMINED: usize = 10_000;
/// `max_wait_ms` of the reads (tansu answers a Fetch with 0 with nothing at all).
const MAX_WAIT_MS: i32 = 100;
/// Bytes asked per read (a larger batch still comes back whole, KIP-74).
const READ_BYTES: i32 = 1 << 20;

/// Whether a Produce answer says "already written" without proof: DUPLICATE_SEQUENCE_NUMBER,
/// or success with no base offset.
pub fn is_duplicate_answer(error_code: i16, base_offset: i64) -> bool {
    match ResponseError::try_from_code(error_code) {
        None => base_offset < 0,
        Some(e) => e == ResponseError::DuplicateSequenceNumber,
    }
}

/// Records that can have been written after the batch checked: its own and those of every
/// later batch already sent, doubled (offsets lost with a batch leave holes), plus a margin.
pub fn tail_records(sent_record_counts: impl IntoIterator<Item = i32>) -> i64 {
    let sent: i64 = sent_record_counts.into_iter().map(i64::from).sum();
    sent.saturating_mul(2).saturating_add(TAIL_MARGIN_RECORDS)
}

/// What to do after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The batch is on the target at this base offset.
    Present(i64),
    /// The batch is not on the target.
    Missing,
    /// Read again from this offset.
    Read(i64),
}

/// The search for one batch in the target partition, sans I/O.
#[derive(Debug)]
pub struct DupSearch {
    next: i64,
    /// `Some(records)` until the first answer when the start is not the expected offset: the
    /// search then jumps to `high_watermark - records`.
    tail: Option<i64>,
    examined: usize,
}

impl DupSearch {
    /// Searches from `expected` (the acknowledged target position), or when it is unknown, the
    /// last `tail_records` records before the high watermark (from `log_start` at worst).
    pub fn new(expected: Option<i64>, log_start: i64, tail_records: i64) -> DupSearch {
        match expected {
            Some(offset) => DupSearch {
                next: offset,
                tail: None,
                examined: 0,
            },
            None => DupSearch {
                next: log_start.max(0),
                tail: Some(tail_records),
                examined: 0,
            },
        }
    }

    /// The offset to read from.
    pub fn next_offset(&self) -> i64 {
        self.next
    }

    /// Takes what a read from [`DupSearch::next_offset`] brought: the whole batches, the
    /// offset after the last of them, and the partition's high watermark.
    pub fn handle_read(
        &mut self,
        sent: &RecordBatch,
        batches: &[RecordBatch],
        read_end: i64,
        high_watermark: i64,
    ) -> Step {
        if let Some(records) = self.tail.take() {
            let tail_start = high_watermark.saturating_sub(records);
            if tail_start > self.next {
                self.next = tail_start;
                return Step::Read(tail_start);
            }
        }
        for batch in batches {
            if same_batch(sent, batch) {
                return Step::Present(batch.base_offset());
            }
        }
        self.examined += batches.len();
        if read_end <= self.next || read_end >= high_watermark || self.examined >= MAX_EXAMINED {
            return Step::Missing;
        }
        self.next = read_end;
        Step::Read(read_end)
    }
}

/// The target base offset of `sent` in `topic`-`partition`, or `None` when the target does not
/// hold it. `expected` and `tail_records` as in [`DupSearch::new`].
pub async fn locate(
    target: &Arc<Cluster>,
    topic: &str,
    partition: i32,
    sent: &RecordBatch,
    expected: Option<i64>,
    tail_records: i64,
) -> Result<Option<i64>, WireError> {
    let log_start = match expected {
        Some(_) => 0,
        None => {
            let starts = target.list_offsets(topic, &[partition], EARLIEST).await?;
            starts.get(&partition).copied().unwrap_or(0)
        }
    };
    let mut search = DupSearch::new(expected, log_start, tail_records);
    loop {
        let from = search.next_offset();
        let (batches, read_end, high_watermark) = match read(target, topic, partition, from).await? {
            Some(read) => read,
            None => return Ok(None), // OFFSET_OUT_OF_RANGE: nothing there
        };
        match search.handle_read(sent, &batches, read_end, high_watermark) {
            Step::Present(offset) => return Ok(Some(offset)),
            Step::Missing => return Ok(None),
            Step::Read(_) => continue,
        }
    }
}

/// One Fetch of `topic`-`partition` from `offset` from its leader: (whole batches, offset
/// after them, high watermark); `None` when the offset is out of range.
async fn read(
    target: &Cluster,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<Option<(Vec<RecordBatch>, i64, i64)>, WireError> {
    let (leader, request) = PartitionFetch::at_leader(target, topic, partition, offset, READ_BYTES)?;
    let params = FetchParams {
        max_wait_ms: MAX_WAIT_MS,
        min_bytes: 1,
        max_bytes: READ_BYTES,
        isolation_level: 0,
    };
    let conn = target.broker(leader, Purpose::Control).await?;
    let fetched = fetch(&conn, params, &[request]).await?;
    let Some(f) = fetched
        .into_iter()
        .find(|f| f.partition == partition && f.topic == topic)
    else {
        return Ok(Some((Vec::new(), offset, offset)));
    };
    if f.error_code == ResponseError::OffsetOutOfRange.code() {
        return Ok(None);
    }
    check_code(target.name(), f.error_code, || {
        format!("Fetch {topic}-{partition} at offset {offset} (checking a duplicate answer)")
    })?;
    let mut batches = Vec::new();
    let mut end = offset;
    for entry in BlobIter::new(f.records, offset) {
        let Ok(entry) = entry else { break };
        end = entry.next_offset();
        if let FetchedEntry::Batch(b) | FetchedEntry::Straddling(b) = entry {
            batches.push(b);
        }
    }
    Ok(Some((batches, end, f.high_watermark)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;
    use crate::wire::ClusterConfig;
    use kferry_protocol_tests::fake::FakeBroker;

    /// A batch of `n` records of `value`, at `offset`, stamped at `ts`.
    fn batch(offset: i64, n: i32, value: &[u8], ts: i64) -> RecordBatch {
        let mut b = BatchBuilder::new()
            .base_offset(offset)
            .base_timestamp(ts)
            .max_timestamp(ts);
        for _ in 0..n {
            b = b.value(value.to_vec());
        }
        b.build()
    }

    /// The batch as kferry sent it: the source's header (another base offset), same records.
    fn sent() -> RecordBatch {
        batch(5_000, 3, b"payload", 1_700_000_000_000)
    }

    #[test]
    fn duplicate_answers_are_the_ones_without_proof() {
        let dup = ResponseError::DuplicateSequenceNumber.code();
        assert!(is_duplicate_answer(dup, -1));
        assert!(is_duplicate_answer(dup, 42), "a duplicate error even with an offset");
        assert!(is_duplicate_answer(0, -1), "success without a base offset");
        assert!(!is_duplicate_answer(0, 0));
        assert!(!is_duplicate_answer(0, 17));
        assert!(!is_duplicate_answer(ResponseError::OutOfOrderSequenceNumber.code(), -1));
    }

    #[test]
    fn tail_covers_every_batch_sent_after_with_a_margin() {
        assert_eq!(tail_records([3, 100, 50]), 2 * 153 + TAIL_MARGIN_RECORDS);
        assert_eq!(tail_records([]), TAIL_MARGIN_RECORDS);
    }

    #[test]
    fn present_at_the_expected_offset() {
        let mut search = DupSearch::new(Some(40), 0, 0);
        assert_eq!(search.next_offset(), 40);
        let target = [batch(40, 3, b"payload", 1_700_000_000_000), batch(43, 1, b"later", 1)];
        assert_eq!(search.handle_read(&sent(), &target, 44, 44), Step::Present(40));
    }

    #[test]
    fn missing_when_nothing_is_there() {
        // The lost batch's offsets 40..43 count in the high watermark, but hold nothing.
        let mut search = DupSearch::new(Some(40), 0, 0);
        assert_eq!(search.handle_read(&sent(), &[], 40, 43), Step::Missing);
        // The same at the log end.
        let mut search = DupSearch::new(Some(40), 0, 0);
        assert_eq!(search.handle_read(&sent(), &[], 40, 40), Step::Missing);
    }

    #[test]
    fn missing_when_other_batches_are_there() {
        let mut search = DupSearch::new(Some(40), 0, 0);
        // Same records but another timestamp: another batch.
        let target = [batch(40, 3, b"payload", 1_700_000_000_001), batch(43, 3, b"other", 1)];
        assert_eq!(search.handle_read(&sent(), &target, 46, 46), Step::Missing);
    }

    #[test]
    fn found_further_on_when_shifted() {
        let mut search = DupSearch::new(Some(40), 0, 0);
        let first = [batch(41, 2, b"other", 1)];
        assert_eq!(search.handle_read(&sent(), &first, 43, 60), Step::Read(43));
        assert_eq!(search.next_offset(), 43);
        let second = [batch(45, 1, b"x", 2), batch(46, 3, b"payload", 1_700_000_000_000)];
        assert_eq!(search.handle_read(&sent(), &second, 49, 60), Step::Present(46));
    }

    #[test]
    fn unknown_position_jumps_to_the_tail() {
        let mut search = DupSearch::new(None, 10, 100);
        assert_eq!(search.next_offset(), 10);
        // The first read only gives the high watermark: the batch there is not compared.
        let early = [batch(10, 3, b"payload", 1_700_000_000_000)];
        assert_eq!(search.handle_read(&sent(), &early, 13, 1_000), Step::Read(900));
        let tail = [batch(990, 3, b"payload", 1_700_000_000_000)];
        assert_eq!(search.handle_read(&sent(), &tail, 993, 1_000), Step::Present(990));
    }

    #[test]
    fn unknown_position_on_a_short_log_reads_from_the_start() {
        let mut search = DupSearch::new(None, 0, 100);
        let log = [batch(0, 1, b"a", 1), batch(1, 3, b"payload", 1_700_000_000_000)];
        assert_eq!(search.handle_read(&sent(), &log, 4, 50), Step::Present(1));
    }

    #[test]
    fn a_read_without_progress_ends_the_search() {
        let mut search = DupSearch::new(Some(40), 0, 0);
        assert_eq!(search.handle_read(&sent(), &[], 40, 90), Step::Missing);
    }

    /// A fake target whose "t"-0 holds `log`, and a [`Cluster`] for it.
    async fn fake_target(log: &[RecordBatch]) -> (FakeBroker, Arc<Cluster>) {
        let fake = FakeBroker::start().await.expect("fake broker");
        fake.create_topic("t", 1);
        for b in log {
            fake.append("t", 0, b.as_bytes());
        }
        let cluster = Arc::new(Cluster::new(ClusterConfig::new("dst", vec![fake.bootstrap()])));
        cluster.refresh_metadata(None).await.expect("metadata");
        (fake, cluster)
    }

    #[tokio::test]
    async fn locate_reads_the_target_log() {
        // Offsets 2..5 are a hole (a batch the broker lost); the batch sent sits at 8.
        let log = [
            batch(0, 2, b"a", 1),
            batch(5, 3, b"other", 2),
            batch(8, 3, b"payload", 1_700_000_000_000),
            batch(11, 1, b"b", 3),
        ];
        let (_fake, cluster) = fake_target(&log).await;
        let at = |expected, tail| {
            let cluster = cluster.clone();
            async move { locate(&cluster, "t", 0, &sent(), expected, tail).await.expect("locate") }
        };
        assert_eq!(at(Some(8), 0).await, Some(8), "where expected");
        assert_eq!(at(Some(2), 0).await, Some(8), "past a hole and another batch");
        assert_eq!(at(None, 100).await, Some(8), "position unknown, short log");
        assert_eq!(
            at(Some(9), 0).await,
            Some(8),
            "a batch holding the offset is compared too"
        );
        assert_eq!(at(Some(11), 0).await, None, "not from the offset on");
        assert_eq!(at(Some(50), 0).await, None, "past the log end");
        let lost = batch(5_000, 3, b"lost", 1_700_000_000_000);
        let missing = locate(&cluster, "t", 0, &lost, Some(2), 0).await.expect("locate");
        assert_eq!(missing, None, "a batch the target does not hold");
    }

    #[tokio::test]
    async fn locate_without_a_position_searches_the_tail_only() {
        // The same records early in the log (a source batch written twice long ago) and at the
        // tail: only the tail counts.
        let mut log = vec![batch(0, 3, b"payload", 1_700_000_000_000)];
        log.extend((3..200).map(|o| batch(o, 1, b"filler", o)));
        log.push(batch(200, 3, b"payload", 1_700_000_000_000));
        let (_fake, cluster) = fake_target(&log).await;
        let found = locate(&cluster, "t", 0, &sent(), None, 20).await.expect("locate");
        assert_eq!(found, Some(200));
    }
}
