//! The durable AG-UI run route over real HTTP on 127.0.0.1: the run's stream,
//! a dropped request whose run goes on, a reattach that takes the session
//! over, 409 for a concurrent run, interrupts answered with `resume[]`, and
//! `HttpAgent` of `@ag-ui/client` 1.0.0 driving it all (skipped without node).
#![cfg(feature = "agui")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tether_agui::{AguiRuns, AguiTrackerFactory, RunAgentInput, RunPublisher};
use tether_axum::{Hooks, Service, SocketOptions, SseListener};
use tether_core::{ApprovalOutcome, Broker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// The agent of these tests: streams a message word by word, proposes a tool
/// call, asks for approval, and reports the decision in the run that answers
/// it.
async fn agent(input: RunAgentInput, mut run: RunPublisher) {
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
    for word in ["I", " can", " delete", " /tmp/x", " for", " you."] {
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
        ApprovalOutcome::Approved(_) => "Approved: deleted /tmp/x.",
        ApprovalOutcome::Rejected(_) => "Rejected: kept /tmp/x.",
        ApprovalOutcome::TimedOut => "The approval timed out; nothing was deleted.",
        ApprovalOutcome::Cancelled => "Cancelled: kept /tmp/x.",
    };
    let result = format!("{}-result", run.run_id());
    let _ = run.tool_call_result(&result, "tool-1", text);
    let _ = run.text(&format!("{}-reply", run.run_id()), text);
    let _ = run.finish(None);
}

struct Server {
    addr: String,
    broker: Broker,
}

async fn start() -> Server {
    let broker = Broker::builder()
        .tracker_factory(Arc::new(AguiTrackerFactory::new()))
        .keepalive_interval(Some(Duration::from_secs(5)))
        .start();
    let runs = AguiRuns::new(broker.clone());
    let service = Service::new(broker.clone(), Hooks::allow_all())
        .extension(tether_axum::agui::RunRoute::new(runs, agent));
    let app = tether_axum::router(service);
    let listener = SseListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        SocketOptions::for_client_timeout(broker.config().client_timeout()),
    )
    .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(tether_axum::serve(
        listener,
        app,
        broker.clone(),
        std::future::pending(),
        Duration::ZERO,
    ));
    Server { addr, broker }
}

/// A raw HTTP/1.1 exchange: the status, and the body read so far (chunked
/// framing removed).
struct Exchange {
    stream: TcpStream,
    raw: Vec<u8>,
    status: u16,
    head_len: usize,
    closed: bool,
}

impl Exchange {
    async fn open(
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "POST"
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(req.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut ex = Self {
            stream,
            raw: Vec::new(),
            status: 0,
            head_len: 0,
            closed: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while ex.head_len == 0 {
            assert!(ex.read_some(deadline).await, "no response head");
            if let Some(pos) = ex.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                ex.head_len = pos + 4;
                let head = String::from_utf8_lossy(&ex.raw[..pos]).into_owned();
                ex.status = head.split(' ').nth(1).unwrap().parse().unwrap();
            }
        }
        ex
    }

    async fn post_run(addr: &str, input: &Value) -> Self {
        Self::open(
            addr,
            "POST",
            "/api/agui/run",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "text/event-stream"),
            ],
            input.to_string().as_bytes(),
        )
        .await
    }

    /// Reads once; false once the connection is closed or the deadline passed.
    async fn read_some(&mut self, deadline: Instant) -> bool {
        if self.closed {
            return false;
        }
        let mut buf = [0u8; 8192];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed = true;
                false
            }
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
            Err(_) => false,
        }
    }

    fn is_chunked(&self) -> bool {
        String::from_utf8_lossy(&self.raw[..self.head_len])
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    }

    /// The body so far, without the chunked framing.
    fn body(&self) -> Vec<u8> {
        let raw = &self.raw[self.head_len..];
        if !self.is_chunked() {
            return raw.to_vec();
        }
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(line_end) = raw[at..].windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&raw[at..at + line_end]).into_owned();
            let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
                break;
            };
            let start = at + line_end + 2;
            if size == 0 || raw.len() < start + size + 2 {
                break;
            }
            out.extend_from_slice(&raw[start..start + size]);
            at = start + size + 2;
        }
        out
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body()).into_owned()
    }

    /// Reads until `pred` holds for the body or the connection closes.
    async fn read_until(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + limit;
        while !pred(&self.text()) {
            if !self.read_some(deadline).await {
                break;
            }
        }
    }

    async fn read_to_end(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.read_some(deadline).await {}
        assert!(
            self.closed,
            "the response did not end within {limit:?}:\n{}",
            self.text()
        );
    }
}

fn events(body: &str) -> Vec<Value> {
    tether_agui::sse_data(body.as_bytes())
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn types(body: &str) -> Vec<String> {
    events(body)
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn streamed_text(body: &str, message: &str) -> String {
    events(body)
        .iter()
        .filter(|e| e["type"] == "TEXT_MESSAGE_CONTENT" && e["messageId"] == message)
        .map(|e| e["delta"].as_str().unwrap().to_owned())
        .collect()
}

fn last_id(body: &str) -> String {
    body.lines()
        .rev()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_owned()
}

fn input(thread: &str, run: &str) -> Value {
    json!({"threadId": thread, "runId": run, "messages": [
        {"id": "u-1", "role": "user", "content": "Please delete /tmp/x"}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_streams_until_its_interrupt_and_the_resume_continues_it() {
    let server = start().await;
    let mut first = Exchange::post_run(&server.addr, &input("t-http-1", "run-1")).await;
    assert_eq!(first.status, 200);
    first.read_to_end(Duration::from_secs(10)).await;
    let body = first.text();
    tether_agui::verify_sse(body.as_bytes()).unwrap();
    let docs = events(&body);
    assert_eq!(docs[0]["type"], "RUN_STARTED");
    assert_eq!(docs[0]["input"]["messages"][0]["id"], "u-1");
    let last = docs.last().unwrap();
    assert_eq!(last["outcome"]["type"], "interrupt");
    let interrupt = last["outcome"]["interrupts"][0].clone();
    assert_eq!(interrupt["toolCallId"], "tool-1");
    assert_eq!(
        streamed_text(&body, "run-1-message"),
        "I can delete /tmp/x for you."
    );

    let mut answer = input("t-http-1", "run-2");
    answer["resume"] = json!([{"interruptId": interrupt["id"], "status": "resolved", "payload": {"approved": false, "reason": "keep it"}}]);
    let mut second = Exchange::post_run(&server.addr, &answer).await;
    assert_eq!(second.status, 200);
    second.read_to_end(Duration::from_secs(10)).await;
    let body = second.text();
    tether_agui::verify_sse(body.as_bytes()).unwrap();
    assert_eq!(
        streamed_text(&body, "run-2-reply"),
        "Rejected: kept /tmp/x."
    );
    assert_eq!(types(&body).last().unwrap(), "RUN_FINISHED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_leaves_the_run_going_and_a_reattach_gets_the_rest() {
    let server = start().await;
    let mut slow = input("t-http-drop", "run-1");
    slow["forwardedProps"] = json!({"tokenDelayMs": 100});
    let mut post = Exchange::post_run(&server.addr, &slow).await;
    post.read_until(Duration::from_secs(10), |t| t.contains(" can"))
        .await;
    let seen = post.text();
    drop(post);

    // The run went on without the request; reattach with the last id seen.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let path = "/api/sse/session/t-http-drop";
    let id = last_id(&seen);
    let mut get = Exchange::open(
        &server.addr,
        "GET",
        path,
        &[("Last-Event-ID", id.as_str())],
        b"",
    )
    .await;
    assert_eq!(get.status, 200);
    get.read_until(Duration::from_secs(10), |t| t.contains("\"interrupt\""))
        .await;
    let rest = get.text();
    let whole = format!("{seen}{rest}");
    tether_agui::verify_sse(whole.as_bytes()).unwrap();
    assert_eq!(
        streamed_text(&whole, "run-1-message"),
        "I can delete /tmp/x for you."
    );
    assert!(!rest.contains("tether.resync"), "an exact resume: {rest}");
    assert!(
        server
            .broker
            .has_session(&tether_core::SessionId::new("t-http-drop").unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattach_takes_the_session_over_from_the_run_request() {
    let server = start().await;
    let mut slow = input("t-http-take", "run-1");
    slow["forwardedProps"] = json!({"tokenDelayMs": 100});
    let mut post = Exchange::post_run(&server.addr, &slow).await;
    post.read_until(Duration::from_secs(10), |t| {
        t.contains("TEXT_MESSAGE_CONTENT")
    })
    .await;
    let path = "/api/sse/session/t-http-take";
    let mut get = Exchange::open(&server.addr, "GET", path, &[], b"").await;
    post.read_to_end(Duration::from_secs(10)).await;
    let body = post.text();
    tether_agui::verify_sse(body.as_bytes()).unwrap();
    assert!(body.contains("tether.superseded"), "{body}");
    // Joined mid-run without an id: the prelude re-opens the message.
    get.read_until(Duration::from_secs(10), |t| t.contains("\"interrupt\""))
        .await;
    let body = get.text();
    tether_agui::verify_sse(body.as_bytes()).unwrap();
    assert_eq!(
        streamed_text(&body, "run-1-message"),
        "I can delete /tmp/x for you."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_run_on_a_thread_gets_409() {
    let server = start().await;
    let mut slow = input("t-http-busy", "run-1");
    slow["forwardedProps"] = json!({"tokenDelayMs": 100});
    let mut first = Exchange::post_run(&server.addr, &slow).await;
    first
        .read_until(Duration::from_secs(10), |t| t.contains("RUN_STARTED"))
        .await;
    let mut second = Exchange::post_run(&server.addr, &input("t-http-busy", "run-2")).await;
    second.read_to_end(Duration::from_secs(10)).await;
    assert_eq!(second.status, 409);
    let error: Value = serde_json::from_str(&second.text()).unwrap();
    assert_eq!(error["error"], "run_in_progress");
    first.read_to_end(Duration::from_secs(10)).await;
    tether_agui::verify_sse(first.text().as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_answer_after_the_deadline_gets_run_error_and_cancelled_continues() {
    let server = start().await;
    let mut short = input("t-http-late", "run-1");
    short["forwardedProps"] = json!({"approvalTimeoutMs": 200});
    let mut first = Exchange::post_run(&server.addr, &short).await;
    first.read_to_end(Duration::from_secs(10)).await;
    let last = events(&first.text()).last().cloned().unwrap();
    let id = last["outcome"]["interrupts"][0]["id"].clone();
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut late = input("t-http-late", "run-2");
    late["resume"] = json!([{"interruptId": id, "status": "resolved"}]);
    let mut second = Exchange::post_run(&server.addr, &late).await;
    second.read_to_end(Duration::from_secs(10)).await;
    let body = second.text();
    tether_agui::verify_sse(body.as_bytes()).unwrap();
    assert_eq!(types(&body), ["RUN_STARTED", "RUN_ERROR"]);
    assert_eq!(events(&body)[1]["code"], "interrupt_expired");

    let mut cancel = input("t-http-late", "run-3");
    cancel["resume"] = json!([{"interruptId": id, "status": "cancelled"}]);
    let mut third = Exchange::post_run(&server.addr, &cancel).await;
    third.read_to_end(Duration::from_secs(10)).await;
    let body = third.text();
    tether_agui::verify_sse(body.as_bytes()).unwrap();
    assert_eq!(
        streamed_text(&body, "run-3-reply"),
        "The approval timed out; nothing was deleted."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_json() {
    let server = start().await;
    let mut not_input =
        Exchange::open(&server.addr, "POST", "/api/agui/run", &[], b"{\"x\":1}").await;
    not_input.read_to_end(Duration::from_secs(10)).await;
    assert_eq!(not_input.status, 400);
    assert!(not_input.text().contains("invalid_run_input"));
    let mut bad_thread = Exchange::post_run(&server.addr, &input("not a valid id", "r")).await;
    bad_thread.read_to_end(Duration::from_secs(10)).await;
    assert_eq!(bad_thread.status, 400);
}

fn node_missing() -> bool {
    let missing = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true);
    if missing {
        eprintln!("notice: `node` is not on the PATH; skipping the HttpAgent round trip");
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_http_agent_runs_interrupts_and_resumes_against_the_route() {
    if node_missing() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tether-agui/tests/conformance");
    if !dir.join("node_modules").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    let server = start().await;
    let base = format!("http://{}", server.addr);
    let output = timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("node")
            .arg("http-agent.mjs")
            .arg(&base)
            .current_dir(&dir)
            .output(),
    )
    .await
    .expect("the script finishes within a minute")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    eprintln!("HttpAgent: {report}");
}
