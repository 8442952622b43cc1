//! Splitting a batch's records over the target's partitions by key (the repartition path).
//!
//! Kafka's default partitioner puts a keyed record in partition
//! `toPositive(murmur2(key)) % numPartitions`, so records with one key always land in one
//! partition, in order. Records without a key keep their source partition, modulo the
//! target's partition count (a deterministic choice, where the Java client would spread
//! them). Each group is encoded as new batches exactly like [`super::reencode`].
//!
//! References: Kafka `BuiltInPartitioner.java` / `Utils.murmur2`.

use super::partitioner::partition_for_key;
use super::reencode::{encode_pending, pending_records, Pending};
use super::{BatchError, RecordBatch, ReencodeOptions, Reencoded};

/// The target partition of a record: by key, or the source partition for a null key.
pub fn target_partition(key: Option<&[u8]>, source_partition: i32, target_partitions: u32) -> u32 {
    match key {
        Some(k) => partition_for_key(k, target_partitions),
        None => source_partition.rem_euclid(target_partitions as i32) as u32,
    }
}

/// The records of `batch` grouped by target partition (in partition order), each group
/// encoded as batches with the source offset of every record.
pub fn repartition(
    batch: &RecordBatch,
    source_partition: i32,
    target_partitions: u32,
    opts: &ReencodeOptions,
) -> Result<Vec<(u32, Reencoded)>, BatchError> {
    assert!(target_partitions > 0, "a topic has at least one partition");
    let mut groups: Vec<Vec<Pending>> = (0..target_partitions).map(|_| Vec::new()).collect();
    for p in pending_records(batch, opts.max_decompressed)? {
        let to = target_partition(p.record.key.as_deref(), source_partition, target_partitions);
        groups[to as usize].push(p);
    }
    let mut out = Vec::new();
    for (partition, group) in groups.into_iter().enumerate() {
        if !group.is_empty() {
            out.push((partition as u32, encode_pending(group, opts)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, Record};
    use bytes::Bytes;

    #[test]
    fn keys_follow_murmur2_and_null_keys_their_source_partition() {
        let records = (0..50).map(|i| {
            let key = (i % 10 != 0).then(|| Bytes::from(format!("key-{}", i % 7)));
            Record::new(i, key, Some(Bytes::from(format!("v{i}"))))
        });
        let batch = BatchBuilder::new().base_offset(1000).records(records).build();
        let out = repartition(&batch, 5, 4, &ReencodeOptions::new(Compression::Lz4)).unwrap();
        let mut seen = 0;
        for (partition, re) in &out {
            let mut offsets = re.record_offsets.iter();
            for b in &re.batches {
                let b = RecordBatch::parse(b.clone()).unwrap();
                assert_eq!(b.compression(), Compression::Lz4);
                let decoded = crate::batch::decode_batch(&b, 1 << 20).unwrap();
                for r in decoded {
                    let want = target_partition(r.key.as_deref(), 5, 4);
                    assert_eq!(want, *partition);
                    let source = *offsets.next().unwrap();
                    assert_eq!(r.value.as_deref(), Some(format!("v{}", source - 1000).as_bytes()));
                    seen += 1;
                }
            }
            let v: Vec<i64> = re.record_offsets.clone();
            assert!(
                v.windows(2).all(|w| w[0] < w[1]),
                "source order kept within a partition"
            );
        }
        assert_eq!(seen, 50);
        assert_eq!(target_partition(None, 5, 4), 1);
        assert_eq!(
            target_partition(Some(b"foobar"), 0, 1000),
            (super::super::murmur2(b"foobar") & 0x7fffffff) as u32 % 1000
        );
    }
}
