//! `tether probe URL`: the runbook's validation step as one command. It holds a stream of a
//! fresh session the way a browser does (`Accept-Encoding: gzip`, `Last-Event-ID` on
//! reconnect) and reports, row by row, what a proxy, a load balancer or the server did to it:
//! headers, the `retry:` hint, heartbeats, buffering, drops, an exact resume, a resync for an
//! evicted id, and `/health/sse`.
//!
//! Exit codes: 0 when no check failed, 1 when one did, 2 when the probe could not run.

mod http;
mod judge;

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tether_replay::sse::{Block, Parser};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use self::http::{Base, End, HttpError, Read, Stream};
use self::judge::{Check, Delay, Disconnect, FirstEvent, Silence, Status};

/// Events the hold publishes to measure publish-to-arrival.
const MARKS: u64 = 5;
/// An event that takes longer than this from publish to arrival fails the buffering row.
const LATE: Duration = Duration::from_secs(1);
/// Events published while the probe is away, before it resumes.
const AWAY: u64 = 3;
/// Most events the resync search publishes when the ring size is not given.
const RESYNC_CAP: u64 = 10_000;
/// Most events in one publish request (the contract's limit).
const BATCH: u64 = 1000;
/// Longest wait for one request or one response head.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Reconnects during the hold before the probe stops trying.
const MAX_RECONNECTS: u32 = 30;

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

/// The report: every row, in the order they are printed.
struct Report {
    url: String,
    session: String,
    held: Duration,
    checks: Vec<Check>,
}

impl Report {
    fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    fn json(&self) -> Value {
        json!({
            "url": self.url,
            "session": self.session,
            "passed": self.passed(),
            "checks": self.checks.iter().map(Check::json).collect::<Vec<_>>(),
        })
    }

    fn table(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .checks
            .iter()
            .map(|c| {
                let status = match c.status {
                    Status::Fail => "FAIL".to_owned(),
                    s => s.as_str().to_owned(),
                };
                [
                    c.name.to_owned(),
                    status,
                    c.value.clone(),
                    c.expected.clone(),
                ]
            })
            .collect();
        let head = [
            "CHECK".to_owned(),
            "RESULT".to_owned(),
            "MEASURED".to_owned(),
            "EXPECTED".to_owned(),
        ];
        let mut width = [0usize; 4];
        for row in std::iter::once(&head).chain(&rows) {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!(
            "tether probe {} (session {}, held {})\n\n",
            self.url,
            self.session,
            judge::secs(self.held)
        );
        for row in std::iter::once(&head).chain(&rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i == 3 {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    let pad = width[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        out.push_str(&format!(
            "\n{} passed, {} failed, {} skipped: {}\n",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
            if self.passed() {
                "no check failed"
            } else {
                "a check failed"
            }
        ));
        out
    }
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

/// What one stream connection reported, each stamped when it happened.
#[derive(Debug)]
enum Obs {
    /// No response: the connection or the request failed.
    OpenFailed(HttpError),
    /// A response other than 200, with (the start of) its body.
    Refused { status: u16, body: String },
    /// The 200 response head.
    Head {
        at: Instant,
        headers: Vec<(String, String)>,
    },
    /// Bytes arrived.
    Bytes { at: Instant },
    /// A block of the event stream was complete.
    Block { at: Instant, block: Block },
    /// The body ended.
    End { at: Instant, how: End },
}

/// One stream connection, read by its own task so that every arrival is stamped as it
/// happens, whatever the probe is doing meanwhile. Dropping it closes the connection.
struct Conn {
    rx: mpsc::UnboundedReceiver<Obs>,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Conn {
    fn open(base: Base, path: String, headers: Vec<(&'static str, String)>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut s =
                match Stream::open(&base, &path, &headers, Duration::from_secs(86_400)).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Obs::OpenFailed(e));
                        return;
                    }
                };
            if s.status != 200 {
                let mut body = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(2);
                while body.len() < 1024 {
                    match timeout_at(deadline, s.read()).await {
                        Ok(Read::Bytes { decoded, .. }) => body.extend(decoded),
                        _ => break,
                    }
                }
                let _ = tx.send(Obs::Refused {
                    status: s.status,
                    body: http::snippet(&String::from_utf8_lossy(&body), 160),
                });
                return;
            }
            let _ = tx.send(Obs::Head {
                at: s.head_at,
                headers: s.headers.clone(),
            });
            let mut parser = Parser::new();
            loop {
                match s.read().await {
                    Read::Bytes { at, decoded } => {
                        if tx.send(Obs::Bytes { at }).is_err() {
                            return;
                        }
                        for block in parser.feed(&decoded) {
                            let _ = tx.send(Obs::Block { at, block });
                        }
                    }
                    Read::End { at, how } => {
                        let _ = tx.send(Obs::End { at, how });
                        return;
                    }
                }
            }
        });
        Self { rx, task }
    }
}

/// Waits for the next observation of `conn`; never resolves without a connection.
async fn next_obs(conn: &mut Option<Conn>) -> Option<Obs> {
    match conn {
        Some(c) => c.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What a block of the stream is to the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// One of the probe's own events, by number.
    Probe(u64),
    /// A `tether.resync`, with its reason.
    Resync(String),
    /// Another `tether.*` signal.
    Signal(String),
    /// A comment or an event without an id that is not a signal: a heartbeat.
    Heartbeat,
    /// A block with only a `retry:` field.
    Retry,
    /// Anything else (someone else's event, an id-only block).
    Other(String),
}

fn classify(block: &Block, nonce: &str) -> Kind {
    let Some(data) = &block.data else {
        return if block.comment {
            Kind::Heartbeat
        } else if block.retry.is_some() && block.id.is_none() {
            Kind::Retry
        } else {
            Kind::Other("an id-only block".to_owned())
        };
    };
    let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    if v["probe"] == nonce
        && let Some(n) = v["n"].as_u64()
    {
        return Kind::Probe(n);
    }
    if v["type"] == "CUSTOM"
        && let Some(name) = v["name"].as_str().filter(|n| n.starts_with("tether."))
    {
        if name == "tether.resync" {
            return Kind::Resync(v["value"]["reason"].as_str().unwrap_or("?").to_owned());
        }
        return Kind::Signal(name.to_owned());
    }
    if block.id.is_none() {
        return Kind::Heartbeat;
    }
    Kind::Other(format!("event {}", http::snippet(data, 60)))
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

/// The longest time between two arrivals on the stream (or between a request and its first
/// byte); the time while disconnected does not count (the drops row reports it).
struct Silences {
    start: Instant,
    last: Option<Instant>,
    /// The longest gap and when it began, since `start`.
    longest: (Duration, Duration),
}

impl Silences {
    fn new(start: Instant) -> Self {
        Self {
            start,
            last: Some(start),
            longest: (Duration::ZERO, Duration::ZERO),
        }
    }

    fn mark(&mut self, at: Instant) {
        if let Some(prev) = self.last {
            let gap = at.saturating_duration_since(prev);
            if gap > self.longest.0 {
                self.longest = (gap, prev.saturating_duration_since(self.start));
            }
        }
        self.last = Some(at);
    }

    fn mark_start(&mut self, at: Instant) {
        self.last = Some(at);
    }

    fn pause(&mut self) {
        self.last = None;
    }
}

/// What the hold found.
struct Hold {
    held: Duration,
    head: Result<Vec<(String, String)>, String>,
    subscribe: Check,
    retry: Option<u64>,
    silence: Silence,
    delays: Vec<Delay>,
    publish_error: Option<String>,
    drops: Vec<Disconnect>,
    /// The probe's events the stream delivered.
    seen: Vec<u64>,
    /// The last event id the stream carried (what a browser would resume from).
    last_id: Option<String>,
    /// The last of the probe's events with its id.
    anchor: Option<(String, u64)>,
    conn: Option<Conn>,
}

async fn run(args: ProbeArgs) -> Result<Report, String> {
    let base = Base::parse(&args.url)?;
    let session = match args.session {
        Some(s) => {
            tether_core::SessionId::new(&s).map_err(|e| format!("--session {s:?}: {e}"))?;
            s
        }
        None => format!("probe-{}", random_hex(12)),
    };
    let bar = if args.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar =
            ProgressBar::with_draw_target(Some(args.duration * 10), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:24}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    };
    let mut probe = Probe {
        base,
        session: session.clone(),
        nonce: random_hex(16),
        duration: Duration::from_secs(args.duration),
        keepalive: Duration::from_secs(args.keepalive_secs),
        token: args.token,
        publish_token: args.publish_token,
        provoke: args.provoke_resync,
        ring_hint: args.ring_events,
        next_n: 1,
        bar,
    };
    probe.bar.set_message("GET /health/sse");
    let health = match probe.health().await {
        Ok(h) => h,
        Err(e) => {
            probe.bar.finish_and_clear();
            return Err(e);
        }
    };
    let mut hold = probe.hold().await;
    let stream_ok = hold.head.is_ok();
    let mut checks = vec![health, hold.subscribe.clone()];
    checks.extend(judge::headers(hold.head.as_deref().map_err(String::as_str)));
    let no_stream = hold.head.as_ref().err().cloned().unwrap_or_default();
    checks.push(judge::retry(
        hold.retry,
        if stream_ok { Ok(()) } else { Err(&no_stream) },
    ));
    checks.push(judge::heartbeat(hold.silence, probe.keepalive));
    checks.push(if probe.publish_token.is_none() {
        skip_unpublished(
            "buffering",
            format!("every event within {} of its publish", judge::short(LATE)),
        )
    } else {
        judge::buffering(&hold.delays, hold.publish_error.as_deref(), LATE)
    });
    checks.push(judge::drops(&hold.drops, hold.held));
    probe.bar.set_message("resume after a deliberate drop");
    checks.push(probe.resume(&mut hold).await);
    probe.bar.set_message("resync");
    checks.push(probe.provoke(hold.anchor.clone()).await);
    probe.bar.finish_and_clear();
    Ok(Report {
        url: args.url,
        session,
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

impl Probe {
    fn stream_path(&self) -> String {
        format!("/api/sse/session/{}", self.session)
    }

    fn stream_headers(&self, last_id: Option<&str>) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("Accept", "text/event-stream".to_owned()),
            // What browsers send, so a proxy that compresses event streams shows itself.
            ("Accept-Encoding", "gzip".to_owned()),
            ("Cache-Control", "no-cache".to_owned()),
        ];
        if let Some(t) = &self.token {
            h.push(("Authorization", format!("Bearer {t}")));
        }
        if let Some(id) = last_id {
            h.push(("Last-Event-ID", id.to_owned()));
        }
        h
    }

    fn open(&self, last_id: Option<&str>) -> Conn {
        Conn::open(
            self.base.clone(),
            self.stream_path(),
            self.stream_headers(last_id),
        )
    }

    /// Opens a stream and waits for its 200 head; a 409 (another connection still holds the
    /// session under the Reject policy) is retried for a few seconds.
    async fn open_ready(&self, last_id: Option<&str>) -> Result<Conn, String> {
        for attempt in 0..8 {
            let mut conn = Some(self.open(last_id));
            let deadline = Instant::now() + REQUEST_LIMIT;
            match timeout_at(deadline, next_obs(&mut conn)).await {
                Ok(Some(Obs::Head { .. })) => return conn.ok_or_else(String::new),
                Ok(Some(Obs::Refused { status: 409, .. })) if attempt < 7 => {
                    sleep(Duration::from_millis(500)).await;
                }
                Ok(Some(Obs::Refused { status, body })) => {
                    return Err(format!("the stream answered {status} {body}"));
                }
                Ok(Some(Obs::OpenFailed(e))) => return Err(e.to_string()),
                Ok(_) => return Err("the stream connection failed".to_owned()),
                Err(_) => {
                    return Err(format!(
                        "no response head within {}",
                        judge::secs(REQUEST_LIMIT)
                    ));
                }
            }
        }
        Err("the stream kept answering 409".to_owned())
    }

    fn event(&mut self) -> Value {
        let n = self.next_n;
        self.next_n += 1;
        json!({"type": "tether.probe", "probe": self.nonce, "n": n})
    }

    /// Publishes `count` marked events in one request; returns their numbers and when the
    /// request was sent.
    async fn publish(&mut self, count: u64) -> Result<(Vec<u64>, Instant), String> {
        let first = self.next_n;
        let body = if count == 1 {
            self.event()
        } else {
            Value::Array((0..count).map(|_| self.event()).collect())
        };
        let mut headers = vec![("Content-Type", "application/json".to_owned())];
        if let Some(t) = &self.publish_token {
            headers.push(("Authorization", format!("Bearer {t}")));
        }
        let path = format!("/api/sessions/{}/events", self.session);
        let sent = Instant::now();
        let reply = http::request(
            &self.base,
            "POST",
            &path,
            &headers,
            body.to_string().as_bytes(),
            REQUEST_LIMIT,
        )
        .await
        .map_err(|e| e.to_string())?;
        if reply.status != 202 && reply.status != 200 {
            return Err(format!(
                "POST {path} answered {} {}",
                reply.status,
                reply.snippet(160)
            ));
        }
        Ok(((first..first + count).collect(), sent))
    }

    /// The `/health/sse` row. An unreachable service is an error: the probe cannot run.
    async fn health(&self) -> Result<Check, String> {
        const EXPECTED: &str = "200 JSON";
        let mut headers = vec![("Accept", "application/json".to_owned())];
        if let Some(t) = &self.token {
            headers.push(("Authorization", format!("Bearer {t}")));
        }
        match http::request(
            &self.base,
            "GET",
            "/health/sse",
            &headers,
            b"",
            REQUEST_LIMIT,
        )
        .await
        {
            Err(HttpError::Connect(e)) => Err(e),
            Err(e) => Ok(Check::new("health", Status::Fail, e.to_string(), EXPECTED)),
            Ok(r) => {
                let body = r.snippet(120);
                let json = serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v.is_object());
                let status = if r.status == 200 && json {
                    Status::Pass
                } else {
                    Status::Fail
                };
                let value = match r.status {
                    503 => format!("503 (draining, or a backplane is down) {body}"),
                    s => format!("{s} {body}"),
                };
                Ok(Check::new("health", status, value, EXPECTED))
            }
        }
    }

    /// Holds the stream for the duration, publishing marked events early on and staying
    /// quiet afterwards so that only heartbeats can break the silence.
    async fn hold(&mut self) -> Hold {
        let start = Instant::now();
        let end = start + self.duration;
        let head_wait = (self.duration / 4).min(Duration::from_secs(5));
        let spacing = if self.duration >= Duration::from_secs(10) {
            Duration::from_secs(1)
        } else {
            self.duration / 10
        };
        let far = end + Duration::from_secs(3600);

        let mut conn = Some(self.open(None));
        let mut head: Option<Vec<(String, String)>> = None;
        let mut refused: Option<String> = None;
        let mut retry = None;
        let mut last_retry: Option<u64> = None;
        let mut silence = Silences::new(start);
        let mut heartbeats = 0u32;
        let mut drops: Vec<Disconnect> = Vec::new();
        let mut reconnects = 0u32;
        let mut reconnect_at: Option<Instant> = None;
        let mut publish_from: Option<Instant> = None;
        let mut sent: Vec<(u64, Instant)> = Vec::new();
        let mut last_publish: Option<Instant> = None;
        let mut publish_error = None;
        let mut arrivals: HashMap<u64, Instant> = HashMap::new();
        let mut seen = Vec::new();
        let mut last_id: Option<String> = None;
        let mut anchor = None;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut stopped_at = end;

        loop {
            let can_publish = self.publish_token.is_some()
                && publish_error.is_none()
                && (sent.len() as u64) < MARKS;
            let next_publish = publish_from
                .filter(|_| can_publish)
                .map(|t| t + spacing * (sent.len() as u32 + 1))
                .filter(|t| *t + LATE < end);
            let obs = tokio::select! {
                biased;
                () = sleep_until(end) => break,
                obs = next_obs(&mut conn) => obs,
                () = sleep_until(next_publish.unwrap_or(far)), if next_publish.is_some() => {
                    match self.publish(1).await {
                        Ok((ns, at)) => {
                            sent.extend(ns.into_iter().map(|n| (n, at)));
                            last_publish = Some(at);
                        }
                        Err(e) => publish_error = Some(e),
                    }
                    continue;
                }
                () = sleep_until(reconnect_at.unwrap_or(far)), if reconnect_at.is_some() => {
                    reconnect_at = None;
                    reconnects += 1;
                    conn = Some(self.open(last_id.as_deref()));
                    // The silence clock runs from the request again.
                    silence.mark_start(Instant::now());
                    continue;
                }
                () = sleep_until(start + head_wait), if publish_from.is_none() => {
                    // No head yet: publish anyway; what a proxy holds back is what this measures.
                    publish_from = Some(Instant::now());
                    continue;
                }
                _ = tick.tick() => {
                    let t = start.elapsed().min(self.duration);
                    self.bar.set_position(t.as_millis() as u64 / 100);
                    self.bar.set_message(format!(
                        "hold {}/{} s, longest silence {}",
                        t.as_secs(),
                        self.duration.as_secs(),
                        judge::secs(silence.longest.0)
                    ));
                    continue;
                }
            };
            let Some(obs) = obs else {
                conn = None;
                continue;
            };
            let first = head.is_none() && refused.is_none();
            match obs {
                Obs::Head { at, headers } => {
                    silence.mark(at);
                    if first {
                        head = Some(headers);
                        publish_from.get_or_insert(at);
                    }
                }
                Obs::Bytes { at } => silence.mark(at),
                Obs::Block { at, block } => {
                    if let Some(id) = &block.id {
                        last_id = Some(id.clone());
                    }
                    if retry.is_none() {
                        retry = block.retry;
                    }
                    if block.retry.is_some() {
                        last_retry = block.retry;
                    }
                    match classify(&block, &self.nonce) {
                        Kind::Probe(n) => {
                            arrivals.entry(n).or_insert(at);
                            seen.push(n);
                            if let Some(id) = &block.id {
                                anchor = Some((id.clone(), n));
                            }
                        }
                        Kind::Heartbeat => heartbeats += 1,
                        _ => {}
                    }
                }
                Obs::End { at, how } => {
                    silence.mark(at);
                    silence.pause();
                    conn = None;
                    drops.push((at.saturating_duration_since(start), how.to_string()));
                    if reconnects < MAX_RECONNECTS {
                        // As EventSource does, after the stream's reconnection hint, but
                        // within a few seconds so the hold goes on.
                        let wait = Duration::from_millis(last_retry.unwrap_or(500).min(3000));
                        reconnect_at = Some(at + wait);
                    }
                }
                Obs::Refused { status, body } if first => {
                    refused = Some(format!("answered {status} {body}"));
                    stopped_at = Instant::now();
                    break;
                }
                Obs::OpenFailed(e) if first => {
                    refused = Some(e.to_string());
                    stopped_at = Instant::now();
                    break;
                }
                Obs::Refused { status, body } => {
                    conn = None;
                    drops.push((
                        start.elapsed(),
                        format!("reconnect answered {status} {body}"),
                    ));
                    if reconnects < MAX_RECONNECTS {
                        reconnect_at = Some(Instant::now() + Duration::from_secs(1));
                    }
                }
                Obs::OpenFailed(e) => {
                    conn = None;
                    drops.push((start.elapsed(), format!("reconnect failed: {e}")));
                    if reconnects < MAX_RECONNECTS {
                        reconnect_at = Some(Instant::now() + Duration::from_secs(1));
                    }
                }
            }
        }
        let stop = stopped_at.min(Instant::now());
        // What the reader stamped before the end but the loop had not taken yet.
        if let Some(c) = &mut conn {
            while let Ok(obs) = c.rx.try_recv() {
                match obs {
                    Obs::Head { at, .. } | Obs::Bytes { at } if at <= stop => silence.mark(at),
                    Obs::Block { at, block } if at <= stop => {
                        if let Some(id) = &block.id {
                            last_id = Some(id.clone());
                        }
                        match classify(&block, &self.nonce) {
                            Kind::Probe(n) => {
                                arrivals.entry(n).or_insert(at);
                                seen.push(n);
                                if let Some(id) = &block.id {
                                    anchor = Some((id.clone(), n));
                                }
                            }
                            Kind::Heartbeat => heartbeats += 1,
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        if refused.is_none() {
            // The silence still running at the end of the hold counts too.
            silence.mark(stop);
        }
        let held = stop.saturating_duration_since(start);
        let subscribe_expected =
            format!("200 text/event-stream for {}", judge::secs(self.duration));
        let (head, subscribe) = match (head, refused) {
            (Some(h), _) => (
                Ok(h),
                Check::new(
                    "subscribe",
                    Status::Pass,
                    format!("200, held {}", judge::secs(held)),
                    subscribe_expected,
                ),
            ),
            (None, Some(why)) => (
                Err("no stream (see subscribe)".to_owned()),
                Check::new("subscribe", Status::Fail, why, subscribe_expected),
            ),
            (None, None) => (
                Err("no response head (see subscribe)".to_owned()),
                Check::new(
                    "subscribe",
                    Status::Fail,
                    format!(
                        "no response head in {}: something on the path holds the stream back",
                        judge::secs(held)
                    ),
                    subscribe_expected,
                ),
            ),
        };
        let delays = sent
            .iter()
            .map(|(n, at)| {
                arrivals
                    .get(n)
                    .filter(|a| **a <= stop)
                    .map(|a| a.saturating_duration_since(*at))
            })
            .collect();
        Hold {
            held,
            head,
            subscribe,
            retry,
            silence: Silence {
                longest: silence.longest.0,
                from: silence.longest.1,
                heartbeats,
                quiet: stop.saturating_duration_since(last_publish.unwrap_or(start)),
            },
            delays,
            publish_error,
            drops,
            seen,
            last_id,
            anchor,
            conn,
        }
    }

    /// Drops the stream on purpose, publishes while away, resumes with `Last-Event-ID` and
    /// publishes once more: the resumed stream must carry exactly those events.
    async fn resume(&mut self, hold: &mut Hold) -> Check {
        let expected =
            format!("the {AWAY} events published while away, then live: no gap, no duplicate");
        if self.publish_token.is_none() {
            return skip_unpublished("resume", expected);
        }
        if let Err(why) = &hold.head {
            return Check::new("resume", Status::Skip, why.clone(), expected);
        }
        if hold.last_id.is_none() {
            // The hold was too short to publish: give the stream one event to carry an id.
            if let Err(e) = self.first_id(hold).await {
                return Check::new(
                    "resume",
                    Status::Fail,
                    format!("publish failed: {e}"),
                    expected,
                );
            }
        }
        let Some(last) = hold.last_id.clone() else {
            return Check::new(
                "resume",
                Status::Fail,
                "no event id arrived on the stream: a client cannot resume",
                expected,
            );
        };
        // The deliberate drop.
        drop(hold.conn.take());
        let mut want = Vec::new();
        for _ in 0..AWAY {
            match self.publish(1).await {
                Ok((ns, _)) => want.extend(ns),
                Err(e) => {
                    return Check::new(
                        "resume",
                        Status::Fail,
                        format!("publish failed: {e}"),
                        expected,
                    );
                }
            }
        }
        let mut conn = match self.open_ready(Some(&last)).await {
            Ok(c) => Some(c),
            Err(e) => {
                return Check::new("resume", Status::Fail, format!("resuming: {e}"), expected);
            }
        };
        let live = match self.publish(1).await {
            Ok((ns, _)) => ns[0],
            Err(e) => {
                return Check::new(
                    "resume",
                    Status::Fail,
                    format!("publish failed: {e}"),
                    expected,
                );
            }
        };
        want.push(live);
        let mut got = Vec::new();
        let mut resync = None;
        let mut deadline = Instant::now() + Duration::from_secs(5);
        let mut ended = None;
        while let Ok(obs) = timeout_at(deadline, next_obs(&mut conn)).await {
            match obs {
                Some(Obs::Block { block, .. }) => match classify(&block, &self.nonce) {
                    Kind::Probe(n) => {
                        got.push(n);
                        if let Some(id) = &block.id {
                            hold.anchor = Some((id.clone(), n));
                        }
                        if n == live {
                            // A little longer, for anything that follows it by mistake.
                            deadline = deadline.min(Instant::now() + Duration::from_millis(300));
                        }
                    }
                    Kind::Resync(reason) => resync = Some(reason),
                    _ => {}
                },
                Some(Obs::End { how, .. }) => {
                    ended = Some(how);
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        let mut check = judge::resume(&want, &hold.seen, &got, resync.as_deref());
        if let (Some(how), Status::Fail) = (ended, check.status) {
            check
                .value
                .push_str(&format!("; the resumed stream ended ({how})"));
        }
        check
    }

    /// Publishes one event and waits (up to 3 s) for the held stream to deliver it.
    async fn first_id(&mut self, hold: &mut Hold) -> Result<(), String> {
        let (ns, _) = self.publish(1).await?;
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Ok(Some(obs)) = timeout_at(deadline, next_obs(&mut hold.conn)).await {
            match obs {
                Obs::Block { block, .. } => {
                    if let Some(id) = &block.id {
                        hold.last_id = Some(id.clone());
                    }
                    if let Kind::Probe(n) = classify(&block, &self.nonce) {
                        hold.seen.push(n);
                        if let Some(id) = &block.id {
                            hold.anchor = Some((id.clone(), n));
                        }
                        if ns.contains(&n) {
                            break;
                        }
                    }
                }
                Obs::End { .. } => break,
                _ => {}
            }
        }
        Ok(())
    }

    /// Resumes from an id that has been evicted: the stream must say so with a
    /// `tether.resync` (reason `evicted`) instead of continuing silently.
    async fn provoke(&mut self, anchor: Option<(String, u64)>) -> Check {
        const EXPECTED: &str = "tether.resync (reason evicted) for an evicted id";
        if !self.provoke {
            return Check::new(
                "resync",
                Status::Skip,
                "pass --provoke-resync (publishes ring + 1 events)",
                EXPECTED,
            );
        }
        if self.publish_token.is_none() {
            return skip_unpublished("resync", EXPECTED.to_owned());
        }
        let Some((id, n)) = anchor else {
            return Check::new(
                "resync",
                Status::Skip,
                "none of the probe's events arrived with an id to resume from",
                EXPECTED,
            );
        };
        let next = n + 1;
        let mut published = self.next_n - next;
        // The ring keeps `ring` events, so ring + 1 after the anchor evict it; without a hint,
        // double until it is evicted.
        let mut target = self.ring_hint.map_or(1, |r| r + 1).max(published + 1);
        loop {
            while published < target {
                let k = (target - published).min(BATCH);
                if let Err(e) = self.publish(k).await {
                    return Check::new(
                        "resync",
                        Status::Fail,
                        format!("publish failed: {e}"),
                        EXPECTED,
                    );
                }
                published += k;
            }
            self.bar
                .set_message(format!("resync: {published} events published"));
            let first = match self.first_event(&id).await {
                Ok(f) => f,
                Err(e) => {
                    return Check::new("resync", Status::Fail, format!("resuming: {e}"), EXPECTED);
                }
            };
            let cap = RESYNC_CAP.max(self.ring_hint.map_or(0, |r| r + 1));
            if first == FirstEvent::Probe(next) && target < cap {
                target = (target * 2).min(cap);
                continue;
            }
            return judge::resync(&first, published, next);
        }
    }

    /// The first event of a stream resumed from `id`.
    async fn first_event(&self, id: &str) -> Result<FirstEvent, String> {
        let mut conn = Some(self.open_ready(Some(id)).await?);
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Ok(obs) = timeout_at(deadline, next_obs(&mut conn)).await {
            match obs {
                Some(Obs::Block { block, .. }) => match classify(&block, &self.nonce) {
                    Kind::Probe(n) => return Ok(FirstEvent::Probe(n)),
                    Kind::Resync(r) => return Ok(FirstEvent::Resync(r)),
                    Kind::Signal(s) => return Ok(FirstEvent::Other(s)),
                    Kind::Other(o) if block.data.is_some() => return Ok(FirstEvent::Other(o)),
                    _ => {}
                },
                Some(Obs::End { .. }) | None => break,
                Some(_) => {}
            }
        }
        Ok(FirstEvent::Nothing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(id: Option<&str>, data: Option<&str>, comment: bool, retry: Option<u64>) -> Block {
        Block {
            id: id.map(str::to_owned),
            data: data.map(str::to_owned),
            comment,
            retry,
            ..Block::default()
        }
    }

    #[test]
    fn blocks_are_told_apart() {
        let n = "abc";
        let probe = r#"{"type":"tether.probe","probe":"abc","n":7}"#;
        assert_eq!(
            classify(&block(Some("e-7"), Some(probe), false, None), n),
            Kind::Probe(7)
        );
        let other = r#"{"type":"tether.probe","probe":"xyz","n":7}"#;
        assert!(matches!(
            classify(&block(Some("e-7"), Some(other), false, None), n),
            Kind::Other(_)
        ));
        let resync = r#"{"type":"CUSTOM","name":"tether.resync","value":{"reason":"evicted"}}"#;
        assert_eq!(
            classify(&block(None, Some(resync), false, None), n),
            Kind::Resync("evicted".into())
        );
        assert_eq!(classify(&block(None, None, true, None), n), Kind::Heartbeat);
        assert_eq!(
            classify(&block(None, Some("{}"), false, None), n),
            Kind::Heartbeat
        );
        assert_eq!(
            classify(&block(None, None, false, Some(3000)), n),
            Kind::Retry
        );
    }

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
