//! Session TTL, the session limit, drain, and health.
mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tether_core::{ApprovalRequest, Broker, ConnectError, ConnectOptions, PublishError};

#[tokio::test(start_paused = true)]
async fn idle_sessions_expire_after_the_ttl() {
    let broker = start(Broker::builder().session_ttl(Duration::from_secs(60)));
    let s = sid("ttl");
    let first = broker.publish(&s, &1).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(broker.has_session(&s));
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert!(!broker.has_session(&s), "expired");
    // A recreated session has a new epoch: the old id gets a resync.
    let again = broker.publish(&s, &2).unwrap();
    assert_ne!(again.epoch, first.epoch);
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(first.to_string()))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert_eq!(
        frames.iter().find_map(|f| f.signal()).as_deref(),
        Some("tether.resync")
    );
}

#[tokio::test(start_paused = true)]
async fn the_ttl_pauses_while_connected_or_an_approval_is_pending() {
    let broker = start(Broker::builder().session_ttl(Duration::from_secs(60)));
    let s = sid("paused");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    // Keep reading (heartbeats) for five minutes.
    let until = tokio::time::Instant::now() + Duration::from_secs(300);
    while tokio::time::Instant::now() < until {
        let _ = next_within(&mut stream, Duration::from_secs(20)).await;
    }
    assert!(broker.has_session(&s));
    drop(stream);
    let h = broker
        .request_approval(
            &s,
            ApprovalRequest::new(serde_json::json!({})).timeout(Duration::from_secs(200)),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(150)).await;
    assert!(broker.has_session(&s), "pending approval keeps it");
    assert_eq!(h.await, tether_core::ApprovalStatus::TimedOut);
    tokio::time::sleep(Duration::from_secs(70)).await;
    assert!(!broker.has_session(&s));
}

#[tokio::test(start_paused = true)]
async fn session_ids_lists_every_session_connected_or_not() {
    let broker = start(Broker::builder());
    broker.publish(&sid("published"), &1).unwrap();
    let _stream = broker
        .connect(&sid("connected"), ConnectOptions::default())
        .unwrap();
    let mut ids: Vec<String> = broker
        .session_ids()
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["connected", "published"]);
    assert_eq!(broker.connected_sessions(), [sid("connected")]);
}

#[tokio::test(start_paused = true)]
async fn the_session_limit_is_a_typed_error() {
    let broker = start(Broker::builder().max_sessions(2));
    broker.publish(&sid("a"), &1).unwrap();
    broker.publish(&sid("b"), &1).unwrap();
    assert_eq!(
        broker.publish(&sid("c"), &1).unwrap_err(),
        PublishError::TooManySessions { max: 2 }
    );
    assert!(matches!(
        broker.connect(&sid("c"), ConnectOptions::default()),
        Err(ConnectError::TooManySessions { max: 2 })
    ));
    // Existing sessions keep working.
    broker.publish(&sid("a"), &2).unwrap();
    assert!(broker.remove_session(&sid("a")));
    broker.publish(&sid("c"), &1).unwrap();
}

#[tokio::test(start_paused = true)]
async fn drain_ends_every_stream_with_a_spread_retry_and_refuses_new_ones() {
    let broker = start(Broker::builder());
    let mut streams: Vec<_> = (0..20)
        .map(|i| {
            broker
                .connect(&sid(&format!("d{i}")), ConnectOptions::default())
                .unwrap()
        })
        .collect();
    for s in &mut streams {
        let _ = s.next().await;
    }
    assert!(broker.health().is_healthy());
    broker.drain(Duration::from_secs(30));
    let mut retries = Vec::new();
    for s in &mut streams {
        let (frames, ended) = drain_frames(s, QUIET).await;
        assert!(ended);
        assert_eq!(
            frames.iter().find_map(|f| f.signal()).as_deref(),
            Some("tether.drain")
        );
        retries.push(frames.iter().find_map(|f| f.retry).unwrap());
    }
    assert!(retries.iter().all(|r| *r <= 30_000));
    let distinct: std::collections::HashSet<_> = retries.iter().collect();
    assert!(distinct.len() > 10, "spread over the window: {retries:?}");
    assert!(matches!(
        broker.connect(&sid("late"), ConnectOptions::default()),
        Err(ConnectError::Draining { .. })
    ));
    let health = broker.health();
    assert!(health.draining && !health.is_healthy());
    drop(streams);
    tokio::time::timeout(Duration::from_secs(1), broker.idle())
        .await
        .unwrap();
    assert_eq!(broker.health().connections, 0);
}

#[tokio::test(start_paused = true)]
async fn health_counts_sessions_and_connections() {
    let broker = start(Broker::builder());
    broker.publish(&sid("h1"), &1).unwrap();
    let _c = broker
        .connect(&sid("h2"), ConnectOptions::default())
        .unwrap();
    let h = broker.health();
    assert_eq!(
        (h.sessions, h.connections, h.draining, h.status),
        (2, 1, false, "ok")
    );
    let json = serde_json::to_value(&h).unwrap();
    assert_eq!(json["sessions"], 2);
}
