//! `tether serve --agent-url URL`: the hub in front of any AG-UI agent server, so its runs
//! survive the browser's connection.
//!
//! An AG-UI agent answers `POST` of a `RunAgentInput` with one SSE response per run; when that
//! response drops, the run's events are gone, and the AG-UI client has no resume. With
//! `--agent-url`, the hub mounts the durable run route (`POST /api/agui/run`, see
//! `tether_agui::http`) and runs each new run as a forwarded one: the input goes to the
//! agent, each event of its answer is published into the thread's session through the AG-UI
//! tracker, and the browser reads the session. The browser's response can drop: the agent's
//! answer is read to its end all the same, and `GET /api/sse/session/{threadId}` with
//! `Last-Event-ID` reattaches exactly.
//!
//! Pieces, one job each:
//! - [`upstream`]: the HTTP/1.1 call to the agent (hyper's client, plain http).
//! - [`reader`]: the agent's event stream, parsed to the specification and bounded.
//! - [`forward`]: one run, from the agent's events to the run's publisher, and every way it
//!   can end.
//! - [`cancel`]: `DELETE /api/agui/run/{threadId}`.
//! - [`metrics`]: runs by outcome, their duration, failed calls.
//!
//! An error status from the agent is reported as the run's `RUN_ERROR` (code
//! `agent_http_error`, with the status and the start of the agent's body), not as a 502 of the
//! POST: the run route accepts a run before it calls the agent, so the browser's response is
//! already the session's stream, and an AG-UI client shows a `RUN_ERROR` where a 502 would be
//! an exception.

pub(crate) mod cancel;
pub(crate) mod forward;
pub(crate) mod metrics;
pub(crate) mod reader;
pub(crate) mod upstream;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use http::HeaderMap;
use tether_agui::AguiRuns;
use tether_agui::http::RunRoute;
use tether_core::http::Service;

use self::cancel::{CancelRoute, Cancels};
use self::upstream::{AgentUrl, Upstream};

/// Flags of the agent proxy.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Put the hub in front of the AG-UI agent at this URL (plain `http://`): `POST
    /// /api/agui/run` forwards each run to it and makes the run durable and resumable. Runs
    /// need AG-UI tracking (not with `--no-agui`) and one node (not with `--redis`: a run
    /// publishes through this node's broker alone).
    #[arg(long = "agent-url", env = "TETHER_AGENT_URL", value_name = "URL")]
    pub(crate) agent_url: Option<String>,
    /// A header every call to the agent carries, for its own credentials
    /// (`Authorization: Bearer ...`); repeat it for several. Values are never logged.
    #[arg(
        long = "agent-header",
        env = "TETHER_AGENT_HEADER",
        value_name = "NAME:VALUE",
        hide_env_values = true
    )]
    pub(crate) agent_header: Vec<String>,
    /// Seconds a forwarded run may take before it ends with `RUN_ERROR` (code
    /// `agent_timeout`) and the call to the agent is closed.
    #[arg(long = "agent-timeout-secs", env = "TETHER_AGENT_TIMEOUT_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) agent_timeout_secs: u64,
    /// Seconds an agent's interrupt waits for its answer (its tether approval's deadline,
    /// the interrupt's `expiresAt`).
    #[arg(long = "agent-interrupt-timeout-secs", env = "TETHER_AGENT_INTERRUPT_TIMEOUT_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub(crate) agent_interrupt_timeout_secs: u64,
}

/// What every forwarded run shares.
#[derive(Debug)]
pub(crate) struct Proxy {
    upstream: Upstream,
    timeout: Duration,
    interrupt_timeout: Duration,
    max_event_bytes: usize,
    cancels: Cancels,
    metrics: metrics::Metrics,
}

/// The proxy's settings, checked before anything starts.
#[derive(Debug, Clone)]
pub(crate) struct ProxyConfig {
    url: AgentUrl,
    headers: HeaderMap,
    timeout: Duration,
    interrupt_timeout: Duration,
}

impl ProxyConfig {
    /// The settings from the flags; `None` without `--agent-url`.
    pub(crate) fn from_args(args: &AgentArgs) -> Result<Option<Self>, String> {
        let Some(raw) = args.agent_url.as_deref() else {
            if !args.agent_header.is_empty() {
                return Err("--agent-header needs --agent-url".into());
            }
            return Ok(None);
        };
        let url = AgentUrl::parse(raw)?;
        let mut headers = HeaderMap::new();
        for raw in &args.agent_header {
            let (name, value) = upstream::parse_header(raw)?;
            headers.append(name, value);
        }
        Ok(Some(Self {
            url,
            headers,
            timeout: Duration::from_secs(args.agent_timeout_secs),
            interrupt_timeout: Duration::from_secs(args.agent_interrupt_timeout_secs),
        }))
    }

    /// Mounts the run route (forwarding to the agent) and the cancel route on `service`,
    /// whose broker must track AG-UI sessions. Registers the proxy's metrics with the
    /// installed recorder. `max_event_bytes` bounds one event of the agent's stream.
    pub(crate) fn mount(self, service: Service, max_event_bytes: usize) -> Service {
        let cancels = Cancels::default();
        let proxy = Arc::new(Proxy {
            upstream: Upstream::new(self.url, self.headers),
            timeout: self.timeout,
            interrupt_timeout: self.interrupt_timeout,
            // The SSE text of an event: its JSON, `data: ` prefixes and line ends.
            max_event_bytes: max_event_bytes.saturating_mul(2).max(4096),
            cancels: cancels.clone(),
            metrics: metrics::Metrics::register(),
        });
        tracing::info!(agent_url = %proxy.upstream.url(), timeout_s = proxy.timeout.as_secs(), "AG-UI runs are forwarded to the agent");
        let runs = AguiRuns::new(service.broker().clone());
        let route = RunRoute::new(runs, move |input, publisher: tether_agui::RunPublisher| {
            // Registered before the run's task is spawned, so a DELETE right after the POST's
            // head finds the run.
            let registered = proxy
                .cancels
                .register(publisher.session(), publisher.run_id());
            forward::run(proxy.clone(), input, publisher, registered)
        });
        service.extension(route).extension(CancelRoute { cancels })
    }
}

/// Histogram buckets the proxy adds to the hub's recorder.
pub(crate) const HISTOGRAMS: &[(&str, &[f64])] =
    &[(metrics::RUN_DURATION_SECONDS, metrics::RUN_DURATION_BUCKETS)];

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> AgentArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            agent: AgentArgs,
        }
        Cli::try_parse_from(std::iter::once("t").chain(flags.iter().copied()))
            .unwrap()
            .agent
    }

    #[test]
    fn flags() {
        assert!(ProxyConfig::from_args(&args(&[])).unwrap().is_none());
        let c = ProxyConfig::from_args(&args(&[
            "--agent-url",
            "http://127.0.0.1:8000/",
            "--agent-header",
            "Authorization: Bearer k",
            "--agent-header",
            "x-tenant: blue",
            "--agent-timeout-secs",
            "5",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.interrupt_timeout, Duration::from_secs(3600));
        let e = ProxyConfig::from_args(&args(&["--agent-header", "a: b"])).unwrap_err();
        assert!(e.contains("--agent-url"), "{e}");
        let e = ProxyConfig::from_args(&args(&["--agent-url", "https://a/"])).unwrap_err();
        assert!(e.contains("https is not supported"), "{e}");
    }
}
