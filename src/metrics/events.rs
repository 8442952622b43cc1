//! Metrics recorded when something happens, rather than read at scrape time: errors by kind,
//! the replication latency of every acknowledged batch, and broker request latencies.
//!
//! They go to the process's global [`metrics`] recorder (a no-op until one is installed, see
//! [`super::install`]). Hot paths keep pre-registered handles ([`LatencySlot`],
//! [`RequestLatency`]): a label set is built once per partition or per (connection, API), not
//! per batch. Errors are rare, so [`error`] builds its labels on each call.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, histogram, Histogram};

use crate::batch::RecordBatch;
use crate::wire::conn::api_name;
use crate::wire::WireError;

/// `kferry_errors_total{route,kind}`.
pub const ERRORS: &str = "kferry_errors_total";
/// `kferry_replication_latency_seconds{route}` (histogram).
pub const REPLICATION_LATENCY: &str = "kferry_replication_latency_seconds";
/// `kferry_request_latency_seconds{cluster,broker,api}` (histogram).
pub const REQUEST_LATENCY: &str = "kferry_request_latency_seconds";

/// Bucket bounds of [`REPLICATION_LATENCY`], in seconds.
pub const REPLICATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Bucket bounds of [`REQUEST_LATENCY`], in seconds.
pub const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What went wrong, as the `kind` label of [`ERRORS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A Produce failed with a retriable error; the batches are sent again.
    ProduceRetriable,
    /// A Produce failed for good; the partition stops.
    ProduceFatal,
    /// The target lost the idempotent producer's state; a new producer id was taken.
    ProducerReset,
    /// A Fetch request failed, or a partition in a Fetch response carried an error code.
    FetchError,
    /// A connection to a broker could not be made, died, or timed out.
    Connection,
    /// A fetched batch failed its CRC check (skipped or fatal, per `corrupt.batch`).
    CorruptBatch,
}

impl ErrorKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::ProduceRetriable,
        ErrorKind::ProduceFatal,
        ErrorKind::ProducerReset,
        ErrorKind::FetchError,
        ErrorKind::Connection,
        ErrorKind::CorruptBatch,
    ];

    /// The `kind` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ProduceRetriable => "produce_retriable",
            ErrorKind::ProduceFatal => "produce_fatal",
            ErrorKind::ProducerReset => "producer_reset",
            ErrorKind::FetchError => "fetch_error",
            ErrorKind::Connection => "connection",
            ErrorKind::CorruptBatch => "corrupt_batch",
        }
    }
}

/// Counts one error of `kind` on `route`.
pub fn error(route: &str, kind: ErrorKind) {
    counter!(ERRORS, "route" => route.to_string(), "kind" => kind.as_str()).increment(1);
}

/// Counts a wire error: as [`ErrorKind::Connection`] when the connection failed (could not
/// connect, died, timed out), else as `otherwise`.
pub fn wire_error(route: &str, e: &WireError, otherwise: ErrorKind) {
    error(route, classify(e, otherwise));
}

fn classify(e: &WireError, otherwise: ErrorKind) -> ErrorKind {
    match e {
        WireError::Unreachable { .. }
        | WireError::Connect { .. }
        | WireError::ConnectionLost { .. }
        | WireError::Timeout { .. } => ErrorKind::Connection,
        _ => otherwise,
    }
}

/// A partition's handle to its route's [`REPLICATION_LATENCY`] histogram, registered at the
/// first acknowledgement.
#[derive(Debug, Default)]
pub struct LatencySlot(OnceLock<Histogram>);

/// Records the replication latency of a batch the target just acknowledged: now minus the
/// batch's `maxTimestamp`. Only CreateTime batches (LogAppendTime is the source broker's
/// append time, not the producer's) with a timestamp.
pub fn batch_acked(slot: &LatencySlot, route: &str, batch: &RecordBatch) {
    if batch.attributes().has_log_append_time() || batch.max_timestamp() < 0 {
        return;
    }
    let latency_ms = (crate::now_ms() - batch.max_timestamp()).max(0);
    slot.0
        .get_or_init(|| histogram!(REPLICATION_LATENCY, "route" => route.to_string()))
        .record(latency_ms as f64 / 1000.0);
}

/// API keys below this get a latency histogram; others (none kferry sends) are not timed.
const TIMED_KEYS: usize = 72;

/// One connection's [`REQUEST_LATENCY`] handles, one per API key, registered at the first
/// response of that API.
pub struct RequestLatency {
    cluster: String,
    broker: String,
    slots: [OnceLock<Histogram>; TIMED_KEYS],
}

impl RequestLatency {
    /// Handles for requests to `broker` (`host:port`) of `cluster`.
    pub fn new(cluster: &str, broker: &str) -> Self {
        RequestLatency {
            cluster: cluster.to_string(),
            broker: broker.to_string(),
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Records the time from sending a request of `api_key` to its response.
    pub fn record(&self, api_key: i16, elapsed: Duration) {
        let Some(slot) = usize::try_from(api_key).ok().and_then(|k| self.slots.get(k)) else {
            return;
        };
        slot.get_or_init(|| {
            histogram!(REQUEST_LATENCY,
                "cluster" => self.cluster.clone(),
                "broker" => self.broker.clone(),
                "api" => api_name(api_key))
        })
        .record(elapsed.as_secs_f64());
    }
}

impl Default for RequestLatency {
    fn default() -> Self {
        RequestLatency::new("", "")
    }
}

impl std::fmt::Debug for RequestLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLatency")
            .field("cluster", &self.cluster)
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Attributes, BatchBuilder};
    use crate::now_ms;

    /// Runs `f` against a recorder of its own and renders what it recorded.
    fn recorded(f: impl FnOnce()) -> String {
        let recorder = crate::metrics::builder().build_recorder();
        metrics::with_local_recorder(&recorder, f);
        recorder.handle().render()
    }

    #[test]
    fn replication_latency_is_now_minus_max_timestamp_of_create_time_batches() {
        let two_seconds_old = BatchBuilder::new()
            .value("v")
            .base_timestamp(now_ms() - 2_000)
            .max_timestamp(now_ms() - 2_000)
            .build();
        let log_append = BatchBuilder::new()
            .value("v")
            .attributes(Attributes(Attributes::LOG_APPEND_TIME))
            .max_timestamp(now_ms() - 100_000)
            .build();
        let slot = LatencySlot::default();
        let text = recorded(|| {
            batch_acked(&slot, "r", &two_seconds_old);
            batch_acked(&slot, "r", &log_append);
        });
        for line in [
            "# TYPE kferry_replication_latency_seconds histogram",
            "kferry_replication_latency_seconds_bucket{route=\"r\",le=\"1\"} 0",
            "kferry_replication_latency_seconds_bucket{route=\"r\",le=\"2.5\"} 1",
            "kferry_replication_latency_seconds_count{route=\"r\"} 1",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn request_latency_is_a_histogram_per_broker_and_api() {
        let latency = RequestLatency::new("src", "127.0.0.1:9092");
        let text = recorded(|| {
            latency.record(1, Duration::from_millis(3)); // Fetch
            latency.record(1, Duration::from_millis(40));
            latency.record(0, Duration::from_micros(200)); // Produce
            latency.record(i16::MAX, Duration::from_millis(1)); // not timed
        });
        let labels = "cluster=\"src\",broker=\"127.0.0.1:9092\"";
        for line in [
            format!("kferry_request_latency_seconds_count{{{labels},api=\"Fetch\"}} 2"),
            format!("kferry_request_latency_seconds_bucket{{{labels},api=\"Fetch\",le=\"0.005\"}} 1"),
            format!("kferry_request_latency_seconds_count{{{labels},api=\"Produce\"}} 1"),
            format!("kferry_request_latency_seconds_bucket{{{labels},api=\"Produce\",le=\"0.0005\"}} 1"),
        ] {
            assert!(text.contains(&line), "{line}\n{text}");
        }
        assert_eq!(text.matches("_count{").count(), 2, "{text}");
    }

    #[test]
    fn errors_count_by_route_and_kind() {
        let text = recorded(|| {
            error("r", ErrorKind::FetchError);
            error("r", ErrorKind::FetchError);
            wire_error(
                "r",
                &WireError::Timeout {
                    cluster: "c".into(),
                    addr: "a".into(),
                    api: "Fetch",
                    timeout_ms: 1,
                },
                ErrorKind::FetchError,
            );
        });
        assert!(
            text.contains("kferry_errors_total{route=\"r\",kind=\"fetch_error\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("kferry_errors_total{route=\"r\",kind=\"connection\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn connection_failures_count_as_connection_errors() {
        let lost = WireError::ConnectionLost {
            cluster: "a".into(),
            addr: "b".into(),
            reason: "gone".into(),
        };
        assert_eq!(classify(&lost, ErrorKind::FetchError), ErrorKind::Connection);
        let unknown = WireError::UnknownTopic {
            cluster: "a".into(),
            topic: "t".into(),
        };
        assert_eq!(classify(&unknown, ErrorKind::FetchError), ErrorKind::FetchError);
        let names: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }
}
