//! Running the kferry binary and a background producer from tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, kclient};

/// Partitions of every topic these helpers create.
pub const PARTITIONS: u32 = 4;

pub fn write_config(dir: &Path, src: &str, dst: &str, topic: &str, commit_ms: u32) -> PathBuf {
    let path = dir.join(format!("{topic}.toml"));
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        r#"
"heartbeats.enabled" = false
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

/// A child process that is killed if the test ends (or panics) while it still runs.
pub struct Guarded(pub Child);

impl std::ops::Deref for Guarded {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn start_kferry(config: &Path, log: &str) -> Guarded {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("{log}-{}", std::process::id()))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kferry"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Guarded)
        .expect("spawn kferry")
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Records in a topic: the sum of the partitions' high watermarks minus log starts, as a
/// consumer sees them. (Read with kferry's wire Fetch: tansu 0.6 answers ListOffsets(latest)
/// with the last batch's base offset + 1, so `kclient watermarks` is wrong there.)
pub fn total(bootstrap: &str, topic: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sum = 0;
        for p in 0..PARTITIONS as i32 {
            let (start, end) = crate::support::watermarks(bootstrap, topic, p).await;
            sum += (end - start) as u64;
        }
        sum
    })
}

/// Waits until the target holds at least as many records as the source.
pub fn wait_replicated(src: &str, dst: &str, topic: &str, timeout: Duration) {
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

pub fn verify(src: &str, dst: &str, topic: &str) -> serde_json::Value {
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

pub fn produce_in_background(src: &str, topic: &str, count: u64, rate: u64) -> Guarded {
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
        .map(Guarded)
        .expect("spawn producer")
}

pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kferry-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `resumed_batches=N` from the "route started" line of each kferry log with this prefix.
pub fn resumed_batches(prefix: &str) -> Vec<u64> {
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

pub fn strip_ansi(s: &str) -> String {
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

/// True when the kferry log written by [`start_kferry`] contains `text`.
pub fn kferry_log_mentions(log: &str, text: &str) -> bool {
    let path = std::env::temp_dir().join(format!("{log}-{}", std::process::id()));
    strip_ansi(&std::fs::read_to_string(path).unwrap_or_default()).contains(text)
}

/// Creates a topic on the source with the real client.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: u32) {
    kclient(&[
        "create-topic",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        &partitions.to_string(),
    ]);
}

/// Asserts a `kclient verify` result: `records` records, none lost, duplicated, reordered
/// or changed.
pub fn assert_exact(v: &serde_json::Value, records: u64) {
    assert_eq!(v["records"], records, "{v}");
    for key in ["lost", "duplicated", "reordered", "mismatched"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
}
