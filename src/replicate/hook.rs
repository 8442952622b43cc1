//! Observing forwarded batches from embedding code, without copying them.

use std::sync::Arc;

use bytes::Bytes;

/// A batch the target acknowledged. Borrowed: nothing is copied to build it.
#[derive(Debug)]
pub struct ForwardedBatch<'a> {
    pub route: &'a str,
    pub source_topic: &'a str,
    pub target_topic: &'a str,
    /// The target partition.
    pub partition: i32,
    /// The source partition (differs from `partition` only when repartitioning).
    pub source_partition: i32,
    /// First and last source offsets the batch covers.
    pub source_base_offset: i64,
    pub source_last_offset: i64,
    /// Offset the target assigned to the first record (-1 if the broker did not say,
    /// as after a duplicate that idempotence absorbed).
    pub target_base_offset: i64,
    pub record_count: i32,
    /// The 61-byte header as sent (base offset 0, kferry's producer id and sequence).
    pub header: &'a [u8],
    /// The payload after the header, a view of the fetched bytes.
    pub payload: &'a Bytes,
}

impl ForwardedBatch<'_> {
    /// Size of the batch on the wire.
    pub fn size(&self) -> usize {
        self.header.len() + self.payload.len()
    }
}

/// A callback run for every acknowledged batch, on the partition's task: keep it cheap.
pub type BatchObserver = Arc<dyn Fn(&ForwardedBatch<'_>) + Send + Sync>;
