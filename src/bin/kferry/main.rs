//! The `kferry` command: a thin layer of argument parsing over the library.

mod alloc;
mod api;
mod bench;
mod demo;
mod local;
mod metrics;
mod offsets;
mod run;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

pub use alloc::allocated_bytes;
use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// kferry: replicate Kafka topics between clusters by forwarding record batches untouched.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `kferry=debug`.
    #[arg(long, global = true, env = "KFERRY_LOG", default_value = "info")]
    log: String,
    /// Log format on stderr: `text` (human-readable) or `json` (one object per line, for log
    /// pipelines).
    #[arg(long, global = true, env = "KFERRY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Threads that run kferry's tasks. 1 (the default) runs everything on the main thread:
    /// no wake-up crosses threads, which measured the fewest CPU-seconds per GB on the
    /// benchmarks (docs/benchmarks.md). 0 means one per CPU; raise it when one core is not
    /// enough.
    #[arg(long, global = true, env = "KFERRY_WORKER_THREADS", default_value_t = 1)]
    worker_threads: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Replicate the routes of a config file until SIGTERM/SIGINT. Without --config, runs the local demo.
    Run {
        /// The TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Serve Prometheus metrics on `GET /metrics` at this `host:port` (overrides the
        /// config file's `"metrics.address"`).
        #[arg(long)]
        metrics_address: Option<String>,
    },
    /// Validate a config file and print which topics each route would replicate where.
    CheckConfig {
        /// The TOML config file.
        config: PathBuf,
        /// Only validate the file; do not connect to the clusters.
        #[arg(long)]
        offline: bool,
    },
    /// Show each partition's replication lag (offsets, time, bytes) and state, read from the
    /// clusters.
    Status {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Print one JSON array of rows instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Start two local brokers (tansu), replicate a generated workload and verify it.
    Demo(demo::DemoArgs),
    /// Load generator, end-to-end throughput against a baseline, and latency.
    #[command(subcommand)]
    Bench(Box<bench::BenchCommand>),
    /// Consumer-group offsets across a route: translate them with the persisted offset maps.
    #[command(subcommand)]
    Offsets(offsets::OffsetsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format.as_str() {
        "json" => logs.json().init(),
        _ => logs.init(),
    }
    let mut runtime = match cli.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if cli.worker_threads > 1 {
        runtime.worker_threads(cli.worker_threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kferry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run {
                config: Some(path),
                metrics_address,
            } => run::run(&path, metrics_address).await,
            Command::Run { config: None, .. } => demo::demo(demo::DemoArgs::default()).await,
            Command::CheckConfig { config, offline } => run::check_config(&config, offline).await,
            Command::Status { config, route, json } => status::status(&config, route.as_deref(), json).await,
            Command::Demo(args) => demo::demo(args).await,
            Command::Bench(command) => bench::bench(*command).await,
            Command::Offsets(command) => offsets::offsets(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kferry: error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// A failure to report in one line, with the process exit code.
pub struct CliError {
    pub message: String,
    pub code: u8,
}

impl CliError {
    /// A usage or config error (exit code 2).
    pub fn usage(message: impl std::fmt::Display) -> CliError {
        CliError {
            message: message.to_string(),
            code: 2,
        }
    }

    /// A runtime failure (exit code 1).
    pub fn failed(message: impl std::fmt::Display) -> CliError {
        CliError {
            message: message.to_string(),
            code: 1,
        }
    }
}
