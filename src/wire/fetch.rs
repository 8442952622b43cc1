//! Fetch: one request per source broker for all the partitions it leads.
//!
//! The `records` of each partition come back as a `Bytes` slice of the response frame:
//! `kafka-protocol` decodes them without copying, so the batches kferry forwards are views
//! into the buffer the kernel read the response into.
//!
//! Versions up to 16 are used. From v13 on, topics are named by topic id (KIP-516), which
//! kferry takes from Metadata; when a topic id is unknown it stays at v12.
//!
//! References: Kafka `FetchRequest.json`, `FetchResponse.json`; KIP-74 (max_bytes),
//! KIP-227 (fetch sessions, not used yet: every fetch is a full fetch, session epoch -1).

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::conn::Connection;
use super::error::{check_code, WireError};

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
    let response = conn.call(&request, version).await?;
    check_code(conn.cluster(), response.error_code, || {
        format!("Fetch from {}", conn.addr())
    })?;
    let mut out = Vec::new();
    for t in response.responses {
        let name = match use_ids {
            true => names_by_id
                .get(&t.topic_id)
                .cloned()
                .unwrap_or_else(|| t.topic_id.to_string()),
            false => t.topic.0.to_string(),
        };
        for p in t.partitions {
            out.push(FetchedPartition {
                topic: name.clone(),
                partition: p.partition_index,
                error_code: p.error_code,
                high_watermark: p.high_watermark,
                last_stable_offset: p.last_stable_offset,
                log_start_offset: p.log_start_offset,
                aborted: p.aborted_transactions.map(|list| {
                    list.iter()
                        .map(|a| AbortedTxn {
                            producer_id: a.producer_id.0,
                            first_offset: a.first_offset,
                        })
                        .collect()
                }),
                records: p.records.unwrap_or_default(),
            });
        }
    }
    Ok(out)
}
