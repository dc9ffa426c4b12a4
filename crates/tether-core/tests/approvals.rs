//! Approvals: announced, decided exactly once, timed out by the broker-wide timer,
//! re-announced after a resync.
mod common;

use std::time::Duration;

use common::*;
use tether_core::{
    ApprovalError, ApprovalRequest, ApprovalStatus, Broker, ConnectOptions, DecideError, Decision,
};

fn request(id: &str, secs: u64) -> ApprovalRequest {
    ApprovalRequest::new(serde_json::json!({"tool": "delete_account"}))
        .id(id)
        .title("Delete account?")
        .timeout(Duration::from_secs(secs))
}

#[tokio::test(start_paused = true)]
async fn approve_resolves_the_waiting_side_once() {
    let broker = start(Broker::builder());
    let s = sid("ap");
    let handle = broker.request_approval(&s, request("a1", 300)).unwrap();
    assert_eq!(handle.status(), ApprovalStatus::Pending);
    let waiter = tokio::spawn(handle.into_future_outcome());
    broker.decide(&s, "a1", Decision::approve()).unwrap();
    assert_eq!(
        waiter.await.unwrap(),
        ApprovalStatus::Approved { reason: None }
    );
    assert_eq!(
        broker
            .decide(&s, "a1", Decision::reject("late"))
            .unwrap_err(),
        DecideError::AlreadyDecided(ApprovalStatus::Approved { reason: None })
    );
    assert_eq!(
        broker.decide(&s, "nope", Decision::approve()).unwrap_err(),
        DecideError::Unknown
    );
}

trait IntoOutcome {
    fn into_future_outcome(
        self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ApprovalStatus> + Send>>;
}
impl IntoOutcome for tether_core::ApprovalHandle {
    fn into_future_outcome(
        self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ApprovalStatus> + Send>> {
        Box::pin(std::future::IntoFuture::into_future(self))
    }
}

#[tokio::test(start_paused = true)]
async fn request_and_outcome_are_published_into_the_stream() {
    let broker = start(Broker::builder());
    let s = sid("announce");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _handle = broker.request_approval(&s, request("a2", 300)).unwrap();
    broker
        .decide(&s, "a2", Decision::reject("too risky"))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let events = stored(&frames);
    assert_eq!(events.len(), 2);
    let (req, res) = (&events[0].1, &events[1].1);
    assert_eq!(req["name"], "tether.approval.requested");
    assert_eq!(req["value"]["id"], "a2");
    assert_eq!(req["value"]["title"], "Delete account?");
    assert!(req["value"]["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(res["name"], "tether.approval.resolved");
    assert_eq!(res["value"]["outcome"], "rejected");
    assert_eq!(res["value"]["reason"], "too risky");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_times_the_request_out() {
    let broker = start(Broker::builder());
    let s = sid("timeout");
    let handle = broker.request_approval(&s, request("a3", 10)).unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(handle.await, ApprovalStatus::TimedOut);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "{took:?}"
    );
    assert_eq!(
        broker.decide(&s, "a3", Decision::approve()).unwrap_err(),
        DecideError::Expired
    );
    assert_eq!(
        broker.approval(&s, "a3").unwrap().status,
        ApprovalStatus::TimedOut
    );
}

#[tokio::test(start_paused = true)]
async fn default_timeout_is_300_seconds_and_many_deadlines_share_one_timer() {
    let broker = start(Broker::builder().max_pending_approvals(100));
    let s = sid("many");
    let handles: Vec<_> = (0..100)
        .map(|i| {
            broker
                .request_approval(&s, ApprovalRequest::new(serde_json::json!(i)))
                .unwrap()
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(299)).await;
    assert!(
        handles
            .iter()
            .all(|h| h.status() == ApprovalStatus::Pending)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        handles
            .iter()
            .all(|h| h.status() == ApprovalStatus::TimedOut)
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_resolves_as_cancelled() {
    let broker = start(Broker::builder());
    let s = sid("cancel");
    let handle = broker.request_approval(&s, request("a4", 300)).unwrap();
    broker.cancel_approval(&s, "a4").unwrap();
    assert_eq!(handle.await, ApprovalStatus::Cancelled);
    assert_eq!(
        broker.decide(&s, "a4", Decision::approve()).unwrap_err(),
        DecideError::AlreadyDecided(ApprovalStatus::Cancelled)
    );
}

#[tokio::test(start_paused = true)]
async fn duplicate_and_invalid_ids_are_refused() {
    let broker = start(Broker::builder());
    let s = sid("dup");
    let _h = broker.request_approval(&s, request("a5", 300)).unwrap();
    assert_eq!(
        broker.request_approval(&s, request("a5", 300)).unwrap_err(),
        ApprovalError::Duplicate
    );
    assert!(matches!(
        broker.request_approval(&s, request("bad id", 300)),
        Err(ApprovalError::InvalidId(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn pending_requests_are_announced_again_after_a_resync() {
    let broker = start(Broker::builder().ring_max_events(3));
    let s = sid("reannounce");
    let first = broker.publish(&s, &0).unwrap();
    let _h = broker.request_approval(&s, request("a6", 300)).unwrap();
    for i in 1..10u32 {
        broker.publish(&s, &i).unwrap();
    }
    // The request itself was evicted from the ring; the resync re-announces it.
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(first.to_string()))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let signals: Vec<_> = frames.iter().filter_map(|f| f.signal()).collect();
    assert_eq!(signals, ["tether.resync", "tether.approval.requested"]);
}

#[tokio::test(start_paused = true)]
async fn long_poll_returns_on_decision_or_after_the_wait() {
    let broker = start(Broker::builder());
    let s = sid("poll");
    let _h = broker.request_approval(&s, request("a7", 300)).unwrap();
    let info = broker
        .wait_approval(&s, "a7", Duration::from_secs(25))
        .await
        .unwrap();
    assert_eq!(info.status, ApprovalStatus::Pending);
    let b = broker.clone();
    let s2 = s.clone();
    let decider = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        b.decide(&s2, "a7", Decision::approve()).unwrap();
    });
    let started = tokio::time::Instant::now();
    let info = broker
        .wait_approval(&s, "a7", Duration::from_secs(25))
        .await
        .unwrap();
    assert_eq!(info.status.as_str(), "approved");
    assert!(started.elapsed() < Duration::from_secs(6));
    decider.await.unwrap();
    assert!(
        broker
            .wait_approval(&s, "zzz", Duration::from_secs(1))
            .await
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn silent_requests_are_not_announced_after_a_resync() {
    let broker = start(Broker::builder().ring_max_events(3));
    let s = sid("silent");
    let first = broker.publish(&s, &0).unwrap();
    let _h = broker
        .request_approval(&s, request("quiet", 300).silent())
        .unwrap();
    for i in 1..10u32 {
        broker.publish(&s, &i).unwrap();
    }
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(first.to_string()))
        .unwrap();
    broker.decide(&s, "quiet", Decision::approve()).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let signals: Vec<_> = frames.iter().filter_map(|f| f.signal()).collect();
    // Announced, it would wait for an outcome that is never published.
    assert_eq!(signals, ["tether.resync"], "{frames:?}");
}

#[tokio::test(start_paused = true)]
async fn a_request_still_in_the_ring_is_announced_once() {
    let broker = start(Broker::builder().ring_max_events(4));
    let s = sid("once");
    let ids: Vec<_> = (0..4u32).map(|i| broker.publish(&s, &i).unwrap()).collect();
    let _h = broker.request_approval(&s, request("a8", 300)).unwrap();
    // seq 1 is evicted: a client that read nothing resyncs and replays 2..=5, which holds the
    // request.
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let signals: Vec<_> = frames.iter().filter_map(|f| f.signal()).collect();
    assert_eq!(
        signals,
        ["tether.resync", "tether.approval.requested"],
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .find(|f| f.signal().as_deref() == Some("tether.approval.requested"))
            .unwrap()
            .id
            .is_some(),
        "the one announcement is the stored event"
    );
    drop(stream);
    // An exact resume after the request, with the prelude: announced in the prelude instead.
    let mut stream = broker
        .connect(
            &s,
            ConnectOptions::resume(ids[3].to_string()).with_prelude(),
        )
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let n = frames
        .iter()
        .filter(|f| f.signal().as_deref() == Some("tether.approval.requested"))
        .count();
    assert_eq!(n, 1, "{frames:?}");
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_title_has_no_title_field() {
    let broker = start(Broker::builder());
    let s = sid("untitled");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _h = broker
        .request_approval(&s, ApprovalRequest::new(serde_json::json!({})).id("u1"))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let req = &stored(&frames)[0].1;
    assert_eq!(req["name"], "tether.approval.requested");
    assert!(req["value"].get("title").is_none(), "{req}");
}

#[tokio::test(start_paused = true)]
async fn a_decision_after_the_deadline_is_expired_even_before_the_timer_fires() {
    // No driver: only the decision itself can notice the deadline.
    let (broker, _driver) = Broker::builder().build().expect("valid config");
    let s = sid("late");
    let handle = broker.request_approval(&s, request("a9", 10)).unwrap();
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(handle.status(), ApprovalStatus::Pending);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        broker.decide(&s, "a9", Decision::approve()).unwrap_err(),
        DecideError::Expired
    );
    assert_eq!(handle.await, ApprovalStatus::TimedOut);
    assert_eq!(
        broker.decide(&s, "a9", Decision::approve()).unwrap_err(),
        DecideError::Expired
    );
}

#[tokio::test(start_paused = true)]
async fn expires_at_is_rfc3339_with_at_most_milliseconds() {
    let broker = start(Broker::builder());
    let s = sid("expires");
    for i in 0..20 {
        let h = broker
            .request_approval(&s, request(&format!("e{i}"), 300))
            .unwrap();
        let at = broker.approval(&s, h.id()).unwrap().expires_at;
        let secs = at.strip_suffix('Z').expect("UTC");
        let frac = secs.split_once('.').map_or("", |(_, f)| f);
        assert!(frac.len() <= 3, "{at}");
        tokio::time::advance(Duration::from_millis(7)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_announced_in_an_earlier_epoch_is_announced_again() {
    let broker = start(Broker::builder());
    let s = sid("old-epoch");
    let first = broker.publish(&s, &0).unwrap();
    for i in 1..5u32 {
        broker.publish(&s, &i).unwrap();
    }
    let _h = broker.request_approval(&s, request("a10", 300)).unwrap();
    // The log starts over in a new epoch: the stored announcement (seq 6) is gone with it.
    let id = tether_core::EventId {
        epoch: tether_core::Epoch::from_u64(first.epoch.get() ^ 1),
        seq: 1,
    };
    broker
        .append_at(
            &s,
            id,
            tether_core::frame::encode_event(Some(id), None, "1"),
        )
        .unwrap();
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(first.to_string()))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let signals: Vec<_> = frames.iter().filter_map(|f| f.signal()).collect();
    assert_eq!(
        signals,
        ["tether.resync", "tether.approval.requested"],
        "{frames:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn expires_at_keeps_the_milliseconds_of_the_deadline() {
    use time::format_description::well_known::Rfc3339;
    let broker = start(Broker::builder());
    let s = sid("expires-ms");
    let fmt = |t: time::OffsetDateTime| {
        // Truncated to milliseconds, as the broker writes it.
        let t = t
            .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
            .unwrap();
        t.format(&Rfc3339).unwrap()
    };
    let mut seen_fraction = false;
    for i in 0..5 {
        let before = time::OffsetDateTime::now_utc() + Duration::from_secs(300);
        let h = broker
            .request_approval(&s, request(&format!("ms{i}"), 300))
            .unwrap();
        let after = time::OffsetDateTime::now_utc() + Duration::from_secs(300);
        let at = broker.approval(&s, h.id()).unwrap().expires_at;
        // Between the two readings of the clock, to the millisecond (same format, so the
        // strings order like the instants when their fractions have equal length).
        let (lo, hi) = (fmt(before), fmt(after));
        let key = |s: &str| {
            let (secs, frac) = s
                .trim_end_matches('Z')
                .split_once('.')
                .unwrap_or((s.trim_end_matches('Z'), ""));
            (secs.to_owned(), format!("{frac:0<3}"))
        };
        assert!(
            key(&lo) <= key(&at) && key(&at) <= key(&hi),
            "{lo} <= {at} <= {hi}"
        );
        seen_fraction |= at.contains('.');
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    assert!(seen_fraction, "milliseconds are kept");
}

#[tokio::test(start_paused = true)]
async fn timeouts_longer_than_a_year_are_capped_at_a_year() {
    let broker = start(Broker::builder());
    let s = sid("capped");
    let year = Duration::from_secs(365 * 24 * 60 * 60);
    let before = time::OffsetDateTime::now_utc() + year;
    let h = broker
        .request_approval(&s, request("long", 10 * 365 * 24 * 60 * 60))
        .unwrap();
    let after = time::OffsetDateTime::now_utc() + year;
    let at = broker.approval(&s, h.id()).unwrap().expires_at;
    let day = |t: time::OffsetDateTime| t.date().to_string();
    assert!(
        at.starts_with(&day(before)) || at.starts_with(&day(after)),
        "{at} is a year from now"
    );
    assert_eq!(h.status(), ApprovalStatus::Pending);
}

#[tokio::test(start_paused = true)]
async fn exactly_the_configured_number_of_decisions_is_remembered() {
    let broker = start(Broker::builder().decided_approvals_kept(2));
    let s = sid("kept");
    for id in ["k1", "k2"] {
        let _h = broker.request_approval(&s, request(id, 300)).unwrap();
        broker.decide(&s, id, Decision::approve()).unwrap();
    }
    for id in ["k1", "k2"] {
        assert_eq!(
            broker.decide(&s, id, Decision::approve()).unwrap_err(),
            DecideError::AlreadyDecided(ApprovalStatus::Approved { reason: None }),
            "{id}"
        );
    }
    let _h = broker.request_approval(&s, request("k3", 300)).unwrap();
    broker.decide(&s, "k3", Decision::approve()).unwrap();
    assert_eq!(
        broker.decide(&s, "k1", Decision::approve()).unwrap_err(),
        DecideError::Unknown,
        "the oldest is forgotten"
    );
    assert!(broker.approval(&s, "k2").is_some());
}

/// A tracker that stores no announcement and announces nothing silent.
struct Unstored;
impl tether_core::SessionTracker for Unstored {
    fn on_publish(&mut self, _: Option<&str>, _: &str) -> Result<(), tether_core::Refusal> {
        Ok(())
    }
    fn prelude_includes_silent(&self) -> bool {
        false
    }
    fn stored_signal(&self, _: &tether_core::Signal<'_>, _: &mut Vec<String>) {}
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_announcement_was_not_stored_is_in_every_prelude() {
    let broker = start(Broker::builder());
    let s = sid("unstored");
    broker.set_tracker(&s, Box::new(Unstored)).unwrap();
    let _h = broker.request_approval(&s, request("u2", 300)).unwrap();
    let mut stream = broker
        .connect(&s, ConnectOptions::resume("msg_17"))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let signals: Vec<_> = frames.iter().filter_map(|f| f.signal()).collect();
    assert_eq!(
        signals,
        ["tether.resync", "tether.approval.requested"],
        "{frames:?}"
    );
}
