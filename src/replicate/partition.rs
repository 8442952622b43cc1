//! The shared state of one replicated partition, between its fetcher, its sink and the
//! checkpointer.
//!
//! Ownership: the fetcher owns the fetch position while it has *claimed* the partition (one
//! fetch in flight at most); the sink owns sending and acknowledging; everyone reads the
//! acknowledged position, which only moves forward and only after the target acknowledged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::batch::RecordBatch;

/// Fetched batches for a sink, holding their share of the route's memory budget.
pub struct Chunk {
    pub batches: Vec<RecordBatch>,
    /// The fetch position after this chunk. It can lie past the last batch when control or
    /// empty batches followed it; once everything before is acknowledged, the acknowledged
    /// position moves here.
    pub end_offset: i64,
    /// Released when the last batch of the chunk has been acknowledged (or dropped).
    pub budget: Option<Arc<OwnedSemaphorePermit>>,
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

/// Counters of one partition (monotonic).
#[derive(Debug, Default)]
pub struct PartitionCounters {
    pub batches_out: AtomicU64,
    pub records_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub control_batches_skipped: AtomicU64,
    pub empty_batches_skipped: AtomicU64,
    pub straddling_batches: AtomicU64,
    pub produce_retries: AtomicU64,
    pub producer_resets: AtomicU64,
}

struct Positions {
    next_fetch: i64,
    acked: Acked,
    high_watermark: i64,
    error: Option<PartitionError>,
}

/// One source partition and its identically numbered target partition.
pub struct PartitionShared {
    pub source_topic: String,
    pub target_topic: String,
    pub partition: i32,
    pub topic_id: uuid::Uuid,
    claimed: AtomicBool,
    positions: Mutex<Positions>,
    sender: mpsc::Sender<Chunk>,
    pub counters: PartitionCounters,
}

impl PartitionShared {
    /// A partition that resumes at `start`; returns it and the sink's receiving end.
    pub fn new(
        source_topic: String,
        target_topic: String,
        partition: i32,
        topic_id: uuid::Uuid,
        start: Acked,
        queue_chunks: usize,
    ) -> (Arc<PartitionShared>, mpsc::Receiver<Chunk>) {
        let (sender, receiver) = mpsc::channel(queue_chunks.max(1));
        let positions = Positions {
            next_fetch: start.source_next,
            acked: start,
            high_watermark: -1,
            error: None,
        };
        let shared = PartitionShared {
            source_topic,
            target_topic,
            partition,
            topic_id,
            claimed: AtomicBool::new(false),
            positions: Mutex::new(positions),
            sender,
            counters: PartitionCounters::default(),
        };
        (Arc::new(shared), receiver)
    }

    fn positions(&self) -> std::sync::MutexGuard<'_, Positions> {
        self.positions.lock().expect("partition lock")
    }

    /// True when a fetch may be sent: not stopped, not being fetched, room in the sink queue.
    pub fn ready_to_fetch(&self) -> bool {
        !self.claimed.load(Ordering::Acquire)
            && !self.sender.is_closed()
            && self.sender.capacity() > 0
            && self.error().is_none()
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

    /// The offset the next fetch starts at.
    pub fn next_fetch(&self) -> i64 {
        self.positions().next_fetch
    }

    /// Records what a fetch returned: the new fetch position and the high watermark.
    pub fn fetched(&self, next_fetch: i64, high_watermark: i64) {
        let mut p = self.positions();
        p.next_fetch = p.next_fetch.max(next_fetch);
        p.high_watermark = high_watermark;
    }

    /// Hands fetched batches to the sink (never blocks: capacity was checked before fetching).
    pub fn deliver(&self, chunk: Chunk) -> Result<(), Chunk> {
        self.sender.try_send(chunk).map_err(|e| match e {
            mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
        })
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
    }

    /// The source high watermark seen by the last fetch (-1 before the first).
    pub fn high_watermark(&self) -> i64 {
        self.positions().high_watermark
    }

    /// Stops the partition; the first error is kept.
    pub fn fail(&self, error: String) {
        let mut p = self.positions();
        if p.error.is_none() {
            tracing::error!(topic = %self.source_topic, partition = self.partition, "{error}");
            p.error = Some(PartitionError(error));
        }
    }

    /// Why the partition stopped, if it did.
    pub fn error(&self) -> Option<PartitionError> {
        self.positions().error.clone()
    }

    /// `topic-partition`, for messages.
    pub fn label(&self) -> String {
        format!("{}-{}", self.source_topic, self.partition)
    }
}
