//! Many sources, many targets, one process (acceptance 1 of the routing issue), on three real
//! tansu brokers: sources `a` and `b` aggregated into target `c` with the `prefix` rename
//! policy (`orders` arrives as `a.orders` and `b.orders`), and `a` also fanned out to `b`
//! (as `agg.a.orders`, a template). Every record is verified with the real client
//! (confluent-kafka, `check.crcs=true`): counts, keys, values, headers and order per partition.
//! Also: prefix routes both ways (active/active) copy nothing back, and a renamed route
//! resumes after a kill from the target's tail under the target name.

mod common;
mod support;

use std::time::Duration;

use common::{kclient, wait_until, Broker};
use kferry::replicate::RenamePolicy;
use kferry::wire::ClusterConfig;
use kferry::{Replicator, RouteConfig};
use support::daemon::{assert_exact, create_topic};

const BEFORE: u64 = 600;
const AFTER: u64 = 400;

fn produce(bootstrap: &str, topic: &str, partitions: u32, start: u64, count: u64, seed: u32) {
    kclient(&[
        "produce",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        &partitions.to_string(),
        "--start",
        &start.to_string(),
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
}

fn verify(source: &str, target: &str, topic: &str, target_topic: &str, partitions: u32) -> serde_json::Value {
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
        &partitions.to_string(),
        "--wait-s",
        "60",
    ])
}

fn partition_count(bootstrap: &str, topic: &str) -> u64 {
    let v = kclient(&["describe-topic", "--bootstrap", bootstrap, "--topic", topic]);
    v["partitions"]
        .as_u64()
        .unwrap_or_else(|| panic!("no partition count in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_aggregate_into_one_target_and_one_source_fans_out() {
    let (a, b, c) = (
        Broker::start_memory("topo-a"),
        Broker::start_memory("topo-b"),
        Broker::start_memory("topo-c"),
    );
    let (ab, bb, cb) = (a.bootstrap(), b.bootstrap(), c.bootstrap());
    create_topic(&ab, "orders", 3);
    create_topic(&bb, "orders", 2);
    produce(&ab, "orders", 3, 0, BEFORE, 1);
    produce(&bb, "orders", 2, 0, BEFORE, 2);

    let prefix = RenamePolicy::Prefix { separator: ".".into() };
    let template = RenamePolicy::Template {
        template: "agg.{source}.{topic}".into(),
        separator: ".".into(),
    };
    let replicator = Replicator::builder()
        .cluster(ClusterConfig::new("a", vec![ab.clone()]))
        .cluster(ClusterConfig::new("b", vec![bb.clone()]))
        .cluster(ClusterConfig::new("c", vec![cb.clone()]))
        .route(
            RouteConfig::new("a-to-c", "a", "c")
                .include(&["orders"])
                .rename(prefix.clone()),
        )
        .route(RouteConfig::new("b-to-c", "b", "c").include(&["orders"]).rename(prefix))
        .route(
            RouteConfig::new("a-to-b", "a", "b")
                .include(&["orders"])
                .rename(template),
        )
        .build()
        .expect("routes build");
    let running = replicator.start().await.expect("routes start");

    // More records while the routes run.
    produce(&ab, "orders", 3, BEFORE, AFTER, 1);
    produce(&bb, "orders", 2, BEFORE, AFTER, 2);
    let total = BEFORE + AFTER;

    // Aggregation: both sources' `orders` side by side on c, named by their source.
    assert_exact(&verify(&ab, &cb, "orders", "a.orders", 3), total);
    assert_exact(&verify(&bb, &cb, "orders", "b.orders", 2), total);
    assert_eq!(partition_count(&cb, "a.orders"), 3, "created with the source's count");
    assert_eq!(partition_count(&cb, "b.orders"), 2, "created with the source's count");
    // Fan-out: a's orders also on b, under the template name, next to b's own `orders`
    // (which the b-to-c check above read in full: exactly b's records, nothing of a's).
    assert_exact(&verify(&ab, &bb, "orders", "agg.a.orders", 3), total);
    // Nothing under identity names on c.
    let listed = kclient(&["list-topics", "--bootstrap", &cb]);
    assert!(
        listed["topics"].get("orders").is_none(),
        "c has no topic named orders: {listed}"
    );
    assert_eq!(listed["topics"]["a.orders"], 3, "{listed}");

    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || running
            .caught_up()),
        "routes report caught up"
    );
    let status = running.status();
    for (route, target_topic) in [
        ("a-to-c", "a.orders"),
        ("b-to-c", "b.orders"),
        ("a-to-b", "agg.a.orders"),
    ] {
        let parts: Vec<_> = status.iter().filter(|(r, _)| r == route).collect();
        assert!(!parts.is_empty(), "{route} has partitions");
        assert!(
            parts
                .iter()
                .all(|(_, p)| p.source_topic == "orders" && p.target_topic == target_topic),
            "{route}: {parts:?}"
        );
        let records: u64 = parts.iter().map(|(_, p)| p.records_out).sum();
        assert_eq!(records, total, "{route} forwarded every record once");
    }
    assert!(running.errors().is_empty(), "{:?}", running.errors());
    running.shutdown().await.expect("clean shutdown");
}

/// MirrorMaker 2's active/active: a -> b and b -> a, both `prefix`, every topic. Each side gets
/// the other's `orders` under the other's alias, and nothing comes back (`b.a.orders` is never
/// created), even after several topic sync rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_active_prefix_routes_copy_nothing_back() {
    let (a, b) = (Broker::start_memory("aa-a"), Broker::start_memory("aa-b"));
    let (ab, bb) = (a.bootstrap(), b.bootstrap());
    create_topic(&ab, "orders", 2);
    create_topic(&bb, "orders", 2);
    produce(&ab, "orders", 2, 0, 300, 1);
    produce(&bb, "orders", 2, 0, 200, 2);
    let route = |name: &str, source: &str, target: &str| {
        let mut r = RouteConfig::new(name, source, target).rename(RenamePolicy::Prefix { separator: ".".into() });
        r.metadata_max_age = Duration::from_millis(300);
        r
    };
    let running = Replicator::builder()
        .cluster(ClusterConfig::new("a", vec![ab.clone()]))
        .cluster(ClusterConfig::new("b", vec![bb.clone()]))
        .route(route("a-to-b", "a", "b"))
        .route(route("b-to-a", "b", "a"))
        .build()
        .expect("routes build")
        .start()
        .await
        .expect("routes start");
    assert_exact(&verify(&ab, &bb, "orders", "a.orders", 2), 300);
    assert_exact(&verify(&bb, &ab, "orders", "b.orders", 2), 200);
    tokio::time::sleep(Duration::from_secs(2)).await; // several topic sync rounds
    for (cluster, other) in [(&ab, "b"), (&bb, "a")] {
        let listed = kclient(&["list-topics", "--bootstrap", cluster]);
        let mut topics: Vec<&str> = listed["topics"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|t| !t.starts_with("__"))
            .collect();
        topics.sort();
        // kferry's own offset-map topic lives on each target and is never replicated.
        let expected = vec![
            format!("{other}.orders"),
            "kferry-offset-maps".to_string(),
            "orders".to_string(),
        ];
        assert_eq!(topics, expected, "{listed}");
    }
    assert!(running.errors().is_empty(), "{:?}", running.errors());
    running.shutdown().await.expect("clean shutdown");
}

/// A renamed route killed with nothing committed resumes from the target's tail under the
/// target name (`a.orders`), so no record is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_route_resumes_from_the_renamed_target_tail() {
    let (a, c) = (Broker::start_memory("rr-a"), Broker::start_memory("rr-c"));
    let (ab, cb) = (a.bootstrap(), c.bootstrap());
    create_topic(&ab, "orders", 2);
    produce(&ab, "orders", 2, 0, 500, 3);
    let replicator = || {
        let mut r = RouteConfig::new("rr", "a", "c")
            .include(&["orders"])
            .rename(RenamePolicy::Prefix { separator: ".".into() });
        r.commit_interval = Duration::from_secs(3600); // nothing committed before the kill
        Replicator::builder()
            .cluster(ClusterConfig::new("a", vec![ab.clone()]))
            .cluster(ClusterConfig::new("c", vec![cb.clone()]))
            .route(r)
            .build()
            .expect("route builds")
    };
    let first = replicator().start().await.expect("route starts");
    assert_exact(&verify(&ab, &cb, "orders", "a.orders", 2), 500);
    drop(first); // killed: no final commit
    tokio::time::sleep(Duration::from_millis(300)).await;

    produce(&ab, "orders", 2, 500, 200, 3);
    let second = replicator().start().await.expect("route restarts");
    assert!(
        second.routes()[0].resumed_batches() > 0,
        "the target's batches were matched under the target name"
    );
    assert_exact(&verify(&ab, &cb, "orders", "a.orders", 2), 700);
    assert!(second.errors().is_empty(), "{:?}", second.errors());
    second.shutdown().await.expect("clean shutdown");
}
