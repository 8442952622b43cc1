//! End to end from a FAKE source broker (`kferry_protocol_tests::fake`) to a real tansu target.
//!
//! The fake serves log bytes no broker here can produce: legacy v0/v1 message sets, plain
//! and in every legacy codec, followed by ordinary v2 batches, and an ApiVersions v0-only
//! handshake. Everything is encoded by `kferry_protocol_tests::legacy` and `craft`, not by
//! kferry. The target is read back raw and decoded record by record.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::Broker;
use kferry::batch::decode_batch;
use kferry::{ClusterConfig, PartitionStatus, RouteConfig};
use kferry_protocol_tests::codec::{self, id};
use kferry_protocol_tests::craft::{record, CraftedBatch};
use kferry_protocol_tests::fake::{FakeBroker, FakeOptions};
use kferry_protocol_tests::legacy::{self, LegacyRecord, Wrapper};
use support::BatchAudit;

/// What a record must look like on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// One source partition's log, built entry by entry, and what the target must end with.
#[derive(Default)]
struct LogBuilder {
    partition: i32,
    bytes: Vec<u8>,
    next_offset: i64,
    expected: Vec<Expected>,
    legacy_entries: u64,
    v2_batches: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl LogBuilder {
    fn new(partition: i32) -> LogBuilder {
        LogBuilder {
            partition,
            ..LogBuilder::default()
        }
    }

    /// `n` records: keyed and valued by offset, one with a null key, one with a null value
    /// and one with an empty value, CreateTime `now + offset`.
    fn records(&self, n: usize, what: &str) -> Vec<LegacyRecord> {
        let base = now_ms();
        (0..n)
            .map(|i| {
                let offset = self.next_offset + i as i64;
                let key = format!("p{}-{offset}", self.partition);
                let value = format!("{what} at {offset}: {}", "x".repeat(40 + i));
                match i % 5 {
                    1 => LegacyRecord::new(base + offset, None, Some(value.as_bytes())),
                    3 => LegacyRecord::new(base + offset, Some(key.as_bytes()), None),
                    4 => LegacyRecord::new(base + offset, Some(key.as_bytes()), Some(b"")),
                    _ => LegacyRecord::new(base + offset, Some(key.as_bytes()), Some(value.as_bytes())),
                }
            })
            .collect()
    }

    fn expect(&mut self, records: &[LegacyRecord], timestamp: impl Fn(&LegacyRecord) -> i64) {
        self.expected.extend(records.iter().map(|r| Expected {
            timestamp: timestamp(r),
            key: r.key.clone(),
            value: r.value.clone(),
        }));
        self.next_offset += records.len() as i64;
    }

    /// One uncompressed entry per record. v0 has no timestamp: up-conversion gives -1.
    fn plain(&mut self, magic: u8, n: usize) -> &mut Self {
        let records = self.records(n, &format!("plain v{magic}"));
        self.bytes
            .extend(legacy::plain_entries(magic, self.next_offset, &records));
        self.legacy_entries += n as u64;
        self.expect(&records, |r| if magic == 0 { -1 } else { r.timestamp });
        self
    }

    /// One compressed wrapper entry; a v1 LogAppendTime wrapper stamps every inner record.
    fn wrapper(&mut self, magic: u8, codec: u8, n: usize, log_append_time: Option<i64>) -> &mut Self {
        let records = self.records(n, &format!("v{magic} codec {codec}"));
        let wrapper = Wrapper {
            magic,
            codec,
            first_offset: self.next_offset,
            records: &records,
            log_append_time,
        };
        self.bytes.extend(wrapper.encode());
        self.legacy_entries += 1;
        self.expect(&records, |r| match (magic, log_append_time) {
            (0, _) => -1,
            (_, Some(t)) => t,
            (_, None) => r.timestamp,
        });
        self
    }

    /// One ordinary v2 batch (CreateTime, no producer id), compressed with `codec`.
    fn v2(&mut self, codec: u8, n: usize) -> &mut Self {
        let records = self.records(n, &format!("v2 codec {codec}"));
        let base_ts = records[0].timestamp;
        let raw: Vec<u8> = records
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                record(
                    i as i32,
                    r.timestamp - base_ts,
                    r.key.as_deref(),
                    r.value.as_deref(),
                    &[],
                )
            })
            .collect();
        let mut batch = CraftedBatch::valid(&[b"placeholder"]);
        batch.base_offset = self.next_offset;
        batch.attributes = u16::from(codec);
        batch.last_offset_delta = n as i32 - 1;
        batch.record_count = n as i32;
        batch.base_timestamp = base_ts;
        batch.max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap();
        batch.records = codec::compress(codec, &raw);
        self.bytes.extend(batch.encode());
        self.v2_batches += 1;
        self.expect(&records, |r| r.timestamp);
        self
    }
}

/// Replicates `topic` from `src` to `dst` until caught up (no partition may fail), checking
/// every batch sent with the strict validator; returns the final partition statuses.
async fn replicate(src: &str, dst: &str, topic: &str, audit: &BatchAudit) -> Vec<PartitionStatus> {
    let observer = audit.clone();
    let replicator = kferry::Replicator::builder()
        .cluster(ClusterConfig::new("fake-src", vec![src.to_string()]))
        .cluster(ClusterConfig::new("dst", vec![dst.to_string()]))
        .route(RouteConfig::new("fake", "fake-src", "dst").include(&[topic]))
        .on_batch(move |b| observer.observe(b))
        .build()
        .unwrap();
    let running = replicator.start().await.expect("route starts");
    support::wait_caught_up(&running, Duration::from_secs(60)).await;
    let mut status: Vec<PartitionStatus> = running.status().into_iter().map(|(_, s)| s).collect();
    status.sort_by_key(|s| s.partition);
    running.shutdown().await.expect("clean shutdown");
    status
}

/// Every record of a target partition, in offset order, read raw and decoded.
async fn target_records(dst: &str, topic: &str, partition: i32) -> Vec<Expected> {
    let mut out = Vec::new();
    for batch in support::read_batches(dst, topic, partition).await {
        for r in decode_batch(&batch, 64 << 20).expect("decodable target batch") {
            out.push(Expected {
                timestamp: batch.base_timestamp() + r.timestamp_delta,
                key: r.key.map(|k| k.to_vec()),
                value: r.value.map(|v| v.to_vec()),
            });
        }
    }
    out
}

/// Serves `logs` from `fake` as one topic, replicates it, and checks every record, the
/// strict validator, the path counters and the progress committed on the fake.
async fn replicate_and_check(fake: &FakeBroker, topic: &str, logs: &[LogBuilder]) {
    fake.create_topic(topic, logs.len() as i32);
    for log in logs {
        fake.append(topic, log.partition, &log.bytes);
    }
    let target = Broker::start_memory(&format!("{topic}-dst"));
    let audit = BatchAudit::default();
    let status = replicate(&fake.bootstrap(), &target.bootstrap(), topic, &audit).await;

    let (_, records, violations) = audit.summary();
    assert!(violations.is_empty(), "strict validator: {violations:#?}");
    let total: usize = logs.iter().map(|l| l.expected.len()).sum();
    assert_eq!(records, total as u64, "records seen by the validator");
    for (log, s) in logs.iter().zip(&status) {
        let p = log.partition;
        assert_eq!(s.partition, p);
        assert_eq!(
            s.paths.upconverted.batches, log.legacy_entries,
            "{topic}-{p}: upconverted"
        );
        assert_eq!(s.paths.fast_path.batches, log.v2_batches, "{topic}-{p}: fast path");
        assert_eq!(
            s.paths.slow_path_batches(),
            log.legacy_entries,
            "{topic}-{p}: no other slow path"
        );
        let got = target_records(&target.bootstrap(), topic, p).await;
        assert_eq!(got.len(), log.expected.len(), "{topic}-{p}: record count");
        for (i, (g, e)) in got.iter().zip(&log.expected).enumerate() {
            assert_eq!(g, e, "{topic}-{p}: record {i}");
        }
        let committed = fake
            .committed("kferry-fake", topic, p)
            .expect("progress committed on the source");
        assert_eq!(
            committed.offset, log.next_offset,
            "{topic}-{p}: committed source offset"
        );
    }
}

/// v0 and v1 message sets, plain and in each legacy codec, then v2 batches, on several
/// partitions: every record arrives in order with key, value and timestamp intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_message_sets_are_upconverted_exactly() {
    let fake = FakeBroker::start().await.unwrap();
    let mut logs = vec![LogBuilder::new(0), LogBuilder::new(1), LogBuilder::new(2)];
    // Partition 0: magic 0 in every form, then v2.
    logs[0]
        .plain(0, 3)
        .wrapper(0, id::GZIP, 4, None)
        .wrapper(0, id::SNAPPY, 5, None)
        .wrapper(0, id::LZ4, 6, None)
        .v2(id::NONE, 3)
        .v2(id::LZ4, 4);
    // Partition 1: magic 1 in every form, then v2.
    logs[1]
        .plain(1, 3)
        .wrapper(1, id::GZIP, 4, None)
        .wrapper(1, id::SNAPPY, 5, None)
        .wrapper(1, id::LZ4, 6, None)
        .v2(id::GZIP, 5)
        .v2(id::NONE, 1);
    // Partition 2: interleaved, with a LogAppendTime wrapper, ending with v2.
    let append_time = now_ms() - 1_000;
    logs[2]
        .wrapper(1, id::LZ4, 3, Some(append_time))
        .plain(0, 2)
        .wrapper(0, id::SNAPPY, 2, None)
        .plain(1, 1)
        .wrapper(1, id::GZIP, 7, None)
        .v2(id::SNAPPY, 6)
        .v2(id::ZSTD, 2);
    replicate_and_check(&fake, "legacy.sets", &logs).await;
    assert!(fake.closed_connections().is_empty(), "{:?}", fake.closed_connections());
}

/// A source that speaks only ApiVersions v0 (Kafka before 2.4 answers v3 with
/// UNSUPPORTED_VERSION): kferry asks again with v0 and replicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_v0_only_source_replicates() {
    let fake = FakeBroker::start_with(FakeOptions {
        advertise_only_v0_api_versions: true,
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    let mut log = LogBuilder::new(0);
    log.plain(1, 2).wrapper(1, id::GZIP, 3, None).v2(id::NONE, 4);
    replicate_and_check(&fake, "old.handshake", &[log]).await;
    let handshakes: Vec<i16> = fake
        .requests()
        .iter()
        .filter(|r| r.api_key == 18)
        .map(|r| r.version)
        .collect();
    assert!(handshakes.len() >= 2, "{handshakes:?}");
    assert!(
        handshakes.chunks(2).all(|c| c == [3, 0]),
        "v3 then v0 on every connection: {handshakes:?}"
    );
}

/// A source without topic ids (Fetch by name, v12) that cuts every Fetch at the byte limit
/// as Kafka does: partial trailing entries, legacy and v2, and entries larger than the
/// limit (served whole only to the first partition with data, KIP-74).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_style_cut_fetches_by_topic_name() {
    let fake = FakeBroker::start_with(FakeOptions {
        nil_topic_ids: true,
        cut_partial_entries: true,
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    let mut logs = vec![LogBuilder::new(0), LogBuilder::new(1)];
    for log in &mut logs {
        log.plain(1, 4)
            .v2(id::NONE, 6)
            .plain(0, 3)
            .wrapper(1, id::SNAPPY, 8, None)
            .v2(id::NONE, 2)
            .plain(1, 2);
    }
    let topic = "cut.fetches";
    fake.create_topic(topic, 2);
    for log in &logs {
        fake.append(topic, log.partition, &log.bytes);
    }
    let target = Broker::start_memory("cut-dst");
    let audit = BatchAudit::default();
    let observer = audit.clone();
    let mut route = RouteConfig::new("fake", "fake-src", "dst").include(&[topic]);
    route.max_partition_fetch_bytes = 256;
    let replicator = kferry::Replicator::builder()
        .cluster(ClusterConfig::new("fake-src", vec![fake.bootstrap()]))
        .cluster(ClusterConfig::new("dst", vec![target.bootstrap()]))
        .route(route)
        .on_batch(move |b| observer.observe(b))
        .build()
        .unwrap();
    let running = replicator.start().await.expect("route starts");
    support::wait_caught_up(&running, Duration::from_secs(60)).await;
    running.shutdown().await.expect("clean shutdown");
    let (_, _, violations) = audit.summary();
    assert!(violations.is_empty(), "strict validator: {violations:#?}");
    for log in &logs {
        let got = target_records(&target.bootstrap(), topic, log.partition).await;
        assert_eq!(got, log.expected, "{topic}-{}", log.partition);
    }
    let fetches: Vec<i16> = fake
        .requests()
        .iter()
        .filter(|r| r.api_key == 1)
        .map(|r| r.version)
        .collect();
    assert!(fetches.iter().all(|&v| v == 12), "by name, at most v12: {fetches:?}");
}

/// A legacy message with a bad CRC stops its partition with an error naming its offset;
/// the other partition replicates in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_legacy_message_stops_the_partition_at_its_offset() {
    let fake = FakeBroker::start().await.unwrap();
    let topic = "legacy.corrupt";
    fake.create_topic(topic, 2);
    let mut bad = LogBuilder::new(0);
    bad.plain(1, 3);
    let mut corrupt = legacy::plain_entries(1, 3, &bad.records(1, "corrupt"));
    *corrupt.last_mut().unwrap() ^= 0x01; // the value's last byte: the stored CRC no longer matches
    bad.bytes.extend(corrupt);
    bad.bytes.extend(legacy::plain_entries(1, 4, &bad.records(2, "after")));
    fake.append(topic, 0, &bad.bytes);
    let mut good = LogBuilder::new(1);
    good.wrapper(0, id::GZIP, 3, None).v2(id::NONE, 2);
    fake.append(topic, 1, &good.bytes);

    let target = Broker::start_memory("corrupt-dst");
    let replicator = kferry::Replicator::builder()
        .cluster(ClusterConfig::new("fake-src", vec![fake.bootstrap()]))
        .cluster(ClusterConfig::new("dst", vec![target.bootstrap()]))
        .route(RouteConfig::new("fake", "fake-src", "dst").include(&[topic]))
        .build()
        .unwrap();
    let running = replicator.start().await.expect("route starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |s: &[(String, PartitionStatus)]| {
        s.iter().any(|(_, p)| p.partition == 0 && p.error.is_some())
            && s.iter()
                .any(|(_, p)| p.partition == 1 && p.acked.source_next == good.next_offset)
    };
    while !done(&running.status()) {
        assert!(Instant::now() < deadline, "{:#?}", running.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let errors = running.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = &errors[0];
    assert!(error.contains(&format!("{topic}-0")), "{error}");
    assert!(
        error.contains("offset 3"),
        "the error names the corrupt message's offset: {error}"
    );
    assert!(error.to_lowercase().contains("crc"), "{error}");
    let failed = running.status().into_iter().find(|(_, s)| s.partition == 0).unwrap().1;
    assert!(
        failed.acked.source_next <= 3,
        "nothing at or past the corrupt offset was acknowledged"
    );
    running.shutdown().await.expect("clean shutdown");
    let got = target_records(&target.bootstrap(), topic, 0).await;
    assert!(got.len() <= 3, "nothing from the corrupt message on: {got:?}");
    assert_eq!(got[..], bad.expected[..got.len()]);
    assert_eq!(target_records(&target.bootstrap(), topic, 1).await, good.expected);
}
