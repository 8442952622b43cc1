//! Transactions end to end: real transactional producers (librdkafka via kclient), committed
//! and aborted transactions interleaved on the same partitions, several producers at once.
//!
//! tansu 0.6 never fills Fetch's `aborted_transactions`, so kferry must decide each
//! transaction from its control marker (`src/replicate/txn.rs`). The target, read with
//! read_committed and with read_uncommitted, must hold exactly the committed records, in the
//! order they have in the source log, once each.
//!
//! The expected records are computed from kclient's numbering (transaction `k` of a producer
//! holds generator indices `start + k*txn_size ..`, and is aborted when
//! `k % abort_every == abort_every - 1`) and cross-checked against the markers in the source.

mod common;
mod support;

use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{kclient, Broker};
use kferry::batch::{control_type, decode_batch, ControlType, Record, RecordBatch};
use kferry::replicate::PathCounts;
use kferry::RouteConfig;
use support::daemon::{create_topic, tempdir, Guarded};
use support::{read_batches, start_route, wait_caught_up, watermarks, BatchAudit};

const PARTITIONS: i32 = 3;
const TXN_SIZE: u64 = 50;

/// One kclient transactional producer.
#[derive(Clone, Copy)]
struct TxnProducer {
    id: &'static str,
    start: u64,
    count: u64,
    codec: &'static str,
    abort_every: u64,
}

impl TxnProducer {
    fn aborted(&self, i: u64) -> bool {
        let txn = (i - self.start) / TXN_SIZE;
        self.abort_every > 0 && txn % self.abort_every == self.abort_every - 1
    }

    fn indices(&self) -> std::ops::Range<u64> {
        self.start..self.start + self.count
    }

    fn committed(&self) -> impl Iterator<Item = u64> + '_ {
        self.indices().filter(|&i| !self.aborted(i))
    }

    fn spawn(&self, src: &str, topic: &str, extra: &[&str]) -> Guarded {
        Command::new(common::python())
            .arg(common::kclient_script())
            .args(["produce", "--bootstrap", src, "--topic", topic])
            .args(["--partitions", &PARTITIONS.to_string()])
            .args(["--count", &self.count.to_string(), "--start", &self.start.to_string()])
            .args(["--codec", self.codec, "--linger-ms", "5"])
            .args(["--transactional-id", self.id, "--txn-size", &TXN_SIZE.to_string()])
            .args(["--abort-every", &self.abort_every.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .map(Guarded)
            .expect("spawn kclient produce")
    }
}

/// Waits (bounded) for a child to exit and asserts it succeeded.
fn wait_success(child: &mut Guarded, what: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        assert!(start.elapsed() < timeout, "{what} still running after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn index_of(r: &Record) -> u64 {
    let (_, v) = r
        .headers
        .iter()
        .find(|(k, _)| k == "i")
        .expect("every kclient record has header \"i\"");
    std::str::from_utf8(v.as_deref().expect("non-null i"))
        .unwrap()
        .parse()
        .unwrap()
}

/// What the source log of one partition holds, decided by its control markers.
#[derive(Default, Debug)]
struct SourceLog {
    /// Generator indices of committed records (and non-transactional ones), in log order.
    committed: Vec<u64>,
    /// The source offset of each of `committed`.
    committed_offsets: Vec<i64>,
    /// The partition's log end offset.
    end_offset: i64,
    /// Generator indices of records whose transaction was aborted.
    aborted: BTreeSet<u64>,
    committed_batches: u64,
    aborted_batches: u64,
    control_batches: u64,
    /// Data batches whose transaction has no marker yet.
    undecided_batches: u64,
}

/// Reads a source partition raw and decides every transactional batch by the next control
/// marker of its producer id, as a read_committed consumer must.
async fn source_log(src: &str, topic: &str, partition: i32) -> SourceLog {
    let batches = read_batches(src, topic, partition).await;
    let mut log = SourceLog::default();
    // Per position: (batch, its records' indices, fate: Some(true) committed)
    let mut entries: Vec<(RecordBatch, Vec<u64>, Option<bool>)> = Vec::new();
    let mut open: HashMap<i64, Vec<usize>> = HashMap::new();
    for b in batches {
        log.end_offset = b.last_offset() + 1;
        if b.attributes().is_control() {
            log.control_batches += 1;
            let commit = control_type(&b).expect("a transaction marker") == ControlType::Commit;
            for at in open.remove(&b.producer_id()).unwrap_or_default() {
                entries[at].2 = Some(commit);
            }
            continue;
        }
        let records: Vec<u64> = decode_batch(&b, 1 << 26)
            .expect("decodable")
            .iter()
            .map(index_of)
            .collect();
        let fate = if b.attributes().is_transactional() {
            open.entry(b.producer_id()).or_default().push(entries.len());
            None
        } else {
            Some(true)
        };
        entries.push((b, records, fate));
    }
    for (batch, records, fate) in entries {
        match fate {
            Some(true) => {
                log.committed_batches += 1;
                let decoded = decode_batch(&batch, 1 << 26).expect("decodable");
                let offsets = decoded.iter().map(|r| batch.base_offset() + i64::from(r.offset_delta));
                log.committed_offsets.extend(offsets);
                log.committed.extend(records);
            }
            Some(false) => {
                log.aborted_batches += 1;
                log.aborted.extend(records);
            }
            None => log.undecided_batches += 1,
        }
    }
    log
}

/// The generator indices per partition on `bootstrap`, read by the real client.
fn consume_indices(bootstrap: &str, topic: &str, isolation: &str, expect: u64) -> Vec<Vec<u64>> {
    let v = kclient(&[
        "consume",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
        "--isolation",
        isolation,
        "--expect",
        &expect.to_string(),
        "--timeout-s",
        "60",
    ]);
    (0..PARTITIONS)
        .map(|p| {
            v["partitions"][p.to_string()]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["i"].as_u64().expect("record with header i"))
                .collect()
        })
        .collect()
}

/// Asserts that the target, read both ways, holds exactly `expected[p]` on partition `p`.
fn assert_target_exact(dst: &str, topic: &str, expected: &[Vec<u64>]) {
    let total: usize = expected.iter().map(Vec::len).sum();
    for isolation in ["read_committed", "read_uncommitted"] {
        let got = consume_indices(dst, topic, isolation, total as u64);
        for p in 0..PARTITIONS as usize {
            let (g, e) = (&got[p], &expected[p]);
            let unique: BTreeSet<_> = g.iter().collect();
            assert_eq!(
                unique.len(),
                g.len(),
                "{isolation} partition {p}: duplicates on the target"
            );
            if g != e {
                let first = g
                    .iter()
                    .zip(e)
                    .position(|(a, b)| a != b)
                    .unwrap_or(g.len().min(e.len()));
                panic!(
                    "{isolation} partition {p}: target holds {} records, expected {}; first difference at \
                     position {first}: target {:?} expected {:?}",
                    g.len(),
                    e.len(),
                    g.get(first..(first + 5).min(g.len())),
                    e.get(first..(first + 5).min(e.len())),
                );
            }
        }
    }
}

fn expected_partition(indices: impl Iterator<Item = u64>, p: i32) -> BTreeSet<u64> {
    indices.filter(|i| i % PARTITIONS as u64 == p as u64).collect()
}

fn route(topic: &str) -> RouteConfig {
    let mut r = RouteConfig::new("txn", "src", "dst").include(&[topic]);
    r.commit_interval = Duration::from_millis(200);
    r
}

/// Acceptance: three concurrent transactional producers (different transactional ids,
/// disjoint generator ranges, three codecs), committed and aborted transactions interleaved
/// on every partition. The target holds exactly the committed records, in source order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactional_producers_only_committed_records_arrive_in_source_order() {
    let source = Broker::start_memory("txn-mix-src");
    let target = Broker::start_memory("txn-mix-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "txn.mixed";
    create_topic(&src, topic, PARTITIONS as u32);
    let producers = [
        TxnProducer {
            id: "txn-a",
            start: 0,
            count: 900,
            codec: "none",
            abort_every: 2,
        },
        TxnProducer {
            id: "txn-b",
            start: 100_000,
            count: 900,
            codec: "lz4",
            abort_every: 3,
        },
        TxnProducer {
            id: "txn-c",
            start: 200_000,
            count: 900,
            codec: "zstd",
            abort_every: 3,
        },
    ];
    let mut children: Vec<Guarded> = producers.iter().map(|p| p.spawn(&src, topic, &[])).collect();
    for (c, p) in children.iter_mut().zip(&producers) {
        wait_success(c, p.id, Duration::from_secs(180));
    }

    // What the source holds, decided by its markers, must agree with kclient's numbering.
    let mut logs = Vec::new();
    let mut expected = Vec::new();
    for p in 0..PARTITIONS {
        let log = source_log(&src, topic, p).await;
        let committed = expected_partition(producers.iter().flat_map(|x| x.committed()), p);
        let aborted = expected_partition(producers.iter().flat_map(|x| x.indices().filter(|&i| x.aborted(i))), p);
        assert_eq!(log.undecided_batches, 0, "partition {p}: every transaction ended");
        assert!(
            log.aborted_batches > 0 && !log.aborted.is_empty(),
            "partition {p}: the source must really hold aborted data"
        );
        assert_eq!(
            log.aborted, aborted,
            "partition {p}: aborted records per the ABORT markers"
        );
        let in_log: BTreeSet<u64> = log.committed.iter().copied().collect();
        assert_eq!(in_log.len(), log.committed.len(), "partition {p}: source duplicates");
        assert_eq!(
            in_log, committed,
            "partition {p}: committed records per the COMMIT markers"
        );
        expected.push(log.committed.clone());
        logs.push(log);
    }
    let committed_total: usize = expected.iter().map(Vec::len).sum();
    let interleaved = logs.iter().any(|l| {
        // Records of several producers alternate in the log (concurrent transactions).
        l.committed.windows(2).any(|w| w[0] / 100_000 != w[1] / 100_000)
    });
    assert!(interleaved, "the producers' transactions should interleave in the log");

    let audit = BatchAudit::default();
    let running = start_route(&src, &dst, route(topic), &audit).await;
    wait_caught_up(&running, Duration::from_secs(120)).await;
    let paths = support::path_counts(&running);
    assert_translation_exact(&running, &dst, topic, &logs).await;
    running.shutdown().await.expect("clean shutdown");

    let (batches, records, violations) = audit.summary();
    assert!(
        violations.is_empty(),
        "strict validator (no transactional or control bit on the wire): {violations:#?}"
    );
    assert_eq!(records, committed_total as u64, "records the target acknowledged");
    let sum = |f: fn(&SourceLog) -> u64| logs.iter().map(f).sum::<u64>();
    assert_eq!(paths.aborted_dropped.batches, sum(|l| l.aborted_batches), "{paths:?}");
    assert_eq!(paths.control_dropped.batches, sum(|l| l.control_batches), "{paths:?}");
    assert_eq!(paths.fast_path.batches, sum(|l| l.committed_batches), "{paths:?}");
    assert_eq!(
        paths.fast_path.batches, batches,
        "every forwarded batch took the fast path"
    );
    assert_eq!(paths.slow_path_batches(), 0, "{paths:?}");
    assert!(paths.aborted_dropped.batches > 0 && paths.control_dropped.batches > 0);
    for p in 0..PARTITIONS {
        assert!(read_batches(&dst, topic, p)
            .await
            .iter()
            .all(|b| !b.attributes().is_control() && !b.attributes().is_transactional()));
    }

    assert_target_exact(&dst, topic, &expected);
}

/// Every source offset, markers and aborted records included, translates exactly to the
/// target offset of the first committed record at or after it (the one a consumer resuming
/// there must read next), checked against the records the target really holds.
async fn assert_translation_exact(running: &kferry::Running, dst: &str, topic: &str, logs: &[SourceLog]) {
    let maps = running.routes()[0].offset_maps().clone();
    for (p, log) in logs.iter().enumerate() {
        let p = p as i32;
        let mut on_target: Vec<(i64, u64)> = Vec::new();
        for b in read_batches(dst, topic, p).await {
            for r in decode_batch(&b, 1 << 26).expect("decodable") {
                on_target.push((b.base_offset() + i64::from(r.offset_delta), index_of(&r)));
            }
        }
        let target_of = |index: u64| on_target.iter().find(|(_, i)| *i == index).map(|(o, _)| *o);
        let target_end = on_target.last().map_or(0, |(o, _)| o + 1);
        for o in 0..=log.end_offset {
            let next = log.committed_offsets.iter().position(|&s| s >= o);
            let expected = next.map_or(Some(target_end), |k| target_of(log.committed[k]));
            let got = maps.translate(topic, p, o);
            assert_eq!(
                got,
                kferry::offsets::Translation::Exact {
                    target: expected.expect("every committed record is on the target")
                },
                "partition {p}, source offset {o}"
            );
        }
    }
}

/// Restart while a transaction is open. The open transaction holds back the committed
/// records written after it (read_committed order); the committed position stops at its
/// first batch; after the restart, once the transaction commits, everything arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_inside_an_open_transaction_loses_and_duplicates_nothing() {
    let source = Broker::start_memory("txn-open-src");
    let target = Broker::start_memory("txn-open-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "txn.open";
    create_topic(&src, topic, PARTITIONS as u32);
    let release = tempdir("txn-open").join("release");
    let _ = std::fs::remove_file(&release);

    // Transactions 0..=4 of 50 records; 2 is aborted; 4 (200..250) is left open.
    let held = TxnProducer {
        id: "txn-held",
        start: 0,
        count: 250,
        codec: "lz4",
        abort_every: 3,
    };
    let mut holder = held.spawn(&src, topic, &["--hold-open-file", release.to_str().unwrap()]);
    // 250 records + one marker per partition for each of the 4 ended transactions.
    let expected_end = 250 + 4 * PARTITIONS as i64;
    let start = Instant::now();
    loop {
        let mut end = 0;
        for p in 0..PARTITIONS {
            end += watermarks(&src, topic, p).await.1;
        }
        if end == expected_end {
            break;
        }
        assert!(
            end < expected_end && start.elapsed() < Duration::from_secs(120),
            "source holds {end} offsets, waiting for {expected_end}"
        );
        assert!(holder.try_wait().unwrap().is_none(), "the producer ended early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Committed, non-transactional records behind the open transaction.
    kclient(&[
        "produce",
        "--bootstrap",
        &src,
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
        "--count",
        "90",
        "--start",
        "500000",
        "--codec",
        "zstd",
        "--idempotent",
    ]);
    let mut first_held = Vec::new();
    for p in 0..PARTITIONS {
        let batches = read_batches(&src, topic, p).await;
        let last_marker = batches.iter().rposition(|b| b.attributes().is_control()).unwrap();
        let open = &batches[last_marker + 1];
        assert!(
            open.attributes().is_transactional(),
            "partition {p}: the open transaction follows"
        );
        first_held.push(open.base_offset());
    }
    let before_open: u64 = held.committed().filter(|&i| i < 200).count() as u64;

    // First run: the committed transactions before the open one arrive, nothing after it.
    let audit = BatchAudit::default();
    let running = start_route(&src, &dst, route(topic), &audit).await;
    let start = Instant::now();
    loop {
        let status = running.status();
        let settled = status.iter().all(|(_, s)| {
            let p = s.partition as usize;
            s.acked.source_next == first_held[p] && s.high_watermark > first_held[p]
        });
        let out: u64 = status.iter().map(|(_, s)| s.records_out).sum();
        assert!(running.errors().is_empty(), "{:?}", running.errors());
        if settled && out == before_open {
            break;
        }
        assert!(
            out <= before_open && start.elapsed() < Duration::from_secs(60),
            "records out {out}, expected {before_open} (held behind the open transaction): {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !running.caught_up(),
        "an open transaction keeps the route behind the high watermark"
    );
    running.shutdown().await.expect("clean shutdown");
    let group = kclient(&[
        "group-offsets",
        "--bootstrap",
        &src,
        "--group",
        "kferry-txn",
        "--topic",
        topic,
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
    for p in 0..PARTITIONS as usize {
        assert_eq!(
            group["offsets"][p.to_string()].as_i64(),
            Some(first_held[p]),
            "partition {p}: the committed position stops at the open transaction: {group}"
        );
    }

    // The transaction commits while kferry is down; the restarted route completes the copy.
    std::fs::write(&release, b"go").unwrap();
    wait_success(&mut holder, "the held producer", Duration::from_secs(60));
    let running = start_route(&src, &dst, route(topic), &audit).await;
    wait_caught_up(&running, Duration::from_secs(120)).await;
    running.shutdown().await.expect("clean shutdown");
    let (_, _, violations) = audit.summary();
    assert!(violations.is_empty(), "strict validator: {violations:#?}");

    let mut expected = Vec::new();
    for p in 0..PARTITIONS {
        let log = source_log(&src, topic, p).await;
        assert_eq!(log.undecided_batches, 0);
        let committed = expected_partition(held.committed().chain(500_000..500_090), p);
        assert_eq!(log.committed.iter().copied().collect::<BTreeSet<_>>(), committed);
        // The idempotent records were written after the open transaction's records.
        let pos_late = log.committed.iter().position(|&i| i >= 500_000).unwrap();
        assert!(
            log.committed[..pos_late].iter().any(|&i| i >= 200),
            "partition {p}: order in the source"
        );
        expected.push(log.committed);
    }
    assert_target_exact(&dst, topic, &expected);
}

/// A crash between two progress commits leaves batches on the target that the restarted
/// route must recognise (restart reconciliation). With aborted transactions in the source,
/// the source batches between two committed ones are not on the target: reconciliation
/// must skip them as the forwarding path does, or it re-sends what the target holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_restart_with_aborted_transactions_does_not_duplicate() {
    let source = Broker::start_memory("txn-crash-src");
    let target = Broker::start_memory("txn-crash-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "txn.crash";
    create_topic(&src, topic, PARTITIONS as u32);
    let producer = TxnProducer {
        id: "txn-crash",
        start: 0,
        count: 600,
        codec: "snappy",
        abort_every: 2,
    };
    wait_success(
        &mut producer.spawn(&src, topic, &[]),
        producer.id,
        Duration::from_secs(120),
    );

    // Run 1 replicates everything and "crashes": no progress is ever committed.
    let audit = BatchAudit::default();
    let mut no_commits = route(topic);
    no_commits.commit_interval = Duration::from_secs(3600);
    let running = start_route(&src, &dst, no_commits, &audit).await;
    wait_caught_up(&running, Duration::from_secs(120)).await;
    drop(running);
    let on_target: i64 = {
        let mut n = 0;
        for p in 0..PARTITIONS {
            n += watermarks(&dst, topic, p).await.1;
        }
        n
    };
    let committed_total = producer.committed().count() as i64;
    assert_eq!(on_target, committed_total, "run 1 copied every committed record");

    // Run 2 must find all of it already there.
    let running = start_route(&src, &dst, route(topic), &audit).await;
    wait_caught_up(&running, Duration::from_secs(120)).await;
    let paths: PathCounts = support::path_counts(&running);
    running.shutdown().await.expect("clean shutdown");
    let mut expected = Vec::new();
    for p in 0..PARTITIONS {
        expected.push(source_log(&src, topic, p).await.committed);
    }
    let mut after = 0;
    for p in 0..PARTITIONS {
        after += watermarks(&dst, topic, p).await.1;
    }
    assert_eq!(
        after,
        committed_total,
        "the restarted route re-sent {} records already on the target ({paths:?})",
        after - committed_total
    );
    assert_target_exact(&dst, topic, &expected);
}
