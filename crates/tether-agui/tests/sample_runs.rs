//! The sample agent runs (`tether_agui::sample`): the shape of an agent's stream, fresh ids per
//! run, a restart that recovers validly, and every event accepted by the run tracker and by a
//! tracked broker whose stored stream and preludes pass the official client's checks.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tether_agui::sample::AgentRuns;
use tether_agui::{AguiTrackerFactory, RunTracker, TrackerLimits};
use tether_core::{Broker, ConnectOptions, Event, EventStream, SessionId, SessionTracker};

const TS: u64 = 1_764_000_000_000_000;

/// One whole run, burst by burst.
fn one_run(agent: &mut AgentRuns, thread: &str) -> Vec<Vec<String>> {
    let mut bursts = Vec::new();
    loop {
        let mut burst = Vec::new();
        agent.next_burst(thread, TS + bursts.len() as u64, &mut burst);
        let last = burst
            .last()
            .is_some_and(|e| e.starts_with(r#"{"type":"RUN_FINISHED""#));
        bursts.push(burst);
        if last {
            return bursts;
        }
    }
}

fn ty(e: &Value) -> &str {
    e["type"].as_str().expect("a string type")
}

#[test]
fn a_run_has_the_shape_of_an_agent_stream() {
    for seed in 0..50 {
        let mut agent = AgentRuns::new(seed);
        let bursts = one_run(&mut agent, "thread-1");
        let events: Vec<Value> = bursts
            .iter()
            .flatten()
            .map(|e| serde_json::from_str(e).expect("JSON"))
            .collect();
        let types: Vec<&str> = events.iter().map(ty).collect();
        let deltas = types
            .iter()
            .filter(|t| **t == "TEXT_MESSAGE_CONTENT")
            .count();
        let args = types.iter().filter(|t| **t == "TOOL_CALL_ARGS").count();
        assert!((20..=80).contains(&deltas), "{deltas}");
        assert!((2..=5).contains(&args), "{args}");
        assert_eq!(types[..2], ["RUN_STARTED", "TEXT_MESSAGE_START"]);
        let tail = [
            &["TEXT_MESSAGE_END", "TOOL_CALL_START"][..],
            &vec!["TOOL_CALL_ARGS"; args],
            &["TOOL_CALL_END", "RUN_FINISHED"],
        ]
        .concat();
        assert_eq!(types[2 + deltas..], tail[..]);
        for e in &events[2..2 + deltas] {
            let len = e["delta"].as_str().expect("a delta").len();
            assert!((5..=40).contains(&len), "{e}");
        }
        // Deltas come in bursts of 1 to 8 (the arguments in one), the rest alone.
        for burst in &bursts {
            assert!((1..=8).contains(&burst.len()), "{}", burst.len());
        }
        assert!(bursts.iter().any(|b| b.len() > 1), "some bursts");
        let joined: String = events
            .iter()
            .filter(|e| ty(e) == "TOOL_CALL_ARGS")
            .map(|e| e["delta"].as_str().expect("a delta"))
            .collect();
        let parsed: Value = serde_json::from_str(&joined).expect("the arguments join into JSON");
        assert!(
            parsed["query"].is_string() && parsed["limit"].is_u64(),
            "{joined}"
        );
        // Every event carries its publish time in microseconds in `rawEvent`.
        for e in &events {
            assert!(e["rawEvent"]["ts"].as_u64().expect("a ts") >= TS, "{e}");
        }
    }
}

#[test]
fn one_event_at_a_time_marks_the_bursts() {
    let mut agent = AgentRuns::new(5);
    let mut lengths = Vec::new();
    let mut len = 0;
    // Three whole runs, event by event: `next_event` says whether the burst goes on.
    while agent.runs() <= 3 {
        let mut e = Vec::new();
        len += 1;
        if !agent.next_event("t", TS, &mut e) {
            lengths.push(len);
            len = 0;
        }
        assert!(serde_json::from_slice::<Value>(&e).is_ok());
    }
    assert!(lengths.iter().all(|l| (1..=8).contains(l)), "{lengths:?}");
    assert!(lengths.iter().any(|l| *l > 1), "{lengths:?}");
}

#[test]
fn the_next_run_has_fresh_ids() {
    let mut agent = AgentRuns::new(7);
    let ids = |bursts: &[Vec<String>]| {
        let run: Value = serde_json::from_str(&bursts[0][0]).expect("JSON");
        let message: Value = serde_json::from_str(&bursts[1][0]).expect("JSON");
        (run["runId"].clone(), message["messageId"].clone())
    };
    let first = ids(&one_run(&mut agent, "t"));
    let second = ids(&one_run(&mut agent, "t"));
    assert_ne!(first.0, second.0);
    assert_ne!(first.1, second.1);
    assert_eq!(agent.runs(), 2);
}

#[test]
fn the_tracker_accepts_every_event_of_many_runs_and_the_stream_verifies() {
    let mut tracker = RunTracker::new(TrackerLimits::default());
    let mut agent = AgentRuns::new(42);
    let mut body = Vec::new();
    for _ in 0..20 {
        for e in one_run(&mut agent, "thread-1").iter().flatten() {
            tracker
                .on_publish(None, e)
                .unwrap_or_else(|r| panic!("refused {e}: {r}"));
            body.extend_from_slice(format!("data: {e}\n\n").as_bytes());
        }
    }
    assert!(!tracker.run_open());
    assert_eq!(
        tracker.messages().len(),
        20,
        "one assistant message per run"
    );
    assert_eq!(
        tether_agui::verify_sse(&body).expect("valid"),
        body.windows(6).filter(|w| w == b"data: ").count()
    );
}

#[test]
fn a_restart_ends_the_open_run_and_starts_a_valid_one() {
    let mut tracker = RunTracker::new(TrackerLimits::default());
    let mut agent = AgentRuns::new(3);
    let mut events = Vec::new();
    for _ in 0..4 {
        agent.next_burst("t", TS, &mut events);
    }
    agent.restart();
    for _ in 0..100 {
        agent.next_burst("t", TS, &mut events);
    }
    for e in &events {
        tracker
            .on_publish(None, e)
            .unwrap_or_else(|r| panic!("refused {e}: {r}"));
    }
    assert!(events.iter().any(|e| e.contains("RUN_ERROR")));
}

/// Reads until the body holds `count` data documents.
async fn read_until(stream: &mut EventStream, count: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while tether_agui::sse_data(&body).len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the events arrive")
            .expect("the stream stays open");
        body.extend_from_slice(&chunk);
    }
    body
}

#[tokio::test(flavor = "current_thread")]
async fn a_tracked_broker_stores_runs_that_pass_the_clients_checks() {
    let broker = Broker::builder()
        .tracker_factory(Arc::new(AguiTrackerFactory::new()))
        .without_heartbeats()
        .start()
        .expect("valid config");
    let session = SessionId::new("agui-load").expect("valid id");
    let mut agent = AgentRuns::new(11);
    let events: Vec<String> = (0..3)
        .flat_map(|_| one_run(&mut agent, session.as_str()))
        .flatten()
        .collect();
    for e in &events {
        broker
            .publish_event(&session, Event::raw(e.as_str()))
            .unwrap_or_else(|err| panic!("refused {e}: {err}"));
    }
    // The stored stream, read from the start.
    let mut stream = broker
        .connect(&session, ConnectOptions::new())
        .expect("connects");
    let body = read_until(&mut stream, events.len()).await;
    assert_eq!(tether_agui::verify_sse(&body).expect("valid"), events.len());
    drop(stream);

    // Mid-run, a client that joins without an id and one that resumes exactly but asks for
    // the prelude (`prelude=always`) get RUN_STARTED, MESSAGES_SNAPSHOT and the open message
    // with its text so far.
    let mut last = None;
    for e in one_run(&mut agent, session.as_str())
        .into_iter()
        .flatten()
        .take(10)
    {
        last = Some(
            broker
                .publish_event(&session, Event::raw(e))
                .expect("accepted"),
        );
    }
    let last = last.expect("published").to_string();
    for opts in [
        ConnectOptions::new(),
        ConnectOptions::resume(last).with_prelude(),
    ] {
        let mut stream = broker.connect(&session, opts).expect("connects");
        let body = read_until(&mut stream, 4).await;
        assert_eq!(tether_agui::verify_sse(&body).expect("valid"), 4);
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("\"MESSAGES_SNAPSHOT\""), "{text}");
    }
}
