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

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
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
        })
    }
}

/// Replicates the configured routes. Connections to a cluster are shared by its routes.
pub struct Replicator {
    clusters: HashMap<String, Arc<Cluster>>,
    routes: Vec<RouteConfig>,
    observer: Option<BatchObserver>,
}

impl Replicator {
    /// A builder with no clusters and no routes.
    pub fn builder() -> ReplicatorBuilder {
        ReplicatorBuilder::default()
    }

    /// A replicator for a validated daemon config.
    pub fn from_config(config: &Config) -> Result<Replicator, RouteError> {
        let builder = config
            .cluster_configs()
            .into_iter()
            .fold(Replicator::builder(), |b, c| b.cluster(c));
        config
            .route_configs()
            .into_iter()
            .fold(builder, |b, r| b.route(r))
            .build()
    }

    /// The clusters, by name.
    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name)
    }

    /// Starts every route; if one fails to start, those already started are stopped.
    pub async fn start(&self) -> Result<Running, RouteError> {
        let mut routes = Vec::new();
        for r in &self.routes {
            let source = self.clusters[&r.source].clone();
            let target = self.clusters[&r.target].clone();
            match start_route(r, source, target, self.observer.clone()).await {
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
        Ok(Running { routes, process_memory })
    }
}

/// Routes being replicated.
pub struct Running {
    routes: Vec<RouteHandle>,
    /// The process-wide `buffer.memory` cap, when set.
    process_memory: Option<crate::replicate::budget::Cap>,
}

impl Running {
    /// The running routes.
    pub fn routes(&self) -> &[RouteHandle] {
        &self.routes
    }

    /// Every partition of every route.
    pub fn status(&self) -> Vec<(String, PartitionStatus)> {
        self.routes
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
        self.routes
            .iter()
            .map(RouteHandle::forwarded)
            .fold((0, 0), |(r, b), (r2, b2)| (r + r2, b + b2))
    }

    /// Errors of stopped partitions, on every route.
    pub fn errors(&self) -> Vec<String> {
        self.routes.iter().flat_map(RouteHandle::errors).collect()
    }

    /// True when every partition has reached the source high watermark last seen.
    pub fn caught_up(&self) -> bool {
        self.routes.iter().all(RouteHandle::caught_up)
    }

    /// Stops every route cleanly: drain in-flight batches, commit final positions.
    pub async fn shutdown(self) -> Result<(), RouteError> {
        let mut first_error = None;
        for r in self.routes {
            if let Err(e) = r.shutdown().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
