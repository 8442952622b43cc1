//! `kferry status`: offset lag, time lag and state per partition, read from the clusters
//! while no kferry runs.

mod common;
mod support;

use std::process::Command;
use std::time::Duration;

use common::{kclient, Broker};
use support::daemon::{create_topic, signal, start_kferry, tempdir, wait_replicated, PARTITIONS};

const TOPIC: &str = "lagged";
/// Records produced before kferry runs, spread over every partition.
const BEFORE: u64 = 200;
/// Records produced after kferry stopped, all to partition 0.
const AFTER: i64 = 37;
/// kclient's record timestamps: record i has `BASE_TS + i` (`tests/client/kclient.py`).
const BASE_TS: i64 = 1_700_000_000_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Runs `kferry ARGS` with logs off: (exit code, stdout, stderr).
fn kferry(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kferry"))
        .args(args)
        .env("KFERRY_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn produce(bootstrap: &str, count: u64, start: u64, partitions: u32) {
    kclient(&[
        "produce",
        "--bootstrap",
        bootstrap,
        "--topic",
        TOPIC,
        "--partitions",
        &partitions.to_string(),
        "--count",
        &count.to_string(),
        "--start",
        &start.to_string(),
    ]);
}

fn route(name: &str, topic: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nsource = \"src\"\ntarget = \"dst\"\ntopics = [\"{topic}\"]\n\"commit.interval.ms\" = 200\n"
    )
}

fn clusters(src: &str, dst: &str) -> String {
    format!("[clusters.src]\n\"bootstrap.servers\" = \"{src}\"\n[clusters.dst]\n\"bootstrap.servers\" = \"{dst}\"\n")
}

/// The JSON rows of `kferry status --json` for `route`.
fn status_rows(config: &str, route: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = kferry(&["status", "--config", config, "--route", route, "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    rows.as_array().expect("an array of rows").clone()
}

#[test]
fn status_shows_exact_lag_where_records_were_added_after_kferry_stopped() {
    let (src, dst) = (Broker::start_memory("status-src"), Broker::start_memory("status-dst"));
    let (src, dst) = (src.bootstrap(), dst.bootstrap());
    create_topic(&src, TOPIC, PARTITIONS);
    create_topic(&src, "only-source", 2);
    produce(&src, BEFORE, 0, PARTITIONS);

    let dir = tempdir("status-cli");
    let run_config = dir.join("run.toml");
    std::fs::write(&run_config, clusters(&src, &dst) + &route("mirror", TOPIC)).unwrap();
    let mut kferry_run = start_kferry(&run_config, "status-cli-kferry");
    wait_replicated(&src, &dst, TOPIC, Duration::from_secs(60));
    signal(&kferry_run, "-TERM");
    assert!(kferry_run.0.wait().unwrap().success(), "kferry run exits cleanly");

    produce(&src, AFTER as u64, BEFORE, 1); // --partitions 1: all to partition 0
    let status_config = dir.join("status.toml");
    let text = clusters(&src, &dst)
        + &route("mirror", TOPIC)
        + &route("fresh", TOPIC)
        + &route("unsent", "only-source")
        + &route("skewed", TOPIC);
    std::fs::write(&status_config, text).unwrap();
    let config = status_config.to_str().unwrap();
    // Progress committed by someone else: partition 1 at 5, partition 2 past the log end.
    kclient(&[
        "commit-offsets",
        "--bootstrap",
        &src,
        "--group",
        "kferry-skewed",
        "--topic",
        TOPIC,
        "--offset",
        "1=5",
        "--offset",
        "2=100000",
    ]);

    let before = now_ms();
    let rows = status_rows(config, "mirror");
    let after = now_ms();
    assert_eq!(rows.len(), PARTITIONS as usize, "{rows:?}");
    for row in &rows {
        assert_eq!(
            (row["route"].as_str(), row["topic"].as_str()),
            (Some("mirror"), Some(TOPIC))
        );
        let p = row["partition"].as_i64().unwrap();
        let (end, replicated) = (row["end"].as_i64().unwrap(), row["replicated"].as_i64().unwrap());
        let (_, high_watermark) = rt().block_on(support::watermarks(&src, TOPIC, p as i32));
        assert_eq!(end, high_watermark, "partition {p}: end is the source high watermark");
        let expected_lag = if p == 0 { AFTER } else { 0 };
        assert_eq!(row["lag"], expected_lag, "partition {p}: {row}");
        assert_eq!(end - replicated, expected_lag, "partition {p}: {row}");
        if p == 0 {
            assert_eq!(row["state"], "lagging", "{row}");
            // The first unreplicated batch starts with record BEFORE, stamped BASE_TS + BEFORE.
            let first_ts = BASE_TS + BEFORE as i64;
            let time_lag = row["time_lag_ms"].as_i64().unwrap();
            assert!(
                (before - first_ts..=after - first_ts).contains(&time_lag),
                "time lag {time_lag} ms is now - {first_ts}: {row}"
            );
            assert!(row["bytes_behind"].as_u64().unwrap() > 0, "{row}");
        } else {
            assert_eq!(row["state"], "caught-up", "{row}");
            assert_eq!(row["time_lag_ms"], 0, "{row}");
        }
        assert_eq!(
            row["retention_margin"].as_i64().unwrap(),
            replicated,
            "log start is 0: {row}"
        );
    }
    assert_eq!(
        rows.iter().map(|r| r["lag"].as_i64().unwrap()).sum::<i64>(),
        AFTER,
        "no lag elsewhere"
    );

    // A route that never ran: no committed offsets yet, everything on the source is its lag.
    let fresh = status_rows(config, "fresh");
    assert_eq!(fresh.len(), PARTITIONS as usize);
    for row in &fresh {
        assert_eq!(row["state"], "not-started", "{row}");
        assert_eq!(row["replicated"], serde_json::Value::Null, "{row}");
        assert_eq!(row["lag"], row["end"], "log start 0: {row}");
    }
    assert_eq!(
        fresh.iter().map(|r| r["lag"].as_i64().unwrap()).sum::<i64>(),
        BEFORE as i64 + AFTER
    );
    let unsent = status_rows(config, "unsent");
    assert_eq!(unsent.len(), 2);
    assert!(unsent.iter().all(|r| r["state"] == "no-target-topic"), "{unsent:?}");
    let skewed = status_rows(config, "skewed");
    let states: Vec<&str> = skewed.iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(
        states,
        ["not-started", "lagging", "ahead-of-end", "not-started"],
        "{skewed:?}"
    );
    assert_eq!(skewed[1]["lag"], skewed[1]["end"].as_i64().unwrap() - 5, "{skewed:?}");
    assert!(skewed[1]["time_lag_ms"].as_i64().unwrap() > 0, "{skewed:?}");
    assert_eq!(skewed[2]["end"], rows[2]["end"], "end read again at the log start");
    assert_eq!(skewed[2]["lag"], 0, "{skewed:?}");
    assert_eq!(skewed[2]["time_lag_ms"], serde_json::Value::Null, "{skewed:?}");

    // The table: every route, a row per partition and a total line per route.
    let (code, table, err) = kferry(&["status", "--config", config]);
    assert_eq!(code, 0, "{err}");
    println!("{table}");
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0][..3], ["ROUTE", "TOPIC", "PARTITION"], "{table}");
    let end0 = rows[0]["end"].as_i64().unwrap().to_string();
    let replicated0 = (rows[0]["end"].as_i64().unwrap() - AFTER).to_string();
    let row0 = lines
        .iter()
        .find(|l| l[..3] == ["mirror", TOPIC, "0"])
        .unwrap_or_else(|| panic!("no row for mirror {TOPIC} 0:\n{table}"));
    assert_eq!(row0[3..6], [replicated0.as_str(), end0.as_str(), "37"], "{table}");
    assert_eq!(row0.last(), Some(&"lagging"), "{table}");
    let total = lines
        .iter()
        .find(|l| l[..2] == ["mirror", "total"])
        .unwrap_or_else(|| panic!("no total line:\n{table}"));
    assert!(total.contains(&"37") && total.last() == Some(&"lagging"), "{table}");
    assert_eq!(lines.len(), 1 + (PARTITIONS as usize + 1) * 3 + 2 + 1, "{table}");
}

#[test]
fn unknown_route_and_unreachable_cluster_are_clear_errors() {
    let dir = tempdir("status-errors");
    let config = dir.join("status.toml");
    let dead = format!("127.0.0.1:{}", common::free_port());
    let text = clusters(&dead, "127.0.0.1:9") + &route("one", "t") + &route("two", "t");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();

    let (code, _, err) = kferry(&["status", "--config", config, "--route", "three"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown route 'three'") && err.contains("one, two"),
        "{err}"
    );

    let (code, out, err) = kferry(&["status", "--config", config]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("route 'one'") && err.contains("cluster 'src'") && err.contains(&dead),
        "{err}"
    );
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
