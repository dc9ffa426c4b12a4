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
    assert_eq!(first_data.json().unwrap()["value"]["reason"], "evicted");
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

/// Over the budget, the session idle longest loses its history first, not the one being
/// published to (whose reader would reconnect into a resync).
#[tokio::test(start_paused = true)]
async fn over_the_budget_the_idle_session_pays_before_the_active_one() {
    let broker = start(Broker::builder().total_ring_bytes(3_000));
    let dormant = sid("dormant");
    let active = sid("active");
    for i in 0..10u32 {
        broker.publish(&dormant, &format!("{i:0>100}")).unwrap();
    }
    // The active session publishes on and on; the dormant one never again.
    for i in 0..40u32 {
        broker.publish(&active, &format!("{i:0>100}")).unwrap();
    }
    assert!(broker.health().ring_bytes <= 3_000, "{:?}", broker.health());
    let quiet = std::time::Duration::from_millis(50);
    let mut dormant_stream = broker.connect(&dormant, ConnectOptions::default()).unwrap();
    let (dormant_frames, _) = drain_frames(&mut dormant_stream, quiet).await;
    let mut active_stream = broker.connect(&active, ConnectOptions::default()).unwrap();
    let (active_frames, _) = drain_frames(&mut active_stream, quiet).await;
    let dormant_kept = stored(&dormant_frames).len();
    let active_kept = stored(&active_frames).len();
    assert!(
        dormant_kept <= 1,
        "the dormant session kept {dormant_kept} events"
    );
    assert!(
        active_kept >= 20,
        "the active session kept only {active_kept} events"
    );
}
