//! Fetch: one request per source broker for all the partitions it leads.
//!
//! The request is encoded with `kafka-protocol`; the response is decoded by
//! [`super::fetch_response`], which checks every length read off the wire before it
//! allocates. The `records` of each partition come back as a `Bytes` slice of the response
//! frame, so the batches kferry forwards are views into the buffer the kernel read the
//! response into.
//!
//! Versions up to 16 are used. From v13 on, topics are named by topic id (KIP-516), which
//! kferry takes from Metadata; when a topic id is unknown it stays at v12. Partitions of
//! topics that were not asked for are dropped.
//!
//! References: Kafka `FetchRequest.json`, `FetchResponse.json`; KIP-74 (max_bytes),
//! KIP-227 (fetch sessions, not used yet: every fetch is a full fetch, session epoch -1).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use uuid::Uuid;

use super::conn::Connection;
use super::decode::{LeaderIdAndEpoch, NodeEndpoint};
use super::error::{check_code, WireError};
use super::fetch_response::{EpochEndOffset, FetchResponse};

/// Read only committed data (the log up to the last stable offset).
pub const READ_COMMITTED: i8 = 1;

/// What to fetch from one partition.
#[derive(Debug, Clone)]
pub struct PartitionFetch {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
}

/// Request-wide fetch settings (Kafka consumer config names in the docs).
#[derive(Debug, Clone, Copy)]
pub struct FetchParams {
    /// `fetch.max.wait.ms`.
    pub max_wait_ms: i32,
    /// `fetch.min.bytes`.
    pub min_bytes: i32,
    /// `fetch.max.bytes`.
    pub max_bytes: i32,
    /// 0 = read_uncommitted, 1 = read_committed.
    pub isolation_level: i8,
}

/// An aborted transaction listed by the broker for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// One partition of a Fetch response.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    pub topic: String,
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub aborted: Option<Vec<AbortedTxn>>,
    /// Concatenated batches; the last one may be cut short.
    pub records: Bytes,
    /// The replica to fetch from next (KIP-392, v11+), or -1.
    pub preferred_read_replica: i32,
    /// Set when the broker found that the log diverges at this epoch (v12+); only sent
    /// when the request carries `last_fetched_epoch`, which kferry does not yet.
    pub diverging_epoch: Option<EpochEndOffset>,
    /// The leader the broker knows of, sent with `NOT_LEADER_OR_FOLLOWER` and
    /// `FENCED_LEADER_EPOCH` (KIP-951, v12+).
    pub current_leader: Option<LeaderIdAndEpoch>,
    /// How to reach `current_leader`, from the response's `node_endpoints` (v16+).
    pub leader_endpoint: Option<Arc<NodeEndpoint>>,
}

/// Sends one Fetch request for `partitions` and returns what came back per partition.
pub async fn fetch(
    conn: &Connection,
    params: FetchParams,
    partitions: &[PartitionFetch],
) -> Result<Vec<FetchedPartition>, WireError> {
    let cap = if partitions.iter().all(|p| !p.topic_id.is_nil()) {
        16
    } else {
        12
    };
    let version = conn.version_for::<FetchRequest>(cap)?;
    let use_ids = version >= 13;
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut names_by_id: HashMap<Uuid, String> = HashMap::new();
    for p in partitions {
        let fp = FetchPartition::default()
            .with_partition(p.partition)
            .with_current_leader_epoch(-1)
            .with_fetch_offset(p.fetch_offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(p.partition_max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == p.topic) {
            Some(t) => t.partitions.push(fp),
            None => {
                names_by_id.insert(p.topic_id, p.topic.clone());
                let mut t = FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(p.topic.clone())))
                    .with_partitions(vec![fp]);
                if use_ids {
                    t = t.with_topic_id(p.topic_id);
                }
                topics.push(t);
            }
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(-1))
                .with_replica_epoch(-1),
        )
        .with_max_wait_ms(params.max_wait_ms)
        .with_min_bytes(params.min_bytes)
        .with_max_bytes(params.max_bytes)
        .with_isolation_level(params.isolation_level)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    let response = call(conn, &request, version).await?;
    check_code(conn.cluster(), response.error_code, || {
        format!("Fetch from {}", conn.addr())
    })?;
    let requested = Requested {
        by_id: use_ids.then_some(&names_by_id),
        names: partitions.iter().map(|p| p.topic.as_str()).collect(),
    };
    Ok(fetched_partitions(conn, response, &requested))
}

/// The topics a request asked for: by id from v13 on, by name before.
struct Requested<'a> {
    by_id: Option<&'a HashMap<Uuid, String>>,
    names: HashSet<&'a str>,
}

/// Flattens a response into its partitions, named as the request named them.
fn fetched_partitions(conn: &Connection, response: FetchResponse, requested: &Requested) -> Vec<FetchedPartition> {
    let endpoints: HashMap<i32, Arc<NodeEndpoint>> = response
        .node_endpoints
        .into_iter()
        .map(|e| (e.node_id, Arc::new(e)))
        .collect();
    let mut out = Vec::new();
    for t in response.responses {
        // A topic that was not asked for is not wanted (and its name, from the wire, is
        // not copied into every one of its partitions).
        let name = match requested.by_id {
            Some(by_id) => by_id.get(&t.topic_id).map(String::as_str),
            None => requested.names.get(t.topic.as_str()).copied(),
        };
        let Some(name) = name else {
            tracing::debug!(cluster = conn.cluster(), addr = conn.addr(), topic = %t.topic, topic_id = %t.topic_id,
                "Fetch response has a topic that was not asked for; ignored");
            continue;
        };
        for p in t.partitions {
            let leader_endpoint = p.current_leader.and_then(|l| endpoints.get(&l.leader_id).cloned());
            out.push(FetchedPartition {
                topic: name.to_string(),
                partition: p.partition_index,
                error_code: p.error_code,
                high_watermark: p.high_watermark,
                last_stable_offset: p.last_stable_offset,
                log_start_offset: p.log_start_offset,
                aborted: p.aborted_transactions,
                records: p.records.unwrap_or_default(),
                preferred_read_replica: p.preferred_read_replica,
                diverging_epoch: p.diverging_epoch,
                current_leader: p.current_leader,
                leader_endpoint,
            });
        }
    }
    out
}

/// Sends `request` and decodes the response with kferry's own checked decoder.
async fn call(conn: &Connection, request: &FetchRequest, version: i16) -> Result<FetchResponse, WireError> {
    let protocol_error = |message: String| WireError::Protocol {
        cluster: conn.cluster().to_string(),
        addr: conn.addr().to_string(),
        api: "Fetch",
        version,
        message,
    };
    let mut body = BytesMut::new();
    request
        .encode(&mut body, version)
        .map_err(|e| protocol_error(format!("encode: {e}")))?;
    let response = conn.send(FetchRequest::KEY, version, vec![body.freeze()]).await?;
    FetchResponse::decode(response, version).map_err(|e| protocol_error(format!("decode: {e}")))
}
