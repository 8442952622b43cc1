//! `kferry bench`: a load generator, an end-to-end benchmark against a baseline replicator,
//! and a fixed-rate latency run. docs/benchmarks.md has the figures and commands.

mod e2e;
mod latency;
mod produce;
mod relay;
mod replicate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kferry::batch::Compression;
use kferry::bench::{LoadStats, RecordShape, Workload};
use kferry::wire::{Cluster, NewTopic};
use kferry::ClusterConfig;

use crate::CliError;

pub use replicate::ReplicateArgs;

/// `kferry bench ...`
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Write generated, pre-encoded batches to a topic, at full speed or a fixed rate.
    Produce(produce::ProduceArgs),
    /// Fill a source backlog, replicate it with kferry and with the rdkafka baseline, and
    /// compare CPU per record and per GB; or, with --rate, measure end-to-end latency.
    E2e(e2e::E2eArgs),
    /// (internal) Replicate one topic in this process and print a usage report at the end.
    #[command(hide = true)]
    Replicate(ReplicateArgs),
    /// (internal) Relay bytes from one TCP connection to another: the floor of `bench e2e`.
    #[command(hide = true)]
    Relay(relay::RelayArgs),
}

pub async fn bench(command: BenchCommand) -> Result<(), CliError> {
    match command {
        BenchCommand::Produce(args) => produce::run(args).await,
        BenchCommand::E2e(args) if args.rate.is_some() => latency::run(args).await,
        BenchCommand::E2e(args) => e2e::run(args).await,
        BenchCommand::Replicate(args) => replicate::run(args).await,
        BenchCommand::Relay(args) => relay::run(args).await,
    }
}

/// The generated records: a preset (`--workload a|b`) and overrides.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// Preset: `a` (metrics: 200-byte records, lz4, 100 per batch, 8 partitions, 5 M records)
    /// or `b` (logs: 2 KB records, zstd, 32 per batch, 16 partitions, 2 GB).
    #[arg(long, default_value = "a")]
    pub workload: String,
    /// Record shape: metrics or logs (default: the preset's).
    #[arg(long)]
    pub shape: Option<RecordShape>,
    /// Key + value bytes per record.
    #[arg(long)]
    pub record_size: Option<usize>,
    #[arg(long)]
    pub records_per_batch: Option<usize>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long)]
    pub compression: Option<String>,
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Records to write in all.
    #[arg(long)]
    pub records: Option<u64>,
    /// Or: record bytes (key + value) to write in all, e.g. 2GB, 500MB.
    #[arg(long, conflicts_with = "records")]
    pub bytes: Option<String>,
}

/// A resolved workload.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workload: Workload,
    pub partitions: i32,
    pub records: u64,
    pub codec: &'static str,
}

impl WorkloadArgs {
    pub fn plan(&self) -> Result<Plan, CliError> {
        let (mut workload, mut partitions, mut records) = match self.workload.as_str() {
            "a" | "A" | "metrics" => (Workload::metrics(), 8, 5_000_000),
            "b" | "B" | "logs" => (Workload::logs(), 16, 2_000_000_000 / 2048),
            other => return Err(CliError::usage(format!("unknown workload '{other}' (a, b)"))),
        };
        if let Some(s) = self.shape {
            workload.shape = s;
        }
        if let Some(n) = self.record_size {
            workload.record_size = n.max(16);
        }
        if let Some(n) = self.records_per_batch {
            workload.records_per_batch = n.max(1);
        }
        if let Some(c) = &self.compression {
            workload.compression =
                Compression::from_name(c).ok_or_else(|| CliError::usage(format!("unknown compression '{c}'")))?;
        }
        if let Some(p) = self.partitions {
            partitions = p.max(1);
        }
        if let Some(r) = self.records {
            records = r;
        }
        if let Some(b) = &self.bytes {
            records = kferry::config::parse_bytes(b).map_err(CliError::usage)? / workload.record_size as u64;
        }
        Ok(Plan {
            codec: workload.compression.name(),
            workload,
            partitions,
            records: records.max(1),
        })
    }
}

/// A cluster handle for a bootstrap address, named for error messages.
pub fn cluster(name: &str, bootstrap: &str) -> Arc<Cluster> {
    let servers = bootstrap.split(',').map(|s| s.trim().to_string()).collect();
    Arc::new(Cluster::new(ClusterConfig::new(name, servers)))
}

/// Creates the topic (an existing one counts) and waits until every partition has a leader.
pub async fn create_topic(cluster: &Cluster, topic: &str, partitions: i32) -> Result<(), CliError> {
    let new = NewTopic {
        name: topic.to_string(),
        partitions,
        replication_factor: -1,
        configs: Vec::new(),
    };
    cluster.refresh_metadata(None).await.map_err(CliError::failed)?;
    cluster.create_topics(&[new]).await.map_err(CliError::failed)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let meta = cluster
            .refresh_metadata(Some(&[topic.to_string()]))
            .await
            .map_err(CliError::failed)?;
        if let Some(t) = meta.topics.get(topic) {
            if t.partitions.len() as i32 >= partitions && t.partitions.iter().all(|p| p.leader >= 0) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(CliError::failed(format!(
                "topic '{topic}' on cluster '{}' has no leaders after 30 s",
                cluster.name()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints a progress line to stderr every `every` until `stop` flips, for long loads.
pub fn spawn_progress(
    what: &'static str,
    total: u64,
    stats: Arc<LoadStats>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (records, _, record_bytes, wire_bytes) = stats.snapshot();
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            eprintln!(
                "{what}: {records} / {total} records ({:.0} %), {:.0} MB of records, {:.0} MB on the wire, {:.0} records/s",
                100.0 * records as f64 / total.max(1) as f64,
                record_bytes as f64 / 1e6,
                wire_bytes as f64 / 1e6,
                records as f64 / secs
            );
        }
    })
}
