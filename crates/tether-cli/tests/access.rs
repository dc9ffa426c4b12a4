//! Access control of `tether serve` over real HTTP: every attack of
//! `tether_conformance::access` against a hub with `--jwt-secret` (and a second one with the
//! Reject policy), then what only the hub has: its startup refusals, `--dev`, the user
//! header, and its own framing rules.

use std::time::Duration;

use tether_conformance::access::{AccessConfig, run_all};
use tether_conformance::client::{Target, send};
use tether_conformance::hub::Hub;

const EXE: &str = env!("CARGO_BIN_EXE_tether");
const LIMIT: Duration = Duration::from_secs(10);

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// A hub that checks the suite's tokens, with `extra` flags.
async fn jwt_hub(cfg: &AccessConfig, extra: &[&str]) -> (Hub, Target) {
    let mut args = cfg.hub_args();
    args.extend(owned(extra));
    let hub = Hub::spawn(EXE, &args).await.unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    (hub, target)
}

fn json_type(mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers.push(("Content-Type".into(), "application/json".into()));
    headers
}

async fn get(
    target: &Target,
    path: &str,
    headers: &[(String, String)],
) -> (u16, String, Option<String>) {
    let reply = send(target, "GET", path, headers, b"", LIMIT)
        .await
        .unwrap();
    let challenge = reply.header("www-authenticate").map(str::to_owned);
    let code = reply
        .json()
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (reply.status, code, challenge)
}

async fn publish(target: &Target, session: &str, headers: Vec<(String, String)>) -> u16 {
    let path = format!("/api/sessions/{session}/events");
    send(
        target,
        "POST",
        &path,
        &json_type(headers),
        br#"{"n":1}"#,
        LIMIT,
    )
    .await
    .unwrap()
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_refuses_every_known_attack() {
    let mut cfg = AccessConfig::default();
    let (hub, _) = jwt_hub(&cfg, &[]).await;
    let (reject, _) = jwt_hub(&cfg, &["--policy", "reject"]).await;
    cfg.server_pid = hub.pid();
    cfg.reject_base_url = Some(reject.base_url());
    let report = run_all(&hub.base_url(), &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}

/// Sends raw bytes and returns the status line's code.
async fn raw_status(target: &Target, request: &[u8]) -> u16 {
    tether_conformance::client::raw_status(target, request, LIMIT)
        .await
        .expect("an answer")
}

#[tokio::test]
async fn duplicate_and_plus_content_length_are_400() {
    let cfg = AccessConfig::default();
    let (_hub, target) = jwt_hub(&cfg, &[]).await;
    let token = &cfg.publish_token;
    let smuggled = format!(
        "POST /api/sessions/s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 7\r\nContent-Length: 9\r\n\r\n{{\"n\":1}}"
    );
    assert_eq!(raw_status(&target, smuggled.as_bytes()).await, 400);
    let plus = format!(
        "POST /api/sessions/s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: +7\r\n\r\n{{\"n\":1}}"
    );
    assert_eq!(raw_status(&target, plus.as_bytes()).await, 400);
    let no_host = b"GET /health/sse HTTP/1.1\r\n\r\n";
    assert_eq!(raw_status(&target, no_host).await, 400);
    let same = format!(
        "POST /api/sessions/s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n{{\"n\":1}}"
    );
    assert_eq!(
        raw_status(&target, same.as_bytes()).await,
        202,
        "identical values are one"
    );
}

#[tokio::test]
async fn the_user_header_twice_is_400_and_a_colon_in_the_name_is_403() {
    let hub = Hub::spawn(EXE, &owned(&["--user-header", "x-user"]))
        .await
        .unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let twice = vec![
        ("x-user".to_owned(), "alice".to_owned()),
        ("x-user".to_owned(), "bob".to_owned()),
    ];
    let (status, code, _) = get(&target, "/api/sse/session/alice:chat?probe=1", &twice).await;
    assert_eq!((status, code.as_str()), (400, "invalid_user_header"));
    let colon = vec![("x-user".to_owned(), "alice:".to_owned())];
    let (status, _, _) = get(&target, "/api/sse/session/alice:chat?probe=1", &colon).await;
    assert_eq!(status, 403);
    // The user header never grants publishing.
    let alice = vec![("x-user".to_owned(), "alice".to_owned())];
    assert_eq!(publish(&target, "alice:chat", alice).await, 401);
}

#[test]
fn the_hub_without_credentials_exits_2() {
    let out = std::process::Command::new(EXE)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("TETHER_DEV")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for named in ["--jwt-secret", "--jwt-public-key", "--user-header", "--dev"] {
        assert!(err.contains(named), "{err}");
    }
}

#[tokio::test]
async fn dev_mode_says_so_in_health() {
    let hub = Hub::spawn(EXE, &[]).await.unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let reply = send(&target, "GET", "/health/sse", &[], b"", LIMIT)
        .await
        .unwrap();
    assert_eq!(reply.json().unwrap()["mode"], "dev");
    let (_hub, target) = jwt_hub(&AccessConfig::default(), &[]).await;
    let reply = send(&target, "GET", "/health/sse", &[], b"", LIMIT)
        .await
        .unwrap();
    assert!(reply.json().unwrap().get("mode").is_none());
}
