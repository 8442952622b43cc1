//! ListGroups (key 16), v0-4: the groups with committed offsets, as "Empty" groups without
//! a protocol type (the fake has no membership).
//!
//! Only node 0 coordinates groups (see FindCoordinator), so only node 0 lists them; the
//! follower of [`super::FakeOptions::follower_rack`] answers with none, as a Kafka broker
//! that coordinates no group does. A client must ask every broker.
//!
//! References: Kafka `ListGroupsRequest.json`, `ListGroupsResponse.json`.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::NODE_ID;
use super::Shared;

pub(super) fn handle(shared: &Shared, node: i32) -> ListGroupsResponse {
    let groups = match node == NODE_ID {
        true => shared.state().group_ids(),
        false => Vec::new(),
    };
    let groups = groups
        .into_iter()
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g)))
                .with_protocol_type(StrBytes::from_static_str(""))
                .with_group_state(StrBytes::from_static_str("Empty"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
