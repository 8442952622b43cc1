//! Heartbeats: a small record written to every source cluster on an interval, replicated like
//! any topic, and timed when the target acknowledges it.
//!
//! As in MirrorMaker 2, the heartbeats topic (default `heartbeats`, one partition,
//! `cleanup.policy=compact`) holds records keyed by the cluster's alias (its name in the
//! config) whose CreateTime is when they were written. Every route replicates its source's
//! heartbeats topic in addition to its own topics, so the time from a heartbeat's CreateTime
//! to the target's acknowledgement is the route's end-to-end replication latency, measured
//! continuously and with no traffic of the operator's own.
//!
//! - [`run_writer`] writes one record per interval to one cluster (one Produce in flight,
//!   non-idempotent, `acks=all`); failures are logged and never stop replication.
//! - [`observer`] wraps a route's [`BatchObserver`]: for a batch of the heartbeats topic it
//!   decodes the (tiny) batch, takes the record keyed by the route's source alias, and records
//!   `now - CreateTime` in the route's [`LatencyTracker`]. Records with another key (copied
//!   from a cluster further up a chain of routes) are not this route's latency and are skipped.
//! - [`heartbeat_routes`] picks the routes that replicate heartbeats: every route, except one
//!   that would close a cycle of routes (topics keep their names, so `a -> b` and `b -> a` would
//!   copy heartbeats around forever).
//!
//! References: KIP-382 (MirrorMaker 2.0, "Heartbeats"), Kafka's
//! `connect/mirror/src/main/java/org/apache/kafka/connect/mirror/MirrorHeartbeatTask.java`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::oneshot;

use super::hook::{BatchObserver, ForwardedBatch};
use super::RouteConfig;
use crate::batch::{decode_batch, BatchBuilder, RecordBatch};
use crate::wire::produce_mux::ProducePart;
use crate::wire::{Cluster, Metadata, NewTopic, WireError};

/// Latency samples the quantiles are computed over (the most recent ones).
pub const WINDOW: usize = 128;
/// At most one warning per this interval while heartbeats keep failing.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Largest heartbeat batch decoded (they are well under 1 KiB).
const MAX_DECODED: usize = 64 * 1024;

/// What heartbeats the replicator writes and replicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// `heartbeats.topic`.
    pub topic: String,
    /// `heartbeats.interval.ms`.
    pub interval: Duration,
}

impl Default for HeartbeatConfig {
    /// Topic `heartbeats`, one record a second.
    fn default() -> Self {
        HeartbeatConfig {
            topic: "heartbeats".to_string(),
            interval: Duration::from_secs(1),
        }
    }
}

/// A route's heartbeat latency: the last sample, quantiles over the last [`WINDOW`] samples,
/// and totals since the route started. Milliseconds (heartbeat timestamps are milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeartbeatLatency {
    pub last_ms: i64,
    pub p50_ms: i64,
    pub p99_ms: i64,
    /// Samples behind the quantiles (at most [`WINDOW`]).
    pub window: usize,
    /// Heartbeats measured since the route started.
    pub count: u64,
    /// Sum of every latency measured since the route started.
    pub sum_ms: i64,
}

/// Latency bookkeeping of one route: a bounded window of recent samples.
#[derive(Debug, Default)]
pub struct LatencyTracker {
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    recent: VecDeque<i64>,
    count: u64,
    sum_ms: i64,
}

impl LatencyTracker {
    /// Records one latency (negative values, from a clock step, count as 0).
    pub fn record(&self, ms: i64) {
        let ms = ms.max(0);
        let mut w = self.state.lock().expect("latency lock");
        if w.recent.len() == WINDOW {
            w.recent.pop_front();
        }
        w.recent.push_back(ms);
        w.count += 1;
        w.sum_ms = w.sum_ms.saturating_add(ms);
    }

    /// The summary; `None` before the first heartbeat.
    pub fn summary(&self) -> Option<HeartbeatLatency> {
        let w = self.state.lock().expect("latency lock");
        let last_ms = *w.recent.back()?;
        let mut sorted: Vec<i64> = w.recent.iter().copied().collect();
        sorted.sort_unstable();
        // Nearest rank: the smallest sample that at least q of the samples do not exceed.
        let rank = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Some(HeartbeatLatency {
            last_ms,
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            window: sorted.len(),
            count: w.count,
            sum_ms: w.sum_ms,
        })
    }
}

/// One heartbeat: key = the cluster alias, value = `{"source":"<alias>","timestamp":<ms>}`,
/// CreateTime = `now_ms`, no producer id (not idempotent), uncompressed.
pub fn heartbeat_batch(alias: &str, now_ms: i64) -> RecordBatch {
    let value = serde_json::json!({ "source": alias, "timestamp": now_ms }).to_string();
    BatchBuilder::new()
        .base_timestamp(now_ms)
        .key_value(alias.to_string().into_bytes(), value.into_bytes())
        .build()
}

/// The latency of the heartbeat keyed `alias` in a forwarded batch: `now_ms` minus its
/// CreateTime. `None` when the batch holds no such record (or cannot be decoded).
pub fn latency_of(header: &[u8], payload: &[u8], alias: &str, now_ms: i64) -> Option<i64> {
    let mut bytes = BytesMut::with_capacity(header.len() + payload.len());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(payload);
    let batch = RecordBatch::parse(bytes.freeze()).ok()?;
    if batch.attributes().is_control() || batch.attributes().has_log_append_time() {
        return None;
    }
    let records = decode_batch(&batch, MAX_DECODED).ok()?;
    records
        .iter()
        .rev()
        .find(|r| r.key.as_deref() == Some(alias.as_bytes()))
        .map(|r| now_ms - (batch.base_timestamp() + r.timestamp_delta))
}

/// Wraps `inner` (if any) so that acknowledged batches of `topic` keyed `alias` are timed
/// into `tracker`. Other batches cost one string comparison.
pub fn observer(
    inner: Option<BatchObserver>,
    topic: String,
    alias: String,
    tracker: Arc<LatencyTracker>,
) -> BatchObserver {
    Arc::new(move |b: &ForwardedBatch<'_>| {
        if b.source_topic == topic {
            if let Some(ms) = latency_of(b.header, b.payload, &alias, crate::now_ms()) {
                tracker.record(ms);
            }
        }
        if let Some(inner) = &inner {
            inner(b);
        }
    })
}

/// Which of `routes` replicate heartbeats: each in turn, unless its target already reaches its
/// source through routes chosen before it (it would close a cycle). A route that renames
/// topics with its source alias (`prefix`) always does and closes no cycle: its copies arrive
/// as `<alias>.heartbeats`, which routes back to that alias skip (MirrorMaker 2's rule).
pub fn heartbeat_routes(routes: &[RouteConfig]) -> Vec<bool> {
    let mut chosen: Vec<(&str, &str)> = Vec::new();
    routes
        .iter()
        .map(|r| {
            if r.rename.breaks_cycles() {
                return true;
            }
            let cycle = reaches(&chosen, &r.target, &r.source);
            if !cycle {
                chosen.push((&r.source, &r.target));
            }
            !cycle
        })
        .collect()
}

/// True when `to` is `from` or reachable from it over `edges`.
fn reaches(edges: &[(&str, &str)], from: &str, to: &str) -> bool {
    let mut seen = vec![from];
    let mut i = 0;
    while i < seen.len() {
        if seen[i] == to {
            return true;
        }
        for (s, t) in edges {
            if *s == seen[i] && !seen.contains(t) {
                seen.push(t);
            }
        }
        i += 1;
    }
    false
}

/// Creates the heartbeats topic on `cluster` if it is missing (one partition,
/// `cleanup.policy=compact`) and waits up to 30 s for its partition to have a leader.
pub async fn ensure_topic(cluster: &Cluster, topic: &str) -> Result<(), WireError> {
    let wanted = [topic.to_string()];
    let meta = cluster.refresh_metadata(Some(&wanted)).await?;
    if !exists(&meta, topic) {
        tracing::info!(cluster = cluster.name(), "creating heartbeats topic '{topic}'");
        let new = NewTopic {
            name: topic.to_string(),
            partitions: 1,
            replication_factor: -1,
            configs: vec![("cleanup.policy".to_string(), "compact".to_string())],
        };
        cluster.create_topics(&[new]).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let meta = cluster.refresh_metadata(Some(&wanted)).await?;
        if meta.leader(topic, 0).is_some() || Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// True when `meta` shows `topic` with partitions (a Metadata answer names a missing topic
/// too, with an error code).
pub fn exists(meta: &Metadata, topic: &str) -> bool {
    meta.topics
        .get(topic)
        .is_some_and(|t| t.error_code == 0 && !t.partitions.is_empty())
}

/// Writes a heartbeat to `cluster` every `interval`, until the task is aborted (dropping it
/// mid-request leaves nothing behind but an unread answer). One record in flight; failures
/// are logged (at most once a minute) and retried at the next interval.
pub async fn run_writer(cluster: Arc<Cluster>, config: HeartbeatConfig) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_warning: Option<Instant> = None;
    let mut failing = false;
    loop {
        tick.tick().await;
        match write_one(&cluster, &config).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(
                    cluster = cluster.name(),
                    "heartbeats to '{}' are written again",
                    config.topic
                );
            }
            Ok(()) => {}
            Err(e) => {
                failing = true;
                if !last_warning.is_some_and(|t| t.elapsed() < WARN_EVERY) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(
                        cluster = cluster.name(),
                        "heartbeat to '{}'-0 failed: {e}",
                        config.topic
                    );
                }
                let _ = cluster.refresh_metadata_if_older(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Produces one heartbeat to partition 0 and waits for the answer.
async fn write_one(cluster: &Cluster, config: &HeartbeatConfig) -> Result<(), String> {
    let topic = config.topic.as_str();
    let leader = cluster
        .metadata()
        .leader(topic, 0)
        .ok_or_else(|| format!("cluster '{}': no leader for {topic}-0", cluster.name()))?;
    let sender = cluster.producer(leader).await.map_err(|e| e.to_string())?;
    let batch = heartbeat_batch(cluster.name(), crate::now_ms());
    let (reply, answer) = oneshot::channel();
    let timeout = cluster.config().request_timeout;
    sender
        .send(ProducePart {
            topic: Arc::from(topic),
            partition: 0,
            header: *batch.header(),
            payload: batch.payload(),
            timeout_ms: (timeout.as_millis() / 2).clamp(1, i32::MAX as u128) as i32,
            reply,
        })
        .await
        .map_err(|e| e.to_string())?;
    let outcome = tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
        .map_err(|_| "produce multiplexer ended".to_string())?
        .map_err(|e| e.to_string())?;
    match outcome.error_code {
        0 => Ok(()),
        code => Err(format!(
            "cluster '{}': Produce {topic}-0: error code {code}{}",
            cluster.name(),
            outcome.message.map(|m| format!(": {m}")).unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_over_a_bounded_window() {
        let t = LatencyTracker::default();
        assert_eq!(t.summary(), None);
        for ms in 1..=100 {
            t.record(ms);
        }
        let s = t.summary().unwrap();
        assert_eq!((s.last_ms, s.p50_ms, s.p99_ms), (100, 50, 99));
        assert_eq!((s.window, s.count, s.sum_ms), (100, 100, 5050));
        // Old samples leave the window; the totals keep counting.
        for _ in 0..WINDOW {
            t.record(7);
        }
        t.record(-3);
        let s = t.summary().unwrap();
        assert_eq!((s.last_ms, s.p50_ms, s.p99_ms, s.window), (0, 7, 7, WINDOW));
        assert_eq!(s.count, 100 + WINDOW as u64 + 1);
        assert_eq!(s.sum_ms, 5050 + 7 * WINDOW as i64);
    }

    #[test]
    fn latency_is_taken_from_the_record_keyed_by_the_source() {
        let batch = heartbeat_batch("onprem", 1_000);
        let (header, payload) = (batch.header(), batch.payload());
        assert_eq!(latency_of(header, &payload, "onprem", 1_042), Some(42));
        assert_eq!(
            latency_of(header, &payload, "cloud", 1_042),
            None,
            "another cluster's heartbeat"
        );
        assert_eq!(latency_of(&header[..20], &payload, "onprem", 1_042), None);
        let records = decode_batch(&batch, MAX_DECODED).unwrap();
        let value: serde_json::Value = serde_json::from_slice(records[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(value, serde_json::json!({"source": "onprem", "timestamp": 1_000}));
        assert_eq!(batch.max_timestamp(), 1_000);
    }

    #[test]
    fn the_observer_times_only_heartbeats_and_calls_the_inner_one() {
        let tracker = Arc::new(LatencyTracker::default());
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let inner: BatchObserver = Arc::new(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let obs = observer(Some(inner), "heartbeats".into(), "a".into(), tracker.clone());
        let batch = heartbeat_batch("a", crate::now_ms() - 5_000);
        let payload = batch.payload();
        for topic in ["orders", "heartbeats"] {
            obs(&ForwardedBatch {
                route: "r",
                source_topic: topic,
                target_topic: topic,
                partition: 0,
                source_partition: 0,
                source_base_offset: 0,
                source_last_offset: 0,
                target_base_offset: 0,
                record_count: 1,
                header: batch.header(),
                payload: &payload,
            });
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
        let s = tracker.summary().unwrap();
        assert_eq!(s.count, 1, "only the heartbeats batch is timed");
        assert!((5_000..6_000).contains(&s.last_ms), "{s:?}");
    }

    #[test]
    fn routes_that_would_close_a_cycle_do_not_replicate_heartbeats() {
        let r = |s: &str, t: &str| RouteConfig::new(format!("{s}-{t}"), s, t);
        let routes = [
            r("a", "b"),
            r("b", "c"),
            r("c", "a"),
            r("b", "a"),
            r("a", "d"),
            r("x", "d"),
        ];
        assert_eq!(heartbeat_routes(&routes), vec![true, true, false, false, true, true]);
    }

    #[test]
    fn prefix_routes_replicate_heartbeats_both_ways() {
        let prefix = crate::replicate::rename::RenamePolicy::Prefix { separator: ".".into() };
        let r = |s: &str, t: &str| RouteConfig::new(format!("{s}-{t}"), s, t).rename(prefix.clone());
        assert_eq!(heartbeat_routes(&[r("a", "b"), r("b", "a")]), vec![true, true]);
        let identity = RouteConfig::new("b-a", "b", "a");
        assert_eq!(heartbeat_routes(&[r("a", "b"), identity]), vec![true, true]);
    }
}
