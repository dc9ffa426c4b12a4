//! Clients that close their connection free their sessions at once: the server's active
//! connection count (`/health/sse`) returns to 0 long before a heartbeat write could have
//! found the closed sockets. Run it against a server whose heartbeats are far apart (a
//! minute), with the Reject policy, so a session still held would refuse the reconnect.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::client::{Target, read_response_head, send};

const LIMIT: Duration = Duration::from_secs(10);

async fn open_stream(addr: &str, session: &str, headers: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /api/sse/session/{session} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{headers}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_response_head(&mut s, LIMIT)
        .await
        .expect("the stream opens");
    assert_eq!(head.status, 200, "{:?}", head.headers);
    // Read until the opening `retry:` line has arrived: the stream is live.
    let mut got = head.rest;
    let mut buf = [0u8; 1024];
    while !got.windows(7).any(|w| w == b"retry: ") {
        let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
            .await
            .expect("the stream opens")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    s
}

async fn connections(target: &Target) -> u64 {
    let health = send(target, "GET", "/health/sse", &[], b"", LIMIT)
        .await
        .unwrap();
    health.json().unwrap()["connections"]
        .as_u64()
        .unwrap_or_else(|| panic!("no connection count: {}", health.text()))
}

/// Opens six streams on sessions `{prefix}closing-{i}` (sending `headers`, complete
/// `Name: value\r\n` lines, e.g. for an authorizer), closes half of them with a FIN only and
/// drops the others, and checks that the connection count returns to 0 within 10 s and that
/// a session takes a new client. Panics with a precise message otherwise.
pub async fn assert_closed_clients_free_their_connections(
    base_url: &str,
    prefix: &str,
    headers: &str,
) {
    const CLIENTS: u64 = 6;
    let target = Target::parse(base_url).expect("a loopback URL");
    let addr = base_url.trim_start_matches("http://").to_owned();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(open_stream(&addr, &format!("{prefix}closing-{i}"), headers).await);
    }
    assert_eq!(connections(&target).await, CLIENTS);

    // Half of the clients close their side only (FIN, still reading); the others drop the
    // socket altogether.
    let mut half_closed = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            c.shutdown().await.unwrap();
            half_closed.push(c);
        }
    }
    let closed = Instant::now();
    while connections(&target).await != 0 {
        assert!(
            closed.elapsed() < LIMIT,
            "connections still counted {LIMIT:?} after the clients closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = open_stream(&addr, &format!("{prefix}closing-0"), headers).await;
    assert_eq!(connections(&target).await, 1);
    drop(again);
    drop(half_closed);
}
