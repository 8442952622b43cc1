//! A FAKE Kafka source broker, for protocol edge cases no real broker here can produce.
//!
//! [`FakeBroker`] is a single-node Kafka-protocol server on `127.0.0.1` (a tokio task per
//! connection), built from `kafka-protocol`'s request decoders and response encoders, one
//! file per API as in franz-go's `kfake`. A test creates topics and appends raw log bytes
//! (any mix of v2 batches and legacy v0/v1 message-set entries, see [`crate::legacy`]);
//! the fake serves exactly those bytes to Fetch. It is not a broker: it exists to feed a
//! client (kferry) data and answers a real broker (tansu 0.6) cannot give, such as legacy
//! message sets or an ApiVersions v0-only handshake.
//!
//! # What is faked
//!
//! | API | versions | behaviour |
//! |---|---|---|
//! | ApiVersions | 0-3 | the ranges below; v4+ gets the v0 body with UNSUPPORTED_VERSION (KIP-511); see [`FakeOptions::advertise_only_v0_api_versions`] |
//! | Metadata | 0-12 | one broker (node 0, this address), every partition led by it, topic ids unless [`FakeOptions::nil_topic_ids`]; with [`FakeOptions::follower_rack`] also node 1 (a second port), a follower of every partition |
//! | FindCoordinator | 0-4 | node 0 for every key |
//! | OffsetFetch | 1-7 | offsets committed through OffsetCommit, in memory; -1 when none |
//! | OffsetCommit | 2-8 | stores offset and metadata; no group membership checks |
//! | ListGroups | 0-4 | the groups with committed offsets, state "Empty", from node 0 only (node 1 coordinates none) |
//! | ListOffsets | 1-7 | -2: log start offset; -1: high watermark (last stable offset when read_committed) |
//! | Fetch | 4-16 | the log bytes from the first entry whose last offset is at or above the fetch offset, below the high watermark (or last stable offset), within KIP-74's byte limits; waits up to `max_wait_ms` for data; fetch sessions (KIP-227) unless [`FakeOptions::no_fetch_sessions`]; preferred read replicas (KIP-392) with [`FakeOptions::follower_rack`]; OFFSET_OUT_OF_RANGE below the log start ([`FakeBroker::set_log_start_offset`]) or past the log end; `diverging_epoch` (KIP-320) after [`FakeBroker::truncate`] |
//!
//! With [`FakeOptions::target`] the fake is also a (minimal) replication target:
//!
//! | API | versions | behaviour |
//! |---|---|---|
//! | Produce | 3-9 | v2 batches appended with the next offsets; no acks, sequence or transaction checks |
//! | InitProducerId | 0-4 | a new producer id, epoch 0 |
//! | CreatePartitions | 0-3 | grows the topic (KIP-195); INVALID_PARTITIONS for a count not above the current one |
//!
//! # What is not
//!
//! Produce (without [`FakeOptions::target`]), consumer-group membership (JoinGroup, Heartbeat...), transactions, admin APIs,
//! leader epochs in Metadata (always 0) and fencing by them,
//! replication, timestamp lookups in ListOffsets (any timestamp but -1 and -2 finds
//! nothing: offset -1), SASL and TLS. InitProducerId (unless [`FakeOptions::target`]),
//! CreateTopics and DescribeConfigs are answered with UNSUPPORTED_VERSION; any other request, or an API at a version the fake
//! does not advertise, closes the connection, as Kafka does with a request it cannot parse.
//! Data is checked only for framing (offset, length, magic): CRCs and contents are served
//! as given, which is the point.
//!
//! # References
//!
//! * franz-go `pkg/kfake` (one file per API key, fault hooks)
//! * Kafka `clients/src/main/resources/common/message/*.json` (message versions)
//! * KIP-35 and KIP-511 (ApiVersions), KIP-74 (Fetch size limits), KIP-98 (aborted
//!   transactions and the last stable offset), KIP-227 (fetch sessions), KIP-320 (diverging
//!   epochs), KIP-392 (fetch from the closest replica), KIP-516 (topic ids)

mod api_versions;
mod conn;
mod create_partitions;
mod fetch;
mod fetch_session;
mod find_coordinator;
mod init_producer_id;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_fetch;
mod produce;
mod state;
mod unsupported;

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use fetch_session::Sessions;
pub use state::{AbortedTxn, Committed};
use state::{Partition, State};

/// Behaviour switches and fault hooks; the default is a well-behaved modern broker.
#[derive(Debug, Clone, Default)]
pub struct FakeOptions {
    /// Speak ApiVersions v0 only: a request at v1+ is answered with the v0 body, error
    /// UNSUPPORTED_VERSION (35) and no API list, as brokers before Kafka 2.4 do, and the
    /// advertised ApiVersions range is 0-0. A client must ask again with v0.
    pub advertise_only_v0_api_versions: bool,
    /// Give every topic the nil topic id in Metadata, as brokers before Kafka 2.8 do, so a
    /// client must fetch by name (Fetch v12 or lower).
    pub nil_topic_ids: bool,
    /// Also answer Produce, InitProducerId and CreatePartitions (see the module docs), so
    /// that a client can replicate into the fake.
    pub target: bool,
    /// Cut Fetch data at the byte limit like Kafka does (the last entry may be partial)
    /// instead of returning whole entries only.
    pub cut_partial_entries: bool,
    /// Keep no fetch session: answer every Fetch with session id 0, as tansu 0.6 does (and
    /// Kafka when its session cache is full), so a client must send full requests.
    pub no_fetch_sessions: bool,
    /// Fetch from the closest replica (KIP-392): also listen on a second port as node 1, in
    /// this rack, a follower of every partition serving the same logs. A Fetch to node 0
    /// whose `rack_id` is this rack is answered at once with `preferred_read_replica` 1 and
    /// no records for every partition without error. See [`FakeBroker::fail_follower`].
    pub follower_rack: Option<String>,
}

/// The node id of the follower that [`FakeOptions::follower_rack`] adds.
pub const FOLLOWER_ID: i32 = 1;

/// One request the fake received, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSeen {
    /// The node that received it: 0, or [`FOLLOWER_ID`].
    pub node: i32,
    /// Kafka API key.
    pub api_key: i16,
    /// Request version.
    pub version: i16,
    /// The request's size on the wire: length prefix, header and body.
    pub bytes: usize,
    /// For a Fetch that was answered: its session and sizes.
    pub fetch: Option<FetchSeen>,
    /// For a Fetch that was answered: its `rack_id` (v11+; empty before).
    pub rack_id: Option<String>,
}

/// A Fetch request and its answer, as far as fetch sessions (KIP-227) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchSeen {
    /// The request's session id and epoch.
    pub session_id: i32,
    pub epoch: i32,
    /// Partitions the request carries (`topics`).
    pub partitions: usize,
    /// Partitions the request removes from its session (`forgotten_topics_data`).
    pub forgotten: usize,
    /// The answer's top-level error code.
    pub error_code: i16,
    /// The answer's session id.
    pub response_session_id: i32,
    /// Partitions in the answer.
    pub response_partitions: usize,
    /// Partitions in the answer that carry records.
    pub response_with_records: usize,
}

impl FetchSeen {
    /// True for a full request (epoch 0 or -1): it lists every partition wanted.
    pub fn is_full(&self) -> bool {
        self.epoch <= 0
    }
}

/// What every connection task shares with the [`FakeBroker`] handle.
struct Shared {
    addr: SocketAddr,
    /// Node 1's address, with [`FakeOptions::follower_rack`].
    follower_addr: Option<SocketAddr>,
    /// Error code node 1 answers every fetched partition with (0: none).
    follower_error: AtomicI16,
    options: FakeOptions,
    state: Mutex<State>,
    /// Bumped on every change to the logs, to wake long-polling fetches.
    changed: watch::Sender<u64>,
    requests: Mutex<Vec<RequestSeen>>,
    /// Fetch sessions (KIP-227).
    sessions: Mutex<Sessions>,
    /// Why connections were closed by the fake (not by their clients).
    closed: Mutex<Vec<String>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake broker state lock")
    }

    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().expect("fake broker sessions lock")
    }

    /// Records a request; returns its index in [`FakeBroker::requests`].
    fn record(&self, seen: RequestSeen) -> usize {
        let mut requests = self.requests.lock().expect("requests lock");
        requests.push(seen);
        requests.len() - 1
    }

    /// Adds what a Fetch carried and got to the request recorded at `at`.
    fn record_fetch(&self, at: usize, request: &FetchRequest, response: &FetchResponse) {
        let seen = FetchSeen {
            session_id: request.session_id,
            epoch: request.session_epoch,
            partitions: request.topics.iter().map(|t| t.partitions.len()).sum(),
            forgotten: request.forgotten_topics_data.iter().map(|t| t.partitions.len()).sum(),
            error_code: response.error_code,
            response_session_id: response.session_id,
            response_partitions: response.responses.iter().map(|t| t.partitions.len()).sum(),
            response_with_records: response
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .filter(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()))
                .count(),
        };
        let mut requests = self.requests.lock().expect("requests lock");
        requests[at].fetch = Some(seen);
        requests[at].rack_id = Some(request.rack_id.to_string());
    }
}

/// A running fake broker; it stops (and closes every connection) when dropped.
pub struct FakeBroker {
    shared: Arc<Shared>,
    accept: Vec<JoinHandle<()>>,
}

impl FakeBroker {
    /// Starts a fake broker with default options on a free loopback port.
    pub async fn start() -> io::Result<FakeBroker> {
        FakeBroker::start_with(FakeOptions::default()).await
    }

    /// Starts a fake broker with `options` on a free loopback port.
    pub async fn start_with(options: FakeOptions) -> io::Result<FakeBroker> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let follower = match options.follower_rack {
            Some(_) => Some(TcpListener::bind("127.0.0.1:0").await?),
            None => None,
        };
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            follower_addr: follower.as_ref().map(TcpListener::local_addr).transpose()?,
            follower_error: AtomicI16::new(0),
            options,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            requests: Mutex::new(Vec::new()),
            sessions: Mutex::new(Sessions::default()),
            closed: Mutex::new(Vec::new()),
        });
        let mut accept = vec![tokio::spawn(accept_loop(listener, shared.clone(), 0))];
        if let Some(follower) = follower {
            accept.push(tokio::spawn(accept_loop(follower, shared.clone(), FOLLOWER_ID)));
        }
        Ok(FakeBroker { shared, accept })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Node 1's address, with [`FakeOptions::follower_rack`].
    pub fn follower_addr(&self) -> Option<SocketAddr> {
        self.shared.follower_addr
    }

    /// Makes node 1 answer every partition of every Fetch with error `code` and no records,
    /// at once (0 heals it), as a follower that fell out of the ISR or lost the replica does.
    /// Meanwhile node 0 serves every rack itself.
    pub fn fail_follower(&self, code: i16) {
        self.shared.follower_error.store(code, Ordering::Relaxed);
        self.notify(); // wake its long polls
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.shared.addr.to_string()
    }

    /// Creates a topic with `partitions` empty partitions (replacing one of that name).
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.shared.state().create_topic(name, partitions);
        self.notify();
    }

    /// Grows topic `name` to `partitions` (new partitions are empty), as CreatePartitions does.
    pub fn add_partitions(&self, name: &str, partitions: i32) {
        self.shared.state().add_partitions(name, partitions);
        self.notify();
    }

    /// The number of partitions of topic `name` (0 when it does not exist).
    pub fn partition_count(&self, name: &str) -> i32 {
        self.shared
            .state()
            .topics
            .get(name)
            .map_or(0, |t| t.partitions.len() as i32)
    }

    /// Appends raw log bytes (whole v2 batches and/or v0/v1 entries) to a partition.
    /// Unless pinned by [`FakeBroker::set_high_watermark`], the high watermark moves to
    /// the new log end. Panics on an unknown partition or bytes that are not whole entries.
    pub fn append(&self, topic: &str, partition: i32, bytes: &[u8]) {
        self.with_partition(topic, partition, |p| p.append(bytes))
            .unwrap_or_else(|e| panic!("fake broker: append to {topic}-{partition}: {e}"));
    }

    /// Pins the high watermark (Fetch serves entries below it only).
    pub fn set_high_watermark(&self, topic: &str, partition: i32, offset: i64) {
        self.with_partition(topic, partition, |p| p.high_watermark = Some(offset));
    }

    /// Pins the last stable offset (read_committed fetches stop there); default: the
    /// high watermark.
    pub fn set_last_stable_offset(&self, topic: &str, partition: i32, offset: i64) {
        self.with_partition(topic, partition, |p| p.last_stable_offset = Some(offset));
    }

    /// Sets the log start offset (default 0), as retention or DeleteRecords moves it: a
    /// Fetch below it gets OFFSET_OUT_OF_RANGE with this log start offset.
    pub fn set_log_start_offset(&self, topic: &str, partition: i32, offset: i64) {
        self.with_partition(topic, partition, |p| p.log_start_offset = offset);
    }

    /// Truncates a partition's log at `offset` (an entry's first offset or the log end), as
    /// a replica that becomes leader after an unclean election has it: later entries and
    /// the leader epochs starting there are gone, and appends with a higher
    /// `partitionLeaderEpoch` start a new epoch. A Fetch with a `last_fetched_epoch` whose
    /// log now ends before the fetch offset gets a `diverging_epoch` (KIP-320); one without
    /// past the new end gets OFFSET_OUT_OF_RANGE. Panics on an offset inside an entry.
    pub fn truncate(&self, topic: &str, partition: i32, offset: i64) {
        self.with_partition(topic, partition, |p| p.truncate(offset))
            .unwrap_or_else(|e| panic!("fake broker: truncate {topic}-{partition}: {e}"));
    }

    /// Sets the aborted transactions a read_committed Fetch lists for the partition.
    pub fn set_aborted_transactions(&self, topic: &str, partition: i32, aborted: Vec<AbortedTxn>) {
        self.with_partition(topic, partition, |p| p.aborted = aborted);
    }

    /// The log end offset: one past the last offset of the last entry appended.
    pub fn log_end_offset(&self, topic: &str, partition: i32) -> i64 {
        self.with_partition(topic, partition, |p| p.log_end_offset())
    }

    /// What `group` committed for a partition through OffsetCommit.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.shared.state().committed(group, topic, partition).cloned()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestSeen> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// The Fetch requests received so far and answered, in order.
    pub fn fetches(&self) -> Vec<(RequestSeen, FetchSeen)> {
        self.requests()
            .into_iter()
            .filter_map(|r| {
                let f = r.fetch?;
                Some((r, f))
            })
            .collect()
    }

    /// Fetch sessions open.
    pub fn fetch_sessions(&self) -> usize {
        self.shared.sessions().len()
    }

    /// Drops every fetch session, as a broker restart or an eviction does: the next
    /// incremental request of each gets FETCH_SESSION_ID_NOT_FOUND. Returns how many.
    pub fn evict_fetch_sessions(&self) -> usize {
        self.shared.sessions().evict_all()
    }

    /// Moves every fetch session's epoch on by one, so that the next request of each gets
    /// INVALID_FETCH_SESSION_EPOCH. Returns how many sessions there are.
    pub fn skew_fetch_session_epochs(&self) -> usize {
        self.shared.sessions().skew_epochs()
    }

    /// Why the fake closed connections: requests it would not answer or could not parse.
    pub fn closed_connections(&self) -> Vec<String> {
        self.shared.closed.lock().expect("closed lock").clone()
    }

    fn with_partition<T>(&self, topic: &str, partition: i32, f: impl FnOnce(&mut Partition) -> T) -> T {
        let out = {
            let mut state = self.shared.state();
            let p = state
                .partition_mut(topic, partition)
                .unwrap_or_else(|| panic!("fake broker: no partition {topic}-{partition}"));
            f(p)
        };
        self.notify();
        out
    }

    fn notify(&self) {
        self.shared.changed.send_modify(|n| *n += 1);
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        // The connection tasks live in the accept tasks' JoinSets: aborting them ends them.
        for accept in &self.accept {
            accept.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, node: i32) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors, say: do not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(conn::serve(shared.clone(), stream, node));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
