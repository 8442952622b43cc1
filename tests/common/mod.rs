//! Integration-test harness: real Kafka-compatible brokers (tansu) and an independent
//! real client (`tests/client/kclient.py`, confluent-kafka / librdkafka).
//!
//! Include from a test file with `mod common;`. Needs `scripts/install-test-deps.sh` to have
//! run (it installs `.tools/bin/tansu` and the `.tools/venv` Python environment).
//!
//! * [`Broker::start_memory`] — a tansu broker with in-memory storage (lost on restart).
//! * [`Broker::start_s3`] — a tansu broker storing into a bucket of a [`MotoServer`] (local S3):
//!   its data survives [`Broker::restart`].
//! * [`kclient`] — runs a kclient subcommand and returns its JSON output.
//!
//! Every child process is killed when its owner is dropped, and a small watchdog kills it
//! too if the test process dies without unwinding (SIGKILL, abort, timeout).
//! Broker logs go to `target/test-brokers/<name>-<port>.log` and are printed on failure.
//!
//! Environment overrides: `KFERRY_TANSU` (broker binary), `KFERRY_PYTHON` (interpreter with
//! confluent-kafka and moto), `KFERRY_TANSU_LOG` (the broker's `RUST_LOG`, default `warn`).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long a broker may take to accept connections after being spawned.
pub const BROKER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the local S3 server may take to start (Python imports are slow).
pub const MOTO_READY_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;

// ------------------------------------------------------------------ paths and tools

/// The repository root (the kferry package directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tools_dir() -> PathBuf {
    repo_root().join(".tools")
}

fn missing_tool(what: &str, path: &Path) -> ! {
    panic!(
        "{what} not found at {}: run scripts/install-test-deps.sh first \
         (or point KFERRY_TANSU / KFERRY_PYTHON at an existing install)",
        path.display()
    )
}

/// The tansu broker binary: `$KFERRY_TANSU`, else `.tools/bin/tansu`.
pub fn tansu_bin() -> PathBuf {
    let path = match std::env::var_os("KFERRY_TANSU") {
        Some(p) => PathBuf::from(p),
        None => tools_dir().join("bin").join("tansu"),
    };
    if !path.is_file() {
        missing_tool("tansu broker binary", &path);
    }
    path
}

/// The Python interpreter that has confluent-kafka and moto: `$KFERRY_PYTHON`, else the
/// `.tools/venv` interpreter, else `python3` from `PATH`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KFERRY_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = tools_dir().join("venv").join("bin").join("python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// `tests/client/kclient.py`.
pub fn kclient_script() -> PathBuf {
    repo_root().join("tests").join("client").join("kclient.py")
}

/// Directory for broker and S3 server logs: `<target>/test-brokers/`.
pub fn log_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("test-brokers");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

// ------------------------------------------------------------------ ports and processes

/// Ports handed out by this process, so two harness objects in one test binary never share one
/// (a stopped broker keeps its port for a later restart).
static RESERVED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port that was free a moment ago and is not used by this process.
/// Other processes can still race for it: starters retry on a fresh port when a spawn fails.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        if RESERVED_PORTS.lock().unwrap().insert(port) {
            return port;
        }
    }
}

fn release_port(port: u16) {
    RESERVED_PORTS.lock().unwrap().remove(&port);
}

fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Spawns a shell that SIGKILLs `pid` once this test process is gone, so brokers never outlive
/// a test binary that was killed without unwinding. It exits by itself when `pid` exits.
fn spawn_watchdog(pid: u32) -> Option<Child> {
    let script = "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 1; done; \
                  kill -9 \"$2\" 2>/dev/null";
    Command::new("sh")
        .args(["-c", script, "kferry-watchdog"])
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// A child process plus its watchdog.
struct Supervised {
    child: Child,
    watchdog: Option<Child>,
}

impl Supervised {
    fn spawn(mut cmd: Command) -> std::io::Result<Supervised> {
        let child = cmd.spawn()?;
        let watchdog = spawn_watchdog(child.id());
        Ok(Supervised { child, watchdog })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn drop_watchdog(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status.
    fn terminate(mut self, grace: Duration) -> Option<ExitStatus> {
        self.drop_watchdog();
        if let Some(st) = self.exited() {
            return Some(st);
        }
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    fn kill(mut self) {
        self.drop_watchdog();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        let start = (offset as usize).min(buf.len());
        s = String::from_utf8_lossy(&buf[start..]).into_owned();
    }
    s
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn open_log(path: &Path, banner: &str) -> File {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log {}: {e}", path.display()));
    let _ = writeln!(f, "===== {banner} =====");
    f
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

// ------------------------------------------------------------------ local S3 (moto)

/// A local S3 server (moto) used as durable storage for tansu brokers.
pub struct MotoServer {
    port: u16,
    proc: Option<Supervised>,
    log_path: PathBuf,
}

impl MotoServer {
    /// Starts `moto_server` on a free loopback port and waits until it answers HTTP.
    pub fn start() -> MotoServer {
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let log_path = log_dir().join(format!("moto-{port}.log"));
            let log = open_log(&log_path, "moto start");
            let mut cmd = Command::new(python());
            cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log);
            let mut proc = match Supervised::spawn(cmd) {
                Ok(p) => p,
                Err(e) => panic!("spawn {} -m moto.server: {e}", python().display()),
            };
            let deadline = Instant::now() + MOTO_READY_TIMEOUT;
            loop {
                if let Some(st) = proc.exited() {
                    last_err = format!("moto_server exited with {st}:\n{}", read_from(&log_path, 0));
                    break;
                }
                if http(port, "GET", "/").map(|(code, _)| code == 200).unwrap_or(false) {
                    return MotoServer {
                        port,
                        proc: Some(proc),
                        log_path,
                    };
                }
                if Instant::now() > deadline {
                    last_err = format!(
                        "moto_server on port {port} not ready after {MOTO_READY_TIMEOUT:?}:\n{}",
                        read_from(&log_path, 0)
                    );
                    break;
                }
                sleep(Duration::from_millis(50));
            }
            proc.kill();
            release_port(port);
        }
        panic!("could not start moto_server: {last_err}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Creates a bucket (idempotent).
    pub fn create_bucket(&self, bucket: &str) {
        match http(self.port, "PUT", &format!("/{bucket}")) {
            Ok((200, _)) => {}
            Ok((code, body)) => panic!("create bucket {bucket}: HTTP {code}: {body}"),
            Err(e) => panic!("create bucket {bucket}: {e}"),
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
        release_port(self.port);
    }
}

/// Minimal HTTP/1.1 request without body; returns (status code, response text).
fn http(port: u16, method: &str, path: &str) -> Result<(u16, String), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad HTTP response: {text:?}"))?;
    Ok((code, text))
}

// ------------------------------------------------------------------ tansu broker

#[derive(Clone, Debug)]
enum Storage {
    Memory,
    S3 { endpoint: String, bucket: String },
}

/// A tansu broker process listening on a loopback port.
pub struct Broker {
    pub name: String,
    pub port: u16,
    storage: Storage,
    cluster_id: String,
    proc: Option<Supervised>,
    log_path: PathBuf,
    starts: u32,
}

impl Broker {
    /// A broker with in-memory storage. Its data is lost on [`Broker::restart`].
    pub fn start_memory(name: &str) -> Broker {
        Broker::start_with(name, Storage::Memory, None)
    }

    /// A broker storing into its own new bucket on `moto`. Its data survives restarts
    /// (the `MotoServer` must outlive the broker).
    pub fn start_s3(name: &str, moto: &MotoServer) -> Broker {
        Broker::start_with(name, Storage::Memory, Some(moto))
    }

    fn start_with(name: &str, mut storage: Storage, moto: Option<&MotoServer>) -> Broker {
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            if let Some(m) = moto {
                let mut bucket = format!("tansu-{}-{port}", sanitize(name));
                bucket.truncate(63);
                let bucket = bucket.trim_end_matches('-').to_string();
                m.create_bucket(&bucket);
                storage = Storage::S3 {
                    endpoint: m.endpoint(),
                    bucket,
                };
            }
            let mut b = Broker {
                name: name.to_string(),
                port,
                storage: storage.clone(),
                cluster_id: format!("kferry-test-{}-{port}", sanitize(name)),
                proc: None,
                log_path: log_dir().join(format!("{}-{port}.log", sanitize(name))),
                starts: 0,
            };
            match b.spawn() {
                Ok(()) => return b,
                // Dropping `b` releases the port; the failed process is already gone.
                Err(e) => last_err = e,
            }
        }
        panic!("could not start tansu broker {name:?} after {START_ATTEMPTS} attempts: {last_err}");
    }

    fn storage_url(&self) -> String {
        match &self.storage {
            Storage::Memory => "memory://tansu/".to_string(),
            Storage::S3 { bucket, .. } => format!("s3://{bucket}/"),
        }
    }

    /// Spawns tansu on `self.port` and waits until it is ready; on failure returns the log.
    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = open_log(
            &self.log_path,
            &format!("start #{} of broker {}", self.starts, self.name),
        );
        let log_offset = file_len(&self.log_path);
        let mut cmd = Command::new(tansu_bin());
        cmd.arg("broker")
            .args(["--cluster-id", &self.cluster_id])
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage_url()])
            .env(
                "RUST_LOG",
                std::env::var("KFERRY_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        if let Storage::S3 { endpoint, .. } = &self.storage {
            cmd.env("AWS_ACCESS_KEY_ID", "x")
                .env("AWS_SECRET_ACCESS_KEY", "x")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env("AWS_ENDPOINT", endpoint)
                .env("AWS_ALLOW_HTTP", "true");
        }
        let mut proc = Supervised::spawn(cmd).map_err(|e| format!("spawn {}: {e}", tansu_bin().display()))?;
        let deadline = Instant::now() + BROKER_READY_TIMEOUT;
        loop {
            if let Some(st) = proc.exited() {
                return Err(format!(
                    "broker {} exited with {st} during startup; log {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    read_from(&self.log_path, log_offset)
                ));
            }
            if read_from(&self.log_path, log_offset).contains("ready in") && port_accepts(self.port) {
                self.proc = Some(proc);
                return Ok(());
            }
            if Instant::now() > deadline {
                proc.kill();
                return Err(format!(
                    "broker {} not ready on port {} after {BROKER_READY_TIMEOUT:?}; log {}:\n{}",
                    self.name,
                    self.port,
                    self.log_path.display(),
                    read_from(&self.log_path, log_offset)
                ));
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// `127.0.0.1:PORT`
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The broker's whole log so far (all starts).
    pub fn log(&self) -> String {
        read_from(&self.log_path, 0)
    }

    pub fn is_durable(&self) -> bool {
        matches!(self.storage, Storage::S3 { .. })
    }

    pub fn is_running(&mut self) -> bool {
        match self.proc.as_mut() {
            Some(p) => p.exited().is_none(),
            None => false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.pid())
    }

    /// Graceful stop: SIGTERM, then SIGKILL after 5 s. The port stays reserved for `restart`.
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.terminate(Duration::from_secs(5));
        }
    }

    /// Crash: SIGKILL, no shutdown. The port stays reserved for `restart`.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            assert!(signal(pid, "STOP"), "SIGSTOP broker {}", self.name);
        }
    }

    /// Undoes [`Broker::pause`] (SIGCONT).
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            assert!(signal(pid, "CONT"), "SIGCONT broker {}", self.name);
        }
    }

    /// Starts the broker again on the same port with the same storage (stops it first if it is
    /// running). With memory storage the restarted broker is empty.
    pub fn restart(&mut self) {
        self.resume();
        self.stop();
        // The port can be briefly unavailable (another process may even have taken it).
        let deadline = Instant::now() + BROKER_READY_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("restart of broker {} on port {} failed: {e}", self.name, self.port)
                }
                Err(_) => sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            let _ = signal(p.pid(), "CONT");
            p.kill();
        }
        release_port(self.port);
        if std::thread::panicking() {
            eprintln!(
                "----- log of broker {} ({}) -----\n{}\n----- end of log -----",
                self.name,
                self.log_path.display(),
                read_from(&self.log_path, 0)
            );
        }
    }
}

// ------------------------------------------------------------------ kclient

/// Output of a kclient run that may legitimately fail (e.g. `verify` reporting losses).
#[derive(Debug)]
pub struct KclientOutput {
    /// Exit code: 0 ok, 1 failed check / incomplete read, 2 usage or client error.
    pub code: i32,
    /// The JSON object on stdout, if any.
    pub json: Option<serde_json::Value>,
    pub stdout: String,
    pub stderr: String,
}

impl KclientOutput {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// Runs `tests/client/kclient.py ARGS` and returns its output whatever the exit code.
pub fn kclient_output(args: &[&str]) -> KclientOutput {
    let out = Command::new(python())
        .arg(kclient_script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {} {}: {e}", python().display(), kclient_script().display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str(l).ok());
    KclientOutput {
        code: out.status.code().unwrap_or(-1),
        json,
        stdout,
        stderr,
    }
}

/// Runs `tests/client/kclient.py ARGS`, panicking (with its stderr) unless it succeeds, and
/// returns the JSON object it printed.
pub fn kclient(args: &[&str]) -> serde_json::Value {
    let out = kclient_output(args);
    if !out.ok() {
        let shown = if out.stdout.len() > 4000 {
            &out.stdout[..4000]
        } else {
            &out.stdout
        };
        panic!(
            "kclient {} failed with exit code {}\nstderr:\n{}\nstdout:\n{shown}",
            args.join(" "),
            out.code,
            out.stderr
        );
    }
    out.json
        .unwrap_or_else(|| panic!("kclient {} printed no JSON: {:?}", args.join(" "), out.stdout))
}

/// Polls `f` every `every` until it returns true or `timeout` passes. Returns whether it did.
pub fn wait_until(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(every);
    }
}
