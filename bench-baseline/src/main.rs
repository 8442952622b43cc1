//! kferry-baseline: the replicator kferry's benchmark compares itself against.
//!
//! It moves data the way MirrorMaker 1 and 2 do: a standard client consumes each record
//! (librdkafka decompresses and parses every batch and checks its CRC), and a standard
//! producer sends it again (librdkafka re-batches, re-compresses and checksums it). kferry
//! instead forwards the fetched batches without decoding them; the difference in CPU per
//! byte between the two is what the benchmark measures.
//!
//! To make that a fair comparison rather than a strawman, this baseline is tuned the way a
//! competent operator would tune MirrorMaker for throughput, and it gives the same guarantees
//! as kferry:
//! - librdkafka (C, no JVM, no garbage collector): the leanest standard client there is,
//!   driven by a `BaseConsumer` polled by the main thread and a `ThreadedProducer` (no
//!   async runtime, no per-record future or channel), with partitions assigned rather than
//!   subscribed (no rebalance);
//! - large fetches, 1 MB producer batches, deep local queues on both sides (`config.rs`);
//! - read_committed, CRC checks, an idempotent acks=all producer, every record to the same
//!   partition with its key, value, headers and timestamp, and source offsets committed
//!   only once the target has acknowledged them.
//!
//! With `--until-caught-up` it stops when every partition has been consumed up to the high
//! watermark it had at start; otherwise it runs until SIGINT or SIGTERM. Either way it then
//! waits for every delivery report and prints one JSON line (`usage.rs`) on stdout; progress
//! goes to stderr. Exit status: 0, 1 if any record failed to be delivered, 2 on other errors.

#![deny(unsafe_code)]

mod config;
mod usage;

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use config::Codec;
use usage::Report;

// A record's source offset travels through the producer as its delivery opaque (a usize).
#[cfg(not(target_pointer_width = "64"))]
compile_error!("kferry-baseline carries 64-bit offsets in a usize");

type BoxError = Box<dyn Error>;

/// How long metadata, watermark and committed-offset requests may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one consumer poll waits for a record.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// How long to wait for delivery reports when the producer's queue is full, before retrying.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(1);
/// How often acknowledged offsets are stored for the next automatic commit.
const STORE_EVERY: Duration = Duration::from_secs(1);
/// How often a progress line goes to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Replicates one topic with librdkafka: consume, then produce each record again.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Source cluster bootstrap server(s).
    #[arg(long, value_name = "HOST:PORT")]
    source_bootstrap: String,
    /// Target cluster bootstrap server(s).
    #[arg(long, value_name = "HOST:PORT")]
    target_bootstrap: String,
    /// Source topic.
    #[arg(long, value_name = "SRC_TOPIC")]
    topic: String,
    /// Target topic; must exist with at least as many partitions as the source.
    #[arg(long, value_name = "DST_TOPIC")]
    target_topic: String,
    /// Codec the producer compresses with.
    #[arg(long, value_enum)]
    compression: Codec,
    /// Consumer group whose committed offsets are the starting point and the progress.
    #[arg(long, value_name = "G", default_value = "kferry-baseline")]
    group: String,
    /// Stop once every partition is consumed up to its high watermark at start.
    #[arg(long)]
    until_caught_up: bool,
    /// Also write the JSON report line to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Override or add a librdkafka consumer setting (repeatable).
    #[arg(long = "consumer-prop", value_name = "KEY=VALUE", value_parser = parse_prop)]
    consumer_props: Vec<(String, String)>,
    /// Override or add a librdkafka producer setting (repeatable).
    #[arg(long = "producer-prop", value_name = "KEY=VALUE", value_parser = parse_prop)]
    producer_props: Vec<(String, String)>,
}

fn parse_prop(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    let outcome = watch_signals().and_then(|stop| run(&args, &stop));
    let totals = match outcome {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kferry-baseline: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match Report::new(totals.records, totals.bytes, started.elapsed(), totals.delivery_errors) {
        Ok(r) => r.to_json(),
        Err(e) => {
            eprintln!("kferry-baseline: getrusage: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{report}");
    if let Some(path) = &args.report {
        if let Err(e) = std::fs::write(path, format!("{report}\n")) {
            eprintln!("kferry-baseline: writing {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if totals.delivery_errors > 0 {
        eprintln!("kferry-baseline: {} records were not delivered", totals.delivery_errors);
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Turns SIGINT and SIGTERM into a flag. The signals are blocked here, before any librdkafka
/// thread exists, so every thread inherits the mask and only the waiting thread sees them.
/// A second signal exits at once.
fn watch_signals() -> Result<Arc<AtomicBool>, BoxError> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    thread::Builder::new().name("signals".into()).spawn(move || loop {
        match signals.wait() {
            Ok(sig) if flag.swap(true, Ordering::Relaxed) => {
                eprintln!("kferry-baseline: second {sig}: exiting without flushing");
                std::process::exit(130);
            }
            Ok(sig) => eprintln!("kferry-baseline: {sig}: stopping, then waiting for deliveries"),
            Err(e) => {
                eprintln!("kferry-baseline: sigwait: {e}");
                return;
            }
        }
    })?;
    Ok(stop)
}

/// What the run moved.
#[derive(Debug, Default)]
struct Totals {
    records: u64,
    bytes: u64,
    delivery_errors: u64,
}

fn run(args: &Args, stop: &AtomicBool) -> Result<Totals, BoxError> {
    let consumer: BaseConsumer<StderrLog> =
        config::consumer(&args.source_bootstrap, &args.group, &args.consumer_props).create_with_context(StderrLog)?;
    let partitions = partition_count(consumer.client(), &args.topic)?;
    // A ThreadedProducer, not a BaseProducer polled from this loop: BaseProducer::poll(0)
    // serves one delivery report event (one produce response) per call, so a loop polling it
    // between records falls behind the producer and fills its queue with served-too-late
    // reports. The ThreadedProducer's thread blocks on the event queue and serves them as
    // they come.
    let producer: ThreadedProducer<Deliveries> =
        config::producer(&args.target_bootstrap, args.compression, &args.producer_props)
            .create_with_context(Deliveries::new(partitions))?;
    let target_partitions = partition_count(producer.client(), &args.target_topic)?;
    if target_partitions < partitions {
        return Err(format!(
            "target topic {} has {target_partitions} partitions, source topic {} has {partitions}",
            args.target_topic, args.topic
        )
        .into());
    }
    let catch_up = if args.until_caught_up {
        Some(CatchUp::query(&consumer, &args.topic, partitions)?)
    } else {
        None
    };
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        // The group's committed offset, else auto.offset.reset (earliest).
        assignment.add_partition_offset(&args.topic, p, Offset::Stored)?;
    }
    consumer.assign(&assignment)?;
    eprintln!(
        "kferry-baseline: {} ({partitions} partitions) at {} -> {} at {}, {}, group {}{}",
        args.topic,
        args.source_bootstrap,
        args.target_topic,
        args.target_bootstrap,
        args.compression.name(),
        args.group,
        match &catch_up {
            Some(c) => format!(", until caught up (ListOffsets: {} offsets to go)", c.behind()),
            None => String::new(),
        }
    );

    let mut pump = Pump {
        consumer: &consumer,
        producer: &producer,
        args,
        stored: vec![-1; partitions as usize],
    };
    let mut totals = pump.run(stop, catch_up)?;

    eprintln!("kferry-baseline: waiting for {} deliveries", producer.in_flight_count());
    // Bounded by message.timeout.ms (5 min): after it every undelivered record fails.
    producer.flush(Timeout::Never)?;
    totals.delivery_errors = producer.context().errors.load(Ordering::Relaxed);
    pump.commit_acked()?;
    Ok(totals)
}

/// The number of partitions of `topic`; an error if the topic does not exist.
fn partition_count<C: ClientContext>(client: &rdkafka::client::Client<C>, topic: &str) -> Result<i32, BoxError> {
    let metadata = client.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let t = metadata
        .topics()
        .first()
        .ok_or_else(|| format!("no metadata for topic {topic}"))?;
    if let Some(err) = t.error() {
        return Err(format!("topic {topic}: {}", RDKafkaErrorCode::from(err)).into());
    }
    match t.partitions().len() {
        0 => Err(format!("topic {topic} has no partitions").into()),
        n => Ok(i32::try_from(n)?),
    }
}

/// The consume-produce loop and the offsets it has stored for commit.
struct Pump<'a> {
    consumer: &'a BaseConsumer<StderrLog>,
    producer: &'a ThreadedProducer<Deliveries>,
    args: &'a Args,
    /// Per partition, the last offset stored for the automatic commit (-1: none yet).
    stored: Vec<i64>,
}

impl Pump<'_> {
    /// Forwards records until `stop` is set or, with `catch_up`, until it is done.
    fn run(&mut self, stop: &AtomicBool, mut catch_up: Option<CatchUp>) -> Result<Totals, BoxError> {
        let started = Instant::now();
        let mut totals = Totals::default();
        let (mut next_store, mut next_progress) = (started, started + PROGRESS_EVERY);
        while !stop.load(Ordering::Relaxed) && !catch_up.as_ref().is_some_and(CatchUp::is_done) {
            match self.consumer.poll(POLL_TIMEOUT) {
                None => {}
                Some(Ok(msg)) => {
                    self.forward(&msg)?;
                    totals.records += 1;
                    totals.bytes += (msg.key_len() + msg.payload_len()) as u64;
                }
                // Only the end of partition counts, not a record at the high watermark: tansu's
                // ListOffsets(latest) is the last batch's base offset + 1, so that record can
                // be followed by more of its batch. The EOF comes from the Fetch response's own
                // high watermark (or last stable offset), after every record before it.
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    if let (Some(c), Some(pos)) = (catch_up.as_mut(), self.position(p)?) {
                        c.handle_position(p, pos);
                    }
                }
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(e.into()),
                // Transient (a broker went away, a fetch failed): librdkafka retries.
                Some(Err(e)) => eprintln!("kferry-baseline: consumer: {e}"),
            }
            let now = Instant::now();
            if now >= next_store {
                self.store_acked()?;
                next_store = now + STORE_EVERY;
            }
            if now >= next_progress {
                let secs = now.duration_since(started).as_secs_f64();
                eprintln!(
                    "kferry-baseline: {} records, {:.1} MB in {secs:.0} s ({:.0} records/s), {} in flight",
                    totals.records,
                    totals.bytes as f64 / 1e6,
                    totals.records as f64 / secs,
                    self.producer.in_flight_count()
                );
                next_progress = now + PROGRESS_EVERY;
            }
        }
        Ok(totals)
    }

    /// Hands one record to the producer, unchanged, for the same partition of the target
    /// topic. While the producer's queue is full it waits for delivery reports to free it and
    /// retries, so no record is ever dropped.
    fn forward(&self, msg: &BorrowedMessage<'_>) -> KafkaResult<()> {
        let mut record: BaseRecord<'_, [u8], [u8], usize> = BaseRecord {
            topic: &self.args.target_topic,
            partition: Some(msg.partition()),
            payload: msg.payload(),
            key: msg.key(),
            timestamp: msg.timestamp().to_millis(),
            headers: msg.headers().map(BorrowedHeaders::detach),
            delivery_opaque: msg.offset() as usize,
        };
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    thread::sleep(QUEUE_FULL_WAIT);
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// The consumer's position in partition `p`: the offset after the last record (or
    /// transaction marker) it returned; `None` before the first one.
    fn position(&self, p: i32) -> KafkaResult<Option<i64>> {
        let positions = self.consumer.position()?;
        Ok(
            match positions.find_partition(&self.args.topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            },
        )
    }

    /// The acknowledged offsets not stored yet, or `None` once any delivery has failed: never
    /// commit past a record the target does not have.
    fn newly_acked(&mut self) -> KafkaResult<Option<TopicPartitionList>> {
        let deliveries = self.producer.context();
        if deliveries.errors.load(Ordering::Relaxed) > 0 {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        for (p, (acked, stored)) in deliveries.acked.iter().zip(self.stored.iter_mut()).enumerate() {
            let next = acked.load(Ordering::Relaxed);
            if next > *stored {
                tpl.add_partition_offset(&self.args.topic, p as i32, Offset::Offset(next))?;
                *stored = next;
            }
        }
        Ok((tpl.count() > 0).then_some(tpl))
    }

    /// Stores what the target acknowledged since the last call, for the next automatic commit.
    fn store_acked(&mut self) -> KafkaResult<()> {
        match self.newly_acked()? {
            Some(tpl) => self.consumer.store_offsets(&tpl),
            None => Ok(()),
        }
    }

    /// Commits every acknowledged offset now (at exit, after the producer is flushed).
    fn commit_acked(&mut self) -> KafkaResult<()> {
        self.store_acked()?;
        let mut tpl = TopicPartitionList::new();
        for (p, &offset) in self.stored.iter().enumerate() {
            if offset >= 0 {
                tpl.add_partition_offset(&self.args.topic, p as i32, Offset::Offset(offset))?;
            }
        }
        if tpl.count() > 0 {
            self.consumer.commit(&tpl, CommitMode::Sync)?;
        }
        Ok(())
    }
}

/// `--until-caught-up`: per partition, the high watermark at start, and whether the consumer
/// has reached it.
#[derive(Debug)]
struct CatchUp {
    high_watermarks: Vec<i64>,
    /// Per partition, the next offset known to be consumed.
    positions: Vec<i64>,
    remaining: usize,
}

impl CatchUp {
    /// `starts[p]` is where partition `p` starts, `high_watermarks[p]` where it is caught up.
    fn new(starts: Vec<i64>, high_watermarks: Vec<i64>) -> CatchUp {
        let remaining = starts.iter().zip(&high_watermarks).filter(|(s, h)| s < h).count();
        CatchUp {
            high_watermarks,
            positions: starts,
            remaining,
        }
    }

    /// Reads each partition's start (the group's committed offset, else the log start) and
    /// high watermark, with ListOffsets. With read_committed that "high watermark" is the last
    /// stable offset, so an open transaction does not keep the run waiting. On tansu 0.6 it is
    /// the last batch's base offset + 1, short of the real end: harmless, because a partition
    /// counts as caught up only at its end of partition (see `Pump::run`).
    fn query<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partitions: i32) -> KafkaResult<CatchUp> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let committed = consumer.committed_offsets(tpl, REQUEST_TIMEOUT)?;
        let (mut starts, mut highs) = (Vec::new(), Vec::new());
        for p in 0..partitions {
            let (low, high) = consumer.fetch_watermarks(topic, p, REQUEST_TIMEOUT)?;
            let start = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o.max(low),
                _ => low,
            };
            starts.push(start);
            highs.push(high);
        }
        Ok(CatchUp::new(starts, highs))
    }

    /// The consumer reached the end of `partition` at `next_offset`.
    fn handle_position(&mut self, partition: i32, next_offset: i64) {
        let p = partition as usize;
        let (Some(pos), Some(&high)) = (self.positions.get_mut(p), self.high_watermarks.get(p)) else {
            return;
        };
        if *pos < high && next_offset >= high {
            self.remaining -= 1;
        }
        *pos = (*pos).max(next_offset);
    }

    fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Offsets between the starts and the high watermarks (transaction markers and aborted
    /// records have offsets too).
    fn behind(&self) -> i64 {
        self.positions
            .iter()
            .zip(&self.high_watermarks)
            .map(|(p, h)| (h - p).max(0))
            .sum()
    }
}

/// Sends librdkafka's warnings and errors to stderr.
struct StderrLog;

impl ClientContext for StderrLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!("kferry-baseline: librdkafka {level:?} {fac}: {log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka reports each end of partition here as well as to poll(), which handles it.
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            eprintln!("kferry-baseline: librdkafka error: {error}: {reason}");
        }
    }
}

impl ConsumerContext for StderrLog {}

/// The producer's delivery reports.
struct Deliveries {
    /// Per partition, the source offset after the last record the target acknowledged. The
    /// idempotent producer delivers each partition in order, so every record before it is
    /// acknowledged too (while `errors` is 0). -1: none yet.
    acked: Vec<AtomicI64>,
    /// Records that finally failed (after librdkafka's own retries).
    errors: AtomicU64,
}

impl Deliveries {
    fn new(partitions: i32) -> Deliveries {
        Deliveries {
            acked: (0..partitions).map(|_| AtomicI64::new(-1)).collect(),
            errors: AtomicU64::new(0),
        }
    }
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        StderrLog.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        StderrLog.error(error, reason);
    }
}

impl ProducerContext for Deliveries {
    /// The record's source offset.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, source_offset: usize) {
        match result {
            Ok(m) => {
                if let Some(acked) = self.acked.get(m.partition() as usize) {
                    acked.fetch_max(source_offset as i64 + 1, Ordering::Relaxed);
                }
            }
            Err((e, m)) => {
                let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n <= 10 || n.is_power_of_two() {
                    eprintln!(
                        "kferry-baseline: delivery failed ({n} so far): partition {} source offset {source_offset}: {e}",
                        m.partition()
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_up_counts_partitions_reaching_their_high_watermark() {
        // p0 empty, p1 already committed up to its end, p2 and p3 behind.
        let mut c = CatchUp::new(vec![0, 7, 0, 5], vec![0, 7, 10, 8]);
        assert_eq!(c.behind(), 13);
        assert!(!c.is_done());
        c.handle_position(2, 10);
        c.handle_position(2, 11); // counted once
        assert!(!c.is_done());
        c.handle_position(3, 6); // a later end of partition has more records
        assert!(!c.is_done());
        c.handle_position(3, 8);
        assert!(c.is_done());
        c.handle_position(9, 100); // unknown partition: ignored
        assert!(c.is_done());
    }

    #[test]
    fn nothing_to_catch_up_is_done_at_once() {
        assert!(CatchUp::new(vec![3, 0], vec![3, 0]).is_done());
    }

    #[test]
    fn props_are_key_value() {
        assert_eq!(parse_prop("linger.ms=5").unwrap(), ("linger.ms".into(), "5".into()));
        assert_eq!(parse_prop("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_prop("=5").is_err());
        assert!(parse_prop("linger.ms").is_err());
    }

    #[test]
    fn cli_parses_the_documented_command_line() {
        let a = Args::try_parse_from([
            "kferry-baseline",
            "--source-bootstrap",
            "127.0.0.1:9092",
            "--target-bootstrap",
            "127.0.0.1:9093",
            "--topic",
            "src",
            "--target-topic",
            "dst",
            "--compression",
            "zstd",
            "--until-caught-up",
        ])
        .unwrap();
        assert_eq!(a.compression, Codec::Zstd);
        assert_eq!(a.group, "kferry-baseline");
        assert!(a.until_caught_up && a.report.is_none());
    }
}
