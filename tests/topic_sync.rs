//! Topic sync on real tansu brokers (acceptance 3 of the routing issue): while kferry runs
//! with a 1 s `metadata.max.age.ms`, a new matching source topic is created on the target
//! with the source's partition count and configs and replicated within a few refresh
//! intervals; a topic config changed on the source reaches the target; a topic the route
//! does not select is left alone. Records are verified with the real client
//! (confluent-kafka, `check.crcs=true`).
//!
//! tansu 0.6 has no CreatePartitions, so partition growth is tested against the fake broker
//! (`tests/fake_growth.rs` is not needed: see `protocol-tests/src/fake/tests_growth.rs`).

mod common;
mod support;

use std::time::{Duration, Instant};

use common::{kclient, wait_until, Broker};
use kferry::replicate::RenamePolicy;
use kferry::wire::ClusterConfig;
use kferry::{Replicator, RouteConfig};
use support::daemon::assert_exact;

const REFRESH: Duration = Duration::from_secs(1);

fn create(bootstrap: &str, topic: &str, partitions: u32, config: &[&str]) {
    let mut args = vec![
        "create-topic".to_string(),
        "--bootstrap".into(),
        bootstrap.into(),
        "--topic".into(),
        topic.into(),
        "--partitions".into(),
        partitions.to_string(),
    ];
    for c in config {
        args.extend(["--config".to_string(), c.to_string()]);
    }
    kclient(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// `count` records of the generator from index `start` (so that every record is distinct).
fn produce(bootstrap: &str, topic: &str, partitions: u32, start: u64, count: u64) {
    let (partitions, start, count) = (partitions.to_string(), start.to_string(), count.to_string());
    kclient(&[
        "produce",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        &partitions,
        "--start",
        &start,
        "--count",
        &count,
    ]);
}

/// (partition count, configs) of a topic, `None` while it does not exist. Lists all topics
/// first: asking for one by name could make a broker auto-create it.
fn describe(bootstrap: &str, topic: &str) -> Option<(u64, serde_json::Value)> {
    let listed = kclient(&["list-topics", "--bootstrap", bootstrap]);
    listed["topics"].get(topic)?;
    let v = kclient(&["describe-topic", "--bootstrap", bootstrap, "--topic", topic]);
    Some((v["partitions"].as_u64()?, v["config"].clone()))
}

fn verify(source: &str, target: &str, topic: &str, target_topic: &str, partitions: u32) -> serde_json::Value {
    let partitions = partitions.to_string();
    kclient(&[
        "verify",
        "--source",
        source,
        "--target",
        target,
        "--topic",
        topic,
        "--target-topic",
        target_topic,
        "--partitions",
        &partitions,
        "--wait-s",
        "30",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_topics_and_config_changes_reach_the_target_while_running() {
    let (src, dst) = (Broker::start_memory("sync-src"), Broker::start_memory("sync-dst"));
    let (s, d) = (src.bootstrap(), dst.bootstrap());
    create(&s, "events.first", 2, &["retention.ms=3600000"]);
    produce(&s, "events.first", 2, 0, 200);

    let mut route = RouteConfig::new("sync", "src", "dst")
        .include(&["events\\..*"])
        .rename(RenamePolicy::Prefix { separator: ".".into() });
    route.metadata_max_age = REFRESH;
    route.sync_topic_configs = Some(REFRESH);
    let replicator = Replicator::builder()
        .cluster(ClusterConfig::new("src", vec![s.clone()]))
        .cluster(ClusterConfig::new("dst", vec![d.clone()]))
        .route(route)
        .build()
        .expect("route builds");
    let running = replicator.start().await.expect("route starts");
    assert_exact(&verify(&s, &d, "events.first", "src.events.first", 2), 200);
    let (count, config) = describe(&d, "src.events.first").expect("target topic exists");
    assert_eq!(count, 2);
    assert_eq!(config["retention.ms"], "3600000", "source config copied at creation: {config}");
    assert_eq!(config["compression.type"], "producer", "{config}");

    // A new matching topic, and one the route does not select, created while kferry runs.
    create(&s, "events.second", 3, &["cleanup.policy=delete", "retention.ms=7200000"]);
    create(&s, "other", 1, &[]);
    let created = Instant::now();
    produce(&s, "events.second", 3, 0, 300);
    produce(&s, "other", 1, 0, 10);
    let appeared = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        describe(&d, "src.events.second").is_some()
    });
    let took = created.elapsed();
    assert!(appeared, "src.events.second not on the target after 10 s");
    eprintln!("new topic on the target {took:?} after it was created on the source (refresh {REFRESH:?})");
    assert!(took < REFRESH * 5, "within a few refresh intervals: {took:?}");
    let (count, config) = describe(&d, "src.events.second").unwrap();
    assert_eq!(count, 3, "the source's partition count");
    assert_eq!(config["retention.ms"], "7200000", "{config}");
    assert_exact(&verify(&s, &d, "events.second", "src.events.second", 3), 300);
    // More records in the new topic keep flowing.
    produce(&s, "events.second", 3, 300, 150);
    assert_exact(&verify(&s, &d, "events.second", "src.events.second", 3), 450);

    // A config changed on the source reaches the target within a few sync intervals.
    kclient(&[
        "alter-config",
        "--bootstrap",
        &s,
        "--topic",
        "events.first",
        "--config",
        "retention.ms=1800000",
    ]);
    let synced = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        describe(&d, "src.events.first").is_some_and(|(_, c)| c["retention.ms"] == "1800000")
    });
    assert!(synced, "retention.ms not synced: {:?}", describe(&d, "src.events.first"));

    assert!(describe(&d, "src.other").is_none(), "a topic the route does not select");
    let status = running.status();
    let second: u64 = status
        .iter()
        .filter(|(_, p)| p.source_topic == "events.second")
        .map(|(_, p)| p.records_out)
        .sum();
    assert_eq!(second, 450, "the added partitions show in the route's status");
    assert!(running.errors().is_empty(), "{:?}", running.errors());
    running.shutdown().await.expect("clean shutdown");
}
