//! One memory budget covers the rings, the trackers' state and the approvals' payloads: over
//! it, idle sessions lose what they keep first; only state nobody can give back refuses new
//! sessions and approvals.
mod common;

use common::*;
use serde_json::json;
use tether_core::{
    ApprovalError, ApprovalRequest, Broker, ConnectOptions, PublishError, Refusal, SessionTracker,
};

/// A tracker that keeps every event's data, as a snapshot would, and says how much it holds.
#[derive(Default)]
struct Keeper {
    kept: usize,
}

impl SessionTracker for Keeper {
    fn on_publish(&mut self, _: Option<&str>, data: &str) -> Result<(), Refusal> {
        self.kept += data.len();
        Ok(())
    }
    fn state_bytes(&self) -> usize {
        self.kept
    }
}

fn payload(bytes: usize) -> serde_json::Value {
    json!({ "diff": "x".repeat(bytes) })
}

#[tokio::test(start_paused = true)]
async fn approval_payloads_count_against_the_budget_and_idle_history_pays_for_them() {
    let broker = start(Broker::builder().total_ring_bytes(10_000));
    let idle = sid("idle-history");
    for i in 0..40u32 {
        broker.publish(&idle, &format!("{i:0>100}")).unwrap();
    }
    let before = broker.health();
    assert!(before.ring_bytes > 4_000, "{before:?}");
    assert_eq!(before.state_bytes, 0);

    let asking = sid("asking");
    let _pending = broker
        .request_approval(&asking, ApprovalRequest::new(payload(6_000)).silent())
        .unwrap();
    // The payload is counted as its JSON bytes, once.
    let after = broker.health();
    assert!(
        (6_000..6_100).contains(&after.state_bytes),
        "the payload is counted: {after:?}"
    );
    assert!(
        after.ring_bytes + after.state_bytes <= 10_000,
        "rings and approvals fit the budget together: {after:?}"
    );
    // The idle session paid, with its whole history: its client is told.
    let mut stream = broker.connect(&idle, ConnectOptions::default()).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let first = frames.iter().find(|f| f.data.is_some()).expect("frames");
    assert_eq!(
        first.signal().as_deref(),
        Some("tether.resync"),
        "{frames:?}"
    );
    assert!(stored(&frames).len() < 40, "{frames:?}");
}

#[tokio::test(start_paused = true)]
async fn tracker_state_counts_against_the_budget_and_an_idle_session_gives_it_back() {
    let broker = start(Broker::builder().total_ring_bytes(20_000));
    let tracked = sid("tracked-idle");
    broker
        .set_tracker(&tracked, Box::new(Keeper::default()))
        .unwrap();
    for i in 0..30u32 {
        broker.publish(&tracked, &format!("{i:0>100}")).unwrap();
    }
    let held = broker.health();
    assert!(
        held.state_bytes >= 30 * 100,
        "the tracker's state is counted: {held:?}"
    );
    // Another session publishes on: the tracked one, idle, loses its events and its state.
    let busy = sid("busy");
    for i in 0..200u32 {
        broker.publish(&busy, &format!("{i:0>100}")).unwrap();
    }
    let after = broker.health();
    assert_eq!(
        after.state_bytes, 0,
        "the idle tracker was freed: {after:?}"
    );
    assert!(after.ring_bytes <= 20_000, "{after:?}");
    let mut stream = broker
        .connect(
            &tracked,
            ConnectOptions::resume(format!("{}", first_id(&broker, &tracked))),
        )
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let resync = frames
        .iter()
        .find(|f| f.signal().as_deref() == Some("tether.resync"))
        .expect("a client of the idle session is told what it lost")
        .json()
        .unwrap();
    assert_eq!(resync["value"]["reason"], "evicted", "{resync}");
}

/// The id of the session's first event (its epoch, sequence 1).
fn first_id(broker: &Broker, session: &tether_core::SessionId) -> tether_core::EventId {
    let head = broker.head(session).expect("the session has events");
    tether_core::EventId { seq: 1, ..head }
}

#[tokio::test(start_paused = true)]
async fn state_nobody_can_give_back_refuses_new_sessions_and_approvals_but_not_sessions_in_use() {
    let broker = start(
        Broker::builder()
            .total_ring_bytes(8_000)
            .max_pending_approvals(8),
    );
    // A session in use: a client connected, approvals waiting on a human.
    let in_use = sid("in-use");
    let _client = broker.connect(&in_use, ConnectOptions::default()).unwrap();
    let mut handles = Vec::new();
    for n in 0..2 {
        handles.push(
            broker
                .request_approval(
                    &in_use,
                    ApprovalRequest::new(payload(3_000))
                        .id(format!("a{n}"))
                        .silent(),
                )
                .unwrap(),
        );
    }
    handles.push(
        broker
            .request_approval(
                &in_use,
                ApprovalRequest::new(payload(3_000)).id("a2").silent(),
            )
            .unwrap(),
    );
    assert!(broker.health().state_bytes > 8_000, "{:?}", broker.health());

    // Nothing idle can pay: a new session and a new approval are refused, and counted.
    let newcomer = sid("newcomer");
    assert!(
        matches!(
            broker.publish(&newcomer, &"hello"),
            Err(PublishError::MemoryBudget { budget: 8_000 })
        ),
        "a new session waits for room"
    );
    assert!(matches!(
        broker.request_approval(&in_use, ApprovalRequest::new(payload(10)).silent()),
        Err(ApprovalError::Publish(PublishError::MemoryBudget { .. }))
    ));
    let report = broker.limits_report();
    assert_eq!(report["memory_budget_bytes"]["refused"], 2, "{report}");
    // The session in use still publishes, so its run can finish and free what it holds.
    broker.publish(&in_use, &"still going").unwrap();

    // Once decided, the session's state is idle history like any other: it pays, and the
    // newcomer gets in.
    for n in 0..3 {
        broker
            .decide(&in_use, &format!("a{n}"), tether_core::Decision::approve())
            .unwrap();
    }
    drop(_client);
    tokio::task::yield_now().await;
    broker.publish(&newcomer, &"hello").unwrap();
    let health = broker.health();
    assert!(
        health.ring_bytes + health.state_bytes <= 8_000,
        "{health:?}"
    );
}
