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

use crate::client::{Reply, SseConn, StreamOptions, Target, send};
use crate::{CheckError, CheckResult, Report};

mod identity;
mod wire;

use identity::{
    anonymous_subscribes_create_no_session, cross_site_decisions, expired_token,
    head_and_unauthorized_get_leave_the_owner_alone, no_token, publish_without_a_publish_claim,
    reject_policy_blip, sessions_capped_per_identity, stream_ends_at_token_exp,
    superseded_tab_of_another_identity, token_for_another_session, token_of_another_key,
};
use wire::{smuggled_content_length, unauthenticated_bodies_are_not_read};

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
    Report::run_each(CHECKS, |name| run_check(name, base_url, cfg)).await
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
