//! OffsetCommit (key 8), v2-8: stores each offset and its metadata in memory.
//!
//! There is no group membership: any generation and member id are accepted (kferry
//! commits as a "simple" group, generation -1). A partition that does not exist gets
//! UNKNOWN_TOPIC_OR_PARTITION, as from Kafka.
//!
//! References: Kafka `OffsetCommitRequest.json`, `OffsetCommitResponse.json`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::state::Committed;
use super::Shared;

pub(super) fn handle(shared: &Shared, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let mut state = shared.state();
    let group = request.group_id.as_str();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let topic = t.name.as_str();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let index = p.partition_index;
                    let error = match state.partition(topic, index) {
                        Some(_) => {
                            let committed = Committed {
                                offset: p.committed_offset,
                                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                            };
                            state.commit(group, topic, index, committed);
                            0
                        }
                        None => ResponseError::UnknownTopicOrPartition.code(),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(error)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
