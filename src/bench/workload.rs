//! Generated workloads: record batches encoded once, then sent again and again.
//!
//! A load generator that encodes and compresses every record it sends measures its own
//! encoder, not the cluster or the replicator. [`Workload::templates`] encodes a set of
//! distinct batches up front; the sender only gives each one a fresh header (timestamps,
//! CRC) per send, see [`Template::stamp`].
//!
//! Two record shapes, named after the deployments kferry is for:
//! - [`RecordShape::Metrics`]: one metric sample per record, in Influx line protocol
//!   (`cpu,host=web-0042,region=eu-west-1 usage_user=12.75,... 1700000000000000000`), keyed
//!   by series (`host/metric`), padded or cut to the record size;
//! - [`RecordShape::Logs`]: an application log line with a request id, a path, a status and
//!   a latency, keyed by service, padded with a stack-trace-like tail.
//!
//! Values come from a small seeded generator, so a run is reproducible and compresses the
//! way real telemetry does (repeated field names and tags, varying numbers).

use bytes::Bytes;

use crate::batch::crc::{crc32c, crc32c_combine};
use crate::batch::{codec, BatchBuilder, Compression, Record, RecordBatch, HEADER_LEN};

/// Which kind of record to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordShape {
    Metrics,
    Logs,
}

impl std::str::FromStr for RecordShape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "metrics" => Ok(RecordShape::Metrics),
            "logs" => Ok(RecordShape::Logs),
            other => Err(format!("unknown record shape '{other}' (metrics, logs)")),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Workload {
    pub shape: RecordShape,
    /// Bytes of key + value per record (the value is padded or cut to fit).
    pub record_size: usize,
    pub records_per_batch: usize,
    pub compression: Compression,
    /// Distinct batches to encode; the sender cycles through them.
    pub templates: usize,
    pub seed: u64,
}

impl Workload {
    /// Workload A of the benchmarks: metrics, 200-byte records, lz4, 100 per batch.
    pub fn metrics() -> Workload {
        Workload {
            shape: RecordShape::Metrics,
            record_size: 200,
            records_per_batch: 100,
            compression: Compression::Lz4,
            templates: 64,
            seed: 1,
        }
    }

    /// Workload B of the benchmarks: logs, 2 KB records, zstd, 32 per batch.
    pub fn logs() -> Workload {
        Workload {
            shape: RecordShape::Logs,
            record_size: 2048,
            records_per_batch: 32,
            compression: Compression::Zstd,
            templates: 64,
            seed: 2,
        }
    }

    /// Encodes the distinct batches.
    pub fn templates(&self) -> Result<Vec<Template>, String> {
        let mut rng = Rng(self.seed.max(1));
        (0..self.templates.max(1))
            .map(|_| {
                let records: Vec<Record> = (0..self.records_per_batch.max(1))
                    .map(|i| {
                        let (key, value) = match self.shape {
                            RecordShape::Metrics => metric_record(&mut rng, self.record_size),
                            RecordShape::Logs => log_record(&mut rng, self.record_size),
                        };
                        let mut r = Record::new(i as i32, Some(key), Some(value));
                        r.timestamp_delta = i as i64 / 10; // ten records per millisecond
                        r
                    })
                    .collect();
                let record_bytes = records
                    .iter()
                    .map(|r| r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len))
                    .sum();
                let compression = self.compression;
                let builder = BatchBuilder::new().records(records).base_timestamp(0);
                let batch = builder.build_compressed(compression, |raw| {
                    codec::compress(compression, raw).expect("compressing generated records")
                });
                Ok(Template::new(batch, record_bytes))
            })
            .collect()
    }
}

/// One pre-encoded batch.
#[derive(Debug, Clone)]
pub struct Template {
    header: [u8; HEADER_LEN],
    payload: Bytes,
    /// CRC-32C of the payload, so a new header's CRC costs no pass over the payload.
    payload_crc: u32,
    /// Key + value bytes of its records (uncompressed).
    pub record_bytes: usize,
    pub records: i32,
    /// Largest timestamp delta of its records.
    span_ms: i64,
}

/// Byte offsets of header fields (Kafka `DefaultRecordBatch`).
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;

impl Template {
    fn new(batch: RecordBatch, record_bytes: usize) -> Template {
        let payload = batch.payload();
        Template {
            header: *batch.header(),
            payload_crc: crc32c(&payload),
            payload,
            record_bytes,
            records: batch.record_count(),
            span_ms: batch.max_timestamp() - batch.base_timestamp(),
        }
    }

    /// The payload (records section), shared by every send.
    pub fn payload(&self) -> Bytes {
        self.payload.clone()
    }

    /// Bytes on the wire (header + payload).
    pub fn len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Always false: a template holds at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A header for one send at `now_ms`: the batch's last record is stamped `now_ms` and the
    /// others earlier by their timestamp deltas (as if a producer had batched them as they
    /// came), CRC fixed. No record carries a time later than the send.
    pub fn stamp_sent_at(&self, now_ms: i64) -> [u8; HEADER_LEN] {
        self.stamp(now_ms - self.span_ms)
    }

    /// A header with the batch's base timestamp set to `base_ms`, CRC fixed.
    pub fn stamp(&self, base_ms: i64) -> [u8; HEADER_LEN] {
        let now_ms = base_ms;
        let mut h = self.header;
        h[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
        h[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&(now_ms + self.span_ms).to_be_bytes());
        let crc = crc32c_combine(crc32c(&h[ATTRIBUTES_AT..]), self.payload_crc, self.payload.len());
        h[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        h
    }
}

/// xorshift64*: small, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const METRICS: [&str; 8] = ["cpu", "mem", "disk", "net", "diskio", "kernel", "processes", "swap"];
const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "us-west-2", "ap-south-1"];
const FIELDS: [&str; 6] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "bytes_sent",
    "bytes_recv",
    "iowait",
];
const SERVICES: [&str; 6] = ["checkout", "search", "auth", "catalog", "payments", "gateway"];
const PATHS: [&str; 6] = [
    "/api/v2/orders",
    "/api/v2/cart/items",
    "/login",
    "/api/v1/search?q=",
    "/healthz",
    "/api/v2/payments/authorize",
];
const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "ERROR"];

fn metric_record(rng: &mut Rng, size: usize) -> (Bytes, Bytes) {
    let metric = rng.pick(&METRICS);
    let host = rng.below(500);
    let key = format!("web-{host:04}/{metric}");
    let mut value = format!("{metric},host=web-{host:04},region={}", rng.pick(&REGIONS));
    let mut field = 0;
    while value.len() + key.len() < size {
        let sep = if field == 0 { ' ' } else { ',' };
        value.push_str(&format!(
            "{sep}{}={}.{:02}",
            FIELDS[field % FIELDS.len()],
            rng.below(10_000),
            rng.below(100)
        ));
        field += 1;
    }
    (Bytes::from(key), fit(value, size.saturating_sub(metric.len() + 9)))
}

fn log_record(rng: &mut Rng, size: usize) -> (Bytes, Bytes) {
    let service = rng.pick(&SERVICES);
    let mut value = format!(
        "2026-11-21T08:{:02}:{:02}.{:03}Z {} {service} req={:016x} {} {} status={} latency_ms={}",
        rng.below(60),
        rng.below(60),
        rng.below(1000),
        rng.pick(&LEVELS),
        rng.next(),
        ["GET", "POST", "PUT"][rng.below(3) as usize],
        rng.pick(&PATHS),
        [200, 200, 200, 201, 404, 500][rng.below(6) as usize],
        rng.below(2_000)
    );
    let mut depth = 0;
    while value.len() + service.len() < size {
        value.push_str(&format!(
            "\n    at com.example.{service}.Handler{}.handle(Handler.java:{})",
            depth % 7,
            rng.below(400)
        ));
        depth += 1;
    }
    (Bytes::from(service), fit(value, size.saturating_sub(service.len())))
}

fn fit(mut value: String, len: usize) -> Bytes {
    value.truncate(len.max(1));
    Bytes::from(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::decode_batch;

    #[test]
    fn templates_are_valid_batches_of_the_requested_size() {
        for workload in [Workload::metrics(), Workload::logs()] {
            let templates = workload.templates().unwrap();
            assert_eq!(templates.len(), workload.templates);
            for t in &templates {
                assert_eq!(t.records as usize, workload.records_per_batch);
                let per_record = t.record_bytes / workload.records_per_batch;
                assert!(
                    per_record.abs_diff(workload.record_size) <= 1,
                    "{:?}: {per_record} bytes per record, wanted {}",
                    workload.shape,
                    workload.record_size
                );
            }
        }
    }

    #[test]
    fn a_stamped_header_has_a_valid_crc_and_the_new_timestamps() {
        let t = &Workload::metrics().templates().unwrap()[3];
        let header = t.stamp(1_700_000_000_123);
        let bytes = [&header[..], &t.payload()[..]].concat();
        let batch = RecordBatch::parse(Bytes::from(bytes)).unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.base_timestamp(), 1_700_000_000_123);
        assert_eq!(batch.max_timestamp(), 1_700_000_000_123 + 9);
        assert_eq!(batch.compression(), Compression::Lz4);
        let records = decode_batch(&batch, 1 << 20).unwrap();
        assert_eq!(records.len(), 100);
        assert!(records[0].key.as_ref().unwrap().starts_with(b"web-"));
    }

    #[test]
    fn generated_text_compresses_like_telemetry_not_like_noise() {
        let t = &Workload::metrics().templates().unwrap()[0];
        let ratio = t.record_bytes as f64 / t.len() as f64;
        assert!(ratio > 1.5 && ratio < 20.0, "lz4 ratio {ratio:.2}");
    }
}
