//! One client connection: read a request frame, answer it, in order, until the client
//! goes away or sends something the fake will not answer (then the connection closes).
//!
//! Requests of one connection are answered strictly in order, as a Kafka broker does, so a
//! long-polling Fetch delays whatever the client queued behind it on the same connection.
//!
//! References: Kafka `network/RequestChannel.scala` (one in-flight request per connection
//! is processed at a time), `common/requests/RequestContext.java` (header parsing).

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{api_versions, fetch, find_coordinator, list_groups, list_offsets, metadata, offset_commit, offset_fetch};
use super::{create_partitions, init_producer_id, produce};
use super::{unsupported, RequestSeen, Shared};

/// Largest request accepted (Kafka's `socket.request.max.bytes` default, 100 MiB).
const MAX_REQUEST_BYTES: usize = 100 << 20;

/// Serves one connection to `node` (0, or the follower) until it closes or fails.
pub(super) async fn serve(shared: Arc<Shared>, mut stream: TcpStream, node: i32) {
    loop {
        let Ok(frame) = read_frame(&mut stream).await else {
            return; // the client went away, or sent a frame size no broker accepts
        };
        let response = match answer(&shared, frame, node).await {
            Ok(response) => response,
            Err(reason) => {
                shared.closed.lock().expect("closed lock").push(reason);
                return;
            }
        };
        let mut out = BytesMut::with_capacity(4 + response.len());
        out.extend_from_slice(&(response.len() as i32).to_be_bytes());
        out.extend_from_slice(&response);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn read_frame(stream: &mut TcpStream) -> Result<Bytes, String> {
    let size = stream.read_i32().await.map_err(|e| e.to_string())?;
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| (8..=MAX_REQUEST_BYTES).contains(&s))
        .ok_or_else(|| format!("bad request size {size}"))?;
    let mut buf = vec![0; size];
    stream.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(Bytes::from(buf))
}

/// The response frame (header and body, without the size) for one request frame.
async fn answer(shared: &Shared, mut frame: Bytes, node: i32) -> Result<Bytes, String> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let seen = shared.record(RequestSeen {
        node,
        api_key,
        version,
        bytes: 4 + frame.len(),
        fetch: None,
        rack_id: None,
    });
    let key = ApiKey::try_from(api_key).map_err(|_| format!("unknown API key {api_key}"))?;
    let advertised = api_versions::advertises(&shared.options, api_key, version);
    // Header v1 (no tagged fields) is enough to read the correlation id of a request
    // whose version kafka-protocol does not know.
    let known = key.valid_versions();
    let header_version = match (known.min..=known.max).contains(&version) {
        true => key.request_header_version(version),
        false => 1,
    };
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| e.to_string())?;
    if key == ApiKey::ApiVersions {
        let (body, response_version) = api_versions::respond(&shared.options, version)?;
        return frame_response(key, response_version, header.correlation_id, body);
    }
    if !advertised {
        let body = unsupported::respond(key, version, &mut frame)?;
        return frame_response(key, version, header.correlation_id, body);
    }
    let v = version;
    let body = match key {
        ApiKey::Metadata => encode(metadata::handle(shared, decode(&mut frame, v)?, v), v),
        ApiKey::FindCoordinator => encode(find_coordinator::handle(shared, decode(&mut frame, v)?, v), v),
        ApiKey::OffsetFetch => encode(offset_fetch::handle(shared, decode(&mut frame, v)?), v),
        ApiKey::OffsetCommit => encode(offset_commit::handle(shared, decode(&mut frame, v)?), v),
        ApiKey::ListOffsets => encode(list_offsets::handle(shared, decode(&mut frame, v)?, v), v),
        ApiKey::ListGroups => {
            let _: kafka_protocol::messages::ListGroupsRequest = decode(&mut frame, v)?;
            encode(list_groups::handle(shared, node), v)
        }
        ApiKey::Fetch => encode(fetch::handle(shared, decode(&mut frame, v)?, v, seen, node).await, v),
        ApiKey::Produce => encode(produce::handle(shared, decode(&mut frame, v)?), v),
        ApiKey::InitProducerId => encode(init_producer_id::handle(decode(&mut frame, v)?), v),
        ApiKey::CreatePartitions => encode(create_partitions::handle(shared, decode(&mut frame, v)?), v),
        other => return Err(format!("{other:?} is advertised but not implemented")),
    }?;
    frame_response(key, version, header.correlation_id, body)
}

/// Prefixes a response body with its header.
fn frame_response(key: ApiKey, version: i16, correlation_id: i32, body: Bytes) -> Result<Bytes, String> {
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, key.response_header_version(version))
        .map_err(|e| e.to_string())?;
    out.extend_from_slice(&body);
    Ok(out.freeze())
}

/// Decodes a request body; bytes left over mean the fake and the client disagree.
pub(super) fn decode<R: Decodable>(frame: &mut Bytes, version: i16) -> Result<R, String> {
    let request = R::decode(frame, version).map_err(|e| format!("decode v{version}: {e}"))?;
    match frame.remaining() {
        0 => Ok(request),
        n => Err(format!("{n} bytes after the v{version} request body")),
    }
}

/// Encodes a response body at `version`.
pub(super) fn encode<T: Encodable>(response: T, version: i16) -> Result<Bytes, String> {
    let mut out = BytesMut::new();
    response
        .encode(&mut out, version)
        .map_err(|e| format!("encode v{version}: {e}"))?;
    Ok(out.freeze())
}
