//! Admin, offset and producer-id requests on a [`Cluster`].
//!
//! Each method picks the highest version both sides support, sends the request to the broker
//! that must answer it (controller, partition leader or group coordinator) and turns error
//! codes into [`WireError`]s that name the cluster, topic and partition.
//!
//! The `_many` variants take partitions of any number of topics and send one request per
//! broker that must answer, so that starting a route of 10,000 partitions costs a few requests,
//! not a few per topic or partition.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest, InitProducerIdRequest, ListGroupsRequest,
    ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{Cluster, Purpose};
use super::error::{check_code, WireError};

/// [`check_code`] with the broker's error message, when it sent one, after the context.
fn check_code_with_message(
    cluster: &str,
    code: i16,
    message: Option<&StrBytes>,
    context: impl FnOnce() -> String,
) -> Result<(), WireError> {
    check_code(cluster, code, || match message {
        Some(m) => format!("{}: {}", context(), m.as_str()),
        None => context(),
    })
}

/// ListOffsets timestamp asking for the log end (high watermark, or LSO when read_committed).
pub const LATEST: i64 = -1;
/// ListOffsets timestamp asking for the log start offset.
pub const EARLIEST: i64 = -2;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    /// -1 lets the broker use its `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// A committed offset and its metadata string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub metadata: String,
}

/// A consumer group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    /// "consumer" for Kafka consumers; empty for groups that only commit offsets.
    pub protocol_type: String,
    /// The group state when the broker reports it (ListGroups v4+), else empty.
    pub state: String,
}

/// The groups of every broker that answered ListGroups, and the errors of those that did not.
#[derive(Debug, Default)]
pub struct ListedGroups {
    pub groups: Vec<ListedGroup>,
    pub errors: Vec<WireError>,
}

/// A consumer group as its coordinator describes it (DescribeGroups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// "Empty", "Stable", "PreparingRebalance", "CompletingRebalance" or "Dead".
    pub state: String,
    pub members: usize,
}

impl GroupDescription {
    /// True while the group has members or is rebalancing: an offset commit from outside
    /// the group could be overwritten by, or overwrite, a member's own.
    pub fn is_active(&self) -> bool {
        self.members > 0 || !matches!(self.state.as_str(), "Empty" | "Dead" | "")
    }
}

/// A topic name and a partition index: how the bulk requests key their answers.
pub type TopicPartition = (String, i32);

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

impl Cluster {
    /// Creates topics; a topic that already exists counts as created.
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<(), WireError> {
        let meta = self.metadata();
        let conn = match meta.brokers.contains_key(&meta.controller_id) {
            true => self.broker(meta.controller_id, Purpose::Control).await?,
            false => self.any_broker().await?,
        };
        let version = conn.version_for::<CreateTopicsRequest>(7)?;
        let request = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic_name(&t.name))
                        .with_num_partitions(t.partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(
                            t.configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(k.clone()))
                                        .with_value(Some(StrBytes::from_string(v.clone())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let response = conn.call(&request, version).await?;
        for t in &response.topics {
            if t.error_code == ResponseError::TopicAlreadyExists.code() {
                continue;
            }
            check_code_with_message(self.name(), t.error_code, t.error_message.as_ref(), || {
                format!("CreateTopics '{}'", t.name.0.as_str())
            })?;
        }
        Ok(())
    }

    /// Asks each partition's leader for the offset at `timestamp` ([`LATEST`], [`EARLIEST`]).
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<HashMap<i32, i64>, WireError> {
        let wanted: Vec<TopicPartition> = partitions.iter().map(|&p| (topic.to_string(), p)).collect();
        let offsets = self.list_offsets_many(&wanted, timestamp).await?;
        Ok(offsets.into_iter().map(|((_, p), offset)| (p, offset)).collect())
    }

    /// [`Cluster::list_offsets`] for partitions of any number of topics: one request per leader.
    pub async fn list_offsets_many(
        &self,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<HashMap<TopicPartition, i64>, WireError> {
        let meta = self.metadata();
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        for (topic, p) in partitions {
            let leader = meta.leader(topic, *p).ok_or_else(|| WireError::UnknownTopic {
                cluster: self.name().to_string(),
                topic: format!("{topic}-{p} (no leader)"),
            })?;
            by_leader.entry(leader).or_default().entry(topic).or_default().push(*p);
        }
        let mut out = HashMap::with_capacity(partitions.len());
        for (leader, topics) in by_leader {
            let conn = self.broker(leader, Purpose::Control).await?;
            let version = conn.version_for::<ListOffsetsRequest>(7)?;
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(0)
                .with_topics(
                    topics
                        .iter()
                        .map(|(topic, parts)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(topic))
                                .with_partitions(
                                    parts
                                        .iter()
                                        .map(|&p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_current_leader_epoch(-1)
                                                .with_timestamp(timestamp)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let response = conn.call(&request, version).await?;
            for t in &response.topics {
                let topic = t.name.0.as_str();
                for p in &t.partitions {
                    check_code(self.name(), p.error_code, || {
                        format!("ListOffsets {topic}-{}", p.partition_index)
                    })?;
                    out.insert((topic.to_string(), p.partition_index), p.offset);
                }
            }
        }
        Ok(out)
    }

    /// The value of one topic config (e.g. `max.message.bytes`), if the broker reports it.
    pub async fn topic_config(&self, topic: &str, name: &str) -> Result<Option<String>, WireError> {
        let mut values = self.topic_configs(&[topic.to_string()], name).await?;
        values.remove(topic).unwrap_or(Ok(None))
    }

    /// The value of one config (e.g. `max.message.bytes`) for each of `topics`, in one
    /// DescribeConfigs request. Each topic gets its value (`None` when the broker does not
    /// report it) or its own error; a topic missing from the answer is missing here too.
    ///
    /// Asks for all of each topic's configs: tansu 0.6 cannot decode a DescribeConfigs
    /// request that names the keys it wants (and closes the connection).
    pub async fn topic_configs(
        &self,
        topics: &[String],
        name: &str,
    ) -> Result<HashMap<String, Result<Option<String>, WireError>>, WireError> {
        let all = self.describe_topic_configs(topics).await?;
        let value_of =
            |entries: Vec<TopicConfigEntry>| entries.into_iter().find(|c| c.name == name).and_then(|c| c.value);
        Ok(all
            .into_iter()
            .map(|(topic, entries)| (topic, entries.map(value_of)))
            .collect())
    }

    /// Gets an idempotent producer id and epoch (no transactional id).
    pub async fn init_producer_id(&self) -> Result<(i64, i16), WireError> {
        let conn = self.any_broker().await?;
        let version = conn.version_for::<InitProducerIdRequest>(4)?;
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        let response = conn.call(&request, version).await?;
        check_code(self.name(), response.error_code, || "InitProducerId".to_string())?;
        Ok((response.producer_id.0, response.producer_epoch))
    }

    /// The broker id of a consumer group's coordinator.
    pub async fn group_coordinator(&self, group: &str) -> Result<i32, WireError> {
        let conn = self.any_broker().await?;
        let version = conn.version_for::<FindCoordinatorRequest>(4)?;
        let key = StrBytes::from_string(group.to_string());
        let mut request = FindCoordinatorRequest::default().with_key_type(0);
        if version >= 4 {
            request = request.with_coordinator_keys(vec![key]);
        } else {
            request = request.with_key(key);
        }
        let response = conn.call(&request, version).await?;
        let context = || format!("FindCoordinator for group '{group}'");
        if version >= 4 {
            let c = response.coordinators.first().ok_or_else(|| WireError::Protocol {
                cluster: self.name().to_string(),
                addr: conn.addr().to_string(),
                api: "FindCoordinator",
                version,
                message: "no coordinator in response".to_string(),
            })?;
            check_code(self.name(), c.error_code, context)?;
            Ok(c.node_id.0)
        } else {
            check_code(self.name(), response.error_code, context)?;
            Ok(response.node_id.0)
        }
    }

    /// Commits offsets for a group with no members (a "simple" commit, generation -1).
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, CommittedOffset)],
    ) -> Result<(), WireError> {
        let coordinator = self.group_coordinator(group).await?;
        let conn = self.broker(coordinator, Purpose::Control).await?;
        let version = conn.version_for::<OffsetCommitRequest>(8)?;
        let mut topics: HashMap<&str, Vec<OffsetCommitRequestPartition>> = HashMap::new();
        for (topic, partition, c) in offsets {
            topics.entry(topic.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(c.offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_string(c.metadata.clone()))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let response = conn.call(&request, version).await?;
        for t in &response.topics {
            for p in &t.partitions {
                check_code(self.name(), p.error_code, || {
                    format!(
                        "OffsetCommit group '{group}' {}-{}",
                        t.name.0.as_str(),
                        p.partition_index
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Reads a group's committed offsets for the given partitions (absent: never committed).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<HashMap<i32, CommittedOffset>, WireError> {
        let wanted: Vec<TopicPartition> = partitions.iter().map(|&p| (topic.to_string(), p)).collect();
        let offsets = self.fetch_offsets_many(group, &wanted).await?;
        Ok(offsets.into_iter().map(|((_, p), c)| (p, c)).collect())
    }

    /// [`Cluster::fetch_offsets`] for partitions of any number of topics, in one request.
    pub async fn fetch_offsets_many(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, CommittedOffset>, WireError> {
        let coordinator = self.group_coordinator(group).await?;
        let conn = self.broker(coordinator, Purpose::Control).await?;
        let version = conn.version_for::<OffsetFetchRequest>(7)?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, p) in partitions {
            topics.entry(topic).or_default().push(*p);
        }
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(
                topics
                    .into_iter()
                    .map(|(topic, parts)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partition_indexes(parts)
                    })
                    .collect(),
            ));
        let response = conn.call(&request, version).await?;
        check_code(self.name(), response.error_code, || {
            format!("OffsetFetch group '{group}'")
        })?;
        let mut out = HashMap::new();
        for t in &response.topics {
            let topic = t.name.0.as_str();
            for p in &t.partitions {
                check_code(self.name(), p.error_code, || {
                    format!("OffsetFetch group '{group}' {topic}-{}", p.partition_index)
                })?;
                if p.committed_offset >= 0 {
                    let metadata = p.metadata.as_ref().map(|m| m.as_str().to_string()).unwrap_or_default();
                    out.insert(
                        (topic.to_string(), p.partition_index),
                        CommittedOffset {
                            offset: p.committed_offset,
                            metadata,
                        },
                    );
                }
            }
        }
        Ok(out)
    }
}

impl Cluster {
    /// Lists the consumer groups of the cluster. Each broker knows only the groups it
    /// coordinates, so ListGroups goes to every broker of the cached metadata (fetched first
    /// if there is none; a brokers-only refresh would count as a full one and delay the
    /// fetchers' periodic refresh).
    pub async fn list_groups(&self) -> Result<ListedGroups, WireError> {
        let mut meta = self.metadata();
        if meta.brokers.is_empty() {
            meta = self.refresh_metadata(None).await?;
        }
        let mut ids: Vec<i32> = meta.brokers.keys().copied().collect();
        ids.sort_unstable();
        let mut out = ListedGroups::default();
        for id in ids {
            match self.list_groups_of(id).await {
                Ok(groups) => out.groups.extend(groups),
                Err(e) => out.errors.push(e),
            }
        }
        out.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    async fn list_groups_of(&self, broker: i32) -> Result<Vec<ListedGroup>, WireError> {
        let conn = self.broker(broker, Purpose::Control).await?;
        let version = conn.version_for::<ListGroupsRequest>(4)?;
        let response = conn.call(&ListGroupsRequest::default(), version).await?;
        check_code(self.name(), response.error_code, || {
            format!("ListGroups on broker {broker} ({})", conn.addr())
        })?;
        Ok(response
            .groups
            .iter()
            .map(|g| ListedGroup {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            })
            .collect())
    }

    /// Describes a group at its coordinator. A group the coordinator does not know is
    /// reported as "Dead" with no members, as Kafka itself does.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, WireError> {
        let coordinator = self.group_coordinator(group).await?;
        let conn = self.broker(coordinator, Purpose::Control).await?;
        let version = conn.version_for::<DescribeGroupsRequest>(5)?;
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))])
            .with_include_authorized_operations(false);
        let response = conn.call(&request, version).await?;
        let Some(g) = response.groups.iter().find(|g| g.group_id.0.as_str() == group) else {
            return Err(WireError::Protocol {
                cluster: self.name().to_string(),
                addr: conn.addr().to_string(),
                api: "DescribeGroups",
                version,
                message: format!("no answer for group '{group}'"),
            });
        };
        if g.error_code == ResponseError::GroupIdNotFound.code() {
            return Ok(GroupDescription {
                state: "Dead".to_string(),
                members: 0,
            });
        }
        check_code(self.name(), g.error_code, || format!("DescribeGroups group '{group}'"))?;
        Ok(GroupDescription {
            state: g.group_state.to_string(),
            members: g.members.len(),
        })
    }
}

/// One topic config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub sensitive: bool,
    /// Kafka's `ConfigSource` (1 = set on the topic, 5 = the default, ...).
    pub source: i8,
}

/// IncrementalAlterConfigs operation SET.
const CONFIG_SET: i8 = 0;

impl Cluster {
    /// Every config of each of `topics` (one DescribeConfigs request); each topic gets its
    /// entries or its own error.
    pub async fn describe_topic_configs(
        &self,
        topics: &[String],
    ) -> Result<HashMap<String, Result<Vec<TopicConfigEntry>, WireError>>, WireError> {
        let conn = self.any_broker().await?;
        let version = conn.version_for::<DescribeConfigsRequest>(4)?;
        let request = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|topic| {
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_string(topic.clone()))
                        .with_configuration_keys(None)
                })
                .collect(),
        );
        let response = conn.call(&request, version).await?;
        let mut out = HashMap::with_capacity(topics.len());
        for result in &response.results {
            let topic = result.resource_name.as_str();
            let entries = check_code(self.name(), result.error_code, || {
                format!("DescribeConfigs topic '{topic}'")
            })
            .map(|()| {
                result
                    .configs
                    .iter()
                    .map(|c| TopicConfigEntry {
                        name: c.name.as_str().to_string(),
                        value: c.value.as_ref().map(|v| v.as_str().to_string()),
                        read_only: c.read_only,
                        sensitive: c.is_sensitive,
                        source: c.config_source,
                    })
                    .collect()
            });
            out.insert(topic.to_string(), entries);
        }
        Ok(out)
    }

    /// Sets configs of one topic with IncrementalAlterConfigs (KIP-339; operation SET), leaving
    /// its other configs as they are.
    pub async fn set_topic_configs(&self, topic: &str, configs: &[(String, String)]) -> Result<(), WireError> {
        let conn = self.any_broker().await?;
        let version = conn.version_for::<IncrementalAlterConfigsRequest>(1)?;
        let resource = AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_config_operation(CONFIG_SET)
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
        let response = conn.call(&request, version).await?;
        for r in &response.responses {
            check_code_with_message(self.name(), r.error_code, r.error_message.as_ref(), || {
                format!("IncrementalAlterConfigs topic '{topic}'")
            })?;
        }
        Ok(())
    }

    /// Grows topics to the given partition counts (CreatePartitions, KIP-195; the controller
    /// places the new replicas).
    pub async fn create_partitions(&self, counts: &[(String, i32)]) -> Result<(), WireError> {
        let meta = self.metadata();
        let conn = match meta.brokers.contains_key(&meta.controller_id) {
            true => self.broker(meta.controller_id, Purpose::Control).await?,
            false => self.any_broker().await?,
        };
        let version = conn.version_for::<CreatePartitionsRequest>(3)?;
        let request = CreatePartitionsRequest::default().with_timeout_ms(30_000).with_topics(
            counts
                .iter()
                .map(|(topic, count)| {
                    CreatePartitionsTopic::default()
                        .with_name(topic_name(topic))
                        .with_count(*count)
                        .with_assignments(None)
                })
                .collect(),
        );
        let response = conn.call(&request, version).await?;
        for r in &response.results {
            check_code_with_message(self.name(), r.error_code, r.error_message.as_ref(), || {
                format!("CreatePartitions '{}'", r.name.0.as_str())
            })?;
        }
        Ok(())
    }
}
