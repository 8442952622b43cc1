//! Fetch (key 1), v4-16: the partition's log bytes as the test stored them.
//!
//! For each partition the response holds the log from the first entry whose last offset is
//! at or above the fetch offset (so a batch may start before it, as from Kafka), below the
//! high watermark (read_uncommitted) or the last stable offset (read_committed), whole
//! entries only unless [`super::FakeOptions::cut_partial_entries`]. Size limits follow
//! KIP-74: `partition_max_bytes` per partition and `max_bytes` for the response, except
//! that the first entry of the first partition with data is returned even when larger.
//!
//! A fetch offset below the log start or above the log end gets OFFSET_OUT_OF_RANGE; an
//! unknown topic UNKNOWN_TOPIC_OR_PARTITION (by name, v4-12) or UNKNOWN_TOPIC_ID (v13+).
//! read_committed responses list the aborted transactions that overlap the data returned.
//! When no partition has data, the fetch waits up to `max_wait_ms` for an append.
//!
//! Fetch sessions (KIP-227) are kept as Kafka keeps them, see [`super::fetch_session`]:
//! an incremental answer holds only the partitions with news. Each request is recorded
//! with its session, epoch and partition counts ([`super::FetchSeen`]).
//!
//! Preferred read replicas (KIP-392), with [`super::FakeOptions::follower_rack`]: node 0
//! answers a request whose `rack_id` is the follower's rack at once, every partition without
//! error getting `preferred_read_replica` 1 and no records; node 1 serves the logs like node
//! 0, or, after [`super::FakeBroker::fail_follower`], that error for every partition (and
//! node 0 then serves every rack itself, as Kafka's selector skips replicas out of sync).
//!
//! Diverging epochs (KIP-320, v12+): a request with `last_fetched_epoch` whose epoch ends
//! before the fetch offset in the partition's leader epoch cache (built from the appended v2
//! batches' `partitionLeaderEpoch`, see [`super::FakeBroker::truncate`]) is answered, before
//! any offset check, with `diverging_epoch` and no records, as Kafka's `Partition.readRecords`
//! does.
//!
//! Not faked: `min_bytes` above 1, fencing by `current_leader_epoch`.
//!
//! References: Kafka `FetchRequest.json`, `FetchResponse.json`, `ReplicaManager.readFromLog`;
//! KIP-74, KIP-98, KIP-227, KIP-516.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};

use super::fetch_session::{Context, SessionPartition};
use super::state::State;
use super::{Shared, FOLLOWER_ID};

/// `isolation_level` of a read_committed request.
const READ_COMMITTED: i8 = 1;
/// Longest wait honoured, whatever `max_wait_ms` says (keeps a stuck test bounded).
const MAX_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn handle(
    shared: &Shared,
    request: FetchRequest,
    version: i16,
    seen: usize,
    node: i32,
) -> FetchResponse {
    let enabled = !shared.options.no_fetch_sessions;
    let context = shared.sessions().new_context(&request, version, enabled);
    let mut changed = shared.changed.subscribe();
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let read = loop {
        changed.borrow_and_update();
        let read = {
            let state = shared.state();
            read_all(
                &state,
                shared.options.cut_partial_entries,
                &request,
                context.partitions(),
                version,
            )
        };
        // Checked on every wake-up: a failure or a healing applies to long polls waiting.
        match replica_role(shared, &request, version, node) {
            Role::FailedFollower(code) => break with_error(read.partitions, code),
            Role::Redirect => break redirected(read.partitions),
            Role::Serve => {}
        }
        if matches!(context, Context::Error(_))
            || read.has_data
            || tokio::time::timeout_at(deadline, changed.changed()).await.is_err()
        {
            break read.partitions;
        }
    };
    let answer = shared.sessions().finish(context, read);
    let response = match answer {
        Ok((session_id, partitions)) => FetchResponse::default()
            .with_session_id(session_id)
            .with_responses(by_topic(partitions)),
        Err(code) => FetchResponse::default().with_error_code(code),
    };
    shared.record_fetch(seen, &request, &response);
    response
}

/// What was read for every partition of an answer.
struct ReadAll {
    partitions: Vec<(SessionPartition, PartitionData)>,
    has_data: bool,
}

/// Reads `partitions` as things stand.
fn read_all(
    state: &State,
    cut: bool,
    request: &FetchRequest,
    partitions: &[SessionPartition],
    version: i16,
) -> ReadAll {
    let mut remaining = usize::try_from(request.max_bytes).unwrap_or(0);
    let mut has_data = false;
    let mut out = Vec::with_capacity(partitions.len());
    for p in partitions {
        let name = match version >= 13 {
            true => state.topic_name(p.topic_id).map(str::to_string),
            false => Some(p.topic.to_string()),
        };
        let read = ReadParams {
            committed: request.isolation_level == READ_COMMITTED,
            limit: usize::try_from(p.fetch.partition_max_bytes).unwrap_or(0).min(remaining),
            min_one: !has_data,
            cut,
        };
        let data = partition(state, name.as_deref(), &p.fetch, read, version);
        let len = data.records.as_ref().map_or(0, Bytes::len);
        remaining = remaining.saturating_sub(len);
        has_data |= len > 0;
        out.push((p.clone(), data));
    }
    ReadAll {
        partitions: out,
        has_data,
    }
}

/// What a node does with a Fetch, as far as the follower (KIP-392) goes.
enum Role {
    Serve,
    /// The leader points the follower's rack at the follower.
    Redirect,
    /// The follower answers every partition with this error.
    FailedFollower(i16),
}

fn replica_role(shared: &Shared, request: &FetchRequest, version: i16, node: i32) -> Role {
    let failed = shared.follower_error.load(std::sync::atomic::Ordering::Relaxed);
    let rack = shared.options.follower_rack.as_deref();
    match node {
        FOLLOWER_ID if failed != 0 => Role::FailedFollower(failed),
        FOLLOWER_ID => Role::Serve,
        // A failed follower is out of the ISR: the leader no longer points anyone at it.
        _ if failed == 0 && version >= 11 && rack == Some(request.rack_id.as_str()) => Role::Redirect,
        _ => Role::Serve,
    }
}

/// Every partition without error points at the follower, with no records (KIP-392).
fn redirected(partitions: Vec<(SessionPartition, PartitionData)>) -> Vec<(SessionPartition, PartitionData)> {
    partitions
        .into_iter()
        .map(|(p, data)| match data.error_code {
            0 => (
                p,
                data.with_preferred_read_replica(BrokerId(FOLLOWER_ID))
                    .with_records(Some(Bytes::new()))
                    .with_aborted_transactions(None),
            ),
            _ => (p, data),
        })
        .collect()
}

/// Every partition gets `code` and no records (an injected follower failure).
fn with_error(partitions: Vec<(SessionPartition, PartitionData)>, code: i16) -> Vec<(SessionPartition, PartitionData)> {
    partitions
        .into_iter()
        .map(|(p, data)| {
            let data = PartitionData::default()
                .with_partition_index(data.partition_index)
                .with_error_code(code)
                .with_high_watermark(-1);
            (p, data)
        })
        .collect()
}

/// Groups consecutive partitions of the same topic into the response's topics.
fn by_topic(partitions: Vec<(SessionPartition, PartitionData)>) -> Vec<FetchableTopicResponse> {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (p, data) in partitions {
        match topics.last_mut() {
            Some(t) if t.topic == p.topic && t.topic_id == p.topic_id => t.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(p.topic)
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    topics
}

/// How much of one partition to read.
struct ReadParams {
    committed: bool,
    /// Bytes allowed: the partition's limit, or what is left of the response's.
    limit: usize,
    /// Return the first entry even when larger than `limit` (the first partition with data).
    min_one: bool,
    cut: bool,
}

fn partition(state: &State, topic: Option<&str>, p: &FetchPartition, read: ReadParams, version: i16) -> PartitionData {
    let data = PartitionData::default().with_partition_index(p.partition);
    let Some(log) = topic.and_then(|t| state.partition(t, p.partition)) else {
        let error = match version >= 13 {
            true => ResponseError::UnknownTopicId,
            false => ResponseError::UnknownTopicOrPartition,
        };
        return data.with_error_code(error.code()).with_high_watermark(-1);
    };
    let data = data
        .with_high_watermark(log.high_watermark())
        .with_last_stable_offset(log.last_stable_offset())
        .with_log_start_offset(log.log_start_offset);
    // KIP-320, as Kafka's `Partition.readRecords` checks it before reading: the log for the
    // epoch of the fetcher's last batch must reach the fetch offset.
    if version >= 12 && p.last_fetched_epoch >= 0 {
        let (epoch, end_offset) = log.end_offset_for(p.last_fetched_epoch);
        if end_offset < p.fetch_offset || epoch < p.last_fetched_epoch {
            let diverging = EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset);
            return data.with_diverging_epoch(diverging).with_records(Some(Bytes::new()));
        }
    }
    if p.fetch_offset < log.log_start_offset || p.fetch_offset > log.log_end_offset() {
        return data.with_error_code(ResponseError::OffsetOutOfRange.code());
    }
    let max_offset = match read.committed {
        true => log.last_stable_offset(),
        false => log.high_watermark(),
    };
    let records = log.read(p.fetch_offset, max_offset, read.limit, read.min_one, read.cut);
    let aborted = read.committed.then(|| {
        log.aborted_between(p.fetch_offset, records.upper_offset)
            .into_iter()
            .map(|a| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset)
            })
            .collect()
    });
    data.with_aborted_transactions(aborted)
        .with_records(Some(records.records))
}
