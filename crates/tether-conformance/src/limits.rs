//! Connection-limit checks for a server with small, known limits: a flood of idle
//! connections leaves room for real requests, a full server answers the connection past the
//! limit (200 + `retry:` to an event stream, 503 + `Retry-After` otherwise), and a slow head
//! is cut at the head timeout; and, on a server with a per-address cap, one address holds at
//! most its share.
//!
//! The server under test keeps at most [`LimitsConfig::max_connections`] connections and
//! waits [`LimitsConfig::head_timeout`] for a request head; `tether serve` takes
//! [`LimitsConfig::hub_args`], an adapter's listener
//! `SseListener::with_limits(cfg.connection_limits())`.

use std::time::Duration;

use tether_core::server::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::client::{SseConn, StreamOptions, Target, open_answered, send};
use crate::{CheckError, CheckResult, Report, ensure};

/// The limits the server under test runs with.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Connections the server keeps.
    pub max_connections: usize,
    /// How long it waits for a request head.
    pub head_timeout: Duration,
    /// Connections it keeps from one address; 0 = no cap (the `one_address` check needs one,
    /// and the other checks need none: they all connect from one address).
    pub max_per_ip: usize,
    /// Bound of each wait for something that should come promptly (a real request during a
    /// flood included).
    pub timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 50,
            head_timeout: Duration::from_secs(2),
            max_per_ip: 0,
            timeout: Duration::from_secs(5),
        }
    }
}

impl LimitsConfig {
    /// The listener limits of this configuration.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            head_timeout: self.head_timeout,
            max_per_ip: self.max_per_ip,
            ..ConnectionLimits::default()
        }
    }

    /// The `tether serve` flags of this configuration.
    pub fn hub_args(&self) -> Vec<String> {
        vec![
            "--max-connections".into(),
            self.max_connections.to_string(),
            "--head-timeout-secs".into(),
            self.head_timeout.as_secs().max(1).to_string(),
            "--max-connections-per-ip".into(),
            self.max_per_ip.to_string(),
        ]
    }

    /// This configuration with a cap of `n` connections per address, for the `one_address`
    /// check.
    pub fn with_per_ip(self, n: usize) -> Self {
        Self {
            max_per_ip: n,
            ..self
        }
    }
}

/// Every check [`run_all`] runs, in order, on a server without a per-address cap.
pub const CHECKS: &[&str] = &["idle_flood", "full_of_streams", "slow_head"];

/// The check for a server with a per-address cap ([`LimitsConfig::with_per_ip`]).
pub const PER_ADDRESS_CHECKS: &[&str] = &["one_address"];

/// Runs the check called `name` (one of [`CHECKS`]).
pub async fn run_check(name: &str, base_url: &str, cfg: &LimitsConfig) -> CheckResult {
    let target = Target::parse(base_url)?;
    match name {
        "idle_flood" => idle_flood(&target, cfg).await,
        "full_of_streams" => full_of_streams(&target, cfg).await,
        "slow_head" => slow_head(&target, cfg).await,
        "one_address" => one_address(&target, cfg).await,
        other => Err(CheckError::Skip(format!("no check called {other:?}"))),
    }
}

/// Runs the checks `names` in order against the server at `base_url`.
pub async fn run(names: &[&'static str], base_url: &str, cfg: &LimitsConfig) -> Report {
    Report::run_each(names, |name| run_check(name, base_url, cfg)).await
}

/// Runs every check of [`CHECKS`].
pub async fn run_all(base_url: &str, cfg: &LimitsConfig) -> Report {
    run(CHECKS, base_url, cfg).await
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> CheckError {
    move |e| CheckError::fail(format!("{what}: {e}"))
}

/// Twice the limit of connections that send nothing, then real requests: each is answered
/// within the timeout, and the server made room by closing the oldest idle connections,
/// not by waiting for their head timeout.
pub async fn idle_flood(target: &Target, cfg: &LimitsConfig) -> CheckResult {
    let flood_started = Instant::now();
    let mut flood = Vec::with_capacity(cfg.max_connections * 2);
    for _ in 0..cfg.max_connections * 2 {
        flood.push(
            TcpStream::connect(target.addr())
                .await
                .map_err(io("an idle connection"))?,
        );
    }
    for i in 0..3 {
        let started = Instant::now();
        let reply = send(target, "GET", "/health/sse", &[], b"", cfg.timeout)
            .await
            .map_err(|e| CheckError::fail(format!("request {i} during an idle flood: {e}")))?;
        ensure!(
            reply.status == 200,
            "request {i} during an idle flood answered {} {}",
            reply.status,
            reply.text()
        );
        ensure!(
            started.elapsed() <= cfg.timeout,
            "request {i} took {:?}",
            started.elapsed()
        );
    }
    // Connections closed to make room end at once; left alone, they would last until the
    // head timeout. Only what ended well before it tells the two apart.
    let before_timeout = flood_started + cfg.head_timeout * 3 / 4;
    let measurable = Instant::now() < before_timeout;
    let closed = closed_before(flood, before_timeout).await;
    if measurable {
        ensure!(
            closed >= cfg.max_connections / 2,
            "only {closed} of {} idle connections were closed to make room",
            cfg.max_connections * 2
        );
    }
    Ok(())
}

/// How many of `conns` the server closes (end of input, no answer) before `deadline`.
async fn closed_before(conns: Vec<TcpStream>, deadline: Instant) -> usize {
    let mut waits = tokio::task::JoinSet::new();
    for mut conn in conns {
        waits.spawn(async move {
            let mut buf = [0u8; 64];
            matches!(
                tokio::time::timeout_at(deadline, conn.read(&mut buf)).await,
                Ok(Ok(0) | Err(_))
            )
        });
    }
    let mut closed = 0;
    while let Some(done) = waits.join_next().await {
        closed += usize::from(done.unwrap_or(false));
    }
    closed
}

/// The server full of streams: an event-stream request past the limit gets 200 with a
/// `retry:` and the end of its response, another request 503 with `Retry-After`; once the
/// streams close, `/health/sse` reports the refusals under `"limits"`.
pub async fn full_of_streams(target: &Target, cfg: &LimitsConfig) -> CheckResult {
    // Connections of earlier checks the server has not yet seen closed are idle: past the
    // head timeout they are gone.
    tokio::time::sleep(cfg.head_timeout + Duration::from_millis(500)).await;
    let es = || StreamOptions {
        headers: vec![("Accept".into(), "text/event-stream".into())],
        recv_buffer: None,
    };
    let mut streams = Vec::with_capacity(cfg.max_connections);
    for i in 0..cfg.max_connections {
        let conn = SseConn::open(target, &format!("/api/sse/session/full-{i}"), es()).await?;
        ensure!(conn.status() == 200, "stream {i}: {}", conn.status());
        streams.push(conn);
    }
    let mut past = SseConn::open(target, "/api/sse/session/full-past", es()).await?;
    ensure!(
        past.status() == 200,
        "an event stream past the limit answered {}, not 200 (EventSource would give up)",
        past.status()
    );
    let frames = past.until_end(cfg.timeout).await?;
    ensure!(
        frames.iter().any(|f| f.retry.is_some()),
        "the answer past the limit carries no retry: {frames:?}"
    );
    let reply = send(target, "GET", "/health/sse", &[], b"", cfg.timeout).await?;
    ensure!(
        reply.status == 503 && reply.header("retry-after").is_some(),
        "a request past the limit answered {} {:?}",
        reply.status,
        reply.headers
    );
    drop(streams);
    served_again_counting(target, cfg, "connections", 2, "its streams closed").await
}

/// A head that never completes is cut at the head timeout: the connection is closed within
/// the head timeout plus the check's timeout, without an answer.
pub async fn slow_head(target: &Target, cfg: &LimitsConfig) -> CheckResult {
    let mut s = TcpStream::connect(target.addr())
        .await
        .map_err(io("a slow head"))?;
    s.write_all(b"GET /health/sse HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .map_err(io("a slow head"))?;
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(cfg.head_timeout + cfg.timeout, s.read_to_end(&mut rest)).await;
    ensure!(
        closed.is_ok(),
        "a head still incomplete after {:?} is not cut",
        cfg.head_timeout + cfg.timeout
    );
    ensure!(
        !rest.starts_with(b"HTTP/1.1 2"),
        "an incomplete head was answered: {}",
        String::from_utf8_lossy(&rest)
    );
    Ok(())
}

/// One address holds at most `max_per_ip` connections: with that many held open, the next
/// request from the address is answered 503 with `Retry-After`; once they close, requests
/// are served again and `/health/sse` counts the refusal under
/// `"limits"."connections_per_ip"`.
pub async fn one_address(target: &Target, cfg: &LimitsConfig) -> CheckResult {
    if cfg.max_per_ip == 0 {
        return Err(CheckError::Skip(
            "the server under test has no per-address cap".into(),
        ));
    }
    // Each held connection is answered once, so the server has taken it in before the next
    // opens (connections that send nothing may be taken in any order by several workers).
    let mut held = Vec::with_capacity(cfg.max_per_ip);
    for i in 0..cfg.max_per_ip {
        let (conn, status) = open_answered(target, "/health/sse", cfg.timeout).await?;
        ensure!(status == 200, "held connection {i} answered {status}");
        held.push(conn);
    }
    let reply = send(target, "GET", "/health/sse", &[], b"", cfg.timeout).await?;
    ensure!(
        reply.status == 503 && reply.header("retry-after").is_some(),
        "with {} connections held, a request from the same address answered {} {:?}",
        cfg.max_per_ip,
        reply.status,
        reply.headers
    );
    drop(held);
    served_again_counting(
        target,
        cfg,
        "connections_per_ip",
        1,
        "the held connections closed",
    )
    .await
}

/// Once what filled the server is gone (`after`), requests are served again within the
/// timeout, and `/health/sse` counts at least `at_least` refusals under
/// `"limits".<limit>."refused"`.
async fn served_again_counting(
    target: &Target,
    cfg: &LimitsConfig,
    limit: &str,
    at_least: u64,
    after: &str,
) -> CheckResult {
    let deadline = Instant::now() + cfg.timeout;
    loop {
        let reply = send(target, "GET", "/health/sse", &[], b"", cfg.timeout).await?;
        if reply.status == 200 {
            let health = reply.json()?;
            let refused = health["limits"][limit]["refused"].as_u64();
            ensure!(
                refused.is_some_and(|n| n >= at_least),
                "health does not count the {limit} refusals: {health}"
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "requests are still refused after {after}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
