//! The floor of `bench e2e`: what moving the bytes alone costs on this machine.
//!
//! `kferry bench relay` (internal, a child process so its rusage is its own) connects to two
//! loopback listeners, reads everything the first sends into one reused 1 MiB buffer and
//! writes it to the second: no protocol, no parsing, no waiting on a broker. The parent
//! ([`measure`]) feeds it as many bytes as kferry forwarded (kferry receives them in Fetch
//! responses and sends them in Produce requests) and drains them; the parent is not counted.
//! Any replicator that moves these bytes through sockets pays at least this.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

use kferry::bench::{RunReport, Usage};

use crate::CliError;

const CHUNK: usize = 1 << 20;

#[derive(clap::Args, Debug, Clone)]
pub struct RelayArgs {
    /// Read from this address until it closes.
    #[arg(long)]
    pub from: String,
    /// Write everything read to this address.
    #[arg(long)]
    pub to: String,
}

/// The child: relays `from` to `to` and prints a [`RunReport`] (`wire_bytes` = bytes relayed).
pub async fn run(args: RelayArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let connect = |addr: &str| TcpStream::connect(addr).map_err(|e| CliError::failed(format!("relay: {addr}: {e}")));
    let (mut input, mut output) = (connect(&args.from)?, connect(&args.to)?);
    let mut buf = vec![0u8; CHUNK];
    let mut moved = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::failed(format!("relay: read from {}: {e}", args.from))),
        };
        output
            .write_all(&buf[..n])
            .map_err(|e| CliError::failed(format!("relay: write to {}: {e}", args.to)))?;
        moved += n as u64;
    }
    drop(output);
    let usage = Usage::now();
    let report = RunReport {
        wire_bytes: moved,
        wall_s: started.elapsed().as_secs_f64(),
        user_cpu_s: usage.user_cpu_s,
        sys_cpu_s: usage.sys_cpu_s,
        max_rss_kib: usage.max_rss_kib,
        minor_faults: usage.minor_faults,
        voluntary_switches: usage.voluntary_switches,
        ..RunReport::default()
    };
    println!("{}", serde_json::to_string(&report).map_err(CliError::failed)?);
    Ok(())
}

/// The parent: starts the relay child, feeds it `bytes` bytes in 1 MiB writes, drains and
/// counts what it sends on, and returns the child's report.
pub fn measure(bytes: u64) -> Result<RunReport, CliError> {
    let bind = || TcpListener::bind("127.0.0.1:0").map_err(CliError::failed);
    let (feed, drain) = (bind()?, bind()?);
    let addr = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).map_err(CliError::failed);
    let exe = std::env::current_exe().map_err(CliError::failed)?;
    let child = Command::new(exe)
        .args(["bench", "relay", "--from", &addr(&feed)?, "--to", &addr(&drain)?])
        .env("KFERRY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CliError::failed(format!("cannot start kferry bench relay: {e}")))?;
    // Content does not change what a copy costs (loopback skips checksums); any bytes do.
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = feed.accept()?;
        let chunk: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            s.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let drainer = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = drain.accept()?;
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got += n as u64,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    });
    let out = child.wait_with_output().map_err(CliError::failed)?;
    if !out.status.success() {
        // The feeder and drainer may still wait in accept(); they end with this process.
        return Err(CliError::failed(format!("kferry bench relay failed ({})", out.status)));
    }
    let joined = |r: std::thread::Result<std::io::Result<u64>>| match r {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(CliError::failed(format!("relay feed/drain: {e}"))),
        Err(_) => Err(CliError::failed("relay feed/drain thread panicked")),
    };
    joined(feeder.join().map(|r| r.map(|()| bytes)))?;
    let drained = joined(drainer.join())?;
    let report: RunReport = crate::local::last_json_line(&out.stdout)
        .map_err(|e| CliError::failed(format!("kferry bench relay: unreadable report: {e}")))?;
    match drained == bytes && report.wire_bytes == bytes {
        true => Ok(report),
        false => Err(CliError::failed(format!(
            "relay moved {} bytes, {drained} arrived, {bytes} were sent",
            report.wire_bytes
        ))),
    }
}
