//! Rings are bounded by event count, by bytes, and by one broker-wide budget.
mod common;

use common::*;
use tether_core::{Broker, ConnectOptions};

#[tokio::test(start_paused = true)]
async fn oldest_events_are_evicted_by_count() {
    let broker = start(Broker::builder().ring_max_events(5));
    let s = sid("count");
    for i in 1..=12u32 {
        broker.publish(&s, &i).unwrap();
    }
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let seqs: Vec<u64> = stored(&frames).iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [8, 9, 10, 11, 12]);
    // Something was evicted before this client arrived: it is told so first.
    let first_data = frames.iter().find(|f| f.data.is_some()).unwrap();
    assert_eq!(first_data.signal().as_deref(), Some("tether.resync"));
    assert_eq!(first_data.json()["value"]["reason"], "evicted");
}

#[tokio::test(start_paused = true)]
async fn oldest_events_are_evicted_by_bytes() {
    let broker = start(Broker::builder().ring_max_bytes(1000));
    let s = sid("bytes");
    for i in 0..20u32 {
        broker.publish(&s, &format!("{i:0>100}")).unwrap();
    }
    let health = broker.health();
    assert!(health.ring_bytes <= 1000, "{health:?}");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let seqs: Vec<u64> = stored(&frames).iter().map(|(s, _)| *s).collect();
    assert!(seqs.len() < 20 && seqs.len() >= 5, "{seqs:?}");
    assert_eq!(*seqs.last().unwrap(), 20);
}

#[tokio::test(start_paused = true)]
async fn the_broker_wide_budget_holds() {
    let broker = start(Broker::builder().total_ring_bytes(5_000));
    for n in 0..10 {
        let s = sid(&format!("s{n}"));
        for i in 0..20u32 {
            broker.publish(&s, &format!("{i:0>100}")).unwrap();
        }
    }
    assert!(broker.health().ring_bytes <= 5_000, "{:?}", broker.health());
}

#[tokio::test(start_paused = true)]
async fn the_budget_evicts_only_what_it_must() {
    let broker = start(Broker::builder().total_ring_bytes(1_000));
    let s = sid("just-enough");
    for i in 0..30u32 {
        broker.publish(&s, &format!("{i:0>80}")).unwrap();
    }
    let bytes = broker.health().ring_bytes;
    // Frames are about 110 bytes: over budget by less than one frame is evicted, no more.
    assert!(bytes <= 1_000 && bytes > 850, "{bytes}");
}
