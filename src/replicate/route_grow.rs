//! Adding topics and partitions to a running route (what topic sync calls).
//!
//! A new source topic, or new partitions of one, are replicated like the route's first
//! partitions: where each resumes is worked out with the route's committed progress and the
//! target's tail (`resume_route`, from the log start when there is no
//! progress: a topic created while kferry runs is copied from its beginning), then a sink per
//! partition is spawned and the partitions are added to the fetchers' [`LivePartitions`].
//! Only partitions mapped one to one are added at runtime; a topic whose target partition
//! count differs (repartitioning by key) is refused with an error.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::fetcher::LivePartitions;
use super::partition::{PartitionShared, PartitionSpec};
use super::progress::{run_checkpointer, ProgressStore};
use super::route::{spawn_supervised, RouteError, QUEUE_CHUNKS};
use super::route_setup::{resume_route, TopicLayout};
use super::sink::{run_sink, SinkContext};
use super::{RouteConfig, StartPosition};
use crate::offsets::{OffsetMaps, PartitionMap};
use crate::wire::Cluster;

/// What adding partitions to a running route needs.
pub struct RouteGrowth {
    /// The route's config, starting new partitions at the earliest offset.
    pub(super) cfg: RouteConfig,
    pub(super) source: Arc<Cluster>,
    pub(super) target: Arc<Cluster>,
    pub(super) sink_ctx: Arc<SinkContext>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) offset_maps: Arc<OffsetMaps>,
    pub(super) live: LivePartitions,
    pub(super) progress: Arc<ProgressStore>,
    /// Sinks of added partitions (drained on shutdown like the first ones).
    pub(super) sinks: Mutex<JoinSet<()>>,
    /// A checkpointer per addition.
    pub(super) checkpointers: Mutex<JoinSet<()>>,
}

impl RouteGrowth {
    pub(super) fn new(
        cfg: &RouteConfig,
        (source, target): (Arc<Cluster>, Arc<Cluster>),
        sink_ctx: Arc<SinkContext>,
        stop: watch::Receiver<bool>,
        offset_maps: Arc<OffsetMaps>,
        live: LivePartitions,
        progress: Arc<ProgressStore>,
    ) -> RouteGrowth {
        let mut cfg = cfg.clone();
        cfg.start = StartPosition::Earliest;
        RouteGrowth {
            cfg,
            source,
            target,
            sink_ctx,
            stop,
            offset_maps,
            live,
            progress,
            sinks: Mutex::new(JoinSet::new()),
            checkpointers: Mutex::new(JoinSet::new()),
        }
    }

    /// Starts replicating the partitions of `layout` (which the route does not have yet).
    pub(super) async fn add(&self, layout: TopicLayout) -> Result<usize, RouteError> {
        if layout.repartition {
            return Err(RouteError::Invalid {
                route: self.cfg.name.clone(),
                message: format!(
                    "cannot add '{}' while running: target topic '{}' on cluster '{}' has {} partitions, \
                     the source {} (repartitioning by key is set up only at start; restart the route)",
                    layout.topic,
                    layout.target_topic,
                    self.target.name(),
                    layout.target_count,
                    layout.partitions.len()
                ),
            });
        }
        let resumed = resume_route(&self.cfg, &self.source, &self.target, std::slice::from_ref(&layout))
            .await?
            .remove(0);
        let mut added = Vec::with_capacity(layout.partitions.len());
        for (&partition, (acked, matched)) in layout.partitions.iter().zip(resumed) {
            let spec = PartitionSpec {
                source_topic: layout.topic.clone(),
                target_topic: layout.target_topic.clone(),
                partition,
                topic_id: layout.topic_id,
                max_message_bytes: layout.max_message_bytes,
                repartition: false,
            };
            tracing::info!(
                route = %self.cfg.name,
                "{}-{partition}: added while running, from source offset {} ({matched} batches already on the target)",
                layout.topic,
                acked.source_next
            );
            let (part, rx) = PartitionShared::new(spec, acked, QUEUE_CHUNKS);
            let map = PartitionMap::for_start(None, acked.source_next, acked.target_next);
            let map = self.offset_maps.insert(&layout.topic, partition, map);
            let task = run_sink(self.sink_ctx.clone(), part.clone(), Some(map), rx, self.stop.clone());
            spawn_supervised(&mut lock(&self.sinks), part.clone(), task);
            added.push(part);
        }
        let count = added.len();
        lock(&self.checkpointers).spawn(run_checkpointer(
            self.progress.clone(),
            added.clone(),
            self.cfg.commit_interval,
            self.stop.clone(),
        ));
        self.live.extend(added);
        Ok(count)
    }

    /// Takes the sinks of added partitions (for shutdown to drain).
    pub(super) fn take_sinks(&self) -> JoinSet<()> {
        std::mem::take(&mut *lock(&self.sinks))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
