//! # tether-conformance
//!
//! The conformance suite of tether's HTTP contract, over real HTTP. It takes a base URL, so
//! the same checks run against every adapter (axum, actix-web, warp) and against the
//! standalone hub `tether serve`. The client is a small hand-written HTTP/1.1 client over
//! `TcpStream` ([`client`]) with the SSE parser of `tether_core::sse_parse` ([`sse`]), which
//! keeps comments and `retry:` fields, so a check can see heartbeats, tell an orderly end of a
//! stream from a timeout, and stop reading on purpose to play a stalled client. It only talks to loopback addresses.
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! let cfg = tether_conformance::SuiteConfig::default();
//! let report = tether_conformance::run_all("http://127.0.0.1:8080", &cfg).await;
//! report.assert_ok();
//! # }
//! ```
//!
//! ## The server under test
//!
//! The checks assert exact behaviour, so the server must run with known, short settings;
//! [`SuiteConfig::default`] describes them and [`SuiteConfig::hub_args`] turns them into
//! `tether serve` flags ([`hub::Hub`] starts the hub with them):
//!
//! | setting | value | `tether serve` flag |
//! |---|---|---|
//! | heartbeat interval | 1 s | `--keepalive-secs 1` |
//! | client timeout | 3 s (also `TCP_USER_TIMEOUT`) | `--client-timeout-secs 3` |
//! | ring | 8 events, 1 MiB | `--ring-events 8 --ring-bytes 1048576` |
//! | largest event | 256 KiB | `--max-event-bytes 262144` |
//! | largest body | 1 MiB | `--max-body-bytes 1048576` |
//! | `retry:` | 3000 ms ± 50 %, superseded streams 30000 ms | defaults |
//! | policy | Replace; a second server with Reject for [`reject_policy`] | `--policy reject` |
//! | publisher auth | bearer token `conformance-token` | `--publish-token conformance-token` |
//! | authorizer | header `x-test-user` must name the session's owner: a session `alice:chat` belongs to `alice` | `--user-header x-test-user` |
//! | drain window | 3 s, on a server of its own for [`drain`] | `--drain-secs 3` |
//! | `/metrics` | Prometheus text with the core's histogram buckets | (the hub has it) |
//!
//! An application's own test server (an adapter's router with a custom
//! `tether_core::http::Authorizer`) passes when it applies the same rule: `x-test-user`
//! missing is 401, naming another user is 403.
//!
//! ## Checks
//!
//! [`run_all`] runs every check but [`drain`] (which ends the server's service) in the order of
//! [`CHECKS`], [`metrics`] first so its counts start from a quiet server; each check is also a
//! public function for tests that want one. Checks that need something the configuration does
//! not provide (a Reject-policy server, a token, an authorizer, `/metrics`) are reported as
//! skipped, not passed.
//!
//! Behind a load balancer over several nodes ([`cluster`]), [`SuiteConfig::nodes`] lists the
//! nodes' own URLs: [`run_all`] then runs the checks that read one server's counts
//! ([`PER_NODE_CHECKS`]) against each node directly, and every wait for the server to have no
//! open connection adds up the nodes' `/health/sse`.
//!
//! Access control by signed tokens has checks of its own in [`access`], one per attack, run
//! by [`access::run_all`] against a server with [`access::AccessConfig::hooks`].
//!
//! The durable AG-UI run route (`POST /api/agui/run`) has checks of its own in [`agui`],
//! run by [`agui::run_route_all`] against a server that mounts the run route with
//! [`agui::test_agent`].
#![doc(test(attr(deny(warnings))))]

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

pub mod access;
pub mod agui;
pub mod client;
pub mod cluster;
pub mod cors;
pub mod disconnect;
pub mod examples;
pub mod hub;
pub mod limits;
pub mod nginx;
pub mod sse;

mod checks;
mod prom;

pub use checks::{
    approvals, auth, bad_ids, drain, headers, health, heartbeats, idempotent_publish, metrics,
    oversized, publish_errors, publish_receive, reject_policy, resume_header, resume_query,
    resync_ahead, resync_epoch, resync_evicted, resync_foreign, retry_line, slow_reader, supersede,
};

use client::{Reply, SseConn, StreamOptions, Target};

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The server broke the contract.
    Fail(String),
    /// The configuration lacks what the check needs.
    Skip(String),
    /// Nothing arrived in time (inside the client; checks turn it into a failure).
    Timeout,
}

impl CheckError {
    /// A failure with a message.
    pub fn fail(msg: impl Into<String>) -> Self {
        Self::Fail(msg.into())
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fail(m) => write!(f, "failed: {m}"),
            Self::Skip(m) => write!(f, "skipped: {m}"),
            Self::Timeout => f.write_str("failed: timed out"),
        }
    }
}

impl std::error::Error for CheckError {}

/// The result of one check.
pub type CheckResult = Result<(), CheckError>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::CheckError::fail(format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;

/// What the suite expects of the server under test (see the crate docs).
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// The publishers' bearer token; `None` if publishing is open.
    pub publish_token: Option<String>,
    /// The header the server's authorizer reads the user from; `None` if it allows everyone.
    pub user_header: Option<String>,
    /// The user the suite acts as; its sessions are `<user>:<name>`.
    pub user: String,
    /// The heartbeat interval.
    pub keepalive: Duration,
    /// The client timeout.
    pub client_timeout: Duration,
    /// Events per session ring.
    pub ring_events: usize,
    /// Largest encoded event.
    pub max_event_bytes: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// The range of the opening `retry:` (base ± jitter).
    pub retry_ms: RangeInclusive<u64>,
    /// The `retry:` a superseded stream ends with.
    pub backoff_max_ms: u64,
    /// Base URL of a second server with the Reject policy, for [`reject_policy`].
    pub reject_base_url: Option<String>,
    /// Whether the server has `GET /metrics`.
    pub metrics: bool,
    /// The drain window of the server given to [`drain`].
    pub drain_window: Duration,
    /// Bound of each wait for something that should come promptly.
    pub timeout: Duration,
    /// When the base URL is a load balancer, the base URLs of the nodes behind it (empty for
    /// one server): [`PER_NODE_CHECKS`] run against each, and connection counts are the sum
    /// of theirs.
    pub nodes: Vec<String>,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            publish_token: Some("conformance-token".into()),
            user_header: Some("x-test-user".into()),
            user: "alice".into(),
            keepalive: Duration::from_secs(1),
            client_timeout: Duration::from_secs(3),
            ring_events: 8,
            max_event_bytes: 256 * 1024,
            max_body_bytes: 1024 * 1024,
            retry_ms: 1500..=4500,
            backoff_max_ms: 30_000,
            reject_base_url: None,
            metrics: true,
            drain_window: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            nodes: Vec::new(),
        }
    }
}

impl SuiteConfig {
    /// The hooks an application's test server uses to pass the suite: the publish token (if
    /// any), the `x-test-user` owner rule for subscribing, and the body limit.
    pub fn hooks(&self) -> tether_core::http::Hooks {
        let hooks = tether_core::http::Hooks::allow_all()
            .authorizer(tether_core::http::SessionOwnerHeader::new(
                http::HeaderName::from_static("x-test-user"),
            ))
            .max_body_bytes(self.max_body_bytes);
        match &self.publish_token {
            Some(token) => hooks.publish_token(token.as_str()),
            None => hooks,
        }
    }

    /// The `tether serve` flags that give a hub this configuration (without `--addr`, and
    /// with the Replace policy).
    pub fn hub_args(&self) -> Vec<String> {
        let mut args = vec![
            "--keepalive-secs".into(),
            self.keepalive.as_secs().max(1).to_string(),
            "--client-timeout-secs".into(),
            self.client_timeout.as_secs().max(1).to_string(),
            "--ring-events".into(),
            self.ring_events.to_string(),
            "--ring-bytes".into(),
            "1048576".into(),
            "--max-event-bytes".into(),
            self.max_event_bytes.to_string(),
            "--max-body-bytes".into(),
            self.max_body_bytes.to_string(),
            "--drain-secs".into(),
            self.drain_window.as_secs().to_string(),
        ];
        if let Some(t) = &self.publish_token {
            args.extend(["--publish-token".into(), t.clone()]);
        }
        if let Some(h) = &self.user_header {
            args.extend(["--user-header".into(), h.clone()]);
        }
        args
    }
}

/// Every check [`run_all`] runs, in order.
pub const CHECKS: &[&str] = &[
    "metrics",
    "headers",
    "retry_line",
    "health",
    "publish_receive",
    "publish_errors",
    "idempotent_publish",
    "oversized",
    "resume_header",
    "resume_query",
    "resync_evicted",
    "resync_epoch",
    "resync_ahead",
    "resync_foreign",
    "bad_ids",
    "supersede",
    "reject_policy",
    "heartbeats",
    "approvals",
    "auth",
    "slow_reader",
];

/// The checks that count what one server saw; with [`SuiteConfig::nodes`], [`run_all`] runs
/// them against each node instead of through the load balancer.
pub const PER_NODE_CHECKS: &[&str] = &["metrics", "health"];

/// Runs the check called `name` (one of [`CHECKS`]).
pub async fn run_check(name: &str, base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    match name {
        "metrics" => metrics(base_url, cfg).await,
        "headers" => headers(base_url, cfg).await,
        "retry_line" => retry_line(base_url, cfg).await,
        "health" => health(base_url, cfg).await,
        "publish_receive" => publish_receive(base_url, cfg).await,
        "publish_errors" => publish_errors(base_url, cfg).await,
        "idempotent_publish" => idempotent_publish(base_url, cfg).await,
        "oversized" => oversized(base_url, cfg).await,
        "resume_header" => resume_header(base_url, cfg).await,
        "resume_query" => resume_query(base_url, cfg).await,
        "resync_evicted" => resync_evicted(base_url, cfg).await,
        "resync_epoch" => resync_epoch(base_url, cfg).await,
        "resync_ahead" => resync_ahead(base_url, cfg).await,
        "resync_foreign" => resync_foreign(base_url, cfg).await,
        "bad_ids" => bad_ids(base_url, cfg).await,
        "supersede" => supersede(base_url, cfg).await,
        "reject_policy" => reject_policy(base_url, cfg).await,
        "heartbeats" => heartbeats(base_url, cfg).await,
        "approvals" => approvals(base_url, cfg).await,
        "auth" => auth(base_url, cfg).await,
        "slow_reader" => slow_reader(base_url, cfg).await,
        other => Err(CheckError::Skip(format!("no check called {other:?}"))),
    }
}

/// How one check went.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The check's name.
    pub name: &'static str,
    /// Passed (`Ok`), failed or skipped.
    pub result: CheckResult,
    /// How long it took.
    pub elapsed: Duration,
}

/// The outcomes of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every check, in the order run.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Runs `check` for each of `names` in order, timing each one.
    pub async fn run_each<F, Fut>(names: &[&'static str], mut check: F) -> Self
    where
        F: FnMut(&'static str) -> Fut,
        Fut: std::future::Future<Output = CheckResult>,
    {
        let mut report = Self::default();
        for &name in names {
            let start = Instant::now();
            let result = check(name).await;
            report.outcomes.push(Outcome {
                name,
                result,
                elapsed: start.elapsed(),
            });
        }
        report
    }

    /// Names of the checks that passed.
    pub fn passed(&self) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .map(|o| o.name)
            .collect()
    }

    /// The checks that failed.
    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.result, Err(CheckError::Fail(_) | CheckError::Timeout)))
            .collect()
    }

    /// The checks that were skipped.
    pub fn skipped(&self) -> Vec<&Outcome> {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.result, Err(CheckError::Skip(_))))
            .collect()
    }

    /// Whether nothing failed.
    pub fn is_ok(&self) -> bool {
        self.failures().is_empty()
    }

    /// Panics with the report if a check failed; prints it otherwise.
    pub fn assert_ok(&self) {
        assert!(self.is_ok(), "conformance failures:\n{self}");
        println!("{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.outcomes {
            let what = match &o.result {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            };
            writeln!(f, "{:<24} {:>6} ms  {what}", o.name, o.elapsed.as_millis())?;
        }
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed().len(),
            self.failures().len(),
            self.skipped().len()
        )
    }
}

/// Runs every check of [`CHECKS`] in order against the server at `base_url` (those of
/// [`PER_NODE_CHECKS`] against each of [`SuiteConfig::nodes`], when there are nodes).
pub async fn run_all(base_url: &str, cfg: &SuiteConfig) -> Report {
    Report::run_each(CHECKS, |name| run_placed(name, base_url, cfg)).await
}

/// Runs `name` where it belongs: through `base_url`, or on every node in turn (the first
/// failure, named by its node, is the outcome).
async fn run_placed(name: &str, base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    if cfg.nodes.is_empty() || !PER_NODE_CHECKS.contains(&name) {
        return run_check(name, base_url, cfg).await;
    }
    for node in &cfg.nodes {
        run_check(name, node, cfg).await.map_err(|e| match e {
            CheckError::Fail(m) => CheckError::Fail(format!("on the node {node}: {m}")),
            CheckError::Timeout => CheckError::Fail(format!("on the node {node}: timed out")),
            skip @ CheckError::Skip(_) => skip,
        })?;
    }
    Ok(())
}

/// A name for one check's run, different in every check and process, for the session names
/// it uses (so checks never meet each other's sessions on a shared server).
pub(crate) fn run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:x}{n}",
        (nanos ^ u64::from(std::process::id())) & 0xff_ffff
    )
}

/// What every check shares: the target, the configuration and the session names of this run.
pub(crate) struct Ctx<'a> {
    pub(crate) target: Target,
    pub(crate) cfg: &'a SuiteConfig,
    run: String,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(base_url: &str, cfg: &'a SuiteConfig) -> Result<Self, CheckError> {
        Ok(Self {
            target: Target::parse(base_url)?,
            cfg,
            run: run_id(),
        })
    }

    /// A session name of this run, owned by the suite's user.
    pub(crate) fn session(&self, name: &str) -> String {
        format!("{}:{name}-{}", self.cfg.user, self.run)
    }

    /// Headers of a browser acting as `user`.
    pub(crate) fn browser_as(&self, user: &str) -> Vec<(String, String)> {
        match &self.cfg.user_header {
            Some(h) => vec![(h.clone(), user.to_owned())],
            None => Vec::new(),
        }
    }

    /// Headers of the suite's browser.
    pub(crate) fn browser(&self) -> Vec<(String, String)> {
        self.browser_as(&self.cfg.user)
    }

    /// Headers of the publisher.
    pub(crate) fn publisher(&self) -> Vec<(String, String)> {
        let mut h = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        if let Some(t) = &self.cfg.publish_token {
            h.push(("Authorization".into(), format!("Bearer {t}")));
        }
        h
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Reply, CheckError> {
        client::send(&self.target, method, path, headers, body, self.cfg.timeout).await
    }

    /// Publishes `body` (raw) to `session`.
    pub(crate) async fn publish_raw(
        &self,
        session: &str,
        query: &str,
        body: &[u8],
    ) -> Result<Reply, CheckError> {
        let path = format!("/api/sessions/{session}/events{query}");
        self.send("POST", &path, &self.publisher(), body).await
    }

    /// Publishes a JSON event or array; expects 202 and returns the ids.
    pub(crate) async fn publish(
        &self,
        session: &str,
        query: &str,
        body: &Value,
    ) -> Result<Vec<String>, CheckError> {
        let reply = self
            .publish_raw(session, query, body.to_string().as_bytes())
            .await?;
        let v = reply.expect_json(202)?;
        let ids: Vec<String> = v["ids"]
            .as_array()
            .ok_or_else(|| CheckError::fail(format!("202 body without ids: {v}")))?
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect();
        Ok(ids)
    }

    /// Publishes `n` numbered events one request each; returns their ids.
    pub(crate) async fn publish_n(
        &self,
        session: &str,
        n: usize,
    ) -> Result<Vec<String>, CheckError> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.extend(
                self.publish(session, "", &serde_json::json!({ "n": i }))
                    .await?,
            );
        }
        Ok(ids)
    }

    /// Opens the session's event stream as the suite's browser, with extra headers and a
    /// query string (`""` or `?a=b`); expects 200.
    pub(crate) async fn subscribe(
        &self,
        session: &str,
        extra: &[(&str, &str)],
        query: &str,
    ) -> Result<SseConn, CheckError> {
        let conn = self.subscribe_any(session, extra, query).await?;
        ensure!(
            conn.status() == 200,
            "subscribe to {session}{query} answered {}",
            conn.status()
        );
        Ok(conn)
    }

    /// Opens the session's event stream whatever the status.
    pub(crate) async fn subscribe_any(
        &self,
        session: &str,
        extra: &[(&str, &str)],
        query: &str,
    ) -> Result<SseConn, CheckError> {
        let mut headers = self.browser();
        headers.push(("Accept".into(), "text/event-stream".into()));
        headers.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let path = format!("/api/sse/session/{session}{query}");
        SseConn::open(
            &self.target,
            &path,
            StreamOptions {
                headers,
                recv_buffer: None,
            },
        )
        .await
    }

    /// Where a server's own counts are read: the nodes of [`SuiteConfig::nodes`], or the
    /// target itself.
    pub(crate) fn count_targets(&self) -> Result<Vec<Target>, CheckError> {
        if self.cfg.nodes.is_empty() {
            return Ok(vec![self.target.clone()]);
        }
        self.cfg.nodes.iter().map(|n| Target::parse(n)).collect()
    }

    /// `GET /health/sse` as JSON (whatever the status). With [`SuiteConfig::nodes`], each
    /// node's: the worst status, and `connections` their sum (each node's answer in `nodes`).
    pub(crate) async fn health(&self) -> Result<(u16, Value), CheckError> {
        if self.cfg.nodes.is_empty() {
            let r = self.send("GET", "/health/sse", &[], b"").await?;
            return Ok((r.status, r.json()?));
        }
        let (mut status, mut connections, mut each) = (0, 0, Vec::new());
        for t in &self.count_targets()? {
            let r = client::send(t, "GET", "/health/sse", &[], b"", self.cfg.timeout).await?;
            let v = r.json()?;
            status = status.max(r.status);
            connections += v["connections"].as_u64().unwrap_or(0);
            each.push(v);
        }
        Ok((
            status,
            serde_json::json!({ "connections": connections, "nodes": each }),
        ))
    }

    /// Waits until the server reports no open connection (clients closed by earlier checks
    /// are noticed at the next heartbeat write).
    pub(crate) async fn wait_no_connections(&self, limit: Duration) -> CheckResult {
        let deadline = Instant::now() + limit;
        loop {
            let (_, h) = self.health().await?;
            if h["connections"] == 0 {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "connections still open after {limit:?}: {h}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
