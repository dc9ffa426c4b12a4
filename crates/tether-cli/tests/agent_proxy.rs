//! `tether serve --agent-url`: the hub in front of a real AG-UI agent server.
//!
//! The agent is `tests/agent/agent.py`, built on the official Python SDK (`ag-ui-protocol`
//! 1.0: its event types and `EventEncoder`) on Starlette and uvicorn, run from the virtualenv
//! `tests/agent/.venv` that `scripts/test.sh` creates; it listens on a free loopback port.
//! Without the virtualenv the tests are skipped with a notice, except under `CI=true`, where
//! that fails them. Every stream a browser reads here is also given to `@ag-ui/client` 1.0
//! (`crates/tether-agui/tests/conformance/check-stream.mjs`: `HttpAgent`'s pipeline with
//! `verifyEvents`), under the same rule for a missing `node`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tether_conformance::hub::Hub;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const LIMIT: Duration = Duration::from_secs(15);
const SENTENCE: &str = "The quick brown fox jumps over the lazy dog.";

/// The Python agent, killed when dropped.
struct Agent {
    _child: Child,
    port: u16,
}

impl Agent {
    /// Starts `agent.py`; `None` (after a notice) without the virtualenv, unless `CI=true`.
    async fn start() -> Option<Agent> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agent");
        let python = dir.join(".venv/bin/python");
        let venv = if python.is_file() {
            Ok(())
        } else {
            Err(tether_testkit::MissingTool {
                what: format!("the agent's virtualenv {}", python.display()),
                hint: format!(
                    "run scripts/test.sh, or `python3 -m venv {d}/.venv && {d}/.venv/bin/pip install -r {d}/requirements.txt`",
                    d = dir.display(),
                ),
            })
        };
        if !tether_testkit::require(venv) {
            return None;
        }
        let mut child = Command::new(&python)
            .arg("agent.py")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TETHER_TEST_AGENT_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("the agent's python starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(LIMIT, lines.next_line())
            .await
            .expect("the agent prints its port within 15 s")
            .expect("the agent's stdout")
            .expect("the agent prints `port N`");
        let port = line
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the agent printed {line:?}, not `port N`"));
        Some(Agent {
            _child: child,
            port,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

async fn hub(agent_url: &str, extra: &[&str]) -> Hub {
    let mut args = vec!["--agent-url".to_owned(), agent_url.to_owned()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Hub::spawn(env!("CARGO_BIN_EXE_tether"), &args)
        .await
        .expect("the hub starts")
}

/// One HTTP/1.1 exchange over a raw socket, so a test sees the bytes exactly as the hub
/// wrote them (line ends included) and can drop the connection at any point.
struct Raw {
    sock: TcpStream,
    status: u16,
    head: String,
    raw: Vec<u8>,
    body: Vec<u8>,
    chunked: bool,
    ended: bool,
}

impl Raw {
    async fn open(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Raw {
        let mut sock = TcpStream::connect(addr).await.expect("connect to the hub");
        let body = body.map(Value::to_string);
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(b) = &body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.as_deref().unwrap_or(""));
        sock.write_all(req.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        let end = tokio::time::timeout(LIMIT, async {
            loop {
                if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                    return i;
                }
                let mut buf = [0u8; 4096];
                let n = sock.read(&mut buf).await.expect("read the head");
                assert!(n > 0, "the hub closed before its answer's head");
                raw.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("an answer's head within 15 s");
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let raw = raw[end + 4..].to_vec();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let mut r = Raw {
            sock,
            status,
            head,
            raw,
            body: Vec::new(),
            chunked,
            ended: false,
        };
        r.decode();
        r
    }

    fn decode(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("a chunk size");
            if size == 0 {
                self.ended = true;
                return;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
        }
    }

    /// Reads until `done(body)` holds or the answer ends; panics after the limit.
    async fn until(&mut self, done: impl Fn(&[u8]) -> bool) {
        tokio::time::timeout(LIMIT, async {
            while !done(&self.body) && !self.ended {
                let mut buf = [0u8; 8192];
                let n = self.sock.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    self.ended = true;
                }
                self.raw.extend_from_slice(&buf[..n]);
                self.decode();
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no end within 15 s; read:\n{}",
                String::from_utf8_lossy(&self.body)
            )
        });
    }

    async fn read_to_end(&mut self) -> &[u8] {
        self.until(|_| false).await;
        &self.body
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The events of an SSE body, with their ids.
fn events(body: &[u8]) -> Vec<(Option<String>, Value)> {
    tether_replay::sse::parse(body)
        .into_iter()
        .filter_map(|b| {
            let data = b.data?;
            Some((
                b.id,
                serde_json::from_str(&data).expect("every data line is JSON"),
            ))
        })
        .collect()
}

fn types(body: &[u8]) -> Vec<String> {
    events(body)
        .iter()
        .map(|(_, e)| e["type"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn text(body: &[u8]) -> String {
    events(body)
        .iter()
        .filter(|(_, e)| e["type"] == "TEXT_MESSAGE_CONTENT")
        .filter_map(|(_, e)| e["delta"].as_str().map(str::to_owned))
        .collect()
}

fn last(body: &[u8]) -> Value {
    events(body).pop().map(|(_, e)| e).unwrap_or(Value::Null)
}

fn has_end(body: &[u8]) -> bool {
    events(body)
        .iter()
        .any(|(_, e)| e["type"] == "RUN_FINISHED" || e["type"] == "RUN_ERROR")
}

fn input(thread: &str, run: &str, props: Value) -> Value {
    json!({
        "threadId": thread,
        "runId": run,
        "messages": [{"id": "u-1", "role": "user", "content": "Tell me about the fox"}],
        "forwardedProps": props,
    })
}

const RUN: &str = "/api/agui/run";
const SSE: [(&str, &str); 1] = [("Accept", "text/event-stream")];

async fn post_run(addr: SocketAddr, input: &Value) -> Raw {
    Raw::open(addr, "POST", RUN, &SSE, Some(input)).await
}

/// Bodies for `@ag-ui/client`, checked all at once at the end of a test.
struct Official {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl Official {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tether-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        Self {
            dir,
            files: Vec::new(),
        }
    }

    /// Checks with tether's port of the client's rules now, keeps it for the client itself.
    fn add(&mut self, name: &str, body: &[u8]) {
        assert!(
            !body.contains(&b'\r'),
            "{name}: tether's stream has only LF line ends"
        );
        if let Err(e) = tether_agui::verify_sse(body) {
            panic!("{name}: {e}\n{}", String::from_utf8_lossy(body));
        }
        let path = self.dir.join(format!("{name}.sse"));
        std::fs::write(&path, body).expect("write the body");
        self.files.push(path);
    }

    async fn check(self) {
        if tether_testkit::require_tool("node").is_none() {
            return;
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tether-agui/tests/conformance");
        if !dir.join("node_modules").is_dir() {
            let ok = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .await
                .is_ok_and(|s| s.success());
            assert!(ok, "npm ci in {}", dir.display());
        }
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            Command::new("node")
                .arg("check-stream.mjs")
                .args(&self.files)
                .current_dir(&dir)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("check-stream.mjs within 60 s")
        .expect("node runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "@ag-ui/client refused a stream:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with("PASS ")).count(),
            self.files.len(),
            "{stdout}"
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_and_a_crlf_agent_pass_the_official_client() {
    let Some(agent) = Agent::start().await else {
        return;
    };
    let hub = hub(
        &agent.url(),
        &["--agent-header", "Authorization: Bearer agent-key"],
    )
    .await;
    let mut official = Official::new("proxy-full");
    for mode in ["text", "crlf"] {
        let mut r = post_run(
            hub.addr(),
            &input(&format!("full-{mode}"), "run-1", json!({"mode": mode})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.head);
        let body = r.read_to_end().await.to_vec();
        assert_eq!(text(&body), SENTENCE, "{mode}");
        let t = types(&body);
        assert_eq!(t.first().map(String::as_str), Some("RUN_STARTED"), "{t:?}");
        assert_eq!(t.last().map(String::as_str), Some("RUN_FINISHED"), "{t:?}");
        assert_eq!(
            t.iter().filter(|t| *t == "RUN_STARTED").count(),
            1,
            "one RUN_STARTED: tether's, the agent's is not repeated: {t:?}"
        );
        assert_eq!(last(&body)["runId"], "run-1");
        official.add(&format!("full-{mode}"), &body);
    }
    // The agent's own credentials ride on every call; the browser never sees them.
    let mut r = post_run(
        hub.addr(),
        &input("full-auth", "run-1", json!({"mode": "auth"})),
    )
    .await;
    assert_eq!(text(r.read_to_end().await), "Bearer agent-key");
    let mut metrics = Raw::open(hub.addr(), "GET", "/metrics", &[], None).await;
    let m = String::from_utf8_lossy(metrics.read_to_end().await).into_owned();
    assert!(
        m.contains("tether_agent_runs_total{outcome=\"finished\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("tether_agent_run_duration_seconds_bucket"),
        "{m}"
    );
    assert!(
        m.contains("tether_agent_upstream_errors_total{kind=\"status\"} 0"),
        "{m}"
    );
    official.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_browser_reattaches_with_last_event_id_and_misses_nothing() {
    let Some(agent) = Agent::start().await else {
        return;
    };
    let hub = hub(&agent.url(), &[]).await;
    let thread = "reattach-1";
    let mut first = post_run(
        hub.addr(),
        &input(
            thread,
            "run-1",
            json!({"mode": "text", "tokenDelayMs": 120}),
        ),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.head);
    // Mid-message: three words in, then the browser's connection drops.
    first
        .until(|b| {
            events(b)
                .iter()
                .filter(|(_, e)| e["type"] == "TEXT_MESSAGE_CONTENT")
                .count()
                >= 3
        })
        .await;
    let seen = first.body.clone();
    // Only whole frames count as received; the last id is what a browser would send.
    let cut = seen
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .map_or(0, |i| i + 2);
    let seen = seen[..cut].to_vec();
    let last_id = events(&seen)
        .iter()
        .rev()
        .find_map(|(id, _)| id.clone())
        .expect("the stream's events carry ids");
    assert!(!has_end(&seen), "dropped before the run ended");
    drop(first);
    // Nobody reads the thread for a few words: the agent's run goes on all the same.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let path = format!("/api/sse/session/{thread}");
    let mut second = Raw::open(
        hub.addr(),
        "GET",
        &path,
        &[("Accept", "text/event-stream"), ("Last-Event-ID", &last_id)],
        None,
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.head);
    second.until(has_end).await;
    let rest = second.body.clone();
    let rest_events = events(&rest);
    assert_eq!(
        rest_events.first().map(|(_, e)| e["type"].clone()),
        Some(json!("TEXT_MESSAGE_CONTENT")),
        "an exact resume continues with the next event, no prelude: {rest_events:?}"
    );
    let whole = [text(&seen), text(&rest)].concat();
    assert_eq!(whole, SENTENCE, "the text arrives whole, no gap, no repeat");
    let ids: Vec<String> = events(&seen)
        .into_iter()
        .chain(rest_events)
        .filter_map(|(id, _)| id)
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "no event twice");
    // What the browser saw, as one stream, is one valid run.
    let mut joined = seen.clone();
    let end = rest
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .map_or(rest.len(), |i| i + 2);
    joined.extend_from_slice(&rest[..end]);
    let mut official = Official::new("proxy-reattach");
    official.add("reattached", &joined);
    // A later reader without an id replays the thread's whole history.
    let mut replay = Raw::open(
        hub.addr(),
        "GET",
        &path,
        &[("Accept", "text/event-stream")],
        None,
    )
    .await;
    replay.until(has_end).await;
    let replayed = replay.body.clone();
    assert_eq!(text(&replayed), SENTENCE, "the replay");
    let end = replayed
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .map_or(replayed.len(), |i| i + 2);
    official.add("replayed", &replayed[..end]);
    official.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_end_the_run_with_run_error_and_the_thread_goes_on() {
    let Some(agent) = Agent::start().await else {
        return;
    };
    let hub = hub(&agent.url(), &["--agent-timeout-secs", "2"]).await;
    let mut official = Official::new("proxy-failures");
    for (mode, delay, code, says) in [
        ("fail", 100, "agent_stream_broken", "broke off"),
        ("status", 5, "agent_http_error", "503"),
        ("invalid", 5, "agent_invalid_event", "TEXT_MESSAGE_CONTENT"),
        ("text", 400, "agent_timeout", "within 2 s"),
    ] {
        let thread = format!("fail-{mode}");
        let mut r = post_run(
            hub.addr(),
            &input(
                &thread,
                "run-1",
                json!({"mode": mode, "tokenDelayMs": delay}),
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{mode}: {}", r.head);
        let body = r.read_to_end().await.to_vec();
        let end = last(&body);
        assert_eq!(end["type"], "RUN_ERROR", "{mode}: {end}");
        assert_eq!(end["code"], code, "{mode}: {end}");
        assert!(
            end["message"].as_str().unwrap_or("").contains(says),
            "{mode}: {end}"
        );
        official.add(&format!("fail-{mode}"), &body);
        // The session's stream stayed valid: the thread's next run works.
        let mut next = post_run(
            hub.addr(),
            &input(&thread, "run-2", json!({"mode": "text"})),
        )
        .await;
        let body = next.read_to_end().await.to_vec();
        assert_eq!(text(&body), SENTENCE, "{mode}: the run after the failure");
        official.add(&format!("after-{mode}"), &body);
    }
    let mut metrics = Raw::open(hub.addr(), "GET", "/metrics", &[], None).await;
    let m = String::from_utf8_lossy(metrics.read_to_end().await).into_owned();
    for series in [
        "tether_agent_runs_total{outcome=\"upstream_error\"} 2",
        "tether_agent_runs_total{outcome=\"invalid_event\"} 1",
        "tether_agent_runs_total{outcome=\"timeout\"} 1",
        "tether_agent_upstream_errors_total{kind=\"status\"} 1",
    ] {
        assert!(m.contains(series), "{series} in\n{m}");
    }
    official.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_and_delete_cancels_the_first() {
    let Some(agent) = Agent::start().await else {
        return;
    };
    let hub = hub(&agent.url(), &[]).await;
    let thread = "busy-1";
    let mut first = post_run(
        hub.addr(),
        &input(
            thread,
            "run-1",
            json!({"mode": "text", "tokenDelayMs": 200}),
        ),
    )
    .await;
    assert_eq!(first.status, 200);
    first.until(|b| types(b).len() >= 2).await;
    let mut second = post_run(hub.addr(), &input(thread, "run-2", json!({"mode": "text"}))).await;
    second.read_to_end().await;
    assert_eq!(second.status, 409, "{}", second.head);
    assert_eq!(second.json()["error"], "run_in_progress");

    let path = format!("/api/agui/run/{thread}");
    let mut cancel = Raw::open(hub.addr(), "DELETE", &path, &[], None).await;
    cancel.read_to_end().await;
    assert_eq!(
        cancel.status,
        202,
        "{}",
        String::from_utf8_lossy(&cancel.body)
    );
    assert_eq!(cancel.json()["runId"], "run-1");
    let body = first.read_to_end().await.to_vec();
    let end = last(&body);
    assert_eq!(
        (end["type"].clone(), end["code"].clone()),
        (json!("RUN_ERROR"), json!("cancelled")),
        "{end}"
    );
    assert!(
        text(&body).len() < SENTENCE.len(),
        "cancelled before the end"
    );
    let mut again = Raw::open(hub.addr(), "DELETE", &path, &[], None).await;
    again.read_to_end().await;
    assert_eq!(again.status, 404);
    let mut official = Official::new("proxy-cancel");
    official.add("cancelled", &body);
    official.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_interrupt_is_a_tether_approval_and_resume_reaches_the_agent() {
    let Some(agent) = Agent::start().await else {
        return;
    };
    let hub = hub(&agent.url(), &[]).await;
    let thread = "interrupt-1";
    let mut first = post_run(
        hub.addr(),
        &input(thread, "run-1", json!({"mode": "interrupt"})),
    )
    .await;
    let body = first.read_to_end().await.to_vec();
    let end = last(&body);
    assert_eq!(end["type"], "RUN_FINISHED", "{end}");
    assert_eq!(end["runId"], "run-1");
    let interrupt = &end["outcome"]["interrupts"][0];
    assert_eq!(interrupt["id"], "approve-1", "{end}");
    assert!(
        interrupt["expiresAt"].is_string(),
        "tether's deadline: {end}"
    );
    let approval = format!("/api/sessions/{thread}/approvals/approve-1?waitMs=0");
    let mut status = Raw::open(hub.addr(), "GET", &approval, &[], None).await;
    status.read_to_end().await;
    assert_eq!(
        status.json()["status"],
        "pending",
        "{}",
        String::from_utf8_lossy(&status.body)
    );

    let mut resumed = input(thread, "run-2", json!({"mode": "interrupt"}));
    resumed["parentRunId"] = json!("run-1");
    resumed["resume"] =
        json!([{"interruptId": "approve-1", "status": "resolved", "payload": {"approved": true}}]);
    let mut second = post_run(hub.addr(), &resumed).await;
    assert_eq!(second.status, 200, "{}", second.head);
    let body2 = second.read_to_end().await.to_vec();
    assert_eq!(
        text(&body2),
        "resume approve-1 resolved {\"approved\": true}",
        "the agent got resume[]"
    );
    assert_eq!(last(&body2)["type"], "RUN_FINISHED");
    let mut status = Raw::open(hub.addr(), "GET", &approval, &[], None).await;
    status.read_to_end().await;
    assert_eq!(status.json()["status"], "approved");
    let mut official = Official::new("proxy-interrupt");
    official.add("interrupted", &body);
    official.add("resumed", &body2);
    official.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_agent_is_a_run_error_and_https_is_refused_at_start() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let hub = hub(&format!("http://127.0.0.1:{port}/"), &[]).await;
    let mut r = post_run(hub.addr(), &input("down-1", "run-1", json!({}))).await;
    let body = r.read_to_end().await.to_vec();
    let end = last(&body);
    assert_eq!(end["code"], "agent_unreachable", "{end}");
    assert!(
        end["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot reach the agent")
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args([
            "serve",
            "--dev",
            "--addr",
            "127.0.0.1:0",
            "--agent-url",
            "https://agent.example/",
        ])
        .output()
        .expect("the hub runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("https is not supported"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_is_authorized_like_starting() {
    // No agent is needed: the checks come before any call to it.
    let hub = hub("http://127.0.0.1:9/", &["--user-header", "x-user"]).await;
    let path = "/api/agui/run/alice:t-1";
    for (headers, status) in [
        (&[][..], 401),
        (&[("x-user", "mallory")][..], 403),
        (&[("x-user", "alice")][..], 404),
    ] {
        let mut r = Raw::open(hub.addr(), "DELETE", path, headers, None).await;
        r.read_to_end().await;
        assert_eq!(r.status, status, "DELETE with {headers:?}: {}", r.head);
    }
    let mut r = Raw::open(
        hub.addr(),
        "POST",
        RUN,
        &[("Accept", "text/event-stream"), ("x-user", "mallory")],
        Some(&input("alice:t-1", "run-1", json!({}))),
    )
    .await;
    r.read_to_end().await;
    assert_eq!(r.status, 403, "a run on another user's thread: {}", r.head);
}
