//! Helpers for the tests that drive a broker with AG-UI sessions: a tracked
//! broker, event builders, stream capture, and the official client's stream
//! checker.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tether_agui::AguiTrackerFactory;
use tether_core::{Broker, BrokerBuilder, EventId, EventStream, SessionId};

pub fn sid(s: &str) -> SessionId {
    SessionId::new(s).unwrap()
}

/// A broker whose AG-UI sessions are tracked.
pub fn tracked(builder: BrokerBuilder) -> Broker {
    builder
        .tracker_factory(Arc::new(AguiTrackerFactory::new()))
        .start()
        .expect("valid config")
}

pub fn run_started(thread: &str, run: &str) -> Value {
    json!({"type": "RUN_STARTED", "threadId": thread, "runId": run})
}
pub fn run_finished(thread: &str, run: &str) -> Value {
    json!({"type": "RUN_FINISHED", "threadId": thread, "runId": run})
}
pub fn run_error(message: &str) -> Value {
    json!({"type": "RUN_ERROR", "message": message})
}
pub fn text_start(id: &str) -> Value {
    json!({"type": "TEXT_MESSAGE_START", "messageId": id, "role": "assistant"})
}
pub fn text(id: &str, delta: &str) -> Value {
    json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": id, "delta": delta})
}
pub fn text_end(id: &str) -> Value {
    json!({"type": "TEXT_MESSAGE_END", "messageId": id})
}
pub fn tool_start(id: &str, name: &str, parent: Option<&str>) -> Value {
    let mut v = json!({"type": "TOOL_CALL_START", "toolCallId": id, "toolCallName": name});
    if let Some(p) = parent {
        v["parentMessageId"] = p.into();
    }
    v
}
pub fn tool_args(id: &str, delta: &str) -> Value {
    json!({"type": "TOOL_CALL_ARGS", "toolCallId": id, "delta": delta})
}
pub fn tool_end(id: &str) -> Value {
    json!({"type": "TOOL_CALL_END", "toolCallId": id})
}
pub fn tool_result(message: &str, call: &str, content: &str) -> Value {
    json!({"type": "TOOL_CALL_RESULT", "messageId": message, "toolCallId": call, "content": content})
}
pub fn state(snapshot: Value) -> Value {
    json!({"type": "STATE_SNAPSHOT", "snapshot": snapshot})
}
pub fn delta(ops: Value) -> Value {
    json!({"type": "STATE_DELTA", "delta": ops})
}
pub fn step(name: &str, started: bool) -> Value {
    let ty = if started {
        "STEP_STARTED"
    } else {
        "STEP_FINISHED"
    };
    json!({"type": ty, "stepName": name})
}

/// Publishes each event, panicking on a refusal; returns the ids.
pub fn publish_all(broker: &Broker, session: &SessionId, events: &[Value]) -> Vec<EventId> {
    events
        .iter()
        .map(|e| {
            broker
                .publish(session, e)
                .unwrap_or_else(|err| panic!("{e} refused: {err}"))
        })
        .collect()
}

/// Reads chunks until nothing arrives for `quiet` (or the stream ends);
/// returns the bytes and whether the stream ended.
pub async fn capture(stream: &mut EventStream, quiet: Duration) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    for _ in 0..100_000 {
        match tokio::time::timeout(quiet, stream.next()).await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return (bytes, true),
            Err(_) => break,
        }
    }
    (bytes, false)
}

pub const QUIET: Duration = Duration::from_millis(5);

/// The JSON data documents of a body, as the client parses them.
pub fn data(body: &[u8]) -> Vec<Value> {
    tether_agui::sse_data(body)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The `type`s of a body's events (CUSTOM events as `CUSTOM:<name>`).
pub fn types(body: &[u8]) -> Vec<String> {
    data(body)
        .iter()
        .map(|v| {
            let ty = v["type"].as_str().unwrap_or_default();
            if ty == "CUSTOM" {
                format!("CUSTOM:{}", v["name"].as_str().unwrap_or_default())
            } else {
                ty.to_owned()
            }
        })
        .collect()
}

/// Asserts that the Rust port of the client's checks accepts `body`.
pub fn assert_valid(body: &[u8]) {
    if let Err(e) = tether_agui::verify_sse(body) {
        panic!("{e}\n--- body ---\n{}", String::from_utf8_lossy(body));
    }
}

pub fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// Whether node is missing (then prints a notice; under `CI=true` it fails the test).
pub fn node_missing() -> bool {
    tether_testkit::require_tool("node").is_none()
}

/// Installs the pinned packages once per test process.
pub fn install() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let dir = conformance_dir();
        if dir.join("node_modules").is_dir() {
            return Ok(());
        }
        let output = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .map_err(|err| format!("could not run npm: {err}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "npm ci failed in {}:\n{}",
                dir.display(),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// Writes a captured body under the test's temporary directory.
pub fn write_capture(dir: &str, name: &str, body: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}.sse"));
    std::fs::write(&path, body).expect("writes the capture");
    path
}

/// Runs `check-stream.mjs` over `files`; returns each file's verdict line by
/// file stem.
pub fn check_streams(files: &[PathBuf]) -> BTreeMap<String, String> {
    let mut verdicts = BTreeMap::new();
    // A bounded number of files per node process keeps command lines short.
    for batch in files.chunks(64) {
        let output = Command::new("node")
            .arg("check-stream.mjs")
            .arg("--quiet")
            .args(batch)
            .current_dir(conformance_dir())
            .output()
            .expect("node runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines() {
            let rest = line
                .strip_prefix("PASS ")
                .or_else(|| line.strip_prefix("FAIL "));
            let Some(rest) = rest else { continue };
            let path = rest.split(": ").next().expect("a path");
            let stem = Path::new(path)
                .file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            verdicts.insert(stem, line.to_owned());
        }
        if stdout.trim().is_empty() {
            panic!(
                "check-stream.mjs gave no verdicts:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    assert_eq!(
        verdicts.len(),
        files.len(),
        "check-stream.mjs gave no verdict for some files"
    );
    verdicts
}
