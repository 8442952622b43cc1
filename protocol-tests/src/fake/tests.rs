//! The fake broker through kafka-protocol's client encoders: each request is encoded as a
//! client would, sent over TCP, and the answer decoded as a client would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::craft::{record, CraftedBatch};
use crate::legacy::{self, LegacyRecord};

/// A minimal client: one request at a time.
struct Client {
    stream: TcpStream,
    shared: Arc<Shared>,
    correlation_id: i32,
}

impl Client {
    async fn connect(broker: &FakeBroker) -> Client {
        Client::connect_to(broker, broker.addr()).await
    }

    async fn connect_to(broker: &FakeBroker, addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        Client {
            stream,
            shared: broker.shared.clone(),
            correlation_id: 0,
        }
    }

    /// Sends `body` as `api_key` at `version`; the response body after its header, or
    /// `None` if the fake closed the connection.
    async fn raw(&mut self, api_key: i16, version: i16, body: &[u8]) -> Option<Bytes> {
        self.correlation_id += 1;
        let key = ApiKey::try_from(api_key).unwrap();
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("fake-test")))
            .encode(&mut frame, key.request_header_version(version))
            .unwrap();
        frame.extend_from_slice(body);
        self.stream.write_i32(frame.len() as i32).await.unwrap();
        self.stream.write_all(&frame).await.unwrap();
        let size = self.stream.read_i32().await.ok()?;
        let mut buf = vec![0; size as usize];
        self.stream.read_exact(&mut buf).await.unwrap();
        let mut buf = Bytes::from(buf);
        // ApiVersions answers with header v0 whatever the version (KIP-511).
        let header = ResponseHeader::decode(&mut buf, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        Some(buf)
    }

    async fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let mut body = BytesMut::new();
        request.encode(&mut body, version).unwrap();
        let Some(mut response) = self.raw(R::KEY, version, &body).await else {
            let closed = self.shared.closed.lock().unwrap().clone();
            panic!("no answer to API {} v{version}: {closed:?}", R::KEY)
        };
        let decoded = R::Response::decode(&mut response, version).unwrap();
        assert_eq!(response.remaining(), 0, "bytes after the v{version} response");
        decoded
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A v2 batch of `n` records at `base`.
fn v2_batch(base: i64, n: i32) -> Vec<u8> {
    let ts = now_ms();
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{i}").into_bytes()).collect();
    let mut b = CraftedBatch::valid(&values.iter().map(Vec::as_slice).collect::<Vec<_>>());
    b.records = (0..n)
        .flat_map(|i| record(i, 0, None, Some(&values[i as usize]), &[]))
        .collect();
    b.base_offset = base;
    b.base_timestamp = ts;
    b.max_timestamp = ts;
    b.encode()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn fetch_request(topic: &str, id: uuid::Uuid, offset: i64, partition_max_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_topic_id(id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)])])
}

#[tokio::test]
async fn api_versions_handshake_and_v0_fallback() {
    let broker = FakeBroker::start().await.unwrap();
    let mut c = Client::connect(&broker).await;
    let r = c.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(r.error_code, 0);
    let fetch = r.api_keys.iter().find(|k| k.api_key == FetchRequest::KEY).unwrap();
    assert_eq!((fetch.min_version, fetch.max_version), (4, 16));
    // A version the fake does not know: v0 body, UNSUPPORTED_VERSION, its own range listed.
    let mut body = c.raw(ApiVersionsRequest::KEY, 4, &[0, 0, 0]).await.unwrap();
    let r = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert_eq!(r.api_keys.len(), 1);

    let old = FakeBroker::start_with(FakeOptions {
        advertise_only_v0_api_versions: true,
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    let mut c = Client::connect(&old).await;
    let mut v3 = BytesMut::new();
    ApiVersionsRequest::default().encode(&mut v3, 3).unwrap();
    let mut body = c.raw(ApiVersionsRequest::KEY, 3, &v3).await.unwrap();
    let r = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!((r.error_code, r.api_keys.len()), (35, 0), "as Kafka < 2.4 answers");
    let r = c.call(&ApiVersionsRequest::default(), 0).await;
    assert_eq!(r.error_code, 0);
    let own = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiVersionsRequest::KEY)
        .unwrap();
    assert_eq!((own.min_version, own.max_version), (0, 0));
    let seen: Vec<i16> = old.requests().iter().map(|r| r.version).collect();
    assert_eq!(seen, [3, 0]);
}

#[tokio::test]
async fn metadata_round_trip() {
    let broker = FakeBroker::start().await.unwrap();
    broker.create_topic("a", 3);
    broker.create_topic("b", 1);
    let mut c = Client::connect(&broker).await;
    for version in [0, 1, 9, 12] {
        let all = match version {
            0 => MetadataRequest::default().with_topics(Some(vec![])),
            _ => MetadataRequest::default().with_topics(None),
        };
        let r = c.call(&all, version).await;
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.brokers[0].port, i32::from(broker.addr().port()));
        let names: Vec<_> = r.topics.iter().map(|t| t.name.as_ref().unwrap().to_string()).collect();
        assert_eq!(names, ["a", "b"], "v{version}");
        let a = &r.topics[0];
        assert_eq!(a.partitions.len(), 3);
        assert!(a.partitions.iter().all(|p| p.leader_id.0 == 0 && p.error_code == 0));
        assert_eq!(a.topic_id.is_nil(), version < 10, "topic ids from v10");
    }
    let one = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name("b"))),
        MetadataRequestTopic::default().with_name(Some(name("missing"))),
    ]));
    let r = c.call(&one, 12).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

#[tokio::test]
async fn fetch_round_trip_serves_the_log_bytes() {
    let broker = FakeBroker::start().await.unwrap();
    broker.create_topic("t", 1);
    let v0 = legacy::plain_entries(0, 0, &[LegacyRecord::new(-1, Some(b"k"), Some(b"v0"))]);
    let recs = vec![LegacyRecord::new(now_ms(), None, Some(b"x")); 3];
    let wrapper = legacy::wrapper_entry(1, crate::codec::id::GZIP, 1, &recs);
    let batch = v2_batch(4, 2);
    let log: Vec<u8> = [v0.clone(), wrapper.clone(), batch.clone()].concat();
    broker.append("t", 0, &log);
    assert_eq!(broker.log_end_offset("t", 0), 6);

    let mut c = Client::connect(&broker).await;
    let meta = c.call(&MetadataRequest::default().with_topics(None), 12).await;
    let id = meta.topics[0].topic_id;
    for (version, offset, want) in [
        (16, 0, &log[..]),
        (12, 0, &log[..]),
        (4, 2, &log[v0.len()..]), // the wrapper holds offsets 1..=3
        (16, 5, &batch[..]),      // inside the v2 batch: served whole
        (16, 6, &[][..]),         // at the high watermark: nothing
    ] {
        let r = c.call(&fetch_request("t", id, offset, 1 << 20), version).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{version} at {offset}");
        assert_eq!(p.high_watermark, 6);
        assert_eq!(p.records.as_deref(), Some(want), "v{version} at {offset}");
    }
    // partition_max_bytes: whole entries only, but always the first one.
    let r = c.call(&fetch_request("t", id, 0, 1), 16).await;
    assert_eq!(r.responses[0].partitions[0].records.as_deref(), Some(&v0[..]));
    let limit = (v0.len() + wrapper.len() + 10) as i32;
    let r = c.call(&fetch_request("t", id, 0, limit), 16).await;
    assert_eq!(
        r.responses[0].partitions[0].records.as_ref().unwrap().len(),
        v0.len() + wrapper.len()
    );
    // Beyond the log end: OFFSET_OUT_OF_RANGE.
    let r = c.call(&fetch_request("t", id, 7, 1 << 20), 16).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 1);
    // An unknown topic id.
    let r = c
        .call(&fetch_request("t", uuid::Uuid::from_u128(9), 0, 1 << 20), 16)
        .await;
    assert_eq!(r.responses[0].partitions[0].error_code, 100, "UNKNOWN_TOPIC_ID");
}

#[tokio::test]
async fn fetch_limits_hooks_and_long_poll() {
    let broker = FakeBroker::start_with(FakeOptions {
        cut_partial_entries: true,
        nil_topic_ids: true,
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    broker.create_topic("t", 1);
    let (a, b) = (v2_batch(0, 2), v2_batch(2, 3));
    broker.append("t", 0, &[a.clone(), b.clone()].concat());
    let mut c = Client::connect(&broker).await;
    // Kafka-style cut: the second batch is cut at the limit.
    let r = c
        .call(&fetch_request("t", uuid::Uuid::nil(), 0, (a.len() + 10) as i32), 12)
        .await;
    assert_eq!(
        r.responses[0].partitions[0].records.as_ref().unwrap().len(),
        a.len() + 10
    );
    // High watermark and last stable offset, aborted transactions for read_committed.
    broker.set_high_watermark("t", 0, 2);
    let r = c.call(&fetch_request("t", uuid::Uuid::nil(), 0, 1 << 20), 12).await;
    assert_eq!(r.responses[0].partitions[0].records.as_deref(), Some(&a[..]));
    assert_eq!(
        r.responses[0].partitions[0].aborted_transactions, None,
        "read_uncommitted"
    );
    broker.set_high_watermark("t", 0, 5);
    broker.set_last_stable_offset("t", 0, 2);
    broker.set_aborted_transactions(
        "t",
        0,
        vec![AbortedTxn {
            producer_id: 7,
            first_offset: 0,
            last_offset: 1,
        }],
    );
    let committed = fetch_request("t", uuid::Uuid::nil(), 0, 1 << 20).with_isolation_level(1);
    let r = c.call(&committed, 12).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (5, 2));
    assert_eq!(p.records.as_deref(), Some(&a[..]));
    assert_eq!(p.aborted_transactions.as_ref().unwrap()[0].producer_id.0, 7);

    // Nothing to return: the fetch waits max_wait_ms, or until an append.
    broker.create_topic("w", 1);
    let started = Instant::now();
    let r = c
        .call(
            &fetch_request("w", uuid::Uuid::nil(), 0, 1 << 20).with_max_wait_ms(300),
            12,
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(r.responses[0].partitions[0].records.as_deref(), Some(&[][..]));
    let batch = v2_batch(0, 1);
    let appender = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        broker.append("w", 0, &batch);
    };
    let started = Instant::now();
    let long_poll = fetch_request("w", uuid::Uuid::nil(), 0, 1 << 20).with_max_wait_ms(5_000);
    let (r, ()) = tokio::join!(c.call(&long_poll, 12), appender);
    assert!(started.elapsed() < Duration::from_secs(4), "woken by the append");
    assert_eq!(r.responses[0].partitions[0].records.as_deref(), Some(&batch[..]));
}

/// A Fetch in session `session_id` at `epoch` for partitions (index, fetch offset) of topic
/// "t" with id `id`, forgetting `forget`; no waiting.
fn session_fetch(id: uuid::Uuid, session_id: i32, epoch: i32, send: &[(i32, i64)], forget: &[i32]) -> FetchRequest {
    let partitions = send
        .iter()
        .map(|&(p, offset)| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let topic = |t: FetchTopic| t.with_topic(name("t")).with_topic_id(id);
    let mut r = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch);
    if !send.is_empty() {
        r.topics = vec![topic(FetchTopic::default()).with_partitions(partitions)];
    }
    if !forget.is_empty() {
        r.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(name("t"))
            .with_topic_id(id)
            .with_partitions(forget.to_vec())];
    }
    r
}

/// (partition, has records) of every partition in an answer.
fn answered(r: &FetchResponse) -> Vec<(i32, bool)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.records.as_ref().is_some_and(|r| !r.is_empty())))
        .collect()
}

#[tokio::test]
async fn fetch_sessions_answer_only_news_and_check_ids_and_epochs() {
    let broker = FakeBroker::start().await.unwrap();
    broker.create_topic("t", 3);
    broker.append("t", 0, &v2_batch(0, 2));
    let mut c = Client::connect(&broker).await;
    let id = c.call(&MetadataRequest::default().with_topics(None), 12).await.topics[0].topic_id;

    // Full: creates a session and answers for every partition.
    let r = c
        .call(&session_fetch(id, 0, 0, &[(0, 0), (1, 0), (2, 0)], &[]), 16)
        .await;
    let session = r.session_id;
    assert_ne!(session, 0);
    assert_eq!(answered(&r), [(0, true), (1, false), (2, false)]);
    assert_eq!(broker.fetch_sessions(), 1);
    // Incremental: partition 0 moves on; nothing has news.
    let r = c.call(&session_fetch(id, session, 1, &[(0, 2)], &[]), 16).await;
    assert_eq!((r.error_code, r.session_id, answered(&r)), (0, session, vec![]));
    // An append is news for its partition only, though the request names no partition.
    broker.append("t", 2, &v2_batch(0, 1));
    let r = c.call(&session_fetch(id, session, 2, &[], &[]), 16).await;
    assert_eq!(answered(&r), [(2, true)]);
    // A forgotten partition is no longer fetched.
    let r = c.call(&session_fetch(id, session, 3, &[(2, 1)], &[1]), 16).await;
    assert_eq!(answered(&r), []);
    broker.append("t", 1, &v2_batch(0, 1));
    let r = c.call(&session_fetch(id, session, 4, &[], &[]), 16).await;
    assert_eq!(answered(&r), []);

    // Session errors: session id 0, no partitions; the session itself is unchanged.
    let r = c.call(&session_fetch(id, session, 9, &[], &[]), 16).await;
    assert_eq!((r.error_code, r.session_id, r.responses.len()), (71, 0, 0));
    let r = c.call(&session_fetch(id, session + 1, 1, &[], &[]), 16).await;
    assert_eq!(r.error_code, 70, "unknown session id");
    let by_name = session_fetch(uuid::Uuid::nil(), session, 5, &[], &[]);
    assert_eq!(c.call(&by_name, 12).await.error_code, 106, "a v16 session at v12");
    assert_eq!(broker.skew_fetch_session_epochs(), 1);
    assert_eq!(
        c.call(&session_fetch(id, session, 5, &[], &[]), 16).await.error_code,
        71
    );
    // Forgetting the last partitions closes the session.
    let r = c.call(&session_fetch(id, session, 6, &[], &[0, 2]), 16).await;
    assert_eq!((r.error_code, r.session_id), (0, 0));
    assert_eq!(broker.fetch_sessions(), 0);
    // A full request closing a session it names, then eviction.
    let r = c.call(&session_fetch(id, 0, 0, &[(1, 0)], &[]), 16).await;
    let again = c.call(&session_fetch(id, r.session_id, 0, &[(1, 0)], &[]), 16).await;
    assert_eq!(broker.fetch_sessions(), 1, "the session named was closed");
    assert_eq!(broker.evict_fetch_sessions(), 1);
    let r = c.call(&session_fetch(id, again.session_id, 1, &[], &[]), 16).await;
    assert_eq!(r.error_code, 70);

    let fetches = broker.fetches();
    let (first, seen) = fetches[0].clone();
    assert_eq!((seen.session_id, seen.epoch, seen.partitions), (0, 0, 3));
    assert_eq!((seen.response_session_id, seen.response_partitions), (session, 3));
    assert!(seen.is_full() && first.bytes > fetches[1].0.bytes);
    assert_eq!((fetches[3].1.partitions, fetches[3].1.forgotten), (1, 1));
}

#[tokio::test]
async fn the_leader_points_its_rack_at_the_follower() {
    let broker = FakeBroker::start_with(FakeOptions {
        follower_rack: Some("rack-b".to_string()),
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    broker.create_topic("t", 1);
    broker.append("t", 0, &v2_batch(0, 3));
    let follower = broker.follower_addr().expect("a second port");
    let mut leader = Client::connect(&broker).await;
    let meta = leader.call(&MetadataRequest::default().with_topics(None), 12).await;
    let nodes: Vec<(i32, i32, Option<&str>)> = meta
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.port, b.rack.as_ref().map(|r| r.as_str())))
        .collect();
    assert_eq!(
        nodes,
        [
            (0, i32::from(broker.addr().port()), None),
            (1, i32::from(follower.port()), Some("rack-b"))
        ]
    );
    assert_eq!(meta.topics[0].partitions[0].replica_nodes, [BrokerId(0), BrokerId(1)]);
    let id = meta.topics[0].topic_id;

    let data = |r: &FetchResponse| r.responses[0].partitions[0].clone();
    // Another rack (or none) reads from the leader.
    let r = leader
        .call(&fetch_request("t", id, 0, 1 << 20).with_rack_id("rack-a".into()), 16)
        .await;
    assert_eq!(
        (data(&r).preferred_read_replica.0, data(&r).records.unwrap().is_empty()),
        (-1, false)
    );
    // The follower's rack is pointed at the follower, with no records.
    let r = leader
        .call(&fetch_request("t", id, 0, 1 << 20).with_rack_id("rack-b".into()), 16)
        .await;
    assert_eq!(
        (data(&r).preferred_read_replica.0, data(&r).records.unwrap().is_empty()),
        (1, true)
    );
    // The follower serves the log, until it fails.
    let mut f = Client::connect_to(&broker, follower).await;
    let r = f
        .call(&fetch_request("t", id, 0, 1 << 20).with_rack_id("rack-b".into()), 16)
        .await;
    assert_eq!((data(&r).error_code, data(&r).records.unwrap().is_empty()), (0, false));
    broker.fail_follower(ResponseError::NotLeaderOrFollower.code());
    let r = f.call(&fetch_request("t", id, 0, 1 << 20), 16).await;
    assert_eq!(data(&r).error_code, ResponseError::NotLeaderOrFollower.code());
    let r = leader
        .call(&fetch_request("t", id, 0, 1 << 20).with_rack_id("rack-b".into()), 16)
        .await;
    assert_eq!(
        (data(&r).preferred_read_replica.0, data(&r).records.unwrap().is_empty()),
        (-1, false),
        "a failed follower is not preferred"
    );

    let seen: Vec<(i32, Option<String>)> = broker.fetches().into_iter().map(|(r, _)| (r.node, r.rack_id)).collect();
    let rack = |r: &str| Some(r.to_string());
    assert_eq!(
        seen,
        [
            (0, rack("rack-a")),
            (0, rack("rack-b")),
            (1, rack("rack-b")),
            (1, rack("")),
            (0, rack("rack-b"))
        ]
    );
}

#[tokio::test]
async fn fetch_sessions_can_be_off() {
    let broker = FakeBroker::start_with(FakeOptions {
        no_fetch_sessions: true,
        ..FakeOptions::default()
    })
    .await
    .unwrap();
    broker.create_topic("t", 1);
    let mut c = Client::connect(&broker).await;
    let id = c.call(&MetadataRequest::default().with_topics(None), 12).await.topics[0].topic_id;
    let r = c.call(&session_fetch(id, 0, 0, &[(0, 0)], &[]), 16).await;
    assert_eq!((r.error_code, r.session_id, answered(&r)), (0, 0, vec![(0, false)]));
    assert_eq!(broker.fetch_sessions(), 0);
}

#[tokio::test]
async fn offsets_commit_fetch_and_list() {
    let broker = FakeBroker::start().await.unwrap();
    broker.create_topic("t", 2);
    broker.append("t", 1, &v2_batch(10, 5));
    broker.set_log_start_offset("t", 1, 10);
    let mut c = Client::connect(&broker).await;
    let fc = c
        .call(
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
            3,
        )
        .await;
    assert_eq!((fc.node_id.0, fc.port), (0, i32::from(broker.addr().port())));
    let group = GroupId(StrBytes::from_static_str("g"));
    let commit = OffsetCommitRequest::default()
        .with_group_id(group.clone())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(1)
                .with_committed_offset(12)
                .with_committed_metadata(Some(StrBytes::from_static_str("meta")))])]);
    let r = c.call(&commit, 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let fetch = OffsetFetchRequest::default()
        .with_group_id(group)
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name("t"))
            .with_partition_indexes(vec![0, 1])]));
    let r = c.call(&fetch, 7).await;
    let offsets: Vec<_> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.committed_offset, p.metadata.as_ref().map(|m| m.to_string())))
        .collect();
    assert_eq!(offsets, [(-1, Some(String::new())), (12, Some("meta".to_string()))]);
    assert_eq!(broker.committed("g", "t", 1).unwrap().offset, 12);

    let list = |timestamp| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default().with_name(name("t")).with_partitions(
                vec![ListOffsetsPartition::default()
                    .with_partition_index(1)
                    .with_timestamp(timestamp)],
            )])
    };
    assert_eq!(c.call(&list(-2), 7).await.topics[0].partitions[0].offset, 10);
    assert_eq!(c.call(&list(-1), 1).await.topics[0].partitions[0].offset, 15);
}

#[tokio::test]
async fn unserved_requests_get_errors_or_a_closed_connection() {
    let broker = FakeBroker::start().await.unwrap();
    let mut c = Client::connect(&broker).await;
    let r = c.call(&InitProducerIdRequest::default(), 4).await;
    assert_eq!(r.error_code, 35);
    // Fetch v17 is not advertised: the connection closes, as Kafka does.
    let mut body = BytesMut::new();
    FetchRequest::default().encode(&mut body, 17).unwrap();
    assert!(c.raw(FetchRequest::KEY, 17, &body).await.is_none());
}

/// A v2 batch of `n` records at `base` written in leader epoch `epoch`.
fn v2_batch_in_epoch(base: i64, n: i32, epoch: i32) -> Vec<u8> {
    let mut bytes = v2_batch(base, n);
    // partitionLeaderEpoch is outside the CRC (which covers attributes on).
    bytes[12..16].copy_from_slice(&epoch.to_be_bytes());
    bytes
}

#[tokio::test]
async fn truncation_answers_diverging_epochs_and_log_start_moves_out_of_range() {
    let broker = FakeBroker::start().await.unwrap();
    broker.create_topic("t", 1);
    let log = [v2_batch_in_epoch(0, 5, 0), v2_batch_in_epoch(5, 5, 0)].concat();
    broker.append("t", 0, &log);
    let mut c = Client::connect(&broker).await;
    let meta = c.call(&MetadataRequest::default().with_topics(None), 12).await;
    let id = meta.topics[0].topic_id;
    let with_epoch = |offset: i64, epoch: i32| {
        let mut r = fetch_request("t", id, offset, 1 << 20);
        r.topics[0].partitions[0].last_fetched_epoch = epoch;
        r
    };
    // Same epoch, log reaches the fetch offset: records, no divergence.
    let r = c.call(&with_epoch(5, 0), 16).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.diverging_epoch.end_offset), (0, -1));
    assert_eq!(p.records.as_ref().unwrap().len(), log.len() / 2);

    // An unclean election: the log is cut back to 5 and epoch 1 writes 5..15.
    broker.truncate("t", 0, 5);
    broker.append(
        "t",
        0,
        &[v2_batch_in_epoch(5, 5, 1), v2_batch_in_epoch(10, 5, 1)].concat(),
    );
    for version in [12, 16] {
        let r = c.call(&with_epoch(10, 0), version).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{version}");
        assert_eq!(
            (p.diverging_epoch.epoch, p.diverging_epoch.end_offset),
            (0, 5),
            "v{version}"
        );
        assert_eq!(p.records.as_deref(), Some(&[][..]), "v{version}: no records");
    }
    // The latest epoch ends at the log end; epoch 0 reaches offset 5 exactly.
    let r = c.call(&with_epoch(15, 1), 16).await;
    assert_eq!(r.responses[0].partitions[0].diverging_epoch.end_offset, -1);
    let r = c.call(&with_epoch(5, 0), 16).await;
    assert_eq!(r.responses[0].partitions[0].diverging_epoch.end_offset, -1);
    // Without last_fetched_epoch nothing is checked: 10 is now epoch 1's data.
    let r = c.call(&fetch_request("t", id, 10, 1 << 20), 16).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert!(!r.responses[0].partitions[0].records.as_ref().unwrap().is_empty());

    // Truncated below the fetch offset, no epoch sent: OFFSET_OUT_OF_RANGE, high watermark 5.
    broker.truncate("t", 0, 5);
    let r = c.call(&fetch_request("t", id, 10, 1 << 20), 16).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (1, 5));

    // Retention: below the log start is OFFSET_OUT_OF_RANGE carrying the log start.
    broker.set_log_start_offset("t", 0, 3);
    let r = c.call(&fetch_request("t", id, 1, 1 << 20), 16).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.log_start_offset), (1, 3));
}
