//! One pipelined connection to one broker.
//!
//! Requests are framed whole, given a correlation id and queued to a writer task, which
//! writes them with vectored writes (so a produce request's batch payload goes from the
//! fetch buffer to the socket without being copied). A reader task reads each response
//! frame into a buffer of exactly its size and hands it, as `Bytes`, to the waiting caller:
//! the kernel's copy into that buffer is the only copy a fetched payload ever gets.
//!
//! When either task fails, the connection is *poisoned*: every in-flight request fails with
//! [`WireError::ConnectionLost`] ("outcome unknown"), and every later call fails at once.
//! Callers reconnect through [`super::Cluster`]. Dropping a call's future is safe: the frame
//! is queued whole or not at all, and a response nobody waits for is dropped.
//!
//! References: rskafka `src/messenger.rs`; franz-go `DESIGN.md` (pipelining, outcome unknown).

use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::error::WireError;
use super::recv_pool::RecvPool;
use super::versions::ApiVersions;
use crate::metrics::events::RequestLatency;

/// Largest response frame accepted; a larger length prefix poisons the connection.
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;
/// Frames queued to the writer task before callers wait.
const WRITE_QUEUE: usize = 64;

type Reply = oneshot::Sender<Result<Bytes, WireError>>;

struct Pending {
    api_key: i16,
    version: i16,
    reply: Reply,
    /// When the request was queued to the writer: its latency runs from here.
    sent: Instant,
}

#[derive(Default)]
struct Shared {
    pending: HashMap<i32, Pending>,
    poisoned: Option<String>,
    /// `kferry_request_latency_seconds` handles of this connection.
    latency: RequestLatency,
}

/// A pipelined connection to one broker. Cheap to share behind an `Arc`.
pub struct Connection {
    cluster: Arc<str>,
    addr: Arc<str>,
    client_id: StrBytes,
    request_timeout: Duration,
    next_correlation: AtomicI32,
    shared: Arc<Mutex<Shared>>,
    writer: mpsc::Sender<Vec<Bytes>>,
    versions: ApiVersions,
}

impl Connection {
    /// Connects, starts the reader and writer tasks and negotiates API versions.
    pub async fn connect(
        cluster: Arc<str>,
        addr: &str,
        client_id: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
        read_mode: ReadMode,
    ) -> Result<Connection, WireError> {
        let connect_err = |reason: String| WireError::Connect {
            cluster: cluster.to_string(),
            addr: addr.to_string(),
            reason,
        };
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(format!("timed out after {} ms", connect_timeout.as_millis())))?
            .map_err(|e| connect_err(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| connect_err(e.to_string()))?;
        let (read_half, write_half) = stream.into_split();
        let shared = Arc::new(Mutex::new(Shared {
            latency: RequestLatency::new(&cluster, addr),
            ..Shared::default()
        }));
        let (writer, queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_loop(write_half, queue, shared.clone()));
        tokio::spawn(read_loop(read_half, shared.clone(), read_mode));
        let mut conn = Connection {
            cluster,
            addr: Arc::from(addr),
            client_id: StrBytes::from_string(client_id.to_string()),
            request_timeout,
            next_correlation: AtomicI32::new(1),
            shared,
            writer,
            versions: ApiVersions::default(),
        };
        conn.versions = super::versions::negotiate(&conn).await?;
        Ok(conn)
    }

    /// The `host:port` this connection goes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The cluster name this connection belongs to.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The API versions the broker advertised.
    pub fn versions(&self) -> &ApiVersions {
        &self.versions
    }

    /// True once the connection has failed; a new one must be made.
    pub fn is_poisoned(&self) -> bool {
        self.shared.lock().expect("connection lock").poisoned.is_some()
    }

    /// Highest version of `R` both kferry (up to `cap`) and the broker support.
    pub fn version_for<R: Request>(&self, cap: i16) -> Result<i16, WireError> {
        let max = cap.min(R::VERSIONS.max);
        self.versions
            .pick(R::KEY, R::VERSIONS.min, max)
            .ok_or_else(|| WireError::NoCommonVersion {
                cluster: self.cluster.to_string(),
                addr: self.addr.to_string(),
                api: api_name(R::KEY),
                min: R::VERSIONS.min,
                max,
            })
    }

    /// Sends a typed request at `version` and decodes its typed response.
    pub async fn call<R: Request>(&self, request: &R, version: i16) -> Result<R::Response, WireError> {
        let mut body = BytesMut::new();
        request
            .encode(&mut body, version)
            .map_err(|e| self.protocol_error(R::KEY, version, format!("encode: {e}")))?;
        let mut frame = self.send(R::KEY, version, vec![body.freeze()]).await?;
        R::Response::decode(&mut frame, version)
            .map_err(|e| self.protocol_error(R::KEY, version, format!("decode: {e}")))
    }

    /// Sends a request whose body is given as segments (written with one vectored write)
    /// and returns the response body, after its header.
    pub async fn send(&self, api_key: i16, version: i16, body: Vec<Bytes>) -> Result<Bytes, WireError> {
        self.start(api_key, version, body).await?.response().await
    }

    /// Queues a request and returns at once with a handle to await its response.
    ///
    /// Requests queued by successive `start` calls reach the broker in that order, which
    /// idempotent produce relies on (sequence numbers must arrive in order).
    pub async fn start(&self, api_key: i16, version: i16, body: Vec<Bytes>) -> Result<InFlight, WireError> {
        let rx = self.enqueue(api_key, version, body).await?;
        Ok(InFlight {
            rx,
            api: api_name(api_key),
            timeout: self.request_timeout,
            cluster: self.cluster.clone(),
            addr: self.addr.clone(),
            shared: self.shared.clone(),
        })
    }

    async fn enqueue(
        &self,
        api_key: i16,
        version: i16,
        body: Vec<Bytes>,
    ) -> Result<oneshot::Receiver<Result<Bytes, WireError>>, WireError> {
        // Reserve queue space first: if this future is dropped while waiting, nothing was
        // registered and nothing was written.
        let permit = self
            .writer
            .reserve()
            .await
            .map_err(|_| self.lost("writer task ended"))?;
        let correlation_id = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let header = self.encode_header(api_key, version, correlation_id)?;
        let size: usize = header.len() + body.iter().map(Bytes::len).sum::<usize>();
        let mut segments = Vec::with_capacity(body.len() + 2);
        segments.push(Bytes::copy_from_slice(&(size as i32).to_be_bytes()));
        segments.push(header);
        segments.extend(body);
        let (reply, rx) = oneshot::channel();
        {
            let mut shared = self.shared.lock().expect("connection lock");
            if let Some(reason) = &shared.poisoned {
                return Err(self.lost(reason));
            }
            shared.pending.insert(
                correlation_id,
                Pending {
                    api_key,
                    version,
                    reply,
                    sent: Instant::now(),
                },
            );
        }
        permit.send(segments);
        Ok(rx)
    }

    fn encode_header(&self, api_key: i16, version: i16, correlation_id: i32) -> Result<Bytes, WireError> {
        let key =
            ApiKey::try_from(api_key).map_err(|_| self.protocol_error(api_key, version, "unknown API key".into()))?;
        let header = RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(32);
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| self.protocol_error(api_key, version, format!("encode header: {e}")))?;
        Ok(buf.freeze())
    }

    fn lost(&self, reason: &str) -> WireError {
        WireError::ConnectionLost {
            cluster: self.cluster.to_string(),
            addr: self.addr.to_string(),
            reason: reason.to_string(),
        }
    }

    fn protocol_error(&self, api_key: i16, version: i16, message: String) -> WireError {
        WireError::Protocol {
            cluster: self.cluster.to_string(),
            addr: self.addr.to_string(),
            api: api_name(api_key),
            version,
            message,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        poison(&self.shared, "connection closed".to_string());
    }
}

/// A request on the wire; [`InFlight::response`] waits for its answer.
pub struct InFlight {
    rx: oneshot::Receiver<Result<Bytes, WireError>>,
    api: &'static str,
    timeout: Duration,
    cluster: Arc<str>,
    addr: Arc<str>,
    shared: Arc<Mutex<Shared>>,
}

impl InFlight {
    /// Waits for the response body (after its header), up to the request timeout.
    pub async fn response(self) -> Result<Bytes, WireError> {
        let lost = |reason: &str| WireError::ConnectionLost {
            cluster: self.cluster.to_string(),
            addr: self.addr.to_string(),
            reason: reason.to_string(),
        };
        match tokio::time::timeout(self.timeout, self.rx).await {
            Ok(Ok(Ok(body))) => Ok(body),
            Ok(Ok(Err(WireError::ConnectionLost { reason, .. }))) => Err(lost(&reason)),
            Ok(Ok(Err(WireError::Protocol {
                api, version, message, ..
            }))) => Err(WireError::Protocol {
                cluster: self.cluster.to_string(),
                addr: self.addr.to_string(),
                api,
                version,
                message,
            }),
            Ok(Ok(Err(other))) => Err(other),
            Ok(Err(_)) => Err(lost("reader task ended")),
            Err(_) => {
                // A broker answers in order; a late answer would block the ones behind it.
                poison(&self.shared, format!("{} timed out", self.api));
                Err(WireError::Timeout {
                    cluster: self.cluster.to_string(),
                    addr: self.addr.to_string(),
                    api: self.api,
                    timeout_ms: self.timeout.as_millis() as u64,
                })
            }
        }
    }
}

/// Kafka's name for an API key, for error messages.
pub fn api_name(api_key: i16) -> &'static str {
    match ApiKey::try_from(api_key) {
        Ok(ApiKey::Produce) => "Produce",
        Ok(ApiKey::Fetch) => "Fetch",
        Ok(ApiKey::ListOffsets) => "ListOffsets",
        Ok(ApiKey::Metadata) => "Metadata",
        Ok(ApiKey::OffsetCommit) => "OffsetCommit",
        Ok(ApiKey::OffsetFetch) => "OffsetFetch",
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::CreateTopics) => "CreateTopics",
        Ok(ApiKey::InitProducerId) => "InitProducerId",
        Ok(ApiKey::DescribeConfigs) => "DescribeConfigs",
        Ok(ApiKey::ListGroups) => "ListGroups",
        Ok(ApiKey::DescribeGroups) => "DescribeGroups",
        _ => "request",
    }
}

/// Marks the connection failed and fails every in-flight request as "outcome unknown".
fn poison(shared: &Mutex<Shared>, reason: String) {
    let pending = {
        let mut shared = shared.lock().expect("connection lock");
        if shared.poisoned.is_none() {
            shared.poisoned = Some(reason.clone());
        }
        std::mem::take(&mut shared.pending)
    };
    for (_, p) in pending {
        let _ = p.reply.send(Err(WireError::ConnectionLost {
            cluster: String::new(),
            addr: String::new(),
            reason: reason.clone(),
        }));
    }
}

async fn write_loop(mut socket: OwnedWriteHalf, mut queue: mpsc::Receiver<Vec<Bytes>>, shared: Arc<Mutex<Shared>>) {
    let mut batch: Vec<Bytes> = Vec::new();
    while let Some(first) = queue.recv().await {
        batch.extend(first);
        // Gather what else is queued so one writev carries several frames.
        while batch.len() < 256 {
            match queue.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        if let Err(e) = write_all_vectored(&mut socket, &mut batch).await {
            poison(&shared, format!("write failed: {e}"));
            return;
        }
        if shared.lock().expect("connection lock").poisoned.is_some() {
            return;
        }
    }
    let _ = socket.shutdown().await;
}

/// Writes every segment, resuming after partial writes, consuming `segments`.
async fn write_all_vectored(socket: &mut OwnedWriteHalf, segments: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut start = 0;
    while start < segments.len() {
        if segments[start].is_empty() {
            start += 1; // an empty body (ApiVersions v0): a zero-length write is no error
            continue;
        }
        let slices: Vec<IoSlice<'_>> = segments[start..].iter().take(1024).map(|b| IoSlice::new(b)).collect();
        let mut written = socket.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let seg = &mut segments[start];
            if written >= seg.len() {
                written -= seg.len();
                start += 1;
            } else {
                seg.advance(written);
                written = 0;
            }
        }
    }
    segments.clear();
    Ok(())
}

async fn read_loop(socket: OwnedReadHalf, shared: Arc<Mutex<Shared>>, mode: ReadMode) {
    let reason = match mode {
        ReadMode::Exact => read_exact_frames(socket, &shared).await,
        ReadMode::Buffered => read_buffered_frames(socket, &shared).await,
    };
    poison(&shared, reason);
}

/// How a connection reads response frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Each frame into a buffer of exactly its size: the length prefix, then the body. Two
    /// reads per frame, and not one byte of the body is copied in user space. For Fetch
    /// connections, whose frames carry the payloads kferry forwards.
    Exact,
    /// Up to [`READ_CHUNK`] bytes per read, split into frames without copying: one read
    /// takes in many small responses (Produce acknowledgements). A frame longer than what
    /// is buffered gets a buffer of its full size; the part already read (under
    /// `READ_CHUNK`) moves there once. For Produce and control connections.
    Buffered,
}

/// Read size of [`ReadMode::Buffered`].
pub const READ_CHUNK: usize = 16 * 1024;

fn frame_size(prefix: [u8; 4]) -> Result<usize, String> {
    let size = i32::from_be_bytes(prefix);
    if size < 4 || size as usize > MAX_FRAME_BYTES {
        return Err(format!("bad response frame size {size} (cap {MAX_FRAME_BYTES})"));
    }
    Ok(size as usize)
}

async fn read_exact_frames(mut socket: OwnedReadHalf, shared: &Mutex<Shared>) -> String {
    let pool = Arc::new(RecvPool::default());
    loop {
        let frame = match read_frame(&mut socket, &pool).await {
            Ok(frame) => frame,
            Err(e) => return e,
        };
        if let Err(reason) = dispatch(frame, shared) {
            return reason;
        }
    }
}

/// Reads one size-prefixed frame into a buffer of its size (no other copy), recycled from
/// `pool` when one is idle.
async fn read_frame(socket: &mut OwnedReadHalf, pool: &Arc<RecvPool>) -> Result<Bytes, String> {
    let mut prefix = [0u8; 4];
    socket
        .read_exact(&mut prefix)
        .await
        .map_err(|e| format!("read failed: {e}"))?;
    let size = frame_size(prefix)?;
    let mut buf = pool.take(size);
    while buf.len() < size {
        let limit = size - buf.len();
        let n = (&mut *socket)
            .take(limit as u64)
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("broker closed the connection".to_string());
        }
    }
    Ok(pool.freeze(buf))
}

async fn read_buffered_frames(mut socket: OwnedReadHalf, shared: &Mutex<Shared>) -> String {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        while buf.len() >= 4 {
            let size = match frame_size([buf[0], buf[1], buf[2], buf[3]]) {
                Ok(size) => size,
                Err(e) => return e,
            };
            if buf.len() < 4 + size {
                buf.reserve(4 + size - buf.len());
                break;
            }
            buf.advance(4);
            let frame = buf.split_to(size).freeze();
            if let Err(reason) = dispatch(frame, shared) {
                return reason;
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match socket.read_buf(&mut buf).await {
            Ok(0) => return "broker closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => return format!("read failed: {e}"),
        }
    }
}

/// Routes a response frame to the request waiting for its correlation id.
fn dispatch(mut frame: Bytes, shared: &Mutex<Shared>) -> Result<(), String> {
    let correlation_id = frame.slice(0..4).get_i32();
    let pending = {
        let mut shared = shared.lock().expect("connection lock");
        let pending = shared.pending.remove(&correlation_id);
        if let Some(p) = &pending {
            shared.latency.record(p.api_key, p.sent.elapsed());
        }
        pending
    };
    let Some(pending) = pending else {
        return Err(format!("response for unknown correlation id {correlation_id}"));
    };
    let header_version = ApiKey::try_from(pending.api_key)
        .map(|k| k.response_header_version(pending.version))
        .unwrap_or(0);
    let result = ResponseHeader::decode(&mut frame, header_version)
        .map(|_| frame)
        .map_err(|e| WireError::Protocol {
            cluster: String::new(),
            addr: String::new(),
            api: api_name(pending.api_key),
            version: pending.version,
            message: format!("response header: {e}"),
        });
    let _ = pending.reply.send(result);
    Ok(())
}
