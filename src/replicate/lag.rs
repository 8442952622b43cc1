//! Lag telemetry of one partition, from batch headers only (nothing is decoded).
//!
//! Sans-I/O: [`LagTracker`] is told what was handed to the sink ([`LagTracker::handle_delivered`])
//! and how far the target acknowledged ([`LagTracker::handle_acked`]), and computes a
//! [`PartitionLag`] for a given wall-clock time ([`LagTracker::poll_lag`]).
//!
//! What is exact and what is estimated (see `docs/metrics.md`):
//!
//! - time lag: the age of the oldest record not yet acknowledged, from the first timestamp in
//!   the header of the oldest fetched chunk not yet fully acknowledged (`maxTimestamp` for
//!   LogAppendTime batches). When nothing fetched is waiting but the partition is behind (the
//!   next fetch has not come back yet), the age of the newest record acknowledged is used: the
//!   oldest unreplicated record was written after it, so this is an upper bound. 0 when caught
//!   up, unknown before the first fetch.
//! - bytes behind: the bytes of fetched chunks not yet acknowledged (whole chunks exactly; the
//!   chunk being acknowledged pro rata by offsets) plus the offsets not yet fetched (up to the
//!   high watermark) times the bytes per offset observed in this partition so far (an
//!   estimate: batch and record sizes vary).
//! - retention margin: offsets between the source log start offset and the acknowledged
//!   position (exact), and the same times the observed bytes per offset (an estimate): how much
//!   retention can delete before it deletes records not yet replicated.

use std::collections::VecDeque;

use super::partition::Forward;
use crate::batch::RecordBatch;

/// A snapshot of a partition's lag. `None` is unknown (nothing observed yet).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PartitionLag {
    /// The source log start offset from the last Fetch response (-1 before the first, or when
    /// the broker does not say).
    pub log_start_offset: i64,
    /// How old the oldest record not yet acknowledged is, in milliseconds.
    pub time_lag_ms: Option<i64>,
    /// Bytes not yet acknowledged: fetched (exact) plus not yet fetched (estimated).
    pub bytes_behind: Option<u64>,
    /// Acknowledged position minus the source log start offset (0 if retention passed it).
    pub retention_margin_offsets: Option<i64>,
    /// `retention_margin_offsets` times the observed bytes per offset (an estimate).
    pub retention_margin_bytes: Option<u64>,
}

/// The positions [`LagTracker::poll_lag`] needs.
#[derive(Debug, Clone, Copy)]
pub struct LagInput {
    /// Next source offset to replicate (everything before it is acknowledged).
    pub acked: i64,
    /// Where the next fetch starts.
    pub next_fetch: i64,
    /// -1 before the first fetch.
    pub high_watermark: i64,
    /// -1 when unknown.
    pub log_start_offset: i64,
}

/// What lag telemetry keeps of a chunk handed to the sink, until it is acknowledged.
#[derive(Debug, Clone, Copy)]
pub struct DeliveredChunk {
    /// First source offset the chunk covers (the previous chunk's end).
    from: i64,
    /// The chunk's end offset: acknowledged once the position reaches it.
    end: i64,
    bytes: u64,
    /// Oldest first timestamp of its batches (-1 if none is known).
    first_timestamp: i64,
    /// Newest timestamp of its batches (-1 if none is known).
    last_timestamp: i64,
}

/// Tracks what a partition fetched and what the target acknowledged, for [`PartitionLag`].
#[derive(Debug)]
pub struct LagTracker {
    /// Bounded by the chunks a partition can have between fetcher and acknowledgement (its
    /// sink queue plus the sink's window).
    unacked: VecDeque<DeliveredChunk>,
    /// Newest timestamp of the chunks fully acknowledged (-1 if none).
    replicated_timestamp: i64,
    /// Bytes and offsets of every chunk delivered, for the bytes-per-offset estimate.
    delivered_bytes: u64,
    delivered_offsets: u64,
}

impl Default for LagTracker {
    fn default() -> LagTracker {
        LagTracker {
            unacked: VecDeque::new(),
            replicated_timestamp: -1,
            delivered_bytes: 0,
            delivered_offsets: 0,
        }
    }
}

/// A batch's first and last record timestamps, from its header (-1 when unset).
fn timestamps(batch: &RecordBatch) -> (i64, i64) {
    match batch.attributes().has_log_append_time() {
        true => (batch.max_timestamp(), batch.max_timestamp()),
        false => (batch.base_timestamp(), batch.max_timestamp()),
    }
}

impl DeliveredChunk {
    /// A chunk of `batches` covering source offsets `from..end` (headers read, nothing decoded).
    pub fn new(from: i64, end: i64, batches: &[Forward]) -> DeliveredChunk {
        let mut chunk = DeliveredChunk {
            from,
            end,
            bytes: 0,
            first_timestamp: -1,
            last_timestamp: -1,
        };
        for f in batches {
            chunk.bytes += f.batch.len() as u64;
            let (first, last) = timestamps(&f.batch);
            if first >= 0 && (chunk.first_timestamp < 0 || first < chunk.first_timestamp) {
                chunk.first_timestamp = first;
            }
            chunk.last_timestamp = chunk.last_timestamp.max(last);
        }
        chunk
    }
}

impl LagTracker {
    /// `chunk` was handed to the sink; the target has acknowledged up to `acked` (it may
    /// already have acknowledged the chunk).
    pub fn handle_delivered(&mut self, chunk: DeliveredChunk, acked: i64) {
        // A chunk of control batches only, or the gap `on.data.loss = "resume-earliest"`
        // jumps, carries no bytes: it would only skew the bytes-per-offset estimate.
        if chunk.end <= chunk.from || chunk.bytes == 0 {
            return;
        }
        self.delivered_bytes += chunk.bytes;
        self.delivered_offsets += (chunk.end - chunk.from) as u64;
        match chunk.end <= acked {
            true => self.replicated_timestamp = self.replicated_timestamp.max(chunk.last_timestamp),
            false => self.unacked.push_back(chunk),
        }
    }

    /// The target acknowledged everything before `source_next`.
    pub fn handle_acked(&mut self, source_next: i64) {
        while let Some(front) = self.unacked.front() {
            if front.end > source_next {
                break;
            }
            self.replicated_timestamp = self.replicated_timestamp.max(front.last_timestamp);
            self.unacked.pop_front();
        }
    }

    /// Bytes per source offset delivered so far (`None` before the first bytes).
    pub fn bytes_per_offset(&self) -> Option<f64> {
        (self.delivered_bytes > 0 && self.delivered_offsets > 0)
            .then(|| self.delivered_bytes as f64 / self.delivered_offsets as f64)
    }

    /// The partition's lag at wall-clock time `now_ms` (milliseconds since the epoch).
    pub fn poll_lag(&self, at: LagInput, now_ms: i64) -> PartitionLag {
        let per_offset = self.bytes_per_offset();
        let retention_margin_offsets = (at.log_start_offset >= 0).then(|| (at.acked - at.log_start_offset).max(0));
        PartitionLag {
            log_start_offset: at.log_start_offset,
            time_lag_ms: self.time_lag_ms(at, now_ms),
            bytes_behind: self.bytes_behind(at, per_offset),
            retention_margin_offsets,
            retention_margin_bytes: retention_margin_offsets
                .zip(per_offset)
                .map(|(o, b)| (o as f64 * b).round() as u64),
        }
    }

    fn time_lag_ms(&self, at: LagInput, now_ms: i64) -> Option<i64> {
        if at.high_watermark < 0 {
            return None;
        }
        if at.acked >= at.high_watermark {
            return Some(0);
        }
        let oldest = self
            .unacked
            .iter()
            .map(|c| c.first_timestamp)
            .find(|&t| t >= 0)
            .or_else(|| (self.replicated_timestamp >= 0).then_some(self.replicated_timestamp))?;
        Some((now_ms - oldest).max(0))
    }

    fn bytes_behind(&self, at: LagInput, per_offset: Option<f64>) -> Option<u64> {
        let mut fetched = 0u64;
        for c in &self.unacked {
            fetched += match at.acked > c.from && at.acked < c.end {
                // The chunk being acknowledged: what is left of it, pro rata by offsets.
                true => (c.bytes as f64 * (c.end - at.acked) as f64 / (c.end - c.from) as f64).round() as u64,
                false => c.bytes,
            };
        }
        let unfetched = match at.high_watermark {
            hw if hw < 0 => return None,
            hw => (hw - at.next_fetch.max(at.acked)).max(0),
        };
        match (unfetched, per_offset) {
            (0, _) => Some(fetched),
            (n, Some(b)) => Some(fetched + (n as f64 * b).round() as u64),
            (_, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Record};

    /// `records` records at timestamps `timestamp`, `timestamp + 1`...
    fn forward(base: i64, records: i32, timestamp: i64) -> Forward {
        let batch = BatchBuilder::new()
            .base_offset(base)
            .base_timestamp(timestamp)
            .records((0..records).map(|i| {
                Record::new(i, None, Some(vec![b'x'; 10 + i as usize].into())).with_timestamp_delta(i64::from(i))
            }))
            .build();
        Forward::fast(batch)
    }

    fn at(acked: i64, next_fetch: i64, hw: i64, log_start: i64) -> LagInput {
        LagInput {
            acked,
            next_fetch,
            high_watermark: hw,
            log_start_offset: log_start,
        }
    }

    #[test]
    fn caught_up_is_no_lag_and_unknown_before_the_first_fetch() {
        let t = LagTracker::default();
        let lag = t.poll_lag(at(0, 0, -1, -1), 1_000);
        assert_eq!(lag.time_lag_ms, None);
        assert_eq!(lag.bytes_behind, None);
        assert_eq!(lag.retention_margin_offsets, None);
        let lag = t.poll_lag(at(5, 5, 5, 2), 1_000);
        assert_eq!(lag.time_lag_ms, Some(0));
        assert_eq!(lag.bytes_behind, Some(0));
        assert_eq!(lag.retention_margin_offsets, Some(3));
        assert_eq!(lag.retention_margin_bytes, None, "no bytes per offset observed yet");
    }

    #[test]
    fn fetched_chunks_give_exact_bytes_and_the_oldest_timestamp() {
        let mut t = LagTracker::default();
        let (a, b) = (forward(0, 4, 10_000), forward(4, 6, 12_000));
        let (la, lb) = (a.batch.len() as u64, b.batch.len() as u64);
        t.handle_delivered(DeliveredChunk::new(0, 4, &[a]), 0);
        t.handle_delivered(DeliveredChunk::new(4, 10, &[b]), 0);
        let lag = t.poll_lag(at(0, 10, 10, 0), 15_000);
        assert_eq!(lag.bytes_behind, Some(la + lb));
        assert_eq!(
            lag.time_lag_ms,
            Some(5_000),
            "age of the first record of the first chunk"
        );
        t.handle_acked(4);
        let lag = t.poll_lag(at(4, 10, 10, 0), 15_000);
        assert_eq!(lag.bytes_behind, Some(lb));
        assert_eq!(lag.time_lag_ms, Some(3_000));
        assert_eq!(lag.retention_margin_offsets, Some(4));
        let per_offset = (la + lb) as f64 / 10.0;
        assert_eq!(lag.retention_margin_bytes, Some((4.0 * per_offset).round() as u64));
        t.handle_acked(10);
        assert_eq!(t.poll_lag(at(10, 10, 10, 0), 15_000).bytes_behind, Some(0));
    }

    #[test]
    fn unfetched_offsets_are_estimated_from_bytes_per_offset() {
        let mut t = LagTracker::default();
        let a = forward(0, 10, 1_000);
        let len = a.batch.len() as u64;
        t.handle_delivered(DeliveredChunk::new(0, 10, &[a]), 0);
        t.handle_acked(10);
        // 30 more offsets on the source, none fetched yet: 3 chunks' worth.
        let lag = t.poll_lag(at(10, 10, 40, 0), 61_000);
        assert_eq!(lag.bytes_behind, Some(3 * len));
        assert_eq!(
            lag.time_lag_ms,
            Some(61_000 - 1_009),
            "nothing fetched waits: bounded by the newest record acknowledged"
        );
    }

    #[test]
    fn a_partly_acknowledged_chunk_counts_pro_rata() {
        let mut t = LagTracker::default();
        let (a, b) = (forward(0, 5, 1_000), forward(5, 5, 1_000));
        let total = (a.batch.len() + b.batch.len()) as f64;
        t.handle_delivered(DeliveredChunk::new(0, 10, &[a, b]), 0);
        let lag = t.poll_lag(at(5, 10, 10, -1), 2_000);
        assert_eq!(lag.bytes_behind, Some((total / 2.0).round() as u64));
        assert_eq!(lag.retention_margin_offsets, None, "log start unknown");
    }

    #[test]
    fn chunks_without_bytes_leave_the_estimate_alone() {
        let mut t = LagTracker::default();
        let a = forward(0, 10, 1_000);
        let len = a.batch.len() as f64;
        t.handle_delivered(DeliveredChunk::new(0, 10, &[a]), 0);
        t.handle_delivered(DeliveredChunk::new(10, 1_000, &[]), 0);
        assert_eq!(t.bytes_per_offset(), Some(len / 10.0));
    }

    #[test]
    fn retention_past_the_position_is_no_margin() {
        let t = LagTracker::default();
        assert_eq!(t.poll_lag(at(3, 3, 20, 8), 0).retention_margin_offsets, Some(0));
    }
}
