//! Local tansu brokers for the demo and `kferry bench` when no clusters are given.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::CliError;

/// A broker process that is killed when dropped.
pub struct LocalBroker {
    child: Child,
    pub addr: String,
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn repo_root() -> PathBuf {
    let here = std::env::current_dir().unwrap_or_default();
    if here.join("tests/client/kclient.py").exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn find_tansu(explicit: Option<&Path>, root: &Path) -> Result<PathBuf, CliError> {
    let candidates = [
        explicit.map(Path::to_path_buf),
        std::env::var_os("KFERRY_TANSU").map(PathBuf::from),
        Some(root.join(".tools/bin/tansu")),
    ];
    if let Some(found) = candidates.into_iter().flatten().find(|p| p.exists()) {
        return Ok(found);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).find(|p| p.exists()))
        .unwrap_or_default();
    on_path.ok_or_else(|| CliError::failed("the demo needs the tansu broker: run scripts/install-test-deps.sh first"))
}

pub fn python(root: &Path) -> PathBuf {
    let venv = root.join(".tools/venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

pub fn start_broker(tansu: &Path, name: &str) -> Result<LocalBroker, CliError> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(CliError::failed)?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .env("CLUSTER_ID", name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::failed(format!("cannot start {}: {e}", tansu.display())))?;
    let broker = LocalBroker {
        child,
        addr: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&broker.addr).is_err() {
        if Instant::now() > deadline {
            return Err(CliError::failed(format!(
                "broker '{name}' did not listen on {} within 10 s",
                broker.addr
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(broker)
}

/// A child process that is killed when dropped.
pub struct Guarded(Option<Child>);

impl Guarded {
    pub fn new(child: Child) -> Guarded {
        Guarded(Some(child))
    }

    /// Sends SIGTERM, waits for the child, and parses the JSON report on the last line of its
    /// stdout (`kferry bench replicate` prints one).
    pub fn terminate_and_read_report<T: serde::de::DeserializeOwned>(mut self) -> Option<T> {
        let child = self.0.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let out = child.wait_with_output().ok()?;
        last_json_line(&out.stdout).ok()
    }
}

/// Parses the last line of a child's stdout that is a JSON object (the report that
/// `kferry bench replicate` and `kferry-baseline` print at exit).
pub fn last_json_line<T: serde::de::DeserializeOwned>(stdout: &[u8]) -> Result<T, String> {
    let stdout = String::from_utf8_lossy(stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).map_err(|e| format!("'{line}': {e}"))
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
