//! Progress: the acknowledged position of every partition, committed to Kafka.
//!
//! kferry keeps no local state. Progress is an OffsetCommit of the route's consumer group
//! (default `kferry-<route>`) **on the source cluster**, so that standard lag tools
//! (`kafka-consumer-groups.sh --describe`) show the route's lag. The committed offset is the
//! next source offset to replicate; the commit's metadata string also records the next
//! target offset (`kferry/1 target=<offset>`), which [`super::reconcile`] uses on restart to
//! find what the target received after the last commit.
//!
//! Some brokers (tansu among them) drop commit metadata. So the next target offset is also
//! committed, as the same group's offset for the target topic, **on the target cluster**,
//! and always *before* the source commit of the same round: the target-side offset is then
//! never behind the source-side one, which is what reconciliation needs.
//!
//! A position is committed only after the target acknowledged every batch below it.
//!
//! Each round first writes the route's offset maps that changed to the offset-map topic on
//! the target ([`crate::offsets::MapWriter`]), and commits a partition's position only if
//! the map just written covers it: the persisted map is never behind the committed progress,
//! so a restart resumes a map that knows every record below its resume position.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::partition::{Acked, PartitionShared};
use crate::offsets::MapWriter;
use crate::wire::{Cluster, CommittedOffset};

const PREFIX: &str = "kferry/1";

/// Encodes an acknowledged position as a committed offset with metadata.
pub fn encode(acked: Acked) -> CommittedOffset {
    let metadata = match acked.target_next {
        Some(t) => format!("{PREFIX} target={t}"),
        None => PREFIX.to_string(),
    };
    CommittedOffset {
        offset: acked.source_next,
        metadata,
    }
}

/// Decodes a committed offset; the target offset is known only if kferry wrote the metadata.
pub fn decode(committed: &CommittedOffset) -> Acked {
    let target_next = committed
        .metadata
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.trim().strip_prefix("target="))
        .and_then(|t| t.parse::<i64>().ok());
    Acked {
        source_next: committed.offset,
        target_next,
    }
}

/// The clusters and group a route commits its progress to.
pub struct ProgressStore {
    pub source: Arc<Cluster>,
    pub target: Arc<Cluster>,
    pub group: String,
    /// Writes the route's offset maps before each commit (`None`: not persisted).
    pub maps: Option<Arc<MapWriter>>,
}

/// Commits changed positions every `interval` until `stop`.
pub async fn run_checkpointer(
    store: Arc<ProgressStore>,
    partitions: Vec<Arc<PartitionShared>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut committed: HashMap<(String, i32), Acked> = HashMap::new();
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = stop.changed() => true,
        } || *stop.borrow();
        if stopping {
            return;
        }
        commit_changed(&store, &partitions, &mut committed).await;
    }
}

/// Commits the positions that moved since the last successful commit: first the offset
/// maps, then the target offsets on the target cluster, then (only if both worked) the
/// source offsets.
pub async fn commit_changed(
    store: &ProgressStore,
    partitions: &[Arc<PartitionShared>],
    committed: &mut HashMap<(String, i32), Acked>,
) -> bool {
    let mut changed: Vec<(&PartitionShared, Acked)> = partitions
        .iter()
        .map(|p| (p.as_ref(), p.acked()))
        .filter(|(p, a)| committed.get(&(p.source_topic.clone(), p.partition)) != Some(a))
        .collect();
    if changed.is_empty() {
        return true;
    }
    if let Some(maps) = &store.maps {
        // Positions were read before the maps: a sink records its map right after it moves
        // the position, so a map can lag only by the batch acknowledged in between; that
        // partition's position waits for the next round.
        match maps.write_changed().await {
            Ok(covered) => changed.retain(|(p, a)| {
                covered
                    .get(&(p.source_topic.clone(), p.partition))
                    .map_or(true, |&c| c >= a.source_next)
            }),
            Err(e) => {
                tracing::warn!(group = %store.group, "writing the offset maps failed, progress waits: {e}");
                return false;
            }
        }
        if changed.is_empty() {
            return true;
        }
    }
    let group = store.group.as_str();
    let target_offsets: Vec<(String, i32, CommittedOffset)> = changed
        .iter()
        .filter_map(|(p, a)| {
            let offset = a.target_next?;
            Some((
                p.target_topic.clone(),
                p.partition,
                CommittedOffset {
                    offset,
                    metadata: PREFIX.to_string(),
                },
            ))
        })
        .collect();
    if !target_offsets.is_empty() {
        if let Err(e) = store.target.commit_offsets(group, &target_offsets).await {
            tracing::warn!(group, "committing target-side progress failed, will retry: {e}");
            return false;
        }
    }
    let source_offsets: Vec<(String, i32, CommittedOffset)> = changed
        .iter()
        .map(|(p, a)| (p.source_topic.clone(), p.partition, encode(*a)))
        .collect();
    if let Err(e) = store.source.commit_offsets(group, &source_offsets).await {
        tracing::warn!(group, "committing progress failed, will retry: {e}");
        return false;
    }
    for (p, a) in changed {
        committed.insert((p.source_topic.clone(), p.partition), a);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_positions() {
        for acked in [
            Acked {
                source_next: 42,
                target_next: Some(7),
            },
            Acked {
                source_next: 0,
                target_next: None,
            },
        ] {
            assert_eq!(decode(&encode(acked)), acked);
        }
    }

    #[test]
    fn foreign_metadata_has_no_target_offset() {
        let c = CommittedOffset {
            offset: 5,
            metadata: "something else".into(),
        };
        assert_eq!(
            decode(&c),
            Acked {
                source_next: 5,
                target_next: None
            }
        );
    }
}
