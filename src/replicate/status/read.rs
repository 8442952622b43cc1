//! The cluster reads of `kferry status`: per route, one Metadata request per cluster, one
//! OffsetFetch for the progress group, one ListOffsets(earliest) per source leader, and
//! Fetches at each partition's committed offset, coalesced into one Fetch per source broker
//! by the reconciliation reader ([`crate::replicate::reconcile::reads`]).
//!
//! The high watermark comes from those Fetches, not from ListOffsets(latest), which tansu 0.6
//! answers with the last batch's base offset + 1 (`docs/DESIGN.md` §6). Each Fetch asks for
//! [`SAMPLE_BYTES`] of the partition: Kafka cuts the log there (the headers of the first
//! batches are enough), tansu returns whole batches.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use tokio::task::JoinSet;

use super::{evaluate, BatchSample, PartitionReading, StatusRow};
use crate::replicate::reconcile::reads::{self, Reads};
use crate::replicate::{RouteConfig, RouteError};
use crate::wire::admin::TopicPartition;
use crate::wire::error::check_code;
use crate::wire::fetch::{FetchedPartition, PartitionFetch};
use crate::wire::{Cluster, WireError, EARLIEST};

/// `partition_max_bytes` of the Fetch at the committed offset.
pub const SAMPLE_BYTES: i32 = 16 << 10;
/// Partitions read at the same time (and at most in one coalesced Fetch).
const CONCURRENCY: usize = 256;

/// The status of every partition `cfg` replicates, sorted by topic and partition.
/// `now_ms` (ms since the epoch) is what time lags are measured against.
pub async fn read_route(
    cfg: &RouteConfig,
    source: Arc<Cluster>,
    target: &Cluster,
    now_ms: i64,
) -> Result<Vec<StatusRow>, RouteError> {
    let route = cfg.name.as_str();
    let wire = |source: WireError| RouteError::Wire {
        route: route.to_string(),
        source,
    };
    let filter = cfg.topic_filter().map_err(|e| RouteError::Invalid {
        route: route.to_string(),
        message: e.to_string(),
    })?;
    let meta = source.refresh_metadata(None).await.map_err(wire)?;
    let target_meta = target.refresh_metadata(None).await.map_err(wire)?;
    let topics = filter.select(meta.topics.values().filter(|t| !t.internal).map(|t| &t.name));
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| meta.topics[t].partitions.iter().map(move |p| (t.clone(), p.partition)))
        .collect();
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let committed = source
        .fetch_offsets_many(&cfg.group_id, &partitions)
        .await
        .map_err(wire)?;
    let log_starts = source.list_offsets_many(&partitions, EARLIEST).await.map_err(wire)?;
    let readings = read_partitions(source, partitions, |tp| {
        (
            committed.get(tp).map(|c| c.offset),
            log_starts.get(tp).copied().unwrap_or(0),
        )
    })
    .await
    .map_err(wire)?;
    Ok(readings
        .into_iter()
        .map(|mut r| {
            r.target_topic_exists = target_meta.topics.contains_key(&r.topic);
            evaluate(route, &r, now_ms)
        })
        .collect())
}

/// Reads the high watermark of each partition, and the batch headers at its committed offset,
/// [`CONCURRENCY`] partitions at a time. `position` gives (committed offset, log start).
async fn read_partitions(
    source: Arc<Cluster>,
    partitions: Vec<TopicPartition>,
    position: impl Fn(&TopicPartition) -> (Option<i64>, i64),
) -> Result<Vec<PartitionReading>, WireError> {
    let (reads, driver) = reads::reads(source, 0, CONCURRENCY);
    let driver = tokio::spawn(driver.run());
    let mut pending = partitions.into_iter();
    let mut set = JoinSet::new();
    let mut out = Vec::new();
    loop {
        while set.len() < CONCURRENCY {
            let Some(tp) = pending.next() else { break };
            let (committed, log_start) = position(&tp);
            let reads = reads.clone();
            set.spawn(async move { read_partition(&reads, tp, committed, log_start).await });
        }
        match set.join_next().await {
            Some(done) => out.push(done.expect("status read task panicked")?),
            None => break,
        }
    }
    drop(reads);
    let _ = driver.await;
    out.sort_by(|a: &PartitionReading, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// Reads one partition at its committed offset (at the log start when there is none or it
/// is below the log start; again at the log start when it is past the log end).
async fn read_partition(
    reads: &Reads,
    (topic, partition): TopicPartition,
    committed: Option<i64>,
    log_start: i64,
) -> Result<PartitionReading, WireError> {
    let at = committed.filter(|&c| c >= log_start).unwrap_or(log_start);
    let mut fetched = fetch_at(reads, &topic, partition, at).await?;
    let mut sampled_at = Some(at);
    if fetched.error_code == ResponseError::OffsetOutOfRange.code() && at != log_start {
        fetched = fetch_at(reads, &topic, partition, log_start).await?;
        sampled_at = None; // past the log end: nothing there to sample
    }
    check_code(reads.cluster().name(), fetched.error_code, || {
        format!("Fetch {topic}-{partition} at offset {at}")
    })?;
    let sample = sampled_at
        .filter(|&at| at < fetched.high_watermark)
        .and_then(|at| BatchSample::from_blob(&fetched.records, at));
    Ok(PartitionReading {
        topic,
        partition,
        committed,
        log_start,
        end: fetched.high_watermark,
        target_topic_exists: false,
        sample,
    })
}

/// One read at `offset`; asks again to go first in its Fetch when the byte budget of the
/// partitions ahead of it may have left it without a batch header.
async fn fetch_at(reads: &Reads, topic: &str, partition: i32, offset: i64) -> Result<FetchedPartition, WireError> {
    let cluster = reads.cluster();
    let (leader, request) = PartitionFetch::at_leader(cluster, topic, partition, offset, SAMPLE_BYTES)?;
    let mut answer = reads.read(leader, request.clone(), false).await?;
    let sampled = |a: &reads::Answer| {
        a.fetched
            .as_ref()
            .is_some_and(|f| BatchSample::from_blob(&f.records, offset).is_some())
    };
    if answer.maybe_cut_short(offset, reads.isolation_level()) && !sampled(&answer) {
        answer = reads.read(leader, request, true).await?;
    }
    answer.fetched.ok_or_else(|| WireError::Kafka {
        cluster: cluster.name().to_string(),
        context: format!(
            "Fetch {topic}-{partition} at offset {offset}: partition missing from the answer of broker {leader}"
        ),
        error: ResponseError::UnknownServerError,
    })
}
