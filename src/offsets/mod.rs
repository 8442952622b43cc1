//! Offset translation: the exact source-to-target offset mapping kferry learns from every
//! ProduceResponse, per source partition.
//!
//! - [`map`]: the sans-I/O map of one partition ([`PartitionMap`]) and what a translation
//!   means ([`Translation`]);
//! - [`OffsetMaps`]: the maps of one route, shared by its sinks (which record) and by
//!   readers (group offset sync, `kferry offsets translate`, persistence);
//! - [`store`]: the record format of the offset-map topic (sans-I/O), [`persist`]: reading
//!   and writing it on the target cluster;
//! - [`translate`]: a consumer group's committed offsets, translated.

pub mod map;
pub mod persist;
pub mod store;
pub mod sync;
pub mod translate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

pub use map::{Fingerprint, PartitionMap, Segment, Translation};
pub use persist::{MapTopic, MapWriter, DEFAULT_TOPIC};
pub use translate::{translate_group, GroupOffset};

/// One partition's map, shared between its sink and readers.
pub type SharedMap = Arc<Mutex<PartitionMap>>;

/// The offset maps of one route, by source topic and partition.
#[derive(Default)]
pub struct OffsetMaps {
    maps: RwLock<HashMap<(String, i32), SharedMap>>,
}

impl std::fmt::Debug for OffsetMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.maps.read().map_or(0, |m| m.len());
        f.debug_struct("OffsetMaps").field("partitions", &n).finish()
    }
}

impl OffsetMaps {
    pub fn new() -> Arc<OffsetMaps> {
        Arc::new(OffsetMaps::default())
    }

    /// Adds (or replaces) a partition's map and returns the handle its sink records into.
    pub fn insert(&self, topic: &str, partition: i32, map: PartitionMap) -> SharedMap {
        let shared = Arc::new(Mutex::new(map));
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        maps.insert((topic.to_string(), partition), Arc::clone(&shared));
        shared
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<SharedMap> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        maps.get(&(topic.to_string(), partition)).cloned()
    }

    /// A registry holding `maps` (e.g. loaded from the offset-map topic).
    pub fn from_maps(maps: impl IntoIterator<Item = ((String, i32), PartitionMap)>) -> Arc<OffsetMaps> {
        let registry = OffsetMaps::new();
        for ((topic, partition), map) in maps {
            registry.insert(&topic, partition, map);
        }
        registry
    }

    /// Translates a committed source offset; [`Translation::Unknown`] for a partition
    /// without a map.
    pub fn translate(&self, topic: &str, partition: i32, source_offset: i64) -> Translation {
        match self.get(topic, partition) {
            Some(map) => map.lock().unwrap_or_else(|e| e.into_inner()).translate(source_offset),
            None => Translation::Unknown,
        }
    }

    /// Every map's shared handle, sorted by topic and partition.
    pub fn shared(&self) -> Vec<((String, i32), SharedMap)> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = maps.iter().map(|(k, m)| (k.clone(), Arc::clone(m))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A copy of every map, sorted by topic and partition.
    pub fn snapshot(&self) -> Vec<((String, i32), PartitionMap)> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = maps
            .iter()
            .map(|(k, m)| (k.clone(), m.lock().unwrap_or_else(|e| e.into_inner()).clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Groups ascending record offsets into `(first offset, count)` runs of consecutive offsets.
pub fn runs_of(offsets: &[i64]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &o in offsets {
        match runs.last_mut() {
            Some((start, count)) if *start + *count == o => *count += 1,
            _ => runs.push((o, 1)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_group_consecutive_offsets() {
        assert_eq!(runs_of(&[1, 2, 3, 7, 8, 10]), [(1, 3), (7, 2), (10, 1)]);
        assert!(runs_of(&[]).is_empty());
    }

    #[test]
    fn the_registry_translates_by_topic_and_partition() {
        let maps = OffsetMaps::new();
        let m = maps.insert("orders", 1, PartitionMap::starting_at(0, Some(100)));
        m.lock().unwrap().record(&[(0, 5)], Some(100), 5);
        assert_eq!(maps.translate("orders", 1, 3), Translation::Exact { target: 103 });
        assert_eq!(maps.translate("orders", 0, 3), Translation::Unknown);
        assert_eq!(maps.snapshot().len(), 1);
    }
}
