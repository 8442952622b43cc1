//! `byte.rate.limit`: a route fetches at most its rate (plus one burst) from the source, and
//! still replicates every record.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::{kclient, Broker};
use kferry::RouteConfig;
use support::daemon::{assert_exact, create_topic};
use support::{read_batches, start_route, wait_caught_up, BatchAudit};

const TOPIC: &str = "limited";
const PARTITIONS: i32 = 2;
const RATE: u64 = 1 << 20;
const FETCH: i32 = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_route_moves_no_faster_than_its_rate_and_loses_nothing() {
    let (source, target) = (Broker::start_memory("rate-src"), Broker::start_memory("rate-dst"));
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    create_topic(&src, TOPIC, PARTITIONS as u32);
    let records = 6_000u64;
    let produced = kclient(&[
        "produce",
        "--bootstrap",
        &src,
        "--topic",
        TOPIC,
        "--partitions",
        "2",
        "--count",
        "6000",
        "--value-size",
        "1000",
        "--batch-size",
        "65536",
    ]);
    assert_eq!(produced["produced"].as_u64(), Some(records), "{produced}");
    let mut source_bytes = 0usize;
    for p in 0..PARTITIONS {
        source_bytes += read_batches(&src, TOPIC, p)
            .await
            .iter()
            .map(|b| b.len())
            .sum::<usize>();
    }
    assert!(
        source_bytes > 5 * RATE as usize,
        "a backlog of several seconds at the rate"
    );

    let mut route = RouteConfig::new("limited", "src", "dst").include(&[TOPIC]);
    route.byte_rate_limit = Some(RATE);
    route.fetch_max_bytes = FETCH;
    route.max_partition_fetch_bytes = FETCH;
    route.fetch_max_wait_ms = 50;
    let audit = BatchAudit::default();
    let started = Instant::now();
    let running = start_route(&src, &dst, route, &audit).await;
    wait_caught_up(&running, Duration::from_secs(120)).await;
    let elapsed = started.elapsed();
    running.shutdown().await.expect("clean shutdown");

    // The bucket starts with one burst (one second's worth) and the last fetch may overdraw
    // it by one fetch: everything past that waited for the rate.
    let paced = source_bytes as f64 - RATE as f64 - f64::from(FETCH);
    let floor = Duration::from_secs_f64(paced / RATE as f64);
    assert!(
        elapsed >= floor,
        "{source_bytes} bytes at {RATE} B/s took {elapsed:?}, faster than the limit allows ({floor:?})"
    );
    let (_, acked, violations) = audit.summary();
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(acked, records);
    let v = kclient(&[
        "verify",
        "--source",
        &src,
        "--target",
        &dst,
        "--topic",
        TOPIC,
        "--partitions",
        "2",
    ]);
    assert_exact(&v, records);
}
