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
    let tab = |name: &str| ConnectOptions::new().client_id(name.to_owned());
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

/// A browser tab without a `clientId`: it comes back after being superseded with the last id
/// it saw, as EventSource does.
struct Tab {
    stream: Option<tether_core::EventStream>,
    last: Option<String>,
}

impl Tab {
    fn open(broker: &Broker, s: &tether_core::SessionId) -> Self {
        Self {
            stream: Some(broker.connect(s, ConnectOptions::default()).unwrap()),
            last: None,
        }
    }
    /// Reads what is there; true if the stream ended.
    async fn read(&mut self) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return true;
        };
        let (frames, ended) = drain_frames(stream, QUIET).await;
        if let Some(id) = frames.iter().rev().find_map(|f| f.id.clone()) {
            self.last = Some(id);
        }
        if ended {
            self.stream = None;
        }
        ended
    }
    fn reconnect(
        &mut self,
        broker: &Broker,
        s: &tether_core::SessionId,
    ) -> Result<(), ConnectError> {
        let opts = ConnectOptions::resume(self.last.clone().unwrap_or_default());
        self.stream = Some(broker.connect(s, opts)?);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn two_anonymous_tabs_do_not_ping_pong() {
    let broker = start(Broker::builder());
    let s = sid("anon-tabs");
    broker.publish(&s, &1).unwrap();
    let mut a = Tab::open(&broker, &s);
    assert!(!a.read().await);
    let mut b = Tab::open(&broker, &s);
    assert!(!b.read().await);
    let mut supersedes = 1;
    // Ten minutes of each tab coming back after its 30 s retry.
    for _ in 0..20 {
        tokio::time::advance(std::time::Duration::from_secs(30)).await;
        for tab in [&mut a, &mut b] {
            if tab.read().await && tab.stream.is_none() && tab.last.is_some() {
                match tab.reconnect(&broker, &s) {
                    Ok(()) => supersedes += 1,
                    Err(ConnectError::SupersededRecently) => tab.last = None,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    assert_eq!(supersedes, 1, "A was superseded once and told to stop");
    assert_eq!(broker.connection_count(), 1);
    assert!(b.stream.is_some(), "B keeps the session");
}

#[tokio::test(start_paused = true)]
async fn a_page_reload_still_takes_the_session() {
    let broker = start(Broker::builder());
    let s = sid("reload");
    broker.publish(&s, &1).unwrap();
    let mut a = Tab::open(&broker, &s);
    a.read().await;
    let mut b = Tab::open(&broker, &s);
    b.read().await;
    assert!(a.read().await, "A was superseded");
    // The user reloads A: a fresh page sends no Last-Event-ID and takes the session back.
    let mut a2 = Tab::open(&broker, &s);
    assert!(!a2.read().await);
    assert!(b.read().await, "B was superseded in turn");
    // B coming back by itself is told to stop now.
    assert_eq!(
        b.reconnect(&broker, &s).unwrap_err(),
        ConnectError::SupersededRecently
    );
    // Reloading B (no Last-Event-ID) still works.
    let mut b2 = Tab::open(&broker, &s);
    assert!(!b2.read().await);
}

fn named(name: &str, identity: Option<&str>) -> ConnectOptions {
    let opts = ConnectOptions::default().client_id(name);
    match identity {
        Some(sub) => opts.identity(sub),
        None => opts,
    }
}

#[tokio::test(start_paused = true)]
async fn the_superseded_instance_is_stopped_only_while_its_successor_is_open() {
    let broker = start(Broker::builder());
    let s = sid("successor");
    let a = broker.connect(&s, named("A", Some("alice"))).unwrap();
    let b = broker.connect(&s, named("B", Some("alice"))).unwrap();
    drop(a);
    assert_eq!(
        broker.connect(&s, named("A", Some("alice"))).unwrap_err(),
        ConnectError::SupersededRecently
    );
    // B closed: nobody holds the session, so A may have it.
    drop(b);
    let _a = broker.connect(&s, named("A", Some("alice"))).unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_superseded_answer_goes_only_to_the_same_identity() {
    let broker = start(Broker::builder());
    let s = sid("identity");
    let _a = broker.connect(&s, named("A", Some("alice"))).unwrap();
    let _b = broker.connect(&s, named("B", Some("alice"))).unwrap();
    // Someone else naming the same instance is not the superseded tab.
    let _c = broker.connect(&s, named("A", Some("mallory"))).unwrap();
    let s = sid("identity-anon");
    let _a = broker.connect(&s, named("A", Some("alice"))).unwrap();
    let _b = broker.connect(&s, named("B", Some("alice"))).unwrap();
    let _c = broker.connect(&s, named("A", None)).unwrap();
}

#[tokio::test(start_paused = true)]
async fn under_reject_the_same_instance_replaces_its_own_connection() {
    let broker = start(Broker::builder().connection_policy(ConnectionPolicy::Reject));
    let s = sid("blip");
    let mut first = broker.connect(&s, named("A", Some("alice"))).unwrap();
    let _ = drain_frames(&mut first, QUIET).await;
    // A network blip: the tab reconnects while its old connection still looks alive.
    let _second = broker.connect(&s, named("A", Some("alice"))).unwrap();
    let (frames, ended) = drain_frames(&mut first, QUIET).await;
    assert!(ended, "the old connection ends");
    assert!(
        frames
            .iter()
            .any(|f| f.signal().as_deref() == Some("tether.superseded"))
    );
    // Another instance, another identity, or no name: still 409.
    for opts in [
        named("B", Some("alice")),
        named("A", Some("bob")),
        named("A", None),
        ConnectOptions::default().identity("alice"),
    ] {
        assert_eq!(
            broker.connect(&s, opts.clone()).unwrap_err(),
            ConnectError::Conflict,
            "{opts:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn sessions_created_by_connects_are_capped_per_identity() {
    let broker = start(
        Broker::builder()
            .max_sessions_per_subject(2)
            .session_ttl(std::time::Duration::from_secs(60)),
    );
    let alice = || ConnectOptions::default().identity("alice");
    let a1 = broker.connect(&sid("a1"), alice()).unwrap();
    let _a2 = broker.connect(&sid("a2"), alice()).unwrap();
    assert_eq!(
        broker.connect(&sid("a3"), alice()).unwrap_err(),
        ConnectError::TooManySessionsForSubject { max: 2 }
    );
    // Existing sessions, other identities, anonymous connects and publishes are not capped.
    drop(a1);
    let _a1 = broker.connect(&sid("a1"), alice()).unwrap();
    let _b = broker
        .connect(&sid("b1"), ConnectOptions::default().identity("bob"))
        .unwrap();
    let _anon = broker
        .connect(&sid("n1"), ConnectOptions::default())
        .unwrap();
    broker.publish(&sid("p1"), &1).unwrap();
    let _p1 = broker.connect(&sid("p1"), alice()).unwrap();
    // A removed or expired session frees its place.
    assert!(broker.remove_session(&sid("a2")));
    let _a3 = broker.connect(&sid("a3"), alice()).unwrap();
}
