//! Fetchers: one task per source broker, fetching every partition that broker leads.
//!
//! Fetching is pull-driven: a partition is fetched only when its sink queue has room and no
//! other fetch for it is in flight, and a response is handed on only once the route's memory
//! budget (`buffer.memory`) has room for it. Leadership is read from the cluster's metadata
//! cache on every round, so a partition whose leader moved is picked up by the new leader's
//! fetcher after the metadata refresh that its NOT_LEADER error triggers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::{watch, Notify, Semaphore};

use super::partition::{Chunk, PartitionShared};
use crate::batch::{BlobIter, FetchedEntry, RecordBatch};
use crate::wire::fetch::{fetch, FetchParams, FetchedPartition, PartitionFetch};
use crate::wire::{Cluster, Purpose};

/// Budget permits are counted in KiB so that a `u32` covers any sensible buffer size.
pub const BUDGET_UNIT: usize = 1024;

/// What every fetcher of a route shares.
pub struct FetchContext {
    pub route: Arc<str>,
    pub source: Arc<Cluster>,
    pub partitions: Vec<Arc<PartitionShared>>,
    pub params: FetchParams,
    pub partition_max_bytes: i32,
    pub budget: Arc<Semaphore>,
    /// The budget's size in permits.
    pub budget_units: usize,
    /// Signalled by sinks when they take a chunk (there is room to fetch again).
    pub wake: Arc<Notify>,
    pub retry_backoff: Duration,
}

/// Starts a fetcher for every broker that leads one of the route's partitions, and more as
/// leadership moves to new brokers, until `stop`.
pub async fn run_fetchers(ctx: Arc<FetchContext>, mut stop: watch::Receiver<bool>) {
    let mut started: HashSet<i32> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let meta = ctx.source.metadata();
        for p in &ctx.partitions {
            if let Some(leader) = meta.leader(&p.source_topic, p.partition) {
                if started.insert(leader) {
                    tasks.spawn(run_broker_fetcher(ctx.clone(), leader, stop.clone()));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => break,
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn run_broker_fetcher(ctx: Arc<FetchContext>, broker: i32, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let claimed = claim_partitions(&ctx, broker);
        if claimed.is_empty() {
            tokio::select! {
                _ = ctx.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        tokio::select! {
            _ = fetch_once(&ctx, broker, &claimed) => {}
            _ = stop.changed() => {}
        }
        for p in &claimed {
            p.release();
        }
    }
}

/// Claims the partitions this broker leads that are ready for a fetch.
fn claim_partitions(ctx: &FetchContext, broker: i32) -> Vec<Arc<PartitionShared>> {
    let meta = ctx.source.metadata();
    ctx.partitions
        .iter()
        .filter(|p| meta.leader(&p.source_topic, p.partition) == Some(broker))
        .filter(|p| p.ready_to_fetch() && p.claim())
        .cloned()
        .collect()
}

async fn fetch_once(ctx: &FetchContext, broker: i32, claimed: &[Arc<PartitionShared>]) {
    let requests: Vec<PartitionFetch> = claimed
        .iter()
        .map(|p| PartitionFetch {
            topic: p.source_topic.clone(),
            topic_id: p.topic_id,
            partition: p.partition,
            fetch_offset: p.next_fetch(),
            partition_max_bytes: ctx.partition_max_bytes,
        })
        .collect();
    let result = match ctx.source.broker(broker, Purpose::Fetch).await {
        Ok(conn) => fetch(&conn, ctx.params, &requests).await,
        Err(e) => Err(e),
    };
    let responses = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(route = %ctx.route, broker, "fetch failed, retrying: {e}");
            tokio::time::sleep(ctx.retry_backoff).await;
            let _ = ctx.source.refresh_metadata_if_older(ctx.retry_backoff).await;
            return;
        }
    };
    for fetched in responses {
        let Some(part) = claimed
            .iter()
            .find(|p| p.source_topic == fetched.topic && p.partition == fetched.partition)
        else {
            continue;
        };
        let fetch_offset = requests
            .iter()
            .find(|r| r.topic == fetched.topic && r.partition == fetched.partition)
            .map_or(part.next_fetch(), |r| r.fetch_offset);
        handle_partition(ctx, part, fetch_offset, fetched).await;
    }
}

async fn handle_partition(ctx: &FetchContext, part: &PartitionShared, fetch_offset: i64, fetched: FetchedPartition) {
    if let Some(error) = ResponseError::try_from_code(fetched.error_code) {
        handle_partition_error(ctx, part, fetch_offset, &fetched, error).await;
        return;
    }
    let (batches, next) = match split_batches(ctx, part, fetch_offset, fetched.records) {
        Ok(found) => found,
        Err(message) => {
            part.fail(message);
            return;
        }
    };
    if next > fetch_offset {
        let budget = match batches.is_empty() {
            true => None,
            false => {
                let bytes: usize = batches.iter().map(RecordBatch::len).sum();
                // A batch larger than the whole budget still goes through, alone.
                let units = bytes.div_ceil(BUDGET_UNIT).clamp(1, ctx.budget_units) as u32;
                let Ok(permit) = ctx.budget.clone().acquire_many_owned(units).await else {
                    return;
                };
                Some(Arc::new(permit))
            }
        };
        if part
            .deliver(Chunk {
                batches,
                end_offset: next,
                budget,
            })
            .is_err()
        {
            return; // the sink is gone (route stopping); the position stays where it was
        }
    }
    part.fetched(next, fetched.high_watermark);
}

/// Splits a partition's records into the batches to forward and the next fetch offset.
fn split_batches(
    ctx: &FetchContext,
    part: &PartitionShared,
    fetch_offset: i64,
    records: bytes::Bytes,
) -> Result<(Vec<RecordBatch>, i64), String> {
    let where_ = || {
        format!(
            "route '{}': source cluster '{}' {}",
            ctx.route,
            ctx.source.name(),
            part.label()
        )
    };
    let mut next = fetch_offset;
    let mut batches = Vec::new();
    for entry in BlobIter::new(records, fetch_offset) {
        let batch = match entry {
            Ok(FetchedEntry::Batch(b)) => b,
            Ok(FetchedEntry::Straddling(b)) => {
                // Only happens when a start position falls inside a batch (a log start moved
                // by DeleteRecords); kferry's own positions always end a batch. Re-encoding to
                // drop the leading records is slow-path work, so it is forwarded whole.
                tracing::warn!(route = %ctx.route, partition = %part.label(),
                    "fetch offset {fetch_offset} falls inside batch {}..={}; forwarding it whole ({} records below the fetch offset)",
                    b.base_offset(), b.last_offset(), fetch_offset - b.base_offset());
                part.counters
                    .straddling_batches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                b
            }
            Ok(FetchedEntry::Legacy { offset, magic, .. }) => {
                return Err(format!(
                    "{}: offset {offset}: message format v{magic} (magic {magic}) is not supported yet",
                    where_()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "{}: malformed records at fetch offset {fetch_offset}: {e}",
                    where_()
                ))
            }
        };
        next = batch.next_offset();
        if batch.attributes().is_control() {
            part.counters
                .control_batches_skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        if batch.is_empty_batch() {
            part.counters
                .empty_batches_skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        if batch.has_offset_gaps() {
            return Err(format!(
                "{}: offset {}: batch has offset gaps ({} records for offsets {}..={}, a compacted batch); \
                 re-encoding it is not supported yet",
                where_(),
                batch.base_offset(),
                batch.record_count(),
                batch.base_offset(),
                batch.last_offset()
            ));
        }
        batches.push(batch);
    }
    Ok((batches, next))
}

async fn handle_partition_error(
    ctx: &FetchContext,
    part: &PartitionShared,
    fetch_offset: i64,
    fetched: &FetchedPartition,
    error: ResponseError,
) {
    match error {
        ResponseError::OffsetOutOfRange => part.fail(format!(
            "route '{}': source cluster '{}' {}: fetch offset {fetch_offset} is out of range \
             (log start {}, high watermark {}): records were deleted before they were replicated",
            ctx.route,
            ctx.source.name(),
            part.label(),
            fetched.log_start_offset,
            fetched.high_watermark
        )),
        e if e.is_retriable()
            || matches!(
                e,
                ResponseError::UnknownTopicId | ResponseError::UnknownTopicOrPartition
            ) =>
        {
            tracing::debug!(route = %ctx.route, partition = %part.label(), "fetch: {e}, refreshing metadata");
            let _ = ctx.source.refresh_metadata_if_older(ctx.retry_backoff).await;
        }
        e => part.fail(format!(
            "route '{}': source cluster '{}' {}: fetch at offset {fetch_offset} failed: {e} (code {})",
            ctx.route,
            ctx.source.name(),
            part.label(),
            e.code()
        )),
    }
}
