//! Which target partitions hold anything past an offset: one Fetch per broker for all of them.
//!
//! A restart has to match the target's tail past the committed target offset only where
//! there is a tail. Usually there is none (a fresh target, or a clean shutdown), and one
//! Fetch per target broker, from each partition's committed offset, shows it in the high
//! watermarks of the answer. The Fetch asks for 1 byte (Kafka still returns the first
//! partition's first batch, KIP-74; tansu returns one batch), and waits a little: tansu answers
//! a Fetch with `max_wait_ms` 0 with nothing at all, and ListOffsets(latest) is wrong on tansu
//! 0.6, so the high watermark comes from Fetch (`docs/DESIGN.md` §6).

use std::collections::{BTreeMap, HashMap};

use crate::wire::admin::TopicPartition;
use crate::wire::fetch::{fetch, FetchParams, PartitionFetch};
use crate::wire::{Cluster, Purpose, WireError};

/// `max_wait_ms` of the probe (positive: see the module docs).
const PROBE_MAX_WAIT_MS: i32 = 10;

/// For each of `partitions` (topic, partition, offset), whether the partition holds nothing
/// at or past the offset. `false` also for a partition the probe cannot tell about (no leader,
/// an error, missing from the answer): reconciliation reads it and reports what it finds.
pub async fn nothing_past(cluster: &Cluster, partitions: &[(TopicPartition, i64)]) -> Result<Vec<bool>, WireError> {
    let meta = cluster.metadata();
    let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, ((topic, partition), _)) in partitions.iter().enumerate() {
        if let Some(leader) = meta.leader(topic, *partition) {
            by_leader.entry(leader).or_default().push(i);
        }
    }
    let mut out = vec![false; partitions.len()];
    let params = FetchParams {
        max_wait_ms: PROBE_MAX_WAIT_MS,
        min_bytes: 1,
        max_bytes: 1,
        isolation_level: 0,
    };
    for (leader, indexes) in by_leader {
        let requests: Vec<PartitionFetch> = indexes
            .iter()
            .map(|&i| {
                let ((topic, partition), offset) = &partitions[i];
                PartitionFetch {
                    topic: topic.clone(),
                    topic_id: meta.topics.get(topic).map(|t| t.id).unwrap_or_default(),
                    partition: *partition,
                    fetch_offset: *offset,
                    partition_max_bytes: 1,
                }
            })
            .collect();
        let conn = cluster.broker(leader, Purpose::Control).await?;
        let fetched = fetch(&conn, params, &requests).await?;
        let index: HashMap<(&str, i32), usize> = indexes
            .iter()
            .map(|&i| ((partitions[i].0 .0.as_str(), partitions[i].0 .1), i))
            .collect();
        for f in fetched {
            let Some(&i) = index.get(&(f.topic.as_str(), f.partition)) else {
                continue;
            };
            let offset = partitions[i].1;
            out[i] = f.error_code == 0 && (0..=offset).contains(&f.high_watermark);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fake_cluster, log};
    use super::*;

    #[tokio::test]
    async fn tells_which_partitions_hold_nothing_past_the_offset() {
        // "t"-0 is empty, "t"-1 to "t"-3 hold offsets 0..3.
        let (_fake, cluster) = fake_cluster(4, |p| if p == 0 { Vec::new() } else { log(3, 10) }).await;
        let at = |topic: &str, partition, offset| ((topic.to_string(), partition), offset);
        let wanted = [
            at("t", 0, 0),
            at("t", 1, 3),
            at("t", 2, 1),
            at("t", 3, 5),
            at("t", 7, 0),
            at("u", 0, 0),
        ];
        assert_eq!(
            nothing_past(&cluster, &wanted).await.expect("probe"),
            [
                true,  // empty
                true,  // at the high watermark
                false, // data past the offset
                false, // past the log end: OFFSET_OUT_OF_RANGE, left to reconciliation
                false, // no such partition
                false, // no such topic
            ]
        );
    }
}
