//! One connection per session: Replace (the old stream ends with `superseded`) or Reject.
mod common;

use common::*;
use tether_core::{Broker, ConnectError, ConnectOptions, ConnectionPolicy};

#[tokio::test(start_paused = true)]
async fn replace_ends_the_old_stream_after_a_superseded_signal() {
    let broker = start(Broker::builder());
    let s = sid("replace");
    let mut old = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = drain_frames(&mut old, QUIET).await;
    let mut new = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (frames, ended) = drain_frames(&mut old, QUIET).await;
    assert!(ended, "the old stream ends");
    let last_data = frames.iter().rev().find(|f| f.data.is_some()).unwrap();
    assert_eq!(last_data.signal().as_deref(), Some("tether.superseded"));
    let retry = frames.iter().rev().find_map(|f| f.retry).unwrap();
    assert_eq!(retry, 30_000, "a superseded client waits the longest");
    // The new one is live.
    broker.publish(&s, &1).unwrap();
    let (frames, ended) = drain_frames(&mut new, QUIET).await;
    assert!(!ended);
    assert_eq!(stored(&frames).len(), 1);
    assert_eq!(broker.connection_count(), 1);
    drop(old);
    assert_eq!(
        broker.connection_count(),
        1,
        "dropping the old stream frees nothing of the new"
    );
}

#[tokio::test(start_paused = true)]
async fn reject_refuses_the_newer_connection() {
    let broker = start(Broker::builder().connection_policy(ConnectionPolicy::Reject));
    let s = sid("reject");
    let first = broker.connect(&s, ConnectOptions::default()).unwrap();
    assert_eq!(
        broker.connect(&s, ConnectOptions::default()).unwrap_err(),
        ConnectError::Conflict
    );
    drop(first);
    let _again = broker.connect(&s, ConnectOptions::default()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn two_named_tabs_do_not_ping_pong() {
    let broker = start(Broker::builder());
    let s = sid("tabs");
    let tab = |name: &str| ConnectOptions {
        client_id: Some(name.to_owned()),
        ..ConnectOptions::default()
    };
    let mut a = broker.connect(&s, tab("A")).unwrap();
    let _b = broker.connect(&s, tab("B")).unwrap();
    let (_, ended) = drain_frames(&mut a, QUIET).await;
    assert!(ended);
    drop(a);
    // A comes back within the grace period: told to stop instead of taking the session back.
    assert_eq!(
        broker.connect(&s, tab("A")).unwrap_err(),
        ConnectError::SupersededRecently
    );
    // The same instance reconnecting (e.g. a half-dead socket) is not refused.
    let _b2 = broker.connect(&s, tab("B")).unwrap();
    // After the grace period A may connect again.
    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    let _a2 = broker.connect(&s, tab("A")).unwrap();
}
