//! FindCoordinator (key 10): the fake's own node coordinates every group (and every
//! transactional id). v0-3 ask for one key; v4+ for a list (KIP-699).
//!
//! References: Kafka `FindCoordinatorRequest.json`, `FindCoordinatorResponse.json`.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::NODE_ID;
use super::Shared;

pub(super) fn handle(shared: &Shared, request: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let host = StrBytes::from_string(shared.addr.ip().to_string());
    let port = i32::from(shared.addr.port());
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(host.clone())
                    .with_port(port)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(host)
        .with_port(port)
}
