//! The record format of the offset-map topic, and folding its records back into maps.
//!
//! Sans-I/O: [`super::persist`] sends and reads the records. The topic is compacted, so one
//! record per partition map survives: the key names the map, the value is the whole map.
//!
//! - key: JSON `{"v":1,"route":R,"source":C,"topic":T,"partition":P}`, fields always in
//!   this order (so equal maps have byte-equal keys, as compaction needs);
//! - value: JSON `{"v":1,"map":<PartitionMap>}`; a null value (tombstone) deletes the map.
//!
//! A value stays below [`MAX_VALUE_BYTES`] and the topic's `max.message.bytes`: a map whose
//! encoding is larger keeps fewer segments (the oldest go, so old offsets translate as
//! [`super::Translation::BeforeMap`]).

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::map::PartitionMap;
use crate::batch::{BatchBuilder, Record, RecordBatch};

/// The format version written in keys and values.
pub const VERSION: u32 = 1;

/// The largest value written; well below Kafka's default `max.message.bytes` (1 MiB).
/// [`super::map::DEFAULT_MAX_SEGMENTS`] segments of 19-digit offsets take 122,149 bytes.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;

/// The largest batch written (records of several maps share a batch up to this size).
pub const MAX_BATCH_BYTES: usize = 900 * 1024;

/// Which map a record holds: the route, its source cluster, and the source partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MapKey {
    pub v: u32,
    pub route: String,
    pub source: String,
    pub topic: String,
    pub partition: i32,
}

impl MapKey {
    pub fn new(route: &str, source_cluster: &str, topic: &str, partition: i32) -> MapKey {
        MapKey {
            v: VERSION,
            route: route.to_string(),
            source: source_cluster.to_string(),
            topic: topic.to_string(),
            partition,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a key always serializes")
    }

    /// `None` for a key in another (or no) known format.
    pub fn decode(bytes: &[u8]) -> Option<MapKey> {
        serde_json::from_slice::<MapKey>(bytes).ok().filter(|k| k.v == VERSION)
    }
}

#[derive(Serialize, Deserialize)]
struct Value<M> {
    v: u32,
    map: M,
}

/// Encodes a map as a record value of at most `max_bytes` (and [`MAX_VALUE_BYTES`]),
/// dropping its oldest segments if it must.
pub fn encode_value(map: &PartitionMap, max_bytes: usize) -> Vec<u8> {
    let max_bytes = max_bytes.min(MAX_VALUE_BYTES);
    let encode = |map: &PartitionMap| serde_json::to_vec(&Value { v: VERSION, map }).expect("a map always serializes");
    let mut bytes = encode(map);
    let mut keep = map.segments().len();
    while bytes.len() > max_bytes && keep > 1 {
        keep /= 2;
        bytes = encode(&map.clone().with_max_segments(keep));
    }
    bytes
}

/// Decodes a record value; `Err` names what is wrong.
pub fn decode_value(bytes: &[u8]) -> Result<PartitionMap, String> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let Version { v } = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if v != VERSION {
        return Err(format!("unknown offset-map format version {v}"));
    }
    let value: Value<PartitionMap> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(value.map)
}

/// Encodes `(key, value)` pairs into batches of at most about `max_batch_bytes` each (a
/// record larger than that gets a batch of its own), uncompressed, not idempotent,
/// timestamped `now_ms`.
pub fn encode_batches(records: &[(Vec<u8>, Vec<u8>)], now_ms: i64, max_batch_bytes: usize) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    let mut builder = BatchBuilder::new().base_timestamp(now_ms);
    let (mut size, mut count) = (0usize, 0i32);
    for (key, value) in records {
        let len = key.len() + value.len() + 32;
        if count > 0 && size + len > max_batch_bytes {
            batches.push(builder.build());
            builder = BatchBuilder::new().base_timestamp(now_ms);
            (size, count) = (0, 0);
        }
        let record = Record::new(
            count,
            Some(Bytes::copy_from_slice(key)),
            Some(Bytes::copy_from_slice(value)),
        );
        builder = builder.record(record);
        size += len;
        count += 1;
    }
    if count > 0 {
        batches.push(builder.build());
    }
    batches
}

/// The maps of one route, folded from the topic's records in log order (the last value of
/// a key wins; a tombstone removes it).
#[derive(Debug, Default)]
pub struct MapFold {
    route: String,
    source: String,
    maps: HashMap<(String, i32), PartitionMap>,
    /// Records of this route whose value could not be decoded (skipped).
    pub undecodable: Vec<(i64, String)>,
}

impl MapFold {
    /// Keeps the maps of `route` replicating from cluster `source_cluster`.
    pub fn new(route: &str, source_cluster: &str) -> MapFold {
        MapFold {
            route: route.to_string(),
            source: source_cluster.to_string(),
            ..MapFold::default()
        }
    }

    /// Applies one record at `offset`; records of other routes are ignored.
    pub fn apply(&mut self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(key) = key.and_then(MapKey::decode) else {
            return;
        };
        if key.route != self.route || key.source != self.source {
            return;
        }
        let at = (key.topic, key.partition);
        match value.map(decode_value) {
            None => {
                self.maps.remove(&at);
            }
            Some(Ok(map)) => {
                self.maps.insert(at, map);
            }
            Some(Err(e)) => self.undecodable.push((offset, e)),
        }
    }

    pub fn into_maps(self) -> HashMap<(String, i32), PartitionMap> {
        self.maps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::decode_records;

    fn map_with_gaps(batches: i64) -> PartitionMap {
        let mut m = PartitionMap::starting_at(0, Some(0));
        for i in 0..batches {
            m.record(&[(i * 3, 2)], Some(i * 2), i * 3 + 2);
            m.skip_to(i * 3 + 3);
        }
        m
    }

    #[test]
    fn keys_are_deterministic_and_round_trip() {
        let k = MapKey::new("r", "src", "orders", 3);
        assert_eq!(k.encode(), MapKey::new("r", "src", "orders", 3).encode());
        assert_eq!(
            String::from_utf8(k.encode()).unwrap(),
            r#"{"v":1,"route":"r","source":"src","topic":"orders","partition":3}"#
        );
        assert_eq!(MapKey::decode(&k.encode()), Some(k));
        assert_eq!(MapKey::decode(b"something else"), None);
    }

    #[test]
    fn values_round_trip() {
        let m = map_with_gaps(20);
        let back = decode_value(&encode_value(&m, MAX_VALUE_BYTES)).unwrap();
        assert_eq!(back, m);
        for o in 0..=60 {
            assert_eq!(back.translate(o), m.translate(o));
        }
        assert!(decode_value(br#"{"v":2,"map":{}}"#).unwrap_err().contains("version 2"));
    }

    #[test]
    fn a_full_map_stays_below_the_value_cap() {
        let mut m = PartitionMap::starting_at(i64::MAX / 4, Some(i64::MAX / 4));
        let base = i64::MAX / 4;
        for i in 0..3 * crate::offsets::map::DEFAULT_MAX_SEGMENTS as i64 {
            m.record(&[(base + i * 3, 2)], Some(base + i * 2), base + i * 3 + 2);
            m.skip_to(base + i * 3 + 3);
        }
        assert_eq!(m.segments().len(), crate::offsets::map::DEFAULT_MAX_SEGMENTS);
        let bytes = encode_value(&m, MAX_VALUE_BYTES);
        println!("a full map ({} segments): {} bytes", m.segments().len(), bytes.len());
        assert!(bytes.len() <= MAX_VALUE_BYTES, "{} bytes", bytes.len());
        assert_eq!(decode_value(&bytes).unwrap(), m, "a full map fits whole");
        // Under a smaller limit (a topic with a small max.message.bytes) the oldest go.
        let small = decode_value(&encode_value(&m, 20_000)).unwrap();
        assert!(small.segments().len() < m.segments().len() / 4);
        assert!(encode_value(&m, 20_000).len() <= 20_000);
        let newest = m.covered_source() - 1;
        assert_eq!(small.translate(newest), m.translate(newest), "the newest stay");
        assert!(matches!(
            small.translate(m.origin()),
            crate::offsets::Translation::BeforeMap { .. }
        ));
    }

    #[test]
    fn batches_carry_every_record_and_split_by_size() {
        let big = vec![b'x'; 300 * 1024];
        let records: Vec<(Vec<u8>, Vec<u8>)> = (0..5)
            .map(|i| (MapKey::new("r", "s", "t", i).encode(), big.clone()))
            .collect();
        let batches = encode_batches(&records, 1000, MAX_BATCH_BYTES);
        assert_eq!(batches.len(), 3, "two 300 KiB records per batch");
        let mut fold = Vec::new();
        for b in &batches {
            assert!(b.len() <= MAX_BATCH_BYTES + 1024);
            b.verify_crc().unwrap();
            for r in decode_records(b).unwrap() {
                fold.push(MapKey::decode(r.key.as_deref().unwrap()).unwrap().partition);
            }
        }
        assert_eq!(fold, [0, 1, 2, 3, 4]);
        assert_eq!(
            encode_batches(&records, 1000, 1024).len(),
            5,
            "one oversized record per batch"
        );
    }

    #[test]
    fn folding_keeps_the_last_value_of_the_route_and_honours_tombstones() {
        let (a, b) = (map_with_gaps(1), map_with_gaps(2));
        let key = |route: &str, p| MapKey::new(route, "src", "t", p).encode();
        let mut fold = MapFold::new("r", "src");
        fold.apply(0, Some(&key("r", 0)), Some(&encode_value(&a, MAX_VALUE_BYTES)));
        fold.apply(1, Some(&key("r", 0)), Some(&encode_value(&b, MAX_VALUE_BYTES)));
        fold.apply(2, Some(&key("other", 0)), Some(&encode_value(&a, MAX_VALUE_BYTES)));
        fold.apply(
            3,
            Some(&MapKey::new("r", "elsewhere", "t", 0).encode()),
            Some(&encode_value(&a, MAX_VALUE_BYTES)),
        );
        fold.apply(4, Some(&key("r", 1)), Some(&encode_value(&a, MAX_VALUE_BYTES)));
        fold.apply(5, Some(&key("r", 1)), None);
        fold.apply(6, Some(&key("r", 2)), Some(b"not json"));
        fold.apply(7, None, Some(b"no key"));
        assert_eq!(fold.undecodable.len(), 1);
        assert_eq!(fold.undecodable[0].0, 6);
        let maps = fold.into_maps();
        assert_eq!(maps.len(), 1);
        assert_eq!(maps[&("t".to_string(), 0)], b);
    }
}
