//! The `kferry` command: a thin layer of argument parsing over the library.

mod demo;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kferry: replicate Kafka topics between clusters by forwarding record batches untouched.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `kferry=debug`.
    #[arg(long, global = true, env = "KFERRY_LOG", default_value = "info")]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Replicate the routes of a config file until SIGTERM/SIGINT. Without --config, runs the local demo.
    Run {
        /// The TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file and print which topics each route would replicate where.
    CheckConfig {
        /// The TOML config file.
        config: PathBuf,
        /// Only validate the file; do not connect to the clusters.
        #[arg(long)]
        offline: bool,
    },
    /// Start two local brokers (tansu), replicate a generated workload and verify it.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kferry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config: Some(path) } => run::run(&path).await,
            Command::Run { config: None } => demo::demo(demo::DemoArgs::default()).await,
            Command::CheckConfig { config, offline } => run::check_config(&config, offline).await,
            Command::Demo(args) => demo::demo(args).await,
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
