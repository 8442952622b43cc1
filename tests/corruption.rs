//! A source batch whose CRC does not match its bytes.
//!
//! tansu 0.6 stores produced batches without checking their CRC, so a corrupt batch can be
//! written raw into a real source partition. kferry checks every source batch's CRC
//! (`check.crcs`, on by default): by default the partition stops with an error naming the
//! cluster, topic, partition and offset, and nothing of the bad batch reaches the target;
//! with `corrupt = Skip` the batch is skipped, counted, and everything else arrives.

mod common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use common::Broker;
use kferry::batch::{decode_batch, BatchBuilder, Compression, Record, RecordBatch};
use kferry::replicate::CorruptPolicy;
use kferry::RouteConfig;
use support::daemon::create_topic;
use support::{
    now_ms, produce_raw, read_batches, replicate_route_until_caught_up, start_route, wait_for_errors, BatchAudit,
};

const TOPIC: &str = "corrupt.src";
/// Partition 0 holds the corrupt batch; partition 1 only good ones.
const BAD_PARTITION: i32 = 0;
/// Index of the corrupt batch among the batches written to partition 0.
const BAD_INDEX: usize = 3;
const BATCHES: usize = 6;
const RECORDS_PER_BATCH: i32 = 4;

/// A record identified by (partition, batch, record) in its key, value and header.
fn record(partition: i32, batch: usize, n: i32) -> Record {
    let id = format!("p{partition}-b{batch}-r{n}");
    Record::new(
        n,
        Some(Bytes::from(format!("key-{id}"))),
        Some(Bytes::from(format!("value-{id}"))),
    )
    .with_timestamp_delta(i64::from(n))
    .with_header("id", Some(Bytes::from(id)))
}

fn batch(partition: i32, index: usize, now: i64) -> RecordBatch {
    let b = BatchBuilder::new()
        .base_timestamp(now + index as i64 * 100)
        .records((0..RECORDS_PER_BATCH).map(|n| record(partition, index, n)));
    if index % 2 == 1 {
        b.build_compressed(Compression::Lz4, |raw| {
            kferry::batch::codec::compress(Compression::Lz4, raw).unwrap()
        })
    } else {
        b.build()
    }
}

/// The batch with one payload byte flipped after building: its CRC no longer matches.
fn corrupted(b: &RecordBatch) -> RecordBatch {
    let mut bytes = b.as_bytes().to_vec();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x5a;
    let bad = RecordBatch::parse(Bytes::from(bytes)).unwrap();
    assert!(bad.verify_crc().is_err());
    bad
}

struct Source {
    broker: Broker,
    /// The batches as written, per partition (partition 0's bad one corrupted).
    written: Vec<Vec<RecordBatch>>,
    /// The offset tansu assigned to the corrupt batch.
    bad_offset: i64,
}

/// Writes `BATCHES` batches raw to each of two partitions; partition 0's batch `BAD_INDEX`
/// has a wrong CRC. Checks that tansu stored them as written.
async fn corrupt_source(name: &str) -> Source {
    let broker = Broker::start_memory(name);
    let src = broker.bootstrap();
    create_topic(&src, TOPIC, 2);
    let now = now_ms();
    let mut written = vec![Vec::new(), Vec::new()];
    let mut bad_offset = -1;
    for (p, out) in written.iter_mut().enumerate() {
        let p = p as i32;
        for i in 0..BATCHES {
            let mut b = batch(p, i, now);
            if p == BAD_PARTITION && i == BAD_INDEX {
                b = corrupted(&b);
            }
            let (code, offset) = produce_raw(&src, TOPIC, p, &b).await;
            assert_eq!(code, 0, "tansu accepts the batch (it does not check CRCs)");
            assert_eq!(offset, i as i64 * i64::from(RECORDS_PER_BATCH));
            if p == BAD_PARTITION && i == BAD_INDEX {
                bad_offset = offset;
            }
            out.push(b);
        }
    }
    let stored = read_batches(&src, TOPIC, BAD_PARTITION).await;
    assert_eq!(stored.len(), BATCHES);
    for (i, s) in stored.iter().enumerate() {
        assert_eq!(
            s.payload(),
            written[0][i].payload(),
            "tansu stored batch {i} as written"
        );
        assert_eq!(s.verify_crc().is_ok(), i != BAD_INDEX, "batch {i}: CRC as written");
    }
    Source {
        broker,
        written,
        bad_offset,
    }
}

/// The record ids (header "id") of the target partition, read raw and decoded, with the
/// checks that each record is intact.
async fn target_ids(dst: &str, partition: i32, written: &[RecordBatch]) -> Vec<String> {
    let mut ids = Vec::new();
    for b in read_batches(dst, TOPIC, partition).await {
        b.verify_crc().expect("valid CRC on the target");
        let target_records = decode_batch(&b, 1 << 26).unwrap();
        let Some(source) = written.iter().find(|s| s.payload() == b.payload()) else {
            panic!("target batch at {} matches no written batch", b.base_offset());
        };
        let source_records = decode_batch(source, 1 << 26).unwrap();
        assert_eq!(target_records, source_records, "records intact");
        assert_eq!(
            (b.base_timestamp(), b.max_timestamp()),
            (source.base_timestamp(), source.max_timestamp()),
            "timestamps"
        );
        for r in target_records {
            let (_, id) = r.headers.iter().find(|(k, _)| k == "id").unwrap();
            ids.push(String::from_utf8(id.as_ref().unwrap().to_vec()).unwrap());
        }
    }
    ids
}

fn ids_of(partition: i32, batches: impl IntoIterator<Item = usize>) -> Vec<String> {
    batches
        .into_iter()
        .flat_map(|b| (0..RECORDS_PER_BATCH).map(move |n| format!("p{partition}-b{b}-r{n}")))
        .collect()
}

/// Default policy: the partition stops at the corrupt batch with an error naming cluster,
/// topic, partition and offset. The batches before it arrive, none of its records do, and
/// the other partition is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_batch_stops_the_partition_and_names_the_offset() {
    let source = corrupt_source("corrupt-fail-src").await;
    let target = Broker::start_memory("corrupt-fail-dst");
    let (src, dst) = (source.broker.bootstrap(), target.bootstrap());

    let audit = BatchAudit::default();
    let route = RouteConfig::new("crc", "src", "dst").include(&[TOPIC]);
    assert_eq!(route.corrupt, CorruptPolicy::Fail, "the default");
    assert!(route.check_crcs, "the default");
    let running = start_route(&src, &dst, route, &audit).await;
    let errors = wait_for_errors(&running, Duration::from_secs(60)).await;
    assert_eq!(errors.len(), 1, "only the corrupt partition fails: {errors:?}");
    let e = &errors[0];
    for part in [
        "'src'".to_string(),
        format!("{TOPIC}-{BAD_PARTITION}"),
        format!("offset {}", source.bad_offset),
        "CRC".to_string(),
    ] {
        assert!(e.contains(&part), "error should name {part}: {e}");
    }
    // The good partition is copied completely; the failed one holds what precedes the bad batch.
    // Wait for both: the last good batch of the failed partition may share a Produce request
    // (and its answer) with the good partition's, and its sink acknowledges it separately.
    let start = std::time::Instant::now();
    loop {
        let status = running.status();
        let good = status.iter().find(|(_, s)| s.partition == 1).unwrap();
        let failed = status.iter().find(|(_, s)| s.partition == BAD_PARTITION).unwrap();
        if good.1.acked.source_next == (BATCHES as i64) * i64::from(RECORDS_PER_BATCH)
            && failed.1.acked.source_next >= source.bad_offset
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bad_status = running
        .status()
        .into_iter()
        .find(|(_, s)| s.partition == BAD_PARTITION)
        .unwrap()
        .1;
    assert!(bad_status.error.is_some());
    running.shutdown().await.expect("shutdown");
    let (_, _, violations) = audit.summary();
    assert!(violations.is_empty(), "{violations:#?}");

    let got = target_ids(&dst, BAD_PARTITION, &source.written[0]).await;
    let bad: Vec<String> = ids_of(BAD_PARTITION, [BAD_INDEX]);
    assert!(
        !got.iter().any(|id| bad.contains(id)),
        "records of the corrupt batch reached the target: {got:?}"
    );
    assert_eq!(
        got,
        ids_of(BAD_PARTITION, 0..BAD_INDEX),
        "the target should hold exactly the batches before the corrupt one ({bad_status:?})"
    );
    assert_eq!(
        bad_status.acked.source_next, source.bad_offset,
        "the position stops at the corrupt batch"
    );
    assert_eq!(target_ids(&dst, 1, &source.written[1]).await, ids_of(1, 0..BATCHES));
}

/// `corrupt = Skip`: the corrupt batch is skipped and counted once; every other record
/// arrives intact, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_batch_is_skipped_and_counted_with_skip_policy() {
    let source = corrupt_source("corrupt-skip-src").await;
    let target = Broker::start_memory("corrupt-skip-dst");
    let (src, dst) = (source.broker.bootstrap(), target.bootstrap());

    let audit = BatchAudit::default();
    let mut route = RouteConfig::new("crc", "src", "dst").include(&[TOPIC]);
    route.corrupt = CorruptPolicy::Skip;
    let paths = replicate_route_until_caught_up(&src, &dst, route, &audit).await;
    assert_eq!(paths.corrupt_skipped.batches, 1, "{paths:?}");
    assert_eq!(
        paths.corrupt_skipped.bytes,
        source.written[0][BAD_INDEX].len() as u64,
        "{paths:?}"
    );
    assert_eq!(paths.fast_path.batches, 2 * BATCHES as u64 - 1, "{paths:?}");
    assert_eq!(paths.slow_path_batches(), 0, "{paths:?}");
    let (batches, records, violations) = audit.summary();
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(batches, 2 * BATCHES as u64 - 1);
    assert_eq!(records, (2 * BATCHES as u64 - 1) * RECORDS_PER_BATCH as u64);

    let expected = ids_of(BAD_PARTITION, (0..BATCHES).filter(|&i| i != BAD_INDEX));
    assert_eq!(target_ids(&dst, BAD_PARTITION, &source.written[0]).await, expected);
    assert_eq!(target_ids(&dst, 1, &source.written[1]).await, ids_of(1, 0..BATCHES));
}
