//! Metadata (key 3): one broker, node 0 at the fake's own address, leading every partition.
//! With [`super::FakeOptions::follower_rack`], also node 1 (the second port, in that rack),
//! a replica in sync for every partition.
//!
//! A null topic list (or an empty one at v0) asks for every topic. Topics are named, or
//! from v10 on may be given by topic id. An unknown topic comes back with
//! UNKNOWN_TOPIC_OR_PARTITION (topics are never auto-created). Leader epochs are 0.
//!
//! References: Kafka `MetadataRequest.json`, `MetadataResponse.json`; KIP-516 (topic ids).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::state::{State, Topic};
use super::{Shared, FOLLOWER_ID};

/// The fake's node id.
pub(super) const NODE_ID: i32 = 0;

pub(super) fn handle(shared: &Shared, request: MetadataRequest, version: i16) -> MetadataResponse {
    let state = shared.state();
    let requested = request.topics.filter(|t| version >= 1 || !t.is_empty());
    let topics = match requested {
        None => state.topics.iter().map(|(name, t)| describe(shared, name, t)).collect(),
        Some(wanted) => wanted
            .iter()
            .map(|w| lookup(shared, &state, w.name.as_ref().map(|n| n.as_str()), w.topic_id))
            .collect(),
    };
    let mut brokers = vec![MetadataResponseBroker::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(StrBytes::from_string(shared.addr.ip().to_string()))
        .with_port(i32::from(shared.addr.port()))];
    if let (Some(addr), Some(rack)) = (shared.follower_addr, &shared.options.follower_rack) {
        brokers.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(FOLLOWER_ID))
                .with_host(StrBytes::from_string(addr.ip().to_string()))
                .with_port(i32::from(addr.port()))
                .with_rack(Some(StrBytes::from_string(rack.clone()))),
        );
    }
    let mut response = MetadataResponse::default().with_brokers(brokers).with_topics(topics);
    if version >= 1 {
        response = response.with_controller_id(BrokerId(NODE_ID));
    }
    if version >= 2 {
        response = response.with_cluster_id(Some(StrBytes::from_static_str("kferry-fake")));
    }
    response
}

fn lookup(shared: &Shared, state: &State, name: Option<&str>, id: Uuid) -> MetadataResponseTopic {
    let name = name.or_else(|| state.topic_name(id).filter(|_| !id.is_nil()));
    match name.and_then(|n| state.topics.get_key_value(n)) {
        Some((name, topic)) => describe(shared, name, topic),
        None => MetadataResponseTopic::default()
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
            .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_string()))))
            .with_topic_id(id),
    }
}

fn describe(shared: &Shared, name: &str, topic: &Topic) -> MetadataResponseTopic {
    let id = match shared.options.nil_topic_ids {
        true => Uuid::nil(),
        false => topic.id,
    };
    let mut replicas = vec![BrokerId(NODE_ID)];
    if shared.follower_addr.is_some() {
        replicas.push(BrokerId(FOLLOWER_ID));
    }
    let partitions = (0..topic.partitions.len() as i32)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(NODE_ID))
                .with_leader_epoch(0)
                .with_replica_nodes(replicas.clone())
                .with_isr_nodes(replicas.clone())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_id(id)
        .with_partitions(partitions)
}
