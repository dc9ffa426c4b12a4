//! Clients that close their connection free their sessions at once: the active connection
//! count returns to 0 long before a heartbeat write could have found the closed sockets
//! (heartbeats are a minute apart here).

mod common;

use std::time::Duration;

use tether_conformance::SuiteConfig;
use tether_core::ConnectionPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const CLIENTS: usize = 6;

async fn open_stream(addr: &str, session: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /api/sse/session/{session} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nx-test-user: alice\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Read until the opening `retry:` line has arrived: the stream is live.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(7).any(|w| w == b"retry: ") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the stream opens")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    s
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_clients_free_their_connections() {
    let cfg = SuiteConfig {
        keepalive: Duration::from_secs(60),
        ..SuiteConfig::default()
    };
    let server = common::start(&cfg, ConnectionPolicy::Reject, common::none()).await;
    let addr = server.base_url.trim_start_matches("http://").to_owned();

    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(open_stream(&addr, &format!("alice:closing-{i}")).await);
    }
    assert_eq!(server.broker.connection_count(), CLIENTS);

    // Half of the clients close their side only (FIN, still reading); the others drop the
    // socket altogether.
    let mut half_closed = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            c.shutdown().await.unwrap();
            half_closed.push(c);
        }
    }
    let started = Instant::now();
    wait_for("all connections closed", Duration::from_secs(10), || {
        server.broker.connection_count() == 0
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));

    // The health route agrees, and under the Reject policy the sessions take new clients.
    let health = tether_conformance::client::send(
        &tether_conformance::client::Target::parse(&server.base_url).unwrap(),
        "GET",
        "/health/sse",
        &[],
        b"",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(
        health.json().unwrap()["connections"],
        0,
        "{}",
        health.text()
    );
    let again = open_stream(&addr, "alice:closing-0").await;
    assert_eq!(server.broker.connection_count(), 1);
    drop(again);
    drop(half_closed);
}
