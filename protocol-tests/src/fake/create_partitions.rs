//! CreatePartitions (key 37), with [`super::FakeOptions::target`]: grows a topic to the
//! requested partition count, as Kafka does (KIP-195). A count not above the current one is
//! INVALID_PARTITIONS, an unknown topic UNKNOWN_TOPIC_OR_PARTITION; `validate_only` changes
//! nothing. Assignments are ignored (one broker).
//!
//! References: KIP-195; Kafka `clients/src/main/resources/common/message/CreatePartitionsRequest.json`,
//! `server/.../ZkAdminManager.createPartitions` (the checks).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Shared;

pub(super) fn handle(shared: &Shared, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::new();
    {
        let mut state = shared.state();
        for topic in request.topics {
            let name = topic.name.0.to_string();
            let result = CreatePartitionsTopicResult::default().with_name(topic.name);
            let current = state.topics.get(&name).map(|t| t.partitions.len() as i32);
            let result = match current {
                None => result.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                Some(n) if topic.count <= n => result
                    .with_error_code(ResponseError::InvalidPartitions.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Topic currently has {n} partitions, which is higher than or equal to the requested {}.",
                        topic.count
                    )))),
                Some(_) if request.validate_only => result,
                Some(_) => {
                    state.add_partitions(&name, topic.count);
                    result
                }
            };
            results.push(result);
        }
    }
    shared.changed.send_modify(|n| *n += 1);
    CreatePartitionsResponse::default().with_results(results)
}
