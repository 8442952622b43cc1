//! `kferry status`: how far each partition of a route is behind its source, without decoding.
//!
//! A route's replicated position is the committed offset of its progress group on the source
//! ([`super::progress`]). Against the source's log start offset and high watermark it gives the
//! offset lag and the retention margin; the 61-byte headers of the first unreplicated batches
//! give the time lag (now − the first batch's timestamp) and a bytes-per-offset estimate for
//! the bytes behind. Nothing past the headers is read.
//!
//! This module is sans-I/O: [`evaluate`] turns what was read ([`PartitionReading`]) into a
//! [`StatusRow`], [`BatchSample::from_blob`] reads batch headers out of a fetched blob, and
//! [`table`] renders rows. [`read`] does the cluster reads.
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecordBatch.java` (header layout, timestamp type bit)
//! * Kafka `kafka-consumer-groups.sh --describe` (offset lag = log end − committed offset)

pub mod read;
pub mod table;

use serde::Serialize;

use crate::batch::{field, Attributes, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, NO_TIMESTAMP};

/// What a partition is doing, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// The committed position is below the source's log start offset: the source deleted
    /// records before they were replicated.
    DataLost,
    /// The committed position is past the source's high watermark (the source topic was
    /// recreated or truncated); kferry would reconcile or restart it.
    AheadOfEnd,
    /// The target cluster has no topic of that name.
    NoTargetTopic,
    /// The progress group has no committed offset for the partition.
    NotStarted,
    /// Records below the high watermark are not replicated yet.
    Lagging,
    /// The committed position is the high watermark.
    CaughtUp,
}

impl State {
    /// The name shown in the table and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            State::DataLost => "data-lost",
            State::AheadOfEnd => "ahead-of-end",
            State::NoTargetTopic => "no-target-topic",
            State::NotStarted => "not-started",
            State::Lagging => "lagging",
            State::CaughtUp => "caught-up",
        }
    }
}

/// What the headers of the first unreplicated batches tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSample {
    /// Timestamp (ms) of the first batch holding an offset ≥ the position: its base
    /// timestamp, or its max timestamp for log-append-time batches (whose records carry the
    /// broker's append time) and for batches whose base timestamp holds the log cleaner's
    /// delete horizon (KIP-534). `None` when the batch has none.
    pub first_timestamp: Option<i64>,
    /// Bytes of the sampled batches (12-byte log overhead included), whole or cut short.
    pub bytes: u64,
    /// Offsets the sampled batches span (`lastOffsetDelta + 1` each).
    pub offsets: u64,
}

/// Reads a big-endian integer of `N` bytes at `at`.
fn be<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].try_into().expect("slice of N bytes")
}

impl BatchSample {
    /// Reads the v2 batch headers in a fetched blob, skipping batches that end below `from`.
    /// Only the first [`HEADER_LEN`] bytes of each batch are looked at, so a batch the broker
    /// cut short still counts with the length its header declares. `None` when the blob holds
    /// no whole v2 header at or past `from` (empty, legacy message format, malformed).
    pub fn from_blob(blob: &[u8], from: i64) -> Option<BatchSample> {
        let mut sample: Option<BatchSample> = None;
        let mut pos = 0usize;
        while blob.len() - pos >= HEADER_LEN {
            let h = &blob[pos..pos + HEADER_LEN];
            let batch_length = i32::from_be_bytes(be(h, field::BATCH_LENGTH));
            if h[field::MAGIC] != MAGIC_V2 || batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
                break;
            }
            let size = LOG_OVERHEAD + batch_length as usize;
            let base_offset = i64::from_be_bytes(be(h, field::BASE_OFFSET));
            let delta = i32::from_be_bytes(be(h, field::LAST_OFFSET_DELTA)).max(0);
            pos = pos.saturating_add(size).min(blob.len());
            if base_offset + i64::from(delta) < from {
                continue;
            }
            let s = sample.get_or_insert_with(|| BatchSample {
                first_timestamp: first_timestamp(h),
                bytes: 0,
                offsets: 0,
            });
            s.bytes += size as u64;
            s.offsets += delta as u64 + 1;
        }
        sample
    }

    /// Average bytes per offset of the sample (a batch's bytes spread over its offsets).
    pub fn bytes_per_offset(&self) -> Option<f64> {
        (self.offsets > 0).then(|| self.bytes as f64 / self.offsets as f64)
    }
}

/// The timestamp that stands for a batch's first record (see [`BatchSample::first_timestamp`]).
fn first_timestamp(h: &[u8]) -> Option<i64> {
    let attributes = Attributes(u16::from_be_bytes(be(h, field::ATTRIBUTES)));
    let at = match attributes.has_log_append_time() || attributes.has_delete_horizon() {
        true => field::MAX_TIMESTAMP,
        false => field::BASE_TIMESTAMP,
    };
    let ts = i64::from_be_bytes(be(h, at));
    (ts != NO_TIMESTAMP && ts >= 0).then_some(ts)
}

/// What was read about one partition of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionReading {
    pub topic: String,
    pub partition: i32,
    /// The progress group's committed offset (the next offset to replicate), if any.
    pub committed: Option<i64>,
    /// The source's log start offset.
    pub log_start: i64,
    /// The source's high watermark.
    pub end: i64,
    /// The target cluster has the topic.
    pub target_topic_exists: bool,
    /// Headers of the batches at the committed offset (read only when lagging).
    pub sample: Option<BatchSample>,
}

/// One row of `kferry status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    pub route: String,
    pub topic: String,
    pub partition: i32,
    /// The committed position (next offset to replicate); `None`: never committed.
    pub replicated: Option<i64>,
    /// The source's log start offset.
    pub log_start: i64,
    /// The source's high watermark.
    pub end: i64,
    /// Offsets not replicated yet: end − replicated (end − log start when not started).
    pub lag: i64,
    /// Now − the timestamp of the first unreplicated batch (the one holding the committed
    /// offset, which may start below it), in ms; 0 when caught up, `None` when not started,
    /// ahead of the end, or the batch carries no timestamp.
    pub time_lag_ms: Option<i64>,
    /// Estimated bytes not replicated yet: lag × the sampled bytes per offset.
    pub bytes_behind: Option<u64>,
    /// Offsets the source still holds below the position (replicated − log start): how much
    /// retention may delete before it deletes unreplicated data.
    pub retention_margin: Option<i64>,
    /// [`StatusRow::retention_margin`] in bytes, estimated like `bytes_behind`.
    pub retention_margin_bytes: Option<u64>,
    /// Offsets deleted by the source before they were replicated (state `data-lost`).
    pub lost: Option<i64>,
    pub state: State,
}

/// Turns a reading into a row; `now_ms` is the wall clock in ms since the epoch.
pub fn evaluate(route: &str, r: &PartitionReading, now_ms: i64) -> StatusRow {
    let bytes_per_offset = r.sample.as_ref().and_then(BatchSample::bytes_per_offset);
    let estimate = |offsets: i64| bytes_per_offset.map(|b| (offsets.max(0) as f64 * b).round() as u64);
    let lag = match r.committed {
        Some(c) => (r.end - c).max(0),
        None => (r.end - r.log_start).max(0),
    };
    let state = match r.committed {
        Some(c) if c < r.log_start => State::DataLost,
        Some(c) if c > r.end => State::AheadOfEnd,
        _ if !r.target_topic_exists => State::NoTargetTopic,
        None => State::NotStarted,
        Some(_) if lag > 0 => State::Lagging,
        Some(_) => State::CaughtUp,
    };
    // Past the log end nothing is known to be behind, and nothing below is retained for it.
    let ahead = state == State::AheadOfEnd;
    let time_lag_ms = match (r.committed, lag) {
        (None, _) => None,
        _ if ahead => None,
        (Some(_), 0) => Some(0),
        (Some(_), _) => r.sample.and_then(|s| s.first_timestamp).map(|ts| (now_ms - ts).max(0)),
    };
    let retention_margin = r.committed.filter(|_| !ahead).map(|c| (c - r.log_start).max(0));
    StatusRow {
        route: route.to_string(),
        topic: r.topic.clone(),
        partition: r.partition,
        replicated: r.committed,
        log_start: r.log_start,
        end: r.end,
        lag,
        time_lag_ms,
        bytes_behind: match lag {
            _ if ahead => None,
            0 => Some(0),
            _ => estimate(lag),
        },
        retention_margin,
        retention_margin_bytes: retention_margin.and_then(estimate),
        lost: r.committed.filter(|c| *c < r.log_start).map(|c| r.log_start - c),
        state,
    }
}

/// The sums of one route's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTotal {
    pub route: String,
    pub partitions: usize,
    pub lag: i64,
    /// The largest time lag of any partition.
    pub max_time_lag_ms: Option<i64>,
    /// Sum of the estimates (partitions without one count 0).
    pub bytes_behind: u64,
    /// The smallest retention margin of any partition.
    pub min_retention_margin: Option<i64>,
    /// The worst state of any partition.
    pub worst: Option<State>,
}

/// Totals of `rows` for `route`.
pub fn route_total(route: &str, rows: &[StatusRow]) -> RouteTotal {
    let rows: Vec<&StatusRow> = rows.iter().filter(|r| r.route == route).collect();
    RouteTotal {
        route: route.to_string(),
        partitions: rows.len(),
        lag: rows.iter().map(|r| r.lag).sum(),
        max_time_lag_ms: rows.iter().filter_map(|r| r.time_lag_ms).max(),
        bytes_behind: rows.iter().filter_map(|r| r.bytes_behind).sum(),
        min_retention_margin: rows.iter().filter_map(|r| r.retention_margin).min(),
        worst: rows.iter().map(|r| r.state).min(),
    }
}

#[cfg(test)]
mod tests;
