//! The runbook's metric names, asserted through a local debugging recorder.
mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tether_core::{ApprovalRequest, Broker, ConnectOptions, Decision};

/// Totals since the test began: the debugging recorder resets on every snapshot, so each
/// snapshot's deltas are appended and summed.
type Labels = Vec<(String, String)>;

struct Metrics(Vec<(String, Labels, DebugValue)>);

impl Metrics {
    fn take(s: &Snapshotter) -> Self {
        let mut m = Self(Vec::new());
        m.refresh(s);
        m
    }
    fn refresh(&mut self, s: &Snapshotter) {
        self.0
            .extend(s.snapshot().into_vec().into_iter().map(|(k, _, _, v)| {
                let key = k.key();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (key.name().to_owned(), labels, v)
            }));
    }
    fn counter(&self, name: &str, label: Option<(&str, &str)>) -> u64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name && label.is_none_or(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| {
                if let DebugValue::Counter(c) = v {
                    *c
                } else {
                    0
                }
            })
            .sum()
    }
    fn gauge(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, _, v)| {
                if let DebugValue::Gauge(g) = v {
                    g.into_inner()
                } else {
                    0.0
                }
            })
            .sum()
    }
    fn histogram_count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, _, v)| {
                if let DebugValue::Histogram(h) = v {
                    h.len()
                } else {
                    0
                }
            })
            .sum()
    }
}

#[tokio::test(start_paused = true)]
async fn connection_and_event_metrics_follow_known_traffic() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let broker = start(Broker::builder().ring_max_events(2));
    let s = sid("m");
    let first = broker.publish(&s, &1).unwrap();
    broker.publish(&s, &2).unwrap();
    let mut a = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (frames, _) = drain_frames(&mut a, QUIET).await;
    assert_eq!(stored(&frames).len(), 2);
    let mut m = Metrics::take(&snap);
    assert_eq!(m.gauge("sse_active_connections"), 1.0);
    assert_eq!(m.gauge("sse_sessions_active"), 1.0);
    assert_eq!(m.counter("sse_events_published_total", None), 2);
    assert_eq!(m.counter("sse_events_delivered_total", None), 2);

    // Superseded by a reconnect carrying an evicted Last-Event-ID.
    broker.publish(&s, &3).unwrap();
    broker.publish(&s, &4).unwrap();
    let mut b = broker
        .connect(&s, ConnectOptions::resume(first.to_string()))
        .unwrap();
    let _ = drain_frames(&mut a, QUIET).await;
    drop(a);
    let _ = drain_frames(&mut b, Duration::from_secs(16)).await; // includes one heartbeat
    drop(b);
    m.refresh(&snap);
    assert_eq!(m.counter("sse_reconnects_total", None), 1);
    assert_eq!(
        m.counter("sse_resyncs_total", Some(("reason", "evicted"))),
        1
    );
    assert_eq!(
        m.counter("sse_disconnects_total", Some(("reason", "superseded"))),
        1
    );
    assert_eq!(
        m.counter("sse_disconnects_total", Some(("reason", "client_closed"))),
        1
    );
    assert_eq!(m.histogram_count("sse_connection_duration_seconds"), 2);
    assert_eq!(m.gauge("sse_active_connections"), 0.0);
    assert!(m.counter("sse_heartbeats_total", None) >= 1);
    assert_eq!(m.counter("sse_events_evicted_total", None), 2);
    assert_eq!(
        m.counter("sse_events_evicted_unread_total", None),
        0,
        "a and b read all"
    );
}

#[tokio::test(start_paused = true)]
async fn approval_metrics() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let broker = start(Broker::builder());
    let s = sid("am");
    let req = |id: &str| {
        ApprovalRequest::new(serde_json::json!({}))
            .id(id)
            .timeout(Duration::from_secs(10))
    };
    let _a = broker.request_approval(&s, req("x")).unwrap();
    let b = broker.request_approval(&s, req("y")).unwrap();
    broker.decide(&s, "x", Decision::approve()).unwrap();
    b.await;
    let m = Metrics::take(&snap);
    assert_eq!(m.counter("approval_requests_total", None), 2);
    assert_eq!(
        m.counter("approval_decisions_total", Some(("outcome", "approved"))),
        1
    );
    assert_eq!(
        m.counter("approval_decisions_total", Some(("outcome", "timed_out"))),
        1
    );
    assert_eq!(m.histogram_count("approval_wait_seconds"), 2);
}

#[tokio::test(start_paused = true)]
async fn unread_evictions_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let broker = start(Broker::builder().ring_max_events(3));
    let s = sid("unread");
    let mut c = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = c.next().await;
    for i in 0..10u32 {
        broker.publish(&s, &i).unwrap();
    }
    let m = Metrics::take(&snap);
    assert_eq!(m.counter("sse_events_evicted_unread_total", None), 7);
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_counts_as_an_error_disconnect() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let broker = start(Broker::builder());
    let mut stream = broker
        .connect(&sid("err"), ConnectOptions::default())
        .unwrap();
    let _ = stream.next().await;
    stream.fail(&"disk on fire");
    drop(stream);
    let m = Metrics::take(&snap);
    assert_eq!(
        m.counter("sse_disconnects_total", Some(("reason", "error"))),
        1
    );
    assert_eq!(
        m.counter("sse_disconnects_total", Some(("reason", "client_closed"))),
        0
    );
    assert_eq!(broker.connection_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn evictions_by_the_broker_wide_budget_are_counted_when_other_sessions_pay() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let broker = start(Broker::builder().total_ring_bytes(1_000));
    let a = sid("budget-a");
    let ids: Vec<_> = (0..9u32)
        .map(|i| broker.publish(&a, &format!("{i:0>80}")).unwrap())
        .collect();
    let (a_first, a_last) = (ids[0], ids[8]);
    assert_eq!(
        Metrics::take(&snap).counter("sse_events_evicted_total", Some(("cause", "budget"))),
        0,
        "within the budget"
    );
    // One large event on another session: it cannot trim its own single event, so the idle
    // session pays with its history.
    broker.publish(&sid("budget-b"), &"y".repeat(300)).unwrap();
    assert!(broker.health().ring_bytes <= 1_000, "{:?}", broker.health());
    let m = Metrics::take(&snap);
    let evicted = m.counter("sse_events_evicted_total", Some(("cause", "budget")));
    // Nobody had read them.
    assert_eq!(m.counter("sse_events_evicted_unread_total", None), evicted);
    assert_eq!(evicted, 9, "each budget eviction is counted once");
    // Nobody was connected to the idle session: it lost every event, so its client comes
    // back to a resync that counts them, never to a silent gap.
    let mut stream = broker
        .connect(&a, ConnectOptions::resume(a_first.to_string()))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let resync = frames
        .iter()
        .find(|f| f.signal().as_deref() == Some("tether.resync"))
        .expect("a resync for what the budget took")
        .json()
        .unwrap();
    assert_eq!(resync["value"]["reason"], "evicted", "{resync}");
    assert_eq!(resync["value"]["skipped"], 8, "{resync}");
    assert!(stored(&frames).is_empty(), "{frames:?}");
    // Its numbering goes on: no id is reused.
    let next = broker.publish(&a, &"after").unwrap();
    assert_eq!(next.seq, a_last.seq + 1);
}

/// Every series and known label value exists before any traffic, so a fresh node's first
/// scrape already has them at 0.
#[tokio::test(start_paused = true)]
async fn every_series_is_registered_at_build() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let _broker = start(Broker::builder());
    let seen: Vec<(String, Labels)> = snap
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, ..)| {
            let key = k.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels)
        })
        .collect();
    for (name, label) in tether_core::metrics::registered_series() {
        assert!(
            seen.iter().any(|(n, l)| n == name
                && label.is_none_or(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))),
            "{name} {label:?} is not registered"
        );
    }
}

/// A broker built before the recorder writes nowhere until it rebinds its handles.
#[tokio::test(start_paused = true)]
async fn rebind_metrics_moves_the_handles_to_the_recorder_installed_now() {
    let broker = start(Broker::builder());
    let s = sid("late");
    broker.publish(&s, &1).unwrap();
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    broker.publish(&s, &2).unwrap();
    assert_eq!(
        Metrics::take(&snap).counter("sse_events_published_total", None),
        0,
        "handles were bound at build"
    );
    broker.rebind_metrics();
    broker.publish(&s, &3).unwrap();
    let m = Metrics::take(&snap);
    assert_eq!(m.counter("sse_events_published_total", None), 1);
    assert_eq!(m.gauge("sse_sessions_active"), 1.0);
}
