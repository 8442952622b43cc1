//! `kferry demo`: two local brokers, a generated workload, replication, and verification.
//!
//! The workload is written by a real Kafka client (confluent-kafka, i.e. librdkafka, through
//! `tests/client/kclient.py`), one topic per codec, with keys, null keys, headers and explicit
//! timestamps. kferry replicates it in-process, then the same independent client reads both
//! clusters (with `check.crcs=true`) and compares them record by record.
//! `scripts/install-test-deps.sh` installs the broker (tansu) and the client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kferry::bench::Usage;
use kferry::{ClusterConfig, Replicator, RouteConfig};

use crate::local::{find_tansu, python, repo_root, start_broker};
use crate::CliError;

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// Options of `kferry demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Records to generate, split evenly over the five codecs.
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Partitions per topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// The tansu broker binary (default: $KFERRY_TANSU, .tools/bin/tansu, then PATH).
    #[arg(long)]
    pub tansu: Option<PathBuf>,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            records: 200_000,
            partitions: 4,
            tansu: None,
        }
    }
}

fn kclient(root: &Path, args: &[&str]) -> Result<String, CliError> {
    let out = Command::new(python(root))
        .arg(root.join("tests/client/kclient.py"))
        .args(args)
        .output()
        .map_err(|e| CliError::failed(format!("cannot run the demo client: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(CliError::failed(format!(
            "demo client {} failed: {}",
            args[0],
            err.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the demo end to end and prints what happened.
pub async fn demo(args: DemoArgs) -> Result<(), CliError> {
    let root = repo_root();
    let tansu = find_tansu(args.tansu.as_deref(), &root)?;
    let source = start_broker(&tansu, "demo-source")?;
    let target = start_broker(&tansu, "demo-target")?;
    println!(
        "source broker {} and target broker {} started (tansu)",
        source.addr, target.addr
    );
    let per_codec = (args.records / CODECS.len() as u64).max(1);
    let parts = args.partitions.to_string();
    for codec in CODECS {
        let topic = format!("demo.{codec}");
        kclient(
            &root,
            &[
                "create-topic",
                "--bootstrap",
                &source.addr,
                "--topic",
                &topic,
                "--partitions",
                &parts,
            ],
        )?;
        kclient(
            &root,
            &[
                "produce",
                "--bootstrap",
                &source.addr,
                "--topic",
                &topic,
                "--partitions",
                &parts,
                "--count",
                &per_codec.to_string(),
                "--codec",
                codec,
                "--idempotent",
            ],
        )?;
        println!("produced {per_codec} records to {topic} ({codec})");
    }
    let replicator = Replicator::builder()
        .cluster(ClusterConfig::new("source", vec![source.addr.clone()]))
        .cluster(ClusterConfig::new("target", vec![target.addr.clone()]))
        .route(RouteConfig::new("demo", "source", "target").include(&["demo\\..*"]))
        .build()
        .map_err(CliError::failed)?;
    let cpu_before = Usage::now();
    let started = Instant::now();
    let running = replicator.start().await.map_err(CliError::failed)?;
    while !running.caught_up() {
        if let Some(e) = running.errors().first() {
            return Err(CliError::failed(e));
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(CliError::failed("replication did not catch up within 300 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = Usage::now().since(&cpu_before).cpu_s();
    let (records, bytes) = running.forwarded();
    running.shutdown().await.map_err(CliError::failed)?;
    println!(
        "replicated {records} records, {:.1} MB in {elapsed:.2} s: {:.0} records/s, {:.1} MB/s (wall time, includes start-up); {cpu:.2} CPU-s",
        bytes as f64 / 1e6,
        records as f64 / elapsed,
        bytes as f64 / 1e6 / elapsed
    );
    verify(&root, &source.addr, &target.addr, &parts)
}

fn verify(root: &Path, source: &str, target: &str, parts: &str) -> Result<(), CliError> {
    let mut totals = [0u64; 5];
    for codec in CODECS {
        let topic = format!("demo.{codec}");
        let out = kclient(
            root,
            &[
                "verify",
                "--source",
                source,
                "--target",
                target,
                "--topic",
                &topic,
                "--partitions",
                parts,
            ],
        )?;
        let v: serde_json::Value = serde_json::from_str(out.trim()).map_err(CliError::failed)?;
        for (i, key) in ["records", "lost", "duplicated", "reordered", "mismatched"]
            .iter()
            .enumerate()
        {
            totals[i] += v[key].as_u64().unwrap_or(0);
        }
    }
    let [n, lost, dup, reordered, mismatched] = totals;
    println!("verified {n} records: {lost} lost, {dup} duplicated, {reordered} reordered, {mismatched} mismatched");
    match lost + dup + reordered + mismatched {
        0 => Ok(()),
        _ => Err(CliError::failed(
            "verification found differences between source and target",
        )),
    }
}
