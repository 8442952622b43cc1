//! The replication engine: routes, per-partition pipelines, fetchers, sinks and progress.
//!
//! Data path for one route (see `docs/DESIGN.md`):
//!
//! 1. A [`fetcher`] per source broker fetches every partition that broker leads and that has
//!    room downstream, and splits each partition's records into batches ([`crate::batch`]).
//! 2. A [`sink`] per partition rewrites each batch header (producer id, sequence, base offset
//!    0) and produces it to the same partition number on the target, at most five batches
//!    in flight, handling responses strictly in order.
//! 3. After the target acknowledges, the partition's acknowledged position moves; the
//!    [`progress`] checkpointer commits it to the source cluster as a consumer group.
//! 4. On start, [`reconcile`] matches the target's tail to the source so that batches the
//!    target already holds are not written twice.
//!
//! Target topic names come from the route's [`rename`] policy. While the route runs,
//! [`topic_sync`] creates and starts new matching topics, grows target topics whose source
//! gained partitions ([`route_grow`] adds the partitions), and syncs topic configs.

pub mod budget;
pub mod counters;
pub mod cycle;
pub mod dup_check;
pub mod fetcher;
pub mod heartbeat;
pub mod hook;
pub mod lag;
pub mod partition;
pub mod progress;
pub mod rate_limit;
pub mod read_replica;
pub mod reconcile;
pub mod rename;
pub mod route;
pub mod route_grow;
pub mod route_setup;
pub mod router;
pub mod routing;
pub mod sink;
pub mod slowpath;
pub mod status;
pub mod topic_sync;
pub mod txn;

use std::time::Duration;

use crate::batch::Compression;
pub use slowpath::OversizePolicy;

pub use counters::{PathCount, PathCounts};
pub use heartbeat::{HeartbeatConfig, HeartbeatLatency};
pub use hook::{BatchObserver, ForwardedBatch};
pub use lag::PartitionLag;
pub use partition::{Acked, PartitionShared};
pub use rename::{RenamePolicy, TopicRename};
pub use route::{PartitionStatus, RouteError, RouteHandle};
pub use routing::TopicFilter;

/// Where a partition without stored progress starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The log start offset (everything still on the source).
    Earliest,
    /// The log end offset (only what is written from now on).
    Latest,
}

impl StartPosition {
    /// Parses Kafka's `auto.offset.reset` values.
    pub fn parse(s: &str) -> Option<StartPosition> {
        match s {
            "earliest" => Some(StartPosition::Earliest),
            "latest" => Some(StartPosition::Latest),
            _ => None,
        }
    }
}

/// One route: which topics go from which cluster to which, and how.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// Name of the source cluster.
    pub source: String,
    /// Name of the target cluster.
    pub target: String,
    /// Include patterns (whole-name regexes).
    pub include: Vec<String>,
    /// Exclude patterns (whole-name regexes).
    pub exclude: Vec<String>,
    /// Consumer group on the source holding progress; default `kferry-<name>`.
    pub group_id: String,
    pub start: StartPosition,
    /// How often acknowledged positions are committed.
    pub commit_interval: Duration,
    /// `max.partition.fetch.bytes`.
    pub max_partition_fetch_bytes: i32,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: i32,
    /// `fetch.max.wait.ms`.
    pub fetch_max_wait_ms: i32,
    /// Bytes of fetched data the route may hold before it stops fetching.
    pub buffer_memory: u64,
    /// `byte.rate.limit`: bytes per second the route may fetch from the source; `None`:
    /// unlimited.
    pub byte_rate_limit: Option<u64>,
    /// Start with the whole route paused (no fetch until resumed; the management API's
    /// saved state uses it so that nothing is fetched between start and pause).
    pub start_paused: bool,
    /// Start with these source topics paused.
    pub start_paused_topics: Vec<String>,
    /// The process-wide cap that this route shares with every other route, if any (the
    /// top-level `buffer.memory`; [`crate::Replicator`] sets it).
    pub process_memory_cap: Option<budget::Cap>,
    /// Produce requests in flight per partition (Kafka allows at most 5 with idempotence).
    pub max_in_flight: usize,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// The codec batches get on the target; `None` ("keep") forwards each batch's own.
    pub compression: Option<Compression>,
    /// What to do with a batch larger than the target topic's `max.message.bytes`.
    pub oversize: OversizePolicy,
    /// `check.crcs`: verify every source batch's CRC before forwarding it.
    pub check_crcs: bool,
    /// What to do with a source batch whose CRC does not match.
    pub corrupt: CorruptPolicy,
    /// How source partitions map to target partitions.
    pub partition_mapping: PartitionMapping,
    /// What to do when the source deleted records before they were replicated.
    pub on_data_loss: DataLossPolicy,
    /// `offset.map.topic`: the compacted topic on the target holding the offset maps.
    pub offset_map_topic: String,
    /// Group offset sync (`sync.group.offsets.*`, `groups`, `groups.exclude`).
    pub group_sync: crate::offsets::sync::GroupSyncConfig,
    /// What source topics are called on the target (`rename.policy`).
    pub rename: RenamePolicy,
    /// `metadata.max.age.ms`: how often topic sync looks for new matching source topics and
    /// grown partition counts.
    pub metadata_max_age: Duration,
    /// `sync.topic.configs.interval.seconds`; `None` (`sync.topic.configs.enabled = false`)
    /// never syncs topic configs after creation.
    pub sync_topic_configs: Option<Duration>,
    /// Topic config keys never copied, on top of [`topic_sync::DEFAULT_CONFIG_EXCLUDE`]
    /// (`config.properties.exclude`, whole-name regexes).
    pub config_exclude: Vec<String>,
    /// `replication.factor` of the topics kferry creates; -1: the target's default.
    pub replication_factor: i16,
}

/// How a route maps source partitions to target partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionMapping {
    /// Partition n to partition n (default). When the target topic has a different
    /// partition count, records are placed by key instead.
    Identity,
    /// Always place records by key with Kafka's default partitioner (decodes every batch).
    ByKey,
}

/// What to do with a source batch whose CRC does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptPolicy {
    /// Stop the partition with an error naming cluster, topic, partition and offset (default).
    Fail,
    /// Skip the batch, count it and log it.
    Skip,
}

/// What to do when the source log start offset passed the replicated position (retention
/// or DeleteRecords removed records kferry had not replicated yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLossPolicy {
    /// Stop the partition with an error saying how many offsets were lost (default).
    Fail,
    /// Log it, count the lost offsets (`lost_offsets`) and go on from the log start offset.
    ResumeEarliest,
}

impl DataLossPolicy {
    /// Parses the `on.data.loss` values `"fail"` and `"resume-earliest"`.
    pub fn parse(s: &str) -> Option<DataLossPolicy> {
        match s {
            "fail" => Some(DataLossPolicy::Fail),
            "resume-earliest" => Some(DataLossPolicy::ResumeEarliest),
            _ => None,
        }
    }
}

impl RouteConfig {
    /// A route with defaults: all topics, progress in group `kferry-<name>`, earliest start.
    pub fn new(name: impl Into<String>, source: impl Into<String>, target: impl Into<String>) -> RouteConfig {
        let name = name.into();
        RouteConfig {
            group_id: format!("kferry-{name}"),
            name,
            source: source.into(),
            target: target.into(),
            include: vec![".*".to_string()],
            exclude: Vec::new(),
            start: StartPosition::Earliest,
            commit_interval: Duration::from_secs(1),
            max_partition_fetch_bytes: 1024 * 1024,
            fetch_max_bytes: 16 * 1024 * 1024,
            fetch_max_wait_ms: 500,
            buffer_memory: 256 * 1024 * 1024,
            byte_rate_limit: None,
            start_paused: false,
            start_paused_topics: Vec::new(),
            process_memory_cap: None,
            max_in_flight: 5,
            retry_backoff: Duration::from_millis(100),
            compression: None,
            oversize: OversizePolicy::Split,
            check_crcs: true,
            corrupt: CorruptPolicy::Fail,
            partition_mapping: PartitionMapping::Identity,
            on_data_loss: DataLossPolicy::Fail,
            offset_map_topic: crate::offsets::DEFAULT_TOPIC.to_string(),
            group_sync: crate::offsets::sync::GroupSyncConfig::default(),
            rename: RenamePolicy::Identity,
            metadata_max_age: Duration::from_secs(300),
            sync_topic_configs: Some(Duration::from_secs(600)),
            config_exclude: Vec::new(),
            replication_factor: -1,
        }
    }

    /// Replicates topics matching any of `patterns` (replaces the default `.*`).
    pub fn include(mut self, patterns: &[&str]) -> RouteConfig {
        self.include = patterns.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Names target topics with `policy`.
    pub fn rename(mut self, policy: RenamePolicy) -> RouteConfig {
        self.rename = policy;
        self
    }

    /// The route's rename policy bound to its cluster aliases.
    pub fn topic_rename(&self) -> TopicRename {
        TopicRename::new(self.rename.clone(), &self.source, &self.target)
    }

    /// Skips topics matching any of `patterns`.
    pub fn exclude(mut self, patterns: &[&str]) -> RouteConfig {
        self.exclude = patterns.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The route's topic filter: `include` and `exclude`, plus kferry's own internal topic
    /// (the offset-map topic, which another route may write to this route's source) so that
    /// it is never replicated.
    pub fn topic_filter(&self) -> Result<TopicFilter, regex::Error> {
        let mut exclude = self.exclude.clone();
        exclude.push(regex::escape(&self.offset_map_topic));
        TopicFilter::new(&self.include, &exclude)
    }
}
