//! `kferry bench e2e`: kferry against a consume→produce baseline, side by side, same data.
//!
//! 1. Fill a backlog on the source topic with the load generator (or use what is there).
//! 2. For each run: replicate the whole backlog with kferry (`kferry bench replicate`, a child
//!    process) and with the baseline (`kferry-baseline`, the rdkafka crate), each into an
//!    empty target, and read each process's own rusage: CPU seconds and peak RSS.
//! 3. The floor: relay kferry's wire bytes through a bare loopback TCP relay (relay.rs), a
//!    child process too, for what moving the bytes alone costs.
//! 4. Check the target holds as many records as the source, and print per-run figures, the
//!    medians, and the ratios (baseline / floor bounds what any socket-based replicator can reach).
//!
//! Without --source/--target, two local tansu brokers are started; each replication gets a
//! fresh target broker, so every run starts from the same state.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kferry::bench::{self, RunReport};
use serde::Serialize;

use super::{cluster, create_topic, produce::fill, Plan, WorkloadArgs};
use crate::local::{find_tansu, repo_root, start_broker, LocalBroker};
use crate::CliError;

#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    /// Source `bootstrap.servers` (default: a local tansu broker).
    #[arg(long, requires = "target")]
    pub source: Option<String>,
    /// Target `bootstrap.servers` (default: a fresh local tansu broker per replication).
    #[arg(long, requires = "source")]
    pub target: Option<String>,
    /// Source topic (default `bench.<workload>`).
    #[arg(long)]
    pub topic: Option<String>,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Replications per replicator (medians are reported); local brokers only.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The baseline binary (default: `kferry-baseline` next to this one).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Measure kferry alone.
    #[arg(long)]
    pub no_baseline: bool,
    /// Replicate the topic's existing records instead of writing new ones.
    #[arg(long)]
    pub no_fill: bool,
    /// `fetch.max.wait.ms` for both replicators.
    #[arg(long, default_value_t = 100)]
    pub fetch_max_wait_ms: i32,
    /// kferry's `buffer.memory`.
    #[arg(long, default_value = "256MiB")]
    pub buffer_memory: String,
    /// Write the figures as JSON to this file too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The tansu binary for local brokers.
    #[arg(long)]
    pub tansu: Option<PathBuf>,
    /// Fixed-rate latency mode: records per second (see `bench e2e --help`).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Latency mode: seconds to produce at --rate.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Experiment: each run also replicates with kferry at this many worker threads
    /// (replicator `kferry-wtN`), for a side-by-side comparison.
    #[arg(long, hide = true)]
    pub also_worker_threads: Option<usize>,
}

/// One replication's figures.
#[derive(Debug, Clone, Serialize)]
struct Measured {
    run: usize,
    replicator: String,
    report: RunReport,
}

/// Where the brokers are.
pub enum Brokers {
    Local { tansu: PathBuf, source: LocalBroker },
    External { source: String, target: String },
}

impl Brokers {
    pub fn start(args: &E2eArgs) -> Result<Brokers, CliError> {
        match (&args.source, &args.target) {
            (Some(source), Some(target)) => Ok(Brokers::External {
                source: source.clone(),
                target: target.clone(),
            }),
            _ => {
                let tansu = find_tansu(args.tansu.as_deref(), &repo_root())?;
                let source = start_broker(&tansu, "bench-source")?;
                eprintln!("local source broker {} (tansu)", source.addr);
                Ok(Brokers::Local { tansu, source })
            }
        }
    }

    pub fn source(&self) -> &str {
        match self {
            Brokers::Local { source, .. } => &source.addr,
            Brokers::External { source, .. } => source,
        }
    }

    /// A target for one replication: a fresh local broker, or the given cluster.
    pub fn target(&self, name: &str) -> Result<(String, Option<LocalBroker>), CliError> {
        match self {
            Brokers::Local { tansu, .. } => {
                let b = start_broker(tansu, name)?;
                Ok((b.addr.clone(), Some(b)))
            }
            Brokers::External { target, .. } => Ok((target.clone(), None)),
        }
    }
}

pub async fn run(args: E2eArgs) -> Result<(), CliError> {
    let plan = args.workload.plan()?;
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| format!("bench.{}", args.workload.workload));
    let brokers = Brokers::start(&args)?;
    let external = matches!(brokers, Brokers::External { .. });
    let baseline = match args.no_baseline {
        true => None,
        false => Some(baseline_binary(args.baseline.as_deref())?),
    };
    let source = cluster("source", brokers.source());
    let mut record_bytes = None;
    if !args.no_fill {
        create_topic(&source, &topic, plan.partitions).await?;
        let (stats, secs, usage) = fill(source.clone(), &topic, &plan, None, 8).await?;
        let (records, _, rbytes, wire) = stats.snapshot();
        eprintln!(
            "filled '{topic}': {records} records, {:.1} MB of records, {:.1} MB on the wire in {secs:.1} s (generator CPU {:.2} s)",
            rbytes as f64 / 1e6,
            wire as f64 / 1e6,
            usage.cpu_s()
        );
        record_bytes = Some(rbytes);
    }
    let expected: i64 = bench::high_watermarks(&source, &topic)
        .await
        .map_err(CliError::failed)?
        .iter()
        .sum();
    let partitions = source
        .metadata()
        .topics
        .get(&topic)
        .map_or(plan.partitions, |t| t.partitions.len() as i32);
    let runs = if external { 1 } else { args.runs.max(1) };
    let mut measured = Vec::new();
    for run in 1..=runs {
        let (target, _broker) = brokers.target(&format!("bench-target-k{run}"))?;
        let report = run_kferry(&args, brokers.source(), &target, &topic, expected as u64, run, None)?;
        check_target(&target, &topic, expected, "kferry").await?;
        eprintln!("run {run} kferry: {}", one_line(&report, record_bytes));
        let wire_bytes = report.wire_bytes;
        measured.push(Measured {
            run,
            replicator: "kferry".into(),
            report,
        });
        drop(_broker);
        if let Some(n) = args.also_worker_threads {
            let (target, _broker) = brokers.target(&format!("bench-target-w{run}"))?;
            let report = run_kferry(&args, brokers.source(), &target, &topic, expected as u64, run, Some(n))?;
            check_target(&target, &topic, expected, "kferry").await?;
            eprintln!("run {run} kferry-wt{n}: {}", one_line(&report, record_bytes));
            measured.push(Measured {
                run,
                replicator: format!("kferry-wt{n}"),
                report,
            });
        }
        if let Some(bin) = &baseline {
            let (target, _broker) = brokers.target(&format!("bench-target-b{run}"))?;
            let target_topic = match external {
                true => format!("{topic}.baseline.{}", std::process::id()),
                false => topic.clone(),
            };
            create_topic(&cluster("target", &target), &target_topic, partitions).await?;
            let topics = (topic.as_str(), target_topic.as_str());
            let report = run_baseline(&args, plan.codec, bin, brokers.source(), &target, topics, run)?;
            check_target(&target, &target_topic, expected, "baseline").await?;
            record_bytes.get_or_insert(report.bytes);
            eprintln!("run {run} baseline: {}", one_line(&report, record_bytes));
            measured.push(Measured {
                run,
                replicator: "baseline".into(),
                report,
            });
        }
        // The floor: a bare relay moving kferry's wire bytes in and out (relay.rs).
        let report = super::relay::measure(wire_bytes)?;
        eprintln!("run {run} floor: {}", one_line(&report, record_bytes));
        measured.push(Measured {
            run,
            replicator: "floor".into(),
            report,
        });
    }
    let summary = summarize(&plan, &topic, expected as u64, record_bytes, &measured);
    println!("{}", summary.text);
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "workload": args.workload.workload,
            "shape": format!("{:?}", plan.workload.shape),
            "record_size": plan.workload.record_size,
            "records_per_batch": plan.workload.records_per_batch,
            "codec": plan.codec,
            "partitions": partitions,
            "records": expected,
            "record_bytes": record_bytes,
            "runs": measured,
            "ratios": summary.ratios,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json).unwrap_or_default()).map_err(CliError::failed)?;
    }
    Ok(())
}

/// `kferry-baseline`: given, or next to this binary.
fn baseline_binary(given: Option<&Path>) -> Result<PathBuf, CliError> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .map_err(CliError::failed)?
            .with_file_name("kferry-baseline"),
    };
    match path.is_file() {
        true => Ok(path),
        false => Err(CliError::usage(format!(
            "baseline binary {} not found: build it with `cargo build --release -p kferry-baseline`, \
             give --baseline PATH, or pass --no-baseline",
            path.display()
        ))),
    }
}

fn run_kferry(
    args: &E2eArgs,
    source: &str,
    target: &str,
    topic: &str,
    records: u64,
    run: usize,
    worker_threads: Option<usize>,
) -> Result<RunReport, CliError> {
    let exe = std::env::current_exe().map_err(CliError::failed)?;
    let mut cmd = Command::new(exe);
    if let Some(n) = worker_threads {
        cmd.env("KFERRY_WORKER_THREADS", n.to_string());
    }
    cmd.args([
        "bench",
        "replicate",
        "--source",
        source,
        "--target",
        target,
        "--topic",
        topic,
    ])
    .args(["--records", &records.to_string()])
    .args(["--fetch-max-wait-ms", &args.fetch_max_wait_ms.to_string()])
    .args(["--buffer-memory", &args.buffer_memory])
    .args([
        "--group",
        &format!(
            "kferry-bench-{}-{run}-{}",
            std::process::id(),
            worker_threads.map_or("default".to_string(), |n| format!("wt{n}"))
        ),
    ])
    .env("KFERRY_LOG", "warn");
    child_report(cmd, "kferry bench replicate")
}

fn run_baseline(
    args: &E2eArgs,
    codec: &str,
    bin: &Path,
    source: &str,
    target: &str,
    (topic, target_topic): (&str, &str),
    run: usize,
) -> Result<RunReport, CliError> {
    let mut cmd = Command::new(bin);
    cmd.args(["--source-bootstrap", source, "--target-bootstrap", target])
        .args(["--topic", topic, "--target-topic", target_topic, "--compression", codec])
        .args(["--group", &format!("kferry-baseline-{}-{run}", std::process::id())])
        .args([
            "--consumer-prop",
            &format!("fetch.wait.max.ms={}", args.fetch_max_wait_ms),
        ])
        .arg("--until-caught-up");
    child_report(cmd, "kferry-baseline")
}

/// Runs a child to completion and parses the JSON report on the last line of its stdout.
fn child_report(mut cmd: Command, what: &str) -> Result<RunReport, CliError> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| CliError::failed(format!("cannot start {what}: {e}")))?;
    if !out.status.success() {
        return Err(CliError::failed(format!("{what} failed ({})", out.status)));
    }
    crate::local::last_json_line(&out.stdout).map_err(|e| CliError::failed(format!("{what}: unreadable report: {e}")))
}

async fn check_target(target: &str, topic: &str, expected: i64, who: &str) -> Result<(), CliError> {
    let got: i64 = bench::high_watermarks(&cluster("target", target), topic)
        .await
        .map_err(CliError::failed)?
        .iter()
        .sum();
    match got == expected {
        true => Ok(()),
        false => Err(CliError::failed(format!(
            "{who}: target topic '{topic}' holds {got} records, the source {expected}"
        ))),
    }
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

fn one_line(r: &RunReport, record_bytes: Option<u64>) -> String {
    let per_gb = record_bytes.map_or(String::new(), |b| format!(", {:.3} CPU-s/GB", r.cpu_s() / gb(b)));
    let moved = match (r.records, r.wire_bytes) {
        (0, w) if w > 0 => format!("{:.1} MB relayed", w as f64 / 1e6),
        (n, _) => format!("{n} records"),
    };
    format!(
        "{moved} in {:.1} s, CPU {:.2} s (user {:.2} + sys {:.2}){per_gb}, peak RSS {} MiB",
        r.wall_s,
        r.cpu_s(),
        r.user_cpu_s,
        r.sys_cpu_s,
        r.max_rss_kib / 1024
    )
}

struct Summary {
    text: String,
    ratios: serde_json::Value,
}

/// `a / b` as `12.3x`, or `-` when either is missing.
fn ratio(a: f64, b: f64) -> String {
    match (a / b).is_finite() {
        true => format!("{:.1}x", a / b),
        false => "-".to_string(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn summarize(plan: &Plan, topic: &str, records: u64, record_bytes: Option<u64>, measured: &[Measured]) -> Summary {
    use std::fmt::Write;
    let w = &plan.workload;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\ntopic '{topic}': {records} records of {} B ({:?}), {}, {} per batch, {} partitions{}",
        w.record_size,
        w.shape,
        plan.codec,
        w.records_per_batch,
        plan.partitions,
        record_bytes.map_or(String::new(), |b| format!(", {:.1} MB of records", b as f64 / 1e6))
    );
    let _ = writeln!(
        text,
        "| run | replicator | wall s | CPU s | CPU-s per GB | CPU-s per M records | records per CPU-s | wire MB/s | peak RSS MiB | allocated B per wire B | minor faults | voluntary switches |"
    );
    let _ = writeln!(text, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let per_gb = |r: &RunReport| record_bytes.map_or(f64::NAN, |b| r.cpu_s() / gb(b));
    let per_m = |r: &RunReport| r.cpu_s() / (records as f64 / 1e6);
    for m in measured {
        let r = &m.report;
        let alloc = match (r.allocated_bytes, r.wire_bytes) {
            (Some(a), w) if w > 0 => format!("{:.4}", a as f64 / w as f64),
            _ => "-".to_string(),
        };
        let wire = match r.wire_bytes {
            0 => "-".to_string(),
            w => format!("{:.1}", w as f64 / 1e6 / r.wall_s.max(1e-3)),
        };
        let _ = writeln!(
            text,
            "| {} | {} | {:.1} | {:.2} | {:.3} | {:.3} | {:.0} | {wire} | {} | {alloc} | {} | {} |",
            m.run,
            m.replicator,
            r.wall_s,
            r.cpu_s(),
            per_gb(r),
            per_m(r),
            records as f64 / r.cpu_s().max(1e-6),
            r.max_rss_kib / 1024,
            r.minor_faults,
            r.voluntary_switches
        );
    }
    let of = |who: &str, f: &dyn Fn(&RunReport) -> f64| {
        median(
            measured
                .iter()
                .filter(|m| m.replicator == who)
                .map(|m| f(&m.report))
                .collect(),
        )
    };
    let (k_rec, b_rec, f_rec) = (of("kferry", &per_m), of("baseline", &per_m), of("floor", &per_m));
    let (k_gb, b_gb, f_gb) = (of("kferry", &per_gb), of("baseline", &per_gb), of("floor", &per_gb));
    let _ = writeln!(
        text,
        "\nmedians: kferry {k_rec:.4} CPU-s per M records, {k_gb:.4} CPU-s per GB; baseline {b_rec:.4} CPU-s per M records, {b_gb:.4} CPU-s per GB; floor {f_rec:.4} CPU-s per M records, {f_gb:.4} CPU-s per GB"
    );
    let _ = writeln!(
        text,
        "\n| replicator (median) | CPU-s per M records | CPU-s per GB | baseline / this | this / floor |"
    );
    let _ = writeln!(text, "|---|---:|---:|---:|---:|");
    let mut names: Vec<&str> = Vec::new();
    for m in measured {
        if !names.contains(&m.replicator.as_str()) {
            names.push(&m.replicator);
        }
    }
    for who in names {
        let (rec, per) = (of(who, &per_m), of(who, &per_gb));
        let _ = writeln!(
            text,
            "| {who} | {rec:.4} | {per:.4} | {} | {:.1}x |",
            ratio(b_rec, rec),
            rec / f_rec
        );
    }
    if b_rec.is_finite() {
        let _ = writeln!(
            text,
            "kferry uses {:.1}x fewer CPU-seconds per record and {:.1}x fewer per GB than the baseline",
            b_rec / k_rec,
            b_gb / k_gb
        );
    }
    if b_rec.is_finite() {
        let _ = writeln!(
            text,
            "floor: a bare loopback relay of kferry's wire bytes (in and out) uses {f_rec:.4} CPU-s per M records; \
             baseline / floor = {:.1}x is the most any replicator moving these bytes through sockets can reach here",
            b_rec / f_rec
        );
    }
    Summary {
        text,
        ratios: serde_json::json!({
            "kferry_cpu_s_per_million_records": k_rec,
            "baseline_cpu_s_per_million_records": b_rec,
            "kferry_cpu_s_per_gb": k_gb,
            "baseline_cpu_s_per_gb": b_gb,
            "per_record_ratio": b_rec / k_rec,
            "per_gb_ratio": b_gb / k_gb,
            "floor_cpu_s_per_million_records": f_rec,
            "floor_cpu_s_per_gb": f_gb,
            "baseline_over_floor": b_rec / f_rec,
            "kferry_over_floor": k_rec / f_rec,
        }),
    }
}
