//! Benchmark tools behind `kferry bench`: a generated workload, a load generator, process
//! usage, and an end-to-end latency probe.
//!
//! These are library code so that a custom pipeline can benchmark itself the same way; the
//! CLI in `src/bin/kferry/bench/` puts them together (and adds the baseline comparison).
//! See docs/benchmarks.md for the figures and the commands that produce them.

pub mod latency;
pub mod load;
pub mod topic;
pub mod usage;
pub mod workload;

pub use latency::{probe, Histogram};
pub use load::{produce, LoadOptions, LoadStats};
pub use topic::high_watermarks;
pub use usage::{RunReport, Usage};
pub use workload::{RecordShape, Template, Workload};

pub use crate::now_ms;
