//! Errors of the wire layer, each naming the cluster and broker it came from.
//!
//! Every variant says whether a retry can help ([`WireError::is_retriable`]), so the engine
//! decides between "back off and retry" and "stop the partition and tell the operator".

use kafka_protocol::error::ResponseError;

/// An error talking to a Kafka cluster.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// No bootstrap or known broker accepted a connection.
    #[error("cluster '{cluster}': no broker reachable (tried {tried}): {last}")]
    Unreachable {
        cluster: String,
        tried: String,
        last: String,
    },
    /// Connecting to one broker failed.
    #[error("cluster '{cluster}': cannot connect to broker {addr}: {reason}")]
    Connect {
        cluster: String,
        addr: String,
        reason: String,
    },
    /// The connection died while requests were in flight: their outcome is unknown.
    #[error("cluster '{cluster}': connection to {addr} lost ({reason}); outcome of in-flight requests unknown")]
    ConnectionLost {
        cluster: String,
        addr: String,
        reason: String,
    },
    /// A request got no response within the request timeout.
    #[error("cluster '{cluster}': broker {addr}: {api} timed out after {timeout_ms} ms")]
    Timeout {
        cluster: String,
        addr: String,
        api: &'static str,
        timeout_ms: u64,
    },
    /// The broker supports no version of an API that kferry also supports.
    #[error("cluster '{cluster}': broker {addr} supports no usable version of {api} (kferry needs {min}..={max})")]
    NoCommonVersion {
        cluster: String,
        addr: String,
        api: &'static str,
        min: i16,
        max: i16,
    },
    /// The bytes on the wire could not be encoded or decoded.
    #[error("cluster '{cluster}': broker {addr}: {api} v{version}: {message}")]
    Protocol {
        cluster: String,
        addr: String,
        api: &'static str,
        version: i16,
        message: String,
    },
    /// The broker answered with a Kafka error code.
    #[error("cluster '{cluster}': {context}: {error} (code {code})", code = error.code())]
    Kafka {
        cluster: String,
        context: String,
        error: ResponseError,
    },
    /// A topic or partition asked for does not exist on the cluster.
    #[error("cluster '{cluster}': topic '{topic}' does not exist")]
    UnknownTopic { cluster: String, topic: String },
}

impl WireError {
    /// True when the same request may succeed if retried (after a metadata refresh or reconnect).
    pub fn is_retriable(&self) -> bool {
        match self {
            WireError::Unreachable { .. }
            | WireError::Connect { .. }
            | WireError::ConnectionLost { .. }
            | WireError::Timeout { .. } => true,
            WireError::Kafka { error, .. } => error.is_retriable(),
            WireError::UnknownTopic { .. } => true,
            WireError::NoCommonVersion { .. } | WireError::Protocol { .. } => false,
        }
    }

    /// The Kafka error code carried by this error, if the broker sent one.
    pub fn kafka_error(&self) -> Option<ResponseError> {
        match self {
            WireError::Kafka { error, .. } => Some(*error),
            _ => None,
        }
    }
}

/// Turns a Kafka error code into `Ok(())` or a [`WireError::Kafka`] with context.
pub fn check_code(cluster: &str, code: i16, context: impl FnOnce() -> String) -> Result<(), WireError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(WireError::Kafka {
            cluster: cluster.to_string(),
            context: context(),
            error,
        }),
    }
}
