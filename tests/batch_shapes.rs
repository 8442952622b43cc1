//! Batch shapes a source really serves, written raw into a real broker (tansu 0.6 stores
//! produced batches as given: offset gaps, empty batches and oversized batches survive),
//! then replicated by kferry with every sent batch checked by the strict validator.
//!
//! - compacted-style batches with offset gaps, uncompressed (`gaps_closed`: offset deltas
//!   rewritten) and compressed (`gaps_reencoded`: decompressed, re-encoded, same codec);
//! - empty batches (recordCount 0, left by the log cleaner): never forwarded;
//! - batches larger than the target topic's `max.message.bytes`: split (or, with
//!   `oversize = Fail`, an error naming the batch and both sizes);
//! - ordinary batches in the same partition: fast path, payload byte-identical.
//!
//! Every surviving record's key, value, headers and timestamp must arrive intact, in order.

mod common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use common::{kclient, Broker};
use kferry::batch::codec::compress;
use kferry::batch::{decode_batch, BatchBuilder, Compression, Record, RecordBatch};
use kferry::replicate::{OversizePolicy, PathCounts};
use kferry::RouteConfig;
use rand::{Rng, SeedableRng};
use support::daemon::create_topic;
use support::{
    now_ms, produce_raw, read_batches, replicate_route_until_caught_up, start_route, wait_for_errors, BatchAudit,
};

/// Kafka's default `max.message.bytes`, which kferry assumes when the target does not say.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// A record as a consumer sees it: key, value, headers, absolute timestamp.
type Seen = (Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>, i64);

fn seen(batch: &RecordBatch) -> Vec<Seen> {
    decode_batch(batch, 1 << 28)
        .expect("decodable batch")
        .into_iter()
        .map(|r| (r.key, r.value, r.headers, batch.base_timestamp() + r.timestamp_delta))
        .collect()
}

/// A record with a varied shape: null keys, tombstones, repeated / null / empty headers,
/// timestamps out of order (a negative delta), identified by header "id".
fn record(batch: usize, delta: i32, value_len: usize) -> Record {
    let id = format!("b{batch}-d{delta}");
    let key = (delta % 3 != 1).then(|| Bytes::from(format!("key-{id}")));
    let value = (delta % 5 != 4).then(|| {
        let mut v = format!("value-{id}-").into_bytes();
        v.resize(value_len.max(v.len()), b'a' + (delta % 26) as u8);
        Bytes::from(v)
    });
    let mut r = Record::new(delta, key, value)
        .with_timestamp_delta(if delta == 2 { -7 } else { i64::from(delta) * 13 })
        .with_header("id", Some(Bytes::from(id)));
    if delta % 2 == 0 {
        r = r
            .with_header("dup", Some(Bytes::from_static(b"a")))
            .with_header("dup", Some(Bytes::from_static(b"b")));
    }
    if delta % 3 == 0 {
        r = r.with_header("null", None).with_header("empty", Some(Bytes::new()));
    }
    r
}

/// One batch to write: its record offset deltas, an explicit lastOffsetDelta (for gaps and
/// empty batches) and its codec.
struct Shape {
    deltas: &'static [i32],
    last_offset_delta: Option<i32>,
    codec: Compression,
}

fn build(index: usize, shape: &Shape, now: i64, value_len: usize) -> RecordBatch {
    let mut b = BatchBuilder::new()
        .base_timestamp(now + index as i64 * 1000)
        .records(shape.deltas.iter().map(|&d| record(index, d, value_len)));
    if let Some(lod) = shape.last_offset_delta {
        b = b.last_offset_delta(lod);
    }
    if shape.deltas.is_empty() {
        b = b.record_count(0);
    }
    match shape.codec {
        Compression::None => b.build(),
        c => b.build_compressed(c, |raw| compress(c, raw).unwrap()),
    }
}

/// Writes `batches` raw to `topic`-0 on `src`, asserting that tansu keeps their shape.
async fn write_raw(src: &str, topic: &str, batches: &[RecordBatch]) {
    let mut next = 0;
    for (i, b) in batches.iter().enumerate() {
        let (code, offset) = produce_raw(src, topic, 0, b).await;
        assert_eq!(code, 0, "batch {i} accepted");
        assert_eq!(offset, next, "batch {i}: offset assigned");
        next += i64::from(b.last_offset_delta()) + 1;
    }
    let stored = read_batches(src, topic, 0).await;
    assert_eq!(stored.len(), batches.len(), "tansu stored every batch");
    for (i, (s, w)) in stored.iter().zip(batches).enumerate() {
        assert_eq!(
            (s.last_offset_delta(), s.record_count(), s.compression()),
            (w.last_offset_delta(), w.record_count(), w.compression()),
            "batch {i}: shape as written"
        );
        assert_eq!(s.payload(), w.payload(), "batch {i}: payload as written");
        s.verify_crc().expect("stored with a valid CRC");
    }
}

/// Asserts that the target's records are exactly the written batches' records, in order,
/// that no target batch has gaps, and returns the target batches.
async fn assert_records_intact(dst: &str, topic: &str, written: &[RecordBatch]) -> Vec<RecordBatch> {
    let target = read_batches(dst, topic, 0).await;
    let mut got = Vec::new();
    for b in &target {
        assert!(!b.has_offset_gaps(), "target batch at {} has gaps", b.base_offset());
        assert!(b.record_count() > 0, "empty batch on the target");
        b.verify_crc().expect("target CRC");
        got.extend(seen(b));
    }
    let expected: Vec<Seen> = written.iter().flat_map(seen).collect();
    assert_eq!(got.len(), expected.len(), "records on the target");
    for (n, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "record {n} (key, value, headers, timestamp)");
    }
    target
}

fn route(topic: &str) -> RouteConfig {
    RouteConfig::new("shapes", "src", "dst").include(&[topic])
}

fn audit_clean(audit: &BatchAudit) -> (u64, u64) {
    let (batches, records, violations) = audit.summary();
    assert!(violations.is_empty(), "strict validator: {violations:#?}");
    (batches, records)
}

/// Gapped (uncompressed and compressed, first record removed, gap in the middle, gap at
/// the end), empty and ordinary batches interleaved in one partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gapped_and_empty_batches_take_the_slow_path_ordinary_ones_the_fast_path() {
    let source = Broker::start_memory("shapes-src");
    let target = Broker::start_memory("shapes-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "shapes.gaps";
    create_topic(&src, topic, 1);
    let none = Compression::None;
    let shapes = [
        Shape {
            deltas: &[0, 1, 2, 3],
            last_offset_delta: None,
            codec: none,
        }, // fast
        Shape {
            deltas: &[0, 3, 7],
            last_offset_delta: Some(9),
            codec: none,
        }, // gaps_closed
        Shape {
            deltas: &[0, 1, 2],
            last_offset_delta: None,
            codec: Compression::Lz4,
        }, // fast
        Shape {
            deltas: &[0, 2, 5, 6],
            last_offset_delta: Some(8),
            codec: Compression::Lz4,
        }, // gaps_reencoded
        Shape {
            deltas: &[],
            last_offset_delta: Some(4),
            codec: none,
        }, // empty
        Shape {
            deltas: &[0, 4],
            last_offset_delta: Some(6),
            codec: Compression::Zstd,
        }, // gaps_reencoded
        Shape {
            deltas: &[0, 1, 2, 3, 4],
            last_offset_delta: None,
            codec: Compression::Zstd,
        }, // fast
        Shape {
            deltas: &[],
            last_offset_delta: Some(2),
            codec: none,
        }, // empty
        Shape {
            deltas: &[1, 2],
            last_offset_delta: Some(3),
            codec: none,
        }, // gaps_closed
        Shape {
            deltas: &[0, 1, 5],
            last_offset_delta: Some(5),
            codec: Compression::Gzip,
        }, // gaps_reencoded
        Shape {
            deltas: &[0, 1],
            last_offset_delta: None,
            codec: none,
        }, // fast
    ];
    let now = now_ms();
    let batches: Vec<RecordBatch> = shapes.iter().enumerate().map(|(i, s)| build(i, s, now, 40)).collect();
    assert_eq!(
        batches
            .iter()
            .filter(|b| b.has_offset_gaps() && b.record_count() > 0)
            .count(),
        5
    );
    write_raw(&src, topic, &batches).await;

    let audit = BatchAudit::default();
    let paths = replicate_route_until_caught_up(&src, &dst, route(topic), &audit).await;
    let (sent, records) = audit_clean(&audit);
    let expected = PathCounts {
        fast_path: paths.fast_path,
        gaps_closed: paths.gaps_closed,
        gaps_reencoded: paths.gaps_reencoded,
        empty_dropped: paths.empty_dropped,
        ..PathCounts::default()
    };
    assert_eq!(paths, expected, "no other path taken");
    assert_eq!(paths.fast_path.batches, 4, "{paths:?}");
    assert_eq!(paths.gaps_closed.batches, 2, "{paths:?}");
    assert_eq!(paths.gaps_reencoded.batches, 3, "{paths:?}");
    assert_eq!(paths.empty_dropped.batches, 2, "{paths:?}");
    assert_eq!(sent, 9, "one target batch per non-empty source batch");
    let data: Vec<RecordBatch> = batches.iter().filter(|b| b.record_count() > 0).cloned().collect();
    assert_eq!(records, data.iter().map(|b| b.record_count() as u64).sum::<u64>());

    let target_batches = assert_records_intact(&dst, topic, &data).await;
    assert_eq!(target_batches.len(), data.len());
    for (i, (t, s)) in target_batches.iter().zip(&data).enumerate() {
        assert_eq!(t.compression(), s.compression(), "batch {i}: codec kept");
        assert_eq!(t.record_count(), s.record_count(), "batch {i}");
        assert_eq!(
            (t.base_timestamp(), t.max_timestamp()),
            (s.base_timestamp(), s.max_timestamp()),
            "batch {i}: header timestamps"
        );
        if !s.has_offset_gaps() {
            assert!(
                t.payload() == s.payload(),
                "batch {i}: fast path leaves the payload untouched"
            );
        }
    }
}

/// Creates the target topic first with a small `max.message.bytes`, and checks the broker
/// reports it to a real client.
fn create_target_topic(dst: &str, topic: &str, max_message_bytes: usize) {
    let limit = format!("max.message.bytes={max_message_bytes}");
    kclient(&[
        "create-topic",
        "--bootstrap",
        dst,
        "--topic",
        topic,
        "--partitions",
        "1",
        "--config",
        &limit,
    ]);
    let d = kclient(&["describe-topic", "--bootstrap", dst, "--topic", topic]);
    assert_eq!(d["config"]["max.message.bytes"], max_message_bytes.to_string(), "{d}");
}

/// A 50 kB batch to a target topic with `max.message.bytes=20000`: split into batches that
/// fit, records intact; the ordinary batch next to it takes the fast path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batch_is_split_to_the_target_topics_max_message_bytes() {
    let source = Broker::start_memory("oversize-src");
    let target = Broker::start_memory("oversize-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "shapes.oversize";
    create_topic(&src, topic, 1);
    const LIMIT: usize = 20_000;
    create_target_topic(&dst, topic, LIMIT);
    let now = now_ms();
    let all: &[i32] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    let batches = vec![
        build(
            0,
            &Shape {
                deltas: &[0, 1],
                last_offset_delta: None,
                codec: Compression::None,
            },
            now,
            100,
        ),
        build(
            1,
            &Shape {
                deltas: all,
                last_offset_delta: None,
                codec: Compression::None,
            },
            now,
            5_000,
        ),
        build(
            2,
            &Shape {
                deltas: &[0, 1, 2],
                last_offset_delta: None,
                codec: Compression::None,
            },
            now,
            100,
        ),
    ];
    assert!(batches[1].len() > 2 * LIMIT);
    write_raw(&src, topic, &batches).await;

    let audit = BatchAudit::default();
    let paths = replicate_route_until_caught_up(&src, &dst, route(topic), &audit).await;
    audit_clean(&audit);
    assert_eq!(paths.split.batches, 1, "the 50 kB batch is split: {paths:?}");
    assert_eq!(paths.fast_path.batches, 2, "{paths:?}");
    let target_batches = assert_records_intact(&dst, topic, &batches).await;
    for b in &target_batches {
        assert!(
            b.len() <= LIMIT,
            "target batch of {} bytes > max.message.bytes {LIMIT}",
            b.len()
        );
    }
    assert!(target_batches.len() >= 2 + 3, "{} target batches", target_batches.len());
}

/// Random (incompressible) values, so a compressed batch stays large.
fn random_record(batch: usize, delta: i32, len: usize, rng: &mut rand::rngs::StdRng) -> Record {
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    Record::new(
        delta,
        Some(Bytes::from(format!("key-{batch}-{delta}"))),
        Some(Bytes::from(v)),
    )
    .with_timestamp_delta(i64::from(delta))
    .with_header("id", Some(Bytes::from(format!("b{batch}-d{delta}"))))
}

/// Batches over the default `max.message.bytes` (the target topic has no explicit limit):
/// an uncompressed one and a zstd one are split, in their own codec; records intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_default_max_message_bytes_are_split() {
    let source = Broker::start_memory("bigbatch-src");
    let target = Broker::start_memory("bigbatch-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "shapes.big";
    create_topic(&src, topic, 1);
    let now = now_ms();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let big_plain = BatchBuilder::new()
        .base_timestamp(now)
        .records((0..30).map(|d| random_record(1, d, 50_000, &mut rng)))
        .build();
    let big_zstd = BatchBuilder::new()
        .base_timestamp(now + 1)
        .records((0..24).map(|d| random_record(2, d, 60_000, &mut rng)))
        .build_compressed(Compression::Zstd, |raw| compress(Compression::Zstd, raw).unwrap());
    let small = |i: usize| {
        build(
            i,
            &Shape {
                deltas: &[0, 1, 2],
                last_offset_delta: None,
                codec: Compression::Lz4,
            },
            now,
            50,
        )
    };
    let batches = vec![small(0), big_plain, small(3), big_zstd, small(5)];
    assert!(batches[1].len() > DEFAULT_MAX_MESSAGE_BYTES && batches[3].len() > DEFAULT_MAX_MESSAGE_BYTES);
    write_raw(&src, topic, &batches).await;

    let audit = BatchAudit::default();
    let paths = replicate_route_until_caught_up(&src, &dst, route(topic), &audit).await;
    audit_clean(&audit);
    assert_eq!(paths.split.batches, 2, "{paths:?}");
    assert_eq!(paths.fast_path.batches, 3, "{paths:?}");
    assert_eq!(paths.slow_path_batches(), 2, "{paths:?}");
    let target_batches = assert_records_intact(&dst, topic, &batches).await;
    for b in &target_batches {
        assert!(
            b.len() <= DEFAULT_MAX_MESSAGE_BYTES,
            "target batch of {} bytes",
            b.len()
        );
    }
    let zstd_pieces = target_batches
        .iter()
        .filter(|b| b.compression() == Compression::Zstd)
        .count();
    assert!(
        zstd_pieces >= 2,
        "the zstd batch is split in its own codec ({zstd_pieces} zstd batches)"
    );
}

/// `oversize = Fail`: the partition stops with an error naming the topic, partition, the
/// batch's offset and both sizes; nothing of the batch reaches the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batch_with_fail_policy_names_offset_and_sizes() {
    let source = Broker::start_memory("oversize-fail-src");
    let target = Broker::start_memory("oversize-fail-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "shapes.refused";
    create_topic(&src, topic, 1);
    let now = now_ms();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let small = |i: usize| {
        build(
            i,
            &Shape {
                deltas: &[0, 1, 2],
                last_offset_delta: None,
                codec: Compression::None,
            },
            now,
            50,
        )
    };
    let big = BatchBuilder::new()
        .base_timestamp(now)
        .records((0..25).map(|d| random_record(2, d, 50_000, &mut rng)))
        .build();
    let batches = vec![small(0), small(1), big.clone(), small(3)];
    write_raw(&src, topic, &batches).await;
    let big_offset = 6;

    let audit = BatchAudit::default();
    let mut r = route(topic);
    r.oversize = OversizePolicy::Fail;
    let running = start_route(&src, &dst, r, &audit).await;
    let errors = wait_for_errors(&running, Duration::from_secs(60)).await;
    let paths = support::path_counts(&running);
    running.shutdown().await.expect("shutdown");
    audit_clean(&audit);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    for part in [
        format!("{topic}-0"),
        format!("offset {big_offset}"),
        big.len().to_string(),
        DEFAULT_MAX_MESSAGE_BYTES.to_string(),
        "max.message.bytes".to_string(),
    ] {
        assert!(e.contains(&part), "the error should name {part:?}: {e}");
    }
    assert_eq!(paths.split.batches, 0, "{paths:?}");
    for b in read_batches(&dst, topic, 0).await {
        for (_, _, headers, _) in seen(&b) {
            let id = headers.iter().find(|(k, _)| k == "id").unwrap().1.clone().unwrap();
            assert!(
                !id.starts_with(b"b2-"),
                "a record of the refused batch reached the target"
            );
        }
    }
}
