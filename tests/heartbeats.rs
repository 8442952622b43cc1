//! Heartbeats between two real tansu brokers: kferry writes them to the source, replicates them
//! with the route's topics, and the latency it reports from them agrees with the end-to-end
//! latency a probe measures on its own records (acceptance: within 100 ms on loopback).

mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kferry::batch::Compression;
use kferry::bench::{self, Histogram, LoadOptions, LoadStats, Workload};
use kferry::replicate::HeartbeatConfig;
use kferry::wire::{Cluster, ClusterConfig};
use kferry::{Replicator, RouteConfig};

use common::{free_port, kclient, Broker};
use support::daemon::{create_topic, signal, tempdir, Guarded};

const PROBE_TOPIC: &str = "probe";
/// The route's fetch wait: tansu holds every Fetch this long even when data is ready, so it
/// is most of the replication latency.
const FETCH_WAIT_MS: i32 = 50;
/// The probe's own fetch wait on the target (added to what the probe measures only).
const PROBE_WAIT_MS: i32 = 5;
const RATE: f64 = 50.0;
const LOAD_SECS: f64 = 10.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_latency_agrees_with_the_measured_end_to_end_latency() {
    let (src, dst) = (Broker::start_memory("hb-src"), Broker::start_memory("hb-dst"));
    create_topic(&src.bootstrap(), PROBE_TOPIC, 1);
    let mut route = RouteConfig::new("hb", "src", "dst").include(&[PROBE_TOPIC]);
    route.fetch_max_wait_ms = FETCH_WAIT_MS;
    let replicator = Replicator::builder()
        .cluster(ClusterConfig::new("src", vec![src.bootstrap()]))
        .cluster(ClusterConfig::new("dst", vec![dst.bootstrap()]))
        .route(route)
        .heartbeats(HeartbeatConfig {
            topic: "heartbeats".to_string(),
            interval: Duration::from_millis(200),
        })
        .build()
        .unwrap();
    let running = replicator.start().await.expect("route starts");
    assert_eq!(running.routes()[0].heartbeat_latency(), None, "nothing measured yet");

    // The probe: timestamped records at a fixed rate, read back from the target.
    let target = Arc::new(Cluster::new(ClusterConfig::new("probe-target", vec![dst.bootstrap()])));
    let source = Arc::new(Cluster::new(ClusterConfig::new("probe-source", vec![src.bootstrap()])));
    let histogram = Arc::new(Mutex::new(Histogram::default()));
    let (stop_probe, stop_rx) = tokio::sync::watch::channel(false);
    let probe = tokio::spawn(bench::probe(
        target,
        PROBE_TOPIC.to_string(),
        PROBE_WAIT_MS,
        histogram.clone(),
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let workload = Workload {
        record_size: 100,
        records_per_batch: 1,
        compression: Compression::None,
        templates: 8,
        ..Workload::metrics()
    };
    let options = LoadOptions {
        topic: PROBE_TOPIC.to_string(),
        records: (RATE * LOAD_SECS) as u64,
        rate: Some(RATE),
        in_flight: 1,
        timeout_ms: 10_000,
    };
    let stats = Arc::new(LoadStats::default());
    bench::produce(source, Arc::new(workload.templates().unwrap()), &options, stats.clone())
        .await
        .expect("probe records produced");
    let sent = stats.snapshot().0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while histogram.lock().unwrap().count() < sent {
        assert!(
            Instant::now() < deadline,
            "the probe saw {} of {sent} records",
            histogram.lock().unwrap().count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_probe.send(true).unwrap();
    probe.await.unwrap().expect("probe");
    assert!(running.errors().is_empty(), "{:?}", running.errors());

    let probe_p50 = histogram.lock().unwrap().quantile(0.5).expect("probe samples") as i64;
    let heartbeat = running.routes()[0]
        .heartbeat_latency()
        .expect("heartbeat latency reported");
    eprintln!(
        "probe end-to-end p50 {probe_p50} ms over {sent} records; heartbeat p50 {} ms, p99 {} ms, last {} ms over {} heartbeats ({} in the window)",
        heartbeat.p50_ms, heartbeat.p99_ms, heartbeat.last_ms, heartbeat.count, heartbeat.window
    );
    assert!(
        heartbeat.count >= 20,
        "a heartbeat every 200 ms for over 10 s: {heartbeat:?}"
    );
    assert!(heartbeat.p50_ms > 0, "{heartbeat:?}");
    assert!(
        (heartbeat.p50_ms - probe_p50).abs() <= 100,
        "heartbeat p50 {} ms vs probe p50 {probe_p50} ms",
        heartbeat.p50_ms
    );
    assert_eq!(running.heartbeat_p50_ms(), Some(heartbeat.p50_ms));
    let text = kferry::metrics::render(&kferry::metrics::snapshot(&running));
    assert!(
        text.contains(r#"kferry_heartbeat_latency_seconds{route="hb",source="src",target="dst",quantile="0.5"}"#),
        "{text}"
    );
    running.shutdown().await.expect("clean shutdown");

    // The heartbeats on the target, read with the real client: keyed by the source's alias,
    // stamped with their CreateTime, one every 200 ms or so.
    let read = tokio::task::spawn_blocking(move || {
        kclient(&[
            "consume",
            "--bootstrap",
            &dst.bootstrap(),
            "--topic",
            "heartbeats",
            "--timeout-s",
            "20",
        ])
    })
    .await
    .unwrap();
    let records = read["partitions"]["0"].as_array().expect("heartbeats-0 on the target");
    assert!(
        records.len() as u64 >= heartbeat.count,
        "{} records, {} timed",
        records.len(),
        heartbeat.count
    );
    for r in records {
        assert_eq!(r["key"], hex("src"), "{r}");
        assert_eq!(r["ts_type"], "create", "{r}");
        assert!(r["value_len"].as_u64().unwrap() > 0, "{r}");
    }
    let ts: Vec<i64> = records.iter().map(|r| r["ts"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[1] >= w[0] + 100), "about 200 ms apart: {ts:?}");
}

/// `kferry run` with the heartbeat keys in its config file: the topic name and interval are
/// used, and the latency is served as a Prometheus summary.
#[test]
fn the_daemon_writes_replicates_and_reports_heartbeats() {
    let (src, dst) = (Broker::start_memory("hbd-src"), Broker::start_memory("hbd-dst"));
    create_topic(&src.bootstrap(), "data", 1);
    let dir = tempdir("heartbeats");
    let config = dir.join("kferry.toml");
    let address = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &config,
        format!(
            "\"heartbeats.topic\" = \"kferry-hb\"\n\"heartbeats.interval.ms\" = 100\n\
             \"metrics.address\" = \"{address}\"\n\
             [clusters.east]\n\"bootstrap.servers\" = \"{}\"\n\
             [clusters.west]\n\"bootstrap.servers\" = \"{}\"\n\
             [[routes]]\nsource = \"east\"\ntarget = \"west\"\ntopics = [\"data\"]\n\"fetch.max.wait.ms\" = 50\n",
            src.bootstrap(),
            dst.bootstrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kferry"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("kferry.log")).unwrap())
        .spawn()
        .map(Guarded)
        .unwrap();
    let labels = r#"route="east-to-west",source="east",target="west""#;
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&address).unwrap_or_default();
        if value(&text, &format!("kferry_heartbeat_latency_seconds_count{{{labels}}}")) >= 10.0 {
            break text;
        }
        let log = std::fs::read_to_string(dir.join("kferry.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no heartbeats timed after 30 s:\n{text}\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let p50 = value(
        &text,
        &format!("kferry_heartbeat_latency_seconds{{{labels},quantile=\"0.5\"}}"),
    );
    assert!(p50 > 0.0 && p50 < 1.0, "median heartbeat latency {p50} s:\n{text}");
    assert!(value(&text, &format!("kferry_heartbeat_last_latency_seconds{{{labels}}}")) > 0.0);
    assert!(text.contains(r#"topic="kferry-hb",partition="0""#), "{text}");
    // Stopped, so that the topic has an end to read up to.
    signal(&child, "-TERM");
    assert!(child.0.wait().unwrap().success());
    // The configured topic exists on both clusters, with the source's heartbeats.
    for cluster in [&src, &dst] {
        let read = kclient(&["consume", "--bootstrap", &cluster.bootstrap(), "--topic", "kferry-hb"]);
        let records = read["partitions"]["0"].as_array().unwrap().clone();
        assert!(records.len() >= 10, "{read}");
        assert!(records.iter().all(|r| r["key"] == hex("east")), "{read}");
    }
}

/// Routes a -> b -> c -> a (disjoint topics): the last one would close a cycle, so it does not
/// replicate heartbeats, and none comes back to a. Route b -> c copies a's heartbeats on to c
/// but times only b's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_never_go_around_a_cycle_and_each_route_times_its_own_source() {
    let brokers = [("a", "x"), ("b", "y"), ("c", "z")].map(|(name, topic)| {
        let broker = Broker::start_memory(&format!("hbc-{name}"));
        create_topic(&broker.bootstrap(), topic, 1);
        (name, broker)
    });
    let mut builder = Replicator::builder().heartbeats(HeartbeatConfig {
        topic: "heartbeats".to_string(),
        interval: Duration::from_millis(100),
    });
    for (name, broker) in &brokers {
        builder = builder.cluster(ClusterConfig::new(*name, vec![broker.bootstrap()]));
    }
    for (source, target, topic) in [("a", "b", "x"), ("b", "c", "y"), ("c", "a", "z")] {
        let mut route = RouteConfig::new(format!("{source}-{target}"), source, target).include(&[topic]);
        route.fetch_max_wait_ms = FETCH_WAIT_MS;
        builder = builder.route(route);
    }
    let running = builder.build().unwrap().start().await.expect("routes start");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let routes = running.routes();
    let latency = |i: usize| routes[i].heartbeat_latency();
    let (ab, bc) = (latency(0).expect("a -> b timed"), latency(1).expect("b -> c timed"));
    assert_eq!(latency(2), None, "c -> a closes the cycle: no heartbeats");
    assert!(
        routes[2].status().iter().all(|p| p.source_topic == "z"),
        "{:?}",
        routes[2].status()
    );
    drop(routes); // a read lock on the routes: released before anything changes them
    assert!(running.errors().is_empty(), "{:?}", running.errors());
    running.shutdown().await.expect("clean shutdown");

    let keys = |cluster: &Broker| {
        let read = kclient(&["consume", "--bootstrap", &cluster.bootstrap(), "--topic", "heartbeats"]);
        let mut counts = std::collections::BTreeMap::new();
        for r in read["partitions"]["0"].as_array().unwrap() {
            *counts.entry(r["key"].as_str().unwrap().to_string()).or_insert(0u64) += 1;
        }
        counts
    };
    let (on_a, on_b, on_c) = tokio::task::spawn_blocking(move || {
        let [(_, a), (_, b), (_, c)] = &brokers;
        (keys(a), keys(b), keys(c))
    })
    .await
    .unwrap();
    eprintln!("heartbeats by key: on a {on_a:?}, on b {on_b:?}, on c {on_c:?}; a -> b {ab:?}, b -> c {bc:?}");
    assert_eq!(on_a.keys().collect::<Vec<_>>(), [&hex("a")], "nothing came back to a");
    assert_eq!(on_b.keys().collect::<Vec<_>>(), [&hex("a"), &hex("b")]);
    assert_eq!(on_c.keys().collect::<Vec<_>>(), [&hex("a"), &hex("b"), &hex("c")]);
    assert!(ab.count >= 20 && bc.count >= 20, "{ab:?} {bc:?}");
    // b -> c copied a's heartbeats too, but timed only b's.
    assert!(bc.count <= on_c[&hex("b")], "{bc:?} vs {on_c:?}");
    assert!(on_c[&hex("a")] >= 20, "{on_c:?}");
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The value of the sample `name{labels}` (0 when absent).
fn value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

fn scrape(address: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}
