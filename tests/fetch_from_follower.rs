//! Fetching from the closest replica (KIP-392) end to end: kferry with `client.rack` against
//! the FAKE source broker advertising a leader (node 0) and a follower (node 1, a second port,
//! in rack "rack-b"), replicating to a real tansu target.
//!
//! - Every fetcher Fetch carries `rack_id` = "rack-b".
//! - The leader answers "rack-b" with `preferred_read_replica` 1 and no records: every record
//!   then comes from the follower.
//! - When the follower fails (NOT_LEADER_OR_FOLLOWER, then, after healing, OFFSET_OUT_OF_RANGE
//!   as from a lagging follower), fetching falls back to the leader, which serves the rest;
//!   once the follower heals the leader points at it again.
//!
//! Every batch kferry sends passes the strict validator (`BatchAudit`); the target is read back
//! record by record: nothing lost, nothing duplicated, and the committed offsets are the log ends.

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Broker;
use kafka_protocol::error::ResponseError;
use kferry::batch::decode_batch;
use kferry::{ClusterConfig, RouteConfig, Running};
use kferry_protocol_tests::craft::CraftedBatch;
use kferry_protocol_tests::fake::{FakeBroker, FakeOptions, FOLLOWER_ID};
use support::BatchAudit;

const TOPIC: &str = "follower";
const RACK: &str = "rack-b";
const PARTITIONS: i32 = 3;

struct Source {
    fake: FakeBroker,
    /// partition -> every value appended, in offset order (offset = index).
    logs: BTreeMap<i32, Vec<String>>,
}

impl Source {
    async fn start() -> Source {
        let fake = FakeBroker::start_with(FakeOptions {
            follower_rack: Some(RACK.to_string()),
            ..FakeOptions::default()
        })
        .await
        .unwrap();
        fake.create_topic(TOPIC, PARTITIONS);
        Source {
            fake,
            logs: BTreeMap::new(),
        }
    }

    /// Appends one v2 batch of `n` records to every partition.
    fn append(&mut self, n: usize) {
        for p in 0..PARTITIONS {
            let log = self.logs.entry(p).or_default();
            let base = log.len() as i64;
            let values: Vec<String> = (0..n).map(|i| format!("p{p}-{}", base + i as i64)).collect();
            let records: Vec<(&[u8], &[u8])> = values.iter().map(|v| (v.as_bytes(), v.as_bytes())).collect();
            let batch = CraftedBatch::keyed(base, support::now_ms(), &records);
            self.fake.append(TOPIC, p, &batch.encode());
            log.extend(values);
        }
    }

    /// Waits until kferry has acknowledged every record appended.
    async fn wait_replicated(&self, running: &Running) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(running.errors().is_empty(), "{:?}", running.errors());
            let status = running.status();
            let done = self.logs.iter().all(|(&p, log)| {
                status
                    .iter()
                    .any(|(_, s)| s.partition == p && s.acked.source_next == log.len() as i64)
            });
            if done {
                return;
            }
            assert!(Instant::now() < deadline, "not replicated in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Partitions with records each node returned to the fetchers so far (epoch >= 0: not
    /// reconciliation's sessionless reads): (node 0, node 1).
    fn records_by_node(&self) -> (usize, usize) {
        let mut by_node = (0, 0);
        for r in self.fake.requests() {
            let Some(f) = r.fetch.filter(|f| f.epoch >= 0) else {
                continue;
            };
            match r.node {
                FOLLOWER_ID => by_node.1 += f.response_with_records,
                _ => by_node.0 += f.response_with_records,
            }
        }
        by_node
    }

    /// Appends a batch to every partition, waits for them, and says from which nodes they
    /// came. (The fake applies a failure or a healing to long polls already waiting, so
    /// whatever is answered after the change follows it.)
    async fn round(&mut self, running: &Running) -> (usize, usize) {
        let before = self.records_by_node();
        self.append(4);
        self.wait_replicated(running).await;
        let after = self.records_by_node();
        (after.0 - before.0, after.1 - before.1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_follow_the_preferred_replica_and_fall_back_to_the_leader() {
    let mut source = Source::start().await;
    let target = Broker::start_memory("follower-dst");
    let audit = BatchAudit::default();
    let observer = audit.clone();
    let mut src = ClusterConfig::new("fake-src", vec![source.fake.bootstrap()]);
    src.client_rack = RACK.to_string();
    let running = kferry::Replicator::builder()
        .cluster(src)
        .cluster(ClusterConfig::new("dst", vec![target.bootstrap()]))
        .route(RouteConfig::new("follower", "fake-src", "dst").include(&[TOPIC]))
        .on_batch(move |b| observer.observe(b))
        .build()
        .unwrap()
        .start()
        .await
        .expect("route starts");
    support::wait_caught_up(&running, Duration::from_secs(60)).await;

    // The leader redirects: everything comes from the follower.
    let (leader, follower) = source.round(&running).await;
    assert_eq!((leader, follower), (0, PARTITIONS as usize), "healthy follower");

    // The follower fails: back to the leader, which serves the rest.
    source.fake.fail_follower(ResponseError::NotLeaderOrFollower.code());
    let (leader, follower) = source.round(&running).await;
    assert_eq!(
        (leader, follower),
        (PARTITIONS as usize, 0),
        "after NOT_LEADER_OR_FOLLOWER"
    );

    // Healed: the leader points at it again.
    source.fake.fail_follower(0);
    let (leader, follower) = source.round(&running).await;
    assert_eq!((leader, follower), (0, PARTITIONS as usize), "healed follower");

    // A lagging follower's OFFSET_OUT_OF_RANGE is not fatal: the leader serves.
    source.fake.fail_follower(ResponseError::OffsetOutOfRange.code());
    let (leader, follower) = source.round(&running).await;
    assert_eq!(
        (leader, follower),
        (PARTITIONS as usize, 0),
        "after OFFSET_OUT_OF_RANGE"
    );

    let requests = source.fake.requests();
    running.shutdown().await.expect("clean shutdown");

    // Every fetcher Fetch names the rack; reconciliation's reads (epoch -1) need not.
    let fetcher: Vec<_> = requests
        .iter()
        .filter(|r| r.fetch.is_some_and(|f| f.epoch >= 0))
        .collect();
    assert!(fetcher.iter().any(|r| r.node == FOLLOWER_ID));
    for r in &fetcher {
        assert_eq!(r.rack_id.as_deref(), Some(RACK), "{r:?}");
    }

    let (_, records, violations) = audit.summary();
    assert!(violations.is_empty(), "strict validator: {violations:#?}");
    assert_eq!(records, 4 * 4 * PARTITIONS as u64, "records kferry sent");
    for (&p, log) in &source.logs {
        let mut got = Vec::new();
        for batch in support::read_batches(&target.bootstrap(), TOPIC, p).await {
            for r in decode_batch(&batch, 64 << 20).expect("decodable target batch") {
                got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
        assert_eq!(&got, log, "{TOPIC}-{p}: no record lost or duplicated");
        let committed = source.fake.committed("kferry-follower", TOPIC, p).expect("committed");
        assert_eq!(committed.offset, log.len() as i64, "{TOPIC}-{p}: committed offset");
    }
}
