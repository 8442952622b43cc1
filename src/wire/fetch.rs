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
//! Fetchers use fetch sessions (KIP-227, v7+) through [`SessionFetcher`]: the first
//! request to a broker is full (epoch 0) and creates a session; later ones carry only the
//! partitions added or changed since (a new fetch offset, mostly) and forget those no
//! longer wanted, and the broker answers only for partitions with news. A session error
//! (70, 71, 106), a failed request or a new connection falls back to a full request; a
//! broker that gives no session (tansu) gets full requests at epoch 0. The bookkeeping is
//! sans-I/O, in [`super::fetch_session`]. [`fetch`] (reconciliation's one-partition reads)
//! sends sessionless requests (session 0, epoch -1).
//!
//! A [`SessionFetcher`] may carry the cluster's `client.rack` as `rack_id` (v11+, KIP-392);
//! the broker's answer then names a `preferred_read_replica` to fetch from instead.
//!
//! References: Kafka `FetchRequest.json`, `FetchResponse.json`; KIP-74 (max_bytes),
//! KIP-227 (fetch sessions), KIP-392 (fetch from the closest replica), KIP-516 (topic ids).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic, ReplicaState};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use uuid::Uuid;

use super::conn::Connection;
use super::decode::{LeaderIdAndEpoch, NodeEndpoint};
use super::error::{check_code, WireError};
use super::fetch_response::{EpochEndOffset, FetchResponse};
use super::fetch_session::{
    FetchSession, FetchState, Forgotten, SessionEvent, SessionRequest, Wanted, FINAL_EPOCH, MIN_TOPIC_ID_VERSION,
};

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

impl PartitionFetch {
    /// A read of `topic`-`partition` at `offset` (at most `max_bytes`), and the broker to send
    /// it to, from `cluster`'s cached metadata.
    pub fn at_leader(
        cluster: &super::Cluster,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
    ) -> Result<(i32, PartitionFetch), super::WireError> {
        let meta = cluster.metadata();
        let leader = meta
            .leader(topic, partition)
            .ok_or_else(|| super::WireError::UnknownTopic {
                cluster: cluster.name().to_string(),
                topic: format!("{topic}-{partition} (no leader)"),
            })?;
        let request = PartitionFetch {
            topic: topic.to_string(),
            topic_id: meta.topics.get(topic).map(|t| t.id).unwrap_or_default(),
            partition,
            fetch_offset: offset,
            partition_max_bytes: max_bytes,
        };
        Ok((leader, request))
    }
}

/// What a fetcher knows of a partition's leader epochs; -1 is unknown (not sent).
///
/// `current_leader_epoch` (v9+, KIP-320) lets the broker fence a fetcher with stale metadata
/// (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH). `last_fetched_epoch` (v12+) is the leader
/// epoch of the last batch fetched: when the leader's log for that epoch ends before the
/// fetch offset, the log was truncated under the fetcher and the answer carries a
/// `diverging_epoch` instead of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchEpochs {
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
}

impl Default for FetchEpochs {
    fn default() -> FetchEpochs {
        FetchEpochs {
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
        }
    }
}

impl PartitionFetch {
    /// What a fetch session compares: everything the request says about the partition.
    fn state(&self) -> FetchState {
        self.state_with(FetchEpochs::default(), 0)
    }

    /// The state with `epochs`, as far as `version` carries them.
    fn state_with(&self, epochs: FetchEpochs, version: i16) -> FetchState {
        FetchState {
            topic_id: self.topic_id,
            fetch_offset: self.fetch_offset,
            partition_max_bytes: self.partition_max_bytes,
            current_leader_epoch: if version >= 9 { epochs.current_leader_epoch } else { -1 },
            last_fetched_epoch: if version >= 12 { epochs.last_fetched_epoch } else { -1 },
            log_start_offset: -1,
        }
    }
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
    /// when the request carries `last_fetched_epoch` ([`FetchEpochs`]).
    pub diverging_epoch: Option<EpochEndOffset>,
    /// The leader the broker knows of, sent with `NOT_LEADER_OR_FOLLOWER` and
    /// `FENCED_LEADER_EPOCH` (KIP-951, v12+).
    pub current_leader: Option<LeaderIdAndEpoch>,
    /// How to reach `current_leader`, from the response's `node_endpoints` (v16+).
    pub leader_endpoint: Option<Arc<NodeEndpoint>>,
}

/// Sends one Fetch request for `partitions`, without a session, and returns what came back
/// per partition.
pub async fn fetch(
    conn: &Connection,
    params: FetchParams,
    partitions: &[PartitionFetch],
) -> Result<Vec<FetchedPartition>, WireError> {
    let version = fetch_version(conn, partitions)?;
    let states: Vec<FetchState> = partitions.iter().map(PartitionFetch::state).collect();
    let plan = SessionRequest::sessionless(partitions.len());
    let request = build_request(params, version, partitions, &states, &plan);
    let response = call(conn, &request, version).await?;
    check_code(conn.cluster(), response.error_code, || {
        format!("Fetch from {}", conn.addr())
    })?;
    Ok(fetched_partitions(conn, response, &Requested::new(partitions, version)))
}

/// Fetches from one broker in a fetch session (KIP-227), one request at a time.
///
/// The session belongs to the connection it was made on: a fetch over another connection
/// (the old one failed and was replaced) starts a new one. See [`FetchSession`] for when
/// requests are full and what incremental ones carry.
#[derive(Debug, Default)]
pub struct SessionFetcher {
    session: FetchSession,
    conn: Weak<Connection>,
    /// The broker declined a session already (logged once).
    declined: bool,
    /// `client.rack`, sent as `rack_id` (v11+, KIP-392); empty for none.
    rack_id: StrBytes,
}

impl SessionFetcher {
    /// No session yet: the first fetch is a full one.
    pub fn new() -> SessionFetcher {
        SessionFetcher::default()
    }

    /// Sends `rack` as the requests' `rack_id` (KIP-392): a broker with a rack-aware
    /// replica selector may then answer with a `preferred_read_replica` in that rack.
    pub fn with_rack_id(mut self, rack: &str) -> SessionFetcher {
        self.rack_id = StrBytes::from_string(rack.to_string());
        self
    }

    /// The session's bookkeeping.
    pub fn session(&self) -> &FetchSession {
        &self.session
    }

    /// Sends the next Fetch of the session for `partitions` (every partition wanted; the
    /// request carries only what the session needs) and returns the partitions the broker
    /// answered for. A partition left out of an incremental answer had nothing new.
    ///
    /// A session error (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH,
    /// FETCH_SESSION_TOPIC_ID_ERROR) returns no partitions: the next fetch is a full one.
    pub async fn fetch(
        &mut self,
        conn: &Arc<Connection>,
        params: FetchParams,
        partitions: &[PartitionFetch],
    ) -> Result<Vec<FetchedPartition>, WireError> {
        self.fetch_with_epochs(conn, params, partitions, &[]).await
    }

    /// [`SessionFetcher::fetch`] with each partition's leader epochs (`epochs` shares
    /// `partitions`' indexes; a partition without an entry sends none).
    pub async fn fetch_with_epochs(
        &mut self,
        conn: &Arc<Connection>,
        params: FetchParams,
        partitions: &[PartitionFetch],
        epochs: &[FetchEpochs],
    ) -> Result<Vec<FetchedPartition>, WireError> {
        if !Weak::ptr_eq(&self.conn, &Arc::downgrade(conn)) {
            self.session.handle_failure();
            self.conn = Arc::downgrade(conn);
        }
        let version = fetch_version(conn, partitions)?;
        let states: Vec<FetchState> = partitions
            .iter()
            .enumerate()
            .map(|(i, p)| p.state_with(epochs.get(i).copied().unwrap_or_default(), version))
            .collect();
        let wanted: Vec<Wanted> = partitions
            .iter()
            .zip(&states)
            .map(|(p, s)| Wanted {
                topic: &p.topic,
                partition: p.partition,
                state: *s,
            })
            .collect();
        let plan = self.session.build_request(&wanted, version);
        let request = build_request(params, version, partitions, &states, &plan).with_rack_id(self.rack_id.clone());
        let response = match call(conn, &request, version).await {
            Ok(response) => response,
            Err(e) => {
                self.session.handle_failure();
                return Err(e);
            }
        };
        let event = self.session.handle_response(response.error_code, response.session_id);
        if self.log_event(conn, &plan, event) {
            return Ok(Vec::new());
        }
        check_code(conn.cluster(), response.error_code, || {
            format!("Fetch from {}", conn.addr())
        })?;
        Ok(fetched_partitions(conn, response, &Requested::new(partitions, version)))
    }

    /// Closes the session on the broker, if it may hold one (a last request at epoch -1
    /// with no partitions), so that its slot is freed at once. Best effort: errors are
    /// ignored, and nothing is sent if the connection is gone.
    pub async fn close(&mut self) {
        let Some(id) = self.session.poll_close() else {
            return;
        };
        let Some(conn) = self.conn.upgrade().filter(|c| !c.is_poisoned()) else {
            return;
        };
        let Ok(version) = conn.version_for::<FetchRequest>(16) else {
            return;
        };
        let params = FetchParams {
            max_wait_ms: 0,
            min_bytes: 1,
            max_bytes: 1,
            isolation_level: READ_COMMITTED,
        };
        let plan = SessionRequest {
            session_id: id,
            epoch: FINAL_EPOCH,
            send: Vec::new(),
            forget: Vec::new(),
        };
        let request = build_request(params, version, &[], &[], &plan);
        match call(&conn, &request, version).await {
            Ok(_) => tracing::debug!(
                cluster = conn.cluster(),
                addr = conn.addr(),
                "fetch session {id} closed"
            ),
            Err(e) => tracing::debug!(
                cluster = conn.cluster(),
                addr = conn.addr(),
                "closing fetch session {id}: {e}"
            ),
        }
    }

    /// Logs what the response did to the session; true for a session error (the answer
    /// carries no partitions and the next request is full).
    fn log_event(&mut self, conn: &Connection, plan: &SessionRequest, event: SessionEvent) -> bool {
        let (cluster, addr) = (conn.cluster(), conn.addr());
        match event {
            SessionEvent::Created(id) => {
                tracing::debug!(
                    cluster,
                    addr,
                    "fetch session {id} created with {} partitions",
                    plan.send.len()
                );
            }
            SessionEvent::Declined if !self.declined => {
                self.declined = true;
                tracing::debug!(
                    cluster,
                    addr,
                    "broker gives no fetch session: every fetch is a full one"
                );
            }
            SessionEvent::Closed => {
                tracing::debug!(cluster, addr, "fetch session {} closed by the broker", plan.session_id)
            }
            SessionEvent::Reset(code) if is_session_error(code) => {
                tracing::info!(
                    cluster,
                    addr,
                    "fetch session {} lost ({}); the next fetch is a full one",
                    plan.session_id,
                    error_name(code)
                );
                return true;
            }
            _ => {}
        }
        false
    }
}

/// The top-level errors that concern the session only.
fn is_session_error(code: i16) -> bool {
    [
        ResponseError::FetchSessionIdNotFound,
        ResponseError::InvalidFetchSessionEpoch,
        ResponseError::FetchSessionTopicIdError,
    ]
    .iter()
    .any(|e| e.code() == code)
}

fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e} (code {code})"),
        None => format!("code {code}"),
    }
}

/// Up to v16 when every topic id is known, else v12 (topics by name).
fn fetch_version(conn: &Connection, partitions: &[PartitionFetch]) -> Result<i16, WireError> {
    let cap = match partitions.iter().all(|p| !p.topic_id.is_nil()) {
        true => 16,
        false => 12,
    };
    conn.version_for::<FetchRequest>(cap)
}

/// A Fetch request carrying the partitions `plan` sends (with `states`, which share
/// `partitions`' indexes) and forgets, in its session and epoch.
fn build_request(
    params: FetchParams,
    version: i16,
    partitions: &[PartitionFetch],
    states: &[FetchState],
    plan: &SessionRequest,
) -> FetchRequest {
    let use_ids = version >= MIN_TOPIC_ID_VERSION;
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut topic_at: HashMap<&str, usize> = HashMap::new();
    for &i in &plan.send {
        let (p, s) = (&partitions[i], &states[i]);
        let fp = FetchPartition::default()
            .with_partition(p.partition)
            .with_current_leader_epoch(s.current_leader_epoch)
            .with_fetch_offset(s.fetch_offset)
            .with_last_fetched_epoch(s.last_fetched_epoch)
            .with_log_start_offset(s.log_start_offset)
            .with_partition_max_bytes(s.partition_max_bytes);
        let at = *topic_at.entry(p.topic.as_str()).or_insert_with(|| {
            let mut t = FetchTopic::default().with_topic(TopicName(StrBytes::from_string(p.topic.clone())));
            if use_ids {
                t = t.with_topic_id(s.topic_id);
            }
            topics.push(t);
            topics.len() - 1
        });
        topics[at].partitions.push(fp);
    }
    FetchRequest::default()
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
        .with_session_id(plan.session_id)
        .with_session_epoch(plan.epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten_topics(&plan.forget, use_ids))
}

/// `forgotten_topics_data`: partitions grouped by topic id (v13+) or name.
fn forgotten_topics(forget: &[Forgotten], use_ids: bool) -> Vec<ForgottenTopic> {
    let mut out: Vec<ForgottenTopic> = Vec::new();
    for f in forget {
        let same = |t: &&mut ForgottenTopic| match use_ids {
            true => t.topic_id == f.topic_id,
            false => t.topic.0.as_str() == f.topic,
        };
        match out.iter_mut().find(same) {
            Some(t) => t.partitions.push(f.partition),
            None => {
                let mut t = ForgottenTopic::default().with_partitions(vec![f.partition]);
                t = match use_ids {
                    true => t.with_topic_id(f.topic_id),
                    false => t.with_topic(TopicName(StrBytes::from_string(f.topic.clone()))),
                };
                out.push(t);
            }
        }
    }
    out
}

/// The topics a request asked for, in the request or earlier in its session: by id from
/// v13 on, by name before.
struct Requested<'a> {
    by_id: Option<HashMap<Uuid, &'a str>>,
    names: HashSet<&'a str>,
}

impl<'a> Requested<'a> {
    fn new(partitions: &'a [PartitionFetch], version: i16) -> Requested<'a> {
        let by_id = (version >= MIN_TOPIC_ID_VERSION)
            .then(|| partitions.iter().map(|p| (p.topic_id, p.topic.as_str())).collect());
        Requested {
            by_id,
            names: partitions.iter().map(|p| p.topic.as_str()).collect(),
        }
    }
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
        let name = match &requested.by_id {
            Some(by_id) => by_id.get(&t.topic_id).copied(),
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

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::Decodable;

    use super::*;

    fn partition(topic: &str, id: u128, partition: i32, fetch_offset: i64) -> PartitionFetch {
        PartitionFetch {
            topic: topic.to_string(),
            topic_id: Uuid::from_u128(id),
            partition,
            fetch_offset,
            partition_max_bytes: 1000,
        }
    }

    /// Encodes the request `plan` describes at `version` and decodes it as a broker would.
    fn round_trip(partitions: &[PartitionFetch], plan: &SessionRequest, version: i16) -> FetchRequest {
        let params = FetchParams {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 1 << 20,
            isolation_level: READ_COMMITTED,
        };
        let states: Vec<FetchState> = partitions.iter().map(PartitionFetch::state).collect();
        let mut body = BytesMut::new();
        build_request(params, version, partitions, &states, plan)
            .encode(&mut body, version)
            .unwrap();
        FetchRequest::decode(&mut body.freeze(), version).unwrap()
    }

    #[test]
    fn requests_carry_the_session_and_forget_by_name_or_id() {
        let partitions = [
            partition("a", 1, 0, 10),
            partition("b", 2, 3, 30),
            partition("a", 1, 2, 20),
        ];
        let plan = SessionRequest {
            session_id: 7,
            epoch: 4,
            send: vec![0, 2],
            forget: vec![
                Forgotten {
                    topic: "b".to_string(),
                    topic_id: Uuid::from_u128(2),
                    partition: 1,
                },
                Forgotten {
                    topic: "b".to_string(),
                    topic_id: Uuid::from_u128(2),
                    partition: 5,
                },
            ],
        };
        for version in [7, 12, 13, 16] {
            let r = round_trip(&partitions, &plan, version);
            assert_eq!((r.session_id, r.session_epoch), (7, 4), "v{version}");
            assert_eq!(r.topics.len(), 1, "v{version}: only topic a is sent");
            let sent: Vec<(i32, i64)> = r.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition, p.fetch_offset))
                .collect();
            assert_eq!(sent, [(0, 10), (2, 20)], "v{version}");
            assert_eq!(r.forgotten_topics_data.len(), 1, "v{version}");
            let forgotten = &r.forgotten_topics_data[0];
            assert_eq!(forgotten.partitions, [1, 5], "v{version}");
            match version >= 13 {
                true => {
                    assert_eq!(r.topics[0].topic_id, Uuid::from_u128(1));
                    assert_eq!(forgotten.topic_id, Uuid::from_u128(2));
                }
                false => {
                    assert_eq!(r.topics[0].topic.as_str(), "a");
                    assert_eq!(forgotten.topic.as_str(), "b");
                }
            }
        }
    }

    #[test]
    fn epochs_are_sent_only_from_the_versions_that_carry_them() {
        let partitions = [partition("a", 1, 0, 10)];
        let epochs = FetchEpochs {
            current_leader_epoch: 4,
            last_fetched_epoch: 3,
        };
        let params = FetchParams {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 1 << 20,
            isolation_level: READ_COMMITTED,
        };
        for (version, want) in [(8, (-1, -1)), (11, (4, -1)), (12, (4, 3)), (16, (4, 3))] {
            let states = [partitions[0].state_with(epochs, version)];
            let mut body = BytesMut::new();
            build_request(params, version, &partitions, &states, &SessionRequest::sessionless(1))
                .encode(&mut body, version)
                .unwrap();
            let r = FetchRequest::decode(&mut body.freeze(), version).unwrap();
            let p = &r.topics[0].partitions[0];
            assert_eq!((p.current_leader_epoch, p.last_fetched_epoch), want, "v{version}");
        }
    }

    #[test]
    fn sessionless_requests_carry_every_partition_at_epoch_minus_1() {
        let partitions = [partition("a", 1, 0, 10), partition("b", 2, 0, 5)];
        let r = round_trip(&partitions, &SessionRequest::sessionless(2), 16);
        assert_eq!((r.session_id, r.session_epoch), (0, -1));
        assert_eq!(r.topics.len(), 2);
        assert!(r.forgotten_topics_data.is_empty());
    }
}
