//! A session recorded through the recorder replays cleanly, and its transcript says what
//! happened.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tether_core::{Broker, ConnectOptions, Decision, SessionId};
use tether_replay::{
    Action, RecordedApproval, RecordedStream, Recorder, Transcript, block_on_paused,
    replay_in_process,
};

/// Reads until nothing arrives for a moment (virtual time) or the stream ends.
async fn read_all(stream: &mut RecordedStream) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_millis(5), stream.next()).await {
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

fn record() -> Transcript {
    block_on_paused(async {
        let broker = Broker::builder()
            .ring_max_events(4)
            .start()
            .expect("valid config");
        let rec = Recorder::new(broker);
        let s = SessionId::new("recorded").unwrap();

        let mut a = rec.connect("a", &s, ConnectOptions::default()).unwrap();
        rec.publish(&s, &json!({"n": 1})).unwrap();
        read_all(&mut a).await;
        let last = a.last_event_id().unwrap().to_string();
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(a);

        rec.publish(&s, &json!({"n": 2})).unwrap();
        rec.publish(&s, &json!({"n": 3})).unwrap();
        let mut a = rec.connect("a", &s, ConnectOptions::resume(last)).unwrap();
        read_all(&mut a).await;

        let _approval = rec
            .request_approval(
                &s,
                RecordedApproval {
                    id: "ap-1".into(),
                    title: Some("Ship it?".into()),
                    payload: json!({"tool": "deploy"}),
                    timeout: Some(Duration::from_secs(60)),
                },
            )
            .unwrap();
        read_all(&mut a).await;
        rec.decide(&s, "ap-1", Decision::approve()).unwrap();
        rec.decide(&s, "ap-1", Decision::reject("late"))
            .unwrap_err();
        read_all(&mut a).await;

        // Another client takes the session over; the first one's stream ends.
        tokio::time::sleep(Duration::from_secs(20)).await;
        let mut b = rec.connect("b", &s, ConnectOptions::default()).unwrap();
        assert!(read_all(&mut a).await, "superseded");
        read_all(&mut b).await;
        drop(b);
        rec.transcript()
    })
}

#[test]
fn a_recorded_session_replays_cleanly() {
    let t = record();
    let ops: Vec<&str> = t.steps.iter().map(|s| s.action.op()).collect();
    assert_eq!(
        ops,
        [
            "connect",
            "publish",
            "expect_events",
            "drop",
            "publish",
            "publish",
            "connect",
            "expect_events",
            "request_approval",
            "expect_events",
            "decide",
            "decide",
            "expect_events",
            "connect",
            "expect_ended",
            // The ring keeps 4 events of 5: the newcomer is told what it missed.
            "expect_resync",
            "expect_events",
            "expect_events",
            "expect_events",
            "drop",
        ],
        "{}",
        t.to_jsonl()
    );
    assert!(matches!(
        &t.steps[6].action,
        Action::Connect { resume: true, .. }
    ));
    assert_eq!(t.settings.ring_max_events, 4);
    let at = t.steps[13].at_ms.unwrap();
    assert!((21_000..21_100).contains(&at), "{at}");

    replay_in_process(&t).assert_finished();
    // Written out and read back, it replays the same.
    let again = Transcript::parse(&t.to_jsonl()).unwrap();
    replay_in_process(&again).assert_finished();
}

#[test]
fn a_recorded_transcript_catches_a_changed_broker() {
    let mut t = record();
    // The same session against a broker whose ring keeps one event: the resume after the
    // drop is no longer exact, so the recorded expectations fail.
    t.settings.ring_max_events = 1;
    let report = replay_in_process(&t);
    assert!(!report.is_ok());
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.location.contains("expect_events a")),
        "{report}"
    );
}
