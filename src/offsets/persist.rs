//! Keeping a route's offset maps in a compacted topic on the target cluster, so that any
//! kferry instance can translate offsets after a restart (the I/O around [`super::store`]).
//!
//! The topic (route option `offset.map.topic`, default [`DEFAULT_TOPIC`]) is created when
//! missing with `cleanup.policy=compact` and one partition; maps are written to and read
//! from partition 0 only. Writes are plain Produce requests (`acks=all`, not idempotent:
//! a duplicate is harmless, the last value wins). Reads Fetch partition 0 from its log
//! start to its high watermark (read from the Fetch itself: tansu answers
//! ListOffsets(latest) with the last batch's base offset + 1).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::protocol::Request;

use super::map::{Fingerprint, PartitionMap};
use super::store::{encode_batches, encode_value, MapFold, MapKey, MAX_BATCH_BYTES};
use super::OffsetMaps;
use crate::batch::{decode_batch, BlobIter, RecordBatch};
use crate::wire::error::check_code;
use crate::wire::fetch::{fetch, FetchParams, FetchedPartition, PartitionFetch};
use crate::wire::produce::{PartitionBatch, ProduceRequestFrame, PRODUCE_MAX_VERSION};
use crate::wire::produce_response::ProduceResponse;
use crate::wire::{Cluster, Connection, NewTopic, Purpose, WireError};

/// The default name of the offset-map topic.
pub const DEFAULT_TOPIC: &str = "kferry-offset-maps";

/// Bytes asked for per Fetch while loading.
const FETCH_MAX_BYTES: i32 = 8 * 1024 * 1024;

/// The partition maps are written to and read from.
const PARTITION: i32 = 0;

/// Where one route's maps are kept: the target cluster, the topic and the route's identity.
#[derive(Clone)]
pub struct MapTopic {
    pub target: Arc<Cluster>,
    pub topic: String,
    pub route: String,
    /// The route's source cluster name (part of every key).
    pub source_cluster: String,
}

impl std::fmt::Debug for MapTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapTopic")
            .field("cluster", &self.target.name())
            .field("topic", &self.topic)
            .field("route", &self.route)
            .finish()
    }
}

impl MapTopic {
    /// Creates the topic if it is missing and waits (up to 30 s) until it has a leader.
    pub async fn ensure(&self) -> Result<(), WireError> {
        if self.metadata().await?.is_none() {
            tracing::info!(cluster = self.target.name(), topic = %self.topic, "creating the offset-map topic");
            self.target
                .create_topics(&[NewTopic {
                    name: self.topic.clone(),
                    partitions: 1,
                    replication_factor: -1,
                    configs: vec![("cleanup.policy".to_string(), "compact".to_string())],
                }])
                .await?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(meta) = self.metadata().await? {
                if self.leader(&meta).is_some() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(self.unknown());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The cluster's metadata for the topic; `None` while the topic does not exist.
    async fn metadata(&self) -> Result<Option<Arc<crate::wire::Metadata>>, WireError> {
        match self
            .target
            .refresh_metadata(Some(std::slice::from_ref(&self.topic)))
            .await
        {
            // A missing topic comes back with an error code (UNKNOWN_TOPIC_OR_PARTITION).
            Ok(meta) if meta.topics.get(&self.topic).is_some_and(|t| t.error_code == 0) => Ok(Some(meta)),
            Ok(_) | Err(WireError::UnknownTopic { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn leader(&self, meta: &crate::wire::Metadata) -> Option<(i32, uuid::Uuid)> {
        let t = meta.topics.get(&self.topic)?;
        let p = t.partitions.iter().find(|p| p.partition == PARTITION)?;
        (p.leader >= 0).then_some((p.leader, t.id))
    }

    fn unknown(&self) -> WireError {
        WireError::UnknownTopic {
            cluster: self.target.name().to_string(),
            topic: self.topic.clone(),
        }
    }

    /// Reads the route's maps: every record from the log start to the high watermark, the
    /// last value of each key winning. A topic that does not exist holds no maps. A read
    /// that stops short of the high watermark is an error: a partial map set would be
    /// written back over the complete one.
    pub async fn load(&self) -> Result<HashMap<(String, i32), PartitionMap>, WireError> {
        let Some(meta) = self.metadata().await? else {
            return Ok(HashMap::new());
        };
        let (leader, topic_id) = self.leader(&meta).ok_or_else(|| self.unknown())?;
        let conn = self.target.broker(leader, Purpose::Fetch).await?;
        let mut fold = MapFold::new(&self.route, &self.source_cluster);
        let mut next = 0i64;
        loop {
            let part = self.fetch_at(&conn, topic_id, next).await?;
            if part.error_code == ResponseError::OffsetOutOfRange.code() && part.log_start_offset > next {
                next = part.log_start_offset;
                continue;
            }
            check_code(self.target.name(), part.error_code, || {
                format!("Fetch {}-{PARTITION} at offset {next}", self.topic)
            })?;
            let before = next;
            for entry in BlobIter::new(part.records, next) {
                let Some(batch) = entry.ok().and_then(|e| e.batch().cloned()) else {
                    break;
                };
                self.apply_batch(&mut fold, &batch, next);
                next = batch.next_offset();
            }
            if next >= part.high_watermark {
                break;
            }
            if next == before {
                return Err(self.short_read(&conn, next, part.high_watermark));
            }
        }
        for (offset, e) in &fold.undecodable {
            tracing::warn!(cluster = self.target.name(), topic = %self.topic, offset, "skipping an undecodable offset map: {e}");
        }
        Ok(fold.into_maps())
    }

    /// One sessionless Fetch of the map partition at `offset` (tried 3 times when the
    /// broker leaves the partition out of its answer).
    async fn fetch_at(
        &self,
        conn: &Connection,
        topic_id: uuid::Uuid,
        offset: i64,
    ) -> Result<FetchedPartition, WireError> {
        let params = FetchParams {
            // tansu answers a Fetch with max_wait 0 without any partition.
            max_wait_ms: 50,
            min_bytes: 1,
            max_bytes: FETCH_MAX_BYTES,
            isolation_level: 0,
        };
        let ask = PartitionFetch {
            topic: self.topic.clone(),
            topic_id,
            partition: PARTITION,
            fetch_offset: offset,
            partition_max_bytes: FETCH_MAX_BYTES,
        };
        for _ in 0..3 {
            let fetched = fetch(conn, params, std::slice::from_ref(&ask)).await?;
            if let Some(part) = fetched.into_iter().find(|p| p.partition == PARTITION) {
                return Ok(part);
            }
        }
        Err(self.short_read(conn, offset, -1))
    }

    fn short_read(&self, conn: &Connection, offset: i64, high_watermark: i64) -> WireError {
        WireError::Protocol {
            cluster: self.target.name().to_string(),
            addr: conn.addr().to_string(),
            api: "Fetch",
            version: -1,
            message: format!(
                "reading the offset maps of {}-{PARTITION} stopped at offset {offset} (high watermark {high_watermark})",
                self.topic
            ),
        }
    }

    /// The largest batch to write: [`MAX_BATCH_BYTES`], or less when the topic's
    /// `max.message.bytes` is smaller (read with DescribeConfigs; the default when the
    /// broker does not say).
    pub async fn batch_limit(&self) -> usize {
        match self.target.topic_config(&self.topic, "max.message.bytes").await {
            Ok(Some(v)) => v.trim().parse::<usize>().map_or(MAX_BATCH_BYTES, |max| {
                max.saturating_sub(1024).clamp(4096, MAX_BATCH_BYTES)
            }),
            Ok(None) => MAX_BATCH_BYTES,
            Err(e) => {
                tracing::warn!(cluster = self.target.name(), topic = %self.topic, "DescribeConfigs failed, assuming max.message.bytes >= {MAX_BATCH_BYTES}: {e}");
                MAX_BATCH_BYTES
            }
        }
    }

    fn apply_batch(&self, fold: &mut MapFold, batch: &RecordBatch, from: i64) {
        if batch.attributes().is_control() {
            return;
        }
        match decode_batch(batch, 64 * 1024 * 1024) {
            Ok(records) => {
                for r in records {
                    let offset = batch.base_offset() + i64::from(r.offset_delta);
                    if offset >= from {
                        fold.apply(offset, r.key.as_deref(), r.value.as_deref());
                    }
                }
            }
            Err(e) => tracing::warn!(
                cluster = self.target.name(),
                topic = %self.topic,
                offset = batch.base_offset(),
                "skipping an undecodable batch of offset maps: {e}"
            ),
        }
    }

    /// Writes `maps` (source topic, partition, map), in as few Produce requests as the batch
    /// size allows, and returns once the leader acknowledged them all (`acks=all`).
    /// Batches are at most `max_batch_bytes` ([`MapTopic::batch_limit`]).
    pub async fn write(&self, maps: &[((String, i32), PartitionMap)], max_batch_bytes: usize) -> Result<(), WireError> {
        if maps.is_empty() {
            return Ok(());
        }
        let records: Vec<(Vec<u8>, Vec<u8>)> = maps
            .iter()
            .map(|((topic, p), m)| {
                let key = MapKey::new(&self.route, &self.source_cluster, topic, *p).encode();
                // Room for the record's own framing and the batch header.
                let value = encode_value(m, max_batch_bytes.saturating_sub(key.len() + 128));
                (key, value)
            })
            .collect();
        let mut leader = self.leader(&self.target.metadata());
        if leader.is_none() {
            leader = self.metadata().await?.and_then(|m| self.leader(&m));
        }
        let (leader, _) = leader.ok_or_else(|| self.unknown())?;
        let conn = self.target.broker(leader, Purpose::Produce).await?;
        let version = conn.version_for::<ProduceRequest>(PRODUCE_MAX_VERSION)?;
        let timeout_ms = self.target.config().request_timeout.as_millis().clamp(1, 30_000) as i32;
        for batch in encode_batches(&records, crate::now_ms(), max_batch_bytes) {
            let frame = ProduceRequestFrame {
                transactional_id: None,
                acks: -1,
                timeout_ms: timeout_ms / 2,
                topics: vec![(
                    self.topic.as_str(),
                    vec![PartitionBatch {
                        partition: PARTITION,
                        header: *batch.header(),
                        payload: batch.payload(),
                    }],
                )],
            };
            let body = conn
                .start(ProduceRequest::KEY, version, frame.encode(version))
                .await?
                .response()
                .await?;
            let response = ProduceResponse::decode(body, version).map_err(|e| WireError::Protocol {
                cluster: self.target.name().to_string(),
                addr: conn.addr().to_string(),
                api: "Produce",
                version,
                message: e.to_string(),
            })?;
            for p in response.responses.iter().flat_map(|t| &t.partition_responses) {
                check_code(self.target.name(), p.error_code, || {
                    format!("Produce offset maps to {}-{}", self.topic, p.index)
                })?;
            }
        }
        Ok(())
    }
}

/// Writes a route's maps that changed since the last successful write.
#[derive(Debug)]
pub struct MapWriter {
    topic: MapTopic,
    maps: Arc<OffsetMaps>,
    /// The fingerprint of each map as last written.
    written: Mutex<HashMap<(String, i32), Fingerprint>>,
    batch_limit: tokio::sync::OnceCell<usize>,
}

impl MapWriter {
    pub fn new(topic: MapTopic, maps: Arc<OffsetMaps>) -> MapWriter {
        MapWriter {
            topic,
            maps,
            written: Mutex::new(HashMap::new()),
            batch_limit: tokio::sync::OnceCell::new(),
        }
    }

    pub fn maps(&self) -> &Arc<OffsetMaps> {
        &self.maps
    }

    /// Writes every map that changed since the last successful write and returns, for every
    /// map, the acknowledged source position it now covers on the topic.
    pub async fn write_changed(&self) -> Result<HashMap<(String, i32), i64>, WireError> {
        let mut covered = HashMap::new();
        let mut changed: Vec<((String, i32), PartitionMap)> = Vec::new();
        let mut fingerprints = Vec::new();
        {
            let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            for (key, shared) in self.maps.shared() {
                let map = shared.lock().unwrap_or_else(|e| e.into_inner());
                covered.insert(key.clone(), map.covered_source());
                let print = map.fingerprint();
                if written.get(&key) != Some(&print) {
                    changed.push((key.clone(), map.clone()));
                    fingerprints.push((key, print));
                }
            }
        }
        let limit = *self.batch_limit.get_or_init(|| self.topic.batch_limit()).await;
        self.topic.write(&changed, limit).await?;
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.extend(fingerprints);
        Ok(covered)
    }
}
