//! The library entry point: [`Replicator`] and its builder.
//!
//! ```no_run
//! use kferry::{Replicator, RouteConfig, ClusterConfig};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let replicator = Replicator::builder()
//!     .cluster(ClusterConfig::new("onprem", vec!["kafka-1:9092".into()]))
//!     .cluster(ClusterConfig::new("cloud", vec!["b-1.example:9092".into()]))
//!     .route(RouteConfig::new("migrate", "onprem", "cloud").include(&["orders.*"]))
//!     .on_batch(|b| println!("{} {}-{} +{} records", b.route, b.source_topic, b.partition, b.record_count))
//!     .build()?;
//! let running = replicator.start().await?;
//! tokio::signal::ctrl_c().await?;
//! running.shutdown().await?;
//! # Ok(()) }
//! ```

mod manage;

pub use manage::{ManageError, PauseState};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::task::JoinSet;

use crate::config::Config;
use crate::replicate::heartbeat::{self, HeartbeatConfig};
use crate::replicate::route::start_route;
use crate::replicate::{BatchObserver, ForwardedBatch, PartitionStatus, RouteConfig, RouteError, RouteHandle};
use crate::wire::{Cluster, ClusterConfig};

/// Builds a [`Replicator`].
#[derive(Default)]
pub struct ReplicatorBuilder {
    clusters: Vec<ClusterConfig>,
    routes: Vec<RouteConfig>,
    process_cap: Option<crate::replicate::budget::Cap>,
    observer: Option<BatchObserver>,
    heartbeats: Option<HeartbeatConfig>,
}

impl ReplicatorBuilder {
    /// Adds a cluster; routes refer to it by name.
    pub fn cluster(mut self, config: ClusterConfig) -> Self {
        self.clusters.push(config);
        self
    }

    /// Adds a route between two named clusters.
    pub fn route(mut self, route: RouteConfig) -> Self {
        self.routes.push(route);
        self
    }

    /// Runs `f` for every batch the target acknowledged (on the partition's task: keep it cheap).
    pub fn on_batch(mut self, f: impl Fn(&ForwardedBatch<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// Writes heartbeats to every source cluster and replicates them on every route, timing
    /// each route's end-to-end latency ([`RouteHandle::heartbeat_latency`]). Off unless set
    /// (the daemon's `heartbeats.enabled` defaults to true). See [`crate::replicate::heartbeat`].
    pub fn heartbeats(mut self, config: HeartbeatConfig) -> Self {
        self.heartbeats = Some(config);
        self
    }

    /// Caps the bytes of fetched data all routes together may hold (each route's own
    /// `buffer_memory` still applies).
    pub fn buffer_memory(mut self, bytes: u64) -> Self {
        let cap = crate::replicate::budget::Cap::new(bytes);
        self.process_cap = Some(cap);
        self
    }

    /// Checks that every route names known clusters.
    pub fn build(mut self) -> Result<Replicator, RouteError> {
        if let Some(cap) = &self.process_cap {
            for r in &mut self.routes {
                r.process_memory_cap = Some(cap.clone());
            }
        }
        let clusters: HashMap<String, Arc<Cluster>> = self
            .clusters
            .into_iter()
            .map(|c| (c.name.clone(), Arc::new(Cluster::new(c))))
            .collect();
        for r in &self.routes {
            for name in [&r.source, &r.target] {
                if !clusters.contains_key(name) {
                    return Err(RouteError::Invalid {
                        route: r.name.clone(),
                        message: format!("unknown cluster '{name}'"),
                    });
                }
            }
        }
        Ok(Replicator {
            clusters,
            routes: self.routes,
            observer: self.observer,
            heartbeats: self.heartbeats,
        })
    }
}

/// Replicates the configured routes. Connections to a cluster are shared by its routes.
pub struct Replicator {
    clusters: HashMap<String, Arc<Cluster>>,
    routes: Vec<RouteConfig>,
    observer: Option<BatchObserver>,
    heartbeats: Option<HeartbeatConfig>,
}

impl Replicator {
    /// A builder with no clusters and no routes.
    pub fn builder() -> ReplicatorBuilder {
        ReplicatorBuilder::default()
    }

    /// A replicator for a validated daemon config.
    pub fn from_config(config: &Config) -> Result<Replicator, RouteError> {
        let mut builder = config
            .cluster_configs()
            .into_iter()
            .fold(Replicator::builder(), |b, c| b.cluster(c));
        if let Some(h) = config.heartbeat_config() {
            builder = builder.heartbeats(h);
        }
        config
            .route_configs()
            .into_iter()
            .fold(builder, |b, r| b.route(r))
            .build()
    }

    /// Starts route `route` (or only its `topic`) paused: nothing of it is fetched until it is
    /// resumed on the [`Running`] replicator. False when there is no such route.
    pub fn pause_at_start(&mut self, route: &str, topic: Option<&str>) -> bool {
        let Some(r) = self.routes.iter_mut().find(|r| r.name == route) else {
            return false;
        };
        match topic {
            None => r.start_paused = true,
            Some(t) => r.start_paused_topics.push(t.to_string()),
        }
        true
    }

    /// The clusters, by name.
    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name)
    }

    /// Starts every route; if one fails to start, those already started are stopped.
    /// With heartbeats, their topic is created on every source cluster first, and the
    /// writers start once the routes have.
    pub async fn start(&self) -> Result<Running, RouteError> {
        let replicate_heartbeats = self.prepare_heartbeats().await;
        let mut routes = Vec::new();
        for (r, with_heartbeats) in self.routes.iter().zip(replicate_heartbeats) {
            let source = self.clusters[&r.source].clone();
            let target = self.clusters[&r.target].clone();
            let topic = self.heartbeats.as_ref().map(|h| h.topic.as_str());
            match start_route(
                r,
                source,
                target,
                self.observer.clone(),
                topic.filter(|_| with_heartbeats),
            )
            .await
            {
                Ok(h) => routes.push(h),
                Err(e) => {
                    for h in routes {
                        let _ = h.shutdown().await;
                    }
                    return Err(e);
                }
            }
        }
        let process_memory = self.routes.iter().find_map(|r| r.process_memory_cap.clone());
        let mut heartbeat_writers = (JoinSet::new(), HashSet::new());
        if let Some(h) = &self.heartbeats {
            for cluster in self.source_clusters() {
                heartbeat_writers.1.insert(cluster.name().to_string());
                heartbeat_writers.0.spawn(heartbeat::run_writer(cluster, h.clone()));
            }
        }
        // What routes started paused with (`RouteConfig::start_paused*`) is what is paused.
        let entries = self.routes.iter().map(|c| RouteEntry {
            config: c.clone(),
            paused: c.start_paused,
            paused_topics: c.start_paused_topics.iter().cloned().collect(),
        });
        Ok(Running {
            table: RwLock::new(RouteTable {
                handles: routes,
                entries: entries.collect(),
            }),
            admin: tokio::sync::Mutex::new(()),
            clusters: self.clusters.clone(),
            observer: self.observer.clone(),
            heartbeats: self.heartbeats.clone(),
            process_memory,
            heartbeat_writers: Mutex::new(heartbeat_writers),
        })
    }

    /// Every cluster that is the source of a route, once each.
    fn source_clusters(&self) -> Vec<Arc<Cluster>> {
        let mut names: Vec<&str> = self.routes.iter().map(|r| r.source.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| self.clusters[n].clone()).collect()
    }

    /// Creates the heartbeats topic on every source cluster, and says which routes replicate
    /// it (all but those that would close a cycle; none without heartbeats). A cluster where
    /// the topic cannot be created is logged; its routes start without heartbeats.
    async fn prepare_heartbeats(&self) -> Vec<bool> {
        let Some(h) = &self.heartbeats else {
            return vec![false; self.routes.len()];
        };
        for cluster in self.source_clusters() {
            if let Err(e) = heartbeat::ensure_topic(&cluster, &h.topic).await {
                tracing::warn!(cluster = cluster.name(), "heartbeats topic '{}': {e}", h.topic);
            }
        }
        let chosen = heartbeat::heartbeat_routes(&self.routes);
        for (r, _) in self.routes.iter().zip(&chosen).filter(|(_, c)| !**c) {
            tracing::warn!(
                route = %r.name,
                "not replicating heartbeats on route '{}' ({} -> {}): routes chosen before it already lead from '{}' back to '{}', and topics keep their names",
                r.name, r.source, r.target, r.target, r.source
            );
        }
        chosen
    }
}

/// Routes being replicated. Routes can be added, removed, paused and resumed while it runs
/// (see the `manage` methods); readers take a snapshot under a short read lock.
pub struct Running {
    table: RwLock<RouteTable>,
    /// Serializes route changes: a route being added or removed is never half-visible to
    /// another change (a name freed by a removal is reusable once its final commit is done).
    admin: tokio::sync::Mutex<()>,
    clusters: HashMap<String, Arc<Cluster>>,
    observer: Option<BatchObserver>,
    heartbeats: Option<HeartbeatConfig>,
    /// The process-wide `buffer.memory` cap, when set.
    process_memory: Option<crate::replicate::budget::Cap>,
    /// One heartbeat writer per source cluster (aborted on shutdown), and those clusters.
    heartbeat_writers: Mutex<(JoinSet<()>, HashSet<String>)>,
}

/// The running routes and, index for index, what they were started with.
#[derive(Default)]
struct RouteTable {
    handles: Vec<RouteHandle>,
    entries: Vec<RouteEntry>,
}

struct RouteEntry {
    config: RouteConfig,
    /// The whole route is paused.
    paused: bool,
    /// Topics paused on their own (they stay paused when the route resumes).
    paused_topics: BTreeSet<String>,
}

impl RouteTable {
    fn index(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.config.name == name)
    }
}

/// A read-locked view of the running routes. Keep it briefly: route changes (add, remove,
/// pause, [`Running::stop`]) wait until it is dropped, so holding it across one of those calls
/// in the same task never returns ([`Running::shutdown`] takes `self`, so the compiler refuses
/// that one).
pub struct Routes<'a>(RwLockReadGuard<'a, RouteTable>);

impl std::ops::Deref for Routes<'_> {
    type Target = [RouteHandle];
    fn deref(&self) -> &[RouteHandle] {
        &self.0.handles
    }
}

impl Running {
    /// The running routes.
    pub fn routes(&self) -> Routes<'_> {
        Routes(self.table())
    }

    fn table(&self) -> RwLockReadGuard<'_, RouteTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn table_mut(&self) -> RwLockWriteGuard<'_, RouteTable> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Every partition of every route.
    pub fn status(&self) -> Vec<(String, PartitionStatus)> {
        self.routes()
            .iter()
            .flat_map(|r| r.status().into_iter().map(move |s| (r.name().to_string(), s)))
            .collect()
    }

    /// Bytes of fetched data held now under the process-wide `buffer.memory`, and that cap,
    /// when one is set.
    pub fn process_buffered_bytes(&self) -> Option<(u64, u64)> {
        self.process_memory
            .as_ref()
            .map(|c| (c.used() as u64, c.bytes() as u64))
    }

    /// Records and bytes forwarded by every route, without building the status.
    pub fn forwarded(&self) -> (u64, u64) {
        self.routes()
            .iter()
            .map(RouteHandle::forwarded)
            .fold((0, 0), |(r, b), (r2, b2)| (r + r2, b + b2))
    }

    /// The largest median heartbeat latency (ms) over the routes that have measured one.
    pub fn heartbeat_p50_ms(&self) -> Option<i64> {
        self.routes()
            .iter()
            .filter_map(|r| r.heartbeat_latency().map(|l| l.p50_ms))
            .max()
    }

    /// Errors of stopped partitions, on every route.
    pub fn errors(&self) -> Vec<String> {
        self.routes().iter().flat_map(RouteHandle::errors).collect()
    }

    /// True when every partition has reached the source high watermark last seen.
    pub fn caught_up(&self) -> bool {
        self.routes().iter().all(RouteHandle::caught_up)
    }

    /// Stops every route cleanly: drain in-flight batches, commit final positions. Waits for
    /// a route change in progress to finish first.
    pub async fn shutdown(self) -> Result<(), RouteError> {
        self.stop().await
    }

    /// [`Running::shutdown`] for a `Running` that is shared (e.g. in an `Arc` with the
    /// management API). It waits for the write lock on the routes: a [`Routes`] view held by
    /// the same task across this call never ends. Routes added afterwards are not stopped.
    pub async fn stop(&self) -> Result<(), RouteError> {
        let _admin = self.admin.lock().await;
        let mut writers = std::mem::take(&mut self.heartbeat_writers.lock().unwrap_or_else(|e| e.into_inner()).0);
        writers.abort_all();
        while writers.join_next().await.is_some() {}
        let table = std::mem::take(&mut *self.table_mut());
        let mut first_error = None;
        for r in table.handles {
            if let Err(e) = r.shutdown().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
