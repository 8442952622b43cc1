//! Topic sync: keeps a running route's target topics in step with its source.
//!
//! Every `metadata.max.age.ms` the route's source metadata is refreshed and compared with the
//! topics the route replicates ([`topic_changes`]):
//!
//! - a new source topic that the route selects is created on the target (its name from the
//!   rename policy, the source's partition count, the route's `replication.factor`, and the
//!   source topic's copyable configs) and replicated from its beginning;
//! - a source topic that gained partitions gets as many on the target (CreatePartitions,
//!   KIP-195), and the new partitions are replicated.
//!
//! Every `sync.topic.configs.interval.seconds` the source topics' configs are compared with the
//! target topics' ([`config_changes`]) and the differing ones are set on the target with
//! IncrementalAlterConfigs (KIP-339). As MirrorMaker 2's `DefaultConfigPropertyFilter`, some
//! keys are never copied ([`DEFAULT_CONFIG_EXCLUDE`], extended by `config.properties.exclude`),
//! nor read-only or sensitive ones. A key is copied when its source value differs from the
//! target's (tansu 0.6 marks every config it reports as a default, so "non-default on the
//! source" cannot be the rule).
//!
//! Failures are logged and retried on the next round; they never stop replication.
//!
//! References: KIP-382 (MirrorMaker 2.0: "refresh.topics", "sync.topic.configs"), Kafka's
//! `connect/mirror/.../DefaultConfigPropertyFilter.java` and `MirrorSourceConnector.java`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use tokio::sync::watch;

use super::rename::TopicRename;
use super::route_grow::RouteGrowth;
use super::route_setup::topic_layouts;
use super::{RouteConfig, TopicFilter};
use crate::wire::admin::TopicConfigEntry;
use crate::wire::{Cluster, NewTopic, WireError};

/// Topic configs never copied to the target (whole-name regexes): MirrorMaker 2's
/// `DefaultConfigPropertyFilter` list, plus `compression.type`, which kferry sets to
/// `producer` on the topics it creates so that the target never recompresses.
pub const DEFAULT_CONFIG_EXCLUDE: &[&str] = &[
    r"follower\.replication\.throttled\.replicas",
    r"leader\.replication\.throttled\.replicas",
    r"message\.timestamp\.difference\.max\.ms",
    r"message\.timestamp\.before\.max\.ms",
    r"message\.timestamp\.after\.max\.ms",
    r"message\.timestamp\.type",
    r"unclean\.leader\.election\.enable",
    r"min\.insync\.replicas",
    r"compression\.type",
];

/// Which topic configs are copied.
#[derive(Debug, Clone)]
pub struct ConfigFilter {
    exclude: Vec<Regex>,
}

impl ConfigFilter {
    /// The built-in exclude list plus `extra` (whole-name regexes).
    pub fn new(extra: &[String]) -> Result<ConfigFilter, regex::Error> {
        let exclude = DEFAULT_CONFIG_EXCLUDE
            .iter()
            .map(|p| p.to_string())
            .chain(extra.iter().cloned())
            .map(|p| Regex::new(&format!("^(?:{p})$")))
            .collect::<Result<_, _>>()?;
        Ok(ConfigFilter { exclude })
    }

    /// True when `entry` may be copied to the target. A value that comes from the source
    /// broker's own configuration (Kafka's `ConfigSource` DYNAMIC_BROKER_CONFIG (2),
    /// DYNAMIC_DEFAULT_BROKER_CONFIG (3), STATIC_BROKER_CONFIG (4) or
    /// DYNAMIC_BROKER_LOGGER_CONFIG (6)) is that cluster's business, not the topic's.
    pub fn copies(&self, entry: &TopicConfigEntry) -> bool {
        !entry.read_only
            && !entry.sensitive
            && !matches!(entry.source, 2..=4 | 6)
            && entry.value.is_some()
            && !self.exclude.iter().any(|r| r.is_match(&entry.name))
    }
}

/// The configs a new target topic gets from its source topic.
pub fn configs_to_create(source: &[TopicConfigEntry], filter: &ConfigFilter) -> Vec<(String, String)> {
    source
        .iter()
        .filter(|e| filter.copies(e))
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect()
}

/// The configs to set on the target topic: copyable source configs whose value differs.
pub fn config_changes(
    source: &[TopicConfigEntry],
    target: &[TopicConfigEntry],
    filter: &ConfigFilter,
) -> Vec<(String, String)> {
    let current: HashMap<&str, Option<&str>> = target.iter().map(|e| (e.name.as_str(), e.value.as_deref())).collect();
    configs_to_create(source, filter)
        .into_iter()
        .filter(|(k, v)| current.get(k.as_str()).copied().flatten() != Some(v.as_str()))
        .collect()
}

/// What changed on the source since the route last looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    /// A topic the route selects and does not replicate yet.
    New { topic: String, partitions: i32 },
    /// A replicated topic with more partitions than before.
    Grown { topic: String, from: i32, to: i32 },
}

/// Compares the source's topics (name, partition count) with `known` (the route's topics and
/// their partition counts).
pub fn topic_changes<'a>(
    known: &BTreeMap<String, i32>,
    source: impl IntoIterator<Item = (&'a str, i32)>,
    filter: &TopicFilter,
    rename: &TopicRename,
) -> Vec<TopicChange> {
    let mut out: Vec<TopicChange> = source
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .filter_map(|(topic, n)| match known.get(topic) {
            Some(&from) if n > from => Some(TopicChange::Grown {
                topic: topic.to_string(),
                from,
                to: n,
            }),
            Some(_) => None,
            None if filter.matches(topic) && !rename.skips(topic) => Some(TopicChange::New {
                topic: topic.to_string(),
                partitions: n,
            }),
            None => None,
        })
        .collect();
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out
}

/// Creates target topics `(source topic, target topic, partitions)` with the source topics'
/// copyable configs and the route's `replication.factor`.
pub async fn create_target_topics(
    cfg: &RouteConfig,
    source: &Cluster,
    target: &Cluster,
    topics: &[(String, String, i32)],
) -> Result<(), WireError> {
    let filter = ConfigFilter::new(&cfg.config_exclude).unwrap_or_else(|_| ConfigFilter::new(&[]).expect("built-in"));
    let names: Vec<String> = topics.iter().map(|(s, _, _)| s.clone()).collect();
    let mut configs = match source.describe_topic_configs(&names).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(route = %cfg.name, cluster = source.name(), "DescribeConfigs failed; creating target topics without the source configs: {e}");
            HashMap::new()
        }
    };
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(src, tgt, partitions)| {
            let mut configs = match configs.remove(src) {
                Some(Ok(entries)) => configs_to_create(&entries, &filter),
                _ => Vec::new(),
            };
            configs.push(("compression.type".to_string(), "producer".to_string()));
            NewTopic {
                name: tgt.clone(),
                partitions: *partitions,
                replication_factor: cfg.replication_factor,
                configs,
            }
        })
        .collect();
    let listed: Vec<&str> = new.iter().map(|t| t.name.as_str()).collect();
    tracing::info!(route = %cfg.name, cluster = target.name(), "creating target topics {listed:?}");
    target.create_topics(&new).await
}

/// Waits until every `(topic, partitions)` shows at least that many partitions on `cluster`,
/// each with a leader.
pub async fn wait_for_leaders(cluster: &Cluster, topics: &[(String, usize)], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let meta = cluster.refresh_metadata(None).await.map_err(|e| e.to_string())?;
        let missing = topics.iter().find(|(t, n)| {
            let complete = |tm: &crate::wire::TopicMetadata| {
                tm.partitions.len() >= (*n).max(1) && tm.partitions.iter().all(|p| p.leader >= 0)
            };
            !meta.topics.get(t).is_some_and(complete)
        });
        let Some((topic, n)) = missing else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(format!(
                "target topic '{topic}' on cluster '{}' does not show {n} partitions with leaders after {timeout:?}",
                cluster.name()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The topic sync task of one route.
pub struct TopicSync {
    pub(super) cfg: RouteConfig,
    pub(super) source: Arc<Cluster>,
    pub(super) target: Arc<Cluster>,
    pub(super) growth: Arc<RouteGrowth>,
    /// Replicated source topics and their partition counts.
    pub(super) known: BTreeMap<String, i32>,
}

/// Runs topic sync until `stop`.
pub async fn run_topic_sync(mut sync: TopicSync, mut stop: watch::Receiver<bool>) {
    let mut topics = tokio::time::interval(sync.cfg.metadata_max_age);
    // Disabled: the branch below never runs (a day keeps the interval's arithmetic small).
    let mut configs = tokio::time::interval(sync.cfg.sync_topic_configs.unwrap_or(Duration::from_secs(86_400)));
    topics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    configs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    topics.tick().await;
    configs.tick().await; // topics just created got their configs then
    loop {
        tokio::select! {
            _ = topics.tick() => sync.sync_topics().await,
            _ = configs.tick(), if sync.cfg.sync_topic_configs.is_some() => sync.sync_configs().await,
            _ = stop.changed() => return,
        }
    }
}

impl TopicSync {
    /// One round of looking for new topics and partitions.
    async fn sync_topics(&mut self) {
        let route = self.cfg.name.clone();
        let Ok(filter) = self.cfg.topic_filter() else {
            return;
        };
        let meta = match self.source.refresh_metadata(None).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(route, "topic sync: source metadata refresh failed: {e}");
                return;
            }
        };
        let counts = meta
            .topics
            .values()
            .filter(|t| !t.internal)
            .map(|t| (t.name.as_str(), t.partitions.len() as i32));
        for change in topic_changes(&self.known, counts, &filter, &self.cfg.topic_rename()) {
            if let Err(e) = self.apply(&change).await {
                tracing::warn!(route, "topic sync: {change:?} failed, will retry: {e}");
            }
        }
    }

    /// Creates or grows the target topic, then starts replicating the new partitions.
    async fn apply(&mut self, change: &TopicChange) -> Result<(), String> {
        let (topic, from, to) = match change {
            TopicChange::New { topic, partitions } => (topic, 0, *partitions),
            TopicChange::Grown { topic, from, to } => (topic, *from, *to),
        };
        let target_topic = self.cfg.topic_rename().target_topic(topic)?;
        let existing = self.target.refresh_metadata(None).await.map_err(|e| e.to_string())?;
        let target_count = existing
            .topics
            .get(&target_topic)
            .map_or(0, |t| t.partitions.len() as i32);
        if target_count == 0 {
            let wanted = [(topic.clone(), target_topic.clone(), to)];
            create_target_topics(&self.cfg, &self.source, &self.target, &wanted)
                .await
                .map_err(|e| e.to_string())?;
        } else if from > 0 && target_count != from && target_count < to {
            // Repartitioned by key at start: new source partitions need a restart.
            tracing::warn!(route = %self.cfg.name, "'{topic}' grew from {from} to {to} partitions; its target '{target_topic}' has {target_count} (repartitioned by key): restart the route to replicate the new partitions");
            self.known.insert(topic.clone(), to);
            return Ok(());
        } else if from > 0 && target_count < to {
            tracing::info!(route = %self.cfg.name, cluster = self.target.name(), "growing '{target_topic}' from {target_count} to {to} partitions");
            self.target
                .create_partitions(&[(target_topic.clone(), to)])
                .await
                .map_err(|e| e.to_string())?;
        }
        wait_for_leaders(&self.target, &[(target_topic, to as usize)], Duration::from_secs(30)).await?;
        let mut layout = topic_layouts(&self.cfg, &self.source, &self.target, std::slice::from_ref(topic))
            .await
            .map_err(|e| e.to_string())?
            .remove(0);
        layout.partitions.retain(|&p| p >= from && p < to);
        let added = self.growth.add(layout).await.map_err(|e| e.to_string())?;
        tracing::info!(route = %self.cfg.name, "topic sync: replicating {added} new partitions of '{topic}'");
        self.known.insert(topic.clone(), to);
        Ok(())
    }

    /// One round of config sync over every replicated topic.
    async fn sync_configs(&mut self) {
        let route = self.cfg.name.clone();
        let Ok(filter) = ConfigFilter::new(&self.cfg.config_exclude) else {
            return;
        };
        let rename = self.cfg.topic_rename();
        let topics: Vec<String> = self.known.keys().cloned().collect();
        let names: Vec<String> = topics.iter().filter_map(|t| rename.target_topic(t).ok()).collect();
        if topics.is_empty() || names.len() != topics.len() {
            return;
        }
        let (source, target) = match (
            self.source.describe_topic_configs(&topics).await,
            self.target.describe_topic_configs(&names).await,
        ) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(route, "config sync: DescribeConfigs failed, will retry: {e}");
                return;
            }
        };
        for (topic, name) in topics.iter().zip(&names) {
            let (Some(Ok(src)), Some(Ok(tgt))) = (source.get(topic), target.get(name)) else {
                continue;
            };
            let changes = config_changes(src, tgt, &filter);
            if changes.is_empty() {
                continue;
            }
            let keys: Vec<&str> = changes.iter().map(|(k, _)| k.as_str()).collect();
            match self.target.set_topic_configs(name, &changes).await {
                Ok(()) => tracing::info!(
                    route,
                    cluster = self.target.name(),
                    "config sync: '{name}': set {keys:?}"
                ),
                Err(e) => tracing::warn!(route, "config sync: '{name}': setting {keys:?} failed, will retry: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::RenamePolicy;

    fn entry(name: &str, value: &str) -> TopicConfigEntry {
        TopicConfigEntry {
            name: name.to_string(),
            value: Some(value.to_string()),
            read_only: false,
            sensitive: false,
            source: 1,
        }
    }

    #[test]
    fn excluded_read_only_and_sensitive_configs_are_not_copied() {
        let filter = ConfigFilter::new(&[r"segment\..*".to_string()]).unwrap();
        let mut ro = entry("message.format.version", "3.0");
        ro.read_only = true;
        let mut secret = entry("some.password", "x");
        secret.sensitive = true;
        let mut broker = entry("retention.bytes", "1");
        broker.source = 4; // STATIC_BROKER_CONFIG
        let mut default = entry("max.message.bytes", "1048588");
        default.source = 5; // DEFAULT_CONFIG: tansu reports explicitly set configs so too
        let source = vec![
            entry("retention.ms", "1000"),
            entry("cleanup.policy", "compact"),
            entry("min.insync.replicas", "2"),
            entry("unclean.leader.election.enable", "true"),
            entry("compression.type", "gzip"),
            entry("segment.bytes", "1024"),
            ro,
            secret,
            broker,
            default,
        ];
        let copied: Vec<String> = configs_to_create(&source, &filter)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(copied, vec!["retention.ms", "cleanup.policy", "max.message.bytes"]);
    }

    #[test]
    fn only_differing_values_are_set() {
        let filter = ConfigFilter::new(&[]).unwrap();
        let source = vec![entry("retention.ms", "1000"), entry("cleanup.policy", "compact")];
        let target = vec![entry("retention.ms", "1000"), entry("cleanup.policy", "delete")];
        assert_eq!(
            config_changes(&source, &target, &filter),
            vec![("cleanup.policy".to_string(), "compact".to_string())]
        );
        assert_eq!(config_changes(&source, &source, &filter), vec![]);
        assert_eq!(config_changes(&source, &[], &filter).len(), 2, "missing on the target");
    }

    #[test]
    fn new_and_grown_topics_are_found() {
        let filter = TopicFilter::new(&["orders.*".to_string(), "c\\..*".to_string()], &[]).unwrap();
        let rename = TopicRename::new(RenamePolicy::Prefix { separator: ".".into() }, "a", "c");
        let known = BTreeMap::from([("orders".to_string(), 2), ("orders-eu".to_string(), 3)]);
        let source = [
            ("orders", 4),
            ("orders-eu", 3),
            ("orders-us", 1),
            ("other", 5),
            ("c.orders", 1),
        ];
        assert_eq!(
            topic_changes(&known, source, &filter, &rename),
            vec![
                TopicChange::Grown {
                    topic: "orders".into(),
                    from: 2,
                    to: 4
                },
                TopicChange::New {
                    topic: "orders-us".into(),
                    partitions: 1
                },
            ],
            "c.orders came from the target: skipped"
        );
        assert!(
            topic_changes(&known, [("orders-new", 0)], &filter, &rename).is_empty(),
            "no partitions yet"
        );
    }
}
