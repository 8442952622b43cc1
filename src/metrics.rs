//! Prometheus metrics: a snapshot of every route's partition status rendered in the text
//! exposition format (version 0.0.4).
//!
//! Sans-I/O: [`render`] takes a [`Snapshot`] and returns the text; [`snapshot`] reads one from
//! a [`Running`] (atomics and mutexes, no sockets). The `kferry` binary serves it on
//! `GET /metrics`; an embedding application can serve it however it likes. Metrics are pulled
//! from the state the engine keeps anyway, so a scrape costs nothing between scrapes.
//! Every metric is described in `docs/metrics.md`.
//!
//! References: <https://prometheus.io/docs/instrumenting/exposition_formats/>,
//! <https://prometheus.io/docs/practices/naming/>.

use std::fmt::Write;

use crate::replicate::{HeartbeatLatency, PartitionStatus, PathCount, PathCounts};
use crate::Running;

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

/// Everything one scrape renders.
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

/// Renders a snapshot in the Prometheus text format: each family once, with `# HELP` and
/// `# TYPE`, then its samples.
pub fn render(s: &Snapshot) -> String {
    let mut out = Exposition::default();
    for (name, kind, help, value) in PARTITION_FAMILIES {
        out.family(name, kind, help);
        for (r, p) in partitions(s) {
            out.sample(name, &partition_labels(r, p, None), value(p));
        }
    }
    for (name, kind, help, value) in OPTIONAL_FAMILIES {
        out.family(name, kind, help);
        for (r, p) in partitions(s) {
            if let Some(v) = value(p) {
                out.sample(name, &partition_labels(r, p, None), v);
            }
        }
    }
    type PathValue = fn(&PathCount) -> u64;
    let path_families: [(&str, &str, PathValue); 2] = [
        (
            "kferry_path_batches_total",
            "Source batches by the path they took (fast path, slow paths, or not forwarded).",
            |c| c.batches,
        ),
        (
            "kferry_path_bytes_total",
            "Source bytes by the path their batch took.",
            |c| c.bytes,
        ),
    ];
    for (name, help, value) in path_families {
        out.family(name, "counter", help);
        for (r, p) in partitions(s) {
            for (path, count) in paths(&p.paths) {
                out.sample(name, &partition_labels(r, p, Some(path)), value(&count) as f64);
            }
        }
    }
    out.family(
        "kferry_route_buffered_bytes",
        "gauge",
        "Bytes of fetched data the route holds (reserved in its buffer.memory).",
    );
    for r in &s.routes {
        let labels = [
            ("route", r.route.as_str()),
            ("source", &r.source),
            ("target", &r.target),
        ];
        out.sample("kferry_route_buffered_bytes", &labels, r.buffered_bytes as f64);
    }
    render_heartbeats(&mut out, s);
    if let Some((used, cap)) = s.process_buffered {
        out.family(
            "kferry_buffered_bytes",
            "gauge",
            "Bytes of fetched data held by all routes together (process-wide buffer.memory).",
        );
        out.sample::<&str>("kferry_buffered_bytes", &[], used as f64);
        out.family(
            "kferry_buffer_memory_bytes",
            "gauge",
            "The process-wide buffer.memory cap.",
        );
        out.sample::<&str>("kferry_buffer_memory_bytes", &[], cap as f64);
    }
    out.text
}

/// Heartbeat latency per route: a summary (quantiles over the last
/// [`crate::replicate::heartbeat::WINDOW`] heartbeats; sum and count since start) and the
/// last heartbeat's latency. Routes without a measured heartbeat have no samples.
fn render_heartbeats(out: &mut Exposition, s: &Snapshot) {
    const SUMMARY: &str = "kferry_heartbeat_latency_seconds";
    const LAST: &str = "kferry_heartbeat_last_latency_seconds";
    let measured: Vec<(&RouteSnapshot, HeartbeatLatency)> =
        s.routes.iter().filter_map(|r| r.heartbeat.map(|h| (r, h))).collect();
    if measured.is_empty() {
        return;
    }
    let secs = |ms: i64| ms as f64 / 1000.0;
    out.family(
        SUMMARY,
        "summary",
        "Time from a heartbeat's CreateTime on the source to the target's acknowledgement of its copy.",
    );
    for (r, h) in &measured {
        let labels = |q: Option<&'static str>| {
            let mut l = vec![
                ("route", r.route.as_str()),
                ("source", &r.source),
                ("target", &r.target),
            ];
            l.extend(q.map(|q| ("quantile", q)));
            l
        };
        out.sample(SUMMARY, &labels(Some("0.5")), secs(h.p50_ms));
        out.sample(SUMMARY, &labels(Some("0.99")), secs(h.p99_ms));
        out.sample(&format!("{SUMMARY}_sum"), &labels(None), secs(h.sum_ms));
        out.sample(&format!("{SUMMARY}_count"), &labels(None), h.count as f64);
    }
    out.family(
        LAST,
        "gauge",
        "End-to-end latency of the last heartbeat the target acknowledged.",
    );
    for (r, h) in &measured {
        let labels = [
            ("route", r.route.as_str()),
            ("source", &r.source),
            ("target", &r.target),
        ];
        out.sample(LAST, &labels, secs(h.last_ms));
    }
}

fn partitions(s: &Snapshot) -> impl Iterator<Item = (&RouteSnapshot, &PartitionStatus)> {
    s.routes.iter().flat_map(|r| r.partitions.iter().map(move |p| (r, p)))
}

fn partition_labels(r: &RouteSnapshot, p: &PartitionStatus, path: Option<&str>) -> Vec<(&'static str, String)> {
    let mut labels = vec![
        ("route", r.route.clone()),
        ("source", r.source.clone()),
        ("target", r.target.clone()),
        ("topic", p.source_topic.clone()),
        ("partition", p.partition.to_string()),
    ];
    if let Some(path) = path {
        labels.push(("path", path.to_string()));
    }
    labels
}

/// Text being written in the exposition format.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample<V: AsRef<str>>(&mut self, name: &str, labels: &[(&str, V)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v.as_ref()));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value: backslash, double quote and line feed are escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// HELP text: backslash and line feed are escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
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
            } else {
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
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
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
