//! Prometheus metrics through the [`metrics`] crate and its Prometheus exporter
//! (`metrics-exporter-prometheus`), in the text exposition format (version 0.0.4).
//!
//! Two kinds of metrics:
//!
//! - **Pulled** at scrape time: [`snapshot`] reads every route's partition status (atomics
//!   and mutexes the engine keeps anyway) and [`publish`] writes it into the current
//!   recorder (counters with `absolute`, gauges with `set`). Nothing on the data path counts
//!   these twice, and they cost nothing between scrapes.
//! - **Recorded** when they happen ([`events`]): errors by kind, the replication latency of
//!   each acknowledged batch, broker request latencies. Hot paths hold pre-registered
//!   handles; they go to the global recorder, so install it before starting routes.
//!
//! The `kferry` binary calls [`install`] and serves [`render_with`] on `GET /metrics`. An
//! embedding application does the same with its own HTTP server, or installs any other
//! `metrics` recorder and calls [`describe`] once and [`publish`] before each export, or
//! renders the pulled metrics alone with [`render`] (nothing installed).
//! Every metric is described in `docs/metrics.md`.
//!
//! References: <https://prometheus.io/docs/instrumenting/exposition_formats/>,
//! <https://prometheus.io/docs/practices/naming/>.

pub mod events;
mod summary;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Label, Unit};
pub use metrics_exporter_prometheus::{BuildError, PrometheusHandle, PrometheusRecorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::replicate::{HeartbeatLatency, PartitionStatus, PathCount, PathCounts};
use crate::Running;
use events::ErrorKind;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One route's partitions, with the names its metrics are labelled with.
#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    pub route: String,
    pub source: String,
    pub target: String,
    /// Bytes of fetched data the route holds now.
    pub buffered_bytes: u64,
    pub partitions: Vec<PartitionStatus>,
    /// Heartbeat latency, when the route replicates heartbeats and has timed one.
    pub heartbeat: Option<HeartbeatLatency>,
}

/// Everything one scrape publishes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub routes: Vec<RouteSnapshot>,
    /// Process-wide `buffer.memory`: (bytes held now, cap), when set.
    pub process_buffered: Option<(u64, u64)>,
}

/// Reads the current state of every route.
pub fn snapshot(running: &Running) -> Snapshot {
    Snapshot {
        routes: running
            .routes()
            .iter()
            .map(|r| RouteSnapshot {
                route: r.name().to_string(),
                source: r.source_cluster().to_string(),
                target: r.target_cluster().to_string(),
                buffered_bytes: r.buffered_bytes(),
                partitions: r.status(),
                heartbeat: r.heartbeat_latency(),
            })
            .collect(),
        process_buffered: running.process_buffered_bytes(),
    }
}

/// Offset lag of a partition: source high watermark minus the next source offset the target
/// acknowledged (0 before the first fetch tells the high watermark).
pub fn offset_lag(p: &PartitionStatus) -> i64 {
    if p.high_watermark < 0 {
        return 0;
    }
    (p.high_watermark - p.acked.source_next).max(0)
}

type PartitionValue = fn(&PartitionStatus) -> f64;

/// Per-partition families: name, type, help, value.
const PARTITION_FAMILIES: &[(&str, &str, &str, PartitionValue)] = &[
    (
        "kferry_records_out_total",
        "counter",
        "Records written to the target and acknowledged.",
        |p| p.records_out as f64,
    ),
    (
        "kferry_bytes_out_total",
        "counter",
        "Bytes of record batches written to the target and acknowledged.",
        |p| p.bytes_out as f64,
    ),
    (
        "kferry_batches_out_total",
        "counter",
        "Record batches written to the target and acknowledged.",
        |p| p.batches_out as f64,
    ),
    (
        "kferry_produce_retries_total",
        "counter",
        "Times the partition's in-flight batches were sent again after a retriable produce error or an unknown outcome.",
        |p| p.produce_retries as f64,
    ),
    (
        "kferry_producer_resets_total",
        "counter",
        "Times the partition's idempotent producer was replaced (new producer id, sequences from 0).",
        |p| p.producer_resets as f64,
    ),
    (
        "kferry_offset_lag",
        "gauge",
        "Source high watermark minus the next source offset the target acknowledged.",
        |p| offset_lag(p) as f64,
    ),
    (
        "kferry_source_high_watermark",
        "gauge",
        "Source high watermark last seen in a Fetch response (-1 before the first).",
        |p| p.high_watermark as f64,
    ),
    (
        "kferry_acked_source_offset",
        "gauge",
        "Next source offset to replicate: everything before it is acknowledged by the target.",
        |p| p.acked.source_next as f64,
    ),
    (
        "kferry_partition_error",
        "gauge",
        "1 when the partition stopped with an error, else 0.",
        |p| u8::from(p.error.is_some()) as f64,
    ),
    (
        "kferry_source_log_start_offset",
        "gauge",
        "Source log start offset last seen in a Fetch response (-1 before the first or when the broker does not say).",
        |p| p.lag.log_start_offset as f64,
    ),
    (
        "kferry_lost_offsets_total",
        "counter",
        "Source offsets deleted (by retention or DeleteRecords) before they were replicated, skipped by on.data.loss=resume-earliest.",
        |p| p.lost_offsets as f64,
    ),
];

type OptionalValue = fn(&PartitionStatus) -> Option<f64>;

/// Per-partition families with no sample while the value is unknown (before the first fetch,
/// or before any bytes were fetched to estimate from).
const OPTIONAL_FAMILIES: &[(&str, &str, &str, OptionalValue)] = &[
    (
        "kferry_time_lag_seconds",
        "gauge",
        "Age of the oldest source record not yet acknowledged by the target, from batch header timestamps (0 when caught up).",
        |p| p.lag.time_lag_ms.map(|ms| ms as f64 / 1000.0),
    ),
    (
        "kferry_bytes_behind",
        "gauge",
        "Source bytes not yet acknowledged: fetched bytes exactly, plus unfetched offsets times the observed bytes per offset (an estimate).",
        |p| p.lag.bytes_behind.map(|b| b as f64),
    ),
    (
        "kferry_retention_margin_offsets",
        "gauge",
        "Offsets between the source log start offset and the acknowledged position: what retention can delete before it deletes unreplicated records.",
        |p| p.lag.retention_margin_offsets.map(|o| o as f64),
    ),
    (
        "kferry_retention_margin_bytes",
        "gauge",
        "kferry_retention_margin_offsets times the observed bytes per offset (an estimate).",
        |p| p.lag.retention_margin_bytes.map(|b| b as f64),
    ),
];

/// The paths a source batch can take, as `path` label values.
fn paths(c: &PathCounts) -> [(&'static str, PathCount); 12] {
    [
        ("fast_path", c.fast_path),
        ("gaps_closed", c.gaps_closed),
        ("gaps_reencoded", c.gaps_reencoded),
        ("upconverted", c.upconverted),
        ("split", c.split),
        ("recompressed", c.recompressed),
        ("repartitioned", c.repartitioned),
        ("control_dropped", c.control_dropped),
        ("empty_dropped", c.empty_dropped),
        ("aborted_dropped", c.aborted_dropped),
        ("corrupt_skipped", c.corrupt_skipped),
        ("straddling", c.straddling),
    ]
}

const PATH_BATCHES: &str = "kferry_path_batches_total";
const PATH_BYTES: &str = "kferry_path_bytes_total";
const ROUTE_BUFFERED: &str = "kferry_route_buffered_bytes";
const PROCESS_BUFFERED: &str = "kferry_buffered_bytes";
const BUFFER_MEMORY: &str = "kferry_buffer_memory_bytes";
const HEARTBEAT_LAST: &str = "kferry_heartbeat_last_latency_seconds";

/// A Prometheus builder with kferry's histogram buckets, and no HTTP listener (the
/// `http-listener` feature is off: the caller serves [`PrometheusHandle::render`]).
pub fn builder() -> PrometheusBuilder {
    let buckets = [
        (events::REPLICATION_LATENCY, events::REPLICATION_BUCKETS),
        (events::REQUEST_LATENCY, events::REQUEST_BUCKETS),
    ];
    buckets.into_iter().fold(PrometheusBuilder::new(), |b, (name, bounds)| {
        b.set_buckets_for_metric(Matcher::Full(name.to_string()), bounds)
            .expect("bucket bounds are not empty")
    })
}

/// Installs kferry's Prometheus recorder as the process's global `metrics` recorder and
/// describes every family. Call it before starting routes (hot paths register their handles
/// with the recorder installed when they start), once per process.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = builder().install_recorder()?;
    describe();
    Ok(handle)
}

/// Publishes `s` into the current recorder and renders everything `handle` holds, plus the
/// heartbeat latency summaries (quantiles kferry computes itself, so they are not
/// `metrics` histograms). `handle` must belong to the current recorder (the one [`install`]
/// installed).
pub fn render_with(handle: &PrometheusHandle, s: &Snapshot) -> String {
    publish(s);
    let mut text = handle.render();
    summary::render_heartbeats(&mut text, s);
    text
}

/// Renders the pulled metrics of `s` alone, through a Prometheus recorder of its own: no
/// errors and no latency histograms (those need [`install`] and [`render_with`]), nothing
/// installed.
pub fn render(s: &Snapshot) -> String {
    let recorder = builder().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe();
        render_with(&handle, s)
    })
}

/// Gives every family its `# HELP` text (and unit) in the current recorder.
pub fn describe() {
    let partition = PARTITION_FAMILIES.iter().map(|(n, k, h, _)| (*n, *k, *h));
    let optional = OPTIONAL_FAMILIES.iter().map(|(n, k, h, _)| (*n, *k, *h));
    for (name, kind, help) in partition.chain(optional) {
        match kind {
            "counter" => describe_counter!(name, help),
            _ => describe_gauge!(name, help),
        }
    }
    describe_counter!(
        PATH_BATCHES,
        Unit::Count,
        "Source batches by the path they took (fast path, slow paths, or not forwarded)."
    );
    describe_counter!(PATH_BYTES, Unit::Bytes, "Source bytes by the path their batch took.");
    describe_gauge!(
        ROUTE_BUFFERED,
        Unit::Bytes,
        "Bytes of fetched data the route holds (reserved in its buffer.memory)."
    );
    describe_gauge!(
        PROCESS_BUFFERED,
        Unit::Bytes,
        "Bytes of fetched data held by all routes together (process-wide buffer.memory)."
    );
    describe_gauge!(BUFFER_MEMORY, Unit::Bytes, "The process-wide buffer.memory cap.");
    describe_gauge!(
        HEARTBEAT_LAST,
        Unit::Seconds,
        "End-to-end latency of the last heartbeat the target acknowledged."
    );
    describe_counter!(
        events::ERRORS,
        Unit::Count,
        "Errors by kind: produce_retriable, produce_fatal, producer_reset, fetch_error, connection, corrupt_batch."
    );
    describe_histogram!(
        events::REPLICATION_LATENCY,
        Unit::Seconds,
        "Time from a batch's maxTimestamp (CreateTime) to the target's acknowledgement of its copy."
    );
    describe_histogram!(
        events::REQUEST_LATENCY,
        Unit::Seconds,
        "Time from queueing a request on a broker connection to its response, by API."
    );
}

/// Writes a snapshot into the current recorder: counters with `absolute`, gauges with `set`.
/// Families whose value is unknown for a partition get no sample for it. Every route's error
/// counters are registered (at 0) so that they exist before the first error.
pub fn publish(s: &Snapshot) {
    for r in &s.routes {
        for p in &r.partitions {
            publish_partition(r, p);
        }
        gauge!(ROUTE_BUFFERED, route_labels(r)).set(r.buffered_bytes as f64);
        if let Some(h) = r.heartbeat {
            gauge!(HEARTBEAT_LAST, route_labels(r)).set(h.last_ms as f64 / 1000.0);
        }
        for kind in ErrorKind::ALL {
            counter!(events::ERRORS, "route" => r.route.clone(), "kind" => kind.as_str()).increment(0);
        }
    }
    if let Some((used, cap)) = s.process_buffered {
        gauge!(PROCESS_BUFFERED).set(used as f64);
        gauge!(BUFFER_MEMORY).set(cap as f64);
    }
}

fn publish_partition(r: &RouteSnapshot, p: &PartitionStatus) {
    let labels = partition_labels(r, p);
    for (name, kind, _, value) in PARTITION_FAMILIES {
        set(name, kind, labels.clone(), value(p));
    }
    for (name, kind, _, value) in OPTIONAL_FAMILIES {
        if let Some(v) = value(p) {
            set(name, kind, labels.clone(), v);
        }
    }
    for (path, count) in paths(&p.paths) {
        let mut labels = labels.clone();
        labels.push(Label::new("path", path));
        counter!(PATH_BATCHES, labels.clone()).absolute(count.batches);
        counter!(PATH_BYTES, labels).absolute(count.bytes);
    }
}

fn set(name: &'static str, kind: &str, labels: Vec<Label>, value: f64) {
    match kind {
        "counter" => counter!(name, labels).absolute(value as u64),
        _ => gauge!(name, labels).set(value),
    }
}

fn route_labels(r: &RouteSnapshot) -> Vec<Label> {
    vec![
        Label::new("route", r.route.clone()),
        Label::new("source", r.source.clone()),
        Label::new("target", r.target.clone()),
    ]
}

fn partition_labels(r: &RouteSnapshot, p: &PartitionStatus) -> Vec<Label> {
    let mut labels = route_labels(r);
    labels.push(Label::new("topic", p.source_topic.clone()));
    labels.push(Label::new("partition", p.partition.to_string()));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::Acked;

    fn status(topic: &str, partition: i32, records: u64, hw: i64, next: i64) -> PartitionStatus {
        PartitionStatus {
            source_topic: topic.to_string(),
            target_topic: topic.to_string(),
            partition,
            acked: Acked {
                source_next: next,
                target_next: Some(next),
            },
            high_watermark: hw,
            records_out: records,
            bytes_out: records * 100,
            batches_out: 1,
            produce_retries: 0,
            producer_resets: 0,
            paths: PathCounts::default(),
            error: None,
            lag: Default::default(),
            lost_offsets: 0,
        }
    }

    fn snap(partitions: Vec<PartitionStatus>) -> Snapshot {
        Snapshot {
            routes: vec![RouteSnapshot {
                route: "r".into(),
                source: "a".into(),
                target: "b".into(),
                buffered_bytes: 2048,
                partitions,
                heartbeat: None,
            }],
            process_buffered: None,
        }
    }

    #[test]
    fn metrics_samples_carry_labels_and_values() {
        let text = render(&snap(vec![
            status("orders", 0, 7, 10, 7),
            status("orders", 1, 3, -1, 0),
        ]));
        assert!(
            text.contains(
                "kferry_records_out_total{route=\"r\",source=\"a\",target=\"b\",topic=\"orders\",partition=\"0\"} 7\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "kferry_bytes_out_total{route=\"r\",source=\"a\",target=\"b\",topic=\"orders\",partition=\"1\"} 300\n"
        ));
        assert!(text
            .contains("kferry_offset_lag{route=\"r\",source=\"a\",target=\"b\",topic=\"orders\",partition=\"0\"} 3\n"));
        assert!(
            text.contains(
                "kferry_offset_lag{route=\"r\",source=\"a\",target=\"b\",topic=\"orders\",partition=\"1\"} 0\n"
            ),
            "unknown hw is no lag"
        );
        assert!(text.contains("path=\"fast_path\"} 0\n"));
        assert!(text.contains("kferry_route_buffered_bytes{route=\"r\",source=\"a\",target=\"b\"} 2048\n"));
        assert!(
            !text.contains("kferry_buffered_bytes"),
            "no process cap, no process gauge"
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn metrics_help_and_type_once_per_family_before_samples() {
        let mut s = snap(vec![status("t", 0, 1, 1, 1), status("t", 1, 1, 1, 1)]);
        s.process_buffered = Some((1024, 4096));
        let text = render(&s);
        let mut seen = std::collections::HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(seen.insert(name.clone()), "TYPE twice for {name}");
                current = name;
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!seen.contains(name), "HELP after TYPE or twice for {name}");
            } else if !line.is_empty() {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, current, "sample outside its family: {line}");
            }
        }
        assert_eq!(text.matches("# HELP ").count(), seen.len());
        assert!(text.contains("kferry_buffered_bytes 1024\n"));
        assert!(text.contains("kferry_buffer_memory_bytes 4096\n"));
    }

    #[test]
    fn metrics_label_values_are_escaped() {
        let mut s = snap(vec![status("a\"b\\c\nd", 0, 1, 1, 1)]);
        s.routes[0].route = "we\"ird".into();
        let text = render(&s);
        assert!(text.contains("route=\"we\\\"ird\""), "{text}");
        assert!(text.contains("topic=\"a\\\"b\\\\c\\nd\""), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("kferry_records_out_total"))
                .count(),
            1
        );
    }

    #[test]
    fn metrics_lag_families_skip_unknown_values() {
        let mut known = status("t", 0, 1, 10, 4);
        known.lag = crate::replicate::PartitionLag {
            log_start_offset: 2,
            time_lag_ms: Some(1_500),
            bytes_behind: Some(600),
            retention_margin_offsets: Some(2),
            retention_margin_bytes: Some(200),
        };
        known.lost_offsets = 7;
        let text = render(&snap(vec![known, status("t", 1, 0, -1, 0)]));
        let labels = "{route=\"r\",source=\"a\",target=\"b\",topic=\"t\",partition=\"0\"}";
        for (name, value) in [
            ("kferry_time_lag_seconds", "1.5"),
            ("kferry_bytes_behind", "600"),
            ("kferry_retention_margin_offsets", "2"),
            ("kferry_retention_margin_bytes", "200"),
            ("kferry_source_log_start_offset", "2"),
            ("kferry_lost_offsets_total", "7"),
        ] {
            assert!(text.contains(&format!("{name}{labels} {value}\n")), "{name}: {text}");
        }
        assert!(!text
            .contains("kferry_time_lag_seconds{route=\"r\",source=\"a\",target=\"b\",topic=\"t\",partition=\"1\"}"));
        assert!(text.contains(
            "kferry_lost_offsets_total{route=\"r\",source=\"a\",target=\"b\",topic=\"t\",partition=\"1\"} 0\n"
        ));
    }

    #[test]
    fn metrics_heartbeat_latency_is_a_summary_per_route() {
        assert!(
            !render(&snap(vec![])).contains("heartbeat"),
            "nothing measured, no family"
        );
        let mut s = snap(vec![]);
        s.routes[0].heartbeat = Some(HeartbeatLatency {
            last_ms: 60,
            p50_ms: 52,
            p99_ms: 250,
            window: 10,
            count: 40,
            sum_ms: 2_500,
        });
        let text = render(&s);
        let labels = "route=\"r\",source=\"a\",target=\"b\"";
        for line in [
            "# TYPE kferry_heartbeat_latency_seconds summary\n".to_string(),
            format!("kferry_heartbeat_latency_seconds{{{labels},quantile=\"0.5\"}} 0.052\n"),
            format!("kferry_heartbeat_latency_seconds{{{labels},quantile=\"0.99\"}} 0.25\n"),
            format!("kferry_heartbeat_latency_seconds_sum{{{labels}}} 2.5\n"),
            format!("kferry_heartbeat_latency_seconds_count{{{labels}}} 40\n"),
            format!("kferry_heartbeat_last_latency_seconds{{{labels}}} 0.06\n"),
        ] {
            assert!(text.contains(&line), "{line}\n{text}");
        }
    }

    #[test]
    fn metrics_error_gauge_is_one_for_failed_partitions() {
        let mut p = status("t", 0, 1, 1, 1);
        p.error = Some("boom".into());
        let text = render(&snap(vec![p]));
        assert!(text
            .contains("kferry_partition_error{route=\"r\",source=\"a\",target=\"b\",topic=\"t\",partition=\"0\"} 1\n"));
    }
}
