//! Fetchers: one task per source broker, fetching every partition that broker leads, or
//! for which it is the preferred read replica (KIP-392, see [`super::read_replica`]).
//!
//! Fetching is pull-driven: a partition is fetched only when its sink queue has room and no
//! other fetch for it is in flight, and a response is handed on only once the route's memory
//! budget (`buffer.memory`) has room for it. Leadership is read from the cluster's metadata
//! cache on every round, so a partition whose leader moved is picked up by the new leader's
//! fetcher after the metadata refresh that its NOT_LEADER error triggers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use tokio::sync::{watch, Notify};

use super::budget::{Budget, Reservation};
use super::partition::{Chunk, Forward, PartitionShared};
use super::rate_limit::RateLimit;
use super::slowpath::{release, upconvert_legacy, OversizePolicy, SlowPathOptions};
use super::txn::TxnFilter;
use super::txn::TxnFilter as Txn;
use super::{CorruptPolicy, DataLossPolicy};
use crate::batch::{BlobIter, Compression, FetchedEntry, RecordBatch};
use crate::wire::fetch::{FetchEpochs, FetchParams, FetchedPartition, PartitionFetch, SessionFetcher};
use crate::wire::fetch_response::EpochEndOffset;
use crate::wire::{Cluster, Metadata, Purpose};

/// Kafka's `metadata.max.age.ms` default: metadata is refreshed at least this often.
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);
/// Fetch wait used while a partition of the same broker waits for room downstream, so that
/// an idle partition's long poll does not delay the busy one.
const SHORT_WAIT_MS: i32 = 20;

/// How long a stopping fetcher may take to close its fetch session on the broker.
const CLOSE_SESSION_TIMEOUT: Duration = Duration::from_secs(1);

/// A route's partitions, to which topic sync adds partitions while the route runs: readers
/// take a cheap snapshot, a writer swaps in a longer list. It also remembers what is paused,
/// so that partitions added later start paused too.
#[derive(Clone, Default)]
pub struct LivePartitions(Arc<Live>);

#[derive(Default)]
struct Live {
    list: std::sync::RwLock<Arc<Vec<Arc<PartitionShared>>>>,
    pauses: std::sync::Mutex<Pauses>,
}

#[derive(Default)]
struct Pauses {
    all: bool,
    topics: std::collections::HashSet<String>,
}

impl Pauses {
    fn covers(&self, topic: &str) -> bool {
        self.all || self.topics.contains(topic)
    }
}

impl LivePartitions {
    pub fn new(partitions: Vec<Arc<PartitionShared>>) -> LivePartitions {
        let live = Live {
            list: std::sync::RwLock::new(Arc::new(partitions)),
            pauses: Default::default(),
        };
        LivePartitions(Arc::new(live))
    }

    /// The partitions now.
    pub fn snapshot(&self) -> Arc<Vec<Arc<PartitionShared>>> {
        self.0.list.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds partitions; fetchers pick them up on their next round. Partitions of a paused
    /// topic (or of a paused route) start paused.
    pub fn extend(&self, added: impl IntoIterator<Item = Arc<PartitionShared>>) {
        let pauses = self.0.pauses.lock().unwrap_or_else(|e| e.into_inner());
        let mut list = self.0.list.write().unwrap_or_else(|e| e.into_inner());
        let mut grown = Vec::clone(&list);
        for p in added {
            if pauses.covers(&p.source_topic) {
                p.set_paused(true);
            }
            grown.push(p);
        }
        *list = Arc::new(grown);
    }

    /// Pauses or resumes the partitions of `topic` (every partition, and any topic paused on
    /// its own, when `None`); returns how many partitions that touched.
    pub fn set_paused(&self, topic: Option<&str>, paused: bool) -> usize {
        let mut pauses = self.0.pauses.lock().unwrap_or_else(|e| e.into_inner());
        match topic {
            None => {
                pauses.all = paused;
                pauses.topics.clear();
            }
            Some(t) if paused => {
                pauses.topics.insert(t.to_string());
            }
            Some(t) => {
                pauses.topics.remove(t);
            }
        }
        let list = self.snapshot();
        let chosen = list.iter().filter(|p| topic.map_or(true, |t| p.source_topic == t));
        chosen.map(|p| p.set_paused(paused)).count()
    }
}

/// What every fetcher of a route shares.
pub struct FetchContext {
    pub route: Arc<str>,
    pub source: Arc<Cluster>,
    /// The route's partitions (growing as topic sync adds topics and partitions).
    pub partitions: LivePartitions,
    pub params: FetchParams,
    pub partition_max_bytes: i32,
    /// The memory cap (`buffer.memory`): room is reserved before each fetch.
    pub budget: Budget,
    /// Signalled by sinks when they take a chunk (there is room to fetch again).
    pub wake: Arc<Notify>,
    pub retry_backoff: Duration,
    pub compression: Option<Compression>,
    pub oversize: OversizePolicy,
    pub check_crcs: bool,
    pub corrupt: CorruptPolicy,
    /// What to do when the source deleted records before they were replicated.
    pub on_data_loss: DataLossPolicy,
    /// Bytes a partition may hold behind an undecided transaction before it stops.
    pub max_held_bytes: usize,
    /// `byte.rate.limit`: fetched bytes per second, shared by the route's fetchers.
    pub rate_limit: Option<Arc<RateLimit>>,
}

impl FetchContext {
    /// Where an error happened, for messages: route, source cluster, topic-partition.
    fn origin(&self, part: &PartitionShared) -> String {
        format!(
            "route '{}': source cluster '{}' {}",
            self.route,
            self.source.name(),
            part.label()
        )
    }

    fn slow_path_options(&self, part: &PartitionShared) -> SlowPathOptions {
        SlowPathOptions::new(self.compression, part.max_message_bytes, self.oversize)
    }
}

/// Starts a fetcher for every broker that leads one of the route's partitions (or is its
/// preferred read replica), and more as leadership moves to new brokers, until `stop`.
pub async fn run_fetchers(ctx: Arc<FetchContext>, mut stop: watch::Receiver<bool>) {
    let mut started: HashSet<i32> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        refresh_if_needed(&ctx).await;
        let meta = ctx.source.metadata();
        for p in ctx.partitions.snapshot().iter() {
            if let Some(broker) = fetch_broker(&meta, p, Instant::now()) {
                if started.insert(broker) {
                    tasks.spawn(run_broker_fetcher(ctx.clone(), broker, stop.clone()));
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

/// The broker to fetch a partition from: its preferred read replica while that holds,
/// else its leader.
fn fetch_broker(meta: &Metadata, p: &PartitionShared, now: Instant) -> Option<i32> {
    let leader = meta.leader(&p.source_topic, p.partition);
    p.fetch_broker(leader, |b| meta.brokers.contains_key(&b), now)
}

/// Refreshes source metadata when it is older than `metadata.max.age.ms`, or when a live
/// partition has no known leader (nothing else would ever trigger a refresh for it).
async fn refresh_if_needed(ctx: &FetchContext) {
    let meta = ctx.source.metadata();
    let leaderless = ctx.partitions.snapshot().iter().any(|p| {
        p.error().is_none()
            && !meta
                .leader(&p.source_topic, p.partition)
                .is_some_and(|l| meta.brokers.contains_key(&l))
    });
    let max_age = if leaderless {
        Duration::from_secs(1)
    } else {
        METADATA_MAX_AGE
    };
    if let Err(e) = ctx.source.refresh_metadata_if_older(max_age).await {
        tracing::warn!(route = %ctx.route, "source metadata refresh failed: {e}");
    }
}

/// Fetches from one broker in one fetch session (KIP-227) until `stop`. Each round asks for
/// the partitions ready this round: those not ready (no room downstream, claimed by another
/// broker's fetcher) drop out of the session and come back when ready.
async fn run_broker_fetcher(ctx: Arc<FetchContext>, broker: i32, mut stop: watch::Receiver<bool>) {
    let mut session = SessionFetcher::new().with_rack_id(&ctx.source.config().client_rack);
    let mut scan = ScanStart::default();
    while !*stop.borrow() {
        let (claimed, busy_waiting) = claim_partitions(&ctx, broker, &mut scan);
        if claimed.is_empty() {
            tokio::select! {
                _ = ctx.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        tokio::select! {
            _ = rate_limited_fetch(&ctx, broker, &claimed, busy_waiting, &mut session) => {}
            _ = stop.changed() => {}
        }
        for p in &claimed {
            p.release();
        }
    }
    // Frees the broker's session slot now rather than when the broker evicts it.
    let _ = tokio::time::timeout(CLOSE_SESSION_TIMEOUT, session.close()).await;
}

/// Where each round's scan of the partitions starts, so that the request order rotates.
///
/// A broker fills a Fetch response in request order (KIP-74), and one without fetch sessions
/// can stop adding records part way through a long request: tansu 0.6 under load answered a
/// 10,000-partition request with no records for its last ~900 partitions, which had some,
/// round after round for minutes (the same request rotated got them at once). With a fixed
/// order those partitions starve. The start moves by about n/φ² each round (a
/// low-discrepancy sequence), so every partition comes early in a request within a few
/// rounds, whatever the partition count.
#[derive(Debug, Default)]
struct ScanStart(usize);

impl ScanStart {
    /// The index this round's scan of `n` partitions starts at; the next round starts further on.
    fn next(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let start = self.0 % n;
        self.0 = (start + (n * 382 / 1000).max(1)) % n;
        start
    }
}

/// Claims the partitions this broker leads (or is the read replica of) that are ready for a
/// fetch, in an order that rotates from round to round ([`ScanStart`]). Also says whether one
/// of its partitions is only waiting for room downstream (it will be ready soon).
fn claim_partitions(ctx: &FetchContext, broker: i32, scan: &mut ScanStart) -> (Vec<Arc<PartitionShared>>, bool) {
    let meta = ctx.source.metadata();
    let now = Instant::now();
    let mut busy_waiting = false;
    let mut claimed = Vec::new();
    let all = ctx.partitions.snapshot();
    let (tail, head) = all.split_at(scan.next(all.len()));
    for p in head
        .iter()
        .chain(tail)
        .filter(|p| fetch_broker(&meta, p, now) == Some(broker))
    {
        if p.ready_to_fetch() && p.claim() {
            claimed.push(p.clone());
        } else if p.error().is_none() && !p.paused() {
            busy_waiting = true;
        }
    }
    (claimed, busy_waiting)
}

/// [`fetch_once`], after waiting for the route's byte-rate limit, if any.
async fn rate_limited_fetch(
    ctx: &FetchContext,
    broker: i32,
    claimed: &[Arc<PartitionShared>],
    busy_waiting: bool,
    session: &mut SessionFetcher,
) {
    if let Some(limit) = &ctx.rate_limit {
        limit.ready().await;
    }
    fetch_once(ctx, broker, claimed, busy_waiting, session).await;
}

async fn fetch_once(
    ctx: &FetchContext,
    broker: i32,
    claimed: &[Arc<PartitionShared>],
    busy_waiting: bool,
    session: &mut SessionFetcher,
) {
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
    let epochs = fetch_epochs(ctx, claimed);
    // Room first: fetching pauses while the memory cap is reached, and the broker is asked
    // for no more than the room reserved.
    let Some(mut room) = ctx
        .budget
        .reserve(ctx.partition_max_bytes as usize, ctx.params.max_bytes as usize)
        .await
    else {
        return;
    };
    let result = match ctx.source.broker(broker, Purpose::Fetch).await {
        Ok(conn) => {
            let mut params = ctx.params;
            params.max_bytes = params.max_bytes.min(room.bytes() as i32);
            if busy_waiting {
                params.max_wait_ms = params.max_wait_ms.min(SHORT_WAIT_MS);
            }
            session.fetch_with_epochs(&conn, params, &requests, &epochs).await
        }
        Err(e) => Err(e),
    };
    let responses = match result {
        Ok(r) => r,
        Err(e) => {
            crate::metrics::events::wire_error(&ctx.route, &e, crate::metrics::events::ErrorKind::FetchError);
            tracing::warn!(route = %ctx.route, broker, "fetch failed, retrying: {e}");
            for p in claimed {
                p.read_replica_failed(broker); // back to the leader
            }
            tokio::time::sleep(ctx.retry_backoff).await;
            let _ = ctx.source.refresh_metadata_if_older(ctx.retry_backoff).await;
            return;
        }
    };
    // `claimed` and `requests` share indexes; look partitions up once, not per response. In
    // a fetch session the answer lists only partitions with news: the others had nothing.
    let index: HashMap<(&str, i32), usize> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.topic.as_str(), r.partition), i))
        .collect();
    if let Some(limit) = &ctx.rate_limit {
        limit.took(responses.iter().map(|f| f.records.len()).sum());
    }
    let mut retriable_errors = false;
    for fetched in responses {
        let Some(&i) = index.get(&(fetched.topic.as_str(), fetched.partition)) else {
            continue;
        };
        let part = &claimed[i];
        retriable_errors |= handle_partition(ctx, part, broker, requests[i].fetch_offset, fetched, &mut room).await;
    }
    if retriable_errors {
        tokio::time::sleep(ctx.retry_backoff).await;
    }
}

/// Each claimed partition's leader epochs for the request (KIP-320): the leader's epoch from
/// metadata and the epoch of the last batch fetched, each -1 when unknown.
fn fetch_epochs(ctx: &FetchContext, claimed: &[Arc<PartitionShared>]) -> Vec<FetchEpochs> {
    let meta = ctx.source.metadata();
    claimed
        .iter()
        .map(|p| {
            let current_leader_epoch = meta
                .topics
                .get(&p.source_topic)
                .and_then(|t| {
                    let i = t.partitions.binary_search_by_key(&p.partition, |m| m.partition).ok()?;
                    Some(t.partitions[i].leader_epoch)
                })
                .filter(|&e| e >= 0)
                .unwrap_or(-1);
            FetchEpochs {
                current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch(),
            }
        })
        .collect()
}

/// Handles one partition of a response from `broker`; true when it had a retriable error.
async fn handle_partition(
    ctx: &FetchContext,
    part: &PartitionShared,
    broker: i32,
    fetch_offset: i64,
    fetched: FetchedPartition,
    room: &mut Reservation,
) -> bool {
    if part.paused() {
        // Paused while this fetch was in flight: its data is dropped and the position stays,
        // so the first fetch after the resume asks for the same records.
        return false;
    }
    if let Some(error) = ResponseError::try_from_code(fetched.error_code) {
        if part.read_replica_failed(broker) {
            tracing::info!(route = %ctx.route, partition = %part.label(), broker,
                "read replica answered {error} at offset {fetch_offset}; fetching from the leader again");
            return true;
        }
        return handle_partition_error(ctx, part, fetch_offset, &fetched, error).await;
    }
    if let Some(diverging) = fetched.diverging_epoch {
        handle_diverging(ctx, part, fetch_offset, diverging);
        return false;
    }
    if fetched.preferred_read_replica >= 0 && fetched.preferred_read_replica != broker {
        tracing::debug!(route = %ctx.route, partition = %part.label(), broker,
            "fetching from preferred read replica {}", fetched.preferred_read_replica);
        part.prefer_read_replica(fetched.preferred_read_replica, Instant::now());
    }
    let (split, error) = split_batches(ctx, part, fetch_offset, &fetched);
    if split.end_offset > part.delivered_end() || !split.forwards.is_empty() {
        let budget = match split.forwards.is_empty() {
            true => None,
            false => {
                let bytes: usize = split.forwards.iter().map(|f| f.batch.len()).sum();
                // The reservation covers what the broker sent, except a first batch larger
                // than max_bytes (KIP-74) or bytes a slow path added: wait for those.
                let share = match room.split(bytes) {
                    Some(share) => share,
                    None => {
                        let mut share = room.take_all();
                        let Some(extra) = ctx.budget.reserve_exact(bytes - share.bytes()).await else {
                            return false;
                        };
                        share.merge(extra);
                        share
                    }
                };
                Some(Arc::new(share))
            }
        };
        let chunk = Chunk {
            batches: split.forwards,
            end_offset: split.end_offset,
            budget,
        };
        if part.deliver(chunk).is_err() {
            return false; // the sink is gone (route stopping); the position stays where it was
        }
    }
    if let Some(message) = error {
        // What came before the failing batch was delivered above and is still replicated.
        part.fail_fetch(message);
        return false;
    }
    part.fetched(
        split.next_fetch,
        fetched.high_watermark,
        fetched.log_start_offset,
        split.last_epoch,
    );
    false
}

/// What one partition's fetched records became.
struct Split {
    /// Batches ready for the sink, in source order.
    forwards: Vec<Forward>,
    /// Where the next fetch starts (after every complete batch fetched).
    next_fetch: i64,
    /// How far the acknowledged position may move once `forwards` are acknowledged: the
    /// fetch position, or the first batch held by an undecided transaction.
    end_offset: i64,
    /// The partition leader epoch of the last entry fetched (-1 for a v0/v1 entry), if any.
    last_epoch: Option<i32>,
}

/// Turns a partition's fetched records into batches to forward: CRC check, read-committed
/// filtering, and the fast path or a slow path for each batch.
/// On an error, the batches before the failing one are still returned, with an end offset
/// just after the last of them, so that they are replicated before the partition stops.
fn split_batches(
    ctx: &FetchContext,
    part: &PartitionShared,
    fetch_offset: i64,
    fetched: &FetchedPartition,
) -> (Split, Option<String>) {
    let mut split = Split {
        forwards: Vec::new(),
        next_fetch: fetch_offset,
        end_offset: fetch_offset,
        last_epoch: None,
    };
    match walk(ctx, part, fetch_offset, fetched, &mut split) {
        Ok(()) => (split, None),
        Err(message) => {
            split.end_offset = split
                .forwards
                .last()
                .map_or(part.delivered_end(), |f| f.source_last + 1);
            (split, Some(message))
        }
    }
}

fn walk(
    ctx: &FetchContext,
    part: &PartitionShared,
    fetch_offset: i64,
    fetched: &FetchedPartition,
    split: &mut Split,
) -> Result<(), String> {
    let where_ = || ctx.origin(part);
    let opts = ctx.slow_path_options(part);
    let mut txn = part.txn.lock().expect("txn lock");
    if let Some(list) = &fetched.aborted {
        txn.handle_aborted_list(list);
    }
    let mut next = fetch_offset;
    let forwards = &mut split.forwards;
    for entry in BlobIter::new(fetched.records.clone(), fetch_offset) {
        let entry =
            entry.map_err(|e| format!("{}: malformed records at fetch offset {fetch_offset}: {e}", where_()))?;
        next = entry.next_offset();
        split.last_epoch = Some(match &entry {
            FetchedEntry::Batch(b) | FetchedEntry::Straddling(b) => b.partition_leader_epoch(),
            FetchedEntry::Legacy { .. } => -1,
        });
        match entry {
            FetchedEntry::Batch(b) => accept(ctx, part, &mut txn, b)?,
            FetchedEntry::Straddling(b) => {
                // Only when a start position falls inside a batch (a log start moved by
                // DeleteRecords, or a group offset committed by another client): forwarded whole.
                tracing::warn!(route = %ctx.route, partition = %part.label(),
                    "fetch offset {fetch_offset} falls inside batch {}..={}; forwarding it whole ({} records below the fetch offset)",
                    b.base_offset(), b.last_offset(), fetch_offset - b.base_offset());
                part.counters.straddling.add(b.len());
                accept(ctx, part, &mut txn, b)?;
            }
            FetchedEntry::Legacy { offset, bytes, .. } => {
                release(&mut txn, &opts, &part.counters, part.repartition, forwards)
                    .map_err(|e| format!("{}: {e}", where_()))?;
                if txn.first_held_offset().is_some() {
                    return Err(format!(
                        "{}: offset {offset}: a v0/v1 message follows an open transaction",
                        where_()
                    ));
                }
                let up = upconvert_legacy(offset, &bytes, &opts, &part.counters)
                    .map_err(|e| format!("{}: offset {offset}: cannot up-convert message set: {e}", where_()))?;
                forwards.extend(up);
            }
        }
        release(&mut txn, &opts, &part.counters, part.repartition, forwards)
            .map_err(|e| format!("{}: {e}", where_()))?;
    }
    if txn.held_bytes() > ctx.max_held_bytes {
        return Err(format!(
            "{}: transactions still open at offset {} hold {} bytes, more than half of buffer.memory ({} bytes)",
            where_(),
            txn.first_held_offset().unwrap_or(next),
            txn.held_bytes(),
            ctx.max_held_bytes
        ));
    }
    split.end_offset = txn.first_held_offset().unwrap_or(next);
    split.next_fetch = next;
    Ok(())
}

/// Checks a batch's CRC (per `check.crcs`) and hands it to the read-committed filter.
fn accept(ctx: &FetchContext, part: &PartitionShared, txn: &mut TxnFilter, batch: RecordBatch) -> Result<(), String> {
    let where_ = || ctx.origin(part);
    if ctx.check_crcs {
        if let Err(e) = batch.verify_crc() {
            crate::metrics::events::error(&ctx.route, crate::metrics::events::ErrorKind::CorruptBatch);
            if ctx.corrupt == CorruptPolicy::Fail {
                return Err(format!("{}: {e}; the batch was not forwarded", where_()));
            }
            tracing::warn!(route = %ctx.route, partition = %part.label(),
                "skipping corrupt batch at offsets {}..={}: {e}", batch.base_offset(), batch.last_offset());
            part.counters.corrupt_skipped.add(batch.len());
            return Ok(());
        }
    }
    txn.handle_batch(batch).map_err(|e| format!("{}: {e}", where_()))
}

async fn handle_partition_error(
    ctx: &FetchContext,
    part: &PartitionShared,
    fetch_offset: i64,
    fetched: &FetchedPartition,
    error: ResponseError,
) -> bool {
    crate::metrics::events::error(&ctx.route, crate::metrics::events::ErrorKind::FetchError);
    let where_ = ctx.origin(part);
    match error {
        ResponseError::OffsetOutOfRange => return handle_out_of_range(ctx, part, fetch_offset, fetched),
        ResponseError::UnknownTopicId if topic_recreated(ctx, part) => part.fail_fetch(format!(
            "{where_}: the topic was deleted and created again (its topic id changed); \
             replication stopped at offset {fetch_offset} (acknowledged up to {}) rather than mixing two topics' data",
            part.acked().source_next
        )),
        e if e.is_retriable()
            || matches!(
                e,
                ResponseError::UnknownTopicId | ResponseError::UnknownTopicOrPartition
            ) =>
        {
            tracing::debug!(route = %ctx.route, partition = %part.label(), "fetch: {e}, refreshing metadata");
            let _ = ctx.source.refresh_metadata_if_older(ctx.retry_backoff).await;
            return true;
        }
        e => part.fail_fetch(format!(
            "{where_}: fetch at offset {fetch_offset} failed: {e} (code {})",
            e.code()
        )),
    }
    false
}

/// OFFSET_OUT_OF_RANGE: retention (or DeleteRecords) passed the position, or the log was
/// truncated below it. Never skipped silently: the partition stops with the number of
/// offsets concerned, or, for deleted records with `on.data.loss = "resume-earliest"`, goes
/// on from the log start and counts them. Returns true to retry (the answer explained
/// nothing).
fn handle_out_of_range(
    ctx: &FetchContext,
    part: &PartitionShared,
    fetch_offset: i64,
    fetched: &FetchedPartition,
) -> bool {
    let where_ = ctx.origin(part);
    let (log_start, high_watermark) = (fetched.log_start_offset, fetched.high_watermark);
    part.observed_log(high_watermark, log_start);
    if log_start > fetch_offset {
        // Records held back by an open transaction were fetched but not replicated: they
        // are gone from the source too.
        let mut txn = part.txn.lock().expect("txn lock");
        let position = txn.first_held_offset().unwrap_or(fetch_offset).min(fetch_offset);
        let lost = log_start - position;
        match ctx.on_data_loss {
            DataLossPolicy::Fail => part.fail_fetch(format!(
                "{where_}: source log start offset {log_start} passed replicated position {position}: \
                 {lost} offsets were deleted before they were replicated (on.data.loss=fail)"
            )),
            DataLossPolicy::ResumeEarliest => {
                tracing::warn!(route = %ctx.route, partition = %part.label(),
                    "source log start offset {log_start} passed replicated position {position}: \
                     {lost} offsets were deleted before they were replicated; resuming at {log_start} (on.data.loss=resume-earliest)");
                *txn = Txn::default();
                drop(txn);
                resume_at(part, log_start, lost);
            }
        }
        return false;
    }
    if high_watermark >= 0 && fetch_offset > high_watermark {
        part.fail_fetch(format!(
            "{where_}: the source log was truncated below the replicated position: fetch offset \
             {fetch_offset} is past the high watermark {high_watermark}, so {} offsets replicated earlier \
             are no longer in the source log (an unclean leader election?); records written there \
             since would be skipped, so replication stopped",
            fetch_offset - high_watermark
        ));
        return false;
    }
    tracing::warn!(route = %ctx.route, partition = %part.label(),
        "fetch offset {fetch_offset} out of range, yet within log start {log_start} and high watermark {high_watermark}; retrying");
    true
}

/// Moves a partition past `lost` offsets the source deleted, to `log_start`: the fetch
/// position at once, the acknowledged position (and so the committed progress) once every
/// batch before the gap is acknowledged, by an empty chunk ending there.
fn resume_at(part: &PartitionShared, log_start: i64, lost: i64) {
    part.counters
        .lost_offsets
        .fetch_add(lost.max(0) as u64, std::sync::atomic::Ordering::Relaxed);
    part.skip_to(log_start);
    let gap = Chunk {
        batches: Vec::new(),
        end_offset: log_start,
        budget: None,
    };
    if part.deliver(gap).is_err() {
        // The sink is gone (the route is stopping): the position stays where it was and
        // the next start meets the same gap.
        tracing::debug!(partition = %part.label(), "sink gone; the skip to {log_start} is not acknowledged");
    }
}

/// A `diverging_epoch` answer (KIP-320): the leader's log for the epoch of the last batch
/// fetched ends at `end_offset`. Below the fetch position, offsets kferry replicated are no
/// longer in the source log (it was truncated, e.g. by an unclean leader election): the
/// partition stops, whatever `on.data.loss` says, since the target holds records the source
/// no longer has. At or past it, nothing was lost: the leader's epoch is adopted.
fn handle_diverging(ctx: &FetchContext, part: &PartitionShared, fetch_offset: i64, diverging: EpochEndOffset) {
    let EpochEndOffset { epoch, end_offset } = diverging;
    if end_offset < 0 {
        // The leader knows no epoch up to ours (its log starts later): fetch without one;
        // if retention passed the position, OFFSET_OUT_OF_RANGE says so next.
        part.set_last_fetched_epoch(-1);
        return;
    }
    if end_offset >= fetch_offset {
        tracing::info!(route = %ctx.route, partition = %part.label(),
            "leader's log for epoch {epoch} ends at {end_offset}, at or past fetch offset {fetch_offset}: nothing diverged");
        part.set_last_fetched_epoch(epoch);
        return;
    }
    let diverged = fetch_offset - end_offset;
    part.fail_fetch(format!(
        "{}: the source log diverged (KIP-320): the leader's log for leader epoch {epoch} ends at offset \
         {end_offset}, below the replicated position {fetch_offset}, so {diverged} offsets \
         ({end_offset}..{fetch_offset}) replicated earlier are no longer in the source log \
         (truncated, e.g. by an unclean leader election); replication stopped rather than skip them",
        ctx.origin(part)
    ));
}

/// True when fresh metadata names the partition's topic with another topic id.
fn topic_recreated(ctx: &FetchContext, part: &PartitionShared) -> bool {
    let meta = ctx.source.metadata();
    meta.topics
        .get(&part.source_topic)
        .is_some_and(|t| !t.id.is_nil() && t.id != part.topic_id)
}

#[cfg(test)]
mod tests {
    use super::ScanStart;

    /// The positions each partition takes in `rounds` requests of `n` partitions (a rotation
    /// starting where `ScanStart` says), and whether it was among the first `served`.
    fn served_within(n: usize, served: usize, rounds: usize) -> Vec<bool> {
        let mut scan = ScanStart::default();
        let mut seen = vec![false; n];
        for _ in 0..rounds {
            let start = scan.next(n);
            let order: Vec<usize> = (start..n).chain(0..start).collect();
            assert_eq!(order.len(), n, "every partition is in every request once");
            for &p in &order[..served] {
                seen[p] = true;
            }
        }
        seen
    }

    #[test]
    fn every_partition_comes_early_in_a_request_within_a_few_rounds() {
        // A broker that fills only the first 1,000 partitions of a 10,000-partition request
        // (tansu under load) still serves every partition within 15 rounds.
        let seen = served_within(10_000, 1_000, 15);
        let starved: Vec<usize> = (0..seen.len()).filter(|&p| !seen[p]).collect();
        assert!(
            starved.is_empty(),
            "never served: {} partitions, first {:?}",
            starved.len(),
            starved.first()
        );
        // Small routes rotate too.
        assert!(served_within(3, 1, 3).iter().all(|&s| s));
        assert!(served_within(1, 1, 1)[0]);
    }

    #[test]
    fn the_start_moves_every_round() {
        let mut scan = ScanStart::default();
        let starts: Vec<usize> = (0..4).map(|_| scan.next(10)).collect();
        assert_eq!(starts, vec![0, 3, 6, 9]);
        assert_eq!(ScanStart::default().next(0), 0, "no partitions: nothing to rotate");
    }
}
