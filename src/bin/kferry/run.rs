//! `kferry run` and `kferry check-config`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kferry::config::Config;
use kferry::wire::Cluster;
use kferry::{Replicator, Running};

use crate::api::{self, state::ApiState, Api};
use crate::CliError;

/// Replicates until SIGTERM or SIGINT, then drains and commits.
/// `metrics_address` overrides the config file's `"metrics.address"`. Route changes made
/// through the management API (its state file) apply on top of the config file.
pub async fn run(path: &Path, metrics_address: Option<String>) -> Result<(), CliError> {
    let config = Config::load(path).map_err(CliError::usage)?;
    // Registered before anything starts: a SIGTERM during start-up must drain, not kill.
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let state_path = api::state::state_path(path, &config);
    let state = ApiState::load(&state_path).map_err(CliError::usage)?;
    let effective = state.apply(&config).map_err(|e| {
        CliError::usage(format!(
            "config file {} with the API's route changes in {}: {e}",
            path.display(),
            state_path.display()
        ))
    })?;
    if !state.is_empty() {
        tracing::info!(file = %state_path.display(), "applying route changes made through the management API");
    }
    let mut replicator = Replicator::from_config(&effective).map_err(CliError::usage)?;
    state.pause_at_start(&mut replicator);
    let metrics = match metrics_address.or(config.metrics_address.clone()) {
        Some(addr) => {
            let listener = bind(&addr, "metrics.address").await?;
            // Installed before the routes start, so that they register their metrics.
            Some((listener, kferry::metrics::install().map_err(CliError::failed)?))
        }
        None => None,
    };
    let api_listener = match &config.api_address {
        Some(addr) => Some(bind(addr, "api.address").await?),
        None => None,
    };
    let running = Arc::new(replicator.start().await.map_err(CliError::failed)?);
    let started = Instant::now();
    let serve_metrics = async {
        match metrics {
            Some((listener, handle)) => {
                tracing::info!("serving Prometheus metrics on http://{}/metrics", local(&listener));
                crate::metrics::serve(listener, &running, &handle).await
            }
            None => std::future::pending().await,
        }
    };
    let serve_api = async {
        match api_listener {
            Some(listener) => {
                tracing::info!("serving the management API on http://{}/routes", local(&listener));
                let token = api::token(&config);
                let api = Api::new(running.clone(), config.clone(), state, state_path, token);
                api::serve(listener, Arc::new(api)).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = wait_for_signal(&running, term) => {}
        _ = serve_metrics => {}
        _ = serve_api => {}
    }
    tracing::info!("stopping: draining in-flight batches and committing progress");
    let (records, bytes) = running.forwarded();
    let errors = running.errors();
    running.stop().await.map_err(CliError::failed)?;
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    tracing::info!(
        records,
        bytes,
        "stopped after {secs:.1} s ({:.0} records/s)",
        records as f64 / secs
    );
    match errors.first() {
        None => Ok(()),
        Some(first) => Err(CliError::failed(format!(
            "{} partition(s) had stopped with errors; the first: {first}",
            errors.len()
        ))),
    }
}

async fn bind(addr: &str, key: &str) -> Result<tokio::net::TcpListener, CliError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::usage(format!("{key} '{addr}': {e}")))
}

fn local(listener: &tokio::net::TcpListener) -> String {
    listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string())
}

async fn wait_for_signal(running: &Running, mut term: Option<tokio::signal::unix::Signal>) {
    let mut report = tokio::time::interval(Duration::from_secs(10));
    report.tick().await;
    let mut last = running.forwarded();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => return,
            _ = report.tick() => {
                let now = running.forwarded();
                let lag: i64 = running.status().iter().map(|(_, s)| (s.high_watermark - s.acked.source_next).max(0)).sum();
                tracing::info!(records = now.0, bytes = now.1, lag, heartbeat_p50_ms = running.heartbeat_p50_ms().unwrap_or(-1), "progress: {:.0} records/s", (now.0 - last.0) as f64 / 10.0);
                last = now;
            }
        }
    }
}

/// Validates a config and prints each route's plan.
pub async fn check_config(path: &Path, offline: bool) -> Result<(), CliError> {
    let config = Config::load(path).map_err(CliError::usage)?;
    println!(
        "{}: OK ({} clusters, {} routes)",
        path.display(),
        config.clusters.len(),
        config.routes.len()
    );
    let clusters = config.cluster_configs();
    for route in config.route_configs() {
        println!(
            "route '{}': {} -> {} (progress in group '{}' on '{}')",
            route.name, route.source, route.target, route.group_id, route.source
        );
        if offline {
            continue;
        }
        let source_cfg = clusters
            .iter()
            .find(|c| c.name == route.source)
            .cloned()
            .ok_or_else(|| CliError::usage("unknown source"))?;
        let source = Cluster::new(source_cfg);
        let meta = source
            .refresh_metadata(None)
            .await
            .map_err(|e| CliError::failed(format!("route '{}': {e}", route.name)))?;
        let filter = route.topic_filter().map_err(CliError::usage)?;
        if let Some(missing) = filter.literal_topics().find(|t| !meta.topics.contains_key(*t)) {
            return Err(CliError::failed(format!(
                "route '{}': topic '{missing}' does not exist on source cluster '{}'",
                route.name, route.source
            )));
        }
        let topics = filter.select(meta.topics.values().filter(|t| !t.internal).map(|t| &t.name));
        if topics.is_empty() {
            println!("  (no topic on '{}' matches {:?})", route.source, route.include);
        }
        for t in topics {
            let parts = meta.topics[&t].partitions.len();
            println!("  {t} ({parts} partitions) -> {}:{t}", route.target);
        }
    }
    Ok(())
}
