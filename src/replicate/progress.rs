//! Progress: the acknowledged position of every partition, committed to Kafka.
//!
//! kferry keeps no local state. Progress is an OffsetCommit of the route's consumer group
//! (default `kferry-<route>`) **on the source cluster**, so that standard lag tools
//! (`kafka-consumer-groups.sh --describe`) show the route's lag. The committed offset is the
//! next source offset to replicate; the commit's metadata string also records the next
//! target offset (`kferry/1 target=<offset>`), which [`super::reconcile`] uses on restart to
//! find what the target received after the last commit.
//!
//! A position is committed only after the target acknowledged every batch below it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::partition::{Acked, PartitionShared};
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

/// Commits changed positions every `interval` until `stop`, then once more.
pub async fn run_checkpointer(
    source: Arc<Cluster>,
    group: String,
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
        commit_changed(&source, &group, &partitions, &mut committed).await;
    }
}

/// Commits the positions that moved since the last successful commit.
pub async fn commit_changed(
    source: &Cluster,
    group: &str,
    partitions: &[Arc<PartitionShared>],
    committed: &mut HashMap<(String, i32), Acked>,
) -> bool {
    let changed: Vec<(String, i32, Acked)> = partitions
        .iter()
        .map(|p| (p.source_topic.clone(), p.partition, p.acked()))
        .filter(|(t, p, a)| committed.get(&(t.clone(), *p)) != Some(a))
        .collect();
    if changed.is_empty() {
        return true;
    }
    let offsets: Vec<(String, i32, CommittedOffset)> =
        changed.iter().map(|(t, p, a)| (t.clone(), *p, encode(*a))).collect();
    match source.commit_offsets(group, &offsets).await {
        Ok(()) => {
            for (t, p, a) in changed {
                committed.insert((t, p), a);
            }
            true
        }
        Err(e) => {
            tracing::warn!(group, "committing progress failed, will retry: {e}");
            false
        }
    }
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
