//! `--log-format json`: every log line kferry writes is one JSON object with a level, a
//! timestamp and the event's fields, so log pipelines can parse it.

mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Broker;
use support::daemon::{create_topic, signal, tempdir, write_config, Guarded};

#[test]
fn json_log_lines_parse_and_carry_the_route() {
    let (src, dst) = (Broker::start_memory("json-src"), Broker::start_memory("json-dst"));
    create_topic(&src.bootstrap(), "logged", 2);
    let dir = tempdir("json-logs");
    let config = write_config(&dir, &src.bootstrap(), &dst.bootstrap(), "logged", 1000);
    let log_path = dir.join("kferry.log");
    let child = Command::new(env!("CARGO_BIN_EXE_kferry"))
        .args(["--log-format", "json", "--log", "info", "run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .map(Guarded)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log_path).unwrap().contains("route started") {
        assert!(Instant::now() < deadline, "no 'route started' line within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&child, "-TERM");
    let mut child = child;
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{text}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    let started = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["message"] == "route started")
        .unwrap();
    assert_eq!(started["fields"]["route"], "crash", "{started}");
    assert_eq!(started["fields"]["partitions"], 2, "{started}");
}
