//! Crash and restart: kferry (the real binary) is SIGKILLed at random points while a real
//! producer writes 120,000 records, restarted each time, and finally stopped with SIGTERM.
//! The target is then read by an independent client and compared with the source.
//!
//! Bound on duplicates after SIGKILL: only batches that were in flight can be written twice,
//! at most `max.in.flight (5) x partitions x records per batch` per kill. kferry's restart
//! reconciliation (matching the target's tail to the source) is expected to bring it to 0.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{kclient, Broker};
use rand::Rng;

const PARTITIONS: u32 = 4;

fn write_config(dir: &std::path::Path, src: &str, dst: &str, topic: &str, commit_ms: u32) -> PathBuf {
    let path = dir.join(format!("{topic}.toml"));
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        r#"
[clusters.src]
"bootstrap.servers" = "{src}"
[clusters.dst]
"bootstrap.servers" = "{dst}"
[[routes]]
name = "crash"
source = "src"
target = "dst"
topics = ["{topic}"]
"commit.interval.ms" = {commit_ms}
"#
    )
    .unwrap();
    path
}

fn start_kferry(config: &std::path::Path, log: &str) -> Child {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("{log}-{}", std::process::id()))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kferry"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn kferry")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

fn total(bootstrap: &str, topic: &str) -> u64 {
    kclient(&[
        "watermarks",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
    ])["total"]
        .as_u64()
        .unwrap()
}

/// Waits until the target holds at least as many records as the source.
fn wait_replicated(src: &str, dst: &str, topic: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let (s, d) = (total(src, topic), total(dst, topic));
        if d >= s {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "target has {d} of {s} records after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn verify(src: &str, dst: &str, topic: &str) -> serde_json::Value {
    kclient(&[
        "verify",
        "--source",
        src,
        "--target",
        dst,
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
    ])
}

fn produce_in_background(src: &str, topic: &str, count: u64, rate: u64) -> Child {
    Command::new(common::python())
        .arg(common::kclient_script())
        .args([
            "produce",
            "--bootstrap",
            src,
            "--topic",
            topic,
            "--partitions",
            &PARTITIONS.to_string(),
        ])
        .args([
            "--count",
            &count.to_string(),
            "--rate",
            &rate.to_string(),
            "--codec",
            "lz4",
            "--idempotent",
        ])
        .args(["--linger-ms", "5"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn producer")
}

#[test]
fn sigkill_three_times_loses_nothing() {
    let source = Broker::start_memory("kill-src");
    let target = Broker::start_memory("kill-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "crash.kill";
    kclient(&[
        "create-topic",
        "--bootstrap",
        &src,
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
    let dir = tempdir("kill");
    // A long commit interval: each kill leaves acknowledged but uncommitted batches on the
    // target, which the restart must recognise instead of writing them again.
    let config = write_config(&dir, &src, &dst, topic, 3000);

    let mut producer = produce_in_background(&src, topic, 120_000, 20_000);
    let mut rng = rand::thread_rng();
    for round in 0..3 {
        let mut kferry = start_kferry(&config, &format!("kferry-kill-{round}.log"));
        std::thread::sleep(Duration::from_millis(rng.gen_range(700..2200)));
        signal(&kferry, "-KILL");
        kferry.wait().unwrap();
    }
    assert!(producer.wait().unwrap().success(), "producer failed");
    let mut kferry = start_kferry(&config, "kferry-kill-final.log");
    wait_replicated(&src, &dst, topic, Duration::from_secs(120));
    signal(&kferry, "-TERM");
    assert!(kferry.wait().unwrap().success(), "kferry exits 0 on SIGTERM");

    let v = verify(&src, &dst, topic);
    println!("after 3 SIGKILLs: {v}");
    assert_eq!(v["records"], 120_000, "{v}");
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["reordered"], 0, "{v}");
    assert_eq!(v["mismatched"], 0, "{v}");
    // librdkafka with linger 5 ms at 20k records/s makes batches of a few hundred records at
    // most; 3 kills x 4 partitions x 5 in flight x 1000 records is a generous bound.
    let duplicated = v["duplicated"].as_u64().unwrap();
    assert!(
        duplicated <= 3 * 4 * 5 * 1000,
        "duplicates beyond the in-flight bound: {v}"
    );
    let resumed = resumed_batches("kferry-kill-");
    println!("batches found already on the target at restarts: {resumed:?}; duplicates: {duplicated}");
    assert!(
        resumed.iter().any(|&n| n > 0),
        "no restart had to reconcile the target's tail: {resumed:?}"
    );
}

/// `resumed_batches=N` from the "route started" line of each kferry log with this prefix.
fn resumed_batches(prefix: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) || !name.ends_with(&format!("-{}", std::process::id())) {
            continue;
        }
        let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let plain: String = strip_ansi(&log);
        if let Some(n) = plain.split("resumed_batches=").nth(1) {
            out.push(
                n.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0),
            );
        }
    }
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

#[test]
fn sigterm_then_restart_duplicates_nothing() {
    let source = Broker::start_memory("term-src");
    let target = Broker::start_memory("term-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "crash.term";
    kclient(&[
        "create-topic",
        "--bootstrap",
        &src,
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
    let dir = tempdir("term");
    let config = write_config(&dir, &src, &dst, topic, 200);

    let mut producer = produce_in_background(&src, topic, 100_000, 25_000);
    for round in 0..2 {
        let mut kferry = start_kferry(&config, &format!("kferry-term-{round}.log"));
        std::thread::sleep(Duration::from_millis(1500));
        signal(&kferry, "-TERM");
        assert!(kferry.wait().unwrap().success(), "kferry exits 0 on SIGTERM");
    }
    assert!(producer.wait().unwrap().success(), "producer failed");
    let mut kferry = start_kferry(&config, "kferry-term-final.log");
    wait_replicated(&src, &dst, topic, Duration::from_secs(120));
    signal(&kferry, "-TERM");
    assert!(kferry.wait().unwrap().success());

    let v = verify(&src, &dst, topic);
    println!("after SIGTERM restarts: {v}");
    assert_eq!(v["records"], 100_000, "{v}");
    for key in ["lost", "duplicated", "reordered", "mismatched"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kferry-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
