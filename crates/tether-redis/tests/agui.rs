//! AG-UI sessions across nodes: two nodes publishing to one session cannot make its stream
//! invalid (each append is judged after the log's head and stored only if the head has not
//! moved), and a node that meets the session after its log was trimmed builds the prelude
//! from the tracker's checkpoint. Every replay, on every node, passes the official client.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tether_agui::AguiTrackerFactory;
use tether_core::{
    BackplaneError, Broker, BrokerBuilder, ConnectOptions, Event, EventId, EventStream,
    PublishError,
};
use tether_redis::RedisBackplane;

fn agui(builder: BrokerBuilder) -> BrokerBuilder {
    builder.tracker_factory(Arc::new(AguiTrackerFactory::new()))
}

fn event(v: Value) -> Event {
    Event::json(&v).unwrap()
}

fn run_started(run: &str) -> Event {
    event(json!({"type": "RUN_STARTED", "threadId": "t", "runId": run}))
}
fn run_finished(run: &str) -> Event {
    event(json!({"type": "RUN_FINISHED", "threadId": "t", "runId": run}))
}
fn text_start(id: &str) -> Event {
    event(json!({"type": "TEXT_MESSAGE_START", "messageId": id, "role": "assistant"}))
}
fn text(id: &str, delta: &str) -> Event {
    event(json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": id, "delta": delta}))
}
fn text_end(id: &str) -> Event {
    event(json!({"type": "TEXT_MESSAGE_END", "messageId": id}))
}

/// Whether the tracker refused the publish (HTTP 400): the other node got there first.
fn refused(r: &Result<Vec<EventId>, BackplaneError>) -> bool {
    matches!(
        r,
        Err(BackplaneError::Publish(PublishError::Rejected { .. }))
    )
}

/// Reads a stream until it has sent the frame of event `last` (or, without one, until
/// nothing arrives for a while); the bytes as sent.
async fn body(stream: &mut EventStream, last: Option<&str>) -> Vec<u8> {
    let mark = last.map(|id| format!("id: {id}\n"));
    let quiet = Duration::from_millis(if last.is_some() { 3000 } else { 300 });
    let mut out = Vec::new();
    for _ in 0..100_000 {
        if let Some(mark) = &mark {
            let text = String::from_utf8_lossy(&out);
            if text
                .find(mark)
                .is_some_and(|at| text[at..].contains("\n\n"))
            {
                break;
            }
        }
        match tokio::time::timeout(quiet, stream.next()).await {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk),
            _ => break,
        }
    }
    out
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tether-agui/tests/conformance")
}

/// Runs the official client (`@ag-ui/client`, through tether-agui's `check-stream.mjs`) over
/// the bodies; panics on any verdict but PASS. Skipped without node, except under `CI=true`.
fn official_client_accepts(name: &str, bodies: &[(String, Vec<u8>)]) {
    for (label, b) in bodies {
        if let Err(e) = tether_agui::verify_sse(b) {
            panic!("{label}: {e}\n{}", String::from_utf8_lossy(b));
        }
    }
    if tether_testkit::require_tool("node").is_none() {
        return;
    }
    let dir = conformance_dir();
    if !dir.join("node_modules").is_dir() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .expect("npm runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&tmp).unwrap();
    let files: Vec<PathBuf> = bodies
        .iter()
        .enumerate()
        .map(|(i, (_, b))| {
            let path = tmp.join(format!("{i}.sse"));
            std::fs::write(&path, b).unwrap();
            path
        })
        .collect();
    let out = Command::new("node")
        .arg("check-stream.mjs")
        .arg("--quiet")
        .args(&files)
        .current_dir(&dir)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let passed = stdout.lines().filter(|l| l.starts_with("PASS ")).count();
    assert_eq!(
        passed,
        files.len(),
        "the official client refused a replay:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every replay a client can get on `nodes`: from the start, and resumed after each event id.
async fn replays(nodes: &[&RedisBackplane], s: &tether_core::SessionId) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    // The node that appended last knows the head (the others learn it when they read).
    let (epoch, head) = nodes
        .iter()
        .filter_map(|n| n.broker().position(s))
        .max_by_key(|(_, head)| *head)
        .expect("the session");
    let last = EventId { epoch, seq: head }.to_string();
    let mut whole = nodes[0].connect(s, ConnectOptions::new()).await.unwrap();
    let from_start = body(&mut whole, Some(&last)).await;
    drop(whole);
    let ids: Vec<String> = String::from_utf8_lossy(&from_start)
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(str::to_owned)
        .collect();
    all.push(("from the start".to_owned(), from_start));
    let text = String::from_utf8_lossy(&all[0].1).into_owned();
    for (i, id) in ids.iter().enumerate() {
        let node = nodes[i % nodes.len()];
        let mut resumed = node
            .connect(s, ConnectOptions::resume(id.clone()))
            .await
            .unwrap();
        // What the client holds across the reconnect: the stream up to the id, then the
        // resumed response.
        let at = text
            .find(&format!("id: {id}\n"))
            .expect("the id is in the stream");
        let end = at + text[at..].find("\n\n").expect("a whole frame") + 2;
        let until = (*id != last).then_some(last.as_str());
        let seen = [&text.as_bytes()[..end], &body(&mut resumed, until).await].concat();
        all.push((format!("after {id} on node {}", i % nodes.len()), seen));
    }
    // An id the session never had gets a resync and the prelude of whichever node it reaches.
    for (i, node) in nodes.iter().enumerate() {
        let mut resynced = node
            .connect(s, ConnectOptions::resume("0badc0de-7"))
            .await
            .unwrap();
        all.push((
            format!("stale id on node {i}"),
            body(&mut resynced, None).await,
        ));
    }
    all
}

/// Five deltas of message `m`, one publish each.
async fn deltas(node: &RedisBackplane, s: &tether_core::SessionId, m: &str, tag: &str) {
    for i in 0..5 {
        node.publish(s, &[text(m, &format!("{tag}{i} "))])
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_publishing_to_one_agui_session_keep_every_replay_valid() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "ag", agui(Broker::builder())).await;
    let b = node(&redis.url(), "b", "ag", agui(Broker::builder())).await;
    let s = sid("agui-race");
    for round in 0..6 {
        let run = format!("r{round}");
        let (ea, eb) = ([run_started(&run)], [run_started(&format!("{run}-b"))]);
        let (ra, rb) = tokio::join!(a.publish(&s, &ea), b.publish(&s, &eb));
        // Exactly one run starts: the other node's start is judged after it and refused.
        assert!(
            ra.is_ok() != rb.is_ok() && (refused(&ra) || refused(&rb)),
            "round {round}: {ra:?} {rb:?}"
        );
        let started = if ra.is_ok() { run } else { format!("{run}-b") };
        let m = format!("m{round}");
        a.publish(&s, &[text_start(&m)]).await.unwrap();
        // Deltas from both nodes at once all land, in the log's order.
        tokio::join!(deltas(&a, &s, &m, "a"), deltas(&b, &s, &m, "b"));
        // The end and a late delta race: the delta lands before the end or is refused.
        let (ea, eb) = ([text_end(&m)], [text(&m, "late")]);
        let (end, late) = tokio::join!(a.publish(&s, &ea), b.publish(&s, &eb));
        end.unwrap();
        assert!(late.is_ok() || refused(&late), "{late:?}");
        // Both finish the run: one wins.
        let finish = [run_finished(&started)];
        let (fa, fb) = tokio::join!(a.publish(&s, &finish), b.publish(&s, &finish));
        assert!(
            fa.is_ok() != fb.is_ok() && (refused(&fa) || refused(&fb)),
            "round {round}: {fa:?} {fb:?}"
        );
    }
    let bodies = replays(&[&a, &b], &s).await;
    assert!(bodies.len() > 60, "{} replays", bodies.len());
    official_client_accepts("agui-race", &bodies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_meeting_a_trimmed_agui_session_builds_its_prelude_from_the_checkpoint() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let small = || agui(Broker::builder().ring_max_events(8));
    let a = node(&redis.url(), "a", "ck", small()).await;
    let s = sid("agui-long");
    a.publish(&s, &[run_started("r1"), text_start("m1")])
        .await
        .unwrap();
    let mut full = String::new();
    for i in 0..40 {
        let delta = format!("w{i} ");
        full.push_str(&delta);
        a.publish(&s, &[text("m1", &delta)]).await.unwrap();
    }
    // The log keeps 8 events: the run's start is long gone from it.
    let late = node(&redis.url(), "late", "ck", small()).await;
    let mut joined = late
        .connect(&s, ConnectOptions::resume("0badc0de-1"))
        .await
        .unwrap();
    let prelude = body(&mut joined, None).await;
    drop(joined);
    let text_of = String::from_utf8_lossy(&prelude).into_owned();
    assert!(
        text_of.contains(&format!("\"delta\":\"{full}\"")),
        "the prelude holds the whole message so far:\n{text_of}"
    );
    // The late node judges with the whole run in view: it continues the message and refuses
    // a second start.
    late.publish(&s, &[text("m1", "more")]).await.unwrap();
    let again = late.publish(&s, &[run_started("r2")]).await;
    assert!(refused(&again), "{again:?}");
    official_client_accepts("agui-long", &[("late prelude".to_owned(), prelude)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_on_an_agui_session_across_nodes_keep_every_replay_valid() {
    use tether_core::{ApprovalRequest, ApprovalStatus, Backplane};
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "ap", agui(Broker::builder())).await;
    let b = node(&redis.url(), "b", "ap", agui(Broker::builder())).await;
    let s = sid("agui-approvals");
    let request = |id: &str| {
        ApprovalRequest::new(json!({"deploy": id}))
            .id(id)
            .title("Deploy?")
    };
    let approved = ApprovalStatus::Approved { reason: None };
    a.publish(
        &s,
        &[
            run_started("r1"),
            text_start("m1"),
            text("m1", "Deploy?"),
            text_end("m1"),
        ],
    )
    .await
    .unwrap();
    a.publish(&s, &[run_finished("r1")]).await.unwrap();
    // Between runs a notice goes inside a run of its own (the tracker's form), written on
    // the node that asks and decided on the other.
    Backplane::request_approval(&a, &s, request("ap1"))
        .await
        .unwrap();
    Backplane::resolve_approval(&b, &s, "ap1", approved.clone())
        .await
        .unwrap();
    // Inside a run, on the other node.
    b.publish(&s, &[run_started("r2")]).await.unwrap();
    Backplane::request_approval(&b, &s, request("ap2"))
        .await
        .unwrap();
    Backplane::resolve_approval(&a, &s, "ap2", approved)
        .await
        .unwrap();
    a.publish(&s, &[run_finished("r2")]).await.unwrap();
    // A pending one, announced to a client that resyncs on either node.
    Backplane::request_approval(&a, &s, request("ap3"))
        .await
        .unwrap();

    let bodies = replays(&[&b, &a], &s).await;
    let whole = String::from_utf8_lossy(&bodies[0].1).into_owned();
    for id in ["ap1", "ap2", "ap3"] {
        assert!(whole.contains(&format!("\"id\":\"{id}\"")), "{id}: {whole}");
    }
    for (label, body) in bodies.iter().filter(|(l, _)| l.starts_with("stale")) {
        let text = String::from_utf8_lossy(body);
        assert!(
            text.contains("ap3"),
            "{label}: the pending approval: {text}"
        );
    }
    official_client_accepts("agui-approvals", &bodies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_a_session_becoming_agui_judges_its_next_event_as_agui() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "tk", agui(Broker::builder())).await;
    let b = node(&redis.url(), "b", "tk", agui(Broker::builder())).await;
    let s = sid("becomes-agui");
    let plain = || event(json!({"n": 1}));
    // Plain events land from either node without any judging in Redis.
    a.publish(&s, &[plain()]).await.unwrap();
    b.publish(&s, &[plain()]).await.unwrap();
    // B makes the session an AG-UI session; A has not seen it (nobody is connected, so no
    // wake reaches A), judges its next plain event untracked, and Redis sends it back to
    // judge again on the log's head, where the tracker refuses it as it would on one node.
    b.publish(&s, &[run_started("r1")]).await.unwrap();
    let late = a.publish(&s, &[plain()]).await;
    assert!(refused(&late), "{late:?}");
    a.publish(&s, &[text_start("m1")]).await.unwrap();
}
