//! End to end on two real brokers: records written by a real client (librdkafka, via
//! confluent-kafka) in every codec are replicated by kferry, and read back from the target
//! by the same independent client with `check.crcs=true`.
//!
//! Also checks that every batch kferry sent passes the strict validator, and that the bytes
//! after the 61-byte header are identical on source and target (the zero-decode path).

mod common;
mod support;

use common::{kclient, Broker};
use support::daemon::assert_exact;
use support::{assert_payloads_untouched, replicate_until_caught_up_counted, BatchAudit};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const PARTITIONS: i32 = 3;
const RECORDS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_replicates_exactly_with_payload_untouched() {
    let source = Broker::start_memory("codecs-src");
    let target = Broker::start_memory("codecs-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let parts = PARTITIONS.to_string();
    for codec in CODECS {
        let topic = format!("codec.{codec}");
        kclient(&[
            "create-topic",
            "--bootstrap",
            &src,
            "--topic",
            &topic,
            "--partitions",
            &parts,
        ]);
        kclient(&[
            "produce",
            "--bootstrap",
            &src,
            "--topic",
            &topic,
            "--partitions",
            &parts,
            "--count",
            &RECORDS.to_string(),
            "--codec",
            codec,
            "--idempotent",
            "--linger-ms",
            "20",
            "--batch-size",
            "16384",
        ]);
    }

    let audit = BatchAudit::default();
    let paths = replicate_until_caught_up_counted(&src, &dst, &["codec\\..*"], &audit).await;

    let (batches, records, violations) = audit.summary();
    assert!(violations.is_empty(), "strict validator: {violations:#?}");
    assert_eq!(records, RECORDS * CODECS.len() as u64, "records seen by the validator");
    // Acceptance 6: ordinary batches never leave the fast path.
    assert_eq!(
        paths.slow_path_batches(),
        0,
        "slow-path counters must stay at 0: {paths:?}"
    );
    assert_eq!(
        paths.fast_path.batches, batches,
        "every forwarded batch took the fast path: {paths:?}"
    );

    let mut compared = 0;
    for codec in CODECS {
        let topic = format!("codec.{codec}");
        let v = kclient(&[
            "verify",
            "--source",
            &src,
            "--target",
            &dst,
            "--topic",
            &topic,
            "--partitions",
            &parts,
        ]);
        assert_exact(&v, RECORDS);
        for p in 0..PARTITIONS {
            compared += assert_payloads_untouched(&src, &dst, &topic, p).await;
        }
    }
    assert_eq!(compared as u64, batches, "every forwarded batch compared byte for byte");
}

/// Committed transactions leave control batches (commit markers) in the source log. They are
/// not forwarded, the transactional bit is cleared, and every record arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_batches_are_not_forwarded() {
    let source = Broker::start_memory("txn-src");
    let target = Broker::start_memory("txn-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "txn.committed";
    kclient(&[
        "create-topic",
        "--bootstrap",
        &src,
        "--topic",
        topic,
        "--partitions",
        "2",
    ]);
    kclient(&[
        "produce",
        "--bootstrap",
        &src,
        "--topic",
        topic,
        "--partitions",
        "2",
        "--count",
        "2000",
        "--codec",
        "lz4",
        "--transactional-id",
        "kferry-test-txn",
        "--txn-size",
        "100",
    ]);
    let controls: usize = {
        let mut n = 0;
        for p in 0..2 {
            n += support::read_batches(&src, topic, p)
                .await
                .iter()
                .filter(|b| b.attributes().is_control())
                .count();
        }
        n
    };
    assert!(controls >= 2, "the source should hold commit markers, found {controls}");

    let audit = BatchAudit::default();
    let paths = replicate_until_caught_up_counted(&src, &dst, &[topic], &audit).await;
    assert_eq!(paths.control_dropped.batches, controls as u64, "{paths:?}");
    assert_eq!(paths.slow_path_batches(), 0, "{paths:?}");

    let (_, records, violations) = audit.summary();
    assert!(
        violations.is_empty(),
        "strict validator (no control or transactional bit): {violations:#?}"
    );
    assert_eq!(records, 2000);
    for p in 0..2 {
        let batches = support::read_batches(&dst, topic, p).await;
        assert!(batches
            .iter()
            .all(|b| !b.attributes().is_control() && !b.attributes().is_transactional()));
        assert_payloads_untouched(&src, &dst, topic, p).await;
    }
    let v = kclient(&[
        "verify",
        "--source",
        &src,
        "--target",
        &dst,
        "--topic",
        topic,
        "--partitions",
        "2",
    ]);
    assert_exact(&v, 2000);
}

/// A route with `compression = zstd` re-encodes batches of every other codec (and leaves zstd
/// batches on the fast path); records arrive intact, read by the real client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_change_reencodes_other_codecs_only() {
    let source = Broker::start_memory("recodec-src");
    let target = Broker::start_memory("recodec-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    for codec in ["lz4", "zstd"] {
        let topic = format!("recodec.{codec}");
        kclient(&[
            "create-topic",
            "--bootstrap",
            &src,
            "--topic",
            &topic,
            "--partitions",
            "2",
        ]);
        kclient(&[
            "produce",
            "--bootstrap",
            &src,
            "--topic",
            &topic,
            "--partitions",
            "2",
            "--count",
            "2000",
            "--codec",
            codec,
            "--batch-size",
            "16384",
        ]);
    }
    let audit = BatchAudit::default();
    let mut route = kferry::RouteConfig::new("recodec", "src", "dst").include(&["recodec\\..*"]);
    route.compression = Some(kferry::batch::Compression::Zstd);
    let paths = support::replicate_route_until_caught_up(&src, &dst, route, &audit).await;
    let (batches, records, violations) = audit.summary();
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(records, 4000);
    assert!(paths.recompressed.batches > 0, "lz4 batches were re-encoded: {paths:?}");
    assert!(
        paths.fast_path.batches > 0,
        "zstd batches took the fast path: {paths:?}"
    );
    assert_eq!(
        paths.recompressed.batches + paths.fast_path.batches,
        batches,
        "{paths:?}"
    );
    for codec in ["lz4", "zstd"] {
        let topic = format!("recodec.{codec}");
        for p in 0..2 {
            let on_target = support::read_batches(&dst, &topic, p).await;
            assert!(on_target
                .iter()
                .all(|b| b.compression() == kferry::batch::Compression::Zstd));
        }
        let v = kclient(&[
            "verify",
            "--source",
            &src,
            "--target",
            &dst,
            "--topic",
            &topic,
            "--partitions",
            "2",
        ]);
        assert_exact(&v, 2000);
    }
}
