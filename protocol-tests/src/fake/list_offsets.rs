//! ListOffsets (key 2), v1-7: the log start offset (timestamp -2) and the log end as a
//! consumer sees it (timestamp -1): the high watermark, or the last stable offset for a
//! read_committed request (v2+).
//!
//! Not faked: lookups by timestamp (and -3, the max timestamp of KIP-734) find nothing:
//! offset -1 and timestamp -1, as Kafka answers when no record is that recent.
//!
//! References: Kafka `ListOffsetsRequest.json`, `ListOffsetsResponse.json`; KIP-98.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Shared;

/// ListOffsets timestamp for the log end.
const LATEST: i64 = -1;
/// ListOffsets timestamp for the log start.
const EARLIEST: i64 = -2;
/// `isolation_level` of a read_committed request.
const READ_COMMITTED: i8 = 1;

pub(super) fn handle(shared: &Shared, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let state = shared.state();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let Some(log) = state.partition(t.name.as_str(), p.partition_index) else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let offset = match p.timestamp {
                        EARLIEST => log.log_start_offset,
                        LATEST if request.isolation_level == READ_COMMITTED => log.last_stable_offset(),
                        LATEST => log.high_watermark(),
                        _ => return response,
                    };
                    let epoch = if version >= 4 { 0 } else { -1 }; // leader epochs from v4 (KIP-320)
                    response.with_offset(offset).with_leader_epoch(epoch)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
