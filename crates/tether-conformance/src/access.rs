//! Access-control checks, one per attack, for a server that checks signed tokens: who may
//! subscribe, publish and decide, checked on the request head before any body is read.
//!
//! The server under test checks HS256 tokens signed with [`AccessConfig::secret`], takes
//! [`AccessConfig::publish_token`] as the static publisher token, and caps the sessions one
//! identity creates by connecting at [`AccessConfig::max_sessions_per_subject`].
//! [`AccessConfig::hooks`] gives an application's test server those hooks and
//! [`AccessConfig::hub_args`] gives `tether serve` those flags. [`run_all`] runs every check
//! of [`CHECKS`], [`run_check`] one of them.
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! let cfg = tether_conformance::access::AccessConfig::default();
//! tether_conformance::access::run_all("http://127.0.0.1:8080", &cfg).await.assert_ok();
//! # }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_core::auth::{Claims, mint_hs256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::client::{Reply, SseConn, StreamOptions, Target, send};
use crate::{CheckError, CheckResult, Outcome, Report, ensure};

/// What the access checks expect of the server under test.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// The HS256 secret the server checks tokens against.
    pub secret: String,
    /// The static publisher token.
    pub publish_token: String,
    /// Sessions one identity may create by connecting.
    pub max_sessions_per_subject: usize,
    /// Base URL of a second server with the Reject policy and the same keys, for
    /// the `reject_policy_blip` check; skipped without one.
    pub reject_base_url: Option<String>,
    /// The server's process id, for `unauthenticated_bodies_are_not_read` check's memory
    /// bound (`std::process::id()` for a server in the test's own process); without one
    /// only the early answer is checked.
    pub server_pid: Option<u32>,
    /// Bound of each wait for something that should come promptly.
    pub timeout: Duration,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            secret: "conformance-secret-of-at-least-32-bytes".into(),
            publish_token: "conformance-publisher".into(),
            max_sessions_per_subject: 3,
            reject_base_url: None,
            server_pid: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl AccessConfig {
    /// The hooks an application's test server uses: tokens signed with the secret, and
    /// the static publisher token.
    pub fn hooks(&self) -> tether_core::http::Hooks {
        let keys = tether_core::auth::JwtKeys::hs256(self.secret.as_bytes())
            .expect("the configured secret is long enough");
        tether_core::http::Hooks::jwt(keys).publish_token(self.publish_token.as_str())
    }

    /// A broker as the checks expect it: heartbeats every second, the per-identity session
    /// cap, and `policy`.
    pub fn broker(&self, policy: tether_core::ConnectionPolicy) -> tether_core::Broker {
        tether_core::Broker::builder()
            .keepalive_interval(Duration::from_secs(1))
            .max_sessions_per_subject(self.max_sessions_per_subject)
            .connection_policy(policy)
            .start()
            .expect("valid config")
    }

    /// The `tether serve` flags of this configuration (with the Replace policy).
    pub fn hub_args(&self) -> Vec<String> {
        vec![
            "--jwt-secret".into(),
            self.secret.clone(),
            "--publish-token".into(),
            self.publish_token.clone(),
            "--max-sessions-per-subject".into(),
            self.max_sessions_per_subject.to_string(),
            "--keepalive-secs".into(),
            "1".into(),
        ]
    }

    /// A token of `sub` that may subscribe to `pattern`, valid for an hour.
    pub fn subscriber(&self, sub: &str, pattern: &str) -> String {
        let claims = Claims::expiring_in(Duration::from_secs(3600))
            .subject(sub)
            .subscribe(pattern);
        mint_hs256(self.secret.as_bytes(), &claims)
    }
}

/// Every check [`run_all`] runs, in order.
pub const CHECKS: &[&str] = &[
    "no_token",
    "token_of_another_key",
    "expired_token",
    "token_for_another_session",
    "publish_without_a_publish_claim",
    "head_and_unauthorized_get_leave_the_owner_alone",
    "anonymous_subscribes_create_no_session",
    "cross_site_decisions",
    "smuggled_content_length",
    "unauthenticated_bodies_are_not_read",
    "stream_ends_at_token_exp",
    "superseded_tab_of_another_identity",
    "sessions_capped_per_identity",
    "reject_policy_blip",
];

/// Runs the check called `name` (one of [`CHECKS`]).
pub async fn run_check(name: &str, base_url: &str, cfg: &AccessConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    match name {
        "no_token" => no_token(&ctx).await,
        "token_of_another_key" => token_of_another_key(&ctx).await,
        "expired_token" => expired_token(&ctx).await,
        "token_for_another_session" => token_for_another_session(&ctx).await,
        "publish_without_a_publish_claim" => publish_without_a_publish_claim(&ctx).await,
        "head_and_unauthorized_get_leave_the_owner_alone" => {
            head_and_unauthorized_get_leave_the_owner_alone(&ctx).await
        }
        "anonymous_subscribes_create_no_session" => {
            anonymous_subscribes_create_no_session(&ctx).await
        }
        "cross_site_decisions" => cross_site_decisions(&ctx).await,
        "smuggled_content_length" => smuggled_content_length(&ctx).await,
        "unauthenticated_bodies_are_not_read" => unauthenticated_bodies_are_not_read(&ctx).await,
        "stream_ends_at_token_exp" => stream_ends_at_token_exp(&ctx).await,
        "superseded_tab_of_another_identity" => superseded_tab_of_another_identity(&ctx).await,
        "sessions_capped_per_identity" => sessions_capped_per_identity(&ctx).await,
        "reject_policy_blip" => reject_policy_blip(&ctx).await,
        other => Err(CheckError::Skip(format!("no check called {other:?}"))),
    }
}

/// Runs every check of [`CHECKS`] in order against the server at `base_url`.
pub async fn run_all(base_url: &str, cfg: &AccessConfig) -> Report {
    let mut report = Report::default();
    for &name in CHECKS {
        let start = Instant::now();
        let result = run_check(name, base_url, cfg).await;
        report.outcomes.push(Outcome {
            name,
            result,
            elapsed: start.elapsed(),
        });
    }
    report
}

/// A check's target, configuration, origin and session names of its own.
struct Ctx<'a> {
    target: Target,
    origin: String,
    cfg: &'a AccessConfig,
    run: String,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {token}"))]
}

fn with(mut headers: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    headers.push((name.to_owned(), value.to_owned()));
    headers
}

fn error_code(reply: &Reply) -> String {
    reply
        .json()
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl<'a> Ctx<'a> {
    fn new(base_url: &str, cfg: &'a AccessConfig) -> Result<Self, CheckError> {
        let target = Target::parse(base_url)?;
        let authority = base_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        Ok(Self {
            target,
            origin: format!("http://{authority}"),
            cfg,
            run: crate::run_id(),
        })
    }

    /// A session of this run owned by `user`: `<user>:<name>-<run>`.
    fn session(&self, user: &str, name: &str) -> String {
        format!("{user}:{name}-{}", self.run)
    }

    fn stream_path(&self, session: &str, query: &str) -> String {
        format!("/api/sse/session/{session}{query}")
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Reply, CheckError> {
        send(&self.target, method, path, headers, body, self.cfg.timeout).await
    }

    async fn get(&self, path: &str, headers: &[(String, String)]) -> Result<Reply, CheckError> {
        self.send("GET", path, headers, b"").await
    }

    async fn open(
        &self,
        path: &str,
        headers: Vec<(String, String)>,
    ) -> Result<SseConn, CheckError> {
        SseConn::open(
            &self.target,
            path,
            StreamOptions {
                headers,
                recv_buffer: None,
            },
        )
        .await
    }

    /// Publishes `{"n":1}` to `session` with `headers`; returns the status.
    async fn publish(
        &self,
        session: &str,
        headers: Vec<(String, String)>,
    ) -> Result<u16, CheckError> {
        let path = format!("/api/sessions/{session}/events");
        Ok(self
            .send("POST", &path, &headers, br#"{"n":1}"#)
            .await?
            .status)
    }

    async fn sessions(&self) -> Result<u64, CheckError> {
        let health = self.get("/health/sse", &[]).await?.json()?;
        health["sessions"]
            .as_u64()
            .ok_or_else(|| CheckError::fail(format!("health without sessions: {health}")))
    }

    fn publisher(&self) -> Vec<(String, String)> {
        bearer(&self.cfg.publish_token)
    }
}

/// No credentials: the stream (GET and HEAD), publishing and deciding answer 401
/// `unauthorized` with `WWW-Authenticate: Bearer`.
async fn no_token(ctx: &Ctx<'_>) -> CheckResult {
    let session = ctx.session("alice", "anon");
    let stream = ctx.stream_path(&session, "");
    for (method, path, body) in [
        ("GET", stream.clone(), &b""[..]),
        ("HEAD", stream, &b""[..]),
        (
            "POST",
            format!("/api/sessions/{session}/events"),
            br#"{"n":1}"#,
        ),
        (
            "POST",
            format!("/api/sessions/{session}/approvals/a/decision"),
            br#"{"approved":true}"#,
        ),
    ] {
        let reply = ctx.send(method, &path, &[], body).await?;
        ensure!(
            reply.status == 401,
            "{method} {path} without a token answered {} {}",
            reply.status,
            reply.text()
        );
        ensure!(
            reply.header("www-authenticate") == Some("Bearer"),
            "{method} {path}: 401 without `WWW-Authenticate: Bearer`: {:?}",
            reply.headers
        );
        if method != "HEAD" {
            ensure!(
                error_code(&reply) == "unauthorized",
                "{method} {path}: {}",
                reply.text()
            );
        }
    }
    Ok(())
}

/// A token signed with another key is 401 `invalid_token` with
/// `Bearer error="invalid_token"`.
async fn token_of_another_key(ctx: &Ctx<'_>) -> CheckResult {
    let claims = Claims::expiring_in(Duration::from_secs(3600))
        .subject("alice")
        .subscribe("*")
        .publish("*");
    let forged = mint_hs256(b"another-secret-that-is-32-bytes-long!", &claims);
    let session = ctx.session("alice", "forged");
    let reply = ctx
        .get(&ctx.stream_path(&session, ""), &bearer(&forged))
        .await?;
    ensure!(
        reply.status == 401 && error_code(&reply) == "invalid_token",
        "a forged token answered {} {}",
        reply.status,
        reply.text()
    );
    ensure!(
        reply.header("www-authenticate") == Some(r#"Bearer error="invalid_token""#),
        "challenge {:?}",
        reply.header("www-authenticate")
    );
    let status = ctx.publish(&session, bearer(&forged)).await?;
    ensure!(
        status == 401,
        "publishing with a forged token answered {status}"
    );
    Ok(())
}

/// A token expired past the leeway is 401 `invalid_token`.
async fn expired_token(ctx: &Ctx<'_>) -> CheckResult {
    let expired = mint_hs256(
        ctx.cfg.secret.as_bytes(),
        &Claims::new(unix_now() - 120)
            .subject("alice")
            .subscribe("*"),
    );
    let session = ctx.session("alice", "expired");
    let reply = ctx
        .get(&ctx.stream_path(&session, ""), &bearer(&expired))
        .await?;
    ensure!(
        reply.status == 401 && error_code(&reply) == "invalid_token",
        "an expired token answered {} {}",
        reply.status,
        reply.text()
    );
    Ok(())
}

/// A valid token without a claim for the session is 403 `forbidden` and creates no
/// session; the same token opens its own session, also as the `token` query parameter.
async fn token_for_another_session(ctx: &Ctx<'_>) -> CheckResult {
    let bob = ctx.cfg.subscriber("bob", "bob:*");
    let before = ctx.sessions().await?;
    let alices = ctx.session("alice", "private");
    let reply = ctx
        .get(&ctx.stream_path(&alices, ""), &bearer(&bob))
        .await?;
    ensure!(
        reply.status == 403 && error_code(&reply) == "forbidden",
        "bob's token on alice's session answered {} {}",
        reply.status,
        reply.text()
    );
    ensure!(
        ctx.sessions().await? == before,
        "a refused subscribe created a session"
    );
    let own = ctx.session("bob", "own");
    let conn = ctx
        .open(&ctx.stream_path(&own, &format!("?token={bob}")), Vec::new())
        .await?;
    ensure!(
        conn.status() == 200,
        "bob's own session with the token as a query parameter answered {}",
        conn.status()
    );
    Ok(())
}

/// Publishing takes a publish claim or the static token: none is 401, a subscribe-only
/// token 403 (for approvals too), a publish claim or the static token 202.
async fn publish_without_a_publish_claim(ctx: &Ctx<'_>) -> CheckResult {
    let session = ctx.session("alice", "writes");
    let reader = ctx.cfg.subscriber("alice", "alice:*");
    let writer = mint_hs256(
        ctx.cfg.secret.as_bytes(),
        &Claims::expiring_in(Duration::from_secs(600)).publish("alice:*"),
    );
    for (who, headers, expected) in [
        ("nobody", Vec::new(), 401),
        ("a subscriber", bearer(&reader), 403),
        ("a publish claim", bearer(&writer), 202),
        ("the static token", ctx.publisher(), 202),
    ] {
        let status = ctx.publish(&session, headers).await?;
        ensure!(
            status == expected,
            "{who} publishing: {status}, expected {expected}"
        );
    }
    let path = format!("/api/sessions/{session}/approvals");
    let body = br#"{"id":"a1","payload":{}}"#;
    let status = ctx
        .send("POST", &path, &bearer(&reader), body)
        .await?
        .status;
    ensure!(status == 403, "a subscriber creating an approval: {status}");
    Ok(())
}

/// An uptime check's HEAD and an anonymous GET with the owner's `clientId` leave the owner's
/// stream open and receiving; HEAD answers 200 with the SSE headers and no body.
async fn head_and_unauthorized_get_leave_the_owner_alone(ctx: &Ctx<'_>) -> CheckResult {
    let alice = ctx.cfg.subscriber("alice", "alice:*");
    let session = ctx.session("alice", "owned");
    let path = ctx.stream_path(&session, "?clientId=tab-1");
    let mut owner = ctx.open(&path, bearer(&alice)).await?;
    ensure!(
        owner.status() == 200,
        "the owner's stream: {}",
        owner.status()
    );
    let head = ctx.send("HEAD", &path, &bearer(&alice), b"").await?;
    ensure!(
        head.status == 200
            && head.header("content-type") == Some("text/event-stream")
            && head.body.is_empty(),
        "HEAD answered {} {:?} with {} body bytes",
        head.status,
        head.header("content-type"),
        head.body.len()
    );
    let anonymous = ctx.get(&path, &[]).await?;
    ensure!(
        anonymous.status == 401,
        "anonymous GET: {}",
        anonymous.status
    );
    let status = ctx.publish(&session, ctx.publisher()).await?;
    ensure!(status == 202, "publish: {status}");
    let frame = owner.next_event(ctx.cfg.timeout).await?;
    ensure!(
        frame.data.as_deref() == Some(r#"{"n":1}"#),
        "the owner's stream got {frame:?} instead of the event: it was superseded"
    );
    Ok(())
}

/// Fifty anonymous subscribes to fifty names create no session.
async fn anonymous_subscribes_create_no_session(ctx: &Ctx<'_>) -> CheckResult {
    let before = ctx.sessions().await?;
    for i in 0..50 {
        let path = ctx.stream_path(&ctx.session("squat", &i.to_string()), "");
        let status = ctx.get(&path, &[]).await?.status;
        ensure!(status == 401, "anonymous subscribe {i}: {status}");
    }
    let after = ctx.sessions().await?;
    ensure!(after == before, "sessions went from {before} to {after}");
    Ok(())
}

/// A cross-site `<form enctype="text/plain">` decision is 415 and the same JSON from a
/// foreign `Origin` 403 `origin_not_allowed`, a body with unknown fields 400, and the
/// approval stays pending; the page's own origin then decides.
async fn cross_site_decisions(ctx: &Ctx<'_>) -> CheckResult {
    let alice = ctx.cfg.subscriber("alice", "alice:*");
    let session = ctx.session("alice", "decide");
    let created = ctx
        .send(
            "POST",
            &format!("/api/sessions/{session}/approvals"),
            &ctx.publisher(),
            br#"{"id":"deploy-1","payload":{}}"#,
        )
        .await?;
    ensure!(
        created.status == 201,
        "creating the approval: {}",
        created.text()
    );
    let decision = format!("/api/sessions/{session}/approvals/deploy-1/decision");
    let cookie = ("Cookie".to_owned(), format!("tether_token={alice}"));
    let form = vec![
        ("Content-Type".to_owned(), "text/plain".to_owned()),
        cookie.clone(),
    ];
    let reply = ctx
        .send("POST", &decision, &form, br#"{"approved":true,"x":"="}"#)
        .await?;
    ensure!(
        reply.status == 415,
        "a text/plain decision: {} {}",
        reply.status,
        reply.text()
    );
    let foreign = with(vec![cookie], "Origin", "https://evil.example");
    let reply = ctx
        .send("POST", &decision, &foreign, br#"{"approved":true}"#)
        .await?;
    ensure!(
        reply.status == 403 && error_code(&reply) == "origin_not_allowed",
        "a foreign origin's decision: {} {}",
        reply.status,
        reply.text()
    );
    let reply = ctx
        .send(
            "POST",
            &decision,
            &bearer(&alice),
            br#"{"approved":true,"extra":1}"#,
        )
        .await?;
    ensure!(
        reply.status == 400,
        "unknown fields: {} {}",
        reply.status,
        reply.text()
    );
    let status_path = format!("/api/sessions/{session}/approvals/deploy-1?waitMs=0");
    let status = ctx.get(&status_path, &bearer(&alice)).await?.json()?;
    ensure!(
        status["status"] == "pending",
        "after the refusals: {status}"
    );
    let own = with(bearer(&alice), "Origin", &ctx.origin);
    let reply = ctx
        .send("POST", &decision, &own, br#"{"approved":true}"#)
        .await?;
    ensure!(
        reply.status == 200,
        "the page's own origin deciding: {} {}",
        reply.status,
        reply.text()
    );
    Ok(())
}

/// Sends raw bytes on a fresh connection; returns the status code of the answer.
async fn raw_status(ctx: &Ctx<'_>, request: &[u8]) -> Result<u16, CheckError> {
    let io = |e: std::io::Error| CheckError::fail(format!("raw request: {e}"));
    let mut s = TcpStream::connect(ctx.target.addr()).await.map_err(io)?;
    s.write_all(request).await.map_err(io)?;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(ctx.cfg.timeout, s.read(&mut buf))
        .await
        .map_err(|_| CheckError::Timeout)?
        .map_err(io)?;
    let head = String::from_utf8_lossy(&buf[..n]);
    Ok(head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

/// Two different `Content-Length`s (a smuggled request) and `Content-Length: +7` are 400, an
/// HTTP/1.1 request without `Host` is 400. Two identical values may be taken as one (the hub
/// and hyper do) or refused (actix-web does); RFC 9112 allows both.
async fn smuggled_content_length(ctx: &Ctx<'_>) -> CheckResult {
    let session = ctx.session("alice", "framing");
    let token = &ctx.cfg.publish_token;
    let request = |lengths: &str| {
        format!(
            "POST /api/sessions/{session}/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{lengths}Connection: close\r\n\r\n{{\"n\":1}}",
            ctx.origin.trim_start_matches("http://")
        )
    };
    for (what, lengths, expected) in [
        (
            "two different lengths",
            "Content-Length: 7\r\nContent-Length: 9\r\n",
            400,
        ),
        ("a signed length", "Content-Length: +7\r\n", 400),
    ] {
        let status = raw_status(ctx, request(lengths).as_bytes()).await?;
        ensure!(status == expected, "{what}: {status}, expected {expected}");
    }
    let identical = "Content-Length: 7\r\nContent-Length: 7\r\n";
    let status = raw_status(ctx, request(identical).as_bytes()).await?;
    ensure!(
        status == 202 || status == 400,
        "two identical lengths: {status}, expected 202 (one length) or 400"
    );
    let status = raw_status(
        ctx,
        b"GET /health/sse HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await?;
    ensure!(status == 400, "HTTP/1.1 without Host: {status}");
    Ok(())
}

/// Resident memory of `pid` in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Connections that announce a body.
const HELD_BODIES: usize = 256;
/// The body each announces and tries to send.
const BODY: usize = 1024 * 1024;
/// The server's memory may grow by this much while they are held (384 KiB a connection):
/// reading the bodies before the token check would hold `HELD_BODIES * BODY` (256 MiB). A
/// server may read a bounded amount ahead of its handler: actix-web reads up to 128 KiB of
/// a connection into its buffer, and discards what a refused request sent; hyper reads none.
const HELD_BODIES_RSS_BOUND: u64 = 96 * 1024 * 1024;

/// Heads without credentials that announce 1 MiB and then send it are answered 401 before
/// the body is read, the connection closes, and (when the server's pid is known) the
/// server's memory stays within 96 MiB of where it was for 256 of them.
async fn unauthenticated_bodies_are_not_read(ctx: &Ctx<'_>) -> CheckResult {
    let io = |e: std::io::Error| CheckError::fail(format!("held body: {e}"));
    let before = ctx.cfg.server_pid.and_then(rss_bytes);
    let session = ctx.session("alice", "bodies");
    let head = format!(
        "POST /api/sessions/{session}/events HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n",
        ctx.origin.trim_start_matches("http://")
    );
    let filler = vec![b' '; BODY];
    let mut held = Vec::with_capacity(HELD_BODIES);
    for _ in 0..HELD_BODIES {
        let s = TcpStream::connect(ctx.target.addr()).await.map_err(io)?;
        s.try_write(head.as_bytes()).map_err(io)?;
        held.push((s, 0usize));
    }
    // Three rounds of whatever the sockets take without waiting: a server that reads bodies
    // before it checks the token drains them into its memory between the rounds.
    for _ in 0..3 {
        for (s, sent) in &mut held {
            while *sent < BODY {
                match s.try_write(&filler[*sent..]) {
                    Ok(n) => *sent += n,
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = ctx.cfg.server_pid.and_then(rss_bytes);
    for (i, (s, _)) in held.iter_mut().enumerate() {
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(ctx.cfg.timeout, s.read(&mut buf))
            .await
            .map_err(|_| CheckError::fail(format!("connection {i}: no answer before the body")))?
            .map_err(io)?;
        ensure!(
            buf[..n].starts_with(b"HTTP/1.1 401"),
            "connection {i}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        // The connection ends: the unread body is never parsed as a request.
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(ctx.cfg.timeout, s.read_to_end(&mut rest)).await;
        ensure!(ended.is_ok(), "connection {i} stays open after the 401");
    }
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        ensure!(
            grown <= HELD_BODIES_RSS_BOUND,
            "the server's memory grew by {} MiB while {HELD_BODIES} unauthenticated bodies were held",
            grown / (1024 * 1024)
        );
    }
    Ok(())
}

/// A stream opened with a token that expires in 3 s ends soon after, with a closing
/// `retry:`, so an expired or revoked token does not read forever.
async fn stream_ends_at_token_exp(ctx: &Ctx<'_>) -> CheckResult {
    let short = mint_hs256(
        ctx.cfg.secret.as_bytes(),
        &Claims::new(unix_now() + 3)
            .subject("alice")
            .subscribe("alice:*"),
    );
    let session = ctx.session("alice", "expiring");
    let mut conn = ctx
        .open(&ctx.stream_path(&session, ""), bearer(&short))
        .await?;
    ensure!(conn.status() == 200, "subscribe: {}", conn.status());
    let frames = conn.until_end(Duration::from_secs(20)).await?;
    let retries = frames.iter().filter(|f| f.retry.is_some()).count();
    ensure!(
        retries >= 2,
        "the stream should open and close with `retry:`: {frames:?}"
    );
    Ok(())
}

/// Stream `tab-a`, supersede it with `tab-b`: `tab-a` coming back under the same identity
/// gets 204 (stop), under another identity a stream.
async fn superseded_tab_of_another_identity(ctx: &Ctx<'_>) -> CheckResult {
    let alice = ctx.cfg.subscriber("alice", "alice:*");
    let session = ctx.session("alice", "tabs");
    let _a = ctx
        .open(
            &ctx.stream_path(&session, "?clientId=tab-a"),
            bearer(&alice),
        )
        .await?;
    let b = ctx
        .open(
            &ctx.stream_path(&session, "?clientId=tab-b"),
            bearer(&alice),
        )
        .await?;
    ensure!(b.status() == 200, "tab-b: {}", b.status());
    let again = ctx
        .open(
            &ctx.stream_path(&session, "?clientId=tab-a"),
            bearer(&alice),
        )
        .await?;
    ensure!(
        again.status() == 204,
        "the superseded tab of the same identity: {}",
        again.status()
    );
    let eve = ctx.cfg.subscriber("eve", "alice:*");
    let other = ctx
        .open(&ctx.stream_path(&session, "?clientId=tab-a"), bearer(&eve))
        .await?;
    ensure!(
        other.status() == 200,
        "another identity with the superseded clientId got {} (a 204 would stop it for good)",
        other.status()
    );
    Ok(())
}

/// One identity creates at most `max_sessions_per_subject` sessions by connecting; the
/// next is 429 `too_many_sessions_for_subject`.
async fn sessions_capped_per_identity(ctx: &Ctx<'_>) -> CheckResult {
    let sub = format!("capped-{}", ctx.run);
    let token = ctx.cfg.subscriber(&sub, "*");
    let mut held = Vec::new();
    for i in 0..ctx.cfg.max_sessions_per_subject {
        let path = ctx.stream_path(&ctx.session("cap", &i.to_string()), "");
        let conn = ctx.open(&path, bearer(&token)).await?;
        ensure!(conn.status() == 200, "session {i}: {}", conn.status());
        held.push(conn);
    }
    let path = ctx.stream_path(&ctx.session("cap", "over"), "");
    let reply = ctx.get(&path, &bearer(&token)).await?;
    ensure!(
        reply.status == 429 && error_code(&reply) == "too_many_sessions_for_subject",
        "one session over the cap: {} {}",
        reply.status,
        reply.text()
    );
    Ok(())
}

/// Under the Reject policy, the same identity and `clientId` replace their own stream after
/// a network blip; another tab, or another identity with the same `clientId`, is 409.
async fn reject_policy_blip(ctx: &Ctx<'_>) -> CheckResult {
    let Some(base) = &ctx.cfg.reject_base_url else {
        return Err(CheckError::Skip(
            "no Reject-policy server configured".into(),
        ));
    };
    let target = Target::parse(base)?;
    let open = |token: String, query: &'static str, session: String| {
        let target = target.clone();
        async move {
            let path = format!("/api/sse/session/{session}?{query}");
            SseConn::open(
                &target,
                &path,
                StreamOptions {
                    headers: bearer(&token),
                    recv_buffer: None,
                },
            )
            .await
        }
    };
    let alice = ctx.cfg.subscriber("alice", "alice:*");
    let session = ctx.session("alice", "reject");
    // Every connection stays open: to the server, the first one is still alive.
    let first = open(alice.clone(), "clientId=tab-1", session.clone()).await?;
    ensure!(first.status() == 200, "first: {}", first.status());
    let back = open(alice.clone(), "clientId=tab-1", session.clone()).await?;
    ensure!(
        back.status() == 200,
        "the same identity and tab after a blip: {}",
        back.status()
    );
    let other_tab = open(alice, "clientId=tab-2", session.clone()).await?;
    ensure!(
        other_tab.status() == 409,
        "another tab: {}",
        other_tab.status()
    );
    let mallory = ctx.cfg.subscriber("mallory", "alice:*");
    let squat = open(mallory, "clientId=tab-1", session).await?;
    ensure!(
        squat.status() == 409,
        "another identity with the same clientId: {}",
        squat.status()
    );
    drop((first, back));
    Ok(())
}
