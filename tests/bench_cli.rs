//! `kferry bench`: the load generator's records are readable by a real client, the
//! end-to-end comparison runs both replicators over the same data and checks the targets,
//! and the latency mode sees every record it sent.
//!
//! These check that the benchmark works and reports what it measured; they assert no speed
//! (figures come from `kferry bench` runs, see docs/benchmarks.md).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{kclient, repo_root, Broker};

fn kferry() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kferry"));
    cmd.current_dir(repo_root()).env("KFERRY_LOG", "warn");
    cmd
}

/// The baseline binary that `cargo test --workspace` builds next to kferry's.
fn baseline() -> PathBuf {
    let kferry = PathBuf::from(env!("CARGO_BIN_EXE_kferry"));
    let path = kferry.with_file_name("kferry-baseline");
    assert!(
        path.is_file(),
        "{} is missing: run the workspace tests (`cargo test --workspace`) or `cargo build -p kferry-baseline`",
        path.display()
    );
    path
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("kferry runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn bench_produce_writes_records_a_real_client_reads_with_crc_checks() {
    let broker = Broker::start_memory("bench-produce");
    let out = run(kferry().args([
        "bench",
        "produce",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        "filled",
        "--workload",
        "a",
        "--records",
        "12000",
        "--partitions",
        "3",
    ]));
    assert!(out.contains("produced 12000 records in 120 batches"), "{out}");
    // confluent-kafka reads every record back (check.crcs=true in kclient).
    let seen = kclient(&[
        "consume",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        "filled",
        "--partitions",
        "3",
        "--expect",
        "12000",
        "--summary",
    ]);
    assert_eq!(seen["total"].as_u64(), Some(12000), "{seen}");
    assert_eq!(seen["complete"], true, "{seen}");
}

#[test]
fn bench_e2e_runs_kferry_and_the_baseline_over_the_same_backlog() {
    let dir = std::env::temp_dir().join(format!("kferry-bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("figures.json");
    let out = run(kferry().args([
        "bench",
        "e2e",
        "--workload",
        "b",
        "--records",
        "6400",
        "--partitions",
        "2",
        "--runs",
        "1",
        "--baseline",
        baseline().to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]));
    assert!(
        out.contains("| 1 | kferry |") && out.contains("| 1 | baseline |") && out.contains("| 1 | floor |"),
        "{out}"
    );
    let figures: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = figures["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{figures}");
    for r in runs.iter().filter(|r| r["replicator"] != "floor") {
        // The command itself checks each target holds the source's record count.
        assert_eq!(r["report"]["records"].as_u64(), Some(6400), "{r}");
        assert!(r["report"]["user_cpu_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["report"]["max_rss_kib"].as_u64().unwrap() > 0, "{r}");
    }
    let kferry_run = runs.iter().find(|r| r["replicator"] == "kferry").unwrap();
    let wire = kferry_run["report"]["wire_bytes"].as_u64().unwrap();
    assert!(wire > 0 && kferry_run["report"]["allocated_bytes"].as_u64().is_some());
    assert_eq!(figures["codec"], "zstd");
    let record_bytes = figures["record_bytes"].as_u64().unwrap() as f64;
    assert!((record_bytes / (6400.0 * 2048.0) - 1.0).abs() < 0.01, "{figures}");
    assert!(figures["ratios"]["per_record_ratio"].as_f64().unwrap() > 0.0);
    // The floor relayed exactly kferry's wire bytes, in its own process, and is in the ratios.
    let floor = runs.iter().find(|r| r["replicator"] == "floor").unwrap();
    assert_eq!(floor["report"]["wire_bytes"].as_u64(), Some(wire), "{floor}");
    assert!(floor["report"]["max_rss_kib"].as_u64().unwrap() > 0, "{floor}");
    let cpu = floor["report"]["user_cpu_s"].as_f64().unwrap() + floor["report"]["sys_cpu_s"].as_f64().unwrap();
    assert!(cpu > 0.0, "{floor}");
    let ratios = &figures["ratios"];
    assert!(
        ratios["floor_cpu_s_per_million_records"].as_f64().unwrap() > 0.0,
        "{ratios}"
    );
    assert!(ratios["floor_cpu_s_per_gb"].as_f64().unwrap() > 0.0, "{ratios}");
    assert!(ratios["baseline_over_floor"].as_f64().unwrap() > 0.0, "{ratios}");
}

#[test]
fn bench_latency_sees_every_record_it_sent() {
    let out = run(kferry().args([
        "bench",
        "e2e",
        "--rate",
        "2000",
        "--duration",
        "3",
        "--records-per-batch",
        "10",
        "--partitions",
        "2",
        "--fetch-max-wait-ms",
        "5",
    ]));
    assert!(out.contains("6000 records sent, 6000 seen"), "{out}");
    assert!(out.contains("p99"), "{out}");
}
