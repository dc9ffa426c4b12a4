//! Runs the official AG-UI 1.0 TypeScript client (`@ag-ui/client` and
//! `@ag-ui/core` 1.0.0, pinned in `tests/conformance/package-lock.json`) over
//! the fixtures and over events built in Rust.
//!
//! Needs `node` (20 or later) on the PATH; without it every test here prints
//! a notice and returns. With it, a missing `node_modules` is installed once
//! with `npm ci`, and a failed install fails the tests.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::json;
use tether_agui::{
    Custom, Event, Interrupt, MessagesSnapshot, RunFinished, RunFinishedOutcome, RunStarted,
    TextMessageContent, TextMessageEnd, TextMessageRole, TextMessageStart,
};

/// Whether node is missing (then prints a notice; under `CI=true` it fails the test).
fn node_missing() -> bool {
    tether_testkit::require_tool("node").is_none()
}

/// Installs the pinned packages once per test process.
fn install() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let dir = common::conformance_dir();
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

fn node(script: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(common::conformance_dir())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("writes stdin");
    }
    child.wait_with_output().expect("node runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs check-stream.mjs and returns each file's verdict line by file name.
fn check_streams(files: &[PathBuf]) -> BTreeMap<String, String> {
    let args: Vec<&str> = files
        .iter()
        .map(|path| path.to_str().expect("UTF-8 path"))
        .collect();
    let mut with_quiet = vec!["--quiet"];
    with_quiet.extend(args);
    let output = node("check-stream.mjs", &with_quiet, None);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut verdicts = BTreeMap::new();
    for line in stdout.lines() {
        let (verdict, rest) = if let Some(rest) = line.strip_prefix("PASS ") {
            ("PASS", rest)
        } else if let Some(rest) = line.strip_prefix("FAIL ") {
            ("FAIL", rest)
        } else {
            continue;
        };
        let path = rest.split(": ").next().expect("a path");
        let name = Path::new(path)
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        verdicts.insert(name, format!("{verdict} {rest}"));
    }
    assert_eq!(
        verdicts.len(),
        files.len(),
        "check-stream.mjs gave no verdict for some files:\n{}",
        text(&output)
    );
    let any_failed = verdicts.values().any(|verdict| verdict.starts_with("FAIL"));
    assert_eq!(
        output.status.success(),
        !any_failed,
        "exit status disagrees with the verdicts"
    );
    verdicts
}

#[test]
fn fixture_streams_get_the_verdicts_their_names_promise() {
    if node_missing() {
        return;
    }
    install();
    let dir = common::data_dir().join("streams");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("streams directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sse"))
        .collect();
    files.sort();
    for required in [
        "pass-plain-run.sse",
        "pass-heartbeat-comment.sse",
        "pass-id-only-frame.sse",
        "fail-content-before-start.sse",
        "fail-custom-before-run-started.sse",
        "fail-custom-after-run-finished.sse",
    ] {
        assert!(dir.join(required).is_file(), "missing fixture {required}");
    }

    let verdicts = check_streams(&files);
    for (name, verdict) in &verdicts {
        if name.starts_with("pass-") {
            assert!(verdict.starts_with("PASS"), "{name} should pass: {verdict}");
        } else if name.starts_with("fail-") {
            assert!(verdict.starts_with("FAIL"), "{name} should fail: {verdict}");
        } else {
            panic!("{name}: a stream fixture's name starts with pass- or fail-");
        }
    }
    assert!(
        verdicts["fail-content-before-start.sse"].contains("No active text message"),
        "{}",
        verdicts["fail-content-before-start.sse"]
    );
    assert!(
        verdicts["fail-custom-before-run-started.sse"]
            .contains("First event must be 'RUN_STARTED'"),
        "{}",
        verdicts["fail-custom-before-run-started.sse"]
    );
}

#[test]
fn fixture_files_get_the_official_schema_verdicts() {
    if node_missing() {
        return;
    }
    install();
    let data = common::data_dir();
    let path = |name: &str| data.join(name).to_string_lossy().into_owned();
    let runs: [(&str, Vec<String>); 5] = [
        (
            "valid events",
            vec!["--strict".into(), "--coverage".into(), path("events.jsonl")],
        ),
        (
            "run inputs",
            vec![
                "--strict".into(),
                "--schema".into(),
                "RunAgentInputSchema".into(),
                path("run-agent-input.jsonl"),
            ],
        ),
        (
            "invalid events",
            vec!["--invalid".into(), path("invalid-events.jsonl")],
        ),
        (
            "legacy events, bare schema",
            vec!["--invalid".into(), path("legacy-events.jsonl")],
        ),
        (
            "legacy events, client stages",
            vec!["--client".into(), path("legacy-events.jsonl")],
        ),
    ];
    for (what, args) in runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = node("validate-events.mjs", &args, None);
        assert!(output.status.success(), "{what}:\n{}", text(&output));
    }
}

#[test]
fn events_built_in_rust_pass_the_official_schemas() {
    if node_missing() {
        return;
    }
    install();
    let mut jsonl = String::new();
    for event in common::built_events()
        .into_iter()
        .chain(common::minimal_events())
    {
        jsonl.push_str(&serde_json::to_string(&event).expect("serializes"));
        jsonl.push('\n');
    }
    let output = node(
        "validate-events.mjs",
        &["--strict", "--coverage"],
        Some(&jsonl),
    );
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}

/// Writes `events` as the SSE body tether sends: a `retry:` hint, then one
/// `id:`/`data:` frame per event, LF line endings.
fn sse_body(events: &[Event]) -> String {
    let mut body = String::from("retry: 3000\n\n");
    for (index, event) in events.iter().enumerate() {
        let data = serde_json::to_string(event).expect("serializes");
        body.push_str(&format!("id: 7f3a9c-{}\ndata: {data}\n\n", index + 1));
    }
    body
}

#[test]
fn a_stream_of_rust_events_passes_the_client_and_a_broken_one_fails() {
    if node_missing() {
        return;
    }
    install();
    let run = |run_id: &str| RunStarted {
        thread_id: "thread-1".into(),
        run_id: run_id.into(),
        ..Default::default()
    };
    let good: Vec<Event> = vec![
        run("run-1").into(),
        TextMessageStart {
            message_id: "msg-1".into(),
            role: Some(TextMessageRole::Assistant),
            ..Default::default()
        }
        .into(),
        TextMessageContent {
            message_id: "msg-1".into(),
            delta: "Booking now.".into(),
            timestamp: Some(1_767_225_600_000),
            ..Default::default()
        }
        .into(),
        TextMessageEnd {
            message_id: "msg-1".into(),
            ..Default::default()
        }
        .into(),
        RunFinished {
            thread_id: "thread-1".into(),
            run_id: "run-1".into(),
            ..Default::default()
        }
        .into(),
        run("run-1").into(),
        MessagesSnapshot::default().into(),
        Custom {
            name: "tether.resync".into(),
            value: json!({"reason": "epoch", "lastEventId": "0b1d2e-9", "resumeFrom": "7f3a9c-5"}),
            ..Default::default()
        }
        .into(),
        RunFinished {
            thread_id: "thread-1".into(),
            run_id: "run-1".into(),
            outcome: Some(RunFinishedOutcome::Interrupt {
                interrupts: vec![Interrupt {
                    id: "approval-1".into(),
                    reason: "approval".into(),
                    expires_at: Some("2030-01-01T00:00:00Z".into()),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }
        .into(),
    ];
    let mut broken = good.clone();
    broken.insert(
        5,
        Custom {
            name: "tether.superseded".into(),
            value: json!({}),
            ..Default::default()
        }
        .into(),
    );

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tether-agui-official-client");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good_path = dir.join("rust-good.sse");
    let broken_path = dir.join("rust-custom-between-runs.sse");
    std::fs::write(&good_path, sse_body(&good)).expect("writes");
    std::fs::write(&broken_path, sse_body(&broken)).expect("writes");

    let verdicts = check_streams(&[good_path, broken_path]);
    assert!(
        verdicts["rust-good.sse"].starts_with("PASS"),
        "{verdicts:?}"
    );
    let broken = &verdicts["rust-custom-between-runs.sse"];
    assert!(
        broken.starts_with("FAIL") && broken.contains("already finished"),
        "{broken}"
    );
}
