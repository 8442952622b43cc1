//! The only code that touches sockets: connections, clusters, and Kafka requests.
//!
//! - [`conn`]: one pipelined connection (correlation ids, vectored writes, poisoning).
//! - [`versions`]: ApiVersions negotiation.
//! - [`cluster`]: bootstrap, metadata cache, connections per broker and purpose.
//! - [`admin`]: CreateTopics, ListOffsets, InitProducerId, group offsets.
//! - [`decode`]: a checked cursor for the responses kferry decodes itself.
//! - [`fetch`]: Fetch requests and their per-partition results.
//! - [`fetch_session`]: fetch sessions (KIP-227): what each Fetch to a broker must carry.
//! - [`fetch_response`], [`produce_response`]: Fetch and Produce response decoding.
//! - [`produce`]: Produce requests encoded as segments so payloads are never copied.

pub mod admin;
pub mod cluster;
pub mod conn;
pub mod decode;
pub mod error;
pub mod fetch;
pub mod fetch_response;
pub mod fetch_session;
pub mod produce;
pub mod produce_gather;
pub mod produce_mux;
pub mod produce_response;
pub mod recv_pool;
pub mod versions;

pub use admin::{CommittedOffset, NewTopic, EARLIEST, LATEST};
pub use cluster::{Cluster, ClusterConfig, Metadata, PartitionMetadata, Purpose, TopicMetadata};
pub use conn::Connection;
pub use error::WireError;
