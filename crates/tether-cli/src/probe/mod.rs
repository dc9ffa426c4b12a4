//! `tether probe URL`: the runbook's validation step as one command. It holds a stream of a
//! fresh session the way a browser does (`Accept-Encoding: gzip`, `Last-Event-ID` on
//! reconnect) and reports, row by row, what a proxy, a load balancer or the server did to it:
//! headers, the `retry:` hint, heartbeats, buffering, drops, an exact resume, a resync for an
//! evicted id, and `/health/sse`.
//!
//! Exit codes: 0 when no check failed, 1 when one did, 2 when the probe could not run.

mod conn;
mod health;
mod hold;
mod http;
mod judge;
mod report;
mod requests;
mod resume;
mod resync;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use self::hold::Hold;
use self::http::Base;
use self::judge::{Check, Status};
use self::report::Report;

/// An event that takes longer than this from publish to arrival fails the buffering row.
const LATE: Duration = Duration::from_secs(1);
/// Longest wait for one request or one response head.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// Flags of `tether probe`.
#[derive(Debug, Args)]
#[command(after_help = "\
Only http:// is supported: probe the address behind the TLS terminator, or through a tunnel \
to it. The probe subscribes to a fresh session (probe-<random>) unless --session names one. \
Without --publish-token it publishes nothing, and the buffering, resume and resync rows are \
skipped. \
--provoke-resync publishes ring + 1 events into the probe's session (found by doubling up to \
10000 events unless --ring-events gives the ring size), which trips eviction alerts on a \
production hub.

Exit codes: 0 no check failed, 1 a check failed, 2 the probe could not run.")]
pub(crate) struct ProbeArgs {
    /// The service's base URL, `http://host[:port][/prefix]`: the prefix goes in front of
    /// `/api/sse/session/{id}`, `/api/sessions/{id}/events` and `/health/sse`.
    url: String,
    /// Seconds to hold the stream (the runbook validates with 300).
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: u64,
    /// Session to subscribe to. Default is a fresh `probe-<random>`, so no user's session is
    /// touched.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Sent as `Authorization: Bearer T` on the stream and status requests.
    #[arg(
        long,
        env = "TETHER_PROBE_TOKEN",
        hide_env_values = true,
        value_name = "T"
    )]
    token: Option<String>,
    /// Sent as `Authorization: Bearer P` on publishes. With it, the probe publishes marked
    /// events to its session to measure buffering and resume.
    #[arg(
        long,
        env = "TETHER_PROBE_PUBLISH_TOKEN",
        hide_env_values = true,
        value_name = "P"
    )]
    publish_token: Option<String>,
    /// The service's heartbeat interval: the longest silence allowed is this + 5 s.
    #[arg(long, default_value_t = 15, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    keepalive_secs: u64,
    /// Also check the resync for an evicted id: publishes ring + 1 events (needs
    /// --publish-token).
    #[arg(long)]
    provoke_resync: bool,
    /// Events the service's ring keeps per session, so --provoke-resync publishes exactly
    /// ring + 1 events instead of searching.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    ring_events: Option<u64>,
    /// Print the report as JSON: {"url","session","passed","checks":[{"name","status","value","expected"}]}.
    #[arg(long)]
    json: bool,
}

/// Runs the probe and prints its report.
pub(crate) fn main(args: ProbeArgs) -> ExitCode {
    let json = args.json;
    let url = args.url.clone();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return could_not_run(json, &url, &format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            let out = if json {
                format!("{}\n", report.json())
            } else {
                report.table()
            };
            let mut stdout = std::io::stdout().lock();
            let _ = stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => could_not_run(json, &url, &e),
    }
}

fn could_not_run(json: bool, url: &str, why: &str) -> ExitCode {
    eprintln!("tether probe: could not run: {why}");
    if json {
        println!(
            "{}",
            json!({"url": url, "passed": false, "error": why, "checks": []})
        );
    }
    ExitCode::from(2)
}

/// Random lowercase hex, from the standard library's per-process hash keys and the clock.
fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut out = String::new();
    while out.len() < len {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        h.write_usize(out.len());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(len);
    out
}

/// The probe: what it was asked to do and the numbering of its events.
struct Probe {
    base: Base,
    session: String,
    nonce: String,
    duration: Duration,
    keepalive: Duration,
    token: Option<String>,
    publish_token: Option<String>,
    provoke: bool,
    ring_hint: Option<u64>,
    /// Number of the next event the probe publishes (from 1).
    next_n: u64,
    bar: ProgressBar,
}

async fn run(args: ProbeArgs) -> Result<Report, String> {
    let url = args.url.clone();
    let mut probe = Probe::new(args)?;
    probe.bar.set_message("GET /health/sse");
    let health = match probe.health().await {
        Ok(h) => h,
        Err(e) => {
            probe.bar.finish_and_clear();
            return Err(e);
        }
    };
    let mut hold = probe.hold().await;
    let mut checks = vec![health, hold.subscribe.clone()];
    checks.extend(probe.hold_rows(&hold));
    probe.bar.set_message("resume after a deliberate drop");
    checks.push(probe.resume(&mut hold).await);
    probe.bar.set_message("resync");
    checks.push(probe.provoke(hold.anchor.clone()).await);
    probe.bar.finish_and_clear();
    Ok(Report {
        url,
        session: probe.session,
        held: hold.held,
        checks,
    })
}

fn skip_unpublished(name: &'static str, expected: String) -> Check {
    Check::new(
        name,
        Status::Skip,
        "pass --publish-token to publish test events",
        expected,
    )
}

/// The progress bar on a terminal; hidden for JSON output or when stderr is not a terminal.
fn progress_bar(json: bool, duration: u64) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(duration * 10), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:24}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }
}

impl Probe {
    /// The probe the flags ask for; an error when the URL or the session id is not valid.
    fn new(args: ProbeArgs) -> Result<Self, String> {
        let base = Base::parse(&args.url)?;
        let session = match args.session {
            Some(s) => {
                tether_core::SessionId::new(&s).map_err(|e| format!("--session {s:?}: {e}"))?;
                s
            }
            None => format!("probe-{}", random_hex(12)),
        };
        Ok(Self {
            base,
            session,
            nonce: random_hex(16),
            duration: Duration::from_secs(args.duration),
            keepalive: Duration::from_secs(args.keepalive_secs),
            token: args.token,
            publish_token: args.publish_token,
            provoke: args.provoke_resync,
            ring_hint: args.ring_events,
            next_n: 1,
            bar: progress_bar(args.json, args.duration),
        })
    }

    /// The rows judged from the hold alone: headers, retry, heartbeat, buffering and drops.
    fn hold_rows(&self, hold: &Hold) -> Vec<Check> {
        let stream_ok = hold.head.is_ok();
        let mut checks = judge::headers(hold.head.as_deref().map_err(String::as_str));
        let no_stream = hold.head.as_ref().err().cloned().unwrap_or_default();
        checks.push(judge::retry(
            hold.retry,
            if stream_ok { Ok(()) } else { Err(&no_stream) },
        ));
        checks.push(judge::heartbeat(hold.silence, self.keepalive));
        checks.push(if self.publish_token.is_none() {
            skip_unpublished(
                "buffering",
                format!("every event within {} of its publish", judge::short(LATE)),
            )
        } else {
            judge::buffering(&hold.delays, hold.publish_error.as_deref(), LATE)
        });
        checks.push(judge::drops(&hold.drops, hold.held));
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_fit_the_session_grammar() {
        let a = format!("probe-{}", random_hex(12));
        assert_eq!(a.len(), 18);
        assert!(tether_core::SessionId::new(&a).is_ok());
        assert_ne!(random_hex(12), random_hex(12));
    }

    #[test]
    fn flags_parse() {
        use clap::Parser as _;
        let cli = crate::Cli::try_parse_from([
            "tether",
            "probe",
            "http://127.0.0.1:8080",
            "--duration",
            "300",
            "--publish-token",
            "p",
            "--provoke-resync",
            "--ring-events",
            "1024",
            "--json",
        ])
        .unwrap();
        let crate::Command::Probe(a) = cli.command else {
            panic!("parsed as probe")
        };
        assert_eq!(a.duration, 300);
        assert_eq!(a.keepalive_secs, 15);
        assert_eq!(a.ring_events, Some(1024));
        assert!(a.provoke_resync && a.json);
        assert!(
            crate::Cli::try_parse_from(["tether", "probe", "http://x", "--duration", "0"]).is_err()
        );
    }
}
