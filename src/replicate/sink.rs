//! Sinks: one task per partition, producing its batches to the target in order.
//!
//! Each batch gets a new header (base offset 0, kferry's producer id and epoch, the next
//! sequence number of the partition) and keeps its payload untouched. At most
//! `max_in_flight` (5) Produce requests are outstanding per partition, and responses are
//! handled strictly in the order the requests were sent:
//!
//! - success: the acknowledged position moves past the batch;
//! - DUPLICATE_SEQUENCE_NUMBER, or success without a base offset ("already written"): checked
//!   against the target's log ([`super::dup_check`]); found, it is acknowledged at its real
//!   offset; missing (tansu on S3 can lose a batch whose sequence it kept), it is sent again
//!   under a new producer id;
//! - a retriable error or a lost connection: every batch from the failed one on is sent
//!   again, in order, with the *same* sequence numbers, so the broker drops any it already
//!   wrote (idempotent producer, KIP-98);
//! - OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID or INVALID_PRODUCER_EPOCH: the broker
//!   lost the producer's state; the partition takes a new producer id and renumbers the
//!   unacknowledged batches from 0 (this can duplicate batches that were written but not
//!   acknowledged, and is counted);
//! - anything else stops the partition with an error naming it and the source offsets.
//!
//! After any retry the partition sends one batch at a time until a batch is written anew
//! (the reconnect has settled), so that a batch found missing has nothing written behind it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::dup_check;
use super::hook::{BatchObserver, ForwardedBatch};
use super::partition::{Acked, Chunk, Forward, PartitionShared};
use crate::batch::{rewrite_header, ProducerStamp, RecordBatch, HEADER_LEN};
use crate::metrics::events::{self as metric, ErrorKind};
use crate::offsets::{PartitionMap, SharedMap};
use crate::wire::produce_mux::{PartitionOutcome, ProducePart};
use crate::wire::{Cluster, WireError};

/// What every sink of a route shares.
pub struct SinkContext {
    pub route: Arc<str>,
    pub target: Arc<Cluster>,
    pub max_in_flight: usize,
    pub retry_backoff: Duration,
    pub produce_timeout_ms: i32,
    pub observer: Option<BatchObserver>,
    /// Notified when a chunk is taken, so fetchers can fetch again.
    pub wake: Arc<Notify>,
    /// Producer id and epoch from InitProducerId, shared until a partition must renew its own.
    pub producer: (i64, i16),
}

/// A batch on its way to the target.
struct Outgoing {
    fwd: Forward,
    sequence: Option<i32>,
    /// The acknowledged source position once this batch is acknowledged.
    source_next: i64,
    _budget: Option<Arc<super::budget::Reservation>>,
}

type Pending = Pin<Box<dyn Future<Output = Result<PartitionOutcome, WireError>> + Send + Sync>>;

struct InFlight {
    out: Outgoing,
    header: [u8; HEADER_LEN],
    response: Pending,
}

struct Sink {
    ctx: Arc<SinkContext>,
    part: Arc<PartitionShared>,
    producer: (i64, i16),
    next_sequence: i32,
    pending: VecDeque<Outgoing>,
    window: VecDeque<InFlight>,
    failures: u32,
    /// The target topic, shared with every request this sink sends.
    target_topic: Arc<str>,
    /// Where acknowledged batches' target offsets are recorded (not for repartitioned
    /// topics, whose source and target partitions do not correspond).
    map: Option<SharedMap>,
    /// The target offset after the last acknowledged batch, when known.
    target_next: Option<i64>,
    /// One batch in flight at a time: set by a retry, cleared by a batch written anew.
    settling: bool,
}

/// Runs a partition's sink until `stop` (then drains in-flight batches) or a fatal error.
pub async fn run_sink(
    ctx: Arc<SinkContext>,
    part: Arc<PartitionShared>,
    map: Option<SharedMap>,
    mut input: mpsc::Receiver<Chunk>,
    mut stop: watch::Receiver<bool>,
) {
    let producer = ctx.producer;
    let target_topic = Arc::from(part.target_topic.as_str());
    let target_next = part.acked().target_next;
    let mut sink = Sink {
        ctx,
        part,
        producer,
        next_sequence: 0,
        pending: VecDeque::new(),
        window: VecDeque::new(),
        failures: 0,
        target_topic,
        map,
        target_next,
        settling: false,
    };
    let mut input_open = true;
    loop {
        let stopping = *stop.borrow();
        if sink.part.sink_stopped() || (stopping && sink.window.is_empty()) {
            break;
        }
        if !input_open && sink.pending.is_empty() && sink.window.is_empty() {
            break;
        }
        if !stopping && !sink.fill_window().await {
            continue; // sending failed; fill_window backed off
        }
        let take = !stopping && input_open && sink.pending.len() < sink.ctx.max_in_flight;
        tokio::select! {
            biased;
            result = front(&mut sink.window) => sink.handle_response(result).await,
            chunk = input.recv(), if take => match chunk {
                Some(chunk) => sink.take_chunk(chunk),
                None => input_open = false,
            },
            _ = stop.changed(), if !stopping => {}
        }
    }
}

/// Records an acknowledged batch in the offset map. A fast-path batch's records are its
/// offsets `source_base..=source_last`; anything else unexpected is recorded as unknown, which
/// translates at least once rather than wrongly.
fn record_offsets(map: &SharedMap, out: &Outgoing, base_offset: i64, count: i32) {
    let fwd = &out.fwd;
    let target_base = (base_offset >= 0).then_some(base_offset);
    let mut map = lock(map);
    match &fwd.source_runs {
        Some(runs) => map.record(runs, target_base, out.source_next),
        None if fwd.source_last.checked_sub(fwd.source_base) == Some(i64::from(count) - 1) => {
            map.record(&[(fwd.source_base, i64::from(count))], target_base, out.source_next)
        }
        None => map.forget_until(out.source_next),
    }
}

fn lock(map: &SharedMap) -> std::sync::MutexGuard<'_, PartitionMap> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for the oldest in-flight response (pends forever when nothing is in flight).
async fn front(window: &mut VecDeque<InFlight>) -> Result<PartitionOutcome, WireError> {
    match window.front_mut() {
        Some(f) => (&mut f.response).await,
        None => std::future::pending().await,
    }
}

impl Sink {
    fn take_chunk(&mut self, chunk: Chunk) {
        self.ctx.wake.notify_one();
        let count = chunk.batches.len();
        for (i, fwd) in chunk.batches.into_iter().enumerate() {
            let source_next = if i + 1 == count {
                chunk.end_offset
            } else {
                fwd.source_last + 1
            };
            self.pending.push_back(Outgoing {
                fwd,
                sequence: None,
                source_next,
                _budget: chunk.budget.clone(),
            });
        }
        if count == 0 {
            self.advance_without_batches(chunk.end_offset);
        }
    }

    /// Skipped control or empty batches move the position once everything before is acked.
    fn advance_without_batches(&mut self, end_offset: i64) {
        if let Some(last) = self.pending.back_mut() {
            last.source_next = last.source_next.max(end_offset);
        } else if let Some(last) = self.window.back_mut() {
            last.out.source_next = last.out.source_next.max(end_offset);
        } else {
            let acked = self.part.acked();
            if end_offset > acked.source_next {
                self.part.ack(Acked {
                    source_next: end_offset,
                    target_next: acked.target_next,
                });
                if let Some(map) = &self.map {
                    lock(map).skip_to(end_offset);
                }
            }
        }
    }

    /// Sends pending batches until the window is full. False when a send failed.
    async fn fill_window(&mut self) -> bool {
        let limit = if self.settling { 1 } else { self.ctx.max_in_flight };
        while self.window.len() < limit {
            let Some(mut out) = self.pending.pop_front() else {
                return true;
            };
            let sequence = *out.sequence.get_or_insert_with(|| {
                let s = self.next_sequence;
                self.next_sequence = next_sequence(s, out.fwd.batch.record_count());
                s
            });
            let stamp = ProducerStamp {
                producer_id: self.producer.0,
                producer_epoch: self.producer.1,
                base_sequence: sequence,
            };
            let header = rewrite_header(&out.fwd.batch, &stamp);
            match self.send(&header, &out.fwd.batch).await {
                Ok(response) => self.window.push_back(InFlight { out, header, response }),
                Err(e) if e.is_retriable() => {
                    metric::wire_error(&self.ctx.route, &e, ErrorKind::ProduceRetriable);
                    self.pending.push_front(out);
                    self.rewind(&format!("send failed: {e}"), true).await;
                    return false;
                }
                Err(e) => {
                    metric::wire_error(&self.ctx.route, &e, ErrorKind::ProduceFatal);
                    self.part.fail(self.describe(&out, &e.to_string()));
                    return false;
                }
            }
        }
        true
    }

    async fn send(&self, header: &[u8; HEADER_LEN], batch: &RecordBatch) -> Result<Pending, WireError> {
        let target = &self.ctx.target;
        let topic = &self.part.target_topic;
        let leader = match target.metadata().leader(topic, self.part.partition) {
            Some(l) => l,
            None => {
                target.refresh_metadata_if_older(self.ctx.retry_backoff).await?;
                target
                    .metadata()
                    .leader(topic, self.part.partition)
                    .ok_or_else(|| WireError::UnknownTopic {
                        cluster: target.name().to_string(),
                        topic: format!("{topic}-{} (no leader)", self.part.partition),
                    })?
            }
        };
        let producer = target.producer(leader).await?;
        let (reply, result) = oneshot::channel();
        producer
            .send(ProducePart {
                topic: self.target_topic.clone(),
                partition: self.part.partition,
                header: *header,
                payload: batch.payload(),
                timeout_ms: self.ctx.produce_timeout_ms,
                reply,
            })
            .await?;
        let target = target.clone();
        Ok(Box::pin(async move {
            result.await.unwrap_or_else(|_| {
                Err(WireError::ConnectionLost {
                    cluster: target.name().to_string(),
                    addr: format!("broker {leader}"),
                    reason: "produce multiplexer ended".to_string(),
                })
            })
        }))
    }

    async fn handle_response(&mut self, result: Result<PartitionOutcome, WireError>) {
        let Some(done) = self.window.pop_front() else { return };
        let outcome = match result {
            Ok(o) => o,
            Err(e) if e.is_retriable() => {
                metric::wire_error(&self.ctx.route, &e, ErrorKind::ProduceRetriable);
                self.window.push_front(done);
                return self.rewind(&e.to_string(), true).await;
            }
            Err(e) => {
                metric::wire_error(&self.ctx.route, &e, ErrorKind::ProduceFatal);
                return self.part.fail(self.describe(&done.out, &e.to_string()));
            }
        };
        if dup_check::is_duplicate_answer(outcome.error_code, outcome.base_offset) {
            return self.check_duplicate(done, outcome.error_code).await;
        }
        match ResponseError::try_from_code(outcome.error_code) {
            None => {
                self.settling = false;
                self.ack(done, outcome.base_offset)
            }
            Some(
                ResponseError::OutOfOrderSequenceNumber
                | ResponseError::UnknownProducerId
                | ResponseError::InvalidProducerEpoch,
            ) => {
                self.window.push_front(done);
                self.reset_producer(outcome.error_code).await;
            }
            Some(e) if e.is_retriable() && !never_accepted(e) => {
                metric::error(&self.ctx.route, ErrorKind::ProduceRetriable);
                self.window.push_front(done);
                self.rewind(&format!("{e}"), true).await;
            }
            Some(e) => {
                metric::error(&self.ctx.route, ErrorKind::ProduceFatal);
                let detail = outcome.message.map(|m| format!(": {m}")).unwrap_or_default();
                self.part
                    .fail(self.describe(&done.out, &format!("{e} (code {}){detail}", e.code())));
            }
        }
    }

    fn ack(&mut self, done: InFlight, base_offset: i64) {
        self.failures = 0;
        let count = done.out.fwd.batch.record_count();
        let target_next = match base_offset >= 0 {
            true => Some(base_offset + i64::from(count)),
            false => self.target_next.map(|t| t + i64::from(count)),
        };
        self.target_next = target_next;
        match &done.out.fwd.ack {
            // A piece of a repartitioned batch: its source partition's tracker moves that
            // partition's position once every piece is acknowledged.
            Some(ticket) => ticket.done(),
            None => self.part.ack(Acked {
                source_next: done.out.source_next,
                target_next,
            }),
        }
        if let Some(map) = &self.map {
            record_offsets(map, &done.out, base_offset, count);
        }
        let c = &self.part.counters;
        metric::batch_acked(&c.replication_latency, &self.ctx.route, &done.out.fwd.batch);
        c.batches_out.fetch_add(1, Ordering::Relaxed);
        c.records_out.fetch_add(count as u64, Ordering::Relaxed);
        c.bytes_out
            .fetch_add(done.out.fwd.batch.len() as u64, Ordering::Relaxed);
        if let Some(observer) = &self.ctx.observer {
            let payload: Bytes = done.out.fwd.batch.payload();
            observer(&ForwardedBatch {
                route: &self.ctx.route,
                source_topic: &self.part.source_topic,
                target_topic: &self.part.target_topic,
                partition: self.part.partition,
                source_partition: done
                    .out
                    .fwd
                    .ack
                    .as_ref()
                    .map_or(self.part.partition, |t| t.tracker.source_partition()),
                source_base_offset: done.out.fwd.source_base,
                source_last_offset: done.out.fwd.source_last,
                target_base_offset: base_offset,
                record_count: count,
                header: &done.header,
                payload: &payload,
            });
        }
    }

    /// Puts every in-flight batch back in front of the pending ones (same sequences), backs
    /// off, and refreshes target metadata when leadership may have moved.
    async fn rewind(&mut self, reason: &str, refresh: bool) {
        while let Some(f) = self.window.pop_back() {
            self.pending.push_front(f.out);
        }
        self.failures = self.failures.saturating_add(1);
        self.settling = true;
        self.part.counters.produce_retries.fetch_add(1, Ordering::Relaxed);
        // Exponential, capped, with a per-partition jitter so that many partitions failing
        // together (a broker restart) do not all come back at the same instant.
        let base = self
            .ctx
            .retry_backoff
            .saturating_mul(1 << self.failures.min(4))
            .min(Duration::from_secs(2));
        let jitter = base.mul_f64(f64::from(self.part.partition.rem_euclid(16)) / 64.0);
        let backoff = base + jitter;
        tracing::warn!(route = %self.ctx.route, partition = %self.part.label(), "produce retry in {backoff:?}: {reason}");
        tokio::time::sleep(backoff).await;
        if refresh {
            let _ = self.ctx.target.refresh_metadata_if_older(self.ctx.retry_backoff).await;
        }
    }

    /// A batch answered "already written": acknowledged at its real offset if the target holds
    /// it, else sent again, from it on, under a new producer id.
    async fn check_duplicate(&mut self, done: InFlight, code: i16) {
        let later = self.window.iter().map(|f| &f.out).chain(&self.pending);
        let sent = std::iter::once(&done.out).chain(later.filter(|o| o.sequence.is_some()));
        let tail = dup_check::tail_records(sent.map(|o| o.fwd.batch.record_count()));
        let topic = &self.part.target_topic;
        let (cluster, expected) = (self.ctx.target.name(), self.target_next);
        let found = dup_check::locate(
            &self.ctx.target,
            topic,
            self.part.partition,
            &done.out.fwd.batch,
            expected,
            tail,
        );
        match found.await {
            Ok(Some(offset)) => {
                self.part.counters.duplicates_verified.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(route = %self.ctx.route, cluster, topic = %topic, partition = self.part.partition,
                    offset, expected, source_offset = done.out.fwd.source_base,
                    "batch answered as a duplicate (code {code}) found on the target at offset {offset}");
                self.ack(done, offset);
            }
            Ok(None) => {
                self.part.counters.duplicates_resent.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(route = %self.ctx.route, cluster, topic = %topic, partition = self.part.partition,
                    offset = expected, source_offset = done.out.fwd.source_base,
                    "batch answered as a duplicate (code {code}) is missing on the target; sending it again under a new producer id");
                self.window.push_front(done);
                self.reset_producer(code).await;
            }
            Err(e) if e.is_retriable() => {
                self.window.push_front(done);
                self.rewind(&format!("checking a duplicate answer: {e}"), true).await;
            }
            Err(e) => {
                let reason = format!("checking a duplicate answer (code {code}) on the target: {e}");
                self.part.fail(self.describe(&done.out, &reason));
            }
        }
    }

    /// Takes a new producer id and renumbers every unacknowledged batch from sequence 0.
    async fn reset_producer(&mut self, code: i16) {
        metric::error(&self.ctx.route, ErrorKind::ProducerReset);
        self.rewind(&format!("producer state lost on the target (error code {code})"), false)
            .await;
        match self.ctx.target.init_producer_id().await {
            Ok(producer) => {
                self.producer = producer;
                self.next_sequence = 0;
                for out in &mut self.pending {
                    out.sequence = None;
                }
                self.part.counters.producer_resets.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(route = %self.ctx.route, partition = %self.part.label(),
                    "new producer id {} epoch {}; batches written but not acknowledged may be duplicated", producer.0, producer.1);
            }
            Err(e) => tracing::warn!(route = %self.ctx.route, "InitProducerId failed, will retry: {e}"),
        }
    }

    fn describe(&self, out: &Outgoing, error: &str) -> String {
        format!(
            "route '{}': producing {} (source offsets {}..={}, {} bytes) to cluster '{}' topic '{}' partition {} failed: {error}",
            self.ctx.route,
            self.part.label(),
            out.fwd.source_base,
            out.fwd.source_last,
            out.fwd.batch.len(),
            self.ctx.target.name(),
            self.part.target_topic,
            self.part.partition
        )
    }
}

/// Errors that Kafka calls retriable but that the same bytes will meet again: sending the
/// batch again cannot help, so the partition stops instead of retrying forever.
fn never_accepted(error: ResponseError) -> bool {
    matches!(
        error,
        ResponseError::CorruptMessage
            | ResponseError::InvalidRecord
            | ResponseError::MessageTooLarge
            | ResponseError::RecordListTooLarge
    )
}

/// Kafka sequence numbers wrap to 0 after `i32::MAX`.
fn next_sequence(sequence: i32, records: i32) -> i32 {
    ((i64::from(sequence) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::next_sequence;

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(next_sequence(0, 10), 10);
        assert_eq!(next_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 2, 5), 2);
    }
}
