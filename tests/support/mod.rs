//! Helpers shared by kferry's integration tests that use kferry's own library
//! (the broker and client harness, independent of kferry, is in `tests/common`).

#![allow(dead_code)]

pub mod daemon;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kferry::batch::{BlobIter, FetchedEntry, RecordBatch};
use kferry::wire::fetch::{fetch, FetchParams, PartitionFetch};
use kferry::wire::{Cluster, ClusterConfig, Purpose};
use kferry::{ForwardedBatch, Running};
use kferry_protocol_tests::{validate_produced_batch, Expect};

/// Every batch of a partition, control batches included, read raw with kferry's wire client.
pub async fn read_batches(bootstrap: &str, topic: &str, partition: i32) -> Vec<RecordBatch> {
    let cluster = Cluster::new(ClusterConfig::new("raw-reader", vec![bootstrap.to_string()]));
    let meta = cluster.refresh_metadata(None).await.expect("metadata");
    let leader = meta.leader(topic, partition).expect("leader");
    let topic_id = meta.topics[topic].id;
    let conn = cluster.broker(leader, Purpose::Control).await.expect("connect");
    let end = watermarks(bootstrap, topic, partition).await.1;
    let params = FetchParams {
        max_wait_ms: 200,
        min_bytes: 1,
        max_bytes: 32 << 20,
        isolation_level: 0,
    };
    let mut out = Vec::new();
    let mut next = 0;
    while next < end {
        let req = PartitionFetch {
            topic: topic.into(),
            topic_id,
            partition,
            fetch_offset: next,
            partition_max_bytes: 8 << 20,
        };
        let fetched = fetch(&conn, params, &[req]).await.expect("fetch").remove(0);
        assert_eq!(fetched.error_code, 0, "fetch {topic}-{partition} at {next}");
        let before = next;
        for entry in BlobIter::new(fetched.records, next) {
            match entry.expect("well-formed batch") {
                FetchedEntry::Batch(b) => {
                    next = b.next_offset();
                    out.push(b);
                }
                other => panic!("unexpected entry {other:?}"),
            }
        }
        assert!(next > before, "no progress reading {topic}-{partition} at {next}");
    }
    out
}

/// (log start, high watermark) of a partition, the high watermark taken from a Fetch response;
/// (0, 0) while the partition does not exist.
pub async fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let cluster = Cluster::new(ClusterConfig::new("watermarks", vec![bootstrap.to_string()]));
    let meta = cluster.refresh_metadata(None).await.expect("metadata");
    let Some(leader) = meta.leader(topic, partition) else {
        return (0, 0);
    };
    let conn = cluster.broker(leader, Purpose::Control).await.expect("connect");
    let start = cluster
        .list_offsets(topic, &[partition], kferry::wire::EARLIEST)
        .await
        .expect("earliest")[&partition];
    let params = FetchParams {
        max_wait_ms: 10,
        min_bytes: 1,
        max_bytes: 1,
        isolation_level: 0,
    };
    let req = PartitionFetch {
        topic: topic.into(),
        topic_id: meta.topics[topic].id,
        partition,
        fetch_offset: start,
        partition_max_bytes: 1,
    };
    let fetched = fetch(&conn, params, &[req]).await.expect("fetch").remove(0);
    (start, fetched.high_watermark)
}

/// Asserts that the data batches of the target partition carry byte-for-byte the payloads
/// of the source's data batches, in order. Returns how many batches were compared.
pub async fn assert_payloads_untouched(source: &str, target: &str, topic: &str, partition: i32) -> usize {
    let src: Vec<RecordBatch> = read_batches(source, topic, partition)
        .await
        .into_iter()
        .filter(|b| !b.attributes().is_control() && b.record_count() > 0)
        .collect();
    let dst = read_batches(target, topic, partition).await;
    assert_eq!(
        src.len(),
        dst.len(),
        "{topic}-{partition}: batch count source vs target"
    );
    for (i, (s, d)) in src.iter().zip(&dst).enumerate() {
        assert_eq!(
            s.record_count(),
            d.record_count(),
            "{topic}-{partition} batch {i}: record count"
        );
        assert_eq!(s.compression(), d.compression(), "{topic}-{partition} batch {i}: codec");
        assert!(
            s.payload() == d.payload(),
            "{topic}-{partition} batch {i}: payload after the 61-byte header differs"
        );
    }
    src.len()
}

/// Checks every acknowledged batch with the strict validator, including that producer id,
/// epoch and sequence follow the sequence kferry must have assigned.
#[derive(Clone, Default)]
pub struct BatchAudit {
    inner: Arc<Mutex<AuditState>>,
}

#[derive(Default)]
struct AuditState {
    /// (topic, partition) -> (producer id, epoch, next expected sequence)
    sequences: HashMap<(String, i32), (i64, i16, i32)>,
    pub batches: u64,
    pub records: u64,
    pub violations: Vec<String>,
}

impl BatchAudit {
    /// The hook to pass to `ReplicatorBuilder::on_batch`.
    pub fn observe(&self, b: &ForwardedBatch<'_>) {
        let mut bytes = b.header.to_vec();
        bytes.extend_from_slice(b.payload);
        let pid = i64::from_be_bytes(b.header[43..51].try_into().unwrap());
        let epoch = i16::from_be_bytes(b.header[51..53].try_into().unwrap());
        let mut st = self.inner.lock().unwrap();
        let key = (b.target_topic.to_string(), b.partition);
        let expected_seq = match st.sequences.get(&key) {
            Some((p, e, next)) if *p == pid && *e == epoch => *next,
            _ => 0, // a new producer id starts at sequence 0
        };
        let expect = Expect {
            producer_id: None,
            producer_epoch: None,
            base_sequence: Some(expected_seq),
        };
        match validate_produced_batch(&bytes, &expect) {
            Ok(summary) => {
                st.records += summary.records.len() as u64;
                if summary.record_count != b.record_count {
                    st.violations
                        .push(format!("{key:?}: hook count {} != batch count", b.record_count));
                }
            }
            Err(v) => st
                .violations
                .push(format!("{key:?} source offset {}: {v}", b.source_base_offset)),
        }
        if pid < 0 {
            st.violations.push(format!("{key:?}: batch sent without a producer id"));
        }
        st.batches += 1;
        st.sequences
            .insert(key, (pid, epoch, expected_seq.wrapping_add(b.record_count)));
    }

    /// (batches, records, violations) seen so far.
    pub fn summary(&self) -> (u64, u64, Vec<String>) {
        let st = self.inner.lock().unwrap();
        (st.batches, st.records, st.violations.clone())
    }
}

/// Replicates the topics matching `include` from `src` to `dst` until caught up, checking
/// every batch with `audit`, then shuts down cleanly.
pub async fn replicate_until_caught_up(src: &str, dst: &str, include: &[&str], audit: &BatchAudit) {
    replicate_until_caught_up_counted(src, dst, include, audit).await;
}

/// Waits until the replicator has caught up with every source partition.
pub async fn wait_caught_up(running: &Running, timeout: Duration) {
    let start = Instant::now();
    while !running.caught_up() {
        assert!(
            running.errors().is_empty(),
            "replication errors: {:?}",
            running.errors()
        );
        assert!(
            start.elapsed() < timeout,
            "not caught up after {timeout:?}: {:?}",
            running.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------------ raw batches, path counters
// (transactions.rs, batch_shapes.rs, corruption.rs, e2e_codecs.rs)

/// Milliseconds since the Unix epoch, for batches written raw (old timestamps may be
/// deleted by time-based retention).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Produces `batch` exactly as given (header and payload untouched, nothing validated on
/// our side) to `topic`-`partition`, acks -1. Returns (error code, base offset assigned).
pub async fn produce_raw(bootstrap: &str, topic: &str, partition: i32, batch: &RecordBatch) -> (i16, i64) {
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    use kafka_protocol::protocol::{Decodable, Request};
    use kferry::wire::produce::{PartitionBatch, ProduceRequestFrame, PRODUCE_MAX_VERSION};

    let cluster = Cluster::new(ClusterConfig::new("raw-producer", vec![bootstrap.to_string()]));
    let meta = cluster.refresh_metadata(None).await.expect("metadata");
    let leader = meta.leader(topic, partition).expect("leader");
    let conn = cluster.broker(leader, Purpose::Produce).await.expect("connect");
    let version = conn
        .version_for::<ProduceRequest>(PRODUCE_MAX_VERSION)
        .expect("produce version");
    let frame = ProduceRequestFrame {
        transactional_id: None,
        acks: -1,
        timeout_ms: 10_000,
        topics: vec![(
            topic,
            vec![PartitionBatch {
                partition,
                header: *batch.header(),
                payload: batch.payload(),
            }],
        )],
    };
    let mut body = conn
        .send(ProduceRequest::KEY, version, frame.encode(version))
        .await
        .expect("produce round trip");
    let response = ProduceResponse::decode(&mut body, version).expect("decode produce response");
    let p = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .expect("a result for the partition");
    (p.error_code, p.base_offset)
}

/// The path counters summed over every partition of every route.
pub fn path_counts(running: &Running) -> kferry::replicate::PathCounts {
    let mut sum = kferry::replicate::PathCounts::default();
    for (_, s) in running.status() {
        sum += s.paths;
    }
    sum
}

/// Starts an in-process replicator from cluster `src` to `dst` for `route` (whose source and
/// target must be named "src" and "dst"), checking every acknowledged batch with `audit`.
pub async fn start_route(src: &str, dst: &str, route: kferry::RouteConfig, audit: &BatchAudit) -> Running {
    let observer = audit.clone();
    let replicator = kferry::Replicator::builder()
        .cluster(ClusterConfig::new("src", vec![src.to_string()]))
        .cluster(ClusterConfig::new("dst", vec![dst.to_string()]))
        .route(route)
        .on_batch(move |b| observer.observe(b))
        .build()
        .unwrap();
    replicator.start().await.expect("route starts")
}

/// Like [`replicate_until_caught_up`], for any route config; returns the path counters
/// (summed over partitions, read just before the clean shutdown).
pub async fn replicate_route_until_caught_up(
    src: &str,
    dst: &str,
    route: kferry::RouteConfig,
    audit: &BatchAudit,
) -> kferry::replicate::PathCounts {
    let running = start_route(src, dst, route, audit).await;
    wait_caught_up(&running, Duration::from_secs(120)).await;
    let paths = path_counts(&running);
    running.shutdown().await.expect("clean shutdown");
    paths
}

/// [`replicate_until_caught_up`] that also returns the summed path counters.
pub async fn replicate_until_caught_up_counted(
    src: &str,
    dst: &str,
    include: &[&str],
    audit: &BatchAudit,
) -> kferry::replicate::PathCounts {
    let route = kferry::RouteConfig::new("test", "src", "dst").include(include);
    replicate_route_until_caught_up(src, dst, route, audit).await
}

/// Waits until some partition of `running` has failed; returns the errors.
pub async fn wait_for_errors(running: &Running, timeout: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let errors = running.errors();
        if !errors.is_empty() {
            return errors;
        }
        assert!(
            start.elapsed() < timeout,
            "no partition failed within {timeout:?}: {:?}",
            running.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
