//! Access control of `tether serve` over real HTTP, one test per attack: who may subscribe,
//! publish and decide, checked on the request head.

use std::time::Duration;

use tether_conformance::client::{SseConn, StreamOptions, Target, send};
use tether_conformance::hub::Hub;
use tether_core::auth::{Claims, mint_hs256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EXE: &str = env!("CARGO_BIN_EXE_tether");
const SECRET: &str = "a-test-secret-of-more-than-32-bytes!";
const PUBLISHER: &str = "publisher-token";
const LIMIT: Duration = Duration::from_secs(10);

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// A hub that checks tokens signed with [`SECRET`] and takes [`PUBLISHER`] for publishing.
async fn jwt_hub(extra: &[&str]) -> (Hub, Target) {
    let mut args = owned(&[
        "--jwt-secret",
        SECRET,
        "--publish-token",
        PUBLISHER,
        "--keepalive-secs",
        "1",
    ]);
    args.extend(owned(extra));
    let hub = Hub::spawn(EXE, &args).await.unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    (hub, target)
}

fn token_for(sub: &str, subscribe: &str) -> String {
    let claims = Claims::expiring_in(Duration::from_secs(3600))
        .subject(sub)
        .subscribe(subscribe);
    mint_hs256(SECRET.as_bytes(), &claims)
}

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {token}"))]
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

#[tokio::test]
async fn no_token_is_401_with_a_bearer_challenge() {
    let (_hub, target) = jwt_hub(&[]).await;
    let (status, code, challenge) = get(&target, "/api/sse/session/alice:chat", &[]).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert_eq!(challenge.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_401_invalid_token() {
    let (_hub, target) = jwt_hub(&[]).await;
    let claims = Claims::expiring_in(Duration::from_secs(3600)).subscribe("*");
    let forged = mint_hs256(b"another-secret-of-more-than-32-bytes!!", &claims);
    let (status, code, challenge) =
        get(&target, "/api/sse/session/alice:chat", &bearer(&forged)).await;
    assert_eq!((status, code.as_str()), (401, "invalid_token"));
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
}

#[tokio::test]
async fn an_expired_token_is_401_invalid_token() {
    let (_hub, target) = jwt_hub(&[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Past the 5 s leeway.
    let expired = mint_hs256(SECRET.as_bytes(), &Claims::new(now - 60).subscribe("*"));
    let (status, code, _) = get(&target, "/api/sse/session/alice:chat", &bearer(&expired)).await;
    assert_eq!((status, code.as_str()), (401, "invalid_token"));
}

#[tokio::test]
async fn a_token_for_another_session_is_403_and_creates_nothing() {
    let (_hub, target) = jwt_hub(&[]).await;
    let bob = token_for("bob", "bob:*");
    let (status, code, _) = get(&target, "/api/sse/session/alice:chat", &bearer(&bob)).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    // The token also travels as the `token` query parameter (plain EventSource).
    let own = SseConn::open(
        &target,
        &format!("/api/sse/session/bob:chat?token={bob}"),
        StreamOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        own.status(),
        200,
        "bob's own session through the query parameter"
    );
}

#[tokio::test]
async fn publishing_without_a_publish_claim_is_refused() {
    let (_hub, target) = jwt_hub(&[]).await;
    let alice = token_for("alice", "alice:*");
    assert_eq!(publish(&target, "alice:chat", vec![]).await, 401);
    assert_eq!(publish(&target, "alice:chat", bearer(&alice)).await, 403);
    let writer = mint_hs256(
        SECRET.as_bytes(),
        &Claims::expiring_in(Duration::from_secs(60)).publish("alice:*"),
    );
    assert_eq!(publish(&target, "alice:chat", bearer(&writer)).await, 202);
    assert_eq!(publish(&target, "alice:chat", bearer(PUBLISHER)).await, 202);
}

#[tokio::test]
async fn head_and_an_unauthorized_get_leave_the_owners_stream_untouched() {
    let (_hub, target) = jwt_hub(&[]).await;
    let alice = token_for("alice", "alice:*");
    let path = "/api/sse/session/alice:chat?clientId=tab-1";
    let mut owner = SseConn::open(
        &target,
        path,
        StreamOptions {
            headers: bearer(&alice),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(owner.status(), 200);
    // An uptime check and an attacker.
    let head = send(
        &target,
        "HEAD",
        "/api/sse/session/alice:chat",
        &bearer(&alice),
        b"",
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert!(head.body.is_empty());
    let (status, _, _) = get(&target, "/api/sse/session/alice:chat?clientId=tab-1", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(publish(&target, "alice:chat", bearer(PUBLISHER)).await, 202);
    let frame = owner.next_event(LIMIT).await.unwrap();
    assert_eq!(
        frame.data.as_deref(),
        Some(r#"{"n":1}"#),
        "still the owner's stream"
    );
}

#[tokio::test]
async fn anonymous_subscribes_leave_the_session_count_unchanged() {
    let (_hub, target) = jwt_hub(&[]).await;
    let sessions = |t: Target| async move {
        let reply = send(&t, "GET", "/health/sse", &[], b"", LIMIT)
            .await
            .unwrap();
        reply.json().unwrap()["sessions"].as_u64().unwrap()
    };
    let before = sessions(target.clone()).await;
    for i in 0..50 {
        let (status, _, _) = get(&target, &format!("/api/sse/session/squat-{i}"), &[]).await;
        assert_eq!(status, 401);
    }
    assert_eq!(sessions(target.clone()).await, before);
}

#[tokio::test]
async fn text_plain_and_foreign_origin_decisions_are_refused_while_the_approval_stays_pending() {
    let (hub, target) = jwt_hub(&[]).await;
    let alice = token_for("alice", "alice:*");
    let created = send(
        &target,
        "POST",
        "/api/sessions/alice:chat/approvals",
        &json_type(bearer(PUBLISHER)),
        br#"{"id":"deploy-1","payload":{}}"#,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let decision = "/api/sessions/alice:chat/approvals/deploy-1/decision";
    // A cross-site `<form enctype="text/plain">` with the browser's cookie.
    let mut form = vec![
        ("Content-Type".to_owned(), "text/plain".to_owned()),
        ("Cookie".to_owned(), format!("tether_token={alice}")),
    ];
    let reply = send(
        &target,
        "POST",
        decision,
        &form,
        br#"{"approved":true,"x":"="}"#,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 415);
    // The same JSON from another site's page.
    form[0].1 = "application/json".into();
    form.push(("Origin".into(), "https://evil.example".into()));
    let reply = send(
        &target,
        "POST",
        decision,
        &form,
        br#"{"approved":true}"#,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json().unwrap()["error"], "origin_not_allowed");
    let status = send(
        &target,
        "GET",
        "/api/sessions/alice:chat/approvals/deploy-1?waitMs=0",
        &bearer(&alice),
        b"",
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(status.json().unwrap()["status"], "pending");
    // Unknown fields are refused too, so a crafted body cannot smuggle meaning in.
    let reply = send(
        &target,
        "POST",
        decision,
        &json_type(bearer(&alice)),
        br#"{"approved":true,"extra":1}"#,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 400);
    // The example page's own origin decides.
    let mut own = json_type(bearer(&alice));
    own.push(("Origin".into(), hub.base_url()));
    let reply = send(
        &target,
        "POST",
        decision,
        &own,
        br#"{"approved":true}"#,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Sends raw bytes and returns the status line's code.
async fn raw_status(target: &Target, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(target.addr()).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn duplicate_and_plus_content_length_are_400() {
    let (_hub, target) = jwt_hub(&[]).await;
    let smuggled = format!(
        "POST /api/sessions/s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PUBLISHER}\r\nContent-Type: application/json\r\nContent-Length: 7\r\nContent-Length: 9\r\n\r\n{{\"n\":1}}"
    );
    assert_eq!(raw_status(&target, smuggled.as_bytes()).await, 400);
    let plus = format!(
        "POST /api/sessions/s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PUBLISHER}\r\nContent-Type: application/json\r\nContent-Length: +7\r\n\r\n{{\"n\":1}}"
    );
    assert_eq!(raw_status(&target, plus.as_bytes()).await, 400);
    let no_host = b"GET /health/sse HTTP/1.1\r\n\r\n";
    assert_eq!(raw_status(&target, no_host).await, 400);
    let same = format!(
        "POST /api/sessions/s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PUBLISHER}\r\nContent-Type: application/json\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n{{\"n\":1}}"
    );
    assert_eq!(
        raw_status(&target, same.as_bytes()).await,
        202,
        "identical values are one"
    );
}

#[tokio::test]
async fn bodies_of_unauthenticated_requests_are_not_read() {
    let (_hub, target) = jwt_hub(&[]).await;
    // A head announcing 1 MiB and no body at all: the answer comes without waiting for it.
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(target.addr()).await.unwrap();
        s.write_all(
            b"POST /api/sessions/s/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{",
        )
        .await
        .unwrap();
        held.push(s);
    }
    for s in &mut held {
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
            .await
            .expect("answered before the body")
            .unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 401"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        // And the connection closes: the unread body is never parsed as a request.
        let rest = tokio::time::timeout(LIMIT, s.read_to_end(&mut Vec::new()))
            .await
            .expect("closed");
        assert!(rest.is_ok());
    }
}

#[tokio::test]
async fn a_stream_ends_at_its_tokens_exp() {
    let (_hub, target) = jwt_hub(&[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let short = mint_hs256(
        SECRET.as_bytes(),
        &Claims::new(now + 3).subscribe("alice:*"),
    );
    let mut conn = SseConn::open(
        &target,
        "/api/sse/session/alice:chat",
        StreamOptions {
            headers: bearer(&short),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(conn.status(), 200);
    let frames = conn.until_end(Duration::from_secs(20)).await.unwrap();
    let retries = frames.iter().filter(|f| f.retry.is_some()).count();
    assert!(
        retries >= 2,
        "the opening retry and the closing one: {frames:?}"
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
    let (_hub, target) = jwt_hub(&[]).await;
    let reply = send(&target, "GET", "/health/sse", &[], b"", LIMIT)
        .await
        .unwrap();
    assert!(reply.json().unwrap().get("mode").is_none());
}

async fn open_as(target: &Target, token: &str, query: &str) -> SseConn {
    SseConn::open(
        target,
        &format!("/api/sse/session/alice:chat?{query}"),
        StreamOptions {
            headers: bearer(token),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn reject_policy_lets_the_same_identity_and_tab_back_after_a_blip() {
    let (_hub, target) = jwt_hub(&["--policy", "reject"]).await;
    let alice = token_for("alice", "alice:*");
    let first = open_as(&target, &alice, "clientId=tab-1").await;
    assert_eq!(first.status(), 200);
    // The network blinked: the old connection still looks alive to the server.
    let back = open_as(&target, &alice, "clientId=tab-1").await;
    assert_eq!(
        back.status(),
        200,
        "the same identity and tab replace their own stream"
    );
    let other_tab = open_as(&target, &alice, "clientId=tab-2").await;
    assert_eq!(other_tab.status(), 409);
    let squatter = token_for("mallory", "alice:*");
    let squat = open_as(&target, &squatter, "clientId=tab-1").await;
    assert_eq!(
        squat.status(),
        409,
        "another identity with the same clientId is refused"
    );
}

#[tokio::test]
async fn a_superseded_tab_is_stopped_only_for_its_own_identity() {
    let (_hub, target) = jwt_hub(&[]).await;
    let alice = token_for("alice", "alice:*");
    let _a = open_as(&target, &alice, "clientId=tab-a").await;
    let b = open_as(&target, &alice, "clientId=tab-b").await;
    assert_eq!(b.status(), 200);
    let again = open_as(&target, &alice, "clientId=tab-a").await;
    assert_eq!(
        again.status(),
        204,
        "the superseded tab stops while its successor streams"
    );
    let eve = token_for("eve", "alice:*");
    let other = open_as(&target, &eve, "clientId=tab-a").await;
    assert_eq!(
        other.status(),
        200,
        "no 204 for another identity's clientId"
    );
}

#[tokio::test]
async fn sessions_created_by_connecting_are_capped_per_identity() {
    let (_hub, target) = jwt_hub(&["--max-sessions-per-subject", "3"]).await;
    let alice = token_for("alice", "alice:*");
    let mut held = Vec::new();
    for i in 0..3 {
        let c = SseConn::open(
            &target,
            &format!("/api/sse/session/alice:s{i}"),
            StreamOptions {
                headers: bearer(&alice),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(c.status(), 200);
        held.push(c);
    }
    let (status, code, _) = get(&target, "/api/sse/session/alice:s3", &bearer(&alice)).await;
    assert_eq!(
        (status, code.as_str()),
        (429, "too_many_sessions_for_subject")
    );
}
