//! The v2 slow path: batches Kafka forces a forwarder to decode.
//!
//! The fast path forwards a batch with a new header. Two kinds of v2 batch cannot go
//! that way, because a broker rejects `lastOffsetDelta + 1 != recordCount` on produce:
//!
//! * **Uncompressed, with offset gaps** (left by the log cleaner):
//!   [`close_gaps_uncompressed`] renumbers the records in one pass over the payload,
//!   rewriting only each record's length and offset-delta varints and copying the rest
//!   of its bytes; keys, values and headers are never decoded. No codec work.
//! * **Compressed, with gaps** (or anything else that must be rebuilt, such as a change
//!   of codec): [`reencode`] decompresses ([`decode_batch`]), decodes every record and
//!   encodes fresh batches with the target codec, split to fit `max_batch_bytes`.
//!
//! Output batches look like a plain Java producer's: `baseOffset` 0, offset deltas
//! `0..n`, `partitionLeaderEpoch` and producer fields -1 (the engine stamps them with
//! [`super::rewrite_header`]), attributes holding the codec only, a valid CRC. Each
//! [`Reencoded`] lists the source offset of every output record, so the engine's offset
//! map stays exact although the target assigns consecutive offsets.
//!
//! Timestamps: a record keeps its absolute timestamp (`baseTimestamp + delta`). Under
//! LogAppendTime (attribute bit 3) Kafka consumers see the batch's `maxTimestamp` for
//! every record; since a producer may not send that bit, that timestamp is written into
//! the records instead, as CreateTime. The delete-horizon bit is dropped as in
//! [`super::rewrite`]; timestamps are unaffected.
//!
//! Both functions check the source CRC first: they write a fresh CRC, which would
//! otherwise turn corrupt source bytes into a valid batch on the target.
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecordBatch.java`, `DefaultRecord.java`
//!   (`readFrom`: LogAppendTime uses `maxTimestamp`)
//! * Kafka `clients/.../record/MemoryRecordsBuilder.java` (what a producer writes)
//! * Kafka `clients/.../record/MemoryRecords.java` (`filterTo`: how compaction leaves gaps)
//! * Kafka `storage/.../log/LogValidator.java` (`validateBatch`: offset range vs count)

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use super::records::{decode_payload, put_varint, put_varlong, varint_len, wire_len, Cursor};
use super::{codec, BatchBuilder, BatchError, Compression, Record, RecordBatch, HEADER_LEN};

/// How [`reencode`] (and [`super::legacy::upconvert`]) build their output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReencodeOptions {
    /// Codec of the output batches.
    pub compression: Compression,
    /// Largest output batch, header included (the target topic's `max.message.bytes`).
    /// A single record that does not fit alone still gets a batch of its own.
    pub max_batch_bytes: usize,
    /// Cap on a decompressed payload (see [`codec::decompress`]).
    pub max_decompressed: usize,
}

impl ReencodeOptions {
    /// Kafka's default `max.message.bytes`: 1 MiB plus the 12-byte log overhead.
    pub const DEFAULT_MAX_BATCH_BYTES: usize = 1_048_588;
    /// Default cap on decompressed payloads.
    pub const DEFAULT_MAX_DECOMPRESSED: usize = 256 << 20;

    /// Options with the given output codec and the defaults above.
    pub fn new(compression: Compression) -> Self {
        ReencodeOptions {
            compression,
            max_batch_bytes: Self::DEFAULT_MAX_BATCH_BYTES,
            max_decompressed: Self::DEFAULT_MAX_DECOMPRESSED,
        }
    }
}

/// Batches ready for [`super::rewrite_header`], and where their records came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reencoded {
    /// v2 batches in order, each a whole batch (header and payload). Empty when the
    /// source held no records.
    pub batches: Vec<Bytes>,
    /// Source offset of each output record, in output order across all batches.
    pub record_offsets: Vec<i64>,
}

/// A record on its way to a new batch: its absolute timestamp and source offset.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) record: Record,
    pub(crate) timestamp: i64,
    pub(crate) source_offset: i64,
}

/// Decompresses `batch` if needed (at most `max_out` bytes) and decodes all its records,
/// offset deltas as stored (possibly with gaps). Keys and values share one buffer.
/// Does not check the CRC ([`RecordBatch::verify_crc`]); [`reencode`] does.
pub fn decode_batch(batch: &RecordBatch, max_out: usize) -> Result<Vec<Record>, BatchError> {
    let base = batch.base_offset();
    let payload = match batch.compression() {
        Compression::None => batch.payload(),
        compression => {
            let raw = codec::decompress(compression, &batch.payload(), max_out).map_err(|e| e.at_offset(base))?;
            Bytes::from(raw)
        }
    };
    decode_payload(payload, batch.record_count(), base)
}

/// Decodes `batch` and encodes its records into new batches as `opts` says; see the
/// module docs. Fails on a bad CRC, a control batch, or records out of offset order.
pub fn reencode(batch: &RecordBatch, opts: &ReencodeOptions) -> Result<Reencoded, BatchError> {
    encode_pending(pending_records(batch, opts.max_decompressed)?, opts)
}

/// Checks and decodes `batch` into records with their absolute timestamps and source offsets.
pub(crate) fn pending_records(batch: &RecordBatch, max_decompressed: usize) -> Result<Vec<Pending>, BatchError> {
    check_source(batch)?;
    let records = decode_batch(batch, max_decompressed)?;
    let mut pending = Vec::with_capacity(records.len());
    let mut previous = None;
    for record in records {
        let timestamp = absolute_timestamp(batch, record.timestamp_delta, || {
            record_error(batch, "timestamp overflows")
        })?;
        let source_offset = source_offset(batch, record.offset_delta, &mut previous)?;
        pending.push(Pending {
            record,
            timestamp,
            source_offset,
        });
    }
    Ok(pending)
}

/// Renumbers the records of an uncompressed batch with offset gaps to `0..n` without
/// decoding them (see the module docs). The output is one batch, no larger than the
/// input except under LogAppendTime (by a few bytes per record at most).
pub fn close_gaps_uncompressed(batch: &RecordBatch) -> Result<Reencoded, BatchError> {
    if batch.compression() != Compression::None {
        return Err(BatchError::Compressed {
            base_offset: batch.base_offset(),
            compression: batch.compression(),
        });
    }
    check_source(batch)?;
    let count = usize::try_from(batch.record_count()).map_err(|_| record_error(batch, "negative recordCount"))?;
    let mut cursor = Cursor::new(batch.payload(), batch.base_offset());
    let mut out = BytesMut::with_capacity(batch.len() - HEADER_LEN);
    let mut offsets = Vec::with_capacity(count.min(cursor.remaining() / 7));
    let mut max_timestamp = None::<i64>;
    for index in 0..count {
        let (offset, timestamp) = renumber_record(batch, &mut cursor, wire_len(index), &mut out, offsets.last())?;
        offsets.push(offset);
        max_timestamp = max_timestamp.max(Some(timestamp));
    }
    if cursor.remaining() != 0 {
        return Err(cursor.corrupt("bytes remain after recordCount records"));
    }
    let Some(max_timestamp) = max_timestamp else {
        return Ok(Reencoded::default());
    };
    let built = BatchBuilder::new()
        .base_timestamp(batch.base_timestamp())
        .max_timestamp(max_timestamp)
        .last_offset_delta(wire_len(count - 1))
        .record_count(wire_len(count))
        .build_raw(Compression::None, &out);
    Ok(Reencoded {
        batches: vec![built.into_bytes()],
        record_offsets: offsets,
    })
}

/// Copies one record from `cursor` to `out` with offset delta `index`, returning its
/// source offset and absolute timestamp.
fn renumber_record(
    batch: &RecordBatch,
    cursor: &mut Cursor,
    index: i32,
    out: &mut BytesMut,
    previous: Option<&i64>,
) -> Result<(i64, i64), BatchError> {
    let len = usize::try_from(cursor.varint()?).map_err(|_| cursor.corrupt("negative record length"))?;
    if len > cursor.remaining() {
        return Err(cursor.corrupt("record length exceeds the batch"));
    }
    let end = cursor.pos() + len;
    let head_start = cursor.pos();
    let attributes = cursor.take(1)?;
    let timestamp_delta = cursor.varlong()?;
    let timestamp_raw = head_start + 1..cursor.pos();
    let offset_delta = cursor.varint()?;
    let Some(tail_len) = end.checked_sub(cursor.pos()) else {
        return Err(cursor.corrupt("record length does not match its fields"));
    };
    let tail = cursor.take(tail_len)?;
    let mut prev = previous.copied();
    let offset = source_offset(batch, offset_delta, &mut prev)?;
    let timestamp = absolute_timestamp(batch, timestamp_delta, || cursor.corrupt("timestamp overflows"))?;

    let mut timestamp_field = BytesMut::new();
    if batch.attributes().has_log_append_time() {
        let delta = timestamp.checked_sub(batch.base_timestamp());
        put_varlong(
            &mut timestamp_field,
            delta.ok_or_else(|| cursor.corrupt("timestamp overflows"))?,
        );
    } else {
        timestamp_field.put_slice(&batch.as_bytes()[HEADER_LEN + timestamp_raw.start..HEADER_LEN + timestamp_raw.end]);
    }
    let body_len = 1 + timestamp_field.len() + varint_len(index) + tail.len();
    put_varint(out, wire_len(body_len));
    out.put_slice(&attributes);
    out.put_slice(&timestamp_field);
    put_varint(out, index);
    out.put_slice(&tail);
    Ok((offset, timestamp))
}

/// Encodes records into batches of at most `opts.max_batch_bytes` (see [`reencode`]).
pub(crate) fn encode_pending(mut pending: Vec<Pending>, opts: &ReencodeOptions) -> Result<Reencoded, BatchError> {
    let mut batches = Vec::new();
    if !pending.is_empty() {
        if opts.compression == Compression::None {
            pack_uncompressed(&mut pending, opts.max_batch_bytes, &mut batches)?;
        } else {
            pack_compressed(&mut pending, opts, &mut batches)?;
        }
    }
    Ok(Reencoded {
        batches,
        record_offsets: pending.iter().map(|p| p.source_offset).collect(),
    })
}

/// Greedy packing: sizes are exact without a codec, so each batch takes as many
/// records as fit.
fn pack_uncompressed(pending: &mut [Pending], max: usize, out: &mut Vec<Bytes>) -> Result<(), BatchError> {
    let mut start = 0;
    while start < pending.len() {
        let base = pending[start].timestamp;
        let mut size = HEADER_LEN;
        let mut end = start;
        while end < pending.len() {
            let record_len = restamp(&mut pending[end], end - start, base)?;
            if end > start && size + record_len > max {
                break;
            }
            size += record_len;
            end += 1;
        }
        out.push(encode_group(&mut pending[start..end], Compression::None)?);
        start = end;
    }
    Ok(())
}

/// Compressed sizes are known only after compressing: try all records in one batch (the
/// common case: a compacted batch that fitted the source's limit), and halve by bytes
/// while a batch is too large. Batches end up between about half the limit and the
/// limit, in `O(log(size / limit))` compression passes over the data.
fn pack_compressed(pending: &mut [Pending], opts: &ReencodeOptions, out: &mut Vec<Bytes>) -> Result<(), BatchError> {
    let batch = encode_group(pending, opts.compression)?;
    if batch.len() <= opts.max_batch_bytes || pending.len() == 1 {
        out.push(batch);
        return Ok(());
    }
    let half = pending.iter().map(|p| p.record.body_len()).sum::<usize>() / 2;
    let mut seen = 0;
    let split = pending
        .iter()
        .position(|p| {
            seen += p.record.body_len();
            seen > half
        })
        .unwrap_or(0)
        .clamp(1, pending.len() - 1);
    let (left, right) = pending.split_at_mut(split);
    pack_compressed(left, opts, out)?;
    pack_compressed(right, opts, out)
}

/// Encodes `group` as one batch: offset deltas `0..n`, timestamps relative to the first.
fn encode_group(group: &mut [Pending], compression: Compression) -> Result<Bytes, BatchError> {
    let base = group[0].timestamp;
    let mut len = 0;
    for (index, p) in group.iter_mut().enumerate() {
        len += restamp(p, index, base)?;
    }
    let mut raw = BytesMut::with_capacity(len);
    for p in group.iter() {
        p.record.encode(&mut raw);
    }
    let payload = match compression {
        Compression::None => Cow::Borrowed(&raw[..]),
        _ => Cow::Owned(codec::compress(compression, &raw)?),
    };
    let max_timestamp = group.iter().map(|p| p.timestamp).max().unwrap_or(base);
    let batch = BatchBuilder::new()
        .base_timestamp(base)
        .max_timestamp(max_timestamp)
        .last_offset_delta(wire_len(group.len() - 1))
        .record_count(wire_len(group.len()))
        .build_raw(compression, &payload);
    Ok(batch.into_bytes())
}

/// Sets a record's deltas for position `index` in a batch with `base_timestamp`, and
/// returns its encoded size.
fn restamp(p: &mut Pending, index: usize, base_timestamp: i64) -> Result<usize, BatchError> {
    p.record.offset_delta = wire_len(index);
    p.record.timestamp_delta = p.timestamp.checked_sub(base_timestamp).ok_or(BatchError::Corrupt {
        offset: p.source_offset,
        position: 0,
        reason: "timestamps too far apart for one batch",
    })?;
    let body = p.record.body_len();
    Ok(varint_len(wire_len(body)) + body)
}

/// The batch must be one a producer could have sent records from: intact, not control.
fn check_source(batch: &RecordBatch) -> Result<(), BatchError> {
    batch.verify_crc()?;
    if batch.attributes().is_control() {
        return Err(BatchError::Unsupported {
            offset: batch.base_offset(),
            reason: "control batches are never forwarded",
        });
    }
    Ok(())
}

/// A record's timestamp as a Kafka consumer sees it.
fn absolute_timestamp(
    batch: &RecordBatch,
    delta: i64,
    overflow: impl FnOnce() -> BatchError,
) -> Result<i64, BatchError> {
    if batch.attributes().has_log_append_time() {
        return Ok(batch.max_timestamp());
    }
    batch.base_timestamp().checked_add(delta).ok_or_else(overflow)
}

/// `baseOffset + delta`, which must increase record by record and stay within the
/// batch's offset range: otherwise no offset map could be exact.
fn source_offset(batch: &RecordBatch, delta: i32, previous: &mut Option<i64>) -> Result<i64, BatchError> {
    let offset = batch.base_offset().checked_add(i64::from(delta));
    match offset {
        Some(o) if delta >= 0 && delta <= batch.last_offset_delta() && previous.map_or(true, |p| o > p) => {
            *previous = Some(o);
            Ok(o)
        }
        _ => Err(record_error(batch, "record offset deltas out of order or out of range")),
    }
}

fn record_error(batch: &RecordBatch, reason: &'static str) -> BatchError {
    BatchError::Corrupt {
        offset: batch.base_offset(),
        position: HEADER_LEN,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{decode_records, Attributes, ControlType};
    use kferry_protocol_tests::{validate_produced_batch, Expect, ValidatedRecord};
    use proptest::prelude::*;

    /// What a consumer of the source sees: (source offset, timestamp, record).
    type Seen = Vec<(i64, i64, Record)>;

    fn arb_bytes() -> impl Strategy<Value = Option<Bytes>> {
        proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..60).prop_map(Bytes::from))
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let header = (prop_oneof!["a", "b", "\u{e9}t\u{e9}", ""], arb_bytes());
        (arb_bytes(), arb_bytes(), proptest::collection::vec(header, 0..4)).prop_map(|(key, value, headers)| Record {
            key,
            value,
            headers: headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Record::default()
        })
    }

    /// A source batch as a cleaned log serves it: gaps, any codec, maybe LogAppendTime.
    fn arb_source() -> impl Strategy<Value = (RecordBatch, Seen)> {
        let timestamp = prop_oneof![1 => Just(-1i64), 9 => 0i64..1 << 45];
        let entry = (arb_record(), timestamp, prop_oneof![7 => Just(0i32), 3 => 1i32..1000]);
        (
            proptest::collection::vec(entry, 1..40),
            (0i64..1 << 50, 0i64..1 << 45, 0i32..3, 0u8..=4),
            (any::<bool>(), 0i64..1 << 45, any::<bool>()),
        )
            .prop_map(|(entries, (base, base_ts, tail_gap, codec), (lat, append_time, txn))| {
                let mut delta = 0;
                let mut records = Vec::new();
                let mut seen = Vec::new();
                for (mut record, ts, gap) in entries {
                    delta += gap;
                    record.offset_delta = delta;
                    record.timestamp_delta = ts - base_ts;
                    seen.push((
                        base + i64::from(delta),
                        if lat { append_time } else { ts },
                        record.clone(),
                    ));
                    records.push(record);
                    delta += 1;
                }
                let codec = Compression::from_id(codec);
                let mut builder = BatchBuilder::new()
                    .base_offset(base)
                    .base_timestamp(base_ts)
                    .producer(7, 1, 0)
                    .transactional(txn)
                    .last_offset_delta(delta - 1 + tail_gap)
                    .records(records);
                if lat {
                    builder = builder
                        .attributes(Attributes(Attributes::LOG_APPEND_TIME))
                        .transactional(txn)
                        .max_timestamp(append_time);
                }
                (
                    builder.build_compressed(codec, |raw| codec::compress(codec, raw).unwrap()),
                    seen,
                )
            })
    }

    fn owned(b: &Option<Bytes>) -> Option<Vec<u8>> {
        b.as_ref().map(|b| b.to_vec())
    }

    /// Validates every output batch and checks the records against what the source held.
    fn check_output(out: &Reencoded, seen: &Seen, codec: Compression, max: usize) -> Result<(), TestCaseError> {
        let mut got: Vec<ValidatedRecord> = Vec::new();
        for batch in &out.batches {
            let summary = validate_produced_batch(batch, &Expect::default());
            prop_assert!(summary.is_ok(), "{:?}", summary);
            let summary = summary.unwrap();
            prop_assert_eq!(summary.compression, codec.id());
            prop_assert!(
                batch.len() <= max || summary.record_count == 1,
                "{} > {}",
                batch.len(),
                max
            );
            got.extend(summary.records);
        }
        prop_assert_eq!(got.len(), seen.len());
        prop_assert_eq!(&out.record_offsets, &seen.iter().map(|s| s.0).collect::<Vec<_>>());
        for (g, (_, ts, r)) in got.iter().zip(seen) {
            prop_assert_eq!(g.timestamp, *ts);
            prop_assert_eq!(&g.key, &owned(&r.key));
            prop_assert_eq!(&g.value, &owned(&r.value));
            let headers: Vec<_> = r.headers.iter().map(|(k, v)| (k.clone(), owned(v))).collect();
            prop_assert_eq!(&g.headers, &headers);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn reencode_preserves_records_and_validates(
            (source, seen) in arb_source(),
            target in 0u8..=4,
            max in prop_oneof![61usize..400, 400usize..4000, Just(usize::MAX)],
        ) {
            let opts = ReencodeOptions { max_batch_bytes: max, ..ReencodeOptions::new(Compression::from_id(target)) };
            let out = reencode(&source, &opts).unwrap();
            check_output(&out, &seen, opts.compression, max)?;
            if max == usize::MAX {
                prop_assert_eq!(out.batches.len(), 1);
            }
        }

        #[test]
        fn close_gaps_preserves_records_and_validates((source, seen) in arb_source()) {
            prop_assume!(source.compression() == Compression::None);
            let out = close_gaps_uncompressed(&source).unwrap();
            prop_assert_eq!(out.batches.len(), 1);
            check_output(&out, &seen, Compression::None, usize::MAX)?;
            if !source.attributes().has_log_append_time() {
                prop_assert!(out.batches[0].len() <= source.len());
            }
        }

        #[test]
        fn close_gaps_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..200), count in -1i32..6) {
            let mut bytes = BatchBuilder::new().record_count(count).build().as_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            let batch_length = (bytes.len() - 12) as i32;
            bytes[8..12].copy_from_slice(&batch_length.to_be_bytes());
            let crc = crate::batch::crc::crc32c(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            let batch = RecordBatch::parse(Bytes::from(bytes)).unwrap();
            let _ = close_gaps_uncompressed(&batch);
            let _ = reencode(&batch, &ReencodeOptions::new(Compression::Lz4));
        }
    }

    fn values(n: usize, len: usize) -> RecordBatch {
        (0..n)
            .fold(BatchBuilder::new(), |b, i| b.value(vec![i as u8; len]))
            .build()
    }

    #[test]
    fn uncompressed_split_is_greedy_and_exact() {
        // Each record: length (2) + attributes, ts, offset, null key (4) + value length (2)
        // + value (100) + header count (1) = 109 bytes.
        const R: usize = 109;
        let source = values(10, 100);
        for (per_batch, max) in [(1, 61 + R * 2 - 1), (2, 61 + R * 2), (3, 61 + R * 4 - 1), (10, 5000)] {
            let out = reencode(
                &source,
                &ReencodeOptions {
                    max_batch_bytes: max,
                    ..ReencodeOptions::new(Compression::None)
                },
            )
            .unwrap();
            assert_eq!(out.batches.len(), 10usize.div_ceil(per_batch), "max {max}");
            assert!(out.batches.iter().all(|b| b.len() <= max));
            assert_eq!(out.batches[0].len(), 61 + R * per_batch);
        }
    }

    #[test]
    fn oversized_record_gets_its_own_batch() {
        let source = BatchBuilder::new().value("a").value(vec![0u8; 5000]).value("b").build();
        for codec in [Compression::None, Compression::Gzip] {
            let opts = ReencodeOptions {
                max_batch_bytes: 1000,
                ..ReencodeOptions::new(codec)
            };
            let out = reencode(&source, &opts).unwrap();
            let counts: Vec<_> = out
                .batches
                .iter()
                .map(|b| RecordBatch::parse(b.clone()).unwrap().record_count())
                .collect();
            assert_eq!(counts.iter().sum::<i32>(), 3);
            assert_eq!(out.record_offsets, [0, 1, 2]);
        }
    }

    #[test]
    fn compressed_output_halves_until_it_fits() {
        // Incompressible values: 64 records of ~1 KiB through lz4 with a 10 KiB limit.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut noise = || {
            (0..1000)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect::<Vec<u8>>()
        };
        let source = (0..64).fold(BatchBuilder::new(), |b, _| b.value(noise())).build();
        let opts = ReencodeOptions {
            max_batch_bytes: 10_240,
            ..ReencodeOptions::new(Compression::Lz4)
        };
        let out = reencode(&source, &opts).unwrap();
        assert!(out.batches.iter().all(|b| b.len() <= 10_240));
        assert!(
            out.batches.len() >= 7 && out.batches.len() <= 16,
            "{} batches",
            out.batches.len()
        );
        assert_eq!(out.record_offsets, (0..64).collect::<Vec<i64>>());
    }

    #[test]
    fn refuses_what_must_not_be_rebuilt() {
        let opts = ReencodeOptions::new(Compression::None);
        let mut bytes = values(3, 10).as_bytes().to_vec();
        *bytes.last_mut().unwrap() ^= 1;
        let corrupt = RecordBatch::parse(Bytes::from(bytes)).unwrap();
        assert!(matches!(reencode(&corrupt, &opts), Err(BatchError::CrcMismatch { .. })));
        assert!(matches!(
            close_gaps_uncompressed(&corrupt),
            Err(BatchError::CrcMismatch { .. })
        ));

        let marker = BatchBuilder::new()
            .producer(1, 0, 0)
            .control_marker(ControlType::Commit, 0)
            .build();
        assert!(matches!(reencode(&marker, &opts), Err(BatchError::Unsupported { .. })));
        assert!(matches!(
            close_gaps_uncompressed(&marker),
            Err(BatchError::Unsupported { .. })
        ));

        let zstd = BatchBuilder::new()
            .value("x")
            .build_compressed(Compression::Zstd, |r| codec::compress(Compression::Zstd, r).unwrap());
        assert!(matches!(
            close_gaps_uncompressed(&zstd),
            Err(BatchError::Compressed { .. })
        ));

        let backwards = BatchBuilder::new()
            .record(Record::new(3, None, None))
            .record(Record::new(1, None, None))
            .last_offset_delta(3)
            .build();
        assert!(matches!(reencode(&backwards, &opts), Err(BatchError::Corrupt { .. })));
        assert!(matches!(
            close_gaps_uncompressed(&backwards),
            Err(BatchError::Corrupt { .. })
        ));
        let beyond = BatchBuilder::new().value("x").last_offset_delta(-1).build();
        assert!(close_gaps_uncompressed(&beyond).is_err());
    }

    #[test]
    fn empty_batches_produce_nothing() {
        let empty = BatchBuilder::new().base_offset(10).last_offset_delta(4).build();
        assert_eq!(
            reencode(&empty, &ReencodeOptions::new(Compression::Gzip)).unwrap(),
            Reencoded::default()
        );
        assert_eq!(close_gaps_uncompressed(&empty).unwrap(), Reencoded::default());
    }

    #[test]
    fn decompression_is_capped_with_the_batch_offset() {
        let source = values(100, 1000).as_bytes().clone();
        let raw_len = source.len() - HEADER_LEN;
        let batch = decode_source_as(Compression::Gzip, &source);
        assert_eq!(decode_batch(&batch, raw_len).unwrap().len(), 100);
        let err = decode_batch(&batch, raw_len - 1).unwrap_err();
        assert!(
            matches!(err, BatchError::DecompressedTooLarge { offset: 42, .. }),
            "{err:?}"
        );
    }

    fn decode_source_as(codec: Compression, uncompressed: &Bytes) -> RecordBatch {
        let records = decode_records(&RecordBatch::parse(uncompressed.clone()).unwrap()).unwrap();
        BatchBuilder::new()
            .base_offset(42)
            .records(records)
            .build_compressed(codec, |raw| codec::compress(codec, raw).unwrap())
    }

    #[test]
    fn close_gaps_keeps_record_bytes_and_fixes_header() {
        let source = BatchBuilder::new()
            .base_offset(1000)
            .partition_leader_epoch(9)
            .producer(5, 2, 77)
            .record(
                Record::new(2, Some("k".into()), Some("v".into()))
                    .with_header("h", None)
                    .with_header("h", Some("x".into())),
            )
            .record(Record::new(200, None, Some("w".into())).with_timestamp_delta(-5))
            .last_offset_delta(300)
            .build();
        let out = close_gaps_uncompressed(&source).unwrap();
        assert_eq!(out.record_offsets, [1002, 1200]);
        let b = RecordBatch::parse(out.batches[0].clone()).unwrap();
        assert_eq!(
            (
                b.base_offset(),
                b.partition_leader_epoch(),
                b.producer_id(),
                b.base_sequence()
            ),
            (0, -1, -1, -1)
        );
        assert_eq!(
            (b.last_offset_delta(), b.record_count(), b.base_timestamp()),
            (1, 2, source.base_timestamp())
        );
        assert_eq!(b.max_timestamp(), source.base_timestamp());
        let records = decode_records(&b).unwrap();
        let original = decode_records(&source).unwrap();
        for (i, (r, o)) in records.iter().zip(&original).enumerate() {
            assert_eq!(
                r,
                &Record {
                    offset_delta: i as i32,
                    ..o.clone()
                }
            );
        }
        // The 200 -> 1 offset varint shrinks by one byte.
        assert_eq!(b.len(), source.len() - 1);
    }
}
