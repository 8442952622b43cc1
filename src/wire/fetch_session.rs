//! Fetch sessions (KIP-227), the client side: what the next Fetch to one broker must carry.
//!
//! Sans-I/O: [`FetchSession`] takes the partitions a fetcher wants, with the fetch state of
//! each ([`FetchState`]), and says what the next request carries ([`SessionRequest`]):
//! session id, epoch, the partitions to send and the partitions to forget. It then takes
//! the response's top-level error code and session id ([`FetchSession::handle_response`]),
//! or the news that no response will come ([`FetchSession::handle_failure`]). It does no
//! I/O and keeps no clock; [`super::fetch::SessionFetcher`] drives it over a connection.
//!
//! # The protocol
//!
//! - A *full* request (epoch 0, `INITIAL`) lists every partition wanted. If it names a
//!   session id, the broker first closes that session. The broker answers with a new
//!   session id, or with 0 when it keeps no session for this client (tansu never does;
//!   Kafka does not when its cache, `max.incremental.fetch.session.cache.slots`, is full).
//! - In a session, requests carry epochs 1, 2, ... (after `i32::MAX` comes 1). Each lists
//!   only the partitions that were added or whose fetch state changed since the broker last
//!   saw them, and names in `forgotten_topics_data` those to drop. The broker keeps the rest
//!   from before. Its answer lists only partitions with news (records, an error, a new high
//!   watermark or log start offset...): a partition left out had nothing.
//! - Epoch -1 (`FINAL`) means "no session": a full request that creates none, and closes
//!   the session it names. Below Fetch v7 there are no session fields at all.
//!
//! # Choices
//!
//! - **Any doubt ends the session.** A top-level error, a lost connection, a timeout, a
//!   request whose future was dropped before its answer (the next
//!   [`FetchSession::build_request`] sees it still in flight), or a new connection: the
//!   next request is a full one. It names the old session id so that the broker frees its
//!   slot, except after FETCH_SESSION_ID_NOT_FOUND (70), where the id is known to be gone
//!   (as the Java client's `FetchSessionHandler` does). INVALID_FETCH_SESSION_EPOCH (71) and
//!   FETCH_SESSION_TOPIC_ID_ERROR (106) are resets like any other error.
//! - **A broker without sessions gets full requests at epoch 0,** not -1: the bytes are the
//!   same, a broker whose session cache was only full for a while can give a session later,
//!   and it is what the Java consumer sends, so brokers know it.
//! - **A partition not wanted this round is forgotten**, as the Java consumer does with a
//!   paused partition, and sent in full when wanted again. Keeping it would make the broker
//!   read and return its records, which the fetcher has no room for. Forgetting costs a
//!   few bytes and re-adding one partition entry, still far less than a full request.
//! - **Topic ids fix the session's naming.** A session made at v13+ names topics by id; a
//!   request at v12 or lower in it would get error 106, so a change of naming starts a new
//!   session. In a session by id, a partition whose topic id changed is forgotten under the
//!   old id and sent under the new one.
//!
//! References: KIP-227; Kafka `FetchRequest.json`, `FetchResponse.json`,
//! `clients/.../FetchSessionHandler.java`, `common/requests/FetchMetadata.java`,
//! `core/.../server/FetchSession.scala` (the broker side).

use std::hash::{Hash, Hasher};

use indexmap::{Equivalent, IndexMap};
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

/// Session id of a request without a session (Kafka's `INVALID_SESSION_ID`).
pub const NO_SESSION: i32 = 0;
/// Epoch of a full request that asks for a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// Epoch of a full request that wants no session (and closes the one it names).
pub const FINAL_EPOCH: i32 = -1;
/// The first Fetch version with sessions.
pub const MIN_SESSION_VERSION: i16 = 7;
/// The first Fetch version that names topics by id (KIP-516).
pub const MIN_TOPIC_ID_VERSION: i16 = 13;

/// What the broker keeps for a partition of a session, as the client last sent it. A
/// change to any field makes the partition go in the next incremental request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchState {
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

/// A partition the next request wants, named by topic and partition index.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub state: FetchState,
}

/// A partition the next request removes from the session (`forgotten_topics_data`): by
/// topic name below v13, by topic id from v13 on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// What the next request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub session_id: i32,
    pub epoch: i32,
    /// Indexes into the `wanted` slice of the partitions to send, in its order.
    pub send: Vec<usize>,
    /// Partitions to remove from the session (always empty in a full request).
    pub forget: Vec<Forgotten>,
}

impl SessionRequest {
    /// A request without a session, carrying all `n` partitions (epoch -1).
    pub fn sessionless(n: usize) -> SessionRequest {
        SessionRequest {
            session_id: NO_SESSION,
            epoch: FINAL_EPOCH,
            send: (0..n).collect(),
            forget: Vec::new(),
        }
    }

    /// True for a full request: it lists every partition wanted.
    pub fn is_full(&self) -> bool {
        self.epoch == INITIAL_EPOCH || self.epoch == FINAL_EPOCH
    }
}

/// What a response did to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// A request without a session (epoch -1) was answered.
    Sessionless,
    /// A full request created session `id`; the next request is incremental.
    Created(i32),
    /// The broker answered a full request with session id 0: it keeps no session for this
    /// client, so the next request is full again.
    Declined,
    /// An incremental request was answered; the session goes on at the next epoch.
    Continued,
    /// The broker ended the session (an incremental answer with another session id, or 0,
    /// as Kafka does when the last partition is forgotten). The next request is full.
    Closed,
    /// A top-level error: the session is dropped and the next request is full.
    Reset(i16),
    /// No request was in flight: nothing changed.
    Stray,
}

/// What the next request will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// A full request at epoch 0. `close` is a session the broker may still hold, closed by
    /// the same request (0: none).
    Full { close: i32 },
    /// An incremental request in session `id` at `epoch`; `topic_ids` is how the session
    /// names topics.
    Incremental { id: i32, epoch: i32, topic_ids: bool },
}

/// The request sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    session_id: i32,
    epoch: i32,
    topic_ids: bool,
}

/// The client side of a fetch session with one broker.
#[derive(Debug)]
pub struct FetchSession {
    /// The partitions of the session as the broker holds them once the request in flight
    /// is applied, keyed by (topic name, partition).
    partitions: IndexMap<(String, i32), FetchState>,
    next: Next,
    in_flight: Option<InFlight>,
}

impl Default for FetchSession {
    fn default() -> Self {
        FetchSession::new()
    }
}

impl FetchSession {
    /// No session yet: the first request is full.
    pub fn new() -> FetchSession {
        FetchSession {
            partitions: IndexMap::new(),
            next: Next::Full { close: NO_SESSION },
            in_flight: None,
        }
    }

    // Getters.

    /// The id of the open session, or 0.
    pub fn id(&self) -> i32 {
        match self.next {
            Next::Incremental { id, .. } => id,
            Next::Full { .. } => NO_SESSION,
        }
    }

    /// The epoch the next request carries if it is incremental (0 when it is full).
    pub fn next_epoch(&self) -> i32 {
        match self.next {
            Next::Incremental { epoch, .. } => epoch,
            Next::Full { .. } => INITIAL_EPOCH,
        }
    }

    /// Partitions in the session, as the broker holds them after the last request built.
    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    /// True when the session holds no partition.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    // Inputs.

    /// Plans the next request of Fetch `version` for the partitions in `wanted` (the first
    /// of duplicates counts) and takes it as sent.
    pub fn build_request(&mut self, wanted: &[Wanted<'_>], version: i16) -> SessionRequest {
        if self.in_flight.take().is_some() {
            // The last request was never answered (its future was dropped): what the
            // broker made of it is unknown.
            self.drop_session();
        }
        if version < MIN_SESSION_VERSION {
            let mut request = self.full(wanted, NO_SESSION);
            request.epoch = FINAL_EPOCH;
            self.reset(NO_SESSION);
            self.in_flight = Some(InFlight {
                session_id: NO_SESSION,
                epoch: FINAL_EPOCH,
                topic_ids: false,
            });
            return request;
        }
        let topic_ids = version >= MIN_TOPIC_ID_VERSION;
        let request = match self.next {
            Next::Incremental {
                id,
                epoch,
                topic_ids: t,
            } if t == topic_ids => self.incremental(wanted, id, epoch, t),
            Next::Incremental { id, .. } => self.full(wanted, id),
            Next::Full { close } => self.full(wanted, close),
        };
        self.in_flight = Some(InFlight {
            session_id: request.session_id,
            epoch: request.epoch,
            topic_ids,
        });
        request
    }

    /// Takes the answer to the request in flight: its top-level error code and session id.
    pub fn handle_response(&mut self, error_code: i16, session_id: i32) -> SessionEvent {
        let Some(sent) = self.in_flight.take() else {
            return SessionEvent::Stray;
        };
        if error_code != 0 {
            let close = match error_code == ResponseError::FetchSessionIdNotFound.code() {
                true => NO_SESSION,
                false => sent.session_id,
            };
            self.reset(close);
            return SessionEvent::Reset(error_code);
        }
        match sent.epoch {
            FINAL_EPOCH => SessionEvent::Sessionless,
            INITIAL_EPOCH if session_id == NO_SESSION => {
                self.reset(NO_SESSION);
                SessionEvent::Declined
            }
            INITIAL_EPOCH => {
                self.next = Next::Incremental {
                    id: session_id,
                    epoch: next_epoch(INITIAL_EPOCH),
                    topic_ids: sent.topic_ids,
                };
                SessionEvent::Created(session_id)
            }
            _ if session_id != sent.session_id => {
                // 0: the broker closed it. Another id is not in the protocol: close ours.
                let close = if session_id == NO_SESSION {
                    NO_SESSION
                } else {
                    sent.session_id
                };
                self.reset(close);
                SessionEvent::Closed
            }
            epoch => {
                self.next = Next::Incremental {
                    id: sent.session_id,
                    epoch: next_epoch(epoch),
                    topic_ids: sent.topic_ids,
                };
                SessionEvent::Continued
            }
        }
    }

    /// The request in flight got no answer (connection lost, timeout, undecodable
    /// response), or the connection was replaced: the next request is full.
    pub fn handle_failure(&mut self) {
        self.in_flight = None;
        self.drop_session();
    }

    /// The session id to close with a last request (epoch -1, no partitions) when the
    /// fetcher stops, if the broker may hold one; the session is dropped either way.
    pub fn poll_close(&mut self) -> Option<i32> {
        self.in_flight = None;
        let id = match self.next {
            Next::Incremental { id, .. } => id,
            Next::Full { close } => close,
        };
        self.reset(NO_SESSION);
        (id != NO_SESSION).then_some(id)
    }

    // Internals.

    /// Forgets the session; the next (full) request closes it on the broker.
    fn drop_session(&mut self) {
        let close = match self.next {
            Next::Incremental { id, .. } => id,
            Next::Full { close } => close,
        };
        self.reset(close);
    }

    fn reset(&mut self, close: i32) {
        self.partitions.clear();
        self.next = Next::Full { close };
    }

    /// A full request: every wanted partition, and the session becomes exactly them.
    fn full(&mut self, wanted: &[Wanted<'_>], close: i32) -> SessionRequest {
        self.partitions.clear();
        let mut send = Vec::with_capacity(wanted.len());
        for (i, w) in wanted.iter().enumerate() {
            if !self.partitions.contains_key(&KeyRef(w.topic, w.partition)) {
                self.partitions.insert((w.topic.to_string(), w.partition), w.state);
                send.push(i);
            }
        }
        SessionRequest {
            session_id: close,
            epoch: INITIAL_EPOCH,
            send,
            forget: Vec::new(),
        }
    }

    /// An incremental request: partitions added or changed, and those no longer wanted.
    fn incremental(&mut self, wanted: &[Wanted<'_>], id: i32, epoch: i32, topic_ids: bool) -> SessionRequest {
        let mut seen = vec![false; self.partitions.len()];
        let mut send = Vec::new();
        let mut forget = Vec::new();
        for (i, w) in wanted.iter().enumerate() {
            let Some((at, (topic, _), state)) = self.partitions.get_full_mut(&KeyRef(w.topic, w.partition)) else {
                self.partitions.insert((w.topic.to_string(), w.partition), w.state);
                seen.push(true);
                send.push(i);
                continue;
            };
            if std::mem::replace(&mut seen[at], true) || *state == w.state {
                continue; // a duplicate, or unchanged
            }
            if topic_ids && state.topic_id != w.state.topic_id {
                // By id, the broker holds the old topic's partition apart: drop it.
                forget.push(Forgotten {
                    topic: topic.clone(),
                    topic_id: state.topic_id,
                    partition: w.partition,
                });
            }
            *state = w.state;
            send.push(i);
        }
        let mut at = 0;
        self.partitions.retain(|(topic, partition), state| {
            let keep = seen[at];
            at += 1;
            if !keep {
                forget.push(Forgotten {
                    topic: topic.clone(),
                    topic_id: state.topic_id,
                    partition: *partition,
                });
            }
            keep
        });
        SessionRequest {
            session_id: id,
            epoch,
            send,
            forget,
        }
    }
}

/// The epoch after `epoch` in a session: 1 follows `i32::MAX` (`FetchMetadata.nextEpoch`).
pub fn next_epoch(epoch: i32) -> i32 {
    match epoch {
        i32::MAX => 1,
        e if e < 0 => FINAL_EPOCH,
        e => e + 1,
    }
}

/// A borrowed `(topic, partition)` key, to look the session up without allocating.
struct KeyRef<'a>(&'a str, i32);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Exactly as the tuple `(String, i32)` hashes: field by field.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl Equivalent<(String, i32)> for KeyRef<'_> {
    fn equivalent(&self, key: &(String, i32)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

#[cfg(test)]
#[path = "fetch_session_tests.rs"]
mod tests;
