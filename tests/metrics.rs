//! `kferry run --metrics-address`: `GET /metrics` serves Prometheus text (checked with
//! `promtool check metrics`) whose counters match what the target holds, whose lag families
//! match a backlog of known size, and whose latency histograms count what was sent.
//!
//! The backlog is made deterministic by freezing the target broker (SIGSTOP): kferry still
//! fetches the extra records, so it knows the source high watermark, but the target
//! acknowledges nothing, so the acknowledged position cannot move. The offset lag is then
//! exactly the number of extra records, and the bytes behind exactly their source batches'
//! size, until the broker is thawed (well within the request timeout, so nothing is retried).

mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, kclient, Broker};
use support::daemon::{create_topic, signal, tempdir, wait_replicated, write_config, Guarded, PARTITIONS};
use support::{now_ms, read_batches, watermarks};

const RECORDS: u64 = 2_000;
/// Records produced while the target is frozen.
const BACKLOG: u64 = 120;
const TOPIC: &str = "scraped";

#[test]
fn metrics_endpoint_counts_what_was_replicated() {
    let (src, dst) = (Broker::start_memory("metrics-src"), Broker::start_memory("metrics-dst"));
    create_topic(&src.bootstrap(), TOPIC, PARTITIONS);
    let dir = tempdir("metrics");
    let config = write_config(&dir, &src.bootstrap(), &dst.bootstrap(), TOPIC, 200);
    let address = format!("127.0.0.1:{}", free_port());
    let log_path = dir.join("kferry.log");
    let child = Command::new(env!("CARGO_BIN_EXE_kferry"))
        .args(["--log-format", "json", "run", "--metrics-address", &address, "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .map(Guarded)
        .unwrap();
    produce(&src.bootstrap(), RECORDS);
    wait_replicated(&src.bootstrap(), &dst.bootstrap(), TOPIC, Duration::from_secs(60));
    let text = scrape_caught_up(&address, RECORDS);
    check_caught_up(&text, &dst.bootstrap(), RECORDS);
    assert!(
        text.contains(r#"route="crash",source="src",target="dst",topic="scraped",partition="0""#),
        "{text}"
    );
    assert!(
        path_sum(&text, "kferry_path_batches_total", "fast_path") > 0.0,
        "{text}"
    );
    assert_eq!(sum(&text, "kferry_partition_error"), 0.0, "{text}");
    assert_eq!(
        samples(&text, "kferry_source_high_watermark"),
        PARTITIONS as usize,
        "{text}"
    );
    assert_eq!(samples(&text, "kferry_errors_total"), 6, "every kind, from 0: {text}");
    promtool_check(&text);
    check_documented(&text);
    assert!(http_get(&address, "/nope").starts_with("HTTP/1.1 404"));

    check_backlog(&src, &dst, &address);

    let text = scrape_caught_up(&address, RECORDS + BACKLOG);
    let bytes = check_caught_up(&text, &dst.bootstrap(), RECORDS + BACKLOG);
    promtool_check(&text);

    signal(&child, "-TERM");
    let mut child = child;
    assert!(child.0.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let stopped = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("stopped after"))
        })
        .unwrap_or_else(|| panic!("no 'stopped after' line:\n{log}"));
    assert_eq!(stopped["fields"]["records"], RECORDS + BACKLOG, "{stopped}");
    assert_eq!(stopped["fields"]["bytes"].as_f64(), Some(bytes), "{stopped}");
}

/// Freezes the target, produces [`BACKLOG`] records, and checks the lag families against
/// them: offset lag, bytes behind and time lag. Thaws the target before returning.
fn check_backlog(src: &Broker, dst: &Broker, address: &str) {
    let before = partition_ends(&src.bootstrap());
    dst.pause();
    produce(&src.bootstrap(), BACKLOG);
    let after = partition_ends(&src.bootstrap());
    // kferry has seen the new high watermarks once its fetches brought the new records.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (text, scrape_start, scrape_end) = loop {
        let scrape_start = now_ms();
        let text = scrape(address);
        let seen = (0..PARTITIONS as i32)
            .all(|p| sample(&text, "kferry_source_high_watermark", p) == Some(after[p as usize] as f64));
        if seen {
            break (text, scrape_start, now_ms());
        }
        if Instant::now() > deadline {
            dst.resume();
            panic!("high watermarks {after:?} not seen after 10 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    dst.resume();
    let waiting = backlog(&src.bootstrap(), &before);
    for p in 0..PARTITIONS as i32 {
        let i = p as usize;
        let expected_lag = (after[i] - before[i]) as f64;
        assert_eq!(
            sample(&text, "kferry_offset_lag", p),
            Some(expected_lag),
            "partition {p}:\n{text}"
        );
        assert_eq!(
            sample(&text, "kferry_acked_source_offset", p),
            Some(before[i] as f64),
            "partition {p}:\n{text}"
        );
        assert_eq!(
            sample(&text, "kferry_bytes_behind", p),
            Some(waiting[i].0 as f64),
            "partition {p}: fetched and waiting, exactly:\n{text}"
        );
        if expected_lag > 0.0 {
            // kclient gives records fixed CreateTimes, so the age of the oldest waiting one is
            // known up to how long the scrape took.
            let time_lag = sample(&text, "kferry_time_lag_seconds", p).expect("a time lag") * 1000.0;
            let oldest = waiting[i].1;
            let (low, high) = ((scrape_start - oldest) as f64, (scrape_end - oldest) as f64);
            assert!(
                time_lag >= low - 1.0 && time_lag <= high + 1.0,
                "partition {p}: time lag {time_lag} ms outside [{low}, {high}]"
            );
        }
    }
    assert_eq!(sum(&text, "kferry_offset_lag"), BACKLOG as f64, "{text}");
    promtool_check(&text);
}

/// Every family in the scrape is in a table of docs/metrics.md, with the same type.
fn check_documented(text: &str) {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let mut families = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        let row = format!("| `{name}` | {kind} |");
        assert!(docs.contains(&row), "docs/metrics.md has no row starting {row}");
        families += 1;
    }
    assert!(families >= 15, "{text}");
}

/// Scrapes until every record is acknowledged and every high watermark seen.
fn scrape_caught_up(address: &str, records: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(address);
        if sum(&text, "kferry_records_out_total") == records as f64 && sum(&text, "kferry_offset_lag") == 0.0 {
            return text;
        }
        assert!(Instant::now() < deadline, "not caught up after 30 s:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Checks the output counters and latency histograms against the batches on the target, read
/// back raw; returns the bytes out.
fn check_caught_up(text: &str, dst: &str, records: u64) -> f64 {
    let target = target_batches(dst);
    let stored_records: u64 = target.iter().map(|(_, b)| b.record_count() as u64).sum();
    let stored_bytes: u64 = target.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(stored_records, records, "the target holds what was produced");
    assert_eq!(samples(text, "kferry_records_out_total"), PARTITIONS as usize, "{text}");
    for p in 0..PARTITIONS as i32 {
        let on_target: u64 = target
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, b)| b.record_count() as u64)
            .sum();
        assert_eq!(
            sample(text, "kferry_records_out_total", p),
            Some(on_target as f64),
            "partition {p}"
        );
    }
    let bytes = sum(text, "kferry_bytes_out_total");
    assert_eq!(
        bytes, stored_bytes as f64,
        "bytes out = the target's batch sizes\n{text}"
    );
    let batches = sum(text, "kferry_batches_out_total");
    assert_eq!(batches, target.len() as f64, "{text}");
    assert_eq!(
        sum(text, "kferry_replication_latency_seconds_count"),
        batches,
        "one replication latency per acknowledged batch\n{text}"
    );
    for (cluster, api) in [("src", "Fetch"), ("dst", "Produce"), ("src", "Metadata")] {
        let count = values(text, "kferry_request_latency_seconds_count", |l| {
            l.contains(&format!("cluster=\"{cluster}\"")) && l.contains(&format!("api=\"{api}\""))
        });
        assert!(count > 0.0, "no {api} latency to {cluster}:\n{text}");
    }
    bytes
}

/// Every batch on the target, with its partition.
fn target_batches(dst: &str) -> Vec<(i32, kferry::batch::RecordBatch)> {
    runtime().block_on(async {
        let mut out = Vec::new();
        for p in 0..PARTITIONS as i32 {
            out.extend(read_batches(dst, TOPIC, p).await.into_iter().map(|b| (p, b)));
        }
        out
    })
}

/// Per partition, the bytes of the source batches at or after `from`, and the oldest first
/// timestamp among them (-1 without any).
fn backlog(src: &str, from: &[i64]) -> Vec<(u64, i64)> {
    runtime().block_on(async {
        let mut out = Vec::new();
        for p in 0..PARTITIONS as i32 {
            let batches = read_batches(src, TOPIC, p).await;
            let after: Vec<_> = batches.iter().filter(|b| b.base_offset() >= from[p as usize]).collect();
            let bytes = after.iter().map(|b| b.len() as u64).sum();
            let oldest = after.iter().map(|b| b.base_timestamp()).min().unwrap_or(-1);
            out.push((bytes, oldest));
        }
        out
    })
}

/// High watermark of every partition of the source topic.
fn partition_ends(bootstrap: &str) -> Vec<i64> {
    runtime().block_on(async {
        let mut out = Vec::new();
        for p in 0..PARTITIONS as i32 {
            out.push(watermarks(bootstrap, TOPIC, p).await.1);
        }
        out
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn produce(bootstrap: &str, count: u64) {
    kclient(&[
        "produce",
        "--bootstrap",
        bootstrap,
        "--topic",
        TOPIC,
        "--partitions",
        &PARTITIONS.to_string(),
        "--count",
        &count.to_string(),
        "--idempotent",
        "--linger-ms",
        "5",
    ]);
}

/// Samples of a family.
fn samples(text: &str, name: &str) -> usize {
    text.lines().filter(|l| l.starts_with(&format!("{name}{{"))).count()
}

/// The value of a family's sample for `partition` of [`TOPIC`].
fn sample(text: &str, family: &str, partition: i32) -> Option<f64> {
    let labels = format!("topic=\"{TOPIC}\",partition=\"{partition}\"}}");
    text.lines()
        .find(|l| l.starts_with(&format!("{family}{{")) && l.contains(&labels))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
}

/// The body of `GET /metrics`, after checking the status and content type.
fn scrape(address: &str) -> String {
    let response = http_get(address, "/metrics");
    let (head, body) = response.split_once("\r\n\r\n").expect("response head");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Sum of every sample of a family.
fn sum(text: &str, family: &str) -> f64 {
    values(text, family, |_| true)
}

fn path_sum(text: &str, family: &str, path: &str) -> f64 {
    values(text, family, |line| line.contains(&format!("path=\"{path}\"")))
}

fn values(text: &str, family: &str, keep: impl Fn(&str) -> bool) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .filter(|l| keep(l))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// `promtool check metrics` on the scraped text, when promtool is installed (always on CI).
fn promtool_check(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        // scripts/install-test-deps.sh installs it; CI must not pass without the check.
        assert!(std::env::var_os("CI").is_none(), "promtool is not installed");
        eprintln!("promtool not found: skipping `promtool check metrics`");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
