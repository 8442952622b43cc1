//! Fetch sessions (KIP-227) end to end: kferry against the FAKE source broker
//! (`kferry_protocol_tests::fake`, which keeps sessions as Kafka does and records every
//! Fetch it gets), replicating to a real tansu target.
//!
//! - With sessions, a route over 1,000 partitions sends one full Fetch, then incremental
//!   ones carrying only the partitions whose fetch offset moved.
//! - When the broker loses a session (eviction: error 70; a skewed epoch: error 71) the
//!   next Fetch is a full one, and no record is lost or duplicated.
//! - A broker without sessions (as tansu 0.6) gets full Fetches every time.
//!
//! Every batch kferry sends passes the strict validator (`BatchAudit`), and the target is
//! read back record by record.

mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Broker;
use kferry::batch::decode_batch;
use kferry::{ClusterConfig, RouteConfig, Running};
use kferry_protocol_tests::craft::CraftedBatch;
use kferry_protocol_tests::fake::{FakeBroker, FakeOptions, FetchSeen, RequestSeen};
use support::BatchAudit;

const TOPIC: &str = "sessions";

/// The fake source: one topic, and what each partition's log holds.
struct Source {
    fake: FakeBroker,
    partitions: i32,
    /// partition -> every value appended, in offset order (offset = index).
    logs: BTreeMap<i32, Vec<String>>,
}

impl Source {
    async fn start(options: FakeOptions, partitions: i32) -> Source {
        let fake = FakeBroker::start_with(options).await.unwrap();
        fake.create_topic(TOPIC, partitions);
        Source {
            fake,
            partitions,
            logs: BTreeMap::new(),
        }
    }

    /// Appends one v2 batch of `n` records to each of `partitions`.
    fn append(&mut self, partitions: &[i32], n: usize) {
        for &p in partitions {
            let log = self.logs.entry(p).or_default();
            let base = log.len() as i64;
            let values: Vec<String> = (0..n).map(|i| format!("p{p}-{}", base + i as i64)).collect();
            let records: Vec<(&[u8], &[u8])> = values.iter().map(|v| (v.as_bytes(), v.as_bytes())).collect();
            let batch = CraftedBatch::keyed(base, support::now_ms(), &records);
            self.fake.append(TOPIC, p, &batch.encode());
            log.extend(values);
        }
    }

    fn records(&self) -> u64 {
        self.logs.values().map(|l| l.len() as u64).sum()
    }

    /// Waits until kferry has acknowledged every record appended.
    async fn wait_replicated(&self, running: &Running) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = running.status();
            assert!(running.errors().is_empty(), "{:?}", running.errors());
            let done = self.logs.iter().all(|(&p, log)| {
                status
                    .iter()
                    .any(|(_, s)| s.partition == p && s.acked.source_next == log.len() as i64)
            });
            if done {
                return;
            }
            assert!(Instant::now() < deadline, "not replicated: {:?}", self.logs.keys());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Checks the target holds exactly what was appended, every batch passed the validator,
    /// and the progress committed on the source is at the log ends.
    async fn check(&self, target: &Broker, audit: &BatchAudit) {
        let (_, records, violations) = audit.summary();
        assert!(violations.is_empty(), "strict validator: {violations:#?}");
        assert_eq!(records, self.records(), "records kferry sent, all partitions");
        for (&p, log) in &self.logs {
            let mut got = Vec::new();
            for batch in support::read_batches(&target.bootstrap(), TOPIC, p).await {
                for r in decode_batch(&batch, 64 << 20).expect("decodable target batch") {
                    got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                }
            }
            assert_eq!(&got, log, "{TOPIC}-{p}: no record lost or duplicated");
            let committed = self.fake.committed("kferry-sessions", TOPIC, p).expect("committed");
            assert_eq!(committed.offset, log.len() as i64, "{TOPIC}-{p}: committed offset");
        }
    }

    /// The fetchers' requests: every Fetch but reconciliation's and closing ones (epoch -1).
    fn fetcher_requests(&self) -> Vec<(RequestSeen, FetchSeen)> {
        self.fake.fetches().into_iter().filter(|(_, f)| f.epoch >= 0).collect()
    }
}

async fn start(source: &Source, target: &Broker, audit: &BatchAudit) -> Running {
    let observer = audit.clone();
    let replicator = kferry::Replicator::builder()
        .cluster(ClusterConfig::new("fake-src", vec![source.fake.bootstrap()]))
        .cluster(ClusterConfig::new("dst", vec![target.bootstrap()]))
        .route(RouteConfig::new("sessions", "fake-src", "dst").include(&[TOPIC]))
        .on_batch(move |b| observer.observe(b))
        .build()
        .unwrap();
    let running = replicator.start().await.expect("route starts");
    support::wait_caught_up(&running, Duration::from_secs(60)).await;
    running
}

/// Prints the fetchers' requests: the first `head` in full, then a summary.
fn print_fetches(title: &str, fetches: &[(RequestSeen, FetchSeen)], head: usize) {
    println!("{title}: {} Fetch requests from the fetcher", fetches.len());
    println!("  #  kind         session     epoch  parts  forgot  bytes  answered  error");
    for (i, (r, f)) in fetches.iter().enumerate().take(head) {
        let kind = if f.is_full() { "full" } else { "incremental" };
        println!(
            "{i:>3}  {kind:<11} {:>8} {:>9} {:>6} {:>7} {:>6} {:>9} {:>6}",
            f.session_id, f.epoch, f.partitions, f.forgotten, r.bytes, f.response_partitions, f.error_code
        );
    }
    let (full, incremental): (Vec<_>, Vec<_>) = fetches.iter().partition(|(_, f)| f.is_full());
    let stats = |v: &[&(RequestSeen, FetchSeen)]| {
        let bytes: Vec<usize> = v.iter().map(|(r, _)| r.bytes).collect();
        let parts: Vec<usize> = v.iter().map(|(_, f)| f.partitions).collect();
        format!(
            "{} requests, bytes min {} max {}, partitions min {} max {} total {}",
            v.len(),
            bytes.iter().min().unwrap_or(&0),
            bytes.iter().max().unwrap_or(&0),
            parts.iter().min().unwrap_or(&0),
            parts.iter().max().unwrap_or(&0),
            parts.iter().sum::<usize>()
        )
    };
    println!("  full:        {}", stats(&full));
    println!("  incremental: {}", stats(&incremental));
}

/// 1,000 partitions (`KFERRY_SESSION_PARTITIONS` to change it; docs/benchmarks.md uses
/// 10,000), data on a few: one full Fetch with all of them, then incremental Fetches that
/// carry only the partitions that got records, far smaller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_fetches_carry_only_changed_partitions() {
    let count: i32 = std::env::var("KFERRY_SESSION_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .max(1000);
    let mut source = Source::start(FakeOptions::default(), count).await;
    source.append(&[7, 500, 999], 3);
    let target = Broker::start_memory("sessions-dst");
    let audit = BatchAudit::default();
    let running = start(&source, &target, &audit).await;
    source.wait_replicated(&running).await;
    let rounds: [&[i32]; 4] = [&[1, 2, 3], &[500], &[10, 20, 999], &[1, 998]];
    for partitions in rounds {
        source.append(partitions, 2);
        source.wait_replicated(&running).await;
    }
    let fetches = source.fetcher_requests();
    running.shutdown().await.expect("clean shutdown");
    print_fetches("with sessions", &fetches, 12);
    source.check(&target, &audit).await;

    let (first_bytes, first) = (fetches[0].0.bytes, fetches[0].1);
    assert!(first.is_full() && first.session_id == 0, "{first:?}");
    assert_eq!(
        first.partitions, count as usize,
        "the full request lists every partition"
    );
    assert_ne!(first.response_session_id, 0, "the fake created a session");
    let incremental = &fetches[1..];
    assert!(incremental.len() >= rounds.len(), "{incremental:?}");
    for (i, (r, f)) in incremental.iter().enumerate() {
        let previous = fetches[i].1;
        assert!(!f.is_full(), "request {}: {f:?}", i + 1);
        assert_eq!((f.session_id, f.epoch), (first.response_session_id, i as i32 + 1));
        assert_eq!((f.error_code, f.response_session_id), (0, first.response_session_id));
        // Exactly the partitions whose fetch offset moved: those the last answer had records for.
        assert_eq!(f.partitions, previous.response_with_records, "{f:?} after {previous:?}");
        assert_eq!(f.forgotten, 0, "every partition stays ready: {f:?}");
        assert!(f.response_partitions <= 3, "answers carry only news: {f:?}");
        assert!(
            r.bytes * 20 < first_bytes,
            "{} bytes vs {first_bytes} for the full request",
            r.bytes
        );
    }
    let with_records: usize = fetches.iter().map(|(_, f)| f.response_with_records).sum();
    let appended = 3 + rounds.iter().map(|r| r.len()).sum::<usize>();
    assert_eq!(with_records, appended, "each append came back once");
}

/// The fake evicts the session (next request: FETCH_SESSION_ID_NOT_FOUND), then skews its
/// epoch (INVALID_FETCH_SESSION_EPOCH): each time the next Fetch is a full one creating a
/// new session, and every record arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_errors_fall_back_to_full_fetches_without_loss_or_duplicates() {
    let mut source = Source::start(FakeOptions::default(), 100).await;
    source.append(&[0, 1, 99], 2);
    let target = Broker::start_memory("sessions-errors-dst");
    let audit = BatchAudit::default();
    let running = start(&source, &target, &audit).await;
    source.wait_replicated(&running).await;

    assert_eq!(source.fake.evict_fetch_sessions(), 1);
    source.append(&[0, 5, 99], 3);
    source.wait_replicated(&running).await;
    source.append(&[5], 1);
    source.wait_replicated(&running).await;
    assert_eq!(source.fake.skew_fetch_session_epochs(), 1);
    source.append(&[1, 5, 98], 2);
    source.wait_replicated(&running).await;
    source.append(&[0], 1);
    source.wait_replicated(&running).await;
    let fetches = source.fetcher_requests();
    running.shutdown().await.expect("clean shutdown");
    print_fetches("session errors", &fetches, fetches.len().min(40));
    source.check(&target, &audit).await;

    let errors: Vec<usize> = (0..fetches.len()).filter(|&i| fetches[i].1.error_code != 0).collect();
    let codes: Vec<i16> = errors.iter().map(|&i| fetches[i].1.error_code).collect();
    assert_eq!(codes, [70, 71], "one error per fault: {errors:?}");
    for (&i, close) in errors.iter().zip([false, true]) {
        let failed = fetches[i].1;
        let (_, next) = fetches[i + 1];
        assert!(!failed.is_full(), "{failed:?}");
        assert!(next.is_full() && next.epoch == 0, "a full request follows: {next:?}");
        assert_eq!(next.partitions, 100, "{next:?}");
        // After 70 the session is gone; after 71 the full request closes it.
        let expected = if close { failed.session_id } else { 0 };
        assert_eq!(next.session_id, expected, "{next:?}");
        assert!(next.response_session_id != 0 && next.response_session_id != failed.session_id);
        let (_, after) = fetches[i + 2];
        assert_eq!(
            (after.session_id, after.epoch),
            (next.response_session_id, 1),
            "{after:?}"
        );
    }
    let full = fetches.iter().filter(|(_, f)| f.is_full()).count();
    assert_eq!(full, 3, "the first request and one after each fault");
}

/// A broker without sessions (session id 0 to every request, as tansu 0.6): every Fetch is
/// full, and data still flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_sessions_gets_full_fetches() {
    let options = FakeOptions {
        no_fetch_sessions: true,
        ..FakeOptions::default()
    };
    let mut source = Source::start(options, 100).await;
    source.append(&[0, 99], 2);
    let target = Broker::start_memory("sessions-off-dst");
    let audit = BatchAudit::default();
    let running = start(&source, &target, &audit).await;
    source.wait_replicated(&running).await;
    source.append(&[3, 99], 4);
    source.wait_replicated(&running).await;
    let fetches = source.fetcher_requests();
    running.shutdown().await.expect("clean shutdown");
    print_fetches("without sessions", &fetches, 5);
    source.check(&target, &audit).await;

    assert!(fetches.len() >= 2, "{fetches:?}");
    for (r, f) in &fetches {
        assert_eq!((f.session_id, f.epoch), (0, 0), "full, asking for a session: {f:?}");
        assert_eq!(f.response_session_id, 0);
        assert_eq!((f.partitions, f.forgotten), (source.partitions as usize, 0));
        assert_eq!(r.bytes, fetches[0].0.bytes, "every request is the same size");
    }
    assert_eq!(source.fake.fetch_sessions(), 0);
}
