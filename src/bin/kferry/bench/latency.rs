//! `kferry bench e2e --rate N`: end-to-end latency at a fixed record rate.
//!
//! kferry runs as a child process (`kferry bench replicate`, until SIGTERM); the load
//! generator writes `--rate` records per second to the source for `--duration` seconds, each
//! batch stamped with the time it is sent; a probe reads the target and records, per record,
//! the time from that stamp to the moment it was read. Broker time (produce on the source,
//! fetch by kferry, produce on the target, fetch by the probe) is included.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kferry::bench::{self, Histogram, RunReport};

use super::e2e::{Brokers, E2eArgs};
use super::{cluster, create_topic, produce::fill};
use crate::CliError;

/// Fetch wait of the probe. tansu holds every Fetch for its max wait even when data is
/// there, so a short wait keeps the probe's own share of the latency small.
const PROBE_WAIT_MS: i32 = 2;

pub async fn run(args: E2eArgs) -> Result<(), CliError> {
    let rate = args.rate.unwrap_or(10_000.0);
    let mut plan = args.workload.plan()?;
    plan.records = (rate * args.duration as f64) as u64;
    let topic = args.topic.clone().unwrap_or_else(|| "bench.latency".to_string());
    let brokers = Brokers::start(&args)?;
    let (target, _target_broker) = brokers.target("bench-latency-target")?;
    let (source, target_cluster) = (cluster("source", brokers.source()), cluster("target", &target));
    create_topic(&source, &topic, plan.partitions).await?;
    create_topic(&target_cluster, &topic, plan.partitions).await?;

    let exe = std::env::current_exe().map_err(CliError::failed)?;
    let child = Command::new(exe)
        .args([
            "bench",
            "replicate",
            "--source",
            brokers.source(),
            "--target",
            &target,
            "--topic",
            &topic,
        ])
        .args(["--fetch-max-wait-ms", &args.fetch_max_wait_ms.to_string()])
        .args(["--buffer-memory", &args.buffer_memory])
        .args(["--group", &format!("kferry-latency-{}", std::process::id())])
        .env("KFERRY_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::failed(format!("cannot start kferry bench replicate: {e}")))?;
    let child = crate::local::Guarded::new(child);
    // Let kferry connect and start fetching before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let histogram = Arc::new(Mutex::new(Histogram::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let probe = tokio::spawn(bench::probe(
        target_cluster.clone(),
        topic.clone(),
        PROBE_WAIT_MS,
        histogram.clone(),
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (stats, secs, _) = fill(source, &topic, &plan, Some(rate), 4).await?;
    let sent = stats.snapshot().0;
    // Wait for the tail to arrive (at most 10 s).
    for _ in 0..1000 {
        if histogram.lock().expect("histogram lock").count() >= sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    probe.await.map_err(CliError::failed)?.map_err(CliError::failed)?;
    let report: Option<RunReport> = child.terminate_and_read_report();
    let h = histogram.lock().expect("histogram lock").clone();
    let q = |x: f64| h.quantile(x).map_or("-".to_string(), |v| v.to_string());
    println!(
        "latency at {:.0} records/s for {secs:.1} s ({sent} records sent, {} seen, {} per batch, {} partitions, {}):",
        sent as f64 / secs.max(1e-3),
        h.count(),
        plan.workload.records_per_batch,
        plan.partitions,
        plan.codec
    );
    println!(
        "  end-to-end (produce time to visible on the target) p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0)
    );
    if let Some(r) = report {
        println!(
            "  kferry: {} records, CPU {:.2} s over {:.1} s ({:.1} % of one core), peak RSS {} MiB",
            r.records,
            r.cpu_s(),
            r.wall_s,
            100.0 * r.cpu_s() / r.wall_s.max(1e-3),
            r.max_rss_kib / 1024
        );
    }
    if h.count() < sent {
        return Err(CliError::failed(format!(
            "the probe saw {} of {sent} records on the target",
            h.count()
        )));
    }
    Ok(())
}
