//! The daemon's TOML config: `[clusters.<name>]` and `[[routes]]`.
//!
//! Keys use Kafka's own config names (`bootstrap.servers`, `client.id`, ...), quoted in TOML
//! because they contain dots. Unknown keys are errors. [`Config::load`] parses and then
//! [`Config::validate`]s, and every error names the file and the key.
//!
//! ```toml
//! [clusters.onprem]
//! "bootstrap.servers" = "kafka-1:9092,kafka-2:9092"
//!
//! [clusters.cloud]
//! "bootstrap.servers" = "b-1.example:9092"
//!
//! [[routes]]
//! name = "migrate"
//! source = "onprem"
//! target = "cloud"
//! topics = ["orders.*", "payments"]
//! "topics.exclude" = [".*\\.tmp"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::batch::Compression;
use crate::offsets::sync::GroupSyncConfig;
use crate::replicate::cycle::{replication_cycle, RouteEdge};
use crate::replicate::{
    CorruptPolicy, DataLossPolicy, OversizePolicy, PartitionMapping, RenamePolicy, RouteConfig, StartPosition,
    TopicFilter,
};
use crate::wire::ClusterConfig;

/// A config error, naming the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("config file {}: {key}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

/// One `[clusters.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    #[serde(rename = "bootstrap.servers")]
    pub bootstrap_servers: String,
    #[serde(rename = "client.id", default = "default_client_id")]
    pub client_id: String,
    #[serde(rename = "request.timeout.ms", default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(
        rename = "socket.connection.setup.timeout.ms",
        default = "default_connect_timeout_ms"
    )]
    pub connect_timeout_ms: u64,
    /// Sent as the Fetch `rack_id`, to fetch from the closest replica (KIP-392).
    #[serde(rename = "client.rack", default)]
    pub client_rack: String,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Route name; defaults to `<source>-to-<target>`.
    pub name: Option<String>,
    pub source: String,
    pub target: String,
    /// Include patterns (whole-name regexes).
    pub topics: Vec<String>,
    #[serde(rename = "topics.exclude", default)]
    pub topics_exclude: Vec<String>,
    /// Consumer group on the source that holds the route's progress.
    #[serde(rename = "group.id")]
    pub group_id: Option<String>,
    /// Where a partition with no stored progress starts: "earliest" or "latest".
    #[serde(rename = "auto.offset.reset", default = "default_reset")]
    pub auto_offset_reset: String,
    #[serde(rename = "commit.interval.ms", default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    #[serde(rename = "max.partition.fetch.bytes", default = "default_partition_fetch_bytes")]
    pub max_partition_fetch_bytes: u32,
    #[serde(rename = "fetch.max.bytes", default = "default_fetch_max_bytes")]
    pub fetch_max_bytes: u32,
    #[serde(rename = "fetch.max.wait.ms", default = "default_fetch_wait_ms")]
    pub fetch_max_wait_ms: u32,
    /// Bytes of fetched data the route may hold: a number of bytes or a size with a unit
    /// ("256MiB", "1GB").
    #[serde(
        rename = "buffer.memory",
        default = "default_buffer_memory",
        deserialize_with = "byte_size"
    )]
    pub buffer_memory: u64,
    /// Bytes per second the route may fetch from the source ("50MB", "10MiB"); unlimited when
    /// absent.
    #[serde(rename = "byte.rate.limit", default, deserialize_with = "optional_byte_size")]
    pub byte_rate_limit: Option<u64>,
    /// Codec on the target: "keep" (default: each batch's own), "none", "gzip", "snappy", "lz4", "zstd".
    #[serde(default = "default_keep")]
    pub compression: String,
    /// A batch larger than the target topic's max.message.bytes: "split" (default) or "fail".
    #[serde(default = "default_split")]
    pub oversize: String,
    /// Verify each source batch's CRC before forwarding it (Kafka consumer's `check.crcs`).
    #[serde(rename = "check.crcs", default = "default_true")]
    pub check_crcs: bool,
    /// A source batch with a bad CRC: "fail" (default, the partition stops) or "skip".
    #[serde(rename = "corrupt.batch", default = "default_fail")]
    pub corrupt_batch: String,
    /// "identity" (default: partition n to n, by key when the counts differ) or "by-key".
    #[serde(rename = "partition.mapping", default = "default_identity")]
    pub partition_mapping: String,
    /// Source records deleted before they were replicated: "fail" (default) or "resume-earliest".
    #[serde(rename = "on.data.loss", default = "default_fail")]
    pub on_data_loss: String,
    /// The compacted topic on the target that holds the route's offset maps.
    #[serde(rename = "offset.map.topic", default = "default_offset_map_topic")]
    pub offset_map_topic: String,
    /// Commit the source's consumer-group offsets, translated, to the target (MirrorMaker 2).
    #[serde(rename = "sync.group.offsets.enabled", default)]
    pub sync_group_offsets_enabled: bool,
    #[serde(rename = "sync.group.offsets.interval.ms", default = "default_sync_interval_ms")]
    pub sync_group_offsets_interval_ms: u64,
    /// Source groups to sync (whole-name regexes).
    #[serde(default = "default_groups")]
    pub groups: Vec<String>,
    #[serde(rename = "groups.exclude", default = "default_groups_exclude")]
    pub groups_exclude: Vec<String>,
    /// Let the sync move a target group's offset backwards.
    #[serde(rename = "sync.group.offsets.allow.rewind", default)]
    pub sync_group_offsets_allow_rewind: bool,
    /// Target topic names: "identity" (default), "prefix" (`<source>.<topic>`) or "template".
    #[serde(rename = "rename.policy", default = "default_identity")]
    pub rename_policy: String,
    /// With `rename.policy = "template"`: e.g. "agg.{source}.{topic}".
    #[serde(rename = "rename.template", default)]
    pub rename_template: Option<String>,
    /// What separates the source alias from the topic (MirrorMaker 2's
    /// `replication.policy.separator`).
    #[serde(rename = "rename.separator", default = "default_separator")]
    pub rename_separator: String,
    /// How often new matching source topics and partition growth are looked for.
    #[serde(rename = "metadata.max.age.ms", default = "default_metadata_max_age_ms")]
    pub metadata_max_age_ms: u64,
    #[serde(rename = "sync.topic.configs.enabled", default = "default_true")]
    pub sync_topic_configs_enabled: bool,
    #[serde(
        rename = "sync.topic.configs.interval.seconds",
        default = "default_sync_configs_interval_s"
    )]
    pub sync_topic_configs_interval_seconds: u64,
    /// Topic config keys never copied (regexes), on top of the built-in list.
    #[serde(rename = "config.properties.exclude", default)]
    pub config_properties_exclude: Vec<String>,
    /// Replication factor of the topics kferry creates; -1 (default): the target's default.
    #[serde(rename = "replication.factor", default = "default_replication_factor")]
    pub replication_factor: i16,
}

impl RouteSection {
    /// The route's `rename.*` keys as a policy.
    pub fn rename_policy(&self) -> Result<RenamePolicy, String> {
        RenamePolicy::parse(
            &self.rename_policy,
            self.rename_template.as_deref(),
            &self.rename_separator,
        )
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bytes of fetched data the whole process may hold, over every route (on top of each
    /// route's own `buffer.memory`). Unset: only the routes' caps apply.
    #[serde(rename = "buffer.memory", default, deserialize_with = "optional_byte_size")]
    pub buffer_memory: Option<u64>,
    /// `host:port` to serve Prometheus metrics on (`GET /metrics`). Unset: no endpoint.
    #[serde(rename = "metrics.address", default)]
    pub metrics_address: Option<String>,
    /// `host:port` to serve the management API on (see `docs/api.md`). Unset: no API.
    #[serde(rename = "api.address", default)]
    pub api_address: Option<String>,
    /// Bearer token the management API requires (`KFERRY_API_TOKEN` overrides it). Unset:
    /// no authentication.
    #[serde(rename = "api.token", default)]
    pub api_token: Option<String>,
    /// The file recording route changes made through the API (relative to the config file's
    /// directory). Default: `kferry-api-state.json` beside the config file.
    #[serde(rename = "api.state.file", default)]
    pub api_state_file: Option<PathBuf>,
    /// Write heartbeats to every source cluster and replicate them on every route.
    #[serde(rename = "heartbeats.enabled", default = "default_true")]
    pub heartbeats_enabled: bool,
    /// The heartbeats topic, on every cluster.
    #[serde(rename = "heartbeats.topic", default = "default_heartbeats_topic")]
    pub heartbeats_topic: String,
    #[serde(rename = "heartbeats.interval.ms", default = "default_heartbeats_interval_ms")]
    pub heartbeats_interval_ms: u64,
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterSection>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

fn default_client_id() -> String {
    "kferry".to_string()
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_offset_map_topic() -> String {
    crate::offsets::DEFAULT_TOPIC.to_string()
}
fn default_reset() -> String {
    "earliest".to_string()
}
fn default_commit_interval_ms() -> u64 {
    1_000
}
fn default_partition_fetch_bytes() -> u32 {
    1024 * 1024
}
fn default_fetch_max_bytes() -> u32 {
    16 * 1024 * 1024
}
fn default_fetch_wait_ms() -> u32 {
    500
}
fn default_keep() -> String {
    "keep".to_string()
}
fn default_split() -> String {
    "split".to_string()
}
fn default_fail() -> String {
    "fail".to_string()
}
fn default_identity() -> String {
    "identity".to_string()
}
fn default_separator() -> String {
    ".".to_string()
}
fn default_metadata_max_age_ms() -> u64 {
    300_000
}
fn default_sync_configs_interval_s() -> u64 {
    600
}
fn default_replication_factor() -> i16 {
    -1
}
fn default_true() -> bool {
    true
}
fn default_heartbeats_topic() -> String {
    crate::replicate::HeartbeatConfig::default().topic
}
fn default_heartbeats_interval_ms() -> u64 {
    crate::replicate::HeartbeatConfig::default().interval.as_millis() as u64
}
/// A legal Kafka topic name: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn is_topic_name(t: &str) -> bool {
    (1..=249).contains(&t.len())
        && t != "."
        && t != ".."
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
fn default_sync_interval_ms() -> u64 {
    GroupSyncConfig::default().interval.as_millis() as u64
}
fn default_groups() -> Vec<String> {
    GroupSyncConfig::default().groups
}
fn default_groups_exclude() -> Vec<String> {
    GroupSyncConfig::default().groups_exclude
}
/// A byte size in the file: an integer (bytes) or a string with a unit (see [`parse_bytes`]).
#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    fn bytes<E: serde::de::Error>(self) -> Result<u64, E> {
        match self {
            ByteSize::Bytes(n) => Ok(n),
            ByteSize::Text(t) => parse_bytes(&t).map_err(E::custom),
        }
    }
}

fn byte_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    ByteSize::deserialize(d)?.bytes()
}

fn optional_byte_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<ByteSize>::deserialize(d)?.map(ByteSize::bytes).transpose()
}

/// Parses a byte size: a plain number of bytes, or a number with a unit: `KB`, `MB`, `GB`,
/// `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), e.g. `"256MiB"`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (e.g. 268435456, \"256MiB\", \"1GB\")"))?;
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("'{text}' is out of range"));
    }
    Ok(bytes as u64)
}

fn default_buffer_memory() -> u64 {
    256 * 1024 * 1024
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err("(file)", e.to_string()))?;
        let config: Config = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            let at = line
                .map(|l| format!("line {l}"))
                .unwrap_or_else(|| "(file)".to_string());
            err(&at, e.message().to_string())
        })?;
        config.validate().map_err(|(key, message)| err(&key, message))?;
        Ok(config)
    }

    /// Checks what serde cannot: references between sections, regexes, ranges.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (name, c) in &self.clusters {
            let key = format!("clusters.{name}.bootstrap.servers");
            let servers = split_servers(&c.bootstrap_servers);
            if servers.is_empty() {
                return Err((key, "must list at least one host:port".to_string()));
            }
            if let Some(bad) = servers.iter().find(|s| !is_host_port(s)) {
                return Err((key, format!("'{bad}' is not host:port")));
            }
        }
        if let Some(addr) = self.metrics_address.as_deref().filter(|a| !is_host_port(a)) {
            return Err(("metrics.address".to_string(), format!("'{addr}' is not host:port")));
        }
        if let Some(addr) = self.api_address.as_deref().filter(|a| !is_host_port(a)) {
            return Err(("api.address".to_string(), format!("'{addr}' is not host:port")));
        }
        self.validate_heartbeats()?;
        // With the API, routes can be added at run time.
        if self.routes.is_empty() && self.api_address.is_none() {
            return Err((
                "routes".to_string(),
                "at least one [[routes]] entry is required (or \"api.address\" to add them at run time)".to_string(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("routes[{i}].{k}");
            for (field, cluster) in [("source", &r.source), ("target", &r.target)] {
                if !self.clusters.contains_key(cluster) {
                    let known: Vec<&str> = self.clusters.keys().map(String::as_str).collect();
                    return Err((
                        key(field),
                        format!("unknown cluster '{cluster}' (known: {})", known.join(", ")),
                    ));
                }
            }
            if r.topics.is_empty() {
                return Err((key("topics"), "must list at least one topic pattern".to_string()));
            }
            TopicFilter::new(&r.topics, &r.topics_exclude).map_err(|e| (key("topics"), e.to_string()))?;
            StartPosition::parse(&r.auto_offset_reset).ok_or_else(|| {
                (
                    key("auto.offset.reset"),
                    "must be \"earliest\" or \"latest\"".to_string(),
                )
            })?;
            parse_compression(&r.compression).ok_or_else(|| {
                (
                    key("compression"),
                    "must be \"keep\", \"none\", \"gzip\", \"snappy\", \"lz4\" or \"zstd\"".to_string(),
                )
            })?;
            parse_oversize(&r.oversize)
                .ok_or_else(|| (key("oversize"), "must be \"split\" or \"fail\"".to_string()))?;
            parse_corrupt(&r.corrupt_batch)
                .ok_or_else(|| (key("corrupt.batch"), "must be \"fail\" or \"skip\"".to_string()))?;
            DataLossPolicy::parse(&r.on_data_loss).ok_or_else(|| {
                (
                    key("on.data.loss"),
                    "must be \"fail\" or \"resume-earliest\"".to_string(),
                )
            })?;
            parse_mapping(&r.partition_mapping).ok_or_else(|| {
                (
                    key("partition.mapping"),
                    "must be \"identity\" or \"by-key\"".to_string(),
                )
            })?;
            validate_group_sync(r).map_err(|(k, m)| (key(k), m))?;
            r.rename_policy().map_err(|e| (key("rename.policy"), e))?;
            TopicFilter::new(&r.config_properties_exclude, &[])
                .map_err(|e| (key("config.properties.exclude"), e.to_string()))?;
            if r.replication_factor == 0 || r.replication_factor < -1 {
                return Err((
                    key("replication.factor"),
                    "must be -1 (the target's default) or at least 1".to_string(),
                ));
            }
            if r.metadata_max_age_ms == 0 || r.sync_topic_configs_interval_seconds == 0 {
                let field = match r.metadata_max_age_ms {
                    0 => "metadata.max.age.ms",
                    _ => "sync.topic.configs.interval.seconds",
                };
                return Err((key(field), "must be at least 1".to_string()));
            }
            if r.source == r.target {
                return Err((
                    key("target"),
                    format!(
                        "same cluster as the source ('{}'): topics would be copied into themselves",
                        r.source
                    ),
                ));
            }
            for (field, value) in [
                ("max.partition.fetch.bytes", r.max_partition_fetch_bytes),
                ("fetch.max.bytes", r.fetch_max_bytes),
                ("fetch.max.wait.ms", r.fetch_max_wait_ms),
            ] {
                if value == 0 || value > i32::MAX as u32 {
                    return Err((key(field), format!("must be between 1 and {}", i32::MAX)));
                }
            }
            if r.offset_map_topic.is_empty() {
                return Err((key("offset.map.topic"), "must not be empty".to_string()));
            }
            if r.commit_interval_ms == 0 {
                return Err((key("commit.interval.ms"), "must be at least 1".to_string()));
            }
            for (field, cluster) in [("source", &r.source), ("target", &r.target)] {
                let timeout = self.clusters[cluster].request_timeout_ms;
                if field == "source" && timeout <= u64::from(r.fetch_max_wait_ms) {
                    return Err((
                        format!("clusters.{cluster}.request.timeout.ms"),
                        format!("must exceed routes[{i}].fetch.max.wait.ms ({} ms)", r.fetch_max_wait_ms),
                    ));
                }
            }
            if r.fetch_max_bytes as u64 > r.buffer_memory {
                return Err((key("fetch.max.bytes"), "must not exceed buffer.memory".to_string()));
            }
            if r.buffer_memory < 1024 * 1024 {
                return Err((key("buffer.memory"), "must be at least 1MiB".to_string()));
            }
            if r.byte_rate_limit == Some(0) {
                return Err((
                    key("byte.rate.limit"),
                    "must be above 0 (leave it out for no limit)".to_string(),
                ));
            }
            if !names.insert(self.route_name(r)) {
                return Err((key("name"), format!("duplicate route name '{}'", self.route_name(r))));
            }
        }
        if let Some(message) = self.replication_cycle() {
            return Err(("routes".to_string(), message));
        }
        Ok(())
    }

    fn validate_heartbeats(&self) -> Result<(), (String, String)> {
        if !is_topic_name(&self.heartbeats_topic) || self.heartbeats_topic.starts_with("__") {
            return Err((
                "heartbeats.topic".to_string(),
                format!(
                    "'{}' is not a topic name kferry replicates (1 to 249 of a-z A-Z 0-9 . _ -, not starting with __)",
                    self.heartbeats_topic
                ),
            ));
        }
        if self.heartbeats_interval_ms == 0 || self.heartbeats_interval_ms > i32::MAX as u64 {
            return Err((
                "heartbeats.interval.ms".to_string(),
                format!("must be between 1 and {}", i32::MAX),
            ));
        }
        Ok(())
    }

    /// Heartbeat settings for [`crate::Replicator`]; `None` when `heartbeats.enabled` is false.
    pub fn heartbeat_config(&self) -> Option<crate::replicate::HeartbeatConfig> {
        self.heartbeats_enabled.then(|| crate::replicate::HeartbeatConfig {
            topic: self.heartbeats_topic.clone(),
            interval: Duration::from_millis(self.heartbeats_interval_ms),
        })
    }

    /// A chain of routes that would copy a topic back to the cluster it came from, described
    /// for the operator (see [`crate::replicate::cycle`]).
    fn replication_cycle(&self) -> Option<String> {
        let names: Vec<String> = self.routes.iter().map(|r| self.route_name(r)).collect();
        let edges: Vec<RouteEdge<'_>> = self
            .routes
            .iter()
            .zip(&names)
            .map(|(r, name)| RouteEdge {
                name,
                source: &r.source,
                target: &r.target,
                filter: TopicFilter::new(&r.topics, &r.topics_exclude).ok(),
                rename: r.rename_policy().unwrap_or(RenamePolicy::Identity),
            })
            .collect();
        replication_cycle(&edges)
    }

    /// The name of a route (its `name`, or `<source>-to-<target>`).
    pub fn route_name(&self, r: &RouteSection) -> String {
        r.name
            .clone()
            .unwrap_or_else(|| format!("{}-to-{}", r.source, r.target))
    }

    /// Library config for every cluster.
    pub fn cluster_configs(&self) -> Vec<ClusterConfig> {
        self.clusters
            .iter()
            .map(|(name, c)| {
                let mut cfg = ClusterConfig::new(name.clone(), split_servers(&c.bootstrap_servers));
                cfg.client_id = c.client_id.clone();
                cfg.request_timeout = Duration::from_millis(c.request_timeout_ms);
                cfg.connect_timeout = Duration::from_millis(c.connect_timeout_ms);
                cfg.client_rack = c.client_rack.clone();
                cfg
            })
            .collect()
    }

    /// Library config for every route (call after [`Config::validate`]). Routes share one
    /// process-wide memory cap when the top-level `buffer.memory` is set.
    pub fn route_configs(&self) -> Vec<RouteConfig> {
        let process_cap = self.buffer_memory.map(crate::replicate::budget::Cap::new);
        self.routes
            .iter()
            .map(|r| {
                let name = self.route_name(r);
                let mut rc = RouteConfig::new(name, r.source.clone(), r.target.clone());
                rc.include = r.topics.clone();
                rc.exclude = r.topics_exclude.clone();
                if let Some(g) = &r.group_id {
                    rc.group_id = g.clone();
                }
                rc.start = StartPosition::parse(&r.auto_offset_reset).unwrap_or(StartPosition::Earliest);
                rc.commit_interval = Duration::from_millis(r.commit_interval_ms);
                rc.max_partition_fetch_bytes = r.max_partition_fetch_bytes as i32;
                rc.fetch_max_bytes = r.fetch_max_bytes as i32;
                rc.fetch_max_wait_ms = r.fetch_max_wait_ms as i32;
                rc.buffer_memory = r.buffer_memory;
                rc.byte_rate_limit = r.byte_rate_limit;
                rc.process_memory_cap = process_cap.clone();
                rc.compression = parse_compression(&r.compression).flatten();
                rc.oversize = parse_oversize(&r.oversize).unwrap_or(OversizePolicy::Split);
                rc.check_crcs = r.check_crcs;
                rc.corrupt = parse_corrupt(&r.corrupt_batch).unwrap_or(CorruptPolicy::Fail);
                rc.on_data_loss = DataLossPolicy::parse(&r.on_data_loss).unwrap_or(DataLossPolicy::Fail);
                rc.partition_mapping = parse_mapping(&r.partition_mapping).unwrap_or(PartitionMapping::Identity);
                rc.offset_map_topic = r.offset_map_topic.clone();
                rc.group_sync = GroupSyncConfig {
                    enabled: r.sync_group_offsets_enabled,
                    interval: Duration::from_millis(r.sync_group_offsets_interval_ms),
                    groups: r.groups.clone(),
                    groups_exclude: r.groups_exclude.clone(),
                    allow_rewind: r.sync_group_offsets_allow_rewind,
                };
                rc.rename = r.rename_policy().unwrap_or(RenamePolicy::Identity);
                rc.metadata_max_age = Duration::from_millis(r.metadata_max_age_ms);
                rc.sync_topic_configs = r
                    .sync_topic_configs_enabled
                    .then(|| Duration::from_secs(r.sync_topic_configs_interval_seconds));
                rc.config_exclude = r.config_properties_exclude.clone();
                rc.replication_factor = r.replication_factor;
                rc
            })
            .collect()
    }
}

/// The group offset sync keys of a route: (key, message) on error.
fn validate_group_sync(r: &RouteSection) -> Result<(), (&'static str, String)> {
    TopicFilter::new(&r.groups, &r.groups_exclude).map_err(|e| ("groups", e.to_string()))?;
    if r.sync_group_offsets_interval_ms == 0 {
        return Err(("sync.group.offsets.interval.ms", "must be at least 1".to_string()));
    }
    if r.sync_group_offsets_enabled && parse_mapping(&r.partition_mapping) == Some(PartitionMapping::ByKey) {
        return Err((
            "sync.group.offsets.enabled",
            "needs partition.mapping = \"identity\": offsets of records placed by key cannot be translated".to_string(),
        ));
    }
    Ok(())
}

/// `Some(None)` for "keep", `Some(Some(codec))` for a codec, `None` when invalid.
fn parse_compression(s: &str) -> Option<Option<Compression>> {
    match s {
        "keep" => Some(None),
        name => Compression::from_name(name).map(Some),
    }
}

fn parse_oversize(s: &str) -> Option<OversizePolicy> {
    match s {
        "split" => Some(OversizePolicy::Split),
        "fail" => Some(OversizePolicy::Fail),
        _ => None,
    }
}

fn parse_mapping(s: &str) -> Option<PartitionMapping> {
    match s {
        "identity" => Some(PartitionMapping::Identity),
        "by-key" => Some(PartitionMapping::ByKey),
        _ => None,
    }
}

fn parse_corrupt(s: &str) -> Option<CorruptPolicy> {
    match s {
        "fail" => Some(CorruptPolicy::Fail),
        "skip" => Some(CorruptPolicy::Skip),
        _ => None,
    }
}

fn split_servers(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests;
