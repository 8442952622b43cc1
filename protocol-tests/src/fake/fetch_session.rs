//! Fetch sessions (KIP-227), the broker side: a session cache as Kafka's `FetchManager`
//! keeps one, written from its rules, not from any client's.
//!
//! - Epoch 0 or -1 makes a *full* request: the session it names (if any) is closed first.
//!   At epoch 0 a new session is created holding the request's partitions, unless sessions
//!   are off ([`super::FakeOptions::no_fetch_sessions`]); at -1 none is.
//! - Any other epoch is *incremental*: an unknown session id gets FETCH_SESSION_ID_NOT_FOUND
//!   (70), an epoch other than the session's INVALID_FETCH_SESSION_EPOCH (71), a request
//!   that names topics differently from the session's creation (by id from v13, by name
//!   before) FETCH_SESSION_TOPIC_ID_ERROR (106). Otherwise the partitions sent are added or
//!   updated, then the forgotten ones removed; a session left empty is closed and the
//!   request answered without one (session id 0). Every epoch moves the session's on by one
//!   (1 after `i32::MAX`).
//! - An incremental answer holds only partitions with news: records, an error, or a high
//!   watermark or log start offset other than the one last sent. Partitions that returned
//!   records move to the end of the session, so that the response's byte limit rotates
//!   between them.
//! - A session is keyed by topic id and partition from v13 on, by topic name and partition
//!   before.
//!
//! Fault hooks: [`super::FakeBroker::evict_fetch_sessions`] drops every session (as a broker
//! restart or an eviction does); a request waiting in a long poll when its session is
//! evicted gets error 70. [`super::FakeBroker::skew_fetch_session_epochs`] moves every
//! session's epoch on, so that the next request gets 71 (as after a duplicated request).
//!
//! References: KIP-227; Kafka `core/.../server/FetchSession.scala` (`FetchManager.newContext`,
//! `CachedPartition.maybeUpdateResponseData`), `FetchRequest.json`, `FetchResponse.json`.

use std::collections::{HashMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, TopicName};
use uuid::Uuid;

/// One partition of a request or a session: how the request named its topic, and its
/// fetch state (partition index, fetch offset, byte limit...).
#[derive(Debug, Clone)]
pub(super) struct SessionPartition {
    /// The topic name as sent (empty from v13 on).
    pub topic: TopicName,
    /// The topic id as sent (nil before v13).
    pub topic_id: Uuid,
    pub fetch: FetchPartition,
    /// What the last answer said (-1: nothing yet, or an error): a change is news.
    high_watermark: i64,
    log_start_offset: i64,
}

/// How a session keys partitions: by topic id from v13 on, else by topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Id(Uuid, i32),
    Name(TopicName, i32),
}

impl SessionPartition {
    fn key(&self, topic_ids: bool) -> Key {
        match topic_ids {
            true => Key::Id(self.topic_id, self.fetch.partition),
            false => Key::Name(self.topic.clone(), self.fetch.partition),
        }
    }
}

/// What a Fetch request is, once its session metadata is checked.
#[derive(Debug)]
pub(super) enum Context {
    /// A full request, creating session `create` if set; or without a session.
    Full {
        partitions: Vec<SessionPartition>,
        create: bool,
        topic_ids: bool,
    },
    /// An incremental request in session `id`, which is now at `epoch`.
    Incremental {
        id: i32,
        epoch: i32,
        partitions: Vec<SessionPartition>,
    },
    /// A session error: the answer has this code, session id 0 and no partitions.
    Error(i16),
}

impl Context {
    /// The partitions to read for the answer (all of the session's, for an incremental one).
    pub fn partitions(&self) -> &[SessionPartition] {
        match self {
            Context::Full { partitions, .. } | Context::Incremental { partitions, .. } => partitions,
            Context::Error(_) => &[],
        }
    }
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    epoch: i32,
    topic_ids: bool,
    partitions: Vec<SessionPartition>,
}

/// Every fetch session of the fake broker.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    sessions: HashMap<i32, Session>,
    last_id: i32,
}

impl Sessions {
    /// Checks a request's session metadata and applies it to its session.
    pub fn new_context(&mut self, request: &FetchRequest, version: i16, enabled: bool) -> Context {
        let topic_ids = version >= 13;
        let sent = request_partitions(request);
        if version < 7 || request.session_epoch == 0 || request.session_epoch == -1 {
            if version >= 7 {
                self.sessions.remove(&request.session_id);
            }
            let create = version >= 7 && request.session_epoch == 0 && enabled;
            return Context::Full {
                partitions: sent,
                create,
                topic_ids,
            };
        }
        let id = request.session_id;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Context::Error(ResponseError::FetchSessionIdNotFound.code());
        };
        if session.epoch != request.session_epoch {
            return Context::Error(ResponseError::InvalidFetchSessionEpoch.code());
        }
        if session.topic_ids != topic_ids {
            return Context::Error(ResponseError::FetchSessionTopicIdError.code());
        }
        session.update(sent, &forgotten(request, topic_ids));
        if session.partitions.is_empty() {
            self.sessions.remove(&id);
            return Context::Full {
                partitions: Vec::new(),
                create: false,
                topic_ids,
            };
        }
        session.epoch = next_epoch(session.epoch);
        Context::Incremental {
            id,
            epoch: session.epoch,
            partitions: session.partitions.clone(),
        }
    }

    /// Turns what was read for a context into the answer: its session id and partitions,
    /// or a session error code.
    pub fn finish(
        &mut self,
        context: Context,
        read: Vec<(SessionPartition, PartitionData)>,
    ) -> Result<(i32, Vec<(SessionPartition, PartitionData)>), i16> {
        match context {
            Context::Error(code) => Err(code),
            Context::Full { create: false, .. } => Ok((0, read)),
            Context::Full { topic_ids, .. } => {
                self.last_id += 1;
                let partitions = read
                    .iter()
                    .map(|(p, data)| {
                        let mut p = p.clone();
                        p.note(data);
                        p
                    })
                    .collect();
                let session = Session {
                    epoch: 1,
                    topic_ids,
                    partitions,
                };
                self.sessions.insert(self.last_id, session);
                Ok((self.last_id, read))
            }
            Context::Incremental { id, epoch, .. } => {
                let session = self
                    .sessions
                    .get_mut(&id)
                    .ok_or(ResponseError::FetchSessionIdNotFound.code())?;
                if session.epoch != epoch {
                    return Err(ResponseError::InvalidFetchSessionEpoch.code());
                }
                Ok((id, session.news(read)))
            }
        }
    }

    /// Drops every session; returns how many there were.
    pub fn evict_all(&mut self) -> usize {
        let n = self.sessions.len();
        self.sessions.clear();
        n
    }

    /// Moves every session's epoch on by one; returns how many sessions there are.
    pub fn skew_epochs(&mut self) -> usize {
        for s in self.sessions.values_mut() {
            s.epoch = next_epoch(s.epoch);
        }
        self.sessions.len()
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }
}

impl Session {
    /// Adds or updates the partitions sent, then removes the forgotten ones.
    fn update(&mut self, sent: Vec<SessionPartition>, forgotten: &HashSet<Key>) {
        let mut at: HashMap<Key, usize> = self
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key(self.topic_ids), i))
            .collect();
        for p in sent {
            match at.get(&p.key(self.topic_ids)) {
                Some(&i) => self.partitions[i].fetch = p.fetch,
                None => {
                    at.insert(p.key(self.topic_ids), self.partitions.len());
                    self.partitions.push(p);
                }
            }
        }
        let topic_ids = self.topic_ids;
        self.partitions.retain(|p| !forgotten.contains(&p.key(topic_ids)));
    }

    /// Keeps the partitions of `read` with news, noting what they said; those that returned
    /// records move to the end of the session.
    fn news(&mut self, read: Vec<(SessionPartition, PartitionData)>) -> Vec<(SessionPartition, PartitionData)> {
        let topic_ids = self.topic_ids;
        let mut out = Vec::new();
        let mut rotate = HashSet::new();
        for (p, data) in read {
            let key = p.key(topic_ids);
            let Some(cached) = self.partitions.iter_mut().find(|c| c.key(topic_ids) == key) else {
                continue; // forgotten by a request in between
            };
            let records = data.records.as_ref().is_some_and(|r| !r.is_empty());
            let news = records
                || data.error_code != 0
                || data.preferred_read_replica.0 >= 0
                || cached.high_watermark != data.high_watermark
                || cached.log_start_offset != data.log_start_offset;
            cached.note(&data);
            if records {
                rotate.insert(key);
            }
            if news {
                out.push((p, data));
            }
        }
        let (stay, moved): (Vec<_>, Vec<_>) = self
            .partitions
            .drain(..)
            .partition(|p| !rotate.contains(&p.key(topic_ids)));
        self.partitions = stay.into_iter().chain(moved).collect();
        out
    }
}

impl SessionPartition {
    /// Remembers what an answer said; after an error the next answer is news again.
    fn note(&mut self, data: &PartitionData) {
        self.high_watermark = match data.error_code {
            0 => data.high_watermark,
            _ => -1,
        };
        self.log_start_offset = data.log_start_offset;
    }
}

/// The request's partitions, in request order.
fn request_partitions(request: &FetchRequest) -> Vec<SessionPartition> {
    request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| SessionPartition {
                topic: t.topic.clone(),
                topic_id: t.topic_id,
                fetch: p.clone(),
                high_watermark: -1,
                log_start_offset: -1,
            })
        })
        .collect()
}

/// The keys of `forgotten_topics_data`.
fn forgotten(request: &FetchRequest, topic_ids: bool) -> HashSet<Key> {
    request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |&p| match topic_ids {
                true => Key::Id(t.topic_id, p),
                false => Key::Name(t.topic.clone(), p),
            })
        })
        .collect()
}

/// `FetchMetadata.nextEpoch`: 1 follows `i32::MAX`.
fn next_epoch(epoch: i32) -> i32 {
    match epoch {
        i32::MAX => 1,
        e => e + 1,
    }
}
