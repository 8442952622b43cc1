//! Produce response decoding, v3 to v13, with checked lengths.
//!
//! Every batch kferry forwards ends in one of these, so they are decoded with [`Reader`]
//! (see [`super::decode`] for why not `kafka-protocol`).
//!
//! Layout (fields in wire order, with the versions that have them):
//!
//! ```text
//! responses []:
//!     name string (..=12) | topic_id uuid (13+)
//!     partition_responses []:
//!         index i32 | error_code i16 | base_offset i64 | log_append_time_ms i64
//!         log_start_offset i64 (5+)
//!         record_errors [] { batch_index i32, batch_index_error_message string? } (8+)
//!         error_message string? (8+)
//!         tagged (9+): 0 current_leader { leader_id i32, leader_epoch i32 } (10+)
//! throttle_time_ms i32
//! tagged (9+): 0 node_endpoints [] { node_id i32, host string, port i32, rack string? } (10+)
//! ```
//!
//! v9+ are flexible: compact lengths and a tagged-field section closing every structure.
//! v11 and v12 only add error codes. Bytes left after the last field are an error.
//!
//! References: Kafka `clients/src/main/resources/common/message/ProduceResponse.json`;
//! KIP-467 (record errors), KIP-482 (flexible versions), KIP-951 (current leader, node
//! endpoints), KIP-890 (v11, v12), KIP-516 (topic ids, v13).

use bytes::Bytes;
use uuid::Uuid;

use super::decode::{check_version, DecodeError, LeaderIdAndEpoch, NodeEndpoint, Reader};

/// Oldest Produce response version decoded here (the first with v2 batches only).
pub const PRODUCE_RESPONSE_MIN_VERSION: i16 = 3;
/// Newest Produce response version decoded here.
pub const PRODUCE_RESPONSE_MAX_VERSION: i16 = 13;

/// A decoded Produce response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceResponse {
    pub responses: Vec<TopicProduceResponse>,
    pub throttle_time_ms: i32,
    /// Endpoints of the leaders named in `current_leader` (v10+; empty when not sent).
    pub node_endpoints: Vec<NodeEndpoint>,
}

/// One topic of a Produce response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicProduceResponse {
    /// Topic name (up to v12; empty from v13 on).
    pub name: String,
    /// Topic id (v13+; nil before).
    pub topic_id: Uuid,
    pub partition_responses: Vec<PartitionProduceResponse>,
}

/// One partition of a Produce response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionProduceResponse {
    pub index: i32,
    pub error_code: i16,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    /// v5+; -1 before.
    pub log_start_offset: i64,
    /// v8+; empty before.
    pub record_errors: Vec<BatchIndexAndErrorMessage>,
    /// v8+; `None` before.
    pub error_message: Option<String>,
    /// Tagged (v10+): the leader the broker knows of, sent with leadership errors.
    pub current_leader: Option<LeaderIdAndEpoch>,
}

/// A record that made the broker drop its batch (KIP-467).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchIndexAndErrorMessage {
    pub batch_index: i32,
    pub batch_index_error_message: Option<String>,
}

impl ProduceResponse {
    /// Decodes a Produce response body (after the response header) of `version`.
    pub fn decode(body: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(version, PRODUCE_RESPONSE_MIN_VERSION, PRODUCE_RESPONSE_MAX_VERSION)?;
        let flexible = version >= 9;
        let mut r = Reader::new(body);
        let responses = r.array_of("responses", flexible, topic_min_size(version), |r| {
            read_topic(r, version)
        })?;
        let throttle_time_ms = r.i32("throttle_time_ms")?;
        let mut node_endpoints = Vec::new();
        if flexible {
            r.tagged_fields("tagged_fields", |tag, value| match tag {
                0 if version >= 10 => {
                    node_endpoints = NodeEndpoint::read_all(value)?;
                    Ok(true)
                }
                _ => Ok(false),
            })?;
        }
        r.finish("end of response")?;
        Ok(ProduceResponse {
            responses,
            throttle_time_ms,
            node_endpoints,
        })
    }
}

/// Fewest bytes a topic can take: its name or id, an empty partition array, tagged fields.
fn topic_min_size(version: i16) -> usize {
    match version {
        ..=8 => 2 + 4,
        9..=12 => 1 + 1 + 1,
        _ => 16 + 1 + 1,
    }
}

/// Fewest bytes a partition can take: fixed fields, no record errors, null message, no tags.
fn partition_min_size(version: i16) -> usize {
    let mut size = 4 + 2 + 8 + 8;
    if version >= 5 {
        size += 8;
    }
    size + match version {
        ..=7 => 0,
        8 => 4 + 2,
        _ => 1 + 1 + 1,
    }
}

fn read_topic(r: &mut Reader, version: i16) -> Result<TopicProduceResponse, DecodeError> {
    let flexible = version >= 9;
    let (name, topic_id) = match version >= 13 {
        true => (String::new(), r.uuid("responses.topic_id")?),
        false => (r.string("responses.name", flexible)?, Uuid::nil()),
    };
    let partition_responses = r.array_of(
        "responses.partition_responses",
        flexible,
        partition_min_size(version),
        |r| read_partition(r, version),
    )?;
    if flexible {
        r.skip_tagged_fields("responses.tagged_fields")?;
    }
    Ok(TopicProduceResponse {
        name,
        topic_id,
        partition_responses,
    })
}

fn read_partition(r: &mut Reader, version: i16) -> Result<PartitionProduceResponse, DecodeError> {
    let flexible = version >= 9;
    let mut p = PartitionProduceResponse {
        index: r.i32("partition_responses.index")?,
        error_code: r.i16("partition_responses.error_code")?,
        base_offset: r.i64("partition_responses.base_offset")?,
        log_append_time_ms: r.i64("partition_responses.log_append_time_ms")?,
        log_start_offset: -1,
        record_errors: Vec::new(),
        error_message: None,
        current_leader: None,
    };
    if version >= 5 {
        p.log_start_offset = r.i64("partition_responses.log_start_offset")?;
    }
    if version >= 8 {
        // batch_index, then a null message and no tags (1 + 1) or a null message (2).
        let min_size = 4 + 2;
        p.record_errors = r.array_of("partition_responses.record_errors", flexible, min_size, |r| {
            let e = BatchIndexAndErrorMessage {
                batch_index: r.i32("record_errors.batch_index")?,
                batch_index_error_message: r.nullable_string("record_errors.batch_index_error_message", flexible)?,
            };
            if flexible {
                r.skip_tagged_fields("record_errors.tagged_fields")?;
            }
            Ok(e)
        })?;
        p.error_message = r.nullable_string("partition_responses.error_message", flexible)?;
    }
    if flexible {
        r.tagged_fields("partition_responses.tagged_fields", |tag, value| match tag {
            0 if version >= 10 => {
                p.current_leader = Some(LeaderIdAndEpoch::read(value)?);
                Ok(true)
            }
            _ => Ok(false),
        })?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use kafka_protocol::messages::produce_response as kp;
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    use super::*;
    use crate::wire::decode::alloc_counter::allocated_by;
    use crate::wire::decode::Problem;

    const VERSIONS: std::ops::RangeInclusive<i16> = PRODUCE_RESPONSE_MIN_VERSION..=PRODUCE_RESPONSE_MAX_VERSION;

    fn unknown_tags(version: i16, tag: i32) -> BTreeMap<i32, Bytes> {
        match version >= 9 {
            true => BTreeMap::from([(tag, Bytes::from_static(b"future"))]),
            false => BTreeMap::new(),
        }
    }

    fn string(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_string())
    }

    /// A partition using every field `version` has; `shape` varies nulls and tagged fields.
    fn partition(version: i16, index: i32, shape: u8) -> kp::PartitionProduceResponse {
        let mut p = kp::PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code([0, 6, 87][shape as usize % 3])
            .with_base_offset(if shape % 3 == 0 { 5000 + i64::from(index) } else { -1 })
            .with_log_append_time_ms(if shape % 2 == 0 { 1_700_000_000_000 } else { -1 });
        if version >= 5 {
            p.log_start_offset = 40 + i64::from(index);
        }
        if version >= 8 && shape % 3 == 2 {
            p.record_errors = vec![
                kp::BatchIndexAndErrorMessage::default()
                    .with_batch_index(3)
                    .with_batch_index_error_message(Some(string("bad timestamp"))),
                kp::BatchIndexAndErrorMessage::default().with_batch_index(9),
            ];
            p.record_errors[0].unknown_tagged_fields = unknown_tags(version, 4);
            p.error_message = Some(string("one record in the batch was invalid"));
        }
        if version >= 10 && shape % 3 == 1 {
            p.current_leader = kp::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(4))
                .with_leader_epoch(17);
        }
        p.unknown_tagged_fields = unknown_tags(version, 50 + i32::from(shape));
        p
    }

    /// A response of `version` with several topics and partitions and every field set.
    fn sample(version: i16) -> kp::ProduceResponse {
        let topic = |n: u8, partitions: Vec<kp::PartitionProduceResponse>| {
            let mut t = kp::TopicProduceResponse::default().with_partition_responses(partitions);
            match version >= 13 {
                true => t.topic_id = Uuid::from_u128(0xdef0 + u128::from(n)),
                false => t.name = TopicName(string(&format!("target-{n}"))),
            }
            t.unknown_tagged_fields = unknown_tags(version, 8);
            t
        };
        let mut r = kp::ProduceResponse::default()
            .with_throttle_time_ms(25)
            .with_responses(vec![
                topic(0, (0..4).map(|i| partition(version, i, i as u8)).collect()),
                topic(1, Vec::new()),
                topic(2, vec![partition(version, 11, 5)]),
            ]);
        r.unknown_tagged_fields = unknown_tags(version, 6);
        if version >= 10 {
            r.node_endpoints = vec![kp::NodeEndpoint::default()
                .with_node_id(BrokerId(4))
                .with_host(string("broker-4"))
                .with_port(9094)
                .with_rack(Some(string("r1")))];
        }
        r
    }

    fn encode(response: &kp::ProduceResponse, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        response.encode(&mut buf, version).expect("kafka-protocol encodes");
        buf.freeze()
    }

    fn assert_same(e: &kp::ProduceResponse, got: &ProduceResponse) {
        assert_eq!(got.throttle_time_ms, e.throttle_time_ms);
        let endpoints: Vec<NodeEndpoint> = e
            .node_endpoints
            .iter()
            .map(|n| NodeEndpoint {
                node_id: n.node_id.0,
                host: n.host.to_string(),
                port: n.port,
                rack: n.rack.as_ref().map(|r| r.to_string()),
            })
            .collect();
        assert_eq!(got.node_endpoints, endpoints);
        assert_eq!(got.responses.len(), e.responses.len());
        for (t, e) in got.responses.iter().zip(&e.responses) {
            assert_eq!(t.name, e.name.0.as_str());
            assert_eq!(t.topic_id, e.topic_id);
            assert_eq!(t.partition_responses.len(), e.partition_responses.len());
            for (p, e) in t.partition_responses.iter().zip(&e.partition_responses) {
                assert_eq!(p.index, e.index);
                assert_eq!(p.error_code, e.error_code);
                assert_eq!(p.base_offset, e.base_offset);
                assert_eq!(p.log_append_time_ms, e.log_append_time_ms);
                assert_eq!(p.log_start_offset, e.log_start_offset);
                let record_errors: Vec<_> = e
                    .record_errors
                    .iter()
                    .map(|r| BatchIndexAndErrorMessage {
                        batch_index: r.batch_index,
                        batch_index_error_message: r.batch_index_error_message.as_ref().map(|m| m.to_string()),
                    })
                    .collect();
                assert_eq!(p.record_errors, record_errors);
                assert_eq!(p.error_message.as_deref(), e.error_message.as_deref());
                // kafka-protocol leaves a tagged field out when it holds its default value.
                let leader = (e.current_leader != Default::default()).then_some(LeaderIdAndEpoch {
                    leader_id: e.current_leader.leader_id.0,
                    leader_epoch: e.current_leader.leader_epoch,
                });
                assert_eq!(p.current_leader, leader);
            }
        }
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes_at_every_version() {
        for version in VERSIONS {
            let expected = sample(version);
            let got = ProduceResponse::decode(encode(&expected, version), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_same(&expected, &got);
            let p = &got.responses[0].partition_responses;
            assert_eq!(p[1].current_leader.is_some(), version >= 10, "v{version}");
            assert_eq!(p[2].record_errors.len(), if version >= 8 { 2 } else { 0 }, "v{version}");
        }
    }

    #[test]
    fn every_strict_prefix_is_an_error() {
        for version in VERSIONS {
            let body = encode(&sample(version), version);
            for len in 0..body.len() {
                assert!(
                    ProduceResponse::decode(body.slice(..len), version).is_err(),
                    "v{version} len {len}"
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_and_unsupported_versions_are_errors() {
        let mut body = BytesMut::from(&encode(&sample(3), 3)[..]);
        body.extend_from_slice(&[0, 0]);
        let err = ProduceResponse::decode(body.freeze(), 3).unwrap_err();
        assert_eq!(err.problem, Problem::TrailingBytes(2));
        for version in [2, 14] {
            let err = ProduceResponse::decode(encode(&sample(3), 3), version).unwrap_err();
            assert!(matches!(err.problem, Problem::UnsupportedVersion { .. }));
        }
    }

    /// Found by fuzzing: kafka-protocol 0.18 aborts the process on this body (a compact
    /// array of 2^32 - 2 topics, allocated up front).
    #[test]
    fn fuzz_reproducer_huge_compact_topic_count_is_an_error() {
        let body = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        let (result, allocated) = allocated_by(|| ProduceResponse::decode(body, 12));
        let err = result.unwrap_err();
        assert_eq!((err.field, err.offset), ("responses", 0));
        assert!(matches!(
            err.problem,
            Problem::TooManyElements { count: 0xffff_fffe, .. }
        ));
        assert_eq!(allocated, 0);
    }

    fn check_bounded(body: Bytes, version: i16) -> Result<(), TestCaseError> {
        crate::wire::decode::alloc_counter::check_bounded(body, version, |b, v| {
            let decoded = ProduceResponse::decode(b, v);
            decoded.map(|_| ())
        })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_nor_allocate_much(
            version in VERSIONS,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            check_bounded(Bytes::from(body), version)?;
        }

        #[test]
        fn mutated_responses_never_panic_nor_allocate_much(
            version in VERSIONS,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut body = BytesMut::from(&encode(&sample(version), version)[..]);
            for (at, byte) in edits {
                let at = at.index(body.len());
                body[at] = byte;
            }
            if truncate {
                body.truncate(cut.index(body.len()));
            }
            check_bounded(body.freeze(), version)?;
        }
    }
}
