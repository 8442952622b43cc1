//! A route's set-up reads: which source topics it replicates, the target topics (created when
//! missing), each topic's layout (partition counts, repartitioning, `max.message.bytes`), and
//! where every partition resumes (restart reconciliation). Used at start
//! ([`super::route::start_route`]) and when topic sync adds topics ([`super::route_grow`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::heartbeat;
use super::partition::Acked;
use super::progress;
use super::reconcile::{resume_partitions, ResumeInput, ResumeJob};
use super::route::RouteError;
use super::slowpath::SlowPathOptions;
use super::topic_sync;
use super::{PartitionMapping, RouteConfig, StartPosition};
use crate::wire::admin::TopicPartition;
use crate::wire::{Cluster, WireError, EARLIEST, LATEST};

/// The source topics the route replicates; literal names in the include list must exist.
/// The `heartbeats` topic is added when the source has it and the route does not exclude it.
pub(super) async fn select_topics(
    cfg: &RouteConfig,
    source: &Cluster,
    heartbeats: Option<&str>,
) -> Result<Vec<String>, RouteError> {
    let route = cfg.name.clone();
    let filter = cfg.topic_filter().map_err(|e| RouteError::Invalid {
        route: route.clone(),
        message: format!("topic pattern: {e}"),
    })?;
    let meta = source.refresh_metadata(None).await.map_err(|source| RouteError::Wire {
        route: route.clone(),
        source,
    })?;
    if let Some(missing) = filter.literal_topics().find(|t| !meta.topics.contains_key(*t)) {
        return Err(RouteError::MissingTopic {
            route,
            cluster: source.name().to_string(),
            topic: missing.to_string(),
        });
    }
    let rename = cfg.topic_rename();
    let mut topics: Vec<String> = filter
        .select(meta.topics.values().filter(|t| !t.internal).map(|t| &t.name))
        .into_iter()
        .filter(|t| !rename.skips(t))
        .collect();
    if let Some(h) = heartbeats.filter(|h| heartbeat::exists(&meta, h) && !filter.excludes(h)) {
        if !topics.iter().any(|t| t == h) {
            topics.push(h.to_string());
        }
    }
    if topics.is_empty() {
        tracing::warn!(
            route,
            cluster = source.name(),
            "no source topic matches {:?}",
            cfg.include
        );
    }
    Ok(topics)
}

/// Creates missing target topics (named by the route's rename policy, with the source's
/// partition count and copyable configs) and waits until every target partition has a leader.
pub(super) async fn ensure_target_topics(
    cfg: &RouteConfig,
    source: &Cluster,
    target: &Cluster,
    topics: &[String],
) -> Result<(), RouteError> {
    let wire = |e: WireError| RouteError::Wire {
        route: cfg.name.clone(),
        source: e,
    };
    let src_meta = source.metadata();
    let count = |t: &String| src_meta.topics.get(t).map_or(0, |m| m.partitions.len());
    let names = target_names(cfg, topics)?;
    let tgt_meta = target.refresh_metadata(None).await.map_err(wire)?;
    let created: Vec<&String> = topics
        .iter()
        .zip(&names)
        .filter(|(_, n)| !tgt_meta.topics.contains_key(*n))
        .map(|(t, _)| t)
        .collect();
    if !created.is_empty() {
        let wanted: Vec<(String, String, i32)> = created
            .iter()
            .map(|t| {
                (
                    (*t).clone(),
                    cfg.topic_rename().target_topic(t).unwrap_or_default(),
                    count(t) as i32,
                )
            })
            .collect();
        topic_sync::create_target_topics(cfg, source, target, &wanted)
            .await
            .map_err(wire)?;
    }
    let wanted: Vec<(String, usize)> = names
        .iter()
        .zip(topics)
        .map(|(n, t)| (n.clone(), if created.contains(&t) { count(t) } else { 1 }))
        .collect();
    // A topic kferry created must show all its partitions; an existing one may have any
    // count (a different count means repartitioning by key).
    topic_sync::wait_for_leaders(target, &wanted, Duration::from_secs(30))
        .await
        .map_err(|message| RouteError::Invalid {
            route: cfg.name.clone(),
            message,
        })
}

/// The target topic name of each of `topics`.
pub(super) fn target_names(cfg: &RouteConfig, topics: &[String]) -> Result<Vec<String>, RouteError> {
    let rename = cfg.topic_rename();
    topics
        .iter()
        .map(|t| {
            rename.target_topic(t).map_err(|message| RouteError::Invalid {
                route: cfg.name.clone(),
                message,
            })
        })
        .collect()
}

/// Kafka's default `max.message.bytes` (1 MiB + the 12-byte log overhead).
pub(super) const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// One topic of the route, as start-up (or topic sync) found it.
pub(super) struct TopicLayout {
    pub(super) topic: String,
    /// Its name on the target.
    pub(super) target_topic: String,
    pub(super) topic_id: uuid::Uuid,
    /// The source partitions, by index.
    pub(super) partitions: Vec<i32>,
    pub(super) target_count: usize,
    /// Records are placed on the target by key (another partition count, or `by-key`).
    pub(super) repartition: bool,
    /// The target topic's `max.message.bytes`.
    pub(super) max_message_bytes: usize,
}

/// The route's topics: partitions on both sides and the target's `max.message.bytes` (one
/// DescribeConfigs for all of them).
pub(super) async fn topic_layouts(
    cfg: &RouteConfig,
    source: &Cluster,
    target: &Cluster,
    topics: &[String],
) -> Result<Vec<TopicLayout>, RouteError> {
    let names = target_names(cfg, topics)?;
    let mut max_message_bytes = target_max_message_bytes(target, &names).await;
    let (source_meta, target_meta) = (source.metadata(), target.metadata());
    topics
        .iter()
        .zip(names)
        .map(|(topic, target_topic)| {
            let Some(tm) = source_meta.topics.get(topic) else {
                return Err(RouteError::MissingTopic {
                    route: cfg.name.clone(),
                    cluster: source.name().to_string(),
                    topic: topic.to_string(),
                });
            };
            let target_count = target_meta.topics.get(&target_topic).map_or(0, |t| t.partitions.len());
            Ok(TopicLayout {
                topic: topic.clone(),
                max_message_bytes: max_message_bytes
                    .remove(&target_topic)
                    .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
                target_topic,
                topic_id: tm.id,
                partitions: tm.partitions.iter().map(|p| p.partition).collect(),
                target_count,
                repartition: cfg.partition_mapping == PartitionMapping::ByKey || target_count != tm.partitions.len(),
            })
        })
        .collect()
}

/// Each target topic's `max.message.bytes`; Kafka's default when the broker does not say.
pub(super) async fn target_max_message_bytes(target: &Cluster, topics: &[String]) -> HashMap<String, usize> {
    const NAME: &str = "max.message.bytes";
    let warn = |topic: &str, e: &WireError| {
        tracing::warn!(
            cluster = target.name(),
            "DescribeConfigs for '{topic}' failed, assuming {NAME} = {DEFAULT_MAX_MESSAGE_BYTES}: {e}"
        );
    };
    let values = match topics.is_empty() {
        true => HashMap::new(),
        false => target.topic_configs(topics, NAME).await.unwrap_or_else(|e| {
            topics.iter().for_each(|t| warn(t, &e));
            HashMap::new()
        }),
    };
    values
        .into_iter()
        .map(|(topic, value)| {
            let bytes = match value {
                Ok(Some(v)) => v.parse().unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
                Ok(None) => DEFAULT_MAX_MESSAGE_BYTES,
                Err(e) => {
                    warn(&topic, &e);
                    DEFAULT_MAX_MESSAGE_BYTES
                }
            };
            (topic, bytes)
        })
        .collect()
}

/// Works out where every partition of the route resumes (per topic, in partition order), and
/// how many target batches were already there.
///
/// A few requests for the whole route, however many partitions it has: the committed offsets
/// (one OffsetFetch per cluster), the start offsets and the target's log start offsets (one
/// ListOffsets per broker), then [`resume_partitions`] (one Fetch per target broker, and
/// reads only for partitions whose target holds batches past the committed offset).
/// Repartitioned topics are not reconciled: they resume at the committed source offset.
pub(super) async fn resume_route(
    cfg: &RouteConfig,
    source: &Arc<Cluster>,
    target: &Arc<Cluster>,
    layouts: &[TopicLayout],
) -> Result<Vec<Vec<(Acked, usize)>>, RouteError> {
    let wire = |e: WireError| RouteError::Wire {
        route: cfg.name.clone(),
        source: e,
    };
    let committed = source
        .fetch_offsets_many(&cfg.group_id, &partitions_of(layouts))
        .await
        .map_err(wire)?;
    // Only partitions without progress need a start offset.
    let uncommitted: Vec<TopicPartition> = partitions_of(layouts)
        .into_iter()
        .filter(|k| !committed.contains_key(k))
        .collect();
    let start_at = match cfg.start {
        StartPosition::Earliest => EARLIEST,
        StartPosition::Latest => LATEST,
    };
    let starts = match uncommitted.is_empty() {
        true => HashMap::new(),
        false => source.list_offsets_many(&uncommitted, start_at).await.map_err(wire)?,
    };
    let start = |key: &TopicPartition| ResumeInput {
        committed: committed.get(key).map(progress::decode),
        target_committed: None,
        start: starts.get(key).copied().unwrap_or(0),
        target_earliest: 0,
    };
    let reconciled: Vec<&TopicLayout> = layouts.iter().filter(|l| !l.repartition).collect();
    let jobs = resume_jobs(cfg, target, &reconciled, start).await.map_err(wire)?;
    let mut resumed = match jobs.is_empty() {
        true => Vec::new().into_iter(),
        false => resume_partitions(&cfg.name, source, target, jobs)
            .await
            .map_err(wire)?
            .into_iter(),
    };
    let positions = |l: &TopicLayout| -> Vec<(Acked, usize)> {
        match l.repartition {
            // Not reconciled: the target tail cannot be matched batch for batch.
            true => partitions_of([l])
                .iter()
                .map(|key| {
                    let input = start(key);
                    let source_next = input.committed.map_or(input.start, |c| c.source_next);
                    let acked = Acked {
                        source_next,
                        target_next: None,
                    };
                    (acked, 0)
                })
                .collect(),
            false => resumed.by_ref().take(l.partitions.len()).collect(),
        }
    };
    Ok(layouts.iter().map(positions).collect())
}

/// The (topic, partition) of every partition of `layouts`.
pub(super) fn partitions_of<'a>(layouts: impl IntoIterator<Item = &'a TopicLayout>) -> Vec<TopicPartition> {
    layouts
        .into_iter()
        .flat_map(|l| l.partitions.iter().map(|&p| (l.topic.clone(), p)))
        .collect()
}

/// What reconciling the partitions of `reconciled` starts from: `start` (the source side)
/// completed with the target's committed and log start offsets (one OffsetFetch and one
/// ListOffsets per broker for all of them).
pub(super) async fn resume_jobs(
    cfg: &RouteConfig,
    target: &Cluster,
    reconciled: &[&TopicLayout],
    start: impl Fn(&TopicPartition) -> ResumeInput,
) -> Result<Vec<ResumeJob>, WireError> {
    if reconciled.is_empty() {
        return Ok(Vec::new());
    }
    // Target-side offsets are the target topic's (its name may differ from the source's).
    let wanted: Vec<TopicPartition> = reconciled
        .iter()
        .flat_map(|l| l.partitions.iter().map(|&p| (l.target_topic.clone(), p)))
        .collect();
    let target_committed = target.fetch_offsets_many(&cfg.group_id, &wanted).await?;
    let target_earliest = target.list_offsets_many(&wanted, EARLIEST).await?;
    let mut jobs = Vec::with_capacity(wanted.len());
    for l in reconciled {
        let opts = SlowPathOptions::new(cfg.compression, l.max_message_bytes, cfg.oversize);
        for &partition in &l.partitions {
            let key = (l.topic.clone(), partition);
            let target_key = (l.target_topic.clone(), partition);
            let input = ResumeInput {
                target_committed: target_committed.get(&target_key).map(|c| c.offset),
                target_earliest: target_earliest.get(&target_key).copied().unwrap_or(0),
                ..start(&key)
            };
            jobs.push(ResumeJob {
                source_topic: l.topic.clone(),
                target_topic: l.target_topic.clone(),
                partition,
                input,
                opts,
            });
        }
    }
    Ok(jobs)
}
