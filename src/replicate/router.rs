//! Repartitioning: one router per source partition spreads records over target partitions.
//!
//! When the target topic has a different partition count than the source, records are
//! placed by key with Kafka's default partitioner ([`crate::batch::repartition`]). A router
//! task takes the source partition's fetched batches, decodes them, groups the records by
//! target partition and hands each group to that target partition's sink. A target sink is
//! fed by many routers; it keeps one idempotent sequence per target partition as usual.
//!
//! The source position may only move once *every* piece of a source batch is acknowledged,
//! on whichever target partitions they went to: the [`AckTracker`] of the source partition
//! counts the pieces of each batch and moves the acknowledged position over the batches
//! whose pieces are all done, in order.
//!
//! Restart: repartitioned data cannot be matched against the source batch by batch, so the
//! target tail is not reconciled; a SIGKILL can duplicate what was acknowledged but not yet
//! committed (at-least-once). A clean stop drains and commits, so it duplicates nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::partition::{Acked, Chunk, Forward, PartitionShared};
use crate::batch::{repartition::repartition, Compression, RecordBatch, ReencodeOptions};

/// One piece's claim on its source batch: acknowledging it counts down the batch.
#[derive(Debug, Clone)]
pub struct AckTicket {
    pub tracker: Arc<AckTracker>,
    pub id: u64,
}

impl AckTicket {
    /// Marks this piece acknowledged by the target.
    pub fn done(&self) {
        self.tracker.done(self.id);
    }
}

#[derive(Debug)]
struct Pending {
    id: u64,
    remaining: usize,
    source_next: i64,
}

#[derive(Debug, Default)]
struct TrackerState {
    next_id: u64,
    pending: VecDeque<Pending>,
}

/// Moves a source partition's acknowledged position once all pieces of a batch are acked.
pub struct AckTracker {
    part: Arc<PartitionShared>,
    state: Mutex<TrackerState>,
}

impl std::fmt::Debug for AckTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckTracker")
            .field("partition", &self.part.label())
            .finish()
    }
}

impl AckTracker {
    /// A tracker for one source partition.
    pub fn new(part: Arc<PartitionShared>) -> Arc<AckTracker> {
        Arc::new(AckTracker {
            part,
            state: Mutex::new(TrackerState::default()),
        })
    }

    /// The source partition number.
    pub fn source_partition(&self) -> i32 {
        self.part.partition
    }

    /// Registers a source batch split into `pieces`; the position moves to `source_next`
    /// once they are all acknowledged (at once if there are none).
    pub fn register(&self, pieces: usize, source_next: i64) -> u64 {
        let mut st = self.state.lock().expect("tracker lock");
        let id = st.next_id;
        st.next_id += 1;
        st.pending.push_back(Pending {
            id,
            remaining: pieces,
            source_next,
        });
        self.advance(&mut st);
        id
    }

    fn done(&self, id: u64) {
        let mut st = self.state.lock().expect("tracker lock");
        let front = st.pending.front().map_or(id, |p| p.id);
        if let Some(p) = st.pending.get_mut((id - front) as usize) {
            debug_assert_eq!(p.id, id);
            p.remaining = p.remaining.saturating_sub(1);
        }
        self.advance(&mut st);
    }

    fn advance(&self, st: &mut TrackerState) {
        while st.pending.front().is_some_and(|p| p.remaining == 0) {
            let done = st.pending.pop_front().expect("front exists");
            if done.source_next > self.part.acked().source_next {
                self.part.ack(Acked {
                    source_next: done.source_next,
                    target_next: None,
                });
            }
        }
    }
}

/// What a router needs.
pub struct RouterContext {
    pub route: Arc<str>,
    /// Senders to every target partition's sink, by target partition number.
    pub targets: Vec<mpsc::Sender<Chunk>>,
    pub compression: Option<Compression>,
    pub max_message_bytes: usize,
    pub wake: Arc<tokio::sync::Notify>,
}

/// Runs a source partition's router until `stop` or the input closes.
pub async fn run_router(
    ctx: Arc<RouterContext>,
    part: Arc<PartitionShared>,
    mut input: mpsc::Receiver<Chunk>,
    mut stop: watch::Receiver<bool>,
) {
    let tracker = AckTracker::new(part.clone());
    loop {
        let chunk = tokio::select! {
            c = input.recv() => c,
            _ = stop.changed() => None,
        };
        let Some(chunk) = chunk else { return };
        ctx.wake.notify_one();
        if let Err(message) = route_chunk(&ctx, &part, &tracker, chunk).await {
            part.fail(message);
            return;
        }
    }
}

async fn route_chunk(
    ctx: &RouterContext,
    part: &PartitionShared,
    tracker: &Arc<AckTracker>,
    chunk: Chunk,
) -> Result<(), String> {
    let count = chunk.batches.len();
    if count == 0 {
        tracker.register(0, chunk.end_offset);
        return Ok(());
    }
    for (i, fwd) in chunk.batches.into_iter().enumerate() {
        let source_next = if i + 1 == count {
            chunk.end_offset
        } else {
            fwd.source_last + 1
        };
        let pieces = split(ctx, part, &fwd.batch)?;
        let id = tracker.register(pieces.len(), source_next);
        for (target, batch, (source_base, source_last)) in pieces {
            let piece = Forward {
                batch,
                source_base,
                source_last,
                source_runs: None,
                ack: Some(AckTicket {
                    tracker: tracker.clone(),
                    id,
                }),
            };
            let sub = Chunk {
                batches: vec![piece],
                end_offset: source_last + 1,
                budget: chunk.budget.clone(),
            };
            if ctx.targets[target as usize].send(sub).await.is_err() {
                return Err(format!(
                    "route '{}': {}: target partition {target} of '{}' stopped; see its error",
                    ctx.route,
                    part.label(),
                    part.target_topic
                ));
            }
        }
    }
    Ok(())
}

type Piece = (u32, RecordBatch, (i64, i64));

/// Splits one batch into per-target-partition batches with their source offset ranges.
fn split(ctx: &RouterContext, part: &PartitionShared, batch: &RecordBatch) -> Result<Vec<Piece>, String> {
    let opts = ReencodeOptions {
        compression: ctx.compression.unwrap_or(batch.compression()),
        max_batch_bytes: ctx.max_message_bytes,
        max_decompressed: ReencodeOptions::DEFAULT_MAX_DECOMPRESSED,
    };
    let groups = repartition(batch, part.partition, ctx.targets.len() as u32, &opts)
        .map_err(|e| format!("route '{}': {}: repartitioning: {e}", ctx.route, part.label()))?;
    part.counters.repartitioned.add(batch.len());
    let mut out = Vec::new();
    for (target, re) in groups {
        let mut offsets = re.record_offsets.iter().copied();
        for bytes in re.batches {
            let b = RecordBatch::parse(bytes).map_err(|e| format!("route '{}': {}: {e}", ctx.route, part.label()))?;
            let n = b.record_count().max(0) as usize;
            let range: Vec<i64> = offsets.by_ref().take(n).collect();
            let (Some(&first), Some(&last)) = (range.first(), range.last()) else {
                continue;
            };
            out.push((target, b, (first, last)));
        }
    }
    Ok(out)
}
