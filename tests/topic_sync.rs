//! Topic sync on real tansu brokers (acceptance 3 of the routing issue): while kferry runs
//! with a 1 s `metadata.max.age.ms`, a new matching source topic is created on the target
//! with the source's partition count and configs and replicated within a few refresh
//! intervals; a topic config changed on the source reaches the target; a topic the route
//! does not select is left alone. Records are verified with the real client
//! (confluent-kafka, `check.crcs=true`).
//!
//! tansu 0.6 has no CreatePartitions (nor AlterConfigs; IncrementalAlterConfigs it has), so
//! partition growth is tested with the fake broker as source and as target
//! (`FakeOptions::target`: Produce, InitProducerId, CreatePartitions).

mod common;
mod support;

use std::time::{Duration, Instant};

use common::{kclient, wait_until, Broker};
use kferry::replicate::RenamePolicy;
use kferry::wire::Cluster;
use kferry::wire::ClusterConfig;
use kferry::{Replicator, RouteConfig};
use kferry_protocol_tests::craft::CraftedBatch;
use kferry_protocol_tests::fake::{FakeBroker, FakeOptions};
use support::daemon::assert_exact;
use support::read_batches;

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
    assert_eq!(
        config["retention.ms"], "3600000",
        "source config copied at creation: {config}"
    );
    assert_eq!(config["compression.type"], "producer", "{config}");

    // A new matching topic, and one the route does not select, created while kferry runs.
    create(
        &s,
        "events.second",
        3,
        &["cleanup.policy=delete", "retention.ms=7200000"],
    );
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
    assert!(
        synced,
        "retention.ms not synced: {:?}",
        describe(&d, "src.events.first")
    );

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

/// `n` v2 batches of 3 records each for `partition`, from offset `base`, values naming them.
fn batches(partition: i32, base: i64, n: i64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let values: Vec<Vec<u8>> = (0..3)
                .map(|r| format!("p{partition}-b{}-r{r}", base / 3 + i).into_bytes())
                .collect();
            let mut batch = CraftedBatch::valid(&values.iter().map(Vec::as_slice).collect::<Vec<_>>());
            batch.base_offset = base + 3 * i;
            batch.encode()
        })
        .collect()
}

/// Every batch of both partitions carries the same records (after the 61-byte header).
async fn assert_same_batches(source: &str, target: &str, topic: &str, partition: i32, expected: usize) {
    let (src, dst) = (
        read_batches(source, topic, partition).await,
        read_batches(target, topic, partition).await,
    );
    assert_eq!(src.len(), expected, "{topic}-{partition} source batches");
    assert_eq!(dst.len(), expected, "{topic}-{partition} target batches");
    for (i, (s, d)) in src.iter().zip(&dst).enumerate() {
        assert_eq!(s.record_count(), d.record_count(), "{topic}-{partition} batch {i}");
        assert!(
            s.payload() == d.payload(),
            "{topic}-{partition} batch {i}: records differ"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_added_on_the_source_are_added_on_the_target_and_replicated() {
    let src = FakeBroker::start().await.unwrap();
    let dst = FakeBroker::start_with(FakeOptions {
        target: true,
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    src.create_topic("grow", 1);
    src.append("grow", 0, &batches(0, 0, 4));
    dst.create_topic("grow", 1);

    let mut route = RouteConfig::new("grow", "src", "dst").include(&["grow"]);
    route.metadata_max_age = Duration::from_millis(500);
    let replicator = Replicator::builder()
        .cluster(ClusterConfig::new("src", vec![src.bootstrap()]))
        .cluster(ClusterConfig::new("dst", vec![dst.bootstrap()]))
        .route(route)
        .build()
        .expect("route builds");
    let running = replicator.start().await.expect("route starts");
    let replicated =
        |p: i32| dst.partition_count("grow") > p && dst.log_end_offset("grow", p) == src.log_end_offset("grow", p);
    assert!(wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        replicated(0)
    }));

    // The source topic grows from 1 to 3 partitions, with records in the new ones.
    src.add_partitions("grow", 3);
    src.append("grow", 1, &batches(1, 0, 2));
    src.append("grow", 2, &batches(2, 0, 3));
    src.append("grow", 0, &batches(0, 12, 1));
    let grown = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || (0..3)
            .all(replicated)),
        "target has {} partitions; {:?}",
        dst.partition_count("grow"),
        running.status()
    );
    eprintln!(
        "3 partitions replicated {:?} after the source grew (refresh 500 ms)",
        grown.elapsed()
    );
    assert_eq!(dst.partition_count("grow"), 3, "CreatePartitions grew the target");
    let (s, d) = (src.bootstrap(), dst.bootstrap());
    for (p, expected) in [(0, 5), (1, 2), (2, 3)] {
        assert_same_batches(&s, &d, "grow", p, expected).await;
    }
    assert_eq!(running.status().len(), 3, "the route shows the added partitions");
    assert!(running.errors().is_empty(), "{:?}", running.errors());
    running.shutdown().await.expect("clean shutdown");
    for p in 1..3 {
        let committed = src
            .committed("kferry-grow", "grow", p)
            .expect("added partitions commit progress");
        assert_eq!(committed.offset, src.log_end_offset("grow", p), "grow-{p}");
    }
}

#[tokio::test]
async fn create_partitions_grows_a_topic_and_refuses_to_shrink_it() {
    let broker = FakeBroker::start_with(FakeOptions {
        target: true,
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    broker.create_topic("t", 2);
    let cluster = Cluster::new(ClusterConfig::new("fake", vec![broker.bootstrap()]));
    cluster.refresh_metadata(None).await.unwrap();
    cluster.create_partitions(&[("t".to_string(), 5)]).await.expect("grows");
    assert_eq!(broker.partition_count("t"), 5);
    let meta = cluster.refresh_metadata(None).await.unwrap();
    assert_eq!(meta.topics["t"].partitions.len(), 5);
    let err = cluster
        .create_partitions(&[("t".to_string(), 3)])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("fake") && err.contains("CreatePartitions 't'"), "{err}");
    assert_eq!(broker.partition_count("t"), 5, "nothing removed");
    let err = cluster
        .create_partitions(&[("nope".to_string(), 3)])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("'nope'"), "{err}");
}
