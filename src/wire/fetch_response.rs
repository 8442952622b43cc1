//! Fetch response decoding, v4 to v17, with checked lengths and zero-copy `records`.
//!
//! Fetch responses are kferry's hot path and the largest thing it reads off the network,
//! so it decodes them itself with [`Reader`] (see [`super::decode`] for why not
//! `kafka-protocol`). Each partition's `records` is a [`Bytes`] slice of the response
//! body: the batches kferry forwards are never copied.
//!
//! Layout (fields in wire order, with the versions that have them):
//!
//! ```text
//! throttle_time_ms i32 | error_code i16 (7+) | session_id i32 (7+)
//! responses []:
//!     topic string (..=12) | topic_id uuid (13+)
//!     partitions []:
//!         partition_index i32 | error_code i16 | high_watermark i64 | last_stable_offset i64
//!         log_start_offset i64 (5+)
//!         aborted_transactions []? { producer_id i64, first_offset i64 }
//!         preferred_read_replica i32 (11+)
//!         records bytes?
//!         tagged (12+): 0 diverging_epoch { epoch i32, end_offset i64 }
//!                       1 current_leader { leader_id i32, leader_epoch i32 }
//!                       2 snapshot_id { end_offset i64, epoch i32 }
//! tagged (12+): 0 node_endpoints [] { node_id i32, host string, port i32, rack string? } (16+)
//! ```
//!
//! v12+ are flexible: compact lengths and a tagged-field section closing every structure.
//! v14 and v15 only add error codes, v17 changes only the request. Bytes left after the
//! last field are an error: they mean the body was not the version it was decoded as.
//!
//! References: Kafka `clients/src/main/resources/common/message/FetchResponse.json`;
//! KIP-482 (flexible versions), KIP-516 (topic ids), KIP-595 (diverging epoch, snapshot
//! id), KIP-951 (current leader, node endpoints), KIP-392 (preferred read replica).

use bytes::Bytes;
use uuid::Uuid;

use super::decode::{check_version, DecodeError, LeaderIdAndEpoch, NodeEndpoint, Reader};
use super::fetch::AbortedTxn;

/// Oldest Fetch response version decoded here (the first with transactions).
pub const FETCH_RESPONSE_MIN_VERSION: i16 = 4;
/// Newest Fetch response version decoded here.
pub const FETCH_RESPONSE_MAX_VERSION: i16 = 17;

/// A decoded Fetch response body.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchResponse {
    pub throttle_time_ms: i32,
    /// Top-level error (v7+; 0 before).
    pub error_code: i16,
    /// Fetch session id (v7+; 0 before).
    pub session_id: i32,
    pub responses: Vec<FetchableTopicResponse>,
    /// Endpoints of the leaders named in `current_leader` (v16+; empty when not sent).
    pub node_endpoints: Vec<NodeEndpoint>,
}

/// One topic of a Fetch response.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchableTopicResponse {
    /// Topic name (up to v12; empty from v13 on).
    pub topic: String,
    /// Topic id (v13+; nil before).
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionData>,
}

/// One partition of a Fetch response.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionData {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// v5+; -1 before.
    pub log_start_offset: i64,
    /// Tagged (v12+): where the fetcher's log diverges from the leader's.
    pub diverging_epoch: Option<EpochEndOffset>,
    /// Tagged (v12+): the leader the broker knows of, sent with leadership errors.
    pub current_leader: Option<LeaderIdAndEpoch>,
    /// Tagged (v12+): the snapshot to fetch instead (KRaft followers only).
    pub snapshot_id: Option<SnapshotId>,
    /// `None` when the broker sent null (no transactions to report, or read_uncommitted).
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
    /// v11+; -1 before, and when the broker has no preference.
    pub preferred_read_replica: i32,
    /// The record batches, a slice of the response body; the last may be cut short.
    pub records: Option<Bytes>,
}

/// `EpochEndOffset`: the largest epoch and its end offset the fetcher's log agrees on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: i32,
    pub end_offset: i64,
}

/// `SnapshotId`: end offset and epoch of a KRaft snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: i32,
}

impl FetchResponse {
    /// Decodes a Fetch response body (after the response header) of `version`.
    pub fn decode(body: Bytes, version: i16) -> Result<Self, DecodeError> {
        check_version(version, FETCH_RESPONSE_MIN_VERSION, FETCH_RESPONSE_MAX_VERSION)?;
        let flexible = version >= 12;
        let mut r = Reader::new(body);
        let throttle_time_ms = r.i32("throttle_time_ms")?;
        let (error_code, session_id) = match version >= 7 {
            true => (r.i16("error_code")?, r.i32("session_id")?),
            false => (0, 0),
        };
        let responses = r.array_of("responses", flexible, topic_min_size(version), |r| {
            read_topic(r, version)
        })?;
        let mut node_endpoints = Vec::new();
        if flexible {
            r.tagged_fields("tagged_fields", |tag, value| match tag {
                0 if version >= 16 => {
                    node_endpoints = NodeEndpoint::read_all(value)?;
                    Ok(true)
                }
                _ => Ok(false),
            })?;
        }
        r.finish("end of response")?;
        Ok(FetchResponse {
            throttle_time_ms,
            error_code,
            session_id,
            responses,
            node_endpoints,
        })
    }
}

/// Fewest bytes a topic can take: its name or id, an empty partition array, tagged fields.
fn topic_min_size(version: i16) -> usize {
    match version {
        ..=11 => 2 + 4,
        12 => 1 + 1 + 1,
        _ => 16 + 1 + 1,
    }
}

/// Fewest bytes a partition can take: fixed fields, null aborted list, null records, no tags.
fn partition_min_size(version: i16) -> usize {
    let flexible = version >= 12;
    let mut size = 4 + 2 + 8 + 8;
    if version >= 5 {
        size += 8;
    }
    if version >= 11 {
        size += 4;
    }
    size + if flexible { 1 + 1 + 1 } else { 4 + 4 }
}

fn read_topic(r: &mut Reader, version: i16) -> Result<FetchableTopicResponse, DecodeError> {
    let flexible = version >= 12;
    let (topic, topic_id) = match version >= 13 {
        true => (String::new(), r.uuid("responses.topic_id")?),
        false => (r.string("responses.topic", flexible)?, Uuid::nil()),
    };
    let partitions = r.array_of("responses.partitions", flexible, partition_min_size(version), |r| {
        read_partition(r, version)
    })?;
    if flexible {
        r.skip_tagged_fields("responses.tagged_fields")?;
    }
    Ok(FetchableTopicResponse {
        topic,
        topic_id,
        partitions,
    })
}

fn read_partition(r: &mut Reader, version: i16) -> Result<PartitionData, DecodeError> {
    let flexible = version >= 12;
    let partition_index = r.i32("partitions.partition_index")?;
    let error_code = r.i16("partitions.error_code")?;
    let high_watermark = r.i64("partitions.high_watermark")?;
    let last_stable_offset = r.i64("partitions.last_stable_offset")?;
    let log_start_offset = match version >= 5 {
        true => r.i64("partitions.log_start_offset")?,
        false => -1,
    };
    let aborted_min = if flexible { 16 + 1 } else { 16 };
    let aborted_transactions = r.nullable_array("partitions.aborted_transactions", flexible, aborted_min, |r| {
        let txn = AbortedTxn {
            producer_id: r.i64("aborted_transactions.producer_id")?,
            first_offset: r.i64("aborted_transactions.first_offset")?,
        };
        if flexible {
            r.skip_tagged_fields("aborted_transactions.tagged_fields")?;
        }
        Ok(txn)
    })?;
    let preferred_read_replica = match version >= 11 {
        true => r.i32("partitions.preferred_read_replica")?,
        false => -1,
    };
    let records = r.nullable_bytes("partitions.records", flexible)?;
    let mut partition = PartitionData {
        partition_index,
        error_code,
        high_watermark,
        last_stable_offset,
        log_start_offset,
        diverging_epoch: None,
        current_leader: None,
        snapshot_id: None,
        aborted_transactions,
        preferred_read_replica,
        records,
    };
    if flexible {
        r.tagged_fields("partitions.tagged_fields", |tag, value| {
            match tag {
                0 => partition.diverging_epoch = Some(read_epoch_end_offset(value)?),
                1 => partition.current_leader = Some(LeaderIdAndEpoch::read(value)?),
                2 => partition.snapshot_id = Some(read_snapshot_id(value)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
    }
    Ok(partition)
}

fn read_epoch_end_offset(r: &mut Reader) -> Result<EpochEndOffset, DecodeError> {
    let out = EpochEndOffset {
        epoch: r.i32("diverging_epoch.epoch")?,
        end_offset: r.i64("diverging_epoch.end_offset")?,
    };
    r.skip_tagged_fields("diverging_epoch.tagged_fields")?;
    Ok(out)
}

fn read_snapshot_id(r: &mut Reader) -> Result<SnapshotId, DecodeError> {
    let out = SnapshotId {
        end_offset: r.i64("snapshot_id.end_offset")?,
        epoch: r.i32("snapshot_id.epoch")?,
    };
    r.skip_tagged_fields("snapshot_id.tagged_fields")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_response as kp;
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    use super::*;
    use crate::wire::decode::alloc_counter::allocated_by;
    use crate::wire::decode::Problem;

    const VERSIONS: std::ops::RangeInclusive<i16> = FETCH_RESPONSE_MIN_VERSION..=FETCH_RESPONSE_MAX_VERSION;

    fn unknown_tags(version: i16, tag: i32) -> BTreeMap<i32, Bytes> {
        match version >= 12 {
            true => BTreeMap::from([(tag, Bytes::from_static(b"future"))]),
            false => BTreeMap::new(),
        }
    }

    fn records(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn aborted(version: i16, list: &[(i64, i64)]) -> Vec<kp::AbortedTransaction> {
        list.iter()
            .map(|&(producer_id, first_offset)| {
                let mut a = kp::AbortedTransaction::default()
                    .with_producer_id(ProducerId(producer_id))
                    .with_first_offset(first_offset);
                a.unknown_tagged_fields = unknown_tags(version, 5);
                a
            })
            .collect()
    }

    /// A partition using every field `version` has; `shape` varies nulls and tagged fields.
    fn partition(version: i16, index: i32, shape: u8) -> kp::PartitionData {
        let flexible = version >= 12;
        let mut p = kp::PartitionData::default()
            .with_partition_index(index)
            .with_error_code([0, 6, 1][shape as usize % 3])
            .with_high_watermark(1000 + i64::from(index))
            .with_last_stable_offset(900 + i64::from(index));
        if version >= 5 {
            p.log_start_offset = 10 * i64::from(index);
        }
        if version >= 11 {
            p.preferred_read_replica = BrokerId(if shape % 2 == 0 { 3 } else { -1 });
        }
        p.aborted_transactions = match shape % 3 {
            0 => Some(aborted(version, &[(7, 50), (i64::MAX, -2)])),
            1 => None,
            _ => Some(Vec::new()),
        };
        p.records = match shape % 4 {
            0 => Some(records(300 + index as usize, shape)),
            1 => None,
            2 => Some(Bytes::new()),
            _ => Some(records(1, shape)),
        };
        if flexible {
            if shape % 2 == 0 {
                p.diverging_epoch = kp::EpochEndOffset::default().with_epoch(5).with_end_offset(77);
                p.snapshot_id = kp::SnapshotId::default().with_end_offset(88).with_epoch(4);
            }
            if shape % 3 != 2 {
                p.current_leader = kp::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(2))
                    .with_leader_epoch(9);
            }
            p.unknown_tagged_fields = unknown_tags(version, 100 + i32::from(shape));
        }
        p
    }

    /// A response of `version` with several topics and partitions and every field set.
    fn sample(version: i16) -> kp::FetchResponse {
        let topic = |n: u8, partitions: Vec<kp::PartitionData>| {
            let mut t = kp::FetchableTopicResponse::default().with_partitions(partitions);
            match version >= 13 {
                true => t.topic_id = Uuid::from_u128(0xabc0 + u128::from(n)),
                false => t.topic = TopicName(StrBytes::from_string(format!("topic-{n}-ünïcode"))),
            }
            t.unknown_tagged_fields = unknown_tags(version, 9);
            t
        };
        let mut r = kp::FetchResponse::default()
            .with_throttle_time_ms(12)
            .with_responses(vec![
                topic(0, (0..5).map(|i| partition(version, i, i as u8)).collect()),
                topic(1, Vec::new()),
                topic(2, vec![partition(version, 7, 4), partition(version, 3, 1)]),
            ]);
        if version >= 7 {
            r.error_code = 0;
            r.session_id = 1234;
        }
        if version >= 12 {
            r.unknown_tagged_fields = unknown_tags(version, 3);
        }
        if version >= 16 {
            r.node_endpoints = vec![
                kp::NodeEndpoint::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("broker-2.example"))
                    .with_port(9092)
                    .with_rack(Some(StrBytes::from_static_str("rack-a"))),
                kp::NodeEndpoint::default()
                    .with_node_id(BrokerId(5))
                    .with_host(StrBytes::from_static_str("b5"))
                    .with_port(19093),
            ];
        }
        r
    }

    fn encode(response: &kp::FetchResponse, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        response.encode(&mut buf, version).expect("kafka-protocol encodes");
        buf.freeze()
    }

    fn assert_same(expected: &kp::FetchResponse, got: &FetchResponse, version: i16) {
        assert_eq!(got.throttle_time_ms, expected.throttle_time_ms);
        assert_eq!(got.error_code, expected.error_code);
        assert_eq!(got.session_id, expected.session_id);
        let endpoints: Vec<NodeEndpoint> = expected
            .node_endpoints
            .iter()
            .map(|e| NodeEndpoint {
                node_id: e.node_id.0,
                host: e.host.to_string(),
                port: e.port,
                rack: e.rack.as_ref().map(|r| r.to_string()),
            })
            .collect();
        assert_eq!(got.node_endpoints, endpoints);
        assert_eq!(got.responses.len(), expected.responses.len());
        for (t, e) in got.responses.iter().zip(&expected.responses) {
            assert_eq!(t.topic, e.topic.0.as_str());
            assert_eq!(t.topic_id, e.topic_id);
            assert_eq!(t.partitions.len(), e.partitions.len());
            for (p, e) in t.partitions.iter().zip(&e.partitions) {
                assert_same_partition(e, p, version);
            }
        }
    }

    fn assert_same_partition(e: &kp::PartitionData, p: &PartitionData, version: i16) {
        assert_eq!(p.partition_index, e.partition_index);
        assert_eq!(p.error_code, e.error_code);
        assert_eq!(p.high_watermark, e.high_watermark);
        assert_eq!(p.last_stable_offset, e.last_stable_offset);
        assert_eq!(p.log_start_offset, e.log_start_offset);
        assert_eq!(p.preferred_read_replica, e.preferred_read_replica.0);
        assert_eq!(p.records, e.records);
        let aborted = e.aborted_transactions.as_ref().map(|list| {
            list.iter()
                .map(|a| AbortedTxn {
                    producer_id: a.producer_id.0,
                    first_offset: a.first_offset,
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(p.aborted_transactions, aborted);
        // kafka-protocol leaves a tagged field out when it holds its default value.
        let flexible = version >= 12;
        let diverging = (e.diverging_epoch != Default::default()).then_some(EpochEndOffset {
            epoch: e.diverging_epoch.epoch,
            end_offset: e.diverging_epoch.end_offset,
        });
        assert_eq!(p.diverging_epoch, diverging.filter(|_| flexible));
        let leader = (e.current_leader != Default::default()).then_some(LeaderIdAndEpoch {
            leader_id: e.current_leader.leader_id.0,
            leader_epoch: e.current_leader.leader_epoch,
        });
        assert_eq!(p.current_leader, leader.filter(|_| flexible));
        let snapshot = (e.snapshot_id != Default::default()).then_some(SnapshotId {
            end_offset: e.snapshot_id.end_offset,
            epoch: e.snapshot_id.epoch,
        });
        assert_eq!(p.snapshot_id, snapshot.filter(|_| flexible));
    }

    #[test]
    fn decodes_what_kafka_protocol_encodes_at_every_version() {
        for version in VERSIONS {
            let expected = sample(version);
            let body = encode(&expected, version);
            let got = FetchResponse::decode(body, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_same(&expected, &got, version);
            let tagged = got.responses[0].partitions[0].current_leader.is_some();
            assert_eq!(tagged, version >= 12, "v{version}");
        }
    }

    #[test]
    fn records_are_slices_of_the_body() {
        for version in VERSIONS {
            let body = encode(&sample(version), version);
            let range = body.as_ptr_range();
            let got = FetchResponse::decode(body.clone(), version).unwrap();
            let mut checked = 0;
            for p in got.responses.iter().flat_map(|t| &t.partitions) {
                if let Some(records) = p.records.as_ref().filter(|r| !r.is_empty()) {
                    assert!(range.contains(&records.as_ptr()), "v{version}: records were copied");
                    assert!(records.as_ptr_range().end <= range.end);
                    checked += 1;
                }
            }
            assert!(checked >= 3, "v{version}");
        }
    }

    #[test]
    fn every_strict_prefix_is_an_error() {
        for version in VERSIONS {
            let body = encode(&sample(version), version);
            for len in 0..body.len() {
                assert!(
                    FetchResponse::decode(body.slice(..len), version).is_err(),
                    "v{version} len {len}"
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_and_unsupported_versions_are_errors() {
        let mut body = BytesMut::from(&encode(&sample(12), 12)[..]);
        body.extend_from_slice(&[0]);
        let err = FetchResponse::decode(body.freeze(), 12).unwrap_err();
        assert_eq!(err.problem, Problem::TrailingBytes(1));
        for version in [3, 18] {
            let err = FetchResponse::decode(encode(&sample(4), 4), version).unwrap_err();
            assert!(matches!(err.problem, Problem::UnsupportedVersion { .. }));
        }
    }

    #[test]
    fn node_endpoints_tag_before_v16_is_skipped_as_unknown() {
        // throttle, error, session, no topics, one tagged field: tag 0, 1 byte.
        let body = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0xee]);
        let got = FetchResponse::decode(body, 15).unwrap();
        assert!(got.node_endpoints.is_empty());
    }

    /// Found by fuzzing: kafka-protocol 0.18 aborts the process on this body (it asks for
    /// 2^31 - 1 topics' worth of memory up front).
    #[test]
    fn fuzz_reproducer_huge_topic_count_is_an_error() {
        let body = Bytes::from_static(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
        let (result, allocated) = allocated_by(|| FetchResponse::decode(body, 4));
        let err = result.unwrap_err();
        assert_eq!((err.field, err.offset), ("responses", 4));
        assert!(matches!(
            err.problem,
            Problem::TooManyElements { count: 0x7fff_ffff, .. }
        ));
        assert!(err.to_string().contains("responses at byte 4"), "{err}");
        assert_eq!(allocated, 0);
    }

    fn check_bounded(body: Bytes, version: i16) -> Result<(), TestCaseError> {
        crate::wire::decode::alloc_counter::check_bounded(body, version, |b, v| {
            let decoded = FetchResponse::decode(b, v);
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
