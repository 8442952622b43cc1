//! Group offset sync end to end, with two tansu brokers and real consumer groups
//! (confluent-kafka via `kclient group-consume`: subscribed members, `check.crcs=true`).
//!
//! - A group that read part of every partition on the source (every codec, and a partition
//!   with transaction markers and aborted records) resumes on the target at exactly the next
//!   record: what it read on the source followed by what it reads on the target is every
//!   record of the partition once, in order.
//! - A group with an active member on the target is not overwritten; a target offset is
//!   never moved backwards.
//! - A source offset past replicated data (behind an open transaction) is held back until
//!   the data arrives, then synced exactly.

mod common;
mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{kclient, Broker};
use kferry::wire::{Cluster, ClusterConfig};
use kferry::RouteConfig;
use serde_json::Value;
use support::daemon::{create_topic, tempdir, Guarded};
use support::{start_route, wait_caught_up, BatchAudit};

const PARTITIONS: i32 = 2;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// kferry's log lines (debug and up), captured for the whole test binary.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured log lines of `route` (each test uses its own route name).
fn route_log(route: &str) -> Vec<String> {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    let capture = CAPTURE.get_or_init(|| {
        let capture = LogCapture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter("kferry=debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        capture
    });
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    text.lines().filter(|l| l.contains(route)).map(str::to_string).collect()
}

fn sync_route(name: &str, include: &[&str]) -> RouteConfig {
    route_log(name); // starts the capture
    let mut r = RouteConfig::new(name, "src", "dst").include(include);
    r.commit_interval = Duration::from_millis(200);
    r.group_sync.enabled = true;
    r.group_sync.interval = Duration::from_millis(500);
    r
}

/// Runs `kclient group-consume` for `group` on `topics` and returns its JSON.
fn group_consume(bootstrap: &str, group: &str, topics: &[&str], per_partition: Option<u64>, reset: &str) -> Value {
    let mut args = vec!["group-consume", "--bootstrap", bootstrap, "--group", group];
    for t in topics {
        args.extend(["--topic", t]);
    }
    let partitions = PARTITIONS.to_string();
    let per = per_partition.map(|n| n.to_string());
    args.extend(["--partitions", &partitions, "--reset", reset, "--timeout-s", "90"]);
    if let Some(per) = &per {
        args.extend(["--per-partition", per]);
    }
    kclient(&args)
}

/// The generator indices a `group-consume` read from `topic`-`partition`, in order.
fn read_indices(v: &Value, topic: &str, partition: i32) -> Vec<u64> {
    v["partitions"][format!("{topic}:{partition}")]
        .as_array()
        .unwrap_or_else(|| panic!("no records for {topic}:{partition} in {v}"))
        .iter()
        .map(|r| r["i"].as_u64().expect("record with header i"))
        .collect()
}

/// (offset, generator index) of every record of `topic`-`partition`, read by the real client.
fn all_records(bootstrap: &str, topic: &str, partition: i32, isolation: &str) -> Vec<(i64, u64)> {
    let v = kclient(&[
        "consume",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
        "--isolation",
        isolation,
    ]);
    v["partitions"][partition.to_string()]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["offset"].as_i64().unwrap(), r["i"].as_u64().unwrap()))
        .collect()
}

/// The committed offsets of `group` for `topic` (by partition; `None`: none), read by the
/// real client.
fn group_offsets(bootstrap: &str, group: &str, topic: &str) -> Vec<Option<i64>> {
    let v = kclient(&[
        "group-offsets",
        "--bootstrap",
        bootstrap,
        "--group",
        group,
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
    (0..PARTITIONS).map(|p| v["offsets"][p.to_string()].as_i64()).collect()
}

fn commit_offsets(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let specs: Vec<String> = offsets.iter().map(|(p, o)| format!("{p}={o}")).collect();
    let mut args = vec![
        "commit-offsets",
        "--bootstrap",
        bootstrap,
        "--group",
        group,
        "--topic",
        topic,
    ];
    for s in &specs {
        args.extend(["--offset", s.as_str()]);
    }
    kclient(&args);
}

/// Waits until `group`'s offsets for `topic` on `bootstrap` are `expected`.
async fn wait_offsets(bootstrap: &str, group: &str, topic: &str, expected: &[Option<i64>], timeout: Duration) {
    let start = Instant::now();
    loop {
        let got = group_offsets(bootstrap, group, topic);
        if got == expected {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "group '{group}' on {bootstrap} has offsets {got:?} for {topic}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn produce(bootstrap: &str, topic: &str, count: u64, codec: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(common::python());
    cmd.arg(common::kclient_script())
        .args(["produce", "--bootstrap", bootstrap, "--topic", topic])
        .args(["--partitions", &PARTITIONS.to_string(), "--count", &count.to_string()])
        .args(["--codec", codec, "--linger-ms", "1", "--batch-size", "2000"])
        .args(extra)
        .stdout(Stdio::null());
    cmd
}

fn run_ok(mut cmd: Command, what: &str) {
    let status = cmd.status().expect("spawn kclient");
    assert!(status.success(), "{what} failed: {status}");
}

/// Acceptance: a real consumer group reads part of every partition on the source (five
/// codecs, and a partition with markers and aborted transactions) and commits; after sync,
/// the same group on the target reads the rest: source read + target read is every record
/// of each partition once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resumes_on_the_target_at_exactly_the_next_record() {
    let source = Broker::start_memory("gsync-resume-src");
    let target = Broker::start_memory("gsync-resume-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let mut topics: Vec<String> = CODECS.iter().map(|c| format!("gs.{c}")).collect();
    for (t, codec) in topics.iter().zip(CODECS) {
        create_topic(&src, t, PARTITIONS as u32);
        run_ok(produce(&src, t, 300, codec, &[]), t);
    }
    // Transactions of 50 records (25 per partition), every third aborted.
    let txn_topic = "gs.txn".to_string();
    create_topic(&src, &txn_topic, PARTITIONS as u32);
    let txn_args = ["--transactional-id", "gs-txn", "--txn-size", "50", "--abort-every", "3"];
    run_ok(
        produce(&src, &txn_topic, 300, "lz4", &txn_args),
        "transactional producer",
    );
    topics.push(txn_topic.clone());
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();

    // 50 records of each partition: on the transactional topic, the last one read ends the
    // second transaction, so the committed offset is its COMMIT marker, and an aborted
    // transaction follows.
    let on_source = group_consume(&src, "app", &names, Some(50), "earliest");
    for p in 0..PARTITIONS {
        let committed = on_source["committed"][format!("{txn_topic}:{p}")].as_i64().unwrap();
        let records = all_records(&src, &txn_topic, p, "read_uncommitted");
        assert!(
            !records.iter().any(|(o, _)| *o == committed),
            "{txn_topic}-{p}: the committed offset {committed} should be a marker, not a record: {records:?}"
        );
    }

    let audit = BatchAudit::default();
    let running = start_route(&src, &dst, sync_route("gsync-resume", &["gs\\..*"]), &audit).await;
    wait_caught_up(&running, Duration::from_secs(120)).await;
    // Every synced offset must be the exact translation of the source's.
    let maps = running.routes()[0].offset_maps().clone();
    for t in &names {
        let expected: Vec<Option<i64>> = (0..PARTITIONS)
            .map(|p| {
                let committed = on_source["committed"][format!("{t}:{p}")].as_i64().unwrap();
                let translation = maps.translate(t, p, committed);
                assert!(translation.is_exact(), "{t}-{p} at {committed}: {translation:?}");
                translation.target()
            })
            .collect();
        wait_offsets(&dst, "app", t, &expected, Duration::from_secs(30)).await;
    }

    let on_target = group_consume(&dst, "app", &names, None, "error");
    for t in &names {
        for p in 0..PARTITIONS {
            // tansu serves aborted records to read_committed consumers (it never fills
            // aborted_transactions): drop them by kclient's numbering.
            let aborted = |i: u64| *t == txn_topic && (i / 50) % 3 == 2;
            let all: Vec<u64> = all_records(&src, t, p, "read_uncommitted")
                .into_iter()
                .map(|(_, i)| i)
                .filter(|&i| !aborted(i))
                .collect();
            assert!(all.len() < 150 || *t != txn_topic, "{t}-{p}: aborted records dropped");
            let mut union = read_indices(&on_source, t, p);
            assert_eq!(union.len(), 50, "{t}-{p}: read on the source");
            union.extend(read_indices(&on_target, t, p));
            assert_eq!(
                union, all,
                "{t}-{p}: source read + target read must be every record once, in order"
            );
        }
    }
    running.shutdown().await.expect("clean shutdown");
    let (_, _, violations) = audit.summary();
    assert!(violations.is_empty(), "{violations:#?}");
}

/// A group with a member on the target keeps its own offsets; once the member leaves, the
/// sync moves it forwards, and never backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_target_group_is_never_overwritten_nor_moved_backwards() {
    let source = Broker::start_memory("gsync-active-src");
    let target = Broker::start_memory("gsync-active-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "gs.active";
    create_topic(&src, topic, PARTITIONS as u32);
    run_ok(produce(&src, topic, 400, "zstd", &[]), "producer");
    group_consume(&src, "app", &[topic], Some(40), "earliest");
    let audit = BatchAudit::default();
    let running = start_route(&src, &dst, sync_route("gsync-active", &[topic]), &audit).await;
    wait_caught_up(&running, Duration::from_secs(120)).await;
    // No markers: target offsets equal source offsets.
    wait_offsets(&dst, "app", topic, &[Some(40), Some(40)], Duration::from_secs(30)).await;

    // A member on the target reads 10 more per partition, commits, and stays in the group.
    let release = tempdir("gsync-active").join("release");
    let _ = std::fs::remove_file(&release);
    let mut member = Guarded(
        Command::new(common::python())
            .arg(common::kclient_script())
            .args(["group-consume", "--bootstrap", &dst, "--group", "app", "--topic", topic])
            .args(["--partitions", &PARTITIONS.to_string(), "--per-partition", "10"])
            .args(["--reset", "error", "--hold-file", release.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the target member"),
    );
    wait_offsets(&dst, "app", topic, &[Some(50), Some(50)], Duration::from_secs(60)).await;
    let dst_cluster = Cluster::new(ClusterConfig::new("dst", vec![dst.clone()]));
    let described = dst_cluster.describe_group("app").await.expect("DescribeGroups");
    assert!(described.is_active(), "the member holds the group: {described:?}");

    // The source group moves on; a control group proves the sync runs meanwhile.
    group_consume(&src, "app", &[topic], Some(60), "earliest");
    commit_offsets(&src, "control", topic, &[(0, 7), (1, 9)]);
    wait_offsets(&dst, "control", topic, &[Some(7), Some(9)], Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // four more sync intervals
    assert!(member.try_wait().unwrap().is_none(), "the member is still in the group");
    assert_eq!(
        group_offsets(&dst, "app", topic),
        [Some(50), Some(50)],
        "the active group's own commits stand"
    );
    // kferry itself left the group alone (a Kafka coordinator would also refuse its commit).
    let log = route_log("gsync-active");
    let about_app = |what: &str| log.iter().any(|l| l.contains(what) && l.contains("group=\"app\""));
    assert!(about_app("group is active on the target"), "{log:#?}");
    assert!(
        !about_app("OffsetCommit"),
        "a commit was tried on the active group: {log:#?}"
    );

    // The member leaves: the group is synced forwards to the source's 100.
    std::fs::write(&release, b"go").unwrap();
    let status = member.wait().expect("member exits");
    assert!(status.success(), "the target member failed: {status}");
    wait_offsets(&dst, "app", topic, &[Some(100), Some(100)], Duration::from_secs(30)).await;

    // The source group goes back to 20: the target group is not moved backwards.
    commit_offsets(&src, "app", topic, &[(0, 20), (1, 20)]);
    commit_offsets(&src, "control", topic, &[(0, 8), (1, 10)]);
    wait_offsets(&dst, "control", topic, &[Some(8), Some(10)], Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(group_offsets(&src, "app", topic), [Some(20), Some(20)]);
    assert_eq!(group_offsets(&dst, "app", topic), [Some(100), Some(100)], "no rewind");
    let log = route_log("gsync-active");
    assert!(log.iter().any(|l| l.contains("not moved backwards")), "{log:#?}");
    running.shutdown().await.expect("clean shutdown");
}

/// Source group offsets behind an open transaction are past replicated data (read_committed
/// replication stops at the transaction): held back until the transaction commits and its
/// records arrive, then synced to exactly the next record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_past_replicated_data_is_held_back_until_the_data_arrives() {
    let source = Broker::start_memory("gsync-held-src");
    let target = Broker::start_memory("gsync-held-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "gs.held";
    create_topic(&src, topic, PARTITIONS as u32);
    let release = tempdir("gsync-held").join("release");
    let _ = std::fs::remove_file(&release);
    // Transaction 0 (records 0..50) commits, transaction 1 (50..100) stays open.
    let txn_args = [
        "--transactional-id",
        "gs-held",
        "--txn-size",
        "50",
        "--hold-open-file",
        release.to_str().unwrap(),
    ];
    let mut holder = Guarded(produce(&src, topic, 100, "snappy", &txn_args).spawn().expect("spawn"));
    // Per partition: 25 records, the COMMIT marker at 25, then 25 open records 26..=50.
    let start = Instant::now();
    while (0..PARTITIONS).any(|p| all_records(&src, topic, p, "read_uncommitted").len() < 50) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the open transaction's records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let uncommitted: Vec<Vec<(i64, u64)>> = (0..PARTITIONS)
        .map(|p| all_records(&src, topic, p, "read_uncommitted"))
        .collect();
    // The group read into the open transaction (read_uncommitted) on partition 0: offset 40.
    let held_at = uncommitted[0][35].0 + 1;
    commit_offsets(&src, "reader", topic, &[(0, held_at), (1, 10)]);

    let audit = BatchAudit::default();
    let running = start_route(&src, &dst, sync_route("gsync-held", &[topic]), &audit).await;
    let maps = running.routes()[0].offset_maps().clone();
    // Partition 1 is synced; partition 0 is held back however many rounds pass.
    wait_offsets(&dst, "reader", topic, &[None, Some(10)], Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let translation = maps.translate(topic, 0, held_at);
    assert!(
        matches!(translation, kferry::offsets::Translation::HeldBack { replicated_to } if replicated_to < held_at),
        "{translation:?}"
    );
    assert_eq!(
        group_offsets(&dst, "reader", topic),
        [None, Some(10)],
        "no target offset past replicated data"
    );
    let log = route_log("gsync-held");
    let held = log
        .iter()
        .any(|l| l.contains("held back until their records are replicated") && l.contains("reader"));
    assert!(held, "{log:#?}");

    // The transaction commits; its records arrive, and the offset follows exactly.
    std::fs::write(&release, b"go").unwrap();
    let status = holder.wait().expect("producer exits");
    assert!(status.success(), "the transactional producer failed: {status}");
    wait_caught_up(&running, Duration::from_secs(120)).await;
    let target_records: HashMap<u64, i64> = all_records(&dst, topic, 0, "read_committed")
        .into_iter()
        .map(|(o, i)| (i, o))
        .collect();
    let next_index = uncommitted[0][36].1; // the first record the group had not read
    let expected = target_records[&next_index];
    wait_offsets(
        &dst,
        "reader",
        topic,
        &[Some(expected), Some(10)],
        Duration::from_secs(30),
    )
    .await;
    running.shutdown().await.expect("clean shutdown");

    // A consumer of the group on the target starts at exactly that record.
    let resumed = group_consume(&dst, "reader", &[topic], Some(1), "error");
    assert_eq!(read_indices(&resumed, topic, 0), [next_index]);
}

/// ListGroups goes to every broker: each lists only the groups it coordinates. The tansu
/// brokers here are single nodes, so the fake broker's two nodes stand in (only node 0
/// coordinates groups).
#[tokio::test]
async fn list_groups_asks_every_broker() {
    use kferry::wire::CommittedOffset;
    use kferry_protocol_tests::fake::{FakeBroker, FakeOptions, FOLLOWER_ID};

    let options = FakeOptions {
        follower_rack: Some("rack-a".to_string()),
        ..FakeOptions::default()
    };
    let fake = FakeBroker::start_with(options).await.expect("fake broker");
    fake.create_topic("t", 1);
    let cluster = Cluster::new(ClusterConfig::new("fake", vec![fake.bootstrap()]));
    for group in ["app", "other"] {
        let committed = CommittedOffset {
            offset: 5,
            metadata: String::new(),
        };
        let offsets = [("t".to_string(), 0, committed)];
        cluster.commit_offsets(group, &offsets).await.expect("OffsetCommit");
    }
    let listed = cluster.list_groups().await.expect("ListGroups");
    assert!(listed.errors.is_empty(), "{:?}", listed.errors);
    let ids: Vec<&str> = listed.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(ids, ["app", "other"]);
    let mut asked: Vec<i32> = fake
        .requests()
        .iter()
        .filter(|r| r.api_key == 16)
        .map(|r| r.node)
        .collect();
    asked.sort_unstable();
    assert_eq!(asked, [0, FOLLOWER_ID], "one ListGroups per broker");
}
