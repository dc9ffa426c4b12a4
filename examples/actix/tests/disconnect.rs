//! Browsers that close their stream free their connection at once: `/health/sse` counts no
//! connection long before the first heartbeat (15 s) could have found the closed sockets.

mod common;

use std::time::Duration;

use tether_conformance::client::{SseConn, StreamOptions, Target, send};
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(10);

async fn connections(target: &Target) -> u64 {
    let health = send(target, "GET", "/health/sse", &[], b"", LIMIT)
        .await
        .unwrap();
    health.json().unwrap()["connections"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_streams_are_noticed_at_once() {
    let (_child, url) = common::start().await;
    let target = Target::parse(&url).unwrap();

    let mut streams = Vec::new();
    for i in 0..3 {
        let mut s = SseConn::open(
            &target,
            &format!("/api/sse/session/closing-{i}"),
            StreamOptions {
                headers: vec![("Accept".into(), "text/event-stream".into())],
                recv_buffer: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(s.status(), 200);
        s.next(LIMIT).await.unwrap();
        streams.push(s);
    }
    assert_eq!(connections(&target).await, 3);

    drop(streams);
    let closed = Instant::now();
    while connections(&target).await != 0 {
        assert!(
            closed.elapsed() < Duration::from_secs(5),
            "connections still counted 5 s after the clients closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
