//! The load generator behind `kferry bench produce`: pre-encoded batches, sent as fast as the
//! cluster takes them or at a fixed record rate.
//!
//! One task per partition leader sends Produce requests that carry one batch for each of
//! its partitions (Kafka allows one batch per partition per request), pipelined up to
//! `in_flight` requests per broker. Each send restamps a [`Template`]'s header (timestamps
//! of now, CRC) and reuses its payload, so the generator's own cost is a few hundred
//! nanoseconds per batch. It does not retry: the first error stops it, naming the topic and
//! partition. Batches are sent with producer id -1 (not idempotent) and `acks=all`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::protocol::Request;

use super::workload::Template;
use crate::wire::produce::{PartitionBatch, ProduceRequestFrame, PRODUCE_MAX_VERSION};
use crate::wire::produce_response::ProduceResponse;
use crate::wire::{Cluster, Purpose};

/// How much to send and how fast.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub topic: String,
    /// Records to send in all (rounded up to whole batches).
    pub records: u64,
    /// Records per second over all partitions; `None` sends as fast as the brokers take them.
    pub rate: Option<f64>,
    /// Produce requests outstanding per broker.
    pub in_flight: usize,
    pub timeout_ms: i32,
}

/// Running totals, readable while the load runs (for a progress line).
#[derive(Debug, Default)]
pub struct LoadStats {
    pub records: AtomicU64,
    pub batches: AtomicU64,
    /// Key + value bytes of the records acknowledged.
    pub record_bytes: AtomicU64,
    /// Batch bytes acknowledged (what went over the wire).
    pub wire_bytes: AtomicU64,
}

impl LoadStats {
    /// (records, batches, record bytes, wire bytes) acknowledged so far.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
            self.record_bytes.load(Ordering::Relaxed),
            self.wire_bytes.load(Ordering::Relaxed),
        )
    }
}

/// Batch bytes per Produce request the generator sends.
const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

type Pending = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Sends `options.records` records of `templates` to every partition of the topic, evenly.
pub async fn produce(
    cluster: Arc<Cluster>,
    templates: Arc<Vec<Template>>,
    options: &LoadOptions,
    stats: Arc<LoadStats>,
) -> Result<(), String> {
    let per_batch = templates.first().ok_or("no templates")?.records.max(1) as u64;
    let meta = cluster
        .refresh_metadata(Some(std::slice::from_ref(&options.topic)))
        .await
        .map_err(|e| e.to_string())?;
    let topic = meta
        .topics
        .get(&options.topic)
        .filter(|t| !t.partitions.is_empty())
        .ok_or_else(|| format!("cluster '{}' has no topic '{}'", cluster.name(), options.topic))?;
    let mut by_leader: std::collections::BTreeMap<i32, Vec<i32>> = Default::default();
    for p in &topic.partitions {
        if p.leader < 0 {
            return Err(format!("{}-{} has no leader", options.topic, p.partition));
        }
        by_leader.entry(p.leader).or_default().push(p.partition);
    }
    let total_partitions = topic.partitions.len() as f64;
    let remaining = Arc::new(AtomicU64::new(options.records.div_ceil(per_batch)));
    let mut tasks = tokio::task::JoinSet::new();
    for (broker, partitions) in by_leader {
        let share = partitions.len() as f64 / total_partitions;
        let task = BrokerLoad {
            broker,
            partitions,
            batches_per_sec: options.rate.map(|r| r * share / per_batch as f64),
            templates: templates.clone(),
            remaining: remaining.clone(),
            stats: stats.clone(),
            topic: options.topic.clone(),
            in_flight: options.in_flight.max(1),
            timeout_ms: options.timeout_ms,
        };
        tasks.spawn(task.run(cluster.clone()));
    }
    while let Some(result) = tasks.join_next().await {
        result.map_err(|e| format!("load task: {e}"))??;
    }
    Ok(())
}

struct BrokerLoad {
    broker: i32,
    partitions: Vec<i32>,
    batches_per_sec: Option<f64>,
    templates: Arc<Vec<Template>>,
    remaining: Arc<AtomicU64>,
    stats: Arc<LoadStats>,
    topic: String,
    in_flight: usize,
    timeout_ms: i32,
}

impl BrokerLoad {
    async fn run(self, cluster: Arc<Cluster>) -> Result<(), String> {
        let conn = cluster
            .broker(self.broker, Purpose::Produce)
            .await
            .map_err(|e| e.to_string())?;
        let version = conn
            .version_for::<ProduceRequest>(PRODUCE_MAX_VERSION)
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut window: VecDeque<Pending> = VecDeque::new();
        let (mut sent, mut next_partition, mut next_template) = (0u64, 0usize, self.broker as usize);
        loop {
            // One batch per partition per request, and requests of at most ~8 MiB.
            let per_request = (MAX_REQUEST_BYTES / self.templates[0].len()).max(1);
            let mut want = self.partitions.len().min(per_request) as u64;
            if let Some(rate) = self.batches_per_sec {
                let due = (rate * started.elapsed().as_secs_f64()) as u64;
                want = want.min(due.saturating_sub(sent));
                if want == 0 {
                    if self.remaining.load(Ordering::Relaxed) == 0 {
                        break;
                    }
                    let wait = Duration::from_secs_f64(1.0 / rate).min(Duration::from_millis(1));
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            let take = take_up_to(&self.remaining, want);
            if take == 0 {
                break;
            }
            let now_ms = crate::now_ms();
            let mut batches = Vec::with_capacity(take as usize);
            let mut acked = (0u64, 0u64, 0u64);
            for _ in 0..take {
                let t = &self.templates[next_template % self.templates.len()];
                next_template += 1;
                batches.push(PartitionBatch {
                    partition: self.partitions[next_partition % self.partitions.len()],
                    header: t.stamp_sent_at(now_ms),
                    payload: t.payload(),
                });
                next_partition += 1;
                acked.0 += t.records as u64;
                acked.1 += t.record_bytes as u64;
                acked.2 += t.len() as u64;
            }
            // Partitions come in rotation, so one request never holds a partition twice.
            batches.sort_by_key(|b| b.partition);
            let frame = ProduceRequestFrame {
                transactional_id: None,
                acks: -1,
                timeout_ms: self.timeout_ms,
                topics: vec![(self.topic.as_str(), batches)],
            };
            let request = conn
                .start(ProduceRequest::KEY, version, frame.encode(version))
                .await
                .map_err(|e| e.to_string())?;
            sent += take;
            let (stats, topic, count) = (self.stats.clone(), self.topic.clone(), take);
            window.push_back(Box::pin(async move {
                let body = request.response().await.map_err(|e| e.to_string())?;
                check_response(body, version, &topic)?;
                stats.records.fetch_add(acked.0, Ordering::Relaxed);
                stats.batches.fetch_add(count, Ordering::Relaxed);
                stats.record_bytes.fetch_add(acked.1, Ordering::Relaxed);
                stats.wire_bytes.fetch_add(acked.2, Ordering::Relaxed);
                Ok(())
            }));
            while window.len() >= self.in_flight {
                window.pop_front().expect("window is not empty").await?;
            }
        }
        while let Some(pending) = window.pop_front() {
            pending.await?;
        }
        Ok(())
    }
}

/// Takes up to `want` from a shared countdown; returns how many it took.
fn take_up_to(remaining: &AtomicU64, want: u64) -> u64 {
    let mut taken = 0;
    let _ = remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        taken = left.min(want);
        Some(left - taken)
    });
    taken
}

fn check_response(body: bytes::Bytes, version: i16, topic: &str) -> Result<(), String> {
    let response = ProduceResponse::decode(body, version).map_err(|e| format!("Produce response: {e}"))?;
    for t in response.responses {
        for p in t.partition_responses {
            if let Some(e) = ResponseError::try_from_code(p.error_code) {
                let detail = p.error_message.map(|m| format!(": {m}")).unwrap_or_default();
                return Err(format!("producing to {topic}-{} failed: {e}{detail}", p.index));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::take_up_to;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn the_countdown_never_goes_below_zero() {
        let left = AtomicU64::new(5);
        assert_eq!(take_up_to(&left, 3), 3);
        assert_eq!(take_up_to(&left, 3), 2);
        assert_eq!(take_up_to(&left, 3), 0);
        assert_eq!(left.load(Ordering::Relaxed), 0);
    }
}
