//! The answer of a connection the server cannot keep (see [`limits`](super::limits)).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::limits::ShedSlot;
use crate::Broker;

/// Longest wait for the head of a request that will be shed: the answer depends on whether
/// it asks for an event stream, but a full server does not wait long to find out.
const SHED_HEAD_WAIT: Duration = Duration::from_secs(2);
/// Most bytes read of a shed request's head.
const SHED_HEAD_MAX: usize = 8 * 1024;
/// `Retry-After` of a shed request that is not an event stream.
const SHED_RETRY_AFTER_SECS: u64 = 5;

/// Reads the head of the connection's first request (briefly) and answers: an event-stream
/// request with `200`, a jittered `retry:` and the end of the stream (EventSource never
/// returns after a non-200), anything else with `503` and `Retry-After`; then closes.
pub(crate) async fn shed(
    mut stream: TcpStream,
    broker: Broker,
    head_timeout: Duration,
    slot: ShedSlot,
) {
    let mut head = Vec::with_capacity(1024);
    let wait = head_timeout.min(SHED_HEAD_WAIT);
    let read = tokio::time::timeout(wait, read_head(&mut stream, &mut head)).await;
    if !matches!(read, Ok(true)) {
        return;
    }
    let answer = if wants_event_stream(&head) {
        let body = format!("retry: {}\n\n", broker.inner.retry_hint_ms());
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    } else {
        let body = r#"{"error":"server_full","message":"the server holds as many connections as it may; retry after the Retry-After delay"}"#;
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {SHED_RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    drop(slot);
}

/// Reads until the end of a head; `false` if the client closed first or sent too much.
async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
        if head.len() >= SHED_HEAD_MAX {
            return false;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the head asks for `text/event-stream` in its `Accept` header.
fn wants_event_stream(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    if req.parse(head).is_err() {
        return false;
    }
    req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("accept")
            && std::str::from_utf8(h.value)
                .is_ok_and(|v| v.to_ascii_lowercase().contains("text/event-stream"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_requests_are_told_apart() {
        assert!(wants_event_stream(
            b"GET /api/sse/session/s HTTP/1.1\r\nHost: x\r\nAccept: Text/Event-Stream\r\n\r\n"
        ));
        assert!(!wants_event_stream(
            b"GET /health/sse HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
        ));
        assert!(!wants_event_stream(b"garbage\r\n\r\n"));
    }
}
