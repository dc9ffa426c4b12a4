//! Publishing: encoding once into an SSE frame, ids, limits and injection attempts.
mod common;

use common::*;
use futures_util::StreamExt;
use tether_core::{Broker, ConnectOptions, Event, PublishError, event_name};

#[tokio::test(start_paused = true)]
async fn ids_count_up_within_one_epoch() {
    let broker = start(Broker::builder());
    let s = sid("s1");
    let a = broker.publish(&s, &serde_json::json!({"n": 1})).unwrap();
    let b = broker.publish(&s, &serde_json::json!({"n": 2})).unwrap();
    assert_eq!((a.seq, b.seq), (1, 2));
    assert_eq!(a.epoch, b.epoch);
    let other = broker.publish(&sid("s2"), &1).unwrap();
    assert_eq!(other.seq, 1, "sequences are per session");
    let text = a.to_string();
    let (epoch, seq) = text.split_once('-').unwrap();
    assert!(epoch.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(seq, "1");
}

#[tokio::test(start_paused = true)]
async fn frame_on_the_wire_is_lf_only_and_named() {
    let broker = start(Broker::builder());
    let s = sid("wire");
    let ev = Event::raw("line one\r\nline two\rthree\nfour").named(event_name("progress").unwrap());
    let id = broker.publish_event(&s, ev).unwrap();
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _retry = stream.next().await.unwrap();
    let chunk = stream.next().await.unwrap();
    assert_eq!(
        std::str::from_utf8(&chunk).unwrap(),
        format!(
            "id: {id}\nevent: progress\ndata: line one\ndata: line two\ndata: three\ndata: four\n\n"
        )
    );
    assert!(!chunk.contains(&b'\r'));
}

#[tokio::test(start_paused = true)]
async fn names_cannot_inject_fields() {
    for bad in ["a\nid: 99", "x\r", "nul\0", ""] {
        assert!(
            matches!(event_name(bad), Err(PublishError::InvalidEventName(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn data_cannot_inject_frames() {
    let broker = start(Broker::builder());
    let s = sid("inject");
    broker
        .publish_event(&s, Event::raw("a\n\nid: 1-999\ndata: forged"))
        .unwrap();
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let data: Vec<_> = frames.iter().filter(|f| f.data.is_some()).collect();
    assert_eq!(data.len(), 1, "one event, not two: {frames:?}");
    assert_eq!(
        data[0].data.as_deref(),
        Some("a\n\nid: 1-999\ndata: forged")
    );
    assert_ne!(data[0].id.as_deref(), Some("1-999"));
}

#[tokio::test(start_paused = true)]
async fn oversized_events_are_refused_with_a_typed_error() {
    let broker = start(Broker::builder().max_event_bytes(100));
    let s = sid("big");
    let err = broker.publish(&s, &"x".repeat(200)).unwrap_err();
    assert!(
        matches!(err, PublishError::TooLarge { max: 100, .. }),
        "{err:?}"
    );
    // Nothing was stored and no sequence number was used.
    assert_eq!(broker.publish(&s, &"ok").unwrap().seq, 1);
}

#[tokio::test(start_paused = true)]
async fn publish_does_not_wait_for_a_subscriber() {
    let broker = start(Broker::builder().ring_max_events(4));
    let s = sid("nobody");
    // A connection that is never polled does not slow or block publishing.
    let _stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    for i in 0..10_000u32 {
        broker.publish(&s, &i).unwrap();
    }
    assert_eq!(broker.head(&s).unwrap().seq, 10_000);
}

#[tokio::test(start_paused = true)]
async fn batches_are_stored_in_order() {
    let broker = start(Broker::builder());
    let s = sid("batch");
    let ids = broker
        .publish_batch(&s, &[Event::raw("1"), Event::raw("2"), Event::raw("3")])
        .unwrap();
    assert_eq!(ids.iter().map(|i| i.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let got: Vec<_> = stored(&frames).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_is_a_typed_error() {
    let broker = start(Broker::builder().publish_rate(tether_core::RateLimit {
        per_second: 1.0,
        burst: 2,
    }));
    let s = sid("rate");
    broker.publish(&s, &1).unwrap();
    broker.publish(&s, &2).unwrap();
    assert!(matches!(
        broker.publish(&s, &3),
        Err(PublishError::RateLimited { .. })
    ));
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    broker.publish(&s, &4).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_publish_says_when_a_token_is_back() {
    let broker = start(Broker::builder().publish_rate(tether_core::RateLimit {
        per_second: 4.0,
        burst: 1,
    }));
    let s = sid("rate-after");
    broker.publish(&s, &1).unwrap();
    let Err(PublishError::RateLimited { retry_after }) = broker.publish(&s, &2) else {
        panic!("rate limited");
    };
    assert_eq!(retry_after, std::time::Duration::from_millis(250));
    tokio::time::advance(std::time::Duration::from_millis(100)).await;
    let Err(PublishError::RateLimited { retry_after }) = broker.publish(&s, &2) else {
        panic!("rate limited");
    };
    assert_eq!(retry_after, std::time::Duration::from_millis(150));
    tokio::time::advance(retry_after).await;
    broker.publish(&s, &2).unwrap();
}

#[test]
fn an_event_shows_its_data_and_name() {
    let name = tether_core::event_name("update").unwrap();
    let e = tether_core::Event::raw("{\"a\":1}").named(name.clone());
    assert_eq!(e.data(), "{\"a\":1}");
    assert_eq!(e.name(), Some(&name));
}
