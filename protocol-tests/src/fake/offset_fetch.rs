//! OffsetFetch (key 9), v1-7: one group per request; what OffsetCommit stored.
//!
//! A partition never committed comes back with offset -1 and empty metadata, as from
//! Kafka. A null topic list (v2+) asks for every partition the group committed.
//!
//! References: Kafka `OffsetFetchRequest.json`, `OffsetFetchResponse.json`.

use kafka_protocol::messages::offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::state::State;
use super::Shared;

pub(super) fn handle(shared: &Shared, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let state = shared.state();
    let group = request.group_id.as_str();
    let wanted: Vec<(String, Vec<i32>)> = match request.topics {
        Some(topics) => topics
            .iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect(),
        None => {
            let mut all: Vec<(String, Vec<i32>)> = Vec::new();
            for (topic, partition) in state.committed_partitions(group) {
                match all.last_mut() {
                    Some((t, ps)) if *t == topic => ps.push(partition),
                    _ => all.push((topic, vec![partition])),
                }
            }
            all
        }
    };
    let topics = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .iter()
                .map(|&p| partition(&state, group, &topic, p))
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

fn partition(state: &State, group: &str, topic: &str, index: i32) -> OffsetFetchResponsePartition {
    let response = OffsetFetchResponsePartition::default().with_partition_index(index);
    match state.committed(group, topic, index) {
        Some(c) => response
            .with_committed_offset(c.offset)
            .with_metadata(c.metadata.as_ref().map(|m| StrBytes::from_string(m.clone()))),
        None => response
            .with_committed_offset(-1)
            .with_metadata(Some(StrBytes::from_static_str(""))),
    }
}
