//! Heartbeats after `keepalive_interval` without a write, on a paused clock.
mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tether_core::{Broker, ConnectOptions, HeartbeatStyle, event_name};

#[tokio::test(start_paused = true)]
async fn an_idle_stream_writes_a_comment_every_interval() {
    let broker = start(Broker::builder().keepalive_interval(Duration::from_secs(15)));
    let s = sid("hb");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _retry = stream.next().await.unwrap();
    let start = tokio::time::Instant::now();
    assert!(
        next_within(&mut stream, Duration::from_secs(14))
            .await
            .is_none()
    );
    let hb = stream.next().await.unwrap();
    assert_eq!(&hb[..], b": keepalive\n\n");
    let at = start.elapsed();
    assert!(
        at >= Duration::from_secs(15) && at < Duration::from_secs(16),
        "{at:?}"
    );
    let hb2 = stream.next().await.unwrap();
    assert_eq!(&hb2[..], b": keepalive\n\n");
    assert!(start.elapsed() >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn writes_postpone_the_heartbeat() {
    let broker = start(Broker::builder().keepalive_interval(Duration::from_secs(15)));
    let s = sid("busy");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = stream.next().await.unwrap();
    for i in 0..5u32 {
        tokio::time::advance(Duration::from_secs(10)).await;
        broker.publish(&s, &i).unwrap();
        let chunk = stream.next().await.unwrap();
        assert!(chunk.starts_with(b"id: "), "an event, not a heartbeat");
    }
    let start = tokio::time::Instant::now();
    let hb = stream.next().await.unwrap();
    assert_eq!(&hb[..], b": keepalive\n\n");
    assert!(start.elapsed() >= Duration::from_secs(14));
}

#[tokio::test(start_paused = true)]
async fn named_heartbeats_carry_data_and_no_id() {
    let broker = start(
        Broker::builder()
            .keepalive_interval(Duration::from_secs(5))
            .heartbeat_style(HeartbeatStyle::Event(event_name("heartbeat").unwrap())),
    );
    let s = sid("named");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = stream.next().await.unwrap();
    let hb = stream.next().await.unwrap();
    let frames = parse(std::str::from_utf8(&hb).unwrap());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].event.as_deref(), Some("heartbeat"));
    assert_eq!(frames[0].id, None);
    assert_eq!(frames[0].json().unwrap()["type"], "heartbeat");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_can_be_turned_off() {
    let broker = start(Broker::builder().without_heartbeats());
    let s = sid("off");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = stream.next().await.unwrap();
    assert!(
        next_within(&mut stream, Duration::from_secs(600))
            .await
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn huge_intervals_are_capped_instead_of_overflowing() {
    let broker = start(
        Broker::builder()
            .keepalive_interval(Duration::MAX)
            .client_timeout(Duration::MAX),
    );
    let s = sid("huge");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = stream.next().await.unwrap();
    assert!(
        next_within(&mut stream, Duration::from_secs(3600))
            .await
            .is_none()
    );
    assert_eq!(
        broker.config().keepalive_interval(),
        Some(Duration::from_secs(86_400))
    );
}
