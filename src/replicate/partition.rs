//! The shared state of one replicated partition, between its fetcher, its sink and the
//! checkpointer.
//!
//! Ownership: the fetcher owns the fetch position while it has *claimed* the partition (one
//! fetch in flight at most); the sink owns sending and acknowledging; everyone reads the
//! acknowledged position, which only moves forward and only after the target acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use super::counters::PartitionCounters;
use super::lag::{DeliveredChunk, LagInput, LagTracker, PartitionLag};
use super::read_replica::ReadReplica;
use super::txn::TxnFilter;
use crate::batch::RecordBatch;

/// A batch ready to produce, and the source offsets it stands for.
///
/// On the fast path `batch` is the fetched source batch itself. On a slow path it is a
/// re-encoded batch (base offset 0), so the source offsets are carried here.
#[derive(Debug)]
pub struct Forward {
    pub batch: RecordBatch,
    /// Source offset of the first record in `batch`.
    pub source_base: i64,
    /// Source offset of the last record in `batch`.
    pub source_last: i64,
    /// The records' source offsets as `(first, count)` runs, when they are not simply
    /// `source_base..=source_last` (a re-encoded batch that closed compacted gaps). The
    /// offset map records them (`crate::offsets`).
    pub source_runs: Option<Box<[(i64, i64)]>>,
    /// For a piece of a repartitioned batch: what to count down once it is acknowledged.
    pub ack: Option<super::router::AckTicket>,
}

impl Forward {
    /// A source batch forwarded as it is.
    pub fn fast(batch: RecordBatch) -> Forward {
        Forward {
            source_base: batch.base_offset(),
            source_last: batch.last_offset(),
            source_runs: None,
            batch,
            ack: None,
        }
    }
}

/// Fetched batches for a sink, holding their share of the route's memory budget.
pub struct Chunk {
    pub batches: Vec<Forward>,
    /// The fetch position after this chunk. It can lie past the last batch when control or
    /// empty batches followed it; once everything before is acknowledged, the acknowledged
    /// position moves here.
    pub end_offset: i64,
    /// Released when the last batch of the chunk has been acknowledged (or dropped).
    pub budget: Option<Arc<super::budget::Reservation>>,
}

/// What identifies a replicated partition and its target.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    pub source_topic: String,
    pub target_topic: String,
    pub partition: i32,
    pub topic_id: uuid::Uuid,
    /// The target topic's `max.message.bytes`.
    pub max_message_bytes: usize,
    /// Spread records over the target's partitions by key.
    pub repartition: bool,
}

/// Source and target positions after the last acknowledged batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Next source offset to replicate (the source consumer-group offset).
    pub source_next: i64,
    /// Next target offset, when known (unknown after a duplicate acknowledgement).
    pub target_next: Option<i64>,
}

/// Why a partition stopped replicating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionError(pub String);

struct Positions {
    next_fetch: i64,
    /// The `end_offset` of the last chunk handed to the sink.
    delivered_end: i64,
    acked: Acked,
    high_watermark: i64,
    /// The source log start offset from the last Fetch response (-1: unknown).
    log_start_offset: i64,
    /// The partition leader epoch of the last batch fetched (-1: unknown), sent as Fetch's
    /// `last_fetched_epoch` so the leader can say when its log diverged (KIP-320).
    last_fetched_epoch: i32,
    /// What was handed to the sink and not yet acknowledged, for lag telemetry.
    lag: LagTracker,
    /// Stops everything, the sink included.
    error: Option<PartitionError>,
    /// Stops fetching only: the sink still sends what it was given.
    fetch_error: Option<PartitionError>,
}

/// One source partition and its identically numbered target partition.
pub struct PartitionShared {
    pub source_topic: String,
    pub target_topic: String,
    pub partition: i32,
    pub topic_id: uuid::Uuid,
    /// The target topic's `max.message.bytes`.
    pub max_message_bytes: usize,
    /// Batches are spread over target partitions by key (a router, not a sink, takes them).
    pub repartition: bool,
    claimed: AtomicBool,
    /// Paused by the operator: not fetched until resumed (batches already handed to the sink
    /// are still produced and committed).
    paused: AtomicBool,
    positions: Mutex<Positions>,
    sender: mpsc::Sender<Chunk>,
    pub counters: PartitionCounters,
    /// Read-committed filter; used only by the fetcher that has claimed the partition.
    pub txn: Mutex<TxnFilter>,
    /// The follower fetched from instead of the leader, if any (KIP-392).
    read_replica: Mutex<ReadReplica>,
}

impl PartitionShared {
    /// A partition that resumes at `start`; returns it and the sink's receiving end.
    pub fn new(
        spec: PartitionSpec,
        start: Acked,
        queue_chunks: usize,
    ) -> (Arc<PartitionShared>, mpsc::Receiver<Chunk>) {
        let PartitionSpec {
            source_topic,
            target_topic,
            partition,
            topic_id,
            max_message_bytes,
            repartition,
        } = spec;
        let (sender, receiver) = mpsc::channel(queue_chunks.max(1));
        let positions = Positions {
            next_fetch: start.source_next,
            delivered_end: start.source_next,
            acked: start,
            high_watermark: -1,
            log_start_offset: -1,
            last_fetched_epoch: -1,
            lag: LagTracker::default(),
            error: None,
            fetch_error: None,
        };
        let shared = PartitionShared {
            source_topic,
            target_topic,
            partition,
            topic_id,
            max_message_bytes,
            repartition,
            claimed: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            positions: Mutex::new(positions),
            sender,
            counters: PartitionCounters::default(),
            txn: Mutex::new(TxnFilter::default()),
            read_replica: Mutex::new(ReadReplica::default()),
        };
        (Arc::new(shared), receiver)
    }

    fn positions(&self) -> std::sync::MutexGuard<'_, Positions> {
        self.positions.lock().expect("partition lock")
    }

    /// True when a fetch may be sent: not stopped, not paused, not being fetched, room in the
    /// sink queue.
    pub fn ready_to_fetch(&self) -> bool {
        !self.claimed.load(Ordering::Acquire)
            && !self.paused()
            && !self.sender.is_closed()
            && self.sender.capacity() > 0
            && self.error().is_none()
    }

    /// Pauses or resumes fetching. No new fetch starts while paused, and the fetcher drops
    /// what a fetch in flight returns for it (the position stays); batches already handed to
    /// the sink are still produced and committed.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// True while paused by [`PartitionShared::set_paused`].
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Claims the partition for one fetch; false if another fetcher has it.
    pub fn claim(&self) -> bool {
        self.claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Ends a claim made with [`PartitionShared::claim`].
    pub fn release(&self) {
        self.claimed.store(false, Ordering::Release);
    }

    /// The broker to fetch from: the preferred read replica while it holds (fresh and
    /// `known` in the metadata), else `leader`. See [`ReadReplica`].
    pub fn fetch_broker(&self, leader: Option<i32>, known: impl Fn(i32) -> bool, now: Instant) -> Option<i32> {
        self.read_replica().poll_broker(leader, known, now)
    }

    /// A fetch response named a preferred read replica (KIP-392; -1 is none).
    pub fn prefer_read_replica(&self, broker: i32, now: Instant) {
        self.read_replica().handle_preferred(broker, now);
    }

    /// A fetch from `broker` failed; true when it was the partition's read replica, which
    /// is then dropped so that the next fetch goes to the leader.
    pub fn read_replica_failed(&self, broker: i32) -> bool {
        self.read_replica().handle_failure(broker)
    }

    fn read_replica(&self) -> std::sync::MutexGuard<'_, ReadReplica> {
        self.read_replica.lock().expect("read replica lock")
    }

    /// The offset the next fetch starts at.
    pub fn next_fetch(&self) -> i64 {
        self.positions().next_fetch
    }

    /// Records what a fetch returned: the new fetch position, the high watermark, the log
    /// start offset, and the leader epoch of the last batch fetched (if any was).
    pub fn fetched(&self, next_fetch: i64, high_watermark: i64, log_start_offset: i64, last_epoch: Option<i32>) {
        let mut p = self.positions();
        p.next_fetch = p.next_fetch.max(next_fetch);
        p.high_watermark = high_watermark;
        p.log_start_offset = log_start_offset;
        if let Some(epoch) = last_epoch {
            p.last_fetched_epoch = epoch;
        }
    }

    /// Records what a fetch that failed said about the log (it moves no position).
    pub fn observed_log(&self, high_watermark: i64, log_start_offset: i64) {
        let mut p = self.positions();
        if high_watermark >= 0 {
            p.high_watermark = high_watermark;
        }
        p.log_start_offset = log_start_offset;
    }

    /// Moves the fetch position forward to `offset`, past records the source no longer has
    /// (`on.data.loss = "resume-earliest"`); the leader epoch of the last batch is unknown
    /// again. The acknowledged position follows once the sink gets a chunk ending there.
    pub fn skip_to(&self, offset: i64) {
        let mut p = self.positions();
        p.next_fetch = p.next_fetch.max(offset);
        p.last_fetched_epoch = -1;
    }

    /// The leader epoch of the last batch fetched (-1: unknown).
    pub fn last_fetched_epoch(&self) -> i32 {
        self.positions().last_fetched_epoch
    }

    /// Forgets the leader epoch of the last batch fetched, or replaces it with the one the
    /// leader knows (a diverging epoch that is not a truncation).
    pub fn set_last_fetched_epoch(&self, epoch: i32) {
        self.positions().last_fetched_epoch = epoch;
    }

    /// Hands fetched batches to the sink (never blocks: capacity was checked before fetching).
    pub fn deliver(&self, chunk: Chunk) -> Result<(), Chunk> {
        let end = chunk.end_offset;
        let delivered = DeliveredChunk::new(self.delivered_end(), end, &chunk.batches);
        self.sender.try_send(chunk).map_err(|e| match e {
            mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
        })?;
        let mut p = self.positions();
        p.delivered_end = p.delivered_end.max(end);
        let acked = p.acked.source_next;
        p.lag.handle_delivered(delivered, acked);
        Ok(())
    }

    /// A sender into this partition's sink queue, for routers that feed it.
    pub fn sink_sender(&self) -> mpsc::Sender<Chunk> {
        self.sender.clone()
    }

    /// The end offset of the last chunk handed to the sink.
    pub fn delivered_end(&self) -> i64 {
        self.positions().delivered_end
    }

    /// The last acknowledged positions.
    pub fn acked(&self) -> Acked {
        self.positions().acked
    }

    /// Moves the acknowledged position forward after the target acknowledged a batch.
    pub fn ack(&self, acked: Acked) {
        let mut p = self.positions();
        debug_assert!(acked.source_next >= p.acked.source_next, "acked position went back");
        p.acked = acked;
        p.lag.handle_acked(acked.source_next);
    }

    /// The source high watermark seen by the last fetch (-1 before the first).
    pub fn high_watermark(&self) -> i64 {
        self.positions().high_watermark
    }

    /// The source log start offset from the last Fetch response (-1: unknown).
    pub fn log_start_offset(&self) -> i64 {
        self.positions().log_start_offset
    }

    /// The partition's lag at wall-clock time `now_ms` (milliseconds since the epoch).
    pub fn lag(&self, now_ms: i64) -> PartitionLag {
        let p = self.positions();
        let at = LagInput {
            acked: p.acked.source_next,
            next_fetch: p.next_fetch,
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
        };
        p.lag.poll_lag(at, now_ms)
    }

    /// Stops the partition; the first error is kept.
    pub fn fail(&self, error: String) {
        let mut p = self.positions();
        if p.error.is_none() {
            tracing::error!(topic = %self.source_topic, partition = self.partition, "{error}");
            p.error = Some(PartitionError(error));
        }
    }

    /// Stops fetching the partition (the first error is kept); batches already handed to the
    /// sink are still sent, so everything before the failing offset is replicated.
    pub fn fail_fetch(&self, error: String) {
        let mut p = self.positions();
        if p.fetch_error.is_none() && p.error.is_none() {
            tracing::error!(topic = %self.source_topic, partition = self.partition, "{error}");
            p.fetch_error = Some(PartitionError(error));
        }
    }

    /// Why the partition stopped, if it did.
    pub fn error(&self) -> Option<PartitionError> {
        let p = self.positions();
        p.error.clone().or_else(|| p.fetch_error.clone())
    }

    /// True once the sink must stop (a produce-side failure).
    pub fn sink_stopped(&self) -> bool {
        self.positions().error.is_some()
    }

    /// `topic-partition`, for messages.
    pub fn label(&self) -> String {
        format!("{}-{}", self.source_topic, self.partition)
    }
}
