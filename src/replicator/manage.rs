//! Changing the routes of a [`Running`] replicator while it runs: add, remove, pause and
//! resume a route or one of its topics.
//!
//! A route added here is checked as config load checks one (known clusters, a source other
//! than the target, topic patterns that compile, a unique name, no replication cycle with
//! the routes already running) and then started exactly as at start-up. Removing a route is
//! its clean shutdown: fetching stops, in-flight batches are acknowledged, and the final
//! positions are committed before the call returns (and before the name can be reused).
//!
//! Pausing stops new fetches of the route's (or topic's) partitions, and what a fetch in
//! flight returns for them is dropped; batches already handed to a sink are still produced
//! and committed. The fetch position stays where the last delivered batch ended, so
//! resuming continues exactly there: nothing lost, nothing written twice.

use std::collections::BTreeSet;

use super::{RouteEntry, RouteTable, Routes, Running};
use crate::replicate::cycle::{replication_cycle, RouteEdge};
use crate::replicate::heartbeat;
use crate::replicate::route::start_route;
use crate::replicate::{RouteConfig, RouteError, TopicFilter};

/// Why a route change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    #[error("no route named '{0}'")]
    UnknownRoute(String),
    #[error("route '{route}' replicates no topic '{topic}'")]
    UnknownTopic { route: String, topic: String },
    #[error("a route named '{0}' is already running")]
    Duplicate(String),
    /// The new route would close a replication cycle (the message names its routes).
    #[error("route '{route}': {message}")]
    Cycle { route: String, message: String },
    /// Invalid, or it failed to start.
    #[error(transparent)]
    Route(#[from] RouteError),
}

/// A route's pause state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PauseState {
    /// The whole route is paused.
    pub route: bool,
    /// Topics paused on their own.
    pub topics: Vec<String>,
}

impl Routes<'_> {
    /// What is paused on a running route (read under the lock this view holds).
    pub fn pause_state(&self, name: &str) -> Option<PauseState> {
        self.0.index(name).map(|i| {
            let e = &self.0.entries[i];
            PauseState {
                route: e.paused,
                topics: e.paused_topics.iter().cloned().collect(),
            }
        })
    }
}

impl Running {
    /// The config a running route was started with.
    pub fn route_config(&self, name: &str) -> Option<RouteConfig> {
        let table = self.table();
        table.index(name).map(|i| table.entries[i].config.clone())
    }

    /// What is paused on a running route.
    pub fn pause_state(&self, name: &str) -> Option<PauseState> {
        self.routes().pause_state(name)
    }

    /// Checks and starts a new route; it replicates until removed or shut down.
    pub async fn add_route(&self, mut config: RouteConfig) -> Result<(), ManageError> {
        let _admin = self.admin.lock().await;
        let replicate_heartbeats = {
            let table = self.table();
            check_new_route(&table, &config, |c| self.clusters.contains_key(c))?;
            let mut all: Vec<RouteConfig> = table.entries.iter().map(|e| e.config.clone()).collect();
            all.push(config.clone());
            heartbeat::heartbeat_routes(&all).last().copied().unwrap_or(false)
        };
        if let Some(cap) = &self.process_memory {
            config.process_memory_cap = Some(cap.clone());
        }
        let source = self.clusters[&config.source].clone();
        let target = self.clusters[&config.target].clone();
        let writer = self.heartbeats.clone().filter(|_| {
            let writers = self.heartbeat_writers.lock().unwrap_or_else(|e| e.into_inner());
            !writers.1.contains(&config.source)
        });
        if let Some(h) = &writer {
            if let Err(e) = heartbeat::ensure_topic(&source, &h.topic).await {
                tracing::warn!(cluster = source.name(), "heartbeats topic '{}': {e}", h.topic);
            }
        }
        let topic = self.heartbeats.as_ref().map(|h| h.topic.as_str());
        let handle = start_route(
            &config,
            source.clone(),
            target,
            self.observer.clone(),
            topic.filter(|_| replicate_heartbeats),
        )
        .await?;
        if let Some(h) = writer {
            let mut writers = self.heartbeat_writers.lock().unwrap_or_else(|e| e.into_inner());
            writers.1.insert(config.source.clone());
            writers.0.spawn(heartbeat::run_writer(source, h));
        }
        tracing::info!(route = %config.name, "route added ({} -> {})", config.source, config.target);
        let mut table = self.table_mut();
        table.handles.push(handle);
        table.entries.push(RouteEntry {
            config,
            paused: false,
            paused_topics: BTreeSet::new(),
        });
        Ok(())
    }

    /// Stops a route cleanly (drains in-flight batches, commits the final positions) and
    /// forgets it.
    pub async fn remove_route(&self, name: &str) -> Result<(), ManageError> {
        let _admin = self.admin.lock().await;
        let handle = {
            let mut table = self.table_mut();
            let i = table
                .index(name)
                .ok_or_else(|| ManageError::UnknownRoute(name.to_string()))?;
            table.entries.remove(i);
            table.handles.remove(i)
        };
        tracing::info!(
            route = name,
            "removing route: draining in-flight batches and committing progress"
        );
        handle.shutdown().await?;
        Ok(())
    }

    /// Pauses every partition of a route (see the module docs).
    pub fn pause_route(&self, name: &str) -> Result<(), ManageError> {
        self.set_route_paused(name, true)
    }

    /// Resumes a paused route; topics paused on their own stay paused.
    pub fn resume_route(&self, name: &str) -> Result<(), ManageError> {
        self.set_route_paused(name, false)
    }

    /// Pauses the partitions of one topic of a route.
    pub fn pause_topic(&self, route: &str, topic: &str) -> Result<(), ManageError> {
        self.set_topic_paused(route, topic, true)
    }

    /// Resumes a topic paused with [`Running::pause_topic`] (it stays paused while the whole
    /// route is).
    pub fn resume_topic(&self, route: &str, topic: &str) -> Result<(), ManageError> {
        self.set_topic_paused(route, topic, false)
    }

    fn set_route_paused(&self, name: &str, paused: bool) -> Result<(), ManageError> {
        let mut table = self.table_mut();
        let i = table
            .index(name)
            .ok_or_else(|| ManageError::UnknownRoute(name.to_string()))?;
        table.entries[i].paused = paused;
        apply_pauses(&table, i);
        tracing::info!(route = name, "route {}", if paused { "paused" } else { "resumed" });
        Ok(())
    }

    fn set_topic_paused(&self, route: &str, topic: &str, paused: bool) -> Result<(), ManageError> {
        let mut table = self.table_mut();
        let i = table
            .index(route)
            .ok_or_else(|| ManageError::UnknownRoute(route.to_string()))?;
        if !table.handles[i].has_topic(topic) {
            return Err(ManageError::UnknownTopic {
                route: route.to_string(),
                topic: topic.to_string(),
            });
        }
        let topics = &mut table.entries[i].paused_topics;
        match paused {
            true => topics.insert(topic.to_string()),
            false => topics.remove(topic),
        };
        apply_pauses(&table, i);
        tracing::info!(route, topic, "topic {}", if paused { "paused" } else { "resumed" });
        Ok(())
    }
}

/// Sets every partition of route `i` paused or not from its entry.
fn apply_pauses(table: &RouteTable, i: usize) {
    let (handle, entry) = (&table.handles[i], &table.entries[i]);
    handle.set_paused(None, entry.paused);
    if !entry.paused {
        for t in &entry.paused_topics {
            handle.set_paused(Some(t), true);
        }
    }
}

/// What config load checks of a route, against the routes already running.
fn check_new_route(table: &RouteTable, new: &RouteConfig, known: impl Fn(&str) -> bool) -> Result<(), ManageError> {
    let invalid = |message: String| {
        ManageError::Route(RouteError::Invalid {
            route: new.name.clone(),
            message,
        })
    };
    if new.name.is_empty() {
        return Err(invalid("the route name is empty".to_string()));
    }
    if table.index(&new.name).is_some() {
        return Err(ManageError::Duplicate(new.name.clone()));
    }
    if let Some(c) = [&new.source, &new.target].into_iter().find(|c| !known(c)) {
        return Err(invalid(format!("unknown cluster '{c}'")));
    }
    if new.source == new.target {
        return Err(invalid(format!(
            "same cluster as the source ('{}'): topics would be copied into themselves",
            new.source
        )));
    }
    if new.include.is_empty() {
        return Err(invalid("must list at least one topic pattern".to_string()));
    }
    TopicFilter::new(&new.include, &new.exclude).map_err(|e| invalid(format!("topic pattern: {e}")))?;
    let configs = table.entries.iter().map(|e| &e.config).chain([new]);
    let edges: Vec<RouteEdge<'_>> = configs
        .map(|c| RouteEdge {
            name: &c.name,
            source: &c.source,
            target: &c.target,
            filter: TopicFilter::new(&c.include, &c.exclude).ok(),
            rename: c.rename.clone(),
        })
        .collect();
    match replication_cycle(&edges) {
        Some(message) => Err(ManageError::Cycle {
            route: new.name.clone(),
            message,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[RouteConfig]) -> RouteTable {
        RouteTable {
            handles: Vec::new(),
            entries: routes
                .iter()
                .map(|c| RouteEntry {
                    config: c.clone(),
                    paused: false,
                    paused_topics: BTreeSet::new(),
                })
                .collect(),
        }
    }

    fn route(name: &str, source: &str, target: &str, topics: &[&str]) -> RouteConfig {
        let topics: Vec<&str> = topics.to_vec();
        RouteConfig::new(name, source, target).include(&topics)
    }

    fn known(c: &str) -> bool {
        ["a", "b", "c"].contains(&c)
    }

    #[test]
    fn a_route_closing_a_cycle_with_running_routes_is_refused() {
        let running = table(&[route("ab", "a", "b", &["orders"]), route("bc", "b", "c", &["orders"])]);
        let err = check_new_route(&running, &route("ca", "c", "a", &["orders.*"]), known).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ManageError::Cycle { .. }), "{text}");
        assert!(
            text.contains("route 'ab' (a -> b), then route 'bc' (b -> c), then route 'ca' (c -> a)"),
            "{text}"
        );
        // The same route for another topic closes no cycle.
        check_new_route(&running, &route("ca", "c", "a", &["payments"]), known).unwrap();
    }

    #[test]
    fn bad_routes_are_refused_like_config_load() {
        let running = table(&[route("ab", "a", "b", &["orders"])]);
        let err = check_new_route(&running, &route("ab", "a", "c", &["x"]), known).unwrap_err();
        assert!(matches!(err, ManageError::Duplicate(ref n) if n == "ab"), "{err}");
        let err = check_new_route(&running, &route("x", "a", "z", &["x"]), known).unwrap_err();
        assert!(err.to_string().contains("unknown cluster 'z'"), "{err}");
        let err = check_new_route(&running, &route("x", "a", "a", &["x"]), known).unwrap_err();
        assert!(err.to_string().contains("same cluster"), "{err}");
        let err = check_new_route(&running, &route("x", "a", "c", &["orders("]), known).unwrap_err();
        assert!(err.to_string().contains("topic pattern"), "{err}");
        let err = check_new_route(&running, &route("x", "a", "c", &[]), known).unwrap_err();
        assert!(err.to_string().contains("at least one topic"), "{err}");
    }
}
