//! kferry: a Kafka replicator that forwards record batches without decoding them.
//!
//! kferry fetches record batches from a source cluster and produces them to a target
//! cluster with only the 61-byte batch header rewritten (base offset, producer id, epoch
//! and sequence, two attribute bits) and the CRC patched. The compressed payload is never
//! decompressed, decoded or copied in user space.
//!
//! Layers, from the bytes up:
//! - [`batch`]: sans-I/O record-batch views, header rewrite and CRC patch;
//! - [`wire`]: connections, clusters and the Kafka requests kferry speaks;
//! - [`replicate`]: the engine (fetchers, sinks, progress, restart reconciliation);
//! - [`Replicator`]: the embedding API; [`config`]: the daemon's TOML file.
//!
//! See `docs/DESIGN.md` for the data path and its invariants.
#![deny(unsafe_code)]

pub mod batch;
pub mod bench;
pub mod config;
pub mod metrics;
pub mod offsets;
pub mod replicate;
pub mod replicator;
pub mod wire;

/// Milliseconds since the Unix epoch (what Kafka timestamps count).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub use replicate::{ForwardedBatch, PartitionStatus, RouteConfig, RouteError, StartPosition};
pub use replicator::{ManageError, PauseState, Replicator, ReplicatorBuilder, Routes, Running};
pub use wire::{ClusterConfig, WireError};
