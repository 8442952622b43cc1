//! Bad input gives one clear line on stderr, a non-zero exit code, and no panic.

mod common;

use std::process::Command;

use common::{kclient, Broker};

fn kferry(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kferry"))
        .args(args)
        .env("KFERRY_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("kferry-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn assert_one_clean_line(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("kferry: error: "), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

const ROUTE: &str = "[[routes]]\nsource = \"a\"\ntarget = \"b\"\ntopics = [\"orders\"]\n";

#[test]
fn unknown_config_key_names_file_line_and_key() {
    let path = config_file(
        "unknown.toml",
        &format!("[clusters.a]\n\"bootstrap.servers\" = \"127.0.0.1:1\"\n\"bootstrap.server\" = \"x\"\n[clusters.b]\n\"bootstrap.servers\" = \"127.0.0.1:2\"\n{ROUTE}"),
    );
    let (code, err) = kferry(&["run", "--config", &path]);
    assert_eq!(code, 2, "{err}");
    assert_one_clean_line(&err);
    assert!(
        err.contains(&path) && err.contains("line 3") && err.contains("bootstrap.server"),
        "{err}"
    );
}

#[test]
fn unreachable_cluster_names_cluster_and_addresses() {
    let path = config_file(
        "unreachable.toml",
        &format!("[clusters.a]\n\"bootstrap.servers\" = \"127.0.0.1:1,127.0.0.1:9\"\n\"socket.connection.setup.timeout.ms\" = 500\n[clusters.b]\n\"bootstrap.servers\" = \"127.0.0.1:2\"\n{ROUTE}"),
    );
    let (code, err) = kferry(&["run", "--config", &path]);
    assert_eq!(code, 1, "{err}");
    assert_one_clean_line(&err);
    assert!(
        err.contains("cluster 'a'") && err.contains("127.0.0.1:1") && err.contains("127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn missing_source_topic_is_named() {
    let source = Broker::start_memory("bad-src");
    let target = Broker::start_memory("bad-dst");
    kclient(&[
        "create-topic",
        "--bootstrap",
        &source.bootstrap(),
        "--topic",
        "present",
        "--partitions",
        "1",
    ]);
    let path = config_file(
        "missing.toml",
        &format!(
            "[clusters.a]\n\"bootstrap.servers\" = \"{}\"\n[clusters.b]\n\"bootstrap.servers\" = \"{}\"\n{ROUTE}",
            source.bootstrap(),
            target.bootstrap()
        ),
    );
    let (code, err) = kferry(&["run", "--config", &path]);
    assert_eq!(code, 1, "{err}");
    assert_one_clean_line(&err);
    assert!(
        err.contains("topic 'orders' does not exist on source cluster 'a'"),
        "{err}"
    );
    let (code, err) = kferry(&["check-config", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("topic 'orders' does not exist"), "{err}");
}

#[test]
fn check_config_prints_the_plan() {
    let source = Broker::start_memory("plan-src");
    let target = Broker::start_memory("plan-dst");
    kclient(&[
        "create-topic",
        "--bootstrap",
        &source.bootstrap(),
        "--topic",
        "orders",
        "--partitions",
        "3",
    ]);
    let path = config_file(
        "plan.toml",
        &format!(
            "[clusters.a]\n\"bootstrap.servers\" = \"{}\"\n[clusters.b]\n\"bootstrap.servers\" = \"{}\"\n{ROUTE}",
            source.bootstrap(),
            target.bootstrap()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kferry"))
        .args(["check-config", &path])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("orders (3 partitions) -> b:orders"), "{stdout}");
}
