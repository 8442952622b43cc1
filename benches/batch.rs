//! Batch fast-path benchmarks: header rewrite with CRC patch versus a full CRC
//! recompute, and walking a fetched blob.
//!
//! Run quickly with:
//! `cargo bench --bench batch -- --warm-up-time 1 --measurement-time 3`
//!
//! Throughput is reported per payload byte, so the rewrite figure reads as "GB/s of
//! records forwarded per core" and can be compared with the recompute directly.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kferry::batch::{crc, rewrite_header, BatchBuilder, BlobIter, ProducerStamp, RecordBatch};

/// A batch of `records` records whose payload is about `payload_len` bytes.
fn batch_of(payload_len: usize, records: usize, base_offset: i64) -> RecordBatch {
    let value: Vec<u8> = (0..payload_len / records).map(|i| (i * 31 % 251) as u8).collect();
    (0..records)
        .fold(
            BatchBuilder::new().base_offset(base_offset).producer(1, 0, 0),
            |b, _| b.value(value.clone()),
        )
        .build()
}

fn rewrite(c: &mut Criterion) {
    let mut group = c.benchmark_group("rewrite");
    for payload_len in [1 << 10, 64 << 10, 1 << 20] {
        let batch = batch_of(payload_len, 64, 1_000);
        let payload = batch.len() - kferry::batch::HEADER_LEN;
        let stamp = ProducerStamp::new(4242, 3, 17);
        group.throughput(Throughput::Bytes(payload as u64));
        group.bench_with_input(BenchmarkId::new("rewrite_header", payload_len), &batch, |b, batch| {
            b.iter(|| rewrite_header(black_box(batch), black_box(&stamp)))
        });
        group.bench_with_input(BenchmarkId::new("crc_recompute", payload_len), &batch, |b, batch| {
            b.iter(|| black_box(batch).compute_crc())
        });
    }
    group.finish();
}

fn crc_shift(c: &mut Criterion) {
    c.bench_function("crc32c_shift_64KiB", |b| {
        b.iter(|| crc::crc32c_shift(black_box(0xDEAD_BEEF), black_box(65_475)))
    });
}

fn blob_iter(c: &mut Criterion) {
    let mut blob = BytesMut::new();
    let mut base = 0;
    while blob.len() < (1 << 20) {
        let batch = batch_of(16 << 10, 16, base);
        base = batch.next_offset();
        blob.extend_from_slice(batch.as_bytes());
    }
    let blob: Bytes = blob.freeze();
    let mut group = c.benchmark_group("blob_iter");
    group.throughput(Throughput::Bytes(blob.len() as u64));
    group.bench_function("1MiB_of_16KiB_batches", |b| {
        b.iter(|| {
            BlobIter::new(black_box(blob.clone()), black_box(0))
                .filter(Result::is_ok)
                .count()
        })
    });
    group.finish();
}

/// The slow path's cost per codec: decode a workload-A batch (100 metrics records, ~20 KB)
/// and encode it again with the same codec, as closing a compacted gap does. Throughput is
/// in uncompressed record bytes. For scale: the fast path (`rewrite`) costs ~50 ns a batch.
fn slow_path_reencode(c: &mut Criterion) {
    use kferry::batch::{reencode, Compression, ReencodeOptions};
    use kferry::bench::Workload;
    let mut group = c.benchmark_group("reencode");
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut workload = Workload::metrics();
        workload.compression = codec;
        workload.templates = 1;
        let template = &workload.templates().expect("workload encodes")[0];
        let bytes = [&template.stamp(1_700_000_000_000)[..], &template.payload()[..]].concat();
        let batch = RecordBatch::parse(bytes::Bytes::from(bytes)).expect("a valid batch");
        let opts = ReencodeOptions::new(codec);
        group.throughput(Throughput::Bytes(template.record_bytes as u64));
        group.bench_with_input(
            BenchmarkId::new("same_codec", format!("{codec:?}")),
            &batch,
            |b, batch| b.iter(|| reencode(batch, &opts).expect("re-encodes")),
        );
    }
    group.finish();
}

criterion_group!(benches, rewrite, crc_shift, blob_iter, slow_path_reencode);
criterion_main!(benches);
