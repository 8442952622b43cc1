//! The heartbeat latency summary, written in the exposition format by hand: its quantiles
//! come from the route's own window of recent heartbeats (`src/replicate/heartbeat.rs`), which
//! a `metrics` histogram cannot carry.

use std::fmt::Write;

use super::{RouteSnapshot, Snapshot};
use crate::replicate::HeartbeatLatency;

const SUMMARY: &str = "kferry_heartbeat_latency_seconds";

/// Heartbeat latency per route: a summary (quantiles over the last
/// [`crate::replicate::heartbeat::WINDOW`] heartbeats; sum and count since start). Routes
/// without a measured heartbeat have no samples; with none measured, no family at all.
pub(super) fn render_heartbeats(out: &mut String, s: &Snapshot) {
    let measured: Vec<(&RouteSnapshot, HeartbeatLatency)> =
        s.routes.iter().filter_map(|r| r.heartbeat.map(|h| (r, h))).collect();
    if measured.is_empty() {
        return;
    }
    let secs = |ms: i64| ms as f64 / 1000.0;
    let _ = writeln!(
        out,
        "# HELP {SUMMARY} Time from a heartbeat's CreateTime on the source to the target's acknowledgement of its copy."
    );
    let _ = writeln!(out, "# TYPE {SUMMARY} summary");
    for (r, h) in &measured {
        let labels = format!(
            "route=\"{}\",source=\"{}\",target=\"{}\"",
            escape_label(&r.route),
            escape_label(&r.source),
            escape_label(&r.target)
        );
        let _ = writeln!(out, "{SUMMARY}{{{labels},quantile=\"0.5\"}} {}", secs(h.p50_ms));
        let _ = writeln!(out, "{SUMMARY}{{{labels},quantile=\"0.99\"}} {}", secs(h.p99_ms));
        let _ = writeln!(out, "{SUMMARY}_sum{{{labels}}} {}", secs(h.sum_ms));
        let _ = writeln!(out, "{SUMMARY}_count{{{labels}}} {}", h.count);
    }
}

/// A label value: backslash, double quote and line feed are escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
