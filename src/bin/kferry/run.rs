//! `kferry run` and `kferry check-config`.

use std::path::Path;
use std::time::{Duration, Instant};

use kferry::config::Config;
use kferry::wire::Cluster;
use kferry::{Replicator, Running};

use crate::CliError;

/// Replicates until SIGTERM or SIGINT, then drains and commits.
/// `metrics_address` overrides the config file's `"metrics.address"`.
pub async fn run(path: &Path, metrics_address: Option<String>) -> Result<(), CliError> {
    let config = Config::load(path).map_err(CliError::usage)?;
    let replicator = Replicator::from_config(&config).map_err(CliError::usage)?;
    let metrics = match metrics_address.or(config.metrics_address) {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| CliError::usage(format!("metrics.address '{addr}': {e}")))?;
            let local = listener.local_addr().map_err(CliError::failed)?;
            tracing::info!(address = %local, "serving Prometheus metrics on http://{local}/metrics");
            Some((listener, kferry::metrics::install().map_err(CliError::failed)?))
        }
        None => None,
    };
    let running = replicator.start().await.map_err(CliError::failed)?;
    let started = Instant::now();
    match metrics {
        Some((listener, handle)) => {
            tokio::select! {
                _ = wait_for_signal(&running) => {}
                _ = crate::metrics::serve(listener, &running, &handle) => {}
            }
        }
        None => wait_for_signal(&running).await,
    }
    tracing::info!("stopping: draining in-flight batches and committing progress");
    let (records, bytes) = running.forwarded();
    let errors = running.errors();
    running.shutdown().await.map_err(CliError::failed)?;
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

async fn wait_for_signal(running: &Running) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
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
