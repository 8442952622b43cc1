//! Truncation and recreation safety, from a FAKE source broker to a real tansu target.
//!
//! tansu 0.6 cannot delete records (its DeleteRecords handler is `todo!()` and it has no
//! retention-based deletion) nor truncate a log, so the source here is
//! `kferry_protocol_tests::fake`, where the log start offset can be moved (retention) and a
//! log truncated under a new leader epoch (an unclean election, KIP-320). The target is a real
//! tansu broker, read back with the independent client (`tests/client/kclient.py`,
//! confluent-kafka with `check.crcs`).
//!
//! kferry must never skip silently: retention passing its position stops the partition with
//! the exact number of offsets lost (`on.data.loss = "fail"`), or goes on from the log start
//! and counts them (`"resume-earliest"`); a truncated or diverged source log stops it.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::{kclient, Broker};
use kferry::replicate::DataLossPolicy;
use kferry::{ClusterConfig, PartitionStatus, RouteConfig, Running};
use kferry_protocol_tests::craft::CraftedBatch;
use kferry_protocol_tests::fake::FakeBroker;

const GROUP: &str = "kferry-trunc";

/// A v2 batch of `n` records at `base`, keyed `k{offset}`, written in leader epoch `epoch`.
fn batch(base: i64, n: i32, epoch: i32) -> Vec<u8> {
    let keys: Vec<String> = (0..n).map(|i| format!("k{}", base + i64::from(i))).collect();
    let records: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_bytes(), &b"value"[..])).collect();
    let mut b = CraftedBatch::keyed(base, support::now_ms(), &records);
    b.partition_leader_epoch = epoch;
    b.encode()
}

/// Batches of 10 records from `from` to `to` (multiples of 10), in leader epoch `epoch`.
fn batches(from: i64, to: i64, epoch: i32) -> Vec<u8> {
    (from..to).step_by(10).flat_map(|b| batch(b, 10, epoch)).collect()
}

async fn start(fake: &FakeBroker, target: &Broker, topic: &str, policy: DataLossPolicy) -> Running {
    let mut route = RouteConfig::new("trunc", "fake-src", "dst").include(&[topic]);
    route.group_id = GROUP.to_string();
    route.on_data_loss = policy;
    kferry::Replicator::builder()
        .cluster(ClusterConfig::new("fake-src", vec![fake.bootstrap()]))
        .cluster(ClusterConfig::new("dst", vec![target.bootstrap()]))
        .route(route)
        .build()
        .unwrap()
        .start()
        .await
        .expect("route starts")
}

fn partition0(running: &Running) -> PartitionStatus {
    running.status().into_iter().find(|(_, s)| s.partition == 0).unwrap().1
}

/// Waits until partition 0 stops with an error, and returns it.
async fn wait_error(running: &Running) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(e) = partition0(running).error {
            return e;
        }
        assert!(Instant::now() < deadline, "no error: {:#?}", running.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The keys of every record of the target partition, read by the independent client.
fn target_keys(target: &Broker, topic: &str, expect: usize) -> Vec<String> {
    let out = kclient(&[
        "consume",
        "--bootstrap",
        &target.bootstrap(),
        "--topic",
        topic,
        "--partitions",
        "1",
        "--expect",
        &expect.to_string(),
        "--timeout-s",
        "30",
    ]);
    out["partitions"]["0"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let hex = r["key"].as_str().expect("keyed record");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            String::from_utf8(bytes).unwrap()
        })
        .collect()
}

fn keys(ranges: &[(i64, i64)]) -> Vec<String> {
    ranges
        .iter()
        .flat_map(|&(a, b)| (a..b).map(|o| format!("k{o}")))
        .collect()
}

/// The acceptance test: retention passes the committed position while kferry is stopped.
/// `fail` stops the partition saying exactly how many offsets were lost; `resume-earliest`
/// replicates everything that is left, and counts exactly the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_past_the_position_fails_or_resumes_at_the_log_start() {
    let fake = FakeBroker::start().await.unwrap();
    let topic = "trunc.retention";
    fake.create_topic(topic, 1);
    fake.append(topic, 0, &batches(0, 30, 0));
    let target = Broker::start_memory("trunc-retention-dst");

    let running = start(&fake, &target, topic, DataLossPolicy::Fail).await;
    support::wait_caught_up(&running, Duration::from_secs(60)).await;
    running.shutdown().await.expect("clean shutdown");
    assert_eq!(fake.committed(GROUP, topic, 0).unwrap().offset, 30);

    // While kferry is stopped: 30 more records, and retention deletes up to offset 50.
    fake.append(topic, 0, &batches(30, 60, 0));
    fake.set_log_start_offset(topic, 0, 50);

    let running = start(&fake, &target, topic, DataLossPolicy::Fail).await;
    let error = wait_error(&running).await;
    assert!(
        error.contains(
            "source log start offset 50 passed replicated position 30: 20 offsets were deleted before they were replicated (on.data.loss=fail)"
        ),
        "{error}"
    );
    assert!(error.contains("route 'trunc'") && error.contains("'fake-src'") && error.contains(&format!("{topic}-0")));
    let status = partition0(&running);
    assert_eq!(status.acked.source_next, 30, "nothing skipped");
    assert_eq!(status.lost_offsets, 0);
    assert_eq!(status.lag.log_start_offset, 50);
    assert_eq!(status.lag.retention_margin_offsets, Some(0));
    running.shutdown().await.expect("clean shutdown");
    assert_eq!(fake.committed(GROUP, topic, 0).unwrap().offset, 30);

    let running = start(&fake, &target, topic, DataLossPolicy::ResumeEarliest).await;
    support::wait_caught_up(&running, Duration::from_secs(60)).await;
    let status = partition0(&running);
    assert_eq!(status.lost_offsets, 20, "the counter equals the gap");
    assert_eq!(status.acked.source_next, 60);
    assert_eq!(status.error, None);
    assert_eq!(status.lag.time_lag_ms, Some(0), "caught up");
    assert_eq!(status.lag.bytes_behind, Some(0), "caught up");
    assert_eq!(status.lag.retention_margin_offsets, Some(10));
    assert!(status.lag.retention_margin_bytes.unwrap() > 0, "{:?}", status.lag);
    running.shutdown().await.expect("clean shutdown");
    assert_eq!(
        fake.committed(GROUP, topic, 0).unwrap().offset,
        60,
        "the committed progress moved past the gap"
    );
    assert_eq!(target_keys(&target, topic, 40), keys(&[(0, 30), (50, 60)]));
}

/// resume-earliest while running: the log start passes the position between two fetches
/// (records appended and deleted at once); the partition goes on and counts the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_earliest_while_running_counts_the_gap() {
    let fake = FakeBroker::start().await.unwrap();
    let topic = "trunc.live";
    fake.create_topic(topic, 1);
    fake.append(topic, 0, &batches(0, 20, 0));
    let target = Broker::start_memory("trunc-live-dst");
    let running = start(&fake, &target, topic, DataLossPolicy::ResumeEarliest).await;
    support::wait_caught_up(&running, Duration::from_secs(60)).await;
    // Offsets 20..50 are deleted before kferry can fetch them: pin the high watermark so
    // kferry does not see them, move the log start, then release.
    fake.set_high_watermark(topic, 0, 20);
    fake.append(topic, 0, &batches(20, 70, 0));
    fake.set_log_start_offset(topic, 0, 50);
    fake.set_high_watermark(topic, 0, 70);
    let deadline = Instant::now() + Duration::from_secs(60);
    while partition0(&running).acked.source_next < 70 {
        assert!(Instant::now() < deadline, "{:#?}", running.status());
        assert!(running.errors().is_empty(), "{:?}", running.errors());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(partition0(&running).lost_offsets, 30);
    running.shutdown().await.expect("clean shutdown");
    assert_eq!(fake.committed(GROUP, topic, 0).unwrap().offset, 70);
    assert_eq!(target_keys(&target, topic, 40), keys(&[(0, 20), (50, 70)]));
}

/// KIP-320: kferry sends the leader epoch of the last batch it fetched; the source log is
/// cut back below kferry's position and rewritten in a new epoch (an unclean election). The
/// leader answers with a diverging epoch, and the partition stops naming the diverged
/// offsets instead of replicating the new epoch's records as if nothing happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverging_epoch_stops_the_partition_with_the_diverged_count() {
    let fake = FakeBroker::start().await.unwrap();
    let topic = "trunc.diverged";
    fake.create_topic(topic, 1);
    fake.append(topic, 0, &batches(0, 30, 0));
    let target = Broker::start_memory("trunc-diverged-dst");
    let running = start(&fake, &target, topic, DataLossPolicy::ResumeEarliest).await;
    support::wait_caught_up(&running, Duration::from_secs(60)).await;

    fake.truncate(topic, 0, 20);
    fake.append(topic, 0, &batches(20, 50, 1));
    let error = wait_error(&running).await;
    assert!(error.contains("diverged (KIP-320)"), "{error}");
    assert!(
        error.contains("leader epoch 0 ends at offset 20, below the replicated position 30, so 10 offsets (20..30)"),
        "{error}"
    );
    assert!(error.contains(&format!("{topic}-0")), "{error}");
    let status = partition0(&running);
    assert_eq!((status.acked.source_next, status.lost_offsets), (30, 0));
    running.shutdown().await.expect("clean shutdown");
    assert_eq!(
        target_keys(&target, topic, 30),
        keys(&[(0, 30)]),
        "nothing of the new epoch replicated"
    );
}

/// A source log truncated below the position when batches carry no leader epoch (-1, so
/// none is sent): OFFSET_OUT_OF_RANGE past the high watermark stops the partition with the
/// count, whatever on.data.loss says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_without_epochs_stops_the_partition_with_the_count() {
    let fake = FakeBroker::start().await.unwrap();
    let topic = "trunc.noepoch";
    fake.create_topic(topic, 1);
    fake.append(topic, 0, &batches(0, 30, -1));
    let target = Broker::start_memory("trunc-noepoch-dst");
    let running = start(&fake, &target, topic, DataLossPolicy::ResumeEarliest).await;
    support::wait_caught_up(&running, Duration::from_secs(60)).await;
    fake.truncate(topic, 0, 10);
    let error = wait_error(&running).await;
    assert!(
        error.contains("fetch offset 30 is past the high watermark 10, so 20 offsets replicated earlier are no longer in the source log"),
        "{error}"
    );
    assert_eq!(partition0(&running).acked.source_next, 30);
    running.shutdown().await.expect("clean shutdown");
}

/// The source topic is deleted and created again (new topic id) under kferry: the partition
/// stops, saying so and naming the position, rather than replicating the new topic's records
/// after the old one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_stops_the_partition() {
    let fake = FakeBroker::start().await.unwrap();
    let topic = "trunc.recreated";
    fake.create_topic(topic, 1);
    fake.append(topic, 0, &batches(0, 30, 0));
    let target = Broker::start_memory("trunc-recreated-dst");
    let running = start(&fake, &target, topic, DataLossPolicy::ResumeEarliest).await;
    support::wait_caught_up(&running, Duration::from_secs(60)).await;
    fake.create_topic(topic, 1);
    fake.append(topic, 0, &batches(0, 40, 0));
    let error = wait_error(&running).await;
    assert!(
        error.contains("the topic was deleted and created again (its topic id changed)"),
        "{error}"
    );
    assert!(
        error.contains("replication stopped at offset 30 (acknowledged up to 30)"),
        "{error}"
    );
    running.shutdown().await.expect("clean shutdown");
    assert_eq!(target_keys(&target, topic, 30), keys(&[(0, 30)]));
}
