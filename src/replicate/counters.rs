//! Per-partition counters: what went out, and which path each source batch took.
//!
//! Every source batch is counted once, under the path it took: the fast path (header
//! rewrite only) or one of the slow paths Kafka forces (see [`super::slowpath`]), or one of
//! the reasons it was not forwarded. Routes and the metrics work sum them up.

use std::sync::atomic::{AtomicU64, Ordering};

/// Batches and bytes (source bytes) that took one path.
#[derive(Debug, Default)]
pub struct PathCounter {
    batches: AtomicU64,
    bytes: AtomicU64,
}

impl PathCounter {
    /// Counts one source batch of `bytes` bytes.
    pub fn add(&self, bytes: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// (batches, bytes) so far.
    pub fn get(&self) -> PathCount {
        PathCount {
            batches: self.batches.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a [`PathCounter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCount {
    pub batches: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for PathCount {
    fn add_assign(&mut self, other: PathCount) {
        self.batches += other.batches;
        self.bytes += other.bytes;
    }
}

/// Counters of one partition (all monotonic).
#[derive(Debug, Default)]
pub struct PartitionCounters {
    pub batches_out: AtomicU64,
    pub records_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub produce_retries: AtomicU64,
    pub producer_resets: AtomicU64,
    /// Batches answered as duplicates and found on the target (`dup_check`).
    pub duplicates_verified: AtomicU64,
    /// Batches answered as duplicates but missing on the target, sent again (`dup_check`).
    pub duplicates_resent: AtomicU64,
    /// Forwarded with only the header rewritten.
    pub fast_path: PathCounter,
    /// Uncompressed compacted batches: offset deltas rewritten, no codec work.
    pub gaps_closed: PathCounter,
    /// Compressed compacted batches: decompressed, re-encoded, recompressed.
    pub gaps_reencoded: PathCounter,
    /// Magic v0/v1 message sets up-converted to v2.
    pub upconverted: PathCounter,
    /// Batches larger than the target's `max.message.bytes`, split by re-encoding.
    pub split: PathCounter,
    /// Batches re-encoded because the route changes the codec.
    pub recompressed: PathCounter,
    /// Batches decoded and spread over target partitions by key.
    pub repartitioned: PathCounter,
    /// Control batches (transaction markers), never forwarded.
    pub control_dropped: PathCounter,
    /// Batches with no records, never forwarded.
    pub empty_dropped: PathCounter,
    /// Batches of aborted transactions, never forwarded.
    pub aborted_dropped: PathCounter,
    /// Batches whose CRC did not match, skipped by `corrupt.batch = "skip"`.
    pub corrupt_skipped: PathCounter,
    /// Batches forwarded whole although the fetch offset fell inside them.
    pub straddling: PathCounter,
    /// Source offsets deleted before they were replicated and skipped by
    /// `on.data.loss = "resume-earliest"`.
    pub lost_offsets: AtomicU64,
    /// This partition's handle to its route's `kferry_replication_latency_seconds`.
    pub replication_latency: crate::metrics::events::LatencySlot,
}

/// A snapshot of the path counters, for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounts {
    pub fast_path: PathCount,
    pub gaps_closed: PathCount,
    pub gaps_reencoded: PathCount,
    pub upconverted: PathCount,
    pub split: PathCount,
    pub recompressed: PathCount,
    pub repartitioned: PathCount,
    pub control_dropped: PathCount,
    pub empty_dropped: PathCount,
    pub aborted_dropped: PathCount,
    pub corrupt_skipped: PathCount,
    pub straddling: PathCount,
}

impl PathCounts {
    /// Source batches that took any slow path.
    pub fn slow_path_batches(&self) -> u64 {
        [
            self.gaps_closed,
            self.gaps_reencoded,
            self.upconverted,
            self.split,
            self.recompressed,
        ]
        .iter()
        .map(|c| c.batches)
        .sum()
    }
}

impl std::ops::AddAssign for PathCounts {
    fn add_assign(&mut self, o: PathCounts) {
        self.fast_path += o.fast_path;
        self.gaps_closed += o.gaps_closed;
        self.gaps_reencoded += o.gaps_reencoded;
        self.upconverted += o.upconverted;
        self.split += o.split;
        self.recompressed += o.recompressed;
        self.repartitioned += o.repartitioned;
        self.control_dropped += o.control_dropped;
        self.empty_dropped += o.empty_dropped;
        self.aborted_dropped += o.aborted_dropped;
        self.corrupt_skipped += o.corrupt_skipped;
        self.straddling += o.straddling;
    }
}

impl PartitionCounters {
    /// The path counters as plain numbers.
    pub fn paths(&self) -> PathCounts {
        PathCounts {
            fast_path: self.fast_path.get(),
            gaps_closed: self.gaps_closed.get(),
            gaps_reencoded: self.gaps_reencoded.get(),
            upconverted: self.upconverted.get(),
            split: self.split.get(),
            recompressed: self.recompressed.get(),
            repartitioned: self.repartitioned.get(),
            control_dropped: self.control_dropped.get(),
            empty_dropped: self.empty_dropped.get(),
            aborted_dropped: self.aborted_dropped.get(),
            corrupt_skipped: self.corrupt_skipped.get(),
            straddling: self.straddling.get(),
        }
    }
}
