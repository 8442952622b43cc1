//! A route with 10,000 partitions starts in seconds and replicates exactly, across a clean
//! restart and a crash.
//!
//! Start-up used to cost a target Fetch per partition (restart reconciliation reads the
//! target's tail past the committed offset), and tansu holds a Fetch that finds nothing for
//! its whole `max_wait_ms` (100 ms): about 100 s per 1,000 partitions. Now start-up finds in one
//! Fetch per target broker which partitions hold anything past their committed offset, and
//! reconciles only those, many at a time with their reads coalesced (`docs/DESIGN.md` §4,
//! "Start-up at scale").
//!
//! One test, three starts of the same route, each preceded by writes to a different spread of
//! partitions (some partitions are written in every round):
//!
//! 1. fresh: the target topic does not exist yet;
//! 2. after a clean shutdown: nothing past the committed offsets, nothing to reconcile;
//! 3. after a crash (the route of start 2 never committed): every partition written in round 2
//!    holds batches past its committed offset, which start 3 must find and not write again.
//!
//! After each start the target must hold exactly the source's records, partition by partition
//! (high watermarks of all partitions, and every record's value, in order, where there is data).
//!
//! `KFERRY_MANY_PARTITIONS` sets the partition count (default 10,000), e.g. to measure start-up
//! at other sizes:
//! `KFERRY_MANY_PARTITIONS=2000 cargo test --test many_partitions -- --nocapture`.
//! `KFERRY_MANY_CRASH_ALL=1` makes the crashed run write to every partition (see [`round_plan`]).

mod common;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Broker;
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::{Decodable, Request};
use kferry::batch::{decode_batch, BatchBuilder, BlobIter, FetchedEntry};
use kferry::wire::fetch::{fetch, FetchParams, PartitionFetch};
use kferry::wire::produce::{PartitionBatch, ProduceRequestFrame, PRODUCE_MAX_VERSION};
use kferry::wire::{Cluster, ClusterConfig, NewTopic, Purpose};
use kferry::{RouteConfig, Running};
use support::{now_ms, start_route, wait_caught_up, BatchAudit};

const TOPIC: &str = "many";

/// The bound on one route start at 10,000 partitions (scaled linearly for other counts, never
/// below 10 s). What start-up does at this size, measured on a 2-core machine in a debug build:
/// Metadata, CreateTopics (fresh start only), DescribeConfigs, two OffsetFetch, two ListOffsets
/// and one Fetch of 10,000 partitions to tansu, each well under 0.5 s, plus the reconciliation
/// of the partitions written in the crashed run. The three starts measured 0.5 to 2.5 s. 30 s leaves
/// room for a loaded CI machine and still fails by far for any per-partition round trip: one
/// 100 ms Fetch per partition costs 1,000 s.
const START_BOUND_AT_10K: Duration = Duration::from_secs(30);

fn partition_count() -> i32 {
    std::env::var("KFERRY_MANY_PARTITIONS")
        .ok()
        .map(|v| v.parse().expect("KFERRY_MANY_PARTITIONS is a number"))
        .unwrap_or(10_000)
}

fn start_bound(partitions: i32) -> Duration {
    START_BOUND_AT_10K
        .mul_f64(f64::from(partitions) / 10_000.0)
        .max(Duration::from_secs(10))
}

/// The batches written before start `round` (1 to 3): (partition, records per batch) for each
/// batch, in order. Every 40th partition (shifted by 11 each round, so rounds differ) and every
/// partition `7 mod 400` (written in every round) get 1 to 3 batches of 1 to 4 records.
/// With `KFERRY_MANY_CRASH_ALL` set, round 2 (the run that crashes) writes one batch to every
/// partition instead: every partition then has a tail to match at start 3.
fn round_plan(round: i32, partitions: i32) -> Vec<(i32, usize)> {
    if round == 2 && std::env::var_os("KFERRY_MANY_CRASH_ALL").is_some() {
        return (0..partitions).map(|p| (p, 1 + (p % 4) as usize)).collect();
    }
    let mut plan = Vec::new();
    for p in (0..partitions).filter(|p| (p + 11 * round) % 40 == 0 || p % 400 == 7) {
        for _ in 0..1 + (p + round) % 3 {
            plan.push((p, 1 + (p % 4) as usize));
        }
    }
    plan
}

fn route(commit_interval: Duration) -> RouteConfig {
    let mut route = RouteConfig::new("many", "src", "dst").include(&[TOPIC]);
    route.group_id = "kferry-many".to_string();
    route.commit_interval = commit_interval;
    route
}

/// One connection's worth of bulk reads and writes of the test topic: one request per broker
/// for many partitions (the per-partition helpers in `support` open a connection each).
struct Bulk {
    cluster: Cluster,
}

impl Bulk {
    async fn connect(bootstrap: &str) -> Bulk {
        let cluster = Cluster::new(ClusterConfig::new("bulk", vec![bootstrap.to_string()]));
        cluster.refresh_metadata(None).await.expect("metadata");
        Bulk { cluster }
    }

    async fn create_topic(&self, partitions: i32) {
        let topic = NewTopic {
            name: TOPIC.to_string(),
            partitions,
            replication_factor: -1,
            configs: Vec::new(),
        };
        self.cluster.create_topics(&[topic]).await.expect("create topic");
        let meta = self.cluster.refresh_metadata(None).await.expect("metadata");
        assert_eq!(meta.topics[TOPIC].partitions.len(), partitions as usize);
    }

    /// Partitions grouped by their leader.
    async fn by_leader(&self, partitions: impl Iterator<Item = i32>) -> HashMap<i32, Vec<i32>> {
        let meta = self.cluster.refresh_metadata(None).await.expect("metadata");
        let mut out: HashMap<i32, Vec<i32>> = HashMap::new();
        for p in partitions {
            out.entry(meta.leader(TOPIC, p).expect("leader")).or_default().push(p);
        }
        out
    }

    /// Writes the batches of `plan` (one Produce per broker for each batch position, acks -1)
    /// and returns the values written, per partition, in order.
    async fn produce(&self, round: i32, plan: &[(i32, usize)]) -> BTreeMap<i32, Vec<String>> {
        let mut written: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        // Kafka takes one batch per partition per request: request k carries each partition's k-th.
        let mut requests: Vec<Vec<(i32, usize)>> = Vec::new();
        let mut nth: HashMap<i32, usize> = HashMap::new();
        for &(p, records) in plan {
            let k = nth.entry(p).or_default();
            if requests.len() <= *k {
                requests.push(Vec::new());
            }
            requests[*k].push((p, records));
            *k += 1;
        }
        for (k, request) in requests.iter().enumerate() {
            let mut batches: HashMap<i32, Vec<PartitionBatch>> = HashMap::new();
            let leaders = self.by_leader(request.iter().map(|(p, _)| *p)).await;
            let leader_of: HashMap<i32, i32> = leaders
                .iter()
                .flat_map(|(l, ps)| ps.iter().map(move |p| (*p, *l)))
                .collect();
            for &(p, records) in request {
                let values: Vec<String> = (0..records).map(|i| format!("r{round}-p{p}-b{k}-i{i}")).collect();
                let now = now_ms();
                let builder = BatchBuilder::new().base_timestamp(now).max_timestamp(now);
                let batch = values
                    .iter()
                    .fold(builder, |b, v| b.value(v.clone().into_bytes()))
                    .build();
                written.entry(p).or_default().extend(values);
                batches.entry(leader_of[&p]).or_default().push(PartitionBatch {
                    partition: p,
                    header: *batch.header(),
                    payload: batch.payload(),
                });
            }
            for (leader, batches) in batches {
                self.produce_to(leader, batches).await;
            }
        }
        written
    }

    async fn produce_to(&self, leader: i32, batches: Vec<PartitionBatch>) {
        let conn = self.cluster.broker(leader, Purpose::Produce).await.expect("connect");
        let version = conn
            .version_for::<ProduceRequest>(PRODUCE_MAX_VERSION)
            .expect("version");
        let frame = ProduceRequestFrame {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topics: vec![(TOPIC, batches)],
        };
        let mut body = conn
            .send(ProduceRequest::KEY, version, frame.encode(version))
            .await
            .expect("produce");
        let response = ProduceResponse::decode(&mut body, version).expect("produce response");
        for p in response.responses.iter().flat_map(|t| t.partition_responses.iter()) {
            assert_eq!(p.error_code, 0, "produce to {TOPIC}-{}", p.index);
        }
    }

    async fn fetch_from(&self, leader: i32, from: &[(i32, i64)], max_bytes: i32) -> Vec<(i32, i64, Bytes)> {
        let meta = self.cluster.metadata();
        let topic_id = meta.topics[TOPIC].id;
        let conn = self.cluster.broker(leader, Purpose::Fetch).await.expect("connect");
        let requests: Vec<PartitionFetch> = from
            .iter()
            .map(|&(partition, fetch_offset)| PartitionFetch {
                topic: TOPIC.to_string(),
                topic_id,
                partition,
                fetch_offset,
                partition_max_bytes: max_bytes,
            })
            .collect();
        let params = FetchParams {
            max_wait_ms: 10,
            min_bytes: 1,
            max_bytes,
            isolation_level: 0,
        };
        let fetched = fetch(&conn, params, &requests).await.expect("fetch");
        fetched
            .into_iter()
            .map(|f| {
                assert_eq!(f.error_code, 0, "fetch {TOPIC}-{}", f.partition);
                (f.partition, f.high_watermark, f.records)
            })
            .collect()
    }

    /// The high watermark of every partition, from one Fetch per broker.
    async fn high_watermarks(&self, partitions: i32) -> Vec<i64> {
        let mut hw = vec![-1; partitions as usize];
        for (leader, parts) in self.by_leader(0..partitions).await {
            let from: Vec<(i32, i64)> = parts.iter().map(|&p| (p, 0)).collect();
            for (p, h, _) in self.fetch_from(leader, &from, 1).await {
                hw[p as usize] = h;
            }
        }
        assert!(
            hw.iter().all(|&h| h >= 0),
            "a partition is missing from the Fetch answers"
        );
        hw
    }

    /// Every record value of the given partitions, in order, read up to `ends`.
    async fn values(&self, ends: &BTreeMap<i32, i64>) -> BTreeMap<i32, Vec<String>> {
        let mut next: BTreeMap<i32, i64> = ends.keys().map(|&p| (p, 0)).collect();
        let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for _ in 0..1000 {
            let pending: Vec<i32> = next.iter().filter(|(p, n)| **n < ends[p]).map(|(p, _)| *p).collect();
            if pending.is_empty() {
                return out;
            }
            for (leader, parts) in self.by_leader(pending.into_iter()).await {
                let from: Vec<(i32, i64)> = parts.iter().map(|p| (*p, next[p])).collect();
                for (p, _, records) in self.fetch_from(leader, &from, 4 << 20).await {
                    for entry in BlobIter::new(records, next[&p]) {
                        let FetchedEntry::Batch(b) = entry.expect("well-formed batch") else {
                            panic!("{TOPIC}-{p}: unexpected entry");
                        };
                        let records = decode_batch(&b, 1 << 20).expect("decodable batch");
                        out.entry(p).or_default().extend(
                            records
                                .iter()
                                .map(|r| String::from_utf8(r.value.clone().expect("a value").to_vec()).expect("utf-8")),
                        );
                        next.insert(p, b.next_offset());
                    }
                }
            }
        }
        panic!("reading the target did not finish: {next:?} of {ends:?}");
    }
}

/// The target holds exactly `expected`: every partition's high watermark is its record count
/// (kferry writes no control batches), and partitions with data carry the same values in order.
async fn assert_target_exact(target: &Bulk, partitions: i32, expected: &BTreeMap<i32, Vec<String>>) {
    let hw = target.high_watermarks(partitions).await;
    for (p, &h) in hw.iter().enumerate() {
        let want = expected.get(&(p as i32)).map_or(0, Vec::len) as i64;
        assert_eq!(h, want, "{TOPIC}-{p}: records on the target");
    }
    let ends: BTreeMap<i32, i64> = expected.iter().map(|(p, v)| (*p, v.len() as i64)).collect();
    let values = target.values(&ends).await;
    assert_eq!(&values, expected, "record values on the target");
}

/// Starts the route; returns it with the time `start()` took.
async fn timed_start(src: &str, dst: &str, route: RouteConfig, audit: &BatchAudit) -> (Running, Duration) {
    let t = Instant::now();
    let running = start_route(src, dst, route, audit).await;
    (running, t.elapsed())
}

fn resumed_batches(running: &Running) -> usize {
    running.routes().iter().map(|r| r.resumed_batches()).sum()
}

fn merge(expected: &mut BTreeMap<i32, Vec<String>>, written: BTreeMap<i32, Vec<String>>) {
    for (p, values) in written {
        expected.entry(p).or_default().extend(values);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_partitions_start_in_seconds_and_replicate_exactly() {
    let partitions = partition_count();
    let bound = start_bound(partitions);
    let source = Broker::start_memory("many-src");
    let target = Broker::start_memory("many-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let t = Instant::now();
    let source_client = Bulk::connect(&src).await;
    source_client.create_topic(partitions).await;
    println!("created {TOPIC} with {partitions} partitions in {:?}", t.elapsed());
    let audit = BatchAudit::default();
    let mut expected = BTreeMap::new();
    let mut starts = Vec::new();

    // 1. Fresh start: kferry creates the target topic.
    let plan = round_plan(1, partitions);
    merge(&mut expected, source_client.produce(1, &plan).await);
    let (running, took) = timed_start(&src, &dst, route(Duration::from_secs(1)), &audit).await;
    println!(
        "start 1 (fresh target), {partitions} partitions: {took:?}; {} batches written to {} partitions",
        plan.len(),
        expected.len()
    );
    starts.push(took);
    assert!(took < bound, "fresh start took {took:?}, bound {bound:?}");
    wait_caught_up(&running, Duration::from_secs(120)).await;
    let target_client = Bulk::connect(&dst).await;
    assert_target_exact(&target_client, partitions, &expected).await;
    running.shutdown().await.expect("clean shutdown");

    // 2. Restart after a clean shutdown, with more data: nothing to reconcile.
    let plan = round_plan(2, partitions);
    merge(&mut expected, source_client.produce(2, &plan).await);
    // This run never commits: it "crashes" below with its batches on the target.
    let (running, took) = timed_start(&src, &dst, route(Duration::from_secs(3600)), &audit).await;
    println!("start 2 (after a clean shutdown), {partitions} partitions: {took:?}");
    starts.push(took);
    assert!(took < bound, "restart took {took:?}, bound {bound:?}");
    assert_eq!(
        resumed_batches(&running),
        0,
        "a clean shutdown leaves nothing to reconcile"
    );
    wait_caught_up(&running, Duration::from_secs(120)).await;
    assert_target_exact(&target_client, partitions, &expected).await;
    let crashed_batches = plan.len();
    drop(running);

    // 3. Restart after a crash: round 2's batches are on the target, past the committed offsets
    //    of the partitions they went to; the restart must find every one of them.
    let plan = round_plan(3, partitions);
    merge(&mut expected, source_client.produce(3, &plan).await);
    let (running, took) = timed_start(&src, &dst, route(Duration::from_secs(1)), &audit).await;
    println!(
        "start 3 (after a crash, {crashed_batches} batches past the committed offsets), {partitions} partitions: {took:?}"
    );
    starts.push(took);
    assert!(took < bound, "restart after a crash took {took:?}, bound {bound:?}");
    assert_eq!(
        resumed_batches(&running),
        crashed_batches,
        "every batch of the crashed run is found on the target"
    );
    wait_caught_up(&running, Duration::from_secs(120)).await;
    running.shutdown().await.expect("clean shutdown");
    assert_target_exact(&target_client, partitions, &expected).await;

    let (batches, records, violations) = audit.summary();
    assert!(violations.is_empty(), "strict validator: {violations:#?}");
    let written: usize = expected.values().map(Vec::len).sum();
    assert_eq!(
        records as usize, written,
        "records forwarded, over the three runs ({batches} batches)"
    );
    println!("start times with {partitions} partitions: {starts:?}");
}
