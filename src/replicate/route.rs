//! Starting, observing and stopping one route.
//!
//! [`start_route`] does the set-up a Kafka operator would do by hand (the reads are in
//! [`super::route_setup`]): it lists the source topics the route selects, creates missing
//! target topics (the source's partition count and configs, `compression.type=producer` so
//! the target never recompresses), gets an idempotent producer id, works out where every
//! partition resumes, and then starts the fetchers, sinks, the progress checkpointer, topic
//! sync and group offset sync. [`RouteHandle::shutdown`] stops fetching, waits until every
//! in-flight batch is acknowledged, and commits the final positions.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::budget::{Budget, Cap};
use super::fetcher::{run_fetchers, FetchContext, LivePartitions};
use super::heartbeat::{self, HeartbeatLatency, LatencyTracker};
use super::hook::BatchObserver;
use super::partition::{Acked, PartitionShared, PartitionSpec};
use super::progress::{commit_changed, run_checkpointer, ProgressStore};
use super::rate_limit::RateLimit;
use super::route_grow::RouteGrowth;
use super::route_setup::{ensure_target_topics, resume_route, select_topics, topic_layouts, TopicLayout};
use super::router::{run_router, RouterContext};
use super::sink::{run_sink, SinkContext};
use super::topic_sync::{run_topic_sync, TopicSync};
use super::RouteConfig;
use crate::offsets::sync::run_group_sync;
use crate::offsets::{MapTopic, MapWriter, OffsetMaps, PartitionMap};
use crate::wire::fetch::{FetchParams, READ_COMMITTED};
use crate::wire::{Cluster, WireError};

/// Sink queue depth per partition, in fetched chunks.
pub(super) const QUEUE_CHUNKS: usize = 2;
/// How long shutdown waits for in-flight batches to be acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a route could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    #[error("route '{route}': {source}")]
    Wire {
        route: String,
        #[source]
        source: WireError,
    },
    #[error("route '{route}': topic '{topic}' does not exist on source cluster '{cluster}'")]
    MissingTopic {
        route: String,
        cluster: String,
        topic: String,
    },
    #[error("route '{route}': {message}")]
    Invalid { route: String, message: String },
}

/// A snapshot of one partition, for status pages and tests.
#[derive(Debug, Clone)]
pub struct PartitionStatus {
    pub source_topic: String,
    pub target_topic: String,
    pub partition: i32,
    pub acked: Acked,
    pub high_watermark: i64,
    pub records_out: u64,
    pub bytes_out: u64,
    pub batches_out: u64,
    pub produce_retries: u64,
    pub producer_resets: u64,
    /// Which path each source batch took (fast path, slow paths, not forwarded).
    pub paths: super::PathCounts,
    pub error: Option<String>,
    /// Time lag, bytes behind, retention margin and the source log start offset.
    pub lag: super::PartitionLag,
    /// Source offsets deleted before they were replicated and skipped
    /// (`on.data.loss = "resume-earliest"`).
    pub lost_offsets: u64,
}

/// A running route.
pub struct RouteHandle {
    name: String,
    /// Source and target cluster names.
    clusters: (String, String),
    /// The route's `buffer.memory` cap (what its fetchers hold now).
    memory: Cap,
    progress: Arc<ProgressStore>,
    /// Source partitions (fetched, with committed progress), growing as topic sync adds some.
    partitions: LivePartitions,
    /// Adds partitions while the route runs (topic sync); its sinks are drained on shutdown.
    growth: Arc<RouteGrowth>,
    /// Target partitions fed by repartitioning routers (their sinks' state and errors).
    targets: Vec<Arc<PartitionShared>>,
    stop: watch::Sender<bool>,
    sinks: JoinSet<()>,
    background: JoinSet<()>,
    resumed_batches: usize,
    /// Source-to-target offset maps of the partitions replicated one to one.
    offset_maps: Arc<OffsetMaps>,
    /// Latency of the route's heartbeats, when it replicates them.
    heartbeat: Option<Arc<LatencyTracker>>,
}

impl RouteHandle {
    /// The route's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source cluster's name.
    pub fn source_cluster(&self) -> &str {
        &self.clusters.0
    }

    /// The target cluster's name.
    pub fn target_cluster(&self) -> &str {
        &self.clusters.1
    }

    /// Bytes of fetched data the route holds now (reserved in its `buffer.memory`).
    pub fn buffered_bytes(&self) -> u64 {
        self.memory.used() as u64
    }

    /// Per-partition positions, counters and errors.
    pub fn status(&self) -> Vec<PartitionStatus> {
        let now_ms = crate::now_ms();
        self.partitions
            .snapshot()
            .iter()
            .map(|p| PartitionStatus {
                source_topic: p.source_topic.clone(),
                target_topic: p.target_topic.clone(),
                partition: p.partition,
                acked: p.acked(),
                high_watermark: p.high_watermark(),
                records_out: p.counters.records_out.load(Ordering::Relaxed),
                bytes_out: p.counters.bytes_out.load(Ordering::Relaxed),
                batches_out: p.counters.batches_out.load(Ordering::Relaxed),
                produce_retries: p.counters.produce_retries.load(Ordering::Relaxed),
                producer_resets: p.counters.producer_resets.load(Ordering::Relaxed),
                paths: p.counters.paths(),
                error: p.error().map(|e| e.0),
                lag: p.lag(now_ms),
                lost_offsets: p.counters.lost_offsets.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Records and bytes forwarded so far, summed without allocating (cheap to poll at any
    /// partition count, unlike [`RouteHandle::status`]).
    pub fn forwarded(&self) -> (u64, u64) {
        self.partitions.snapshot().iter().fold((0, 0), |(r, b), p| {
            (
                r + p.counters.records_out.load(Ordering::Relaxed),
                b + p.counters.bytes_out.load(Ordering::Relaxed),
            )
        })
    }

    /// End-to-end latency of the route's heartbeats (see [`super::heartbeat`]); `None` when
    /// the route replicates no heartbeats or none has been acknowledged yet.
    pub fn heartbeat_latency(&self) -> Option<HeartbeatLatency> {
        self.heartbeat.as_ref().and_then(|h| h.summary())
    }

    /// The route's offset maps (see [`crate::offsets`]): translate committed source offsets
    /// to the target.
    pub fn offset_maps(&self) -> &Arc<OffsetMaps> {
        &self.offset_maps
    }

    /// Batches found already on the target at start (and so not written again).
    pub fn resumed_batches(&self) -> usize {
        self.resumed_batches
    }

    /// Errors of stopped partitions.
    pub fn errors(&self) -> Vec<String> {
        self.partitions
            .snapshot()
            .iter()
            .chain(&self.targets)
            .filter_map(|p| p.error().map(|e| e.0))
            .collect()
    }

    /// True when every partition has replicated up to the source high watermark seen last.
    pub fn caught_up(&self) -> bool {
        self.partitions.snapshot().iter().all(|p| {
            let hw = p.high_watermark();
            hw >= 0 && p.acked().source_next >= hw
        })
    }

    /// Pauses or resumes fetching the partitions of `topic` (every partition when `None`);
    /// returns how many partitions that touched. See [`PartitionShared::set_paused`].
    pub fn set_paused(&self, topic: Option<&str>, paused: bool) -> usize {
        self.partitions.set_paused(topic, paused)
    }

    /// True when some partition of `topic` is replicated by this route.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.partitions.snapshot().iter().any(|p| p.source_topic == topic)
    }

    /// Stops fetching, drains in-flight batches, and commits the final positions.
    pub async fn shutdown(mut self) -> Result<(), RouteError> {
        let _ = self.stop.send(true);
        let mut added = self.growth.take_sinks();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while self.sinks.join_next().await.is_some() {}
            while added.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(route = %self.name, "in-flight batches not acknowledged within {DRAIN_TIMEOUT:?}; they will be re-sent on restart");
            self.sinks.abort_all();
            added.abort_all();
        }
        self.background.abort_all();
        let mut committed = HashMap::new();
        let mut ok = false;
        for _ in 0..5 {
            ok = commit_changed(&self.progress, &self.partitions.snapshot(), &mut committed).await;
            if ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match ok {
            true => Ok(()),
            false => Err(RouteError::Invalid {
                route: self.name.clone(),
                message: "final progress commit failed; some batches may be re-sent on restart".to_string(),
            }),
        }
    }
}

/// Runs a partition's sink or router; if it panics, the partition is marked failed.
pub(super) fn spawn_supervised(
    set: &mut JoinSet<()>,
    part: Arc<PartitionShared>,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let handle = tokio::spawn(task);
    set.spawn(async move {
        let mut handle = AbortOnDrop(handle);
        if let Err(e) = (&mut handle.0).await {
            part.fail(format!("{}: the partition's task ended abnormally: {e}", part.label()));
        }
    });
}

/// Aborts a task when dropped, so that aborting the supervising task stops the sink too.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The broker-side Produce timeout: clearly below the client's request timeout, so that a
/// slow in-sync-replica wait comes back as REQUEST_TIMED_OUT instead of the client giving up
/// on (and closing) a connection that other partitions share.
fn produce_timeout_ms(request_timeout: Duration) -> i32 {
    let ms = request_timeout.as_millis() as i64;
    (ms - 5_000).max(ms / 2).clamp(1, i64::from(i32::MAX)) as i32
}

/// Sets up and starts a route. With `heartbeats` (the heartbeats topic), the route also
/// replicates that topic of its source and times its heartbeats.
pub async fn start_route(
    cfg: &RouteConfig,
    source: Arc<Cluster>,
    target: Arc<Cluster>,
    observer: Option<BatchObserver>,
    heartbeats: Option<&str>,
) -> Result<RouteHandle, RouteError> {
    let route = cfg.name.clone();
    let wire = |source: WireError| RouteError::Wire {
        route: route.clone(),
        source,
    };
    let topics = select_topics(cfg, &source, heartbeats).await?;
    let heartbeat = heartbeats.map(|_| Arc::new(LatencyTracker::default()));
    let observer = match (heartbeats, &heartbeat) {
        (Some(topic), Some(tracker)) => Some(heartbeat::observer(
            observer,
            topic.to_string(),
            cfg.source.clone(),
            tracker.clone(),
        )),
        _ => observer,
    };
    ensure_target_topics(cfg, &source, &target, &topics).await?;
    let producer = target.init_producer_id().await.map_err(wire)?;
    let (stop, stop_rx) = watch::channel(false);
    let wake = Arc::new(Notify::new());
    let sink_ctx = Arc::new(SinkContext {
        route: Arc::from(route.as_str()),
        target: target.clone(),
        max_in_flight: cfg.max_in_flight.clamp(1, 5),
        retry_backoff: cfg.retry_backoff,
        produce_timeout_ms: produce_timeout_ms(target.config().request_timeout),
        observer,
        wake: wake.clone(),
        producer,
    });
    let mut partitions = Vec::new();
    let mut targets = Vec::new();
    let mut sinks = JoinSet::new();
    let mut resumed_batches = 0;
    let offset_maps = OffsetMaps::new();
    let layouts = topic_layouts(cfg, &source, &target, &topics).await?;
    let resumed = resume_route(cfg, &source, &target, &layouts).await?;
    let map_topic = MapTopic {
        target: target.clone(),
        topic: cfg.offset_map_topic.clone(),
        route: route.clone(),
        source_cluster: cfg.source.clone(),
    };
    // Without the map topic (a broker without CreateTopics, or creation denied) the route
    // still replicates; its offset maps live in memory only. An existing topic that cannot be
    // read stops the start: fresh maps would overwrite what it holds.
    let persist_maps = match map_topic.ensure().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                route,
                "offset maps will not be persisted (translation after a restart is only at least once): {e}"
            );
            false
        }
    };
    let mut persisted_maps = match persist_maps {
        true => map_topic.load().await.map_err(wire)?,
        false => HashMap::new(),
    };
    for (layout, resumed) in layouts.iter().zip(resumed) {
        let TopicLayout {
            topic,
            topic_id,
            target_count,
            repartition,
            max_message_bytes,
            ..
        } = layout;
        let (repartition, max_message_bytes) = (*repartition, *max_message_bytes);
        if repartition {
            tracing::info!(
                route,
                "{topic}: {} source partitions -> {target_count} target partitions, by key",
                layout.partitions.len()
            );
        }
        let spec = |partition, repartition| PartitionSpec {
            source_topic: topic.clone(),
            target_topic: layout.target_topic.clone(),
            partition,
            topic_id: *topic_id,
            max_message_bytes,
            repartition,
        };
        let mut router_ctx = None;
        if repartition {
            let mut senders = Vec::new();
            for t in 0..*target_count as i32 {
                let start = Acked {
                    source_next: 0,
                    target_next: None,
                };
                let (part, rx) = PartitionShared::new(spec(t, false), start, QUEUE_CHUNKS);
                spawn_supervised(
                    &mut sinks,
                    part.clone(),
                    run_sink(sink_ctx.clone(), part.clone(), None, rx, stop_rx.clone()),
                );
                senders.push(part.sink_sender());
                targets.push(part);
            }
            router_ctx = Some(Arc::new(RouterContext {
                route: Arc::from(route.as_str()),
                targets: senders,
                compression: cfg.compression,
                max_message_bytes,
                wake: wake.clone(),
            }));
        }
        for (&partition, (acked, matched)) in layout.partitions.iter().zip(resumed) {
            resumed_batches += matched;
            if matched > 0 {
                tracing::info!(
                    route,
                    "{topic}-{partition}: {matched} batches were already on the target; resuming at source offset {}",
                    acked.source_next
                );
            }
            let (part, rx) = PartitionShared::new(spec(partition, repartition), acked, QUEUE_CHUNKS);
            match &router_ctx {
                Some(ctx) => {
                    let task = run_router(ctx.clone(), part.clone(), rx, stop_rx.clone());
                    spawn_supervised(&mut sinks, part.clone(), task);
                }
                None => {
                    let persisted = persisted_maps.remove(&(topic.clone(), partition));
                    let map = PartitionMap::for_start(persisted, acked.source_next, acked.target_next);
                    let map = offset_maps.insert(topic, partition, map);
                    let task = run_sink(sink_ctx.clone(), part.clone(), Some(map), rx, stop_rx.clone());
                    spawn_supervised(&mut sinks, part.clone(), task);
                }
            }
            partitions.push(part);
        }
    }
    tracing::info!(
        route,
        topics = topics.len(),
        partitions = partitions.len(),
        resumed_batches,
        "route started"
    );
    let memory = Cap::new(cfg.buffer_memory);
    let live = LivePartitions::new(partitions.clone());
    if cfg.start_paused {
        live.set_paused(None, true);
    }
    for topic in &cfg.start_paused_topics {
        live.set_paused(Some(topic), true);
    }
    let fetch_ctx = Arc::new(FetchContext {
        route: Arc::from(route.as_str()),
        source: source.clone(),
        partitions: live.clone(),
        params: FetchParams {
            max_wait_ms: cfg.fetch_max_wait_ms,
            min_bytes: 1,
            max_bytes: cfg.fetch_max_bytes,
            isolation_level: READ_COMMITTED,
        },
        partition_max_bytes: cfg.max_partition_fetch_bytes,
        budget: Budget {
            route: memory.clone(),
            global: cfg.process_memory_cap.clone(),
        },
        wake,
        retry_backoff: cfg.retry_backoff,
        compression: cfg.compression,
        oversize: cfg.oversize,
        check_crcs: cfg.check_crcs,
        corrupt: cfg.corrupt,
        on_data_loss: cfg.on_data_loss,
        max_held_bytes: (cfg.buffer_memory / 2) as usize,
        rate_limit: cfg
            .byte_rate_limit
            .map(|rate| Arc::new(RateLimit::new(rate, cfg.fetch_max_bytes.max(0) as u64))),
    });
    let mut background = JoinSet::new();
    background.spawn(run_fetchers(fetch_ctx, stop_rx.clone()));
    background.spawn(run_group_sync(cfg, &source, &target, &offset_maps, &stop_rx));
    let progress = Arc::new(ProgressStore {
        source: source.clone(),
        target: target.clone(),
        group: cfg.group_id.clone(),
        maps: persist_maps.then(|| Arc::new(MapWriter::new(map_topic, offset_maps.clone()))),
    });
    background.spawn(run_checkpointer(
        progress.clone(),
        partitions.clone(),
        cfg.commit_interval,
        stop_rx.clone(),
    ));
    let growth = Arc::new(RouteGrowth::new(
        cfg,
        (source.clone(), target.clone()),
        sink_ctx,
        stop_rx.clone(),
        offset_maps.clone(),
        live.clone(),
        progress.clone(),
    ));
    background.spawn(run_topic_sync(
        topic_sync_task(cfg, &source, &target, &growth, &layouts),
        stop_rx,
    ));
    Ok(RouteHandle {
        name: route,
        clusters: (cfg.source.clone(), cfg.target.clone()),
        memory,
        progress,
        partitions: live,
        growth,
        targets,
        stop,
        sinks,
        background,
        resumed_batches,
        offset_maps,
        heartbeat,
    })
}

/// The route's topic sync task, knowing the topics (and partition counts) it started with.
fn topic_sync_task(
    cfg: &RouteConfig,
    source: &Arc<Cluster>,
    target: &Arc<Cluster>,
    growth: &Arc<RouteGrowth>,
    layouts: &[TopicLayout],
) -> TopicSync {
    TopicSync {
        cfg: cfg.clone(),
        source: source.clone(),
        target: target.clone(),
        growth: growth.clone(),
        known: layouts
            .iter()
            .map(|l| (l.topic.clone(), l.partitions.len() as i32))
            .collect(),
    }
}
