//! Choosing between the fast path and the slow paths Kafka forces, for one batch.
//!
//! The fast path forwards the fetched batch with a new header. A batch takes a slow path only
//! when the target could not accept it as it is, or the route asks for a change:
//!
//! | condition | path | work |
//! |---|---|---|
//! | offset gaps (compacted), uncompressed | `gaps_closed` | offset-delta varints rewritten, no codec work |
//! | offset gaps, compressed | `gaps_reencoded` | decompress, re-encode, recompress (same codec) |
//! | larger than the target's `max.message.bytes` | `split` (or an error with `oversize = "fail"`) | re-encode into several batches |
//! | route `compression` differs from the batch's codec | `recompressed` | re-encode with the route's codec |
//! | magic v0/v1 message set | `upconverted` | decode, encode as v2 |
//!
//! Re-encoded batches carry the source offset of every record, so acknowledged positions
//! (and later the offset map) stay exact per record. This module does no I/O.

use bytes::Bytes;

use super::counters::{PartitionCounters, PathCounter};
use super::partition::Forward;
use super::txn::{Released, TxnFilter};
use crate::batch::{
    close_gaps_uncompressed, decode_legacy, reencode, upconvert, BatchError, Compression, RecordBatch, ReencodeOptions,
    Reencoded,
};

/// What to do with a batch larger than the target topic's `max.message.bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OversizePolicy {
    /// Re-encode it into batches that fit (default).
    Split,
    /// Stop the partition with an error naming the batch and both sizes.
    Fail,
}

/// The route's slow-path settings for one target topic.
#[derive(Debug, Clone, Copy)]
pub struct SlowPathOptions {
    /// The codec batches must have on the target; `None` keeps each batch's own.
    pub compression: Option<Compression>,
    /// The target topic's `max.message.bytes` (whole batch, log overhead included).
    pub max_message_bytes: usize,
    pub oversize: OversizePolicy,
    /// Cap on decompressed bytes per batch (a decompression bomb is an error).
    pub max_decompressed: usize,
}

/// Cap on the decompressed size of one batch on the slow path.
pub const MAX_DECOMPRESSED: usize = 256 << 20;

impl SlowPathOptions {
    /// A route's settings for a target topic whose `max.message.bytes` is given.
    pub fn new(compression: Option<Compression>, max_message_bytes: usize, oversize: OversizePolicy) -> Self {
        SlowPathOptions {
            compression,
            max_message_bytes,
            oversize,
            max_decompressed: MAX_DECOMPRESSED,
        }
    }
}

/// Why a batch could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("batch at offset {offset} is {size} bytes, larger than the target topic's max.message.bytes ({limit})")]
    Oversize { offset: i64, size: usize, limit: usize },
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// Prepares one fetched v2 batch for the target and counts the path it took.
pub fn prepare(
    batch: RecordBatch,
    opts: &SlowPathOptions,
    counters: &PartitionCounters,
) -> Result<Vec<Forward>, PrepareError> {
    if batch.record_count() < 0 || batch.last_offset_delta() < 0 {
        return Err(PrepareError::Batch(BatchError::Corrupt {
            offset: batch.base_offset(),
            position: 0,
            reason: "negative record count or last offset delta",
        }));
    }
    let codec = opts.compression.unwrap_or(batch.compression());
    let recompress = codec != batch.compression();
    let oversize = batch.len() > opts.max_message_bytes;
    let gaps = batch.has_offset_gaps();
    if !recompress && !oversize && !gaps {
        counters.fast_path.add(batch.len());
        return Ok(vec![Forward::fast(batch)]);
    }
    if oversize && opts.oversize == OversizePolicy::Fail {
        let (offset, size, limit) = (batch.base_offset(), batch.len(), opts.max_message_bytes);
        return Err(PrepareError::Oversize { offset, size, limit });
    }
    let closed = match gaps && !recompress && !oversize && codec == Compression::None {
        // Closing gaps can grow a LogAppendTime batch a little (timestamps written into its
        // records): if it no longer fits, it is split like an oversized batch.
        true => Some(close_gaps_uncompressed(&batch)?)
            .filter(|o| o.batches.iter().all(|b| b.len() <= opts.max_message_bytes)),
        false => None,
    };
    let oversize = oversize || (gaps && closed.is_none() && !recompress && codec == Compression::None);
    if oversize && opts.oversize == OversizePolicy::Fail {
        let (offset, size, limit) = (batch.base_offset(), batch.len(), opts.max_message_bytes);
        return Err(PrepareError::Oversize { offset, size, limit });
    }
    let (counter, out): (&PathCounter, Reencoded) = if let Some(out) = closed {
        (&counters.gaps_closed, out)
    } else {
        let counter = match (recompress, oversize) {
            (true, _) => &counters.recompressed,
            (false, true) => &counters.split,
            (false, false) => &counters.gaps_reencoded,
        };
        (counter, reencode(&batch, &reencode_options(codec, opts))?)
    };
    counter.add(batch.len());
    forwards(out, batch.base_offset())
}

/// Moves the batches `txn` has decided into `forwards`, each through the fast or slow path,
/// and counts the ones that are not forwarded. The fetcher and the restart reconciler both
/// use it, so that the reconciler sees exactly the batches the fetcher sends.
pub fn release(
    txn: &mut TxnFilter,
    opts: &SlowPathOptions,
    counters: &PartitionCounters,
    repartition: bool,
    forwards: &mut Vec<Forward>,
) -> Result<(), PrepareError> {
    while let Some(released) = txn.poll_released() {
        match released {
            // A repartitioned batch is re-encoded by its router anyway (gaps, size and codec
            // included), so it skips the slow path here.
            Released::Forward(b) if repartition => forwards.push(Forward::fast(b)),
            Released::Forward(b) => forwards.extend(prepare(b, opts, counters)?),
            Released::Control { bytes, .. } => counters.control_dropped.add(bytes),
            Released::Empty { bytes, .. } => counters.empty_dropped.add(bytes),
            Released::Aborted { bytes, .. } => counters.aborted_dropped.add(bytes),
        }
    }
    Ok(())
}

/// Up-converts one magic v0/v1 log entry to v2 batches, counted as `upconverted`.
pub fn upconvert_legacy(
    offset: i64,
    bytes: &Bytes,
    opts: &SlowPathOptions,
    counters: &PartitionCounters,
) -> Result<Vec<Forward>, BatchError> {
    let messages = decode_legacy(bytes, opts.max_decompressed)?;
    let codec = opts.compression.unwrap_or(Compression::None);
    let out = upconvert(&messages, &reencode_options(codec, opts))?;
    counters.upconverted.add(bytes.len());
    forwards(out, offset).map_err(|e| match e {
        PrepareError::Batch(b) => b,
        PrepareError::Oversize { .. } => unreachable!("up-conversion splits to the limit"),
    })
}

fn reencode_options(codec: Compression, opts: &SlowPathOptions) -> ReencodeOptions {
    ReencodeOptions {
        compression: codec,
        max_batch_bytes: opts.max_message_bytes,
        max_decompressed: opts.max_decompressed,
    }
}

/// Wraps re-encoded batches with the source offsets of their first and last records.
fn forwards(out: Reencoded, offset: i64) -> Result<Vec<Forward>, PrepareError> {
    let mut next_record = 0;
    let mut result = Vec::with_capacity(out.batches.len());
    for bytes in out.batches {
        let batch = RecordBatch::parse(bytes)?;
        let count = batch.record_count().max(0) as usize;
        let records = out
            .record_offsets
            .get(next_record..next_record + count)
            .ok_or(BatchError::Corrupt {
                offset,
                position: next_record,
                reason: "re-encoded record count mismatch",
            })?;
        let (Some(&source_base), Some(&source_last)) = (records.first(), records.last()) else {
            continue;
        };
        next_record += count;
        let contiguous = source_last.checked_sub(source_base) == Some(count as i64 - 1);
        result.push(Forward {
            batch,
            source_base,
            source_last,
            source_runs: (!contiguous).then(|| crate::offsets::runs_of(records).into_boxed_slice()),
            ack: None,
        });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Record};

    fn opts(limit: usize) -> SlowPathOptions {
        SlowPathOptions {
            compression: None,
            max_message_bytes: limit,
            oversize: OversizePolicy::Split,
            max_decompressed: 64 << 20,
        }
    }

    fn batch(base: i64, deltas: &[i32], value_len: usize) -> RecordBatch {
        let records = deltas
            .iter()
            .map(|&d| Record::new(d, Some(Bytes::from(format!("k{d}"))), Some(vec![7u8; value_len].into())));
        BatchBuilder::new().base_offset(base).records(records).build()
    }

    #[test]
    fn ordinary_batches_take_the_fast_path_untouched() {
        let c = PartitionCounters::default();
        let b = batch(100, &[0, 1, 2], 10);
        let out = prepare(b.clone(), &opts(1 << 20), &c).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].batch.as_bytes(), b.as_bytes(), "the very same bytes");
        assert_eq!((out[0].source_base, out[0].source_last), (100, 102));
        assert_eq!(c.paths().fast_path.batches, 1);
        assert_eq!(c.paths().slow_path_batches(), 0);
    }

    #[test]
    fn compacted_gaps_keep_exact_source_offsets() {
        let c = PartitionCounters::default();
        let out = prepare(batch(10, &[0, 3, 7], 10), &opts(1 << 20), &c).unwrap();
        assert_eq!(out.len(), 1);
        assert!(!out[0].batch.has_offset_gaps());
        assert_eq!(out[0].batch.record_count(), 3);
        assert_eq!((out[0].source_base, out[0].source_last), (10, 17));
        assert_eq!(c.paths().gaps_closed.batches, 1);
    }

    #[test]
    fn oversize_batches_are_split_or_refused() {
        let c = PartitionCounters::default();
        let b = batch(0, &(0..20).collect::<Vec<_>>(), 1000);
        let out = prepare(b.clone(), &opts(5_000), &c).unwrap();
        assert!(out.len() >= 4, "{} pieces", out.len());
        assert!(out.iter().all(|f| f.batch.len() <= 5_000));
        let offsets: Vec<(i64, i64)> = out.iter().map(|f| (f.source_base, f.source_last)).collect();
        assert_eq!(offsets.first().unwrap().0, 0);
        assert_eq!(offsets.last().unwrap().1, 19);
        assert!(offsets.windows(2).all(|w| w[1].0 == w[0].1 + 1), "{offsets:?}");
        assert_eq!(c.paths().split.batches, 1);
        let refuse = SlowPathOptions {
            oversize: OversizePolicy::Fail,
            ..opts(5_000)
        };
        let err = prepare(b, &refuse, &c).unwrap_err().to_string();
        assert!(err.contains("offset 0") && err.contains("5000"), "{err}");
    }

    /// fuzz/regressions/slow_path_decode: closing the gaps of a LogAppendTime batch writes
    /// its maxTimestamp into the records, which can push it past max.message.bytes.
    #[test]
    fn closing_gaps_never_exceeds_max_message_bytes() {
        let c = PartitionCounters::default();
        let records = [0, 2].map(|d| Record::new(d, None, Some(Bytes::from_static(b"x"))));
        let b = BatchBuilder::new()
            .attributes(crate::batch::Attributes(crate::batch::Attributes::LOG_APPEND_TIME))
            .base_timestamp(1_700_000_000_000)
            .max_timestamp(1_700_001_000_000)
            .records(records)
            .build();
        let limit = b.len();
        let grown = close_gaps_uncompressed(&b).unwrap();
        assert!(
            grown.batches[0].len() > limit,
            "the case this test is about: closing gaps grows the batch"
        );
        let out = prepare(b, &opts(limit), &c).unwrap();
        assert!(
            out.iter().all(|f| f.batch.len() <= limit),
            "{:?}",
            out.iter().map(|f| f.batch.len()).collect::<Vec<_>>()
        );
        assert_eq!(out.iter().map(|f| f.batch.record_count()).sum::<i32>(), 2);
    }

    #[test]
    fn negative_counts_are_refused() {
        let c = PartitionCounters::default();
        let b = BatchBuilder::new().record_count(-2).last_offset_delta(-3).build();
        assert!(prepare(b, &opts(1 << 20), &c).is_err());
        assert_eq!(c.paths().fast_path.batches, 0);
    }

    #[test]
    fn codec_change_recompresses() {
        let c = PartitionCounters::default();
        let o = SlowPathOptions {
            compression: Some(Compression::Zstd),
            ..opts(1 << 20)
        };
        let out = prepare(batch(5, &[0, 1], 100), &o, &c).unwrap();
        assert_eq!(out[0].batch.compression(), Compression::Zstd);
        assert_eq!(c.paths().recompressed.batches, 1);
    }
}
