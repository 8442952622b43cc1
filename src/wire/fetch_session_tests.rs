//! Tests of the fetch-session bookkeeping: unit cases and a property test against a model
//! broker (kept apart from `fetch_session.rs` to keep that file about the logic).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const ID_NOT_FOUND: i16 = 70;
const BAD_EPOCH: i16 = 71;
const TOPIC_ID_ERROR: i16 = 106;

fn state(topic_id: u128, fetch_offset: i64) -> FetchState {
    FetchState {
        topic_id: Uuid::from_u128(topic_id),
        fetch_offset,
        partition_max_bytes: 1 << 20,
        current_leader_epoch: -1,
        last_fetched_epoch: -1,
        log_start_offset: -1,
    }
}

fn want(topic: &'static str, partition: i32, topic_id: u128, offset: i64) -> Wanted<'static> {
    let state = state(topic_id, offset);
    Wanted {
        topic,
        partition,
        state,
    }
}

/// Partitions 0..n of topic "t" (id 1), all at `offset`.
fn wanted(n: i32, offset: i64) -> Vec<Wanted<'static>> {
    (0..n).map(|p| want("t", p, 1, offset)).collect()
}

/// A session with id 7 over `w`, at epoch 1.
fn open(w: &[Wanted<'_>], version: i16) -> FetchSession {
    let mut s = FetchSession::new();
    let first = s.build_request(w, version);
    assert_eq!((first.session_id, first.epoch, first.send.len()), (0, 0, w.len()));
    assert_eq!(s.handle_response(0, 7), SessionEvent::Created(7));
    s
}

fn forgotten(topic: &str, id: u128, partition: i32) -> Forgotten {
    Forgotten {
        topic: topic.to_string(),
        topic_id: Uuid::from_u128(id),
        partition,
    }
}

#[test]
fn first_request_is_full_and_creates_the_session() {
    let w = wanted(3, 0);
    let mut s = FetchSession::new();
    let r = s.build_request(&w, 16);
    assert!(r.is_full());
    assert_eq!((r.session_id, r.epoch, r.send, r.forget), (0, 0, vec![0, 1, 2], vec![]));
    assert_eq!(s.handle_response(0, 7), SessionEvent::Created(7));
    assert_eq!((s.id(), s.next_epoch(), s.len()), (7, 1, 3));
}

#[test]
fn incremental_requests_carry_only_changes() {
    let mut w = wanted(4, 10);
    let mut s = open(&w, 16);
    let r = s.build_request(&w, 16);
    assert!(!r.is_full());
    assert_eq!((r.session_id, r.epoch, r.send.len(), r.forget.len()), (7, 1, 0, 0));
    assert_eq!(s.handle_response(0, 7), SessionEvent::Continued);

    w[2].state.fetch_offset = 15; // changed
    w.remove(0); // no longer wanted: forgotten
    w.push(want("u", 0, 2, 0)); // added
    let r = s.build_request(&w, 16);
    assert_eq!((r.session_id, r.epoch), (7, 2));
    assert_eq!(r.send, vec![1, 3], "partition t-2 and the new u-0");
    assert_eq!(r.forget, vec![forgotten("t", 1, 0)]);
    assert_eq!(s.handle_response(0, 7), SessionEvent::Continued);
    assert_eq!((s.next_epoch(), s.len()), (3, 4));
}

#[test]
fn each_field_of_the_fetch_state_counts_as_a_change() {
    let changes: [fn(&mut FetchState); 5] = [
        |s| s.fetch_offset += 1,
        |s| s.partition_max_bytes += 1,
        |s| s.current_leader_epoch += 1,
        |s| s.last_fetched_epoch += 1,
        |s| s.log_start_offset += 1,
    ];
    for change in changes {
        let mut w = wanted(2, 0);
        let mut s = open(&w, 12);
        change(&mut w[1].state);
        assert_eq!(s.build_request(&w, 12).send, vec![1]);
    }
}

#[test]
fn a_broker_without_sessions_gets_full_requests_at_epoch_0() {
    let w = wanted(2, 0);
    let mut s = FetchSession::new();
    for _ in 0..3 {
        let r = s.build_request(&w, 16);
        assert_eq!((r.session_id, r.epoch, r.send.len()), (0, 0, 2));
        assert_eq!(s.handle_response(0, 0), SessionEvent::Declined);
    }
}

#[test]
fn session_errors_reset_to_a_full_request() {
    // (error, the session id the next full request closes)
    for (error, close) in [(ID_NOT_FOUND, 0), (BAD_EPOCH, 7), (TOPIC_ID_ERROR, 7), (3, 7)] {
        let w = wanted(3, 0);
        let mut s = open(&w, 16);
        s.build_request(&w, 16);
        assert_eq!(s.handle_response(error, 0), SessionEvent::Reset(error));
        let r = s.build_request(&w, 16);
        assert_eq!((r.session_id, r.epoch, r.send.len()), (close, 0, 3), "error {error}");
        assert_eq!(s.handle_response(0, 8), SessionEvent::Created(8));
    }
}

#[test]
fn a_failed_or_abandoned_request_resets_and_closes_the_session() {
    let w = wanted(2, 0);
    let mut s = open(&w, 16);
    s.build_request(&w, 16);
    s.handle_failure();
    assert_eq!(s.build_request(&w, 16).session_id, 7);
    // Created again, then a request is built and never answered (future dropped).
    assert_eq!(s.handle_response(0, 9), SessionEvent::Created(9));
    s.build_request(&w, 16);
    let r = s.build_request(&w, 16);
    assert_eq!((r.session_id, r.epoch, r.send.len()), (9, 0, 2));
}

#[test]
fn epochs_wrap_from_i32_max_to_1() {
    let w = wanted(1, 0);
    let mut s = open(&w, 16);
    s.next = Next::Incremental {
        id: 7,
        epoch: i32::MAX,
        topic_ids: true,
    };
    assert_eq!(s.build_request(&w, 16).epoch, i32::MAX);
    s.handle_response(0, 7);
    assert_eq!(s.build_request(&w, 16).epoch, 1);
    assert_eq!(next_epoch(FINAL_EPOCH), FINAL_EPOCH);
}

#[test]
fn below_v7_there_are_no_sessions() {
    let w = wanted(2, 0);
    let mut s = FetchSession::new();
    let r = s.build_request(&w, 6);
    assert_eq!(r, SessionRequest::sessionless(2));
    assert_eq!(s.handle_response(0, 0), SessionEvent::Sessionless);
    assert_eq!(s.build_request(&w, 6).epoch, FINAL_EPOCH);
}

#[test]
fn a_change_of_topic_naming_starts_a_new_session() {
    let w = wanted(2, 0);
    let mut s = open(&w, 16);
    let r = s.build_request(&w, 12);
    assert_eq!((r.session_id, r.epoch, r.send.len()), (7, 0, 2));
}

#[test]
fn a_new_topic_id_forgets_the_old_one_by_id_only() {
    for (version, forget) in [(16, vec![forgotten("t", 1, 1)]), (12, vec![])] {
        let mut w = wanted(2, 0);
        let mut s = open(&w, version);
        w[1].state.topic_id = Uuid::from_u128(9);
        let r = s.build_request(&w, version);
        assert_eq!((r.send, r.forget), (vec![1], forget), "v{version}");
    }
}

#[test]
fn an_incremental_answer_without_the_session_id_ends_the_session() {
    let w = wanted(1, 0);
    for (answer, close) in [(0, 0), (8, 7)] {
        let mut s = open(&w, 16);
        s.build_request(&[], 16);
        assert_eq!(s.handle_response(0, answer), SessionEvent::Closed);
        assert_eq!(s.build_request(&w, 16).session_id, close);
    }
}

#[test]
fn closing_names_the_session_the_broker_may_hold() {
    let w = wanted(1, 0);
    let mut s = open(&w, 16);
    assert_eq!(s.poll_close(), Some(7));
    assert_eq!(s.poll_close(), None);
    let mut s = open(&w, 16);
    s.build_request(&w, 16);
    s.handle_failure(); // the next full request would close 7: so does closing
    assert_eq!(s.poll_close(), Some(7));
    assert_eq!(FetchSession::new().poll_close(), None);
}

#[test]
fn duplicates_count_once_and_stray_answers_change_nothing() {
    let mut w = wanted(2, 0);
    w.push(want("t", 0, 1, 99));
    let mut s = FetchSession::new();
    assert_eq!(s.build_request(&w, 16).send, vec![0, 1]);
    assert_eq!(s.handle_response(0, 7), SessionEvent::Created(7));
    assert_eq!(s.handle_response(0, 7), SessionEvent::Stray);
    assert_eq!(s.build_request(&w, 16).send, Vec::<usize>::new());
}

// A model broker written from Kafka's `FetchManager.newContext` and
// `FetchSession.update`, and requests replayed against it.

/// How a broker keys a session's partitions: by topic id from v13 on, else by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Id(u128, i32),
    Name(String, i32),
}

fn key(topic: &str, id: Uuid, partition: i32, version: i16) -> Key {
    match version >= MIN_TOPIC_ID_VERSION {
        true => Key::Id(id.as_u128(), partition),
        false => Key::Name(topic.to_string(), partition),
    }
}

struct ModelSession {
    epoch: i32,
    topic_ids: bool,
    partitions: BTreeMap<Key, FetchState>,
}

#[derive(Default)]
struct ModelBroker {
    sessions: BTreeMap<i32, ModelSession>,
    last_id: i32,
    no_sessions: bool,
}

/// What the broker accepted: the session id it answers and the partitions it fetches.
type Accepted = (i32, BTreeMap<Key, FetchState>);

impl ModelBroker {
    fn handle(&mut self, r: &SessionRequest, w: &[Wanted<'_>], version: i16) -> Result<Accepted, i16> {
        let sent: Vec<(Key, FetchState)> = r
            .send
            .iter()
            .map(|&i| {
                (
                    key(w[i].topic, w[i].state.topic_id, w[i].partition, version),
                    w[i].state,
                )
            })
            .collect();
        if r.is_full() || version < MIN_SESSION_VERSION {
            assert!(r.forget.is_empty(), "a full request forgets nothing");
            self.sessions.remove(&r.session_id);
            let view: BTreeMap<_, _> = sent.into_iter().collect();
            if r.epoch == FINAL_EPOCH || self.no_sessions || version < MIN_SESSION_VERSION {
                return Ok((NO_SESSION, view));
            }
            self.last_id += 1;
            let session = ModelSession {
                epoch: 1,
                topic_ids: version >= MIN_TOPIC_ID_VERSION,
                partitions: view.clone(),
            };
            self.sessions.insert(self.last_id, session);
            return Ok((self.last_id, view));
        }
        let s = self.sessions.get_mut(&r.session_id).ok_or(ID_NOT_FOUND)?;
        if s.epoch != r.epoch {
            return Err(BAD_EPOCH);
        }
        if s.topic_ids != (version >= MIN_TOPIC_ID_VERSION) {
            return Err(TOPIC_ID_ERROR);
        }
        let forget: Vec<Key> = r
            .forget
            .iter()
            .map(|f| key(&f.topic, f.topic_id, f.partition, version))
            .collect();
        for (k, _) in &sent {
            assert!(!forget.contains(k), "{k:?} both sent and forgotten");
        }
        let before = s.partitions.clone();
        s.partitions.extend(sent.iter().cloned());
        for k in &forget {
            assert!(s.partitions.remove(k).is_some(), "forgot {k:?}, not in the session");
        }
        let mut changed: Vec<&Key> = sent.iter().map(|(k, _)| k).collect();
        changed.sort();
        let minimal: Vec<&Key> = s
            .partitions
            .iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(changed, minimal, "an incremental request sends exactly what changed");
        if s.partitions.is_empty() {
            self.sessions.remove(&r.session_id);
            return Ok((NO_SESSION, BTreeMap::new()));
        }
        s.epoch = next_epoch(s.epoch);
        Ok((r.session_id, s.partitions.clone()))
    }
}

#[derive(Debug, Clone)]
enum Outcome {
    /// Answered.
    Answered,
    /// Applied by the broker; the answer was lost (connection died, timeout).
    Lost,
    /// Never reached the broker.
    NotSent,
    /// Applied; the caller's future was dropped before the answer.
    Dropped,
}

#[derive(Debug, Clone)]
enum Op {
    /// One request: the partitions in `mask` (of 12), those in `bump` at a new offset.
    Round {
        mask: u16,
        bump: u16,
        dup: bool,
        outcome: Outcome,
    },
    /// The broker loses every session (restart, eviction).
    Evict,
    /// The broker's epochs move on (as after a duplicated request).
    Skew,
    /// A new connection.
    Reconnect,
    /// The broker stops or starts giving sessions (cache full, then room again).
    Sessions(bool),
    /// The Fetch version changes.
    Version(i16),
    /// A topic is deleted and created again: its partitions get a new topic id.
    Recreate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        6 => Just(Outcome::Answered),
        1 => Just(Outcome::Lost),
        1 => Just(Outcome::NotSent),
        1 => Just(Outcome::Dropped),
    ];
    prop_oneof![
        20 => (any::<u16>(), any::<u16>(), prop::bool::weighted(0.1), outcome)
            .prop_map(|(mask, bump, dup, outcome)| Op::Round { mask, bump, dup, outcome }),
        1 => Just(Op::Evict),
        1 => Just(Op::Skew),
        1 => Just(Op::Reconnect),
        1 => any::<bool>().prop_map(Op::Sessions),
        1 => prop::sample::select(vec![6i16, 7, 12, 13, 16]).prop_map(Op::Version),
        1 => (0usize..3).prop_map(Op::Recreate),
    ]
}

/// A client and a model broker, replaying [`Op`]s; 3 topics of 4 partitions.
struct Replay {
    broker: ModelBroker,
    client: FetchSession,
    version: i16,
    offsets: [i64; 12],
    topic_ids: [u128; 3],
    /// Something went wrong since the last answer: the next request must be full.
    must_be_full: bool,
}

const TOPICS: [&str; 3] = ["a", "b", "c"];

impl Replay {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Round {
                mask,
                bump,
                dup,
                outcome,
            } => self.round(mask, bump, dup, outcome),
            Op::Evict => self.broker.sessions.clear(),
            Op::Skew => self
                .broker
                .sessions
                .values_mut()
                .for_each(|s| s.epoch = next_epoch(s.epoch)),
            Op::Reconnect => self.failed(),
            Op::Sessions(on) => self.broker.no_sessions = !on,
            Op::Version(v) => self.version = v,
            Op::Recreate(t) => self.topic_ids[t] += 10,
        }
    }

    fn failed(&mut self) {
        self.client.handle_failure();
        self.must_be_full = true;
    }

    /// The partitions in `mask`, those in `bump` at a new offset; with `dup`, the first
    /// one again at another offset.
    fn wanted(&mut self, mask: u16, bump: u16, dup: bool) -> Vec<Wanted<'static>> {
        let mut wanted = Vec::new();
        for i in (0..12).filter(|i| mask & (1 << i) != 0) {
            self.offsets[i] += i64::from(bump >> i & 1);
            let (t, p) = (i / 4, i as i32 % 4);
            wanted.push(want(TOPICS[t], p, self.topic_ids[t], self.offsets[i]));
        }
        if let (true, Some(&first)) = (dup, wanted.first()) {
            let mut again = first;
            again.state.fetch_offset += 100;
            wanted.push(again);
        }
        wanted
    }

    fn round(&mut self, mask: u16, bump: u16, dup: bool, outcome: Outcome) {
        let wanted = self.wanted(mask, bump, dup);
        let request = self.client.build_request(&wanted, self.version);
        assert!(
            !self.must_be_full || request.is_full(),
            "after trouble, a full request: {request:?}"
        );
        if let Outcome::NotSent = outcome {
            return self.failed();
        }
        let answer = self.broker.handle(&request, &wanted, self.version);
        if let Ok((_, view)) = &answer {
            let mut expected = BTreeMap::new();
            for w in &wanted {
                let k = key(w.topic, w.state.topic_id, w.partition, self.version);
                expected.entry(k).or_insert(w.state);
            }
            assert_eq!(view, &expected, "the broker fetches what was wanted");
        }
        match outcome {
            Outcome::Lost => return self.failed(),
            Outcome::Dropped => return self.must_be_full = true,
            Outcome::Answered | Outcome::NotSent => {}
        }
        let event = match answer {
            Ok((id, _)) => self.client.handle_response(0, id),
            Err(code) => self.client.handle_response(code, NO_SESSION),
        };
        self.must_be_full = !matches!(event, SessionEvent::Created(_) | SessionEvent::Continued);
        if !self.must_be_full {
            let s = &self.broker.sessions[&self.client.id()];
            assert_eq!(s.epoch, self.client.next_epoch(), "{event:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever happens, every request the broker accepts leaves it fetching exactly
    /// the partitions wanted, with the states wanted; incremental requests carry only
    /// changes; after any trouble the next request is full; and a session the client
    /// goes on with is at the epoch the broker expects.
    #[test]
    fn the_broker_view_always_equals_the_wanted_set(ops in prop::collection::vec(op(), 1..80)) {
        let mut replay = Replay {
            broker: ModelBroker::default(),
            client: FetchSession::new(),
            version: 16,
            offsets: [0; 12],
            topic_ids: [1, 2, 3],
            must_be_full: true,
        };
        for op in ops {
            replay.apply(op);
        }
    }
}
