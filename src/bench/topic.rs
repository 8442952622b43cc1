//! Reading a topic's size.

use crate::wire::fetch::{fetch, FetchParams, PartitionFetch};
use crate::wire::{Cluster, Purpose, WireError};

/// Each partition's high watermark, by partition index, read with Fetch (some brokers,
/// tansu among them, answer ListOffsets(latest) with the last batch's base offset + 1).
pub async fn high_watermarks(cluster: &Cluster, topic: &str) -> Result<Vec<i64>, WireError> {
    let meta = cluster.refresh_metadata(Some(&[topic.to_string()])).await?;
    let t = meta.topics.get(topic).ok_or_else(|| WireError::UnknownTopic {
        cluster: cluster.name().to_string(),
        topic: topic.to_string(),
    })?;
    let mut out = vec![0; t.partitions.len()];
    let mut by_leader: std::collections::BTreeMap<i32, Vec<PartitionFetch>> = Default::default();
    for p in &t.partitions {
        by_leader.entry(p.leader).or_default().push(PartitionFetch {
            topic: topic.to_string(),
            topic_id: t.id,
            partition: p.partition,
            fetch_offset: 0,
            partition_max_bytes: 1,
        });
    }
    let params = FetchParams {
        max_wait_ms: 1,
        min_bytes: 1,
        max_bytes: 1,
        isolation_level: 0,
    };
    // One Fetch per leader for all its partitions.
    for (leader, ask) in by_leader {
        let conn = cluster.broker(leader, Purpose::Fetch).await?;
        for f in fetch(&conn, params, &ask).await? {
            if let Some(slot) = out.get_mut(f.partition as usize) {
                *slot = f.high_watermark;
            }
        }
    }
    Ok(out)
}
