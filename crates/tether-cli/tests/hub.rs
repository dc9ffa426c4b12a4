//! Hub features outside the contract: in-process load publishing and CORS.

use std::time::Duration;

use tether_conformance::client::{SseConn, StreamOptions, Target, send};
use tether_conformance::hub::Hub;

const EXE: &str = env!("CARGO_BIN_EXE_tether");

fn args(extra: &[&str]) -> Vec<String> {
    extra.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn self_publish_spreads_events_over_connected_sessions() {
    let hub = Hub::spawn(EXE, &args(&["--self-publish", "200"]))
        .await
        .unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let mut conns = Vec::new();
    for s in ["load-a", "load-b"] {
        let c = SseConn::open(
            &target,
            &format!("/api/sse/session/{s}"),
            StreamOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(c.status(), 200);
        conns.push(c);
    }
    for c in &mut conns {
        for _ in 0..3 {
            let f = c.next_event(Duration::from_secs(10)).await.unwrap();
            let v = f.json().unwrap();
            let data = f.data.as_deref().unwrap();
            assert!(v["ts"].as_u64().unwrap() > 1_600_000_000_000_000, "{data}");
            assert!((190..=210).contains(&data.len()), "{} bytes", data.len());
            assert!(f.id.is_some());
        }
    }
}

#[tokio::test]
async fn self_publish_all_reaches_sessions_without_a_connection() {
    let hub = Hub::spawn(EXE, &args(&["--self-publish", "200", "--self-publish-all"]))
        .await
        .unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    // A session that only a publish created: no connection ever.
    let res = send(
        &target,
        "POST",
        "/api/sessions/quiet/events",
        &[("content-type".into(), "application/json".into())],
        br#"{"first":true}"#,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(res.status, 202);
    let first = res.json().unwrap()["ids"][0].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Resuming after the first event replays what the hub published into it meanwhile.
    let mut c = SseConn::open(
        &target,
        "/api/sse/session/quiet",
        StreamOptions {
            headers: vec![("last-event-id".into(), first)],
            ..StreamOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(c.status(), 200);
    let f = c.next_event(Duration::from_secs(10)).await.unwrap();
    let v = f.json().unwrap();
    assert!(v["ts"].as_u64().unwrap() > 1_600_000_000_000_000, "{v}");
}

#[tokio::test]
async fn self_publish_agui_plays_agent_runs_in_every_connected_session() {
    let hub = Hub::spawn(EXE, &args(&["--self-publish-agui", "400"]))
        .await
        .unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let mut conns = Vec::new();
    for s in ["agui-a", "agui-b"] {
        let c = SseConn::open(
            &target,
            &format!("/api/sse/session/{s}"),
            StreamOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(c.status(), 200);
        conns.push(c);
    }
    for (c, session) in conns.iter_mut().zip(["agui-a", "agui-b"]) {
        let mut types = Vec::new();
        while types.len() < 8 {
            let f = c.next_event(Duration::from_secs(10)).await.unwrap();
            let v = f.json().unwrap();
            assert!(f.id.is_some());
            assert!(
                v["rawEvent"]["ts"].as_u64().unwrap() > 1_600_000_000_000_000,
                "{v}"
            );
            if types.is_empty() {
                assert_eq!(v["threadId"], session, "{v}");
            }
            types.push(v["type"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            types[..3],
            ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT"]
        );
    }
}

#[tokio::test]
async fn cors_origins() {
    let hub = Hub::spawn(EXE, &args(&["--cors-origin", "https://app.example"]))
        .await
        .unwrap();
    tether_conformance::cors::assert_allows_only(&hub.base_url(), "https://app.example").await;
}

#[test]
fn replay_subcommand_checks_a_shipped_transcript_in_process() {
    let transcript = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tether-replay/transcripts/flapping_network.jsonl"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["replay", transcript])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.is_empty(), "a report is printed");
}

#[test]
fn replay_subcommand_fails_on_an_unreadable_transcript() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["replay", "/nonexistent/transcript.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn replay_subcommand_checks_a_running_hub_over_http() {
    let hub = Hub::spawn(EXE, &args(&[])).await.unwrap();
    let transcript = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tether-replay/transcripts/reconnect_storm.jsonl"
    );
    let out = tokio::process::Command::new(EXE)
        .args(["replay", transcript, "--url", &hub.base_url()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("violations: none"), "{stdout}");
}

#[tokio::test]
async fn head_on_the_stream_route_answers_headers_without_holding_the_session() {
    let hub = Hub::spawn(EXE, &args(&[])).await.unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let res = send(
        &target,
        "HEAD",
        "/api/sse/session/head-check",
        &[],
        b"",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/event-stream"));
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
    assert_eq!(v["connections"], 0, "{v}");
}

#[tokio::test]
async fn closed_clients_free_their_connections() {
    let hub = Hub::spawn(
        EXE,
        &args(&["--keepalive-secs", "60", "--policy", "reject"]),
    )
    .await
    .unwrap();
    tether_conformance::disconnect::assert_closed_clients_free_their_connections(
        &hub.base_url(),
        "",
        "",
    )
    .await;
}
