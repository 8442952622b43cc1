//! Translating a consumer group's committed source offsets to the target, from the offset
//! maps (live ones of a running route, or loaded from the offset-map topic).
//!
//! Used by `kferry offsets translate`; group offset sync uses [`translate_group`] with a
//! running route's [`OffsetMaps`].

use serde::Serialize;

use super::map::Translation;
use super::OffsetMaps;
use crate::wire::admin::TopicPartition;
use crate::wire::{Cluster, WireError};

/// One partition of a group: its committed source offset and what it translates to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset on the source (the next record to read).
    pub source_offset: i64,
    pub translation: Translation,
}

impl GroupOffset {
    /// The kind of the answer, as the CLI prints it.
    pub fn kind(&self) -> String {
        match self.translation {
            Translation::Exact { .. } => "exact".to_string(),
            Translation::AtLeastOnce { .. } => "at-least-once".to_string(),
            Translation::HeldBack { replicated_to } => format!("held-back (replicated to {replicated_to})"),
            Translation::BeforeMap { first_source, .. } => format!("before-map (map starts at {first_source})"),
            Translation::Unknown => "unknown".to_string(),
        }
    }
}

/// Reads `group`'s committed offsets on `source` for `partitions` (one OffsetFetch) and
/// translates each with `maps`. Partitions the group never committed are left out; the
/// answer is sorted by topic and partition.
pub async fn translate_group(
    source: &Cluster,
    group: &str,
    partitions: &[TopicPartition],
    maps: &OffsetMaps,
) -> Result<Vec<GroupOffset>, WireError> {
    let committed = source.fetch_offsets_many(group, partitions).await?;
    let mut out: Vec<GroupOffset> = committed
        .into_iter()
        .map(|((topic, partition), c)| GroupOffset {
            translation: maps.translate(&topic, partition, c.offset),
            topic,
            partition,
            source_offset: c.offset,
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_as_the_cli_prints_them() {
        let row = |translation| GroupOffset {
            topic: "t".into(),
            partition: 0,
            source_offset: 5,
            translation,
        };
        assert_eq!(row(Translation::Exact { target: 3 }).kind(), "exact");
        assert_eq!(row(Translation::AtLeastOnce { target: 3 }).kind(), "at-least-once");
        assert_eq!(
            row(Translation::HeldBack { replicated_to: 4 }).kind(),
            "held-back (replicated to 4)"
        );
        assert_eq!(row(Translation::Unknown).kind(), "unknown");
    }
}
