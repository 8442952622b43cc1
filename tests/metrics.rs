//! `kferry run --metrics-address`: `GET /metrics` serves Prometheus text whose counters
//! match what was replicated and what kferry itself reports when it stops.

mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, kclient, Broker};
use support::daemon::{create_topic, signal, tempdir, wait_replicated, write_config, Guarded, PARTITIONS};

const RECORDS: u64 = 2_000;

#[test]
fn metrics_endpoint_counts_what_was_replicated() {
    let (src, dst) = (Broker::start_memory("metrics-src"), Broker::start_memory("metrics-dst"));
    create_topic(&src.bootstrap(), "scraped", PARTITIONS);
    let dir = tempdir("metrics");
    let config = write_config(&dir, &src.bootstrap(), &dst.bootstrap(), "scraped", 200);
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
    kclient(&[
        "produce",
        "--bootstrap",
        &src.bootstrap(),
        "--topic",
        "scraped",
        "--partitions",
        &PARTITIONS.to_string(),
        "--count",
        &RECORDS.to_string(),
        "--idempotent",
        "--linger-ms",
        "5",
    ]);
    wait_replicated(&src.bootstrap(), &dst.bootstrap(), "scraped", Duration::from_secs(60));

    // Acknowledged positions and high watermarks settle a little after the records land.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&address);
        if sum(&text, "kferry_records_out_total") == RECORDS as f64 && sum(&text, "kferry_offset_lag") == 0.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "not caught up after 30 s:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let samples = |name: &str| text.lines().filter(|l| l.starts_with(&format!("{name}{{"))).count();
    assert_eq!(samples("kferry_records_out_total"), PARTITIONS as usize, "{text}");
    assert!(
        text.contains(r#"route="crash",source="src",target="dst",topic="scraped",partition="0""#),
        "{text}"
    );
    let bytes = sum(&text, "kferry_bytes_out_total");
    assert!(bytes > 0.0, "{text}");
    assert!(sum(&text, "kferry_batches_out_total") > 0.0, "{text}");
    assert!(
        path_sum(&text, "kferry_path_batches_total", "fast_path") > 0.0,
        "{text}"
    );
    assert_eq!(sum(&text, "kferry_partition_error"), 0.0, "{text}");
    assert!(samples("kferry_source_high_watermark") == PARTITIONS as usize, "{text}");
    promtool_check(&text);
    assert!(http_get(&address, "/nope").starts_with("HTTP/1.1 404"));

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
    assert_eq!(stopped["fields"]["records"], RECORDS, "{stopped}");
    assert_eq!(stopped["fields"]["bytes"].as_f64(), Some(bytes), "{stopped}");
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

/// `promtool check metrics` on the scraped text, when promtool is installed.
fn promtool_check(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
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
