//! Streams the broker writes for AG-UI sessions, captured in-process and fed
//! through the official client (`check-stream.mjs`, `@ag-ui/client` 1.0.0):
//! plain runs, exact resumes, resyncs in the middle of a message and of a tool
//! call (evicted ids, foreign epochs, no id mid-run), between runs with
//! pending interrupts, errors, heartbeats, superseded and drained streams in
//! and between runs, `prelude=always`. Each capture is one response, from its
//! first byte to where reading stopped, since the client checks each response
//! on its own. Every capture must pass; the deliberately broken ones must fail.
//!
//! Without `node` the official checks are skipped with a notice; the Rust port
//! of the client's checks still runs over every capture.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tether_agui::{AguiRuns, ResumeEntry, ResumeStatus, RunAgentInput};
use tether_core::{ApprovalRequest, Broker, ConnectOptions, EventStream, SessionId};

#[derive(Default)]
struct Captures {
    pass: Vec<(String, Vec<u8>)>,
    fail: Vec<(String, Vec<u8>)>,
}

impl Captures {
    fn pass(&mut self, name: &str, body: Vec<u8>) {
        assert!(
            tether_agui::verify_sse(&body).is_ok(),
            "{name}: {:?}\n{}",
            tether_agui::verify_sse(&body),
            String::from_utf8_lossy(&body)
        );
        self.pass.push((name.to_owned(), body));
    }
    fn fail(&mut self, name: &str, body: Vec<u8>) {
        assert!(
            tether_agui::verify_sse(&body).is_err(),
            "{name} should fail\n{}",
            String::from_utf8_lossy(&body)
        );
        self.fail.push((name.to_owned(), body));
    }
}

fn connect(broker: &Broker, s: &SessionId, opts: ConnectOptions) -> EventStream {
    broker.connect(s, opts).expect("connects")
}

async fn read(stream: &mut EventStream) -> Vec<u8> {
    capture(stream, QUIET).await.0
}

/// A run up to the middle of its second message, then the rest.
fn first_half() -> Vec<serde_json::Value> {
    vec![
        json!({"type": "RUN_STARTED", "threadId": "t", "runId": "r1", "input": {
            "threadId": "t", "runId": "r1",
            "messages": [{"id": "u1", "role": "user", "content": "Find flights to Lisbon"}],
            "state": {"step": 0}
        }}),
        step("search", true),
        text_start("m1"),
        text("m1", "Searching"),
        text("m1", " now."),
        text_end("m1"),
        tool_start("tc1", "search_flights", Some("m1")),
        tool_args("tc1", "{\"to\":"),
        tool_args("tc1", "\"LIS\"}"),
        tool_end("tc1"),
        tool_result("res1", "tc1", "[\"TP123\"]"),
        delta(json!([{"op": "replace", "path": "/step", "value": 1}])),
        text_start("m2"),
        text("m2", "I found"),
    ]
}

fn second_half() -> Vec<serde_json::Value> {
    vec![
        text("m2", " one flight: TP123."),
        text_end("m2"),
        step("search", false),
        run_finished("t", "r1"),
    ]
}

fn mid_tool_call() -> Vec<serde_json::Value> {
    vec![
        run_started("t", "r1"),
        text_start("m1"),
        text("m1", "Booking."),
        text_end("m1"),
        tool_start("tc1", "book", Some("m1")),
        tool_args("tc1", "{\"flight\":"),
    ]
}

fn tool_rest() -> Vec<serde_json::Value> {
    vec![
        tool_args("tc1", "\"TP123\"}"),
        tool_end("tc1"),
        tool_result("res1", "tc1", "booked"),
        run_finished("t", "r1"),
    ]
}

async fn plain_runs(c: &mut Captures) {
    let broker = tracked(Broker::builder());
    let s = sid("plain");
    let mut live = connect(&broker, &s, ConnectOptions::default());
    let mut body = read(&mut live).await;
    for e in first_half().into_iter().chain(second_half()) {
        publish_all(&broker, &s, &[e]);
        body.extend(read(&mut live).await);
    }
    c.pass("plain-run-live", body);
    publish_all(
        &broker,
        &s,
        &[
            run_started("t", "r2"),
            json!({"type": "REASONING_START", "messageId": "rs1"}),
            json!({"type": "REASONING_MESSAGE_START", "messageId": "rm1", "role": "reasoning"}),
            json!({"type": "REASONING_MESSAGE_CONTENT", "messageId": "rm1", "delta": "thinking"}),
            json!({"type": "REASONING_MESSAGE_END", "messageId": "rm1"}),
            json!({"type": "REASONING_END", "messageId": "rs1"}),
            run_finished("t", "r2"),
        ],
    );
    let mut replay = connect(&broker, &s, ConnectOptions::default());
    c.pass("plain-two-runs-replay", read(&mut replay).await);
}

async fn exact_resumes(c: &mut Captures) {
    let broker = tracked(Broker::builder());
    let s = sid("exact");
    let ids = publish_all(&broker, &s, &first_half());

    // The client's first response, cut in the middle of m2.
    let mut first = connect(&broker, &s, ConnectOptions::default());
    let first_body = read(&mut first).await;
    drop(first);
    publish_all(&broker, &s, &second_half());
    let last = ids.last().unwrap().to_string();

    // Exactly resumed, the response continues the client's stream: the two
    // responses together are one valid stream, while the second alone starts
    // in the middle of a run, which is why `prelude=always` exists.
    let mut resumed = connect(&broker, &s, ConnectOptions::resume(&last));
    let resumed_body = read(&mut resumed).await;
    drop(resumed);
    c.pass(
        "exact-resume-mid-message-as-one-stream",
        [first_body.clone(), resumed_body.clone()].concat(),
    );
    c.fail("broken-exact-resume-mid-message-alone", resumed_body);

    let mut resumed = connect(&broker, &s, ConnectOptions::resume(&last).with_prelude());
    c.pass(
        "exact-resume-mid-message-prelude-always",
        read(&mut resumed).await,
    );
    drop(resumed);

    // Resumed at the end of a run, the response starts with the next run.
    let end = broker.head(&s).unwrap().to_string();
    let mut resumed = connect(&broker, &s, ConnectOptions::resume(&end));
    let mut body = read(&mut resumed).await;
    publish_all(
        &broker,
        &s,
        &[run_started("t", "r2"), text_start("m3"), text("m3", "more")],
    );
    body.extend(read(&mut resumed).await);
    c.pass("exact-resume-between-runs", body);
}

async fn resyncs_mid_message(c: &mut Captures) {
    let broker = tracked(Broker::builder().ring_max_events(6));
    let s = sid("resync-message");
    let ids = publish_all(&broker, &s, &first_half());
    let evicted = ids[3].to_string();
    for (name, opts) in [
        (
            "resync-evicted-mid-message",
            ConnectOptions::resume(&evicted),
        ),
        (
            "resync-epoch-mid-message",
            ConnectOptions::resume("0badc0de-12"),
        ),
        (
            "resync-unknown-id-mid-message",
            ConnectOptions::resume("msg-42"),
        ),
        (
            "resync-ahead-mid-message",
            ConnectOptions::resume(format!("{}-999", ids[0].epoch)),
        ),
        ("join-no-id-evicted-mid-message", ConnectOptions::default()),
    ] {
        let mut stream = connect(&broker, &s, opts);
        let mut body = read(&mut stream).await;
        publish_all(&broker, &s, &[text("m2", " ...")]);
        body.extend(read(&mut stream).await);
        c.pass(name, body);
    }
    let mut stream = connect(&broker, &s, ConnectOptions::resume(&evicted));
    let mut body = read(&mut stream).await;
    publish_all(&broker, &s, &second_half());
    body.extend(read(&mut stream).await);
    c.pass("resync-evicted-mid-message-to-run-end", body.clone());

    // The same capture without the prelude's TEXT_MESSAGE_START is broken.
    let text = String::from_utf8(body).unwrap();
    let start = text.find("data: {\"type\":\"TEXT_MESSAGE_START\"").unwrap();
    let end = start + text[start..].find("\n\n").unwrap() + 2;
    c.fail(
        "broken-resync-without-reopened-message",
        format!("{}{}", &text[..start], &text[end..]).into_bytes(),
    );
}

async fn resyncs_mid_tool_call(c: &mut Captures) {
    let broker = tracked(Broker::builder().ring_max_events(4));
    let s = sid("resync-tool");
    let ids = publish_all(&broker, &s, &mid_tool_call());
    for (name, opts) in [
        (
            "resync-evicted-mid-tool-call",
            ConnectOptions::resume(ids[0].to_string()),
        ),
        (
            "resync-epoch-mid-tool-call",
            ConnectOptions::resume("1234abcd-5"),
        ),
        (
            "join-no-id-evicted-mid-tool-call",
            ConnectOptions::default(),
        ),
    ] {
        let mut stream = connect(&broker, &s, opts);
        let mut body = read(&mut stream).await;
        publish_all(&broker, &s, &[tool_args("tc1", "")]);
        body.extend(read(&mut stream).await);
        c.pass(name, body);
    }
    let mut stream = connect(&broker, &s, ConnectOptions::resume(ids[0].to_string()));
    let mut body = read(&mut stream).await;
    publish_all(&broker, &s, &tool_rest());
    body.extend(read(&mut stream).await);
    c.pass("resync-evicted-mid-tool-call-to-run-end", body);

    // A client that joins without an id while nothing was evicted.
    let broker = tracked(Broker::builder());
    let s = sid("join-tool");
    publish_all(&broker, &s, &mid_tool_call());
    let mut stream = connect(&broker, &s, ConnectOptions::default());
    let mut body = read(&mut stream).await;
    publish_all(&broker, &s, &tool_rest());
    body.extend(read(&mut stream).await);
    c.pass("join-no-id-mid-tool-call", body);

    let broker = tracked(Broker::builder());
    let s = sid("join-message");
    publish_all(&broker, &s, &first_half());
    let mut stream = connect(&broker, &s, ConnectOptions::default());
    let mut body = read(&mut stream).await;
    publish_all(&broker, &s, &second_half());
    body.extend(read(&mut stream).await);
    c.pass("join-no-id-mid-message", body);
}

async fn reasoning_steps_and_subagents(c: &mut Captures) {
    let broker = tracked(Broker::builder().ring_max_events(3));
    let s = sid("nested");
    let ids = publish_all(
        &broker,
        &s,
        &[
            run_started("t", "r1"),
            step("plan", true),
            json!({"type": "SUBAGENT_STARTED", "subagentRunId": "sa1", "name": "researcher"}),
            json!({"type": "SUBAGENT_STARTED", "subagentRunId": "sa2", "name": "writer", "parentSubagentRunId": "sa1"}),
            json!({"type": "SUBAGENT_FINISHED", "subagentRunId": "sa1"}),
            json!({"type": "STEP_STARTED", "stepName": "plan", "subagentRunId": "sa2"}),
            json!({"type": "REASONING_START", "messageId": "rs1", "subagentRunId": "sa2"}),
            json!({"type": "REASONING_MESSAGE_START", "messageId": "rs1", "role": "reasoning", "subagentRunId": "sa2"}),
            json!({"type": "REASONING_MESSAGE_CONTENT", "messageId": "rs1", "delta": "Let me think", "subagentRunId": "sa2"}),
            json!({"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant", "subagentRunId": "sa2"}),
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "Draft", "subagentRunId": "sa2"}),
        ],
    );
    let mut stream = connect(&broker, &s, ConnectOptions::resume(ids[2].to_string()));
    let mut body = read(&mut stream).await;
    publish_all(
        &broker,
        &s,
        &[
            json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": " done", "subagentRunId": "sa2"}),
            json!({"type": "TEXT_MESSAGE_END", "messageId": "m1", "subagentRunId": "sa2"}),
            json!({"type": "REASONING_MESSAGE_END", "messageId": "rs1", "subagentRunId": "sa2"}),
            json!({"type": "REASONING_END", "messageId": "rs1", "subagentRunId": "sa2"}),
            json!({"type": "STEP_FINISHED", "stepName": "plan", "subagentRunId": "sa2"}),
            json!({"type": "SUBAGENT_STARTED", "subagentRunId": "sa3", "name": "checker", "parentSubagentRunId": "sa1"}),
            json!({"type": "SUBAGENT_FINISHED", "subagentRunId": "sa3"}),
            json!({"type": "SUBAGENT_FINISHED", "subagentRunId": "sa2"}),
            step("plan", false),
            run_finished("t", "r1"),
        ],
    );
    body.extend(read(&mut stream).await);
    c.pass("resync-evicted-with-reasoning-steps-subagents", body);
}

async fn between_runs(c: &mut Captures) {
    let broker = tracked(Broker::builder().ring_max_events(5));
    let runs = AguiRuns::new(broker.clone());
    let s = sid("between");
    let mut run = runs.start_run("between", "r1").unwrap();
    run.text("m1", "May I send the email?").unwrap();
    run.tool_call_start("tc1", "send_email", Some("m1"))
        .unwrap();
    run.tool_call_args("tc1", "{\"to\":\"ana@example.com\"}")
        .unwrap();
    run.tool_call_end("tc1").unwrap();
    let handle = run
        .request_tool_approval(
            "tc1",
            "approval",
            json!({"to": "ana@example.com"}),
            Duration::from_secs(300),
        )
        .unwrap();
    // An approval announced by tether itself, between runs.
    let _other = broker
        .request_approval(
            &s,
            ApprovalRequest::new(json!({"cmd": "deploy"})).id("deploy-1"),
        )
        .unwrap();

    let mut whole = connect(&broker, &s, ConnectOptions::resume("ffffffff-1"));
    c.pass(
        "between-runs-epoch-pending-interrupts",
        read(&mut whole).await,
    );
    drop(whole);
    let mut evicted = connect(
        &broker,
        &s,
        ConnectOptions::resume(format!("{}-1", broker.head(&s).unwrap().epoch)),
    );
    c.pass(
        "between-runs-evicted-pending-interrupts",
        read(&mut evicted).await,
    );
    drop(evicted);
    let head = broker.head(&s).unwrap().to_string();
    let mut always_stream = connect(&broker, &s, ConnectOptions::resume(&head).with_prelude());
    let mut body = read(&mut always_stream).await;

    // The client answers in its next run; the agent continues there.
    let approval_id = handle.id().to_owned();
    let agent = tokio::spawn(async move {
        let _ = handle.await;
        run.next_run(Duration::from_secs(60)).await.unwrap();
        run.text("m2", "Sent.").unwrap();
        run.finish(None).unwrap();
    });
    tokio::task::yield_now().await;
    let input = RunAgentInput {
        thread_id: "between".into(),
        run_id: "r2".into(),
        resume: Some(vec![ResumeEntry {
            interrupt_id: approval_id,
            status: ResumeStatus::Resolved,
            payload: Some(json!({"approved": true})),
            metadata: None,
        }]),
        ..Default::default()
    };
    let _ = runs.reserve(&input).unwrap().start(input).unwrap();
    agent.await.unwrap();
    body.extend(read(&mut always_stream).await);
    c.pass("between-runs-prelude-always-then-resumed-run", body);
}

async fn errors(c: &mut Captures) {
    let broker = tracked(Broker::builder().ring_max_events(4));
    let s = sid("errors");
    let mut live = connect(&broker, &s, ConnectOptions::default());
    let ids = publish_all(
        &broker,
        &s,
        &[
            run_started("t", "r1"),
            text_start("m1"),
            text("m1", "partial"),
            run_error("the model is unavailable"),
        ],
    );
    c.pass("run-error-mid-message-live", read(&mut live).await);
    drop(live);
    let mut resync = connect(&broker, &s, ConnectOptions::resume("beef-2"));
    let mut body = read(&mut resync).await;
    publish_all(
        &broker,
        &s,
        &[run_started("t", "r2"), run_finished("t", "r2")],
    );
    body.extend(read(&mut resync).await);
    c.pass("resync-after-run-error", body);
    drop(resync);
    let mut exact = connect(&broker, &s, ConnectOptions::resume(ids[3].to_string()));
    c.pass("exact-resume-after-run-error", read(&mut exact).await);
}

async fn heartbeats(c: &mut Captures) {
    let broker = tracked(Broker::builder().keepalive_interval(Duration::from_secs(15)));
    let s = sid("heartbeats");
    let mut live = connect(&broker, &s, ConnectOptions::default());
    let mut body = read(&mut live).await;
    publish_all(&broker, &s, &[run_started("t", "r1"), text_start("m1")]);
    body.extend(read(&mut live).await);
    tokio::time::sleep(Duration::from_secs(16)).await;
    body.extend(read(&mut live).await);
    publish_all(
        &broker,
        &s,
        &[
            text("m1", "still here"),
            text_end("m1"),
            run_finished("t", "r1"),
        ],
    );
    body.extend(read(&mut live).await);
    tokio::time::sleep(Duration::from_secs(16)).await;
    body.extend(read(&mut live).await);
    assert_eq!(
        String::from_utf8_lossy(&body)
            .matches(": keepalive")
            .count(),
        2,
        "a heartbeat in the run and one between runs"
    );
    c.pass("heartbeats-in-and-between-runs", body);
}

async fn terminals(c: &mut Captures) {
    for (name, open) in [("in-run", true), ("between-runs", false)] {
        let broker = tracked(Broker::builder());
        let s = sid("terminal");
        publish_all(
            &broker,
            &s,
            &[run_started("t", "r1"), text_start("m1"), text("m1", "x")],
        );
        if !open {
            publish_all(&broker, &s, &[text_end("m1"), run_finished("t", "r1")]);
        }
        let mut first = connect(&broker, &s, ConnectOptions::default());
        let mut body = read(&mut first).await;
        let mut second = connect(&broker, &s, ConnectOptions::default());
        let (tail, ended) = capture(&mut first, QUIET).await;
        assert!(ended);
        body.extend(tail);
        c.pass(&format!("superseded-{name}"), body);

        let mut body = read(&mut second).await;
        broker.drain(Duration::from_secs(2));
        let (tail, ended) = capture(&mut second, QUIET).await;
        assert!(ended);
        body.extend(tail);
        c.pass(&format!("drain-{name}"), body);
    }
}

async fn lagging(c: &mut Captures) {
    let broker = tracked(Broker::builder().ring_max_events(4));
    let s = sid("lagging");
    publish_all(&broker, &s, &[run_started("t", "r1"), text_start("m1")]);
    let mut stream = connect(&broker, &s, ConnectOptions::default());
    let mut body = read(&mut stream).await;
    let last = stream.last_event_id().unwrap();
    for i in 0..8 {
        publish_all(&broker, &s, &[text("m1", &format!("{i}"))]);
    }
    let (tail, ended) = capture(&mut stream, QUIET).await;
    assert!(ended);
    body.extend(tail);
    c.pass("lagging-stream-ends", body);
    drop(stream);
    let mut again = connect(&broker, &s, ConnectOptions::resume(last.to_string()));
    c.pass("lagging-stream-reconnect", read(&mut again).await);
}

#[tokio::test(start_paused = true)]
async fn every_stream_the_broker_writes_for_agui_sessions_passes_the_official_client() {
    let mut c = Captures::default();
    plain_runs(&mut c).await;
    exact_resumes(&mut c).await;
    resyncs_mid_message(&mut c).await;
    resyncs_mid_tool_call(&mut c).await;
    reasoning_steps_and_subagents(&mut c).await;
    between_runs(&mut c).await;
    errors(&mut c).await;
    heartbeats(&mut c).await;
    terminals(&mut c).await;
    lagging(&mut c).await;
    assert!(c.pass.len() >= 30, "{} captures", c.pass.len());

    if node_missing() {
        return;
    }
    install();
    let mut files = Vec::new();
    for (name, body) in c.pass.iter().chain(&c.fail) {
        files.push(write_capture("agui-captures", name, body));
    }
    let verdicts = check_streams(&files);
    for (name, _) in &c.pass {
        let verdict = &verdicts[name];
        assert!(verdict.starts_with("PASS"), "{verdict}");
    }
    for (name, _) in &c.fail {
        let verdict = &verdicts[name];
        assert!(verdict.starts_with("FAIL"), "{name} should fail: {verdict}");
    }
    eprintln!(
        "official client: {} captures PASS, {} broken ones FAIL",
        c.pass.len(),
        c.fail.len()
    );
}
