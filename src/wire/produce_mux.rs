//! One Produce request for many partitions: a multiplexer per Produce connection.
//!
//! Every partition has its own sink (ordering, sequences, retries), but a request per batch
//! would cost a syscall, a broker request and a response per batch. Sinks instead hand their
//! batches to the multiplexer of the partition leader's connection, which gathers what is
//! queued into one request (at most one batch per partition, as Kafka requires, up to
//! [`MAX_PARTITIONS_PER_REQUEST`] partitions and [`MAX_REQUEST_BYTES`]), sends it, and hands each partition its own result.
//!
//! Order: a sink's batches enter the queue in order; the multiplexer holds them in a FIFO per
//! partition ([`super::produce_gather`]), each request takes the oldest batch of every
//! partition that has one, and requests go on the connection in order. So a partition's
//! batches reach the broker in the order its sink sent them, which idempotent produce needs,
//! and a sink that queues its whole window at once does not cut every request to one batch.
//!
//! Batching comes for free under load: at most [`MAX_IN_FLIGHT_REQUESTS`] requests are
//! outstanding per connection (Kafka's `max.in.flight.requests.per.connection`), and while
//! the multiplexer waits for one to finish, batches queue up for the next. When idle, a
//! batch goes out at once (no linger).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::protocol::Request;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::conn::Connection;
use super::produce::{PartitionBatch, ProduceRequestFrame, PRODUCE_MAX_VERSION};
use super::produce_gather::Gather;
use super::produce_response::ProduceResponse;
use super::WireError;
use crate::batch::HEADER_LEN;

/// Produce requests outstanding per connection.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 5;
/// Partitions gathered into one request (it also bounds the search for a partition already in
/// the request). Gathering makes more batches mid-write when a broker dies; a broker that then
/// answers a lost batch as a duplicate (tansu on S3, docs/DESIGN.md §6) is caught by the sink,
/// which checks such answers against the target (`replicate::dup_check`).
pub const MAX_PARTITIONS_PER_REQUEST: usize = 64;
/// Batch bytes gathered into one request (one larger batch still goes, alone).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// Batches queued per connection before sinks wait.
const QUEUE: usize = 1024;

/// The broker's answer for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOutcome {
    pub error_code: i16,
    pub base_offset: i64,
    pub message: Option<String>,
}

/// A batch for one partition, and where its result goes.
pub struct ProducePart {
    pub topic: Arc<str>,
    pub partition: i32,
    pub header: [u8; HEADER_LEN],
    pub payload: Bytes,
    pub timeout_ms: i32,
    pub reply: oneshot::Sender<Result<PartitionOutcome, WireError>>,
}

/// The sending side of a connection's multiplexer. Cheap to clone.
#[derive(Clone)]
pub struct ProduceSender {
    conn: Arc<Connection>,
    queue: mpsc::Sender<ProducePart>,
}

impl ProduceSender {
    /// Starts the multiplexer of `conn`; it ends when every sender is dropped.
    pub fn spawn(conn: Arc<Connection>) -> ProduceSender {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(conn.clone(), rx));
        ProduceSender { conn, queue }
    }

    /// True while this serves `conn` and the connection is usable.
    pub fn serves(&self, conn: &Arc<Connection>) -> bool {
        Arc::ptr_eq(&self.conn, conn) && !conn.is_poisoned() && !self.queue.is_closed()
    }

    /// Queues a batch. The result arrives on the part's `reply`.
    pub async fn send(&self, part: ProducePart) -> Result<(), WireError> {
        self.queue.send(part).await.map_err(|_| WireError::ConnectionLost {
            cluster: self.conn.cluster().to_string(),
            addr: self.conn.addr().to_string(),
            reason: "produce multiplexer ended".to_string(),
        })
    }
}

async fn run(conn: Arc<Connection>, mut queue: mpsc::Receiver<ProducePart>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT_REQUESTS));
    let mut held: Gather<ProducePart> = Gather::default();
    loop {
        if held.is_empty() {
            match queue.recv().await {
                Some(part) => hold(&mut held, part),
                None => return,
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // Sinks woken by the same response queue their batches now; let them.
        tokio::task::yield_now().await;
        // Bounded: every batch held is one of a sink's at most `max_in_flight` unacknowledged.
        while let Ok(part) = queue.try_recv() {
            hold(&mut held, part);
        }
        let parts = held.take_request(MAX_PARTITIONS_PER_REQUEST, MAX_REQUEST_BYTES);
        match start(&conn, &parts).await {
            Ok((request, version)) => {
                let (cluster, addr) = (conn.cluster().to_string(), conn.addr().to_string());
                tokio::spawn(async move {
                    let result = request.response().await.and_then(|body| {
                        ProduceResponse::decode(body, version).map_err(|e| WireError::Protocol {
                            cluster,
                            addr,
                            api: "Produce",
                            version,
                            message: format!("decode: {e}"),
                        })
                    });
                    drop(slot);
                    match result {
                        Ok(response) => deliver(response, parts),
                        Err(e) => fail(parts, &e),
                    }
                });
            }
            Err(e) => {
                // The connection is gone: nothing held can be sent on it either.
                fail(parts, &e);
                fail(held.drain(), &e);
            }
        }
    }
}

fn hold(held: &mut Gather<ProducePart>, part: ProducePart) {
    let key = (part.topic.clone(), part.partition);
    held.push(key, part.payload.len(), part);
}

/// Encodes one request for `parts` and puts it on the connection.
async fn start(conn: &Connection, parts: &[ProducePart]) -> Result<(super::conn::InFlight, i16), WireError> {
    let version = conn.version_for::<ProduceRequest>(PRODUCE_MAX_VERSION)?;
    let mut topics: Vec<(&str, Vec<PartitionBatch>)> = Vec::new();
    for p in parts {
        let batch = PartitionBatch {
            partition: p.partition,
            header: p.header,
            payload: p.payload.clone(),
        };
        match topics.iter_mut().find(|(t, _)| *t == &*p.topic) {
            Some((_, batches)) => batches.push(batch),
            None => topics.push((&p.topic, vec![batch])),
        }
    }
    let frame = ProduceRequestFrame {
        transactional_id: None,
        acks: -1,
        timeout_ms: parts.iter().map(|p| p.timeout_ms).max().unwrap_or(30_000),
        topics,
    };
    let request = conn.start(ProduceRequest::KEY, version, frame.encode(version)).await?;
    Ok((request, version))
}

/// Hands each part the response's result for its partition.
fn deliver(response: ProduceResponse, parts: Vec<ProducePart>) {
    for part in parts {
        let found = response
            .responses
            .iter()
            .filter(|t| *t.name == *part.topic)
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == part.partition);
        let result = match found {
            Some(p) => Ok(PartitionOutcome {
                error_code: p.error_code,
                base_offset: p.base_offset,
                message: p.error_message.clone(),
            }),
            None => Err(WireError::Protocol {
                cluster: String::new(),
                addr: String::new(),
                api: "Produce",
                version: -1,
                message: format!("no result for {}-{}", part.topic, part.partition),
            }),
        };
        let _ = part.reply.send(result);
    }
}

fn fail(parts: Vec<ProducePart>, error: &WireError) {
    for part in parts {
        let _ = part.reply.send(Err(error.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::RecordBatch;
    use crate::wire::{Cluster, ClusterConfig};
    use kferry_protocol_tests::craft::CraftedBatch;
    use kferry_protocol_tests::fake::{FakeBroker, FakeOptions};

    fn produce_requests(fake: &FakeBroker) -> usize {
        fake.requests()
            .iter()
            .filter(|r| r.api_key == ProduceRequest::KEY)
            .count()
    }

    /// Three sinks queue their whole windows (three batches each), one partition after the
    /// other, before the multiplexer runs (a current-thread test runtime runs it only when the
    /// test waits). Cutting at the first repeated partition took 7 requests for this; a batch
    /// of every partition per request takes 3, and each partition's batches land in order.
    #[tokio::test]
    async fn a_request_carries_one_batch_of_every_queued_partition() {
        let options = FakeOptions {
            target: true,
            ..FakeOptions::default()
        };
        let fake = FakeBroker::start_with(options).await.expect("fake broker");
        fake.create_topic("t", 3);
        let cluster = Cluster::new(ClusterConfig::new("dst", vec![fake.bootstrap()]));
        cluster.refresh_metadata(None).await.expect("metadata");
        let leader = cluster.metadata().leader("t", 0).expect("leader");
        let producer = cluster.producer(leader).await.expect("producer");
        let before = produce_requests(&fake);
        let mut replies = Vec::new();
        for partition in 0..3 {
            for i in 0..3 {
                let value = format!("{partition}-{i}");
                let bytes = CraftedBatch::valid(&[value.as_bytes()]).encode();
                let batch = RecordBatch::parse(Bytes::from(bytes)).expect("batch");
                let header: [u8; HEADER_LEN] = batch.as_bytes()[..HEADER_LEN].try_into().expect("header");
                let (reply, rx) = oneshot::channel();
                let part = ProducePart {
                    topic: Arc::from("t"),
                    partition,
                    header,
                    payload: batch.payload(),
                    timeout_ms: 5_000,
                    reply,
                };
                producer.send(part).await.expect("queued");
                replies.push((partition, i, rx));
            }
        }
        for (partition, i, rx) in replies {
            let outcome = rx.await.expect("answered").expect("produced");
            assert_eq!(outcome.error_code, 0, "partition {partition} batch {i}");
            assert_eq!(
                outcome.base_offset,
                i64::from(i),
                "partition {partition} batch {i} out of order"
            );
        }
        assert_eq!(
            produce_requests(&fake) - before,
            3,
            "one request per round of the three partitions"
        );
        for partition in 0..3 {
            assert_eq!(fake.log_end_offset("t", partition), 3);
        }
    }
}
