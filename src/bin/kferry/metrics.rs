//! The `/metrics` endpoint: a minimal HTTP/1.x server that answers `GET /metrics` with
//! [`kferry::metrics::render_with`] of the current state, from the Prometheus recorder
//! [`kferry::metrics::install`] installed. One connection at a time, each closed after its
//! response: a Prometheus scrape needs nothing more.

use std::time::Duration;

use kferry::metrics::PrometheusHandle;
use kferry::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Request head larger than this is refused.
const MAX_REQUEST: usize = 8 * 1024;
/// A client gets this long to send its request and read the response.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Histogram samples are folded into their buckets at least this often, so that memory does
/// not grow while nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Serves scrapes until the future is dropped.
pub async fn serve(listener: TcpListener, running: &Running, handle: &PrometheusHandle) {
    let mut upkeep = tokio::time::interval(UPKEEP);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = upkeep.tick() => {
                handle.run_upkeep();
                continue;
            }
        };
        match accepted {
            Ok((stream, _)) => {
                if let Err(e) = tokio::time::timeout(IO_TIMEOUT, answer(stream, running, handle)).await {
                    tracing::debug!("metrics: client too slow: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, running: &Running, handle: &PrometheusHandle) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let response = match request_line(&head) {
        Some(("GET", "/metrics")) => {
            let body = kferry::metrics::render_with(handle, &kferry::metrics::snapshot(running));
            response("200 OK", kferry::metrics::CONTENT_TYPE, &body)
        }
        Some((_, "/metrics")) => response("405 Method Not Allowed", "text/plain", "use GET\n"),
        Some(_) => response("404 Not Found", "text/plain", "see /metrics\n"),
        None => response("400 Bad Request", "text/plain", "bad request\n"),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads up to the end of the request head (`\r\n\r\n`); None if the client closes first or
/// sends too much.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Method and path (without the query) of the request line.
fn request_line(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    parts.next()?.starts_with("HTTP/").then_some(())?;
    Some((method, target.split('?').next().unwrap_or(target)))
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_takes_method_and_path() {
        assert_eq!(
            request_line("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            request_line("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(request_line("garbage\r\n\r\n"), None);
    }
}
