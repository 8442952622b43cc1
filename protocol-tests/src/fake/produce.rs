//! Produce (key 0), with [`super::FakeOptions::target`]: appends each partition's v2 batches
//! to its log, giving them the next offsets, so that a client can use the fake as a
//! replication target. acks, idempotence (producer id, sequence) and transactions are not
//! checked: what was sent is stored, offsets assigned as a leader does.
//!
//! References: Kafka `clients/src/main/resources/common/message/ProduceRequest.json`,
//! `log/UnifiedLog.scala` (`analyzeAndValidateRecords`, offset assignment).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::Shared;

/// Offset of `lastOffsetDelta` in a v2 batch, and the smallest v2 batch.
const LAST_OFFSET_DELTA_AT: usize = 23;
const V2_HEADER: usize = 61;

pub(super) fn handle(shared: &Shared, request: ProduceRequest) -> ProduceResponse {
    let mut responses = Vec::new();
    {
        let mut state = shared.state();
        for topic in request.topic_data {
            let name = topic.name.0.to_string();
            let partition_responses = topic
                .partition_data
                .into_iter()
                .map(|p| {
                    let response = PartitionProduceResponse::default().with_index(p.index);
                    let Some(partition) = state.partition_mut(&name, p.index) else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let base = partition.log_end_offset();
                    let mut bytes = p.records.map(|r| r.to_vec()).unwrap_or_default();
                    let appended = with_offsets(&mut bytes, base).and_then(|()| partition.append(&bytes));
                    match appended {
                        Ok(()) => response
                            .with_base_offset(base)
                            .with_log_start_offset(partition.log_start_offset),
                        Err(_) => response.with_error_code(ResponseError::CorruptMessage.code()),
                    }
                })
                .collect();
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name)
                    .with_partition_responses(partition_responses),
            );
        }
    }
    shared.changed.send_modify(|n| *n += 1); // wake long polls
    ProduceResponse::default().with_responses(responses)
}

/// Gives the v2 batches in `bytes` consecutive base offsets from `base` (the base offset is
/// outside the CRC, so nothing else changes).
fn with_offsets(bytes: &mut [u8], mut base: i64) -> Result<(), String> {
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &mut bytes[pos..];
        if rest.len() < V2_HEADER || rest[16] != 2 {
            return Err(format!("not a v2 batch at byte {pos}"));
        }
        let size = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        let len = usize::try_from(size).map_err(|_| format!("size {size}"))? + 12;
        if len > rest.len() || len < V2_HEADER {
            return Err(format!("batch at byte {pos} has size {size}"));
        }
        let delta = i32::from_be_bytes(
            rest[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .expect("4 bytes"),
        );
        rest[..8].copy_from_slice(&base.to_be_bytes());
        base += i64::from(delta) + 1;
        pos += len;
    }
    Ok(())
}
