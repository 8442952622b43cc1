//! `kferry bench produce`: fill a topic with generated records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kferry::bench::{self, LoadOptions, LoadStats, Usage};

use super::{cluster, create_topic, spawn_progress, WorkloadArgs};
use crate::CliError;

#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    /// `bootstrap.servers` of the cluster to write to.
    #[arg(long)]
    pub bootstrap: String,
    #[arg(long)]
    pub topic: String,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Records per second over all partitions (default: as fast as the cluster takes them).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Produce requests in flight per broker.
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
}

pub async fn run(args: ProduceArgs) -> Result<(), CliError> {
    let plan = args.workload.plan()?;
    let target = cluster("bench", &args.bootstrap);
    create_topic(&target, &args.topic, plan.partitions).await?;
    let stats = fill(target, &args.topic, &plan, args.rate, args.in_flight).await?;
    let (records, batches, record_bytes, wire_bytes) = stats.0.snapshot();
    println!(
        "produced {records} records in {batches} batches to '{}' ({} partitions, {}, {} B records): \
         {:.1} MB of records, {:.1} MB on the wire, {:.2} s, {:.0} records/s; generator CPU {:.2} s",
        args.topic,
        plan.partitions,
        plan.codec,
        plan.workload.record_size,
        record_bytes as f64 / 1e6,
        wire_bytes as f64 / 1e6,
        stats.1,
        records as f64 / stats.1.max(1e-3),
        stats.2.cpu_s(),
    );
    Ok(())
}

/// Writes the plan's records; returns the totals, the wall seconds and the CPU spent.
pub async fn fill(
    target: Arc<kferry::wire::Cluster>,
    topic: &str,
    plan: &super::Plan,
    rate: Option<f64>,
    in_flight: usize,
) -> Result<(Arc<LoadStats>, f64, Usage), CliError> {
    let templates = Arc::new(plan.workload.templates().map_err(CliError::failed)?);
    let stats = Arc::new(LoadStats::default());
    let options = LoadOptions {
        topic: topic.to_string(),
        records: plan.records,
        rate,
        in_flight,
        timeout_ms: 30_000,
    };
    let progress = spawn_progress("produce", plan.records, stats.clone(), Duration::from_secs(5));
    let (before, started) = (Usage::now(), Instant::now());
    let result = bench::produce(target, templates, &options, stats.clone()).await;
    progress.abort();
    result.map_err(CliError::failed)?;
    Ok((stats, started.elapsed().as_secs_f64(), Usage::now().since(&before)))
}
