//! End-to-end latency: a probe that reads the target topic and measures, for each record,
//! the time from its producer timestamp to the moment the probe saw it.
//!
//! The load generator stamps records with the time it sends them (CreateTime), the replicator
//! keeps the timestamps, and the probe runs on the same machine, so one clock serves both
//! ends. Timestamps are in milliseconds, so every figure is ± 1 ms.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::batch::{decode_batch, BlobIter, FetchedEntry};
use crate::wire::fetch::{fetch, FetchParams, PartitionFetch};
use crate::wire::{Cluster, Purpose};

/// Counts per millisecond, up to a minute; later ones count in the last bucket.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

const BUCKETS: usize = 60_001;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, millis: i64) {
        let i = (millis.max(0) as usize).min(BUCKETS - 1);
        self.buckets[i] += 1;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest latency (ms) that at least `q` (0..=1) of the samples do not exceed.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (ms, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(ms as u64);
            }
        }
        None
    }
}

/// Reads `topic` on `cluster` from its current end until `stop`, recording every record's
/// latency into `histogram`. `max_wait_ms` is the probe's own fetch wait.
pub async fn probe(
    cluster: Arc<Cluster>,
    topic: String,
    max_wait_ms: i32,
    histogram: Arc<Mutex<Histogram>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let err = |e: crate::wire::WireError| e.to_string();
    let meta = cluster
        .refresh_metadata(Some(std::slice::from_ref(&topic)))
        .await
        .map_err(err)?;
    let t = meta
        .topics
        .get(&topic)
        .ok_or_else(|| format!("cluster '{}' has no topic '{topic}'", cluster.name()))?;
    let leader = t.partitions.first().map(|p| p.leader).unwrap_or(-1);
    if t.partitions.iter().any(|p| p.leader != leader) {
        return Err("the latency probe reads single-broker clusters only".into());
    }
    let conn = cluster.broker(leader, Purpose::Fetch).await.map_err(err)?;
    let params = FetchParams {
        max_wait_ms,
        min_bytes: 1,
        max_bytes: 16 << 20,
        isolation_level: 0,
    };
    let mut positions: Vec<PartitionFetch> = t
        .partitions
        .iter()
        .map(|p| PartitionFetch {
            topic: topic.clone(),
            topic_id: t.id,
            partition: p.partition,
            fetch_offset: 0,
            partition_max_bytes: 4 << 20,
        })
        .collect();
    // Start at the end: records already there are not part of this measurement.
    let ends = super::high_watermarks(&cluster, &topic).await.map_err(err)?;
    for p in &mut positions {
        p.fetch_offset = ends.get(p.partition as usize).copied().unwrap_or(0);
    }
    while !*stop.borrow() {
        let fetched = tokio::select! {
            r = fetch(&conn, params, &positions) => r.map_err(err)?,
            _ = stop.changed() => break,
        };
        let seen_ms = crate::now_ms();
        let mut latencies = Vec::new();
        for part in fetched {
            let Some(pos) = positions.iter_mut().find(|p| p.partition == part.partition) else {
                continue;
            };
            for entry in BlobIter::new(part.records, pos.fetch_offset) {
                let Ok(FetchedEntry::Batch(batch)) = entry else { break };
                if batch.attributes().is_control() {
                    pos.fetch_offset = batch.next_offset();
                    continue;
                }
                let records = decode_batch(&batch, 64 << 20).map_err(|e| e.to_string())?;
                for r in &records {
                    if batch.base_offset() + i64::from(r.offset_delta) >= pos.fetch_offset {
                        latencies.push(seen_ms - (batch.base_timestamp() + r.timestamp_delta));
                    }
                }
                pos.fetch_offset = batch.next_offset();
            }
        }
        let mut h = histogram.lock().expect("histogram lock");
        latencies.into_iter().for_each(|ms| h.record(ms));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn quantiles_pick_the_right_bucket() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(ms);
        }
        assert_eq!(h.quantile(0.5), Some(50));
        assert_eq!(h.quantile(0.99), Some(99));
        assert_eq!(h.quantile(1.0), Some(100));
        h.record(1_000_000);
        assert_eq!(h.quantile(1.0), Some(60_000));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
