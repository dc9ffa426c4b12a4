//! The run tracker on a broker: what it refuses, what a prelude holds, and
//! where signals, terminals and heartbeats go.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tether_core::{ApprovalRequest, Broker, ConnectOptions, PublishError, SessionId};

fn refused(broker: &Broker, session: &SessionId, event: serde_json::Value) -> String {
    match broker.publish(session, &event) {
        Err(PublishError::Rejected { reason, .. }) => reason,
        other => panic!("{event} should be refused, got {other:?}"),
    }
}

/// A refusal for what a prelude would have to carry (HTTP 413 `prelude_too_large`).
fn too_large(broker: &Broker, session: &SessionId, event: serde_json::Value) -> String {
    match broker.publish(session, &event) {
        Err(PublishError::PreludeTooLarge { reason, .. }) => reason,
        other => panic!("{event} should be refused as too large, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn events_that_would_break_the_stream_are_refused_and_change_nothing() {
    let broker = tracked(Broker::builder());
    let s = sid("t-refuse");

    let r = refused(&broker, &s, text_start("m1"));
    assert!(r.contains("First event must be 'RUN_STARTED'"), "{r}");

    publish_all(&broker, &s, &[run_started("t", "r1")]);
    let r = refused(&broker, &s, text("m1", "x"));
    assert!(
        r.contains("No active text message found with ID 'm1'"),
        "{r}"
    );
    let r = refused(&broker, &s, run_started("t", "r2"));
    assert!(r.contains("while a run is still active"), "{r}");

    publish_all(&broker, &s, &[text_start("m1"), text("m1", "Hel")]);
    let r = refused(&broker, &s, run_finished("t", "r1"));
    assert!(r.contains("text messages are still active: m1"), "{r}");
    // The refusal left the message open: its content still goes on.
    publish_all(&broker, &s, &[text("m1", "lo"), text_end("m1")]);

    let r = refused(
        &broker,
        &s,
        json!({"type": "TEXT_MESSAGE_CHUNK", "messageId": "m2", "delta": "x"}),
    );
    assert!(r.contains("TEXT_MESSAGE_CHUNK is not accepted"), "{r}");
    let r = refused(&broker, &s, json!({"type": "THINKING_START"}));
    assert!(r.contains("pre-1.0"), "{r}");
    let r = refused(
        &broker,
        &s,
        json!({"type": "TEXT_MESSAGE_START", "messageId": "m3", "name": null}),
    );
    assert!(r.contains("null"), "{r}");
    let r = refused(&broker, &s, json!([1, 2]));
    assert!(r.contains("string `type`"), "{r}");
    // A type AG-UI does not know passes: the client drops it unseen.
    publish_all(&broker, &s, &[json!({"type": "progress", "pct": 50})]);

    publish_all(&broker, &s, &[run_finished("t", "r1")]);
    let r = refused(
        &broker,
        &s,
        json!({"type": "CUSTOM", "name": "x", "value": 1}),
    );
    assert!(r.contains("already finished"), "{r}");
    let r = refused(&broker, &s, text_start("m4"));
    assert!(r.contains("already finished"), "{r}");
    publish_all(&broker, &s, &[run_error("late failure")]);
    let r = refused(&broker, &s, run_error("again"));
    assert!(r.contains("already errored"), "{r}");
    publish_all(
        &broker,
        &s,
        &[run_started("t", "r2"), run_finished("t", "r2")],
    );

    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (body, _) = capture(&mut stream, QUIET).await;
    assert_valid(&body);
}

#[tokio::test(start_paused = true)]
async fn an_exact_resume_continues_the_stream_without_a_prelude() {
    let broker = tracked(Broker::builder());
    let s = sid("t-exact");
    let ids = publish_all(
        &broker,
        &s,
        &[run_started("t", "r1"), text_start("m1"), text("m1", "Hel")],
    );
    publish_all(&broker, &s, &[text("m1", "lo")]);
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(ids[2].to_string()))
        .unwrap();
    let (body, _) = capture(&mut stream, QUIET).await;
    assert_eq!(types(&body), ["TEXT_MESSAGE_CONTENT"]);
}

#[tokio::test(start_paused = true)]
async fn a_client_joining_mid_message_gets_the_run_reopened_with_the_text_so_far() {
    let broker = tracked(Broker::builder());
    let s = sid("t-join");
    publish_all(
        &broker,
        &s,
        &[
            json!({"type": "RUN_STARTED", "threadId": "t", "runId": "r1", "input": {
                "threadId": "t", "runId": "r1",
                "messages": [{"id": "u1", "role": "user", "content": "Hi"}],
                "state": {"n": 0}
            }}),
            delta(json!([{"op": "replace", "path": "/n", "value": 1}])),
            text_start("m1"),
            text("m1", "Hello, "),
            text("m1", "how can I"),
        ],
    );
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (mut body, _) = capture(&mut stream, QUIET).await;
    publish_all(&broker, &s, &[text("m1", " help?"), text_end("m1")]);
    body.extend(capture(&mut stream, QUIET).await.0);
    assert_valid(&body);
    assert_eq!(
        types(&body),
        [
            "RUN_STARTED",
            "MESSAGES_SNAPSHOT",
            "STATE_SNAPSHOT",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END"
        ]
    );
    let docs = data(&body);
    assert_eq!(docs[0]["runId"], "r1");
    assert_eq!(
        docs[1]["messages"],
        json!([{"id": "u1", "role": "user", "content": "Hi"}])
    );
    assert_eq!(docs[2]["snapshot"], json!({"n": 1}));
    assert_eq!(docs[4]["delta"], "Hello, how can I");
    assert_eq!(docs[5]["delta"], " help?");
    // The id-only frame moves the client's last id to the head.
    assert!(String::from_utf8_lossy(&body).contains("\n\nid: "));
}

#[tokio::test(start_paused = true)]
async fn an_evicted_id_mid_tool_call_gets_a_resync_and_the_arguments_so_far() {
    let broker = tracked(Broker::builder().ring_max_events(4));
    let s = sid("t-evict");
    let ids = publish_all(
        &broker,
        &s,
        &[
            run_started("t", "r1"),
            text_start("m1"),
            text("m1", "Let me look."),
            text_end("m1"),
            tool_start("tc1", "search", Some("m1")),
            tool_args("tc1", "{\"q\":"),
            tool_args("tc1", "\"rust"),
            tool_args("tc1", " sse\""),
        ],
    );
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(ids[1].to_string()))
        .unwrap();
    let (mut body, _) = capture(&mut stream, QUIET).await;
    publish_all(
        &broker,
        &s,
        &[
            tool_args("tc1", "}"),
            tool_end("tc1"),
            tool_result("t1", "tc1", "3 results"),
            run_finished("t", "r1"),
        ],
    );
    body.extend(capture(&mut stream, QUIET).await.0);
    assert_valid(&body);
    assert_eq!(
        types(&body),
        [
            "RUN_STARTED",
            "MESSAGES_SNAPSHOT",
            "CUSTOM:tether.resync",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
            "RUN_FINISHED"
        ]
    );
    let docs = data(&body);
    assert_eq!(
        docs[1]["messages"],
        json!([{"id": "m1", "role": "assistant", "content": "Let me look."}])
    );
    assert_eq!(docs[2]["value"]["reason"], "evicted");
    assert_eq!(docs[4]["delta"], "{\"q\":\"rust sse\"");
    assert_eq!(docs[3]["parentMessageId"], "m1");
}

#[tokio::test(start_paused = true)]
async fn completed_messages_are_kept_as_the_client_builds_them() {
    let broker = tracked(Broker::builder());
    let s = sid("t-messages");
    publish_all(
        &broker,
        &s,
        &[
            run_started("t", "r1"),
            text_start("m1"),
            text("m1", "Checking."),
            tool_start("tc1", "lookup", Some("m1")),
            tool_args("tc1", "{}"),
            tool_end("tc1"),
            text_end("m1"),
            tool_start("tc2", "fetch", None),
            tool_end("tc2"),
            tool_result("r-tc1", "tc1", "one"),
            tool_result("r-tc2", "tc2", "two"),
            json!({"type": "TEXT_MESSAGE_START", "messageId": "u2", "role": "user"}),
            text("u2", "thanks"),
            text_end("u2"),
            run_finished("t", "r1"),
        ],
    );
    let mut stream = broker
        .connect(&s, ConnectOptions::default().with_prelude())
        .unwrap();
    let (body, _) = capture(&mut stream, QUIET).await;
    assert_valid(&body);
    assert_eq!(
        types(&body),
        ["RUN_STARTED", "MESSAGES_SNAPSHOT", "RUN_FINISHED"]
    );
    let docs = data(&body);
    assert_eq!(
        docs[1]["messages"],
        json!([
            {"id": "m1", "role": "assistant", "content": "Checking.", "toolCalls": [
                {"id": "tc1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            ]},
            {"id": "r-tc1", "role": "tool", "content": "one", "toolCallId": "tc1"},
            {"id": "tc2", "role": "assistant", "toolCalls": [
                {"id": "tc2", "type": "function", "function": {"name": "fetch", "arguments": ""}}
            ]},
            {"id": "r-tc2", "role": "tool", "content": "two", "toolCallId": "tc2"},
            {"id": "u2", "role": "user", "content": "thanks"},
        ])
    );
    assert_eq!(docs[2]["outcome"], json!({"type": "success"}));
}

#[tokio::test(start_paused = true)]
async fn state_deltas_are_applied_and_a_failing_one_leaves_the_state() {
    let broker = tracked(Broker::builder());
    let s = sid("t-state");
    publish_all(
        &broker,
        &s,
        &[
            run_started("t", "r1"),
            state(json!({"todos": []})),
            delta(json!([{"op": "add", "path": "/todos/-", "value": "a"}])),
            delta(json!([
                {"op": "add", "path": "/todos/-", "value": "b"},
                {"op": "test", "path": "/missing", "value": 1}
            ])),
            delta(json!([{"op": "add", "path": "/done", "value": false}])),
        ],
    );
    let mut stream = broker
        .connect(&s, ConnectOptions::default().with_prelude())
        .unwrap();
    let (body, _) = capture(&mut stream, QUIET).await;
    let docs = data(&body);
    assert_eq!(docs[2]["type"], "STATE_SNAPSHOT");
    assert_eq!(docs[2]["snapshot"], json!({"todos": ["a"], "done": false}));
}

#[tokio::test(start_paused = true)]
async fn a_foreign_epoch_between_runs_gets_a_synthetic_run_with_the_pending_interrupts() {
    let broker = tracked(Broker::builder());
    let s = sid("t-between");
    publish_all(
        &broker,
        &s,
        &[
            run_started("t", "r1"),
            text_start("m1"),
            text("m1", "ok"),
            text_end("m1"),
        ],
    );
    // An approval announced inside the run, still pending after it.
    let approval = broker
        .request_approval(
            &s,
            ApprovalRequest::new(json!({"cmd": "rm"})).title("Run rm?"),
        )
        .unwrap();
    publish_all(&broker, &s, &[run_finished("t", "r1")]);

    let mut stream = broker
        .connect(&s, ConnectOptions::resume("00ff00ff-3"))
        .unwrap();
    let (body, _) = capture(&mut stream, QUIET).await;
    assert_valid(&body);
    assert_eq!(
        types(&body),
        [
            "RUN_STARTED",
            "MESSAGES_SNAPSHOT",
            "CUSTOM:tether.resync",
            "RUN_FINISHED"
        ]
    );
    let docs = data(&body);
    assert_eq!(docs[0]["runId"], "r1");
    assert_eq!(docs[2]["value"]["reason"], "epoch");
    let interrupts = &docs[3]["outcome"]["interrupts"];
    assert_eq!(docs[3]["outcome"]["type"], "interrupt");
    assert_eq!(interrupts[0]["id"], approval.id());
    assert_eq!(interrupts[0]["message"], "Run rm?");
    assert_eq!(interrupts[0]["metadata"]["payload"], json!({"cmd": "rm"}));
    assert!(interrupts[0]["expiresAt"].as_str().unwrap().ends_with('Z'));

    // Once decided, a prelude ends the synthetic run with success, and a new
    // run can follow it.
    drop(stream);
    broker
        .decide(&s, approval.id(), tether_core::Decision::approve())
        .unwrap();
    let mut stream = broker
        .connect(&s, ConnectOptions::resume("00ff00ff-3"))
        .unwrap();
    let (mut body, _) = capture(&mut stream, QUIET).await;
    publish_all(
        &broker,
        &s,
        &[run_started("t", "r2"), run_finished("t", "r2")],
    );
    body.extend(capture(&mut stream, QUIET).await.0);
    assert_valid(&body);
    assert_eq!(data(&body)[3]["outcome"], json!({"type": "success"}));
}

#[tokio::test(start_paused = true)]
async fn approval_notices_between_runs_ride_in_a_stored_synthetic_run() {
    let broker = tracked(Broker::builder());
    let s = sid("t-notice");
    publish_all(
        &broker,
        &s,
        &[run_started("t", "r1"), run_finished("t", "r1")],
    );
    let approval = broker
        .request_approval(&s, ApprovalRequest::new(json!({"x": 1})).id("ap-1"))
        .unwrap();
    broker
        .decide(&s, approval.id(), tether_core::Decision::reject("no"))
        .unwrap();
    publish_all(
        &broker,
        &s,
        &[run_started("t", "r2"), run_finished("t", "r2")],
    );

    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (body, _) = capture(&mut stream, QUIET).await;
    assert_valid(&body);
    assert_eq!(
        types(&body),
        [
            "RUN_STARTED",
            "RUN_FINISHED",
            "RUN_STARTED",
            "CUSTOM:tether.approval.requested",
            "RUN_FINISHED",
            "RUN_STARTED",
            "CUSTOM:tether.approval.resolved",
            "RUN_FINISHED",
            "RUN_STARTED",
            "RUN_FINISHED"
        ]
    );
    let docs = data(&body);
    assert_eq!(docs[4]["outcome"]["interrupts"][0]["id"], "ap-1");
    assert_eq!(docs[7]["outcome"], json!({"type": "success"}));
    // Inside a run, the notice is a plain CUSTOM event.
    publish_all(&broker, &s, &[run_started("t", "r3")]);
    let _ = broker
        .request_approval(&s, ApprovalRequest::new(json!({})).id("ap-2"))
        .unwrap();
    let (body, _) = capture(&mut stream, QUIET).await;
    assert_eq!(
        types(&body),
        ["RUN_STARTED", "CUSTOM:tether.approval.requested"]
    );
}

#[tokio::test(start_paused = true)]
async fn superseded_and_drained_streams_end_with_a_custom_in_a_run_and_a_comment_between() {
    let broker = tracked(Broker::builder());
    let s = sid("t-terminal");
    publish_all(&broker, &s, &[run_started("t", "r1"), text_start("m1")]);
    let mut first = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (mut body, _) = capture(&mut first, QUIET).await;
    let mut second = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (tail, ended) = capture(&mut first, QUIET).await;
    assert!(ended);
    body.extend(tail);
    assert_valid(&body);
    assert_eq!(types(&body).last().unwrap(), "CUSTOM:tether.superseded");

    publish_all(&broker, &s, &[text_end("m1"), run_finished("t", "r1")]);
    let (mut body, _) = capture(&mut second, QUIET).await;
    broker.drain(Duration::from_secs(1));
    let (tail, ended) = capture(&mut second, QUIET).await;
    assert!(ended);
    let tail_text = String::from_utf8_lossy(&tail).into_owned();
    assert!(
        tail_text.starts_with(": tether.drain {\"retryMs\":"),
        "{tail_text}"
    );
    body.extend(tail);
    assert_valid(&body);
    assert_eq!(
        types(&body),
        [
            "RUN_STARTED",
            "MESSAGES_SNAPSHOT",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_END",
            "RUN_FINISHED"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn heartbeats_in_an_agui_session_are_comments() {
    let broker = tracked(
        Broker::builder()
            .keepalive_interval(Duration::from_secs(15))
            .heartbeat_style(tether_core::HeartbeatStyle::Event(
                tether_core::event_name("heartbeat").unwrap(),
            )),
    );
    let s = sid("t-heartbeat");
    publish_all(&broker, &s, &[run_started("t", "r1")]);
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (mut body, _) = capture(&mut stream, QUIET).await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    let (tail, _) = capture(&mut stream, QUIET).await;
    assert_eq!(String::from_utf8_lossy(&tail), ": keepalive\n\n");
    body.extend(tail);
    assert_valid(&body);
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_falls_behind_the_ring_ends_and_resyncs_on_reconnect() {
    let broker = tracked(Broker::builder().ring_max_events(4));
    let s = sid("t-lag");
    publish_all(&broker, &s, &[run_started("t", "r1"), text_start("m1")]);
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (body, _) = capture(&mut stream, QUIET).await;
    let last = stream.last_event_id().unwrap();
    for i in 0..10 {
        publish_all(&broker, &s, &[text("m1", &format!("{i} "))]);
    }
    let (tail, ended) = capture(&mut stream, QUIET).await;
    assert!(ended, "the stream ends instead of resyncing inline");
    assert!(String::from_utf8_lossy(&tail).starts_with("retry: "));
    assert_valid(&[body, tail].concat());
    drop(stream);

    let mut again = broker
        .connect(&s, ConnectOptions::resume(last.to_string()))
        .unwrap();
    let (body, _) = capture(&mut again, QUIET).await;
    assert_valid(&body);
    let docs = data(&body);
    assert_eq!(docs[2]["value"]["reason"], "evicted");
    assert_eq!(docs[4]["delta"], "0 1 2 3 4 5 6 7 8 9 ");
}

#[tokio::test(start_paused = true)]
async fn prelude_always_gives_the_prelude_on_an_exact_resume() {
    let broker = tracked(Broker::builder());
    let s = sid("t-always");
    let ids = publish_all(
        &broker,
        &s,
        &[
            run_started("t", "r1"),
            step("plan", true),
            text_start("m1"),
            text("m1", "a"),
        ],
    );
    let mut stream = broker
        .connect(
            &s,
            ConnectOptions::resume(ids[1].to_string()).with_prelude(),
        )
        .unwrap();
    let (mut body, _) = capture(&mut stream, QUIET).await;
    publish_all(
        &broker,
        &s,
        &[text_end("m1"), step("plan", false), run_finished("t", "r1")],
    );
    body.extend(capture(&mut stream, QUIET).await.0);
    assert_valid(&body);
    assert_eq!(
        types(&body),
        [
            "RUN_STARTED",
            "MESSAGES_SNAPSHOT",
            "STEP_STARTED",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "STEP_FINISHED",
            "RUN_FINISHED"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn limits_refuse_what_the_tracker_cannot_keep() {
    let limits = tether_agui::TrackerLimits::default()
        .max_open_bytes(10)
        .max_open(2)
        .max_state_bytes(64)
        .max_message_bytes(120);
    let broker = Broker::builder()
        .tracker_factory(std::sync::Arc::new(
            tether_agui::AguiTrackerFactory::with_limits(limits),
        ))
        .start()
        .expect("valid config");
    let s = sid("t-limits");
    publish_all(
        &broker,
        &s,
        &[
            run_started("t", "r1"),
            text_start("m1"),
            text("m1", "0123456789"),
        ],
    );
    let r = too_large(&broker, &s, text("m1", "x"));
    assert!(r.contains("exceed the tracker's limit of 10 bytes"), "{r}");
    publish_all(&broker, &s, &[tool_start("tc1", "f", None)]);
    let r = too_large(&broker, &s, step("s", true));
    assert!(r.contains("the tracker's limit"), "{r}");
    let r = too_large(&broker, &s, state(json!({"big": "x".repeat(100)})));
    assert!(r.contains("exceeds the tracker's limit of 64 bytes"), "{r}");
    publish_all(&broker, &s, &[state(json!({"a": 1}))]);
    let r = too_large(
        &broker,
        &s,
        delta(json!([{"op": "add", "path": "/b", "value": "y".repeat(80)}])),
    );
    assert!(r.contains("would exceed"), "{r}");
    publish_all(&broker, &s, &[tool_end("tc1"), text_end("m1")]);
    for i in 0..5 {
        let id = format!("n{i}");
        publish_all(
            &broker,
            &s,
            &[text_start(&id), text(&id, "abc"), text_end(&id)],
        );
    }
    let mut stream = broker
        .connect(&s, ConnectOptions::default().with_prelude())
        .unwrap();
    let (body, _) = capture(&mut stream, QUIET).await;
    let messages = data(&body)[1]["messages"].as_array().unwrap().clone();
    assert!(
        messages.len() < 7,
        "the oldest messages were dropped: {messages:?}"
    );
    assert_eq!(messages.last().unwrap()["id"], "n4");
}

#[tokio::test(start_paused = true)]
async fn tethers_own_signals_do_not_make_a_session_an_agui_session() {
    let broker = tracked(Broker::builder());
    let s = sid("t-plain");
    let approval = broker
        .request_approval(&s, ApprovalRequest::new(json!({"x": 1})))
        .unwrap();
    broker
        .decide(&s, approval.id(), tether_core::Decision::approve())
        .unwrap();
    // Still untracked: a plain event and a CUSTOM before any run are fine.
    publish_all(
        &broker,
        &s,
        &[
            json!({"type": "progress"}),
            json!({"type": "CUSTOM", "name": "tether.x", "value": 1}),
        ],
    );
    // The first AG-UI event of the application makes it an AG-UI session.
    let r = refused(&broker, &s, text_start("m1"));
    assert!(r.contains("First event must be 'RUN_STARTED'"), "{r}");
}

/// A stream read from the start and one joined through a prelude can disagree: the prelude's
/// `MESSAGES_SNAPSHOT` records the owner of every completed message, where the exact stream
/// forgot the last run's owners at the next `RUN_STARTED`. Reopening a completed message's id
/// for a subagent passes the exact stream's checks but would break a joined client's: refused.
#[tokio::test(start_paused = true)]
async fn what_only_a_joined_client_would_reject_is_refused() {
    let broker = tracked(Broker::builder());
    let s = sid("t-joined");
    let run1 = [
        run_started("t", "r1"),
        text_start("m1"),
        text("m1", "Hi"),
        text_end("m1"),
        run_finished("t", "r1"),
    ];
    publish_all(&broker, &s, &run1);
    publish_all(&broker, &s, &[run_started("t", "r2")]);
    let mut reopen = text_start("m1");
    reopen["subagentRunId"] = "sub-1".into();

    // What each client would see with the event after it.
    let mut exact = Vec::new();
    for e in run1.iter().chain([&run_started("t", "r2"), &reopen]) {
        exact.extend_from_slice(format!("data: {e}\n\n").as_bytes());
    }
    assert_valid(&exact);
    let mut joining = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (mut joined, _) = capture(&mut joining, QUIET).await;
    assert!(types(&joined).contains(&"MESSAGES_SNAPSHOT".to_owned()));
    joined.extend_from_slice(format!("data: {reopen}\n\n").as_bytes());
    assert!(tether_agui::verify_sse(&joined).is_err());

    let r = refused(&broker, &s, reopen);
    assert!(
        r.contains("for a client that joins through a snapshot"),
        "{r}"
    );
    assert!(r.contains("m1"), "{r}");
}

/// The factory answers most events of a plain session with a byte search; a `type` spelled
/// with an escape still makes the session an AG-UI session, as it does for the client.
#[test]
fn the_factory_tracks_by_the_type_however_it_is_spelled() {
    use tether_core::TrackerFactory;
    let factory = tether_agui::AguiTrackerFactory::new();
    let session = sid("t-factory");
    let tracks = |data: &str| factory.track(&session, None, data).is_some();
    assert!(!tracks(r#"{"ts":1,"pad":"xxxx"}"#));
    assert!(!tracks(
        r#"{"kind":"RUN_STARTED","note":"a \"type\" in text"}"#
    ));
    assert!(!tracks(r#"{"type":"bench"}"#));
    assert!(tracks(
        r#"{"type":"RUN_STARTED","threadId":"t","runId":"r"}"#
    ));
    assert!(tracks(
        r#"{"threadId":"t","runId":"r","type":"RUN_STARTED"}"#
    ));
    assert!(tracks(
        r#"{"typ\u0065":"RUN_STARTED","threadId":"t","runId":"r"}"#
    ));
    assert!(tracks(
        r#"{"type":"RUN_\u0053TARTED","threadId":"t","runId":"r"}"#
    ));
}
