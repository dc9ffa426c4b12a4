//! `tether replay` against the hub over real HTTP on loopback: every shipped transcript passes
//! against a hub `--spawn` starts with the transcript's settings, and a hub without them is
//! refused before anything runs, with each difference named.
//!
//! The transcripts run sped up 15 times (`--time-scale 1/15`): their keepalive of 15 s and
//! client timeout of 60 s then become the whole seconds the hub's flags take (1 s and 4 s).

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use tether_conformance::client::{Target, send};
use tether_conformance::hub::Hub;

const EXE: &str = env!("CARGO_BIN_EXE_tether");
const SCALE: &str = "0.0666666666666667";
/// Longest a replay of a shipped transcript may take here (the slowest, slow_reader, takes
/// about 10 s).
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

fn transcript(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tether-replay/transcripts")
        .join(name)
}

async fn replay(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(EXE)
        .arg("replay")
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(REPLAY_TIMEOUT, run)
        .await
        .expect("the replay ends within its bound")
        .expect("tether runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn passes_against_a_spawned_hub(name: &str) {
    let file = transcript(name);
    let started = Instant::now();
    let out = replay(&[
        file.to_str().unwrap(),
        "--spawn",
        "--time-scale",
        SCALE,
        "--slack-ms",
        "3000",
    ])
    .await;
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{name}: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("started a hub at http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("violations: none"), "{stdout}");
    eprintln!(
        "{name}: passed against a spawned hub in {:?}",
        started.elapsed()
    );
}

#[test]
fn the_list_of_shipped_transcripts_is_the_one_tested_here() {
    let mut names: Vec<String> = std::fs::read_dir(transcript(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "agui_text_streaming.jsonl",
            "flapping_network.jsonl",
            "reconnect_storm.jsonl",
            "slow_reader.jsonl",
            "tool_call_approval.jsonl"
        ],
        "a new transcript needs its test against the hub below"
    );
}

#[tokio::test]
async fn agui_text_streaming_passes_against_a_spawned_hub() {
    // The hub tracks AG-UI: the superseded tab's stream ends with `: tether.superseded {}`.
    passes_against_a_spawned_hub("agui_text_streaming.jsonl").await;
}

#[tokio::test]
async fn flapping_network_passes_against_a_spawned_hub() {
    passes_against_a_spawned_hub("flapping_network.jsonl").await;
}

#[tokio::test]
async fn reconnect_storm_passes_against_a_spawned_hub() {
    passes_against_a_spawned_hub("reconnect_storm.jsonl").await;
}

#[tokio::test]
async fn slow_reader_passes_against_a_spawned_hub() {
    passes_against_a_spawned_hub("slow_reader.jsonl").await;
}

#[tokio::test]
async fn tool_call_approval_passes_against_a_spawned_hub() {
    passes_against_a_spawned_hub("tool_call_approval.jsonl").await;
}

#[tokio::test]
async fn a_hub_without_the_settings_a_transcript_needs_is_refused_up_front() {
    let hub = Hub::spawn(EXE, &["--dev".to_owned()]).await.unwrap();
    let file = transcript("slow_reader.jsonl");
    let started = Instant::now();
    let out = replay(&[file.to_str().unwrap(), "--url", &hub.base_url()]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("ring_max_events: transcript needs 8, server has 1024"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ring_max_bytes: transcript needs 4194304, server has 1048576"),
        "{stderr}"
    );
    // The settings that agree are not named.
    assert!(!stderr.contains("keepalive_ms"), "{stderr}");
    assert!(!stderr.contains("client_timeout_ms"), "{stderr}");
    // Nothing ran: no replay, no session on the hub, and no waiting for one.
    assert!(!stdout.contains("replaying"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let target = Target::parse(&hub.base_url()).unwrap();
    let health = send(
        &target,
        "GET",
        "/health/sse",
        &[],
        b"",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(v["sessions"], 0, "{v}");

    // Durations are compared at the time scale: unscaled, the hub's 15 s keepalive is not
    // the 1 s a replay 15 times faster needs.
    let file = transcript("reconnect_storm.jsonl");
    let out = replay(&[
        file.to_str().unwrap(),
        "--url",
        &hub.base_url(),
        "--time-scale",
        SCALE,
    ])
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "keepalive_ms: transcript needs 1000 (15000 in transcript time), server has 15000"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn health_reports_the_settings_the_hub_runs_with() {
    let args: Vec<String> = [
        "--dev",
        "--ring-events",
        "8",
        "--ring-bytes",
        "4096",
        "--keepalive-secs",
        "0",
        "--client-timeout-secs",
        "7",
        "--max-event-bytes",
        "1000",
        "--policy",
        "reject",
    ]
    .map(str::to_owned)
    .to_vec();
    let hub = Hub::spawn(EXE, &args).await.unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let health = send(
        &target,
        "GET",
        "/health/sse",
        &[],
        b"",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(health.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(
        v["settings"],
        serde_json::json!({
            "ring_max_events": 8,
            "ring_max_bytes": 4096,
            "keepalive_ms": null,
            "client_timeout_ms": 7000,
            "max_event_bytes": 1000,
            "approval_timeout_ms": 300000,
            "connection_policy": "reject",
            "reconnect_backoff_max_ms": 30000,
        }),
        "{v}"
    );
    assert_eq!(v["status"], "ok", "the other fields stay: {v}");
}

#[tokio::test]
async fn spawn_refuses_a_stated_duration_the_hub_flags_cannot_express() {
    // 15 s of keepalive at a time scale of 0.05 is 750 ms; the hub takes whole seconds.
    let file = transcript("agui_text_streaming.jsonl");
    let out = replay(&[file.to_str().unwrap(), "--spawn", "--time-scale", "0.05"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("keepalive_ms: the transcript needs 750 ms at this time scale"),
        "{stderr}"
    );
    assert!(!stdout.contains("started a hub"), "{stdout}");
}
