//! Checks of the durable AG-UI run route, `POST /api/agui/run` (the `agui` feature of
//! every adapter, `tether_agui::http::RunRoute`), and the agent they expect behind it.
//!
//! The checks assert what a run does, so the server must run a known agent: mount
//! [`test_agent`] with the run route, on a broker with `tether_agui::AguiTrackerFactory`
//! and a ring of at least 64 events (a run of [`test_agent`] stores about 20; the suite's
//! main server keeps 8 per session, so run the run route on a server of its own):
//!
//! ```
//! use std::sync::Arc;
//! use tether_agui::http::RunRoute;
//! use tether_agui::{AguiRuns, AguiTrackerFactory};
//! use tether_core::Broker;
//! use tether_core::http::{Hooks, Service};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let broker = Broker::builder()
//!     .tracker_factory(Arc::new(AguiTrackerFactory::new()))
//!     .start().expect("valid config");
//! let runs = AguiRuns::new(broker.clone());
//! let service = Service::new(broker, Hooks::allow_all())
//!     .extension(RunRoute::new(runs, tether_conformance::agui::test_agent));
//! // Mount `service` with an adapter, then:
//! // tether_conformance::agui::run_route_all(&base_url, &cfg).await.assert_ok();
//! # drop(service);
//! # }
//! ```
//!
//! Requests carry the suite's user header (when [`SuiteConfig::user_header`] is set) and
//! its publisher token, and every thread is a session of the suite's user (`alice:...`), so
//! a server with the suite's authorizer passes too. Every stream a check reads is run
//! through `tether_agui::verify_sse`, the official client's event rules.
//!
//! [`run_route_all`] runs the checks of [`RUN_CHECKS`] in order; each is also a public
//! function. [`official_http_agent`] drives the same route with `HttpAgent` of
//! `@ag-ui/client` 1.0 under node; it uses fixed thread names without a user, so give it a
//! server of its own whose hooks allow everyone.

use std::time::Duration;

use serde_json::{Value, json};
use tether_agui::{RunAgentInput, RunPublisher};
use tether_core::ApprovalStatus;
use tokio::time::Instant;

use crate::client::SseConn;
use crate::client::StreamOptions;
use crate::sse::Block;
use crate::{CheckError, CheckResult, Ctx, Report, SuiteConfig, ensure};

/// The path of the run route.
pub const RUN_PATH: &str = "/api/agui/run";

/// The text [`test_agent`] streams in the first run of a thread, word by word.
pub const STREAMED_TEXT: &str = "I can delete /tmp/x for you.";

const WORDS: [&str; 6] = ["I", " can", " delete", " /tmp/x", " for", " you."];

/// The agent the run-route checks expect behind `POST /api/agui/run`.
///
/// A new run streams the message `{runId}-message` ([`STREAMED_TEXT`]) one word every
/// `forwardedProps.tokenDelayMs` (default 5 ms), proposes the tool call `tool-1`
/// (`delete_file`, `{"path":"/tmp/x"}`) and asks for its approval, which ends the run with
/// an `interrupt` outcome; the approval times out after `forwardedProps.approvalTimeoutMs`
/// (default 30 s). The run that answers the interrupt (`resume[]`) carries the tool call's
/// result and a reply `{runId}-reply` that names the decision: "Approved: deleted
/// /tmp/x.", "Rejected: kept /tmp/x.", "The approval timed out; nothing was deleted." or
/// "Cancelled: kept /tmp/x.".
pub async fn test_agent(input: RunAgentInput, mut run: RunPublisher) {
    let prop = |name: &str| {
        input
            .forwarded_props
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(Value::as_u64)
    };
    let delay = Duration::from_millis(prop("tokenDelayMs").unwrap_or(5));
    let approval_timeout = Duration::from_millis(prop("approvalTimeoutMs").unwrap_or(30_000));
    let message = format!("{}-message", run.run_id());
    let _ = run.text_start(&message);
    for word in WORDS {
        tokio::time::sleep(delay).await;
        if run.text_content(&message, word).is_err() {
            return;
        }
    }
    let _ = run.text_end(&message);
    let _ = run.tool_call_start("tool-1", "delete_file", Some(&message));
    let _ = run.tool_call_args("tool-1", r#"{"path":"/tmp/x"}"#);
    let _ = run.tool_call_end("tool-1");
    let Ok(approval) = run.request_tool_approval(
        "tool-1",
        "approval",
        json!({"path": "/tmp/x"}),
        approval_timeout,
    ) else {
        return;
    };
    let outcome = approval.await;
    if run.next_run(Duration::from_secs(60)).await.is_err() {
        return;
    }
    let text = match outcome {
        ApprovalStatus::Approved { .. } => "Approved: deleted /tmp/x.",
        ApprovalStatus::Rejected { .. } => "Rejected: kept /tmp/x.",
        ApprovalStatus::TimedOut => "The approval timed out; nothing was deleted.",
        ApprovalStatus::Cancelled | ApprovalStatus::Pending => "Cancelled: kept /tmp/x.",
    };
    let result = format!("{}-result", run.run_id());
    let _ = run.tool_call_result(&result, "tool-1", text);
    let _ = run.text(&format!("{}-reply", run.run_id()), text);
    let _ = run.finish(None);
}

/// Every run-route check [`run_route_all`] runs, in order.
pub const RUN_CHECKS: &[&str] = &[
    "run_stream",
    "run_resume",
    "run_dropped_request",
    "run_reattach_takes_over",
    "run_conflict",
    "run_interrupt_expired",
    "run_bad_requests",
    "run_without_credentials",
];

/// Runs the run-route check called `name` (one of [`RUN_CHECKS`]).
pub async fn run_route_check(name: &str, base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    match name {
        "run_stream" => run_stream(base_url, cfg).await,
        "run_resume" => run_resume(base_url, cfg).await,
        "run_dropped_request" => run_dropped_request(base_url, cfg).await,
        "run_reattach_takes_over" => run_reattach_takes_over(base_url, cfg).await,
        "run_conflict" => run_conflict(base_url, cfg).await,
        "run_interrupt_expired" => run_interrupt_expired(base_url, cfg).await,
        "run_bad_requests" => run_bad_requests(base_url, cfg).await,
        "run_without_credentials" => run_without_credentials(base_url, cfg).await,
        other => Err(CheckError::Skip(format!(
            "no run-route check called {other:?}"
        ))),
    }
}

/// Runs every check of [`RUN_CHECKS`] in order against the server at `base_url`.
pub async fn run_route_all(base_url: &str, cfg: &SuiteConfig) -> Report {
    Report::run_each(RUN_CHECKS, |name| run_route_check(name, base_url, cfg)).await
}

/// A new run's response streams the run: 200 `text/event-stream`, `RUN_STARTED` with the
/// run's input first, the agent's message, every event with an `id:`, and the response ends
/// right after the `RUN_FINISHED` that carries the approval as an interrupt.
pub async fn run_stream(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let thread = ctx.session("run-stream");
    let mut post = post_run(&ctx, &input(&thread, "run-1")).await?;
    let ct = post.header("content-type").unwrap_or("").to_owned();
    ensure!(
        ct.starts_with("text/event-stream"),
        "a run's response has content-type {ct:?}"
    );
    let frames = post.until_end(cfg.timeout).await?;
    verify("the run's response", &frames)?;
    let docs = events(&frames);
    ensure!(
        docs.first().is_some_and(|e| e["type"] == "RUN_STARTED"
            && e["threadId"] == thread.as_str()
            && e["runId"] == "run-1"
            && e["input"]["messages"][0]["id"] == "u-1"),
        "the run did not open with its RUN_STARTED and input: {:?}",
        docs.first()
    );
    let text = streamed_text(&frames, "run-1-message");
    ensure!(text == STREAMED_TEXT, "the run streamed {text:?}");
    ensure!(
        frames
            .iter()
            .filter(|f| f.is_event())
            .all(|f| f.id.is_some()),
        "an event of the run has no id: line, so a reattach cannot resume after it: {frames:?}"
    );
    let last = last_event(&frames)?;
    ensure!(
        last["type"] == "RUN_FINISHED" && last["outcome"]["type"] == "interrupt",
        "the response's last event is not RUN_FINISHED with an interrupt: {last}"
    );
    ensure!(
        last["outcome"]["interrupts"][0]["toolCallId"] == "tool-1",
        "the interrupt does not name the tool call: {last}"
    );
    Ok(())
}

/// A `resume[]` entry that answers the interrupt continues the thread in a new run: the
/// agent reports the decision (rejected here) with the tool call's result, and the response
/// ends after its `RUN_FINISHED`.
pub async fn run_resume(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let thread = ctx.session("run-resume");
    let interrupt = interrupted_run(&ctx, &input(&thread, "run-1")).await?;
    let mut answer = input(&thread, "run-2");
    answer["resume"] = json!([{
        "interruptId": interrupt["id"],
        "status": "resolved",
        "payload": {"approved": false, "reason": "keep it"}
    }]);
    let mut post = post_run(&ctx, &answer).await?;
    let frames = post.until_end(cfg.timeout).await?;
    verify("the resumed run's response", &frames)?;
    let docs = events(&frames);
    ensure!(
        docs.first()
            .is_some_and(|e| e["type"] == "RUN_STARTED" && e["runId"] == "run-2"),
        "the resumed run did not open with RUN_STARTED for run-2: {:?}",
        docs.first()
    );
    ensure!(
        docs.iter()
            .any(|e| e["type"] == "TOOL_CALL_RESULT" && e["toolCallId"] == "tool-1"),
        "the resumed run carries no result of tool-1: {docs:?}"
    );
    let reply = streamed_text(&frames, "run-2-reply");
    ensure!(
        reply == "Rejected: kept /tmp/x.",
        "the agent did not continue with the decision: {reply:?}"
    );
    let last = last_event(&frames)?;
    ensure!(
        last["type"] == "RUN_FINISHED" && last["outcome"]["type"] != "interrupt",
        "the resumed run did not finish: {last}"
    );
    Ok(())
}

/// A dropped run request leaves the run going: a reattach with `GET
/// /api/sse/session/{threadId}` and the last `Last-Event-ID` seen gets the rest of the run
/// exactly (the ids follow on one by one, no resync, no prelude), through its `RUN_FINISHED`.
pub async fn run_dropped_request(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let thread = ctx.session("run-drop");
    let mut post = post_run(&ctx, &slow(input(&thread, "run-1"))).await?;
    let mut seen = Vec::new();
    read_until(&mut post, cfg.timeout, &mut seen, |f| {
        delta(f).as_deref() == Some(" can")
    })
    .await
    .map_err(|e| context("the run's response", e))?;
    drop(post);

    // Words go on being published while nobody is connected.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let last_id = seen
        .iter()
        .rev()
        .find_map(|f| f.id.clone())
        .ok_or_else(|| CheckError::fail(format!("no id: line before the drop: {seen:?}")))?;
    let mut get = ctx
        .subscribe(&thread, &[("Last-Event-ID", last_id.as_str())], "")
        .await?;
    let mut rest = Vec::new();
    read_until(&mut get, cfg.timeout, &mut rest, is_run_finished)
        .await
        .map_err(|e| context("the reattach after the drop", e))?;
    ensure!(
        !rest.iter().any(|f| f.signal().is_some()),
        "the reattach was not an exact resume: {rest:?}"
    );
    let whole: Vec<Block> = seen.iter().chain(&rest).cloned().collect();
    verify(
        "the dropped response and the reattach, as one stream",
        &whole,
    )?;
    let text = streamed_text(&whole, "run-1-message");
    ensure!(
        text == STREAMED_TEXT,
        "the dropped response and the reattach together streamed {text:?}"
    );
    consecutive_ids(&whole)
}

/// A reattach takes the session over from the run request: the run's response ends with
/// `tether.superseded`, and the new stream (without `Last-Event-ID`: a prelude re-opens the
/// message) carries the run through its `RUN_FINISHED`.
pub async fn run_reattach_takes_over(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let thread = ctx.session("run-take");
    let mut post = post_run(&ctx, &slow(input(&thread, "run-1"))).await?;
    let mut before = Vec::new();
    read_until(&mut post, cfg.timeout, &mut before, |f| delta(f).is_some())
        .await
        .map_err(|e| context("the run's response", e))?;
    let mut get = ctx.subscribe(&thread, &[], "").await?;
    let after = post.until_end(cfg.timeout).await.map_err(|e| {
        context(
            "the run's response after a reattach took the session over",
            e,
        )
    })?;
    let post_frames: Vec<Block> = before.into_iter().chain(after).collect();
    ensure!(
        post_frames
            .iter()
            .any(|f| f.signal().as_deref() == Some("tether.superseded")),
        "the run's response ended without tether.superseded: {post_frames:?}"
    );
    verify("the superseded run's response", &post_frames)?;
    let mut frames = Vec::new();
    read_until(&mut get, cfg.timeout, &mut frames, is_run_finished)
        .await
        .map_err(|e| context("the reattach", e))?;
    verify("the reattach", &frames)?;
    let text = streamed_text(&frames, "run-1-message");
    ensure!(
        text == STREAMED_TEXT,
        "the reattach's prelude and live events streamed {text:?}"
    );
    Ok(())
}

/// A second run on a thread while one is in progress gets 409 `run_in_progress`, and the
/// first run goes on to its end.
pub async fn run_conflict(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let thread = ctx.session("run-busy");
    let mut first = post_run(&ctx, &slow(input(&thread, "run-1"))).await?;
    let mut frames = Vec::new();
    read_until(&mut first, cfg.timeout, &mut frames, |f| {
        f.json().is_some_and(|e| e["type"] == "RUN_STARTED")
    })
    .await
    .map_err(|e| context("the first run's response", e))?;
    let body = input(&thread, "run-2").to_string();
    let second = ctx
        .send("POST", RUN_PATH, &run_headers(&ctx), body.as_bytes())
        .await?;
    second
        .expect_error(409, Some("run_in_progress"))
        .map_err(|e| context("a second run on a thread with a run in progress", e))?;
    frames.extend(first.until_end(cfg.timeout).await?);
    verify("the first run's response", &frames)?;
    let last = last_event(&frames)?;
    ensure!(
        last["type"] == "RUN_FINISHED",
        "the first run did not finish after the refused second: {frames:?}"
    );
    Ok(())
}

/// An interrupt answered `resolved` after its deadline gets a run that ends with
/// `RUN_ERROR` (`interrupt_expired`) at once; answered `cancelled`, the thread continues and
/// the agent reports the timeout.
pub async fn run_interrupt_expired(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let thread = ctx.session("run-late");
    let mut short = input(&thread, "run-1");
    short["forwardedProps"] = json!({"approvalTimeoutMs": 200});
    let interrupt = interrupted_run(&ctx, &short).await?;
    // Well past the 200 ms deadline, even on a busy machine.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let mut late = input(&thread, "run-2");
    late["resume"] = json!([{"interruptId": interrupt["id"], "status": "resolved"}]);
    let mut post = post_run(&ctx, &late).await?;
    let frames = post.until_end(cfg.timeout).await?;
    verify("the late answer's run", &frames)?;
    let docs = events(&frames);
    let types: Vec<&str> = docs.iter().filter_map(|e| e["type"].as_str()).collect();
    ensure!(
        types == ["RUN_STARTED", "RUN_ERROR"] && docs[1]["code"] == "interrupt_expired",
        "a resolved answer after the deadline got {docs:?}"
    );

    let mut cancel = input(&thread, "run-3");
    cancel["resume"] = json!([{"interruptId": interrupt["id"], "status": "cancelled"}]);
    let mut post = post_run(&ctx, &cancel).await?;
    let frames = post.until_end(cfg.timeout).await?;
    verify("the cancelled answer's run", &frames)?;
    let reply = streamed_text(&frames, "run-3-reply");
    ensure!(
        reply == "The approval timed out; nothing was deleted.",
        "after a cancelled answer the agent said {reply:?}"
    );
    Ok(())
}

/// Bad requests are refused with the contract's JSON errors: a body that is not a
/// `RunAgentInput` (or not JSON) is 400 `invalid_run_input`, a `threadId` outside the
/// session id grammar 400, and another method 405 with `Allow: POST`.
pub async fn run_bad_requests(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let headers = run_headers(&ctx);
    for body in [&b"{\"x\":1}"[..], b"not json", b""] {
        let reply = ctx.send("POST", RUN_PATH, &headers, body).await?;
        reply
            .expect_error(400, Some("invalid_run_input"))
            .map_err(|e| context(&format!("body {:?}", String::from_utf8_lossy(body)), e))?;
    }
    let bad_thread = input("not a valid id", "run-1").to_string();
    ctx.send("POST", RUN_PATH, &headers, bad_thread.as_bytes())
        .await?
        .expect_error(400, None)
        .map_err(|e| context("threadId \"not a valid id\"", e))?;
    for method in ["GET", "PUT", "DELETE"] {
        let reply = ctx.send(method, RUN_PATH, &ctx.browser(), b"").await?;
        reply
            .expect_error(405, None)
            .map_err(|e| context(&format!("{method} {RUN_PATH}"), e))?;
        let allow = reply.header("allow").unwrap_or("");
        ensure!(
            allow == "POST",
            "{method} {RUN_PATH}: 405 with Allow {allow:?}, not \"POST\""
        );
    }
    Ok(())
}

/// Starting a run needs the subscribe capability on the thread: a head without credentials
/// that announces a 1 MiB body is answered 401 before any of the body is sent (the thread is
/// named in the body, but missing credentials are refused on the head); another user's
/// thread is 403 and starts nothing, so the owner's run then streams. Needs [`SuiteConfig::user_header`].
pub async fn run_without_credentials(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    use tokio::io::AsyncWriteExt;
    let ctx = Ctx::new(base_url, cfg)?;
    if cfg.user_header.is_none() {
        return Err(CheckError::Skip(
            "the server allows everyone (no user header)".into(),
        ));
    }
    let io = |e: std::io::Error| CheckError::fail(format!("POST {RUN_PATH}: {e}"));
    let mut s = tokio::net::TcpStream::connect(ctx.target.addr())
        .await
        .map_err(io)?;
    let host = base_url.trim_start_matches("http://");
    let head = format!(
        "POST {RUN_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.map_err(io)?;
    let answer = crate::client::read_response_head(&mut s, cfg.timeout)
        .await
        .map_err(|e| context("no answer before the body: the body is read first", e))?;
    ensure!(
        answer.status == 401,
        "a run without credentials: {} {:?}",
        answer.status,
        answer.headers
    );
    let thread = ctx.session("foreign");
    let body = input(&thread, "run-1").to_string();
    let mut headers = ctx.browser_as("mallory");
    headers.push(("Accept".into(), "text/event-stream".into()));
    let reply = ctx
        .send("POST", RUN_PATH, &headers, body.as_bytes())
        .await?;
    reply
        .expect_error(403, Some("forbidden"))
        .map_err(|e| context("a run on another user's thread", e))?;
    // Nothing was started: the owner's own run is not refused as a second one (409).
    let mut own = post_run(&ctx, &input(&thread, "run-1")).await?;
    let frames = own.until_end(cfg.timeout).await?;
    verify("the owner's run", &frames)
}

/// `HttpAgent` of `@ag-ui/client` 1.0.0 (under node, the script
/// `crates/tether-agui/tests/conformance/http-agent.mjs` of this workspace) against the run
/// route of the server at `base_url`: a run to its interrupt and the `resume[]` that
/// continues it, 409 for a concurrent run, and an interrupt past its deadline. The server
/// must mount [`test_agent`] and allow everyone (the script sends no credentials, on threads
/// `node-thread-1` to `node-thread-3`).
///
/// Without `node` on the PATH the check is skipped, unless `CI=true`, where it fails. A
/// missing `node_modules` is installed with `npm ci` first.
pub async fn official_http_agent(base_url: &str) -> CheckResult {
    use std::path::Path;
    use tokio::process::Command;

    if let Err(missing) = tether_testkit::find_tool("node") {
        if tether_testkit::in_ci() {
            return Err(CheckError::fail(format!(
                "CI=true and {missing}: the HttpAgent check cannot run"
            )));
        }
        return Err(CheckError::Skip(missing.to_string()));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tether-agui/tests/conformance");
    if !dir.join("node_modules").is_dir() {
        let status = tokio::time::timeout(
            Duration::from_secs(300),
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status(),
        )
        .await
        .map_err(|_| CheckError::fail("npm ci did not finish within 5 minutes"))?
        .map_err(|e| CheckError::fail(format!("npm does not run: {e}")))?;
        ensure!(status.success(), "npm ci failed in {}", dir.display());
    }
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        Command::new("node")
            .arg("http-agent.mjs")
            .arg(base_url)
            .current_dir(&dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| CheckError::fail("http-agent.mjs did not finish within 90 s"))?
    .map_err(|e| CheckError::fail(format!("node does not run: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Option<Value> = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok());
    ensure!(
        output.status.success() && report.as_ref().is_some_and(|r| r["ok"] == true),
        "HttpAgent against {base_url}: {stdout}\n{stderr}"
    );
    Ok(())
}

/// A run's input: one user message on `thread`.
fn input(thread: &str, run: &str) -> Value {
    json!({"threadId": thread, "runId": run, "messages": [
        {"id": "u-1", "role": "user", "content": "Please delete /tmp/x"}
    ]})
}

/// The input with 250 ms between words, so a check can act in the middle of the run: the
/// run's words take 1.5 s, a margin for a busy machine.
fn slow(mut input: Value) -> Value {
    input["forwardedProps"] = json!({"tokenDelayMs": 250});
    input
}

/// The headers of a run request: the suite's browser, the publisher's token, JSON.
fn run_headers(ctx: &Ctx<'_>) -> Vec<(String, String)> {
    let mut headers = ctx.browser();
    headers.extend(ctx.publisher());
    headers.push(("Accept".into(), "text/event-stream".into()));
    headers
}

/// Starts a run; expects 200.
async fn post_run(ctx: &Ctx<'_>, input: &Value) -> Result<SseConn, CheckError> {
    let body = input.to_string();
    let opts = StreamOptions {
        headers: run_headers(ctx),
        recv_buffer: None,
    };
    let conn = SseConn::request(&ctx.target, "POST", RUN_PATH, opts, Some(body.as_bytes())).await?;
    ensure!(
        conn.status() == 200,
        "POST {RUN_PATH} for {} answered {}",
        input["runId"],
        conn.status()
    );
    Ok(conn)
}

/// Runs `input` to its end; returns the interrupt its `RUN_FINISHED` carries.
async fn interrupted_run(ctx: &Ctx<'_>, input: &Value) -> Result<Value, CheckError> {
    let mut post = post_run(ctx, input).await?;
    let frames = post.until_end(ctx.cfg.timeout).await?;
    verify("the first run's response", &frames)?;
    let last = last_event(&frames)?;
    let interrupt = &last["outcome"]["interrupts"][0];
    ensure!(
        last["type"] == "RUN_FINISHED" && interrupt["id"].is_string(),
        "the first run did not end with an interrupt: {last}"
    );
    Ok(interrupt.clone())
}

/// Reads blocks into `out` until one satisfies `pred`; a failure if the stream ends first.
async fn read_until(
    conn: &mut SseConn,
    limit: Duration,
    out: &mut Vec<Block>,
    pred: impl Fn(&Block) -> bool,
) -> CheckResult {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match conn.next(left).await {
            Ok(Some(f)) => {
                let done = pred(&f);
                out.push(f);
                if done {
                    return Ok(());
                }
            }
            Ok(None) => {
                return Err(CheckError::fail(format!(
                    "the stream ended before the awaited event; read {out:?}"
                )));
            }
            Err(CheckError::Timeout) => {
                return Err(CheckError::fail(format!(
                    "the awaited event did not come within {limit:?}; read {out:?}"
                )));
            }
            Err(e) => return Err(e),
        }
    }
}

fn context(what: &str, e: CheckError) -> CheckError {
    match e {
        CheckError::Fail(m) => CheckError::Fail(format!("{what}: {m}")),
        CheckError::Timeout => CheckError::Fail(format!("{what}: timed out")),
        skip => skip,
    }
}

fn is_run_finished(f: &Block) -> bool {
    f.json().is_some_and(|e| e["type"] == "RUN_FINISHED")
}

fn delta(f: &Block) -> Option<String> {
    let e = f.json()?;
    (e["type"] == "TEXT_MESSAGE_CONTENT")
        .then(|| e["delta"].as_str().map(str::to_owned))
        .flatten()
}

/// The data of every event block, as JSON (`Null` for data that is not JSON).
fn events(frames: &[Block]) -> Vec<Value> {
    frames
        .iter()
        .filter_map(|f| f.data.as_deref())
        .map(|d| serde_json::from_str(d).unwrap_or(Value::Null))
        .collect()
}

fn last_event(frames: &[Block]) -> Result<Value, CheckError> {
    events(frames)
        .pop()
        .ok_or_else(|| CheckError::fail(format!("the response carried no event: {frames:?}")))
}

/// The deltas of message `message`, joined.
fn streamed_text(frames: &[Block], message: &str) -> String {
    events(frames)
        .iter()
        .filter(|e| e["type"] == "TEXT_MESSAGE_CONTENT" && e["messageId"] == message)
        .filter_map(|e| e["delta"].as_str())
        .collect()
}

/// The blocks written out again as an SSE stream, for `tether_agui::verify_sse`.
fn to_sse(frames: &[Block]) -> String {
    let mut out = String::new();
    for f in frames {
        for c in &f.comments {
            out.push_str(&format!(": {c}\n"));
        }
        if let Some(id) = &f.id {
            out.push_str(&format!("id: {id}\n"));
        }
        if let Some(event) = &f.event {
            out.push_str(&format!("event: {event}\n"));
        }
        if let Some(retry) = f.retry {
            out.push_str(&format!("retry: {retry}\n"));
        }
        if let Some(data) = &f.data {
            for line in data.split('\n') {
                out.push_str(&format!("data: {line}\n"));
            }
        }
        out.push('\n');
    }
    out
}

/// The official client's event rules over `frames`.
fn verify(what: &str, frames: &[Block]) -> CheckResult {
    tether_agui::verify_sse(to_sse(frames).as_bytes())
        .map(drop)
        .map_err(|e| {
            CheckError::fail(format!(
                "{what} is not a valid AG-UI stream ({e}): {frames:?}"
            ))
        })
}

/// The events' ids are one epoch and count up by one: nothing lost, nothing twice.
fn consecutive_ids(frames: &[Block]) -> CheckResult {
    let mut prev: Option<(&str, u64)> = None;
    for id in frames
        .iter()
        .filter(|f| f.is_event())
        .filter_map(|f| f.id.as_deref())
    {
        let (epoch, seq) = id
            .rsplit_once('-')
            .and_then(|(e, s)| Some((e, s.parse::<u64>().ok()?)))
            .ok_or_else(|| CheckError::fail(format!("event id {id:?} is not <epoch>-<seq>")))?;
        if let Some((pe, ps)) = prev {
            ensure!(
                pe == epoch && seq == ps + 1,
                "event id {id} follows {pe}-{ps}: the events across the drop are not exactly once"
            );
        }
        prev = Some((epoch, seq));
    }
    Ok(())
}
