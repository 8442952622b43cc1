//! `kferry bench replicate` (internal): the kferry side of `bench e2e`, run as its own
//! process so that its CPU time and peak memory are its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kferry::bench::{RunReport, Usage};
use kferry::{ClusterConfig, Replicator, RouteConfig};

use crate::CliError;

#[derive(clap::Args, Debug, Clone)]
pub struct ReplicateArgs {
    #[arg(long)]
    pub source: String,
    #[arg(long)]
    pub target: String,
    #[arg(long)]
    pub topic: String,
    /// Stop once this many records are replicated and every partition is caught up.
    /// Without it, replicate until SIGTERM.
    #[arg(long)]
    pub records: Option<u64>,
    #[arg(long, default_value_t = 500)]
    pub fetch_max_wait_ms: i32,
    /// `buffer.memory` of the route, e.g. 256MiB.
    #[arg(long, default_value = "256MiB")]
    pub buffer_memory: String,
    /// `fetch.max.bytes` of the route (default: the route's default).
    #[arg(long)]
    pub fetch_max_bytes: Option<String>,
    /// `max.partition.fetch.bytes` of the route (default: the route's default).
    #[arg(long)]
    pub max_partition_fetch_bytes: Option<String>,
    /// The route's progress group on the source (a fresh one replicates from the start).
    #[arg(long, default_value = "kferry-bench")]
    pub group: String,
    /// Also write the report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub async fn run(args: ReplicateArgs) -> Result<(), CliError> {
    let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    let mut route = RouteConfig::new("bench", "source", "target").include(&[&regex::escape(&args.topic)]);
    route.fetch_max_wait_ms = args.fetch_max_wait_ms;
    route.group_id = args.group.clone();
    route.buffer_memory = kferry::config::parse_bytes(&args.buffer_memory).map_err(CliError::usage)?;
    let bytes_arg = |v: &Option<String>| -> Result<Option<i32>, CliError> {
        v.as_deref()
            .map(|b| kferry::config::parse_bytes(b).map(|n| n.min(i32::MAX as u64) as i32))
            .transpose()
            .map_err(CliError::usage)
    };
    if let Some(n) = bytes_arg(&args.fetch_max_bytes)? {
        route.fetch_max_bytes = n;
    }
    if let Some(n) = bytes_arg(&args.max_partition_fetch_bytes)? {
        route.max_partition_fetch_bytes = n;
    }
    let route_cap = route.buffer_memory;
    let replicator = Replicator::builder()
        .cluster(ClusterConfig::new("source", split(&args.source)))
        .cluster(ClusterConfig::new("target", split(&args.target)))
        .route(route)
        .build()
        .map_err(CliError::failed)?;
    let allocated_before = crate::allocated_bytes();
    let started = Instant::now();
    let running = replicator.start().await.map_err(CliError::failed)?;
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(CliError::failed)?;
    let mut caught_up_since: Option<Instant> = None;
    let mut polls = 0u64;
    let mut watchdog = StallWatchdog {
        cap: route_cap,
        last: None,
    };
    loop {
        // Polling must not cost what it measures: errors (a lock per partition) once a
        // second, the cheap totals every 50 ms.
        polls += 1;
        if polls % 20 == 0 {
            if let Some(e) = running.errors().first() {
                return Err(CliError::failed(e));
            }
        }
        if polls % 20 == 0 {
            watchdog.poll(&running);
        }
        if let Some(want) = args.records {
            let caught_up = running.caught_up();
            if running.forwarded().0 >= want && caught_up {
                break;
            }
            // Caught up with fewer records than asked (the target already had some): stop
            // after a grace period rather than wait forever; the caller checks the target.
            match (caught_up, caught_up_since) {
                (true, Some(since)) if since.elapsed() > Duration::from_secs(5) => break,
                (true, None) => caught_up_since = Some(Instant::now()),
                (false, _) => caught_up_since = None,
                _ => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = term.recv() => break,
        }
    }
    let wall_s = started.elapsed().as_secs_f64();
    let (records, wire_bytes) = running.forwarded();
    running.shutdown().await.map_err(CliError::failed)?;
    let usage = Usage::now();
    let report = RunReport {
        records,
        bytes: 0,
        wire_bytes,
        wall_s,
        user_cpu_s: usage.user_cpu_s,
        sys_cpu_s: usage.sys_cpu_s,
        max_rss_kib: usage.max_rss_kib,
        minor_faults: usage.minor_faults,
        voluntary_switches: usage.voluntary_switches,
        allocated_bytes: Some(crate::allocated_bytes() - allocated_before),
        delivery_errors: 0,
    };
    let line = serde_json::to_string(&report).map_err(CliError::failed)?;
    println!("{line}");
    if let Some(path) = &args.report {
        std::fs::write(path, format!("{line}\n")).map_err(CliError::failed)?;
    }
    Ok(())
}

/// Seconds without a forwarded record (while not caught up) before the state is dumped.
const STALL_DUMP_AFTER: Duration = Duration::from_secs(10);

/// Dumps the route's state to stderr when replication makes no progress for
/// [`STALL_DUMP_AFTER`] (then again every time that much passes): memory held against the
/// cap, how many partitions are behind, and the first few of them.
struct StallWatchdog {
    /// The route's `buffer.memory`.
    cap: u64,
    last: Option<(u64, Instant)>,
}

impl StallWatchdog {
    fn poll(&mut self, running: &kferry::Running) {
        let now = Instant::now();
        let records = running.forwarded().0;
        match self.last {
            Some((seen, since)) if seen == records && !running.caught_up() => {
                if since.elapsed() >= STALL_DUMP_AFTER {
                    dump_state(running, records, since.elapsed(), self.cap);
                    self.last = Some((records, now));
                }
            }
            _ => self.last = Some((records, now)),
        }
    }
}

fn dump_state(running: &kferry::Running, records: u64, stalled: Duration, cap: u64) {
    for route in running.routes().iter() {
        let status = route.status();
        let behind: Vec<_> = status
            .iter()
            .filter(|s| s.error.is_none() && s.acked.source_next < s.high_watermark)
            .collect();
        let unfetched = status.iter().filter(|s| s.high_watermark < 0).count();
        let errors = status.iter().filter(|s| s.error.is_some()).count();
        eprintln!(
            "kferry bench replicate: no progress for {:.0} s at {records} records; route '{}': \
             buffered {} of {} bytes, {} partitions behind, {unfetched} never fetched, {errors} failed",
            stalled.as_secs_f64(),
            route.name(),
            route.buffered_bytes(),
            cap,
            behind.len(),
        );
        for s in behind.iter().take(8) {
            eprintln!(
                "  {}-{}: acked {} hwm {} records_out {} batches_out {} retries {} resets {}",
                s.source_topic,
                s.partition,
                s.acked.source_next,
                s.high_watermark,
                s.records_out,
                s.batches_out,
                s.produce_retries,
                s.producer_resets
            );
        }
    }
}
