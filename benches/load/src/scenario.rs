//! The load scenarios: fan-out throughput, latency at a fixed rate, idle connections and a
//! reconnect storm (the idle flood lives in [`flood`](crate::flood)). Each returns one
//! [`ScenarioResult`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{Semaphore, watch},
    task::JoinSet,
    time::{Instant, sleep, sleep_until, timeout},
};

use crate::{
    agui::{AgentRuns, AguiCheck, Rng, raw_event_ts_of},
    client::{Publisher, ServerKind, SseStream, Target, open_sse_query},
    procfs,
    sse::{ChunkedDecoder, Frame, SseParser, count_of, payload_seq_of, ts_of},
    track::{
        FrameKind, SeqSource, SessionTracker, SharedHistogram, Summary, Totals, new_histogram,
    },
};

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What every scenario needs to know.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The server under test.
    pub target: Target,
    /// The server's process id, for memory and CPU readings.
    pub server_pid: Option<u32>,
    /// Where the generator publishes, when not to `target` (another node of the same
    /// deployment, so every event crosses the backplane).
    pub publish_target: Option<Target>,
    /// More processes whose CPU time counts as the server's (the other nodes, Redis, nginx's
    /// worker).
    pub cpu_pids: Vec<u32>,
    /// More processes whose resident memory counts as the server's (nginx's worker).
    pub rss_pids: Vec<u32>,
    /// How the server answers its publish route.
    pub server_kind: ServerKind,
    /// Name of the server in the results.
    pub label: String,
    /// Round number in the results (for repeated runs).
    pub round: u32,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// Who publishes the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// The generator posts batches to the publish route.
    Http {
        /// Events per second, or as fast as the server answers when `None`.
        rate: Option<u64>,
        /// Events per request.
        batch: usize,
        /// Concurrent keep-alive publishing connections.
        connections: usize,
    },
    /// The server publishes in-process (its `--self-publish RATE`); `rate` is for the record.
    InProcess {
        /// The rate the server was started with, if known.
        rate: Option<u64>,
    },
}

impl Publish {
    /// `http` (batches), `http1` (one event per request) or `self`.
    fn name(&self) -> &'static str {
        match self {
            Self::Http { batch: 1, .. } => "http1",
            Self::Http { .. } => "http",
            Self::InProcess { .. } => "self",
        }
    }

    /// Where clients read sequences from: the generator's own numbering in the payload when
    /// it publishes, the server's ids when the server does.
    fn seq_source(&self) -> SeqSource {
        match self {
            Self::Http { .. } => SeqSource::Payload,
            Self::InProcess { .. } => SeqSource::Id,
        }
    }

    fn batch(&self) -> Option<u64> {
        match *self {
            Self::Http { batch, .. } => Some(batch as u64),
            Self::InProcess { .. } => None,
        }
    }

    fn rate(&self) -> Option<u64> {
        match *self {
            Self::Http { rate, .. } | Self::InProcess { rate } => rate,
        }
    }
}

/// What the events are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    /// `{"ts":..,"n":..,"pad":".."}` of `event_bytes`, publish time in `ts`.
    Plain,
    /// AG-UI agent runs ([`crate::agui`]), publish time in `rawEvent.ts`. Over HTTP, one
    /// event per request, or each burst in one JSON array when `batch_bursts`.
    Agui {
        /// Post each burst as one request.
        batch_bursts: bool,
    },
}

/// Settings of the throughput and latency scenarios.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Sessions, one SSE client each unless `clients` says fewer.
    pub sessions: usize,
    /// SSE clients, spread evenly over the sessions (client `i` on session
    /// `i * sessions / clients`); `None` for one per session. With fewer clients than sessions
    /// and in-process publishing, the server must publish to every session (`--self-publish-all`),
    /// and the events it published are counted by their `"n"`.
    pub clients: Option<usize>,
    /// Events posted to every session over HTTP, one request per session, once the clients
    /// are connected and before the warmup, so that every session holds history; 0 for none.
    pub prefill: usize,
    /// Who publishes.
    pub publish: Publish,
    /// What is published.
    pub events: Events,
    /// Size of each generated event's JSON (plain events).
    pub event_bytes: usize,
    /// Time before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// Settings of the reconnecting variant of the AG-UI scenario.
#[derive(Debug, Clone, Copy)]
pub struct ReconnectOptions {
    /// Each client reconnects after this long on average (uniformly from half to one and a
    /// half times it), with `Last-Event-ID` and `?prelude=always`.
    pub every: Duration,
    /// Check every response with the AG-UI client's rules ([`AguiCheck`]).
    pub verify: bool,
}

/// Settings of the storm scenario.
#[derive(Debug, Clone)]
pub struct StormOptions {
    /// Sessions, one SSE client each; all of them drop and reconnect at once.
    pub sessions: usize,
    /// Who publishes (publishing goes on through the storm).
    pub publish: Publish,
    /// Size of each generated event's JSON.
    pub event_bytes: usize,
    /// Give up waiting for every client to catch up after this long.
    pub timeout: Duration,
    /// The clients drop their streams in waves of at most `wave` clients (0: all in one wave),
    /// the waves spread evenly over `spread`: the first at the storm's start, the last
    /// `spread` later.
    pub wave: usize,
    /// Time from the first wave to the last.
    pub spread: Duration,
}

impl StormOptions {
    /// Clients per wave and the time between waves.
    fn waves(&self) -> (usize, Duration) {
        let n = self.sessions.max(1);
        let waves = if self.wave == 0 {
            1
        } else {
            n.div_ceil(self.wave)
        };
        let per_wave = n.div_ceil(waves);
        let step = if waves > 1 {
            self.spread / (waves as u32 - 1)
        } else {
            Duration::ZERO
        };
        (per_wave, step)
    }
}

/// One scenario's measurements, written as one JSON line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// `throughput`, `latency`, `idle`, `idle-flood` or `storm`.
    pub scenario: String,
    /// `http`, `http1` (one event per request) or `self`, for scenarios that publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<String>,
    /// Events in each publish request (HTTP publishing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_request: Option<u64>,
    /// The server's label.
    pub server: String,
    /// Round number.
    #[serde(default)]
    pub round: u32,
    /// SSE connections asked for.
    pub connections: u64,
    /// SSE connections that were established at least once.
    pub connected: u64,
    /// Target publish rate, events/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<u64>,
    /// Length of the measured window, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<f64>,
    /// Events published per second in the window: by the generator (HTTP publishing), or by
    /// the server as the events' `"n"` counts them (in-process publishing to every session,
    /// only some of which have a client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_per_s: Option<f64>,
    /// Sessions, when fewer of them have a client (`connections`) than exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// Events posted to every session before the window (its history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_events: Option<u64>,
    /// Server CPU time (user + system) per event the server published in the window,
    /// microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_published: Option<f64>,
    /// Server RSS once every session holds its history (before the clients connect), KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_sessions_kib: Option<u64>,
    /// Server RSS at the end of the window, KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_end_kib: Option<u64>,
    /// Server RSS growth per session while the history was posted (from before the first
    /// post to after the last), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_per_session_bytes: Option<f64>,
    /// Events delivered per second in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_per_s: Option<f64>,
    /// Publish-to-receive latency in the window, microseconds (idle flood: from the start of
    /// the publish request to the event's arrival).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Summary>,
    /// Server CPU time (user + system) per delivered event in the window, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_event: Option<f64>,
    /// Server CPU use in the window, percent of one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_pct: Option<f64>,
    /// Generator CPU use in the window, percent of one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cpu_pct: Option<f64>,
    /// Server RSS before the connections were opened, KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_before_kib: Option<u64>,
    /// Server RSS with every connection open, KiB (idle flood: the most read in the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_after_kib: Option<u64>,
    /// Server RSS growth per open connection, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_per_conn_bytes: Option<f64>,
    /// Time to open every connection, milliseconds (idle flood: until each flood connection
    /// made its first attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_all_ms: Option<f64>,
    /// Storm: time from the drop until every client had its new stream, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_all_ms: Option<f64>,
    /// Storm: time from the drop until every client received a live event, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catchup_all_ms: Option<f64>,
    /// Storm: per-client time from the drop to its first live event, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catchup_ms: Option<Summary>,
    /// Storm: clients that caught up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_up: Option<u64>,
    /// Storm: server CPU time from the drop until every client caught up, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_server_cpu_ms: Option<f64>,
    /// Storm: the generator's own CPU time over the same span, milliseconds (it shares the
    /// machine's cores with the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_generator_cpu_ms: Option<f64>,
    /// Storm: the most clients dropping in one wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_wave: Option<u64>,
    /// Storm: milliseconds from the first wave to the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_spread_ms: Option<f64>,
    /// Idle flood: `GET /health/sse` round trips on fresh connections, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_us: Option<Summary>,
    /// Idle flood: time from connect to the stream's 200 head, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe_us: Option<Summary>,
    /// Idle flood: legitimate requests made (health checks, subscribes, published events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legit_requests: Option<u64>,
    /// Idle flood: legitimate requests that got a wrong answer or a broken connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legit_failed: Option<u64>,
    /// Idle flood: legitimate requests with no answer (or event) within their timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legit_timed_out: Option<u64>,
    /// Idle flood: flood connections the server closed while the flood was being opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood_closed_opening: Option<u64>,
    /// Idle flood: flood connections the server closed during the window (each reopened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood_closed: Option<u64>,
    /// Idle flood: fewest flood connections held at once during the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood_held_min: Option<u64>,
    /// Idle flood: the server's connection limit, as its `/health/sse` reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_max_connections: Option<u64>,
    /// Idle flood: connections the server refused by its limit during the run (its
    /// `/health/sse` `limits.connections.refused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_refused: Option<u64>,
    /// Evicted id: events published while the client was away (more than the server keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_away: Option<u64>,
    /// Evicted id: events from before the reconnect that the new stream delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_replayed: Option<u64>,
    /// Evicted id: sequence of the first event on the new stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_first_seq: Option<u64>,
    /// Evicted id: what the client got, in words (resync signal, silent gap, replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_answer: Option<String>,
    /// Resume: how many events behind the session's head each resume's `Last-Event-ID` was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_behind: Option<u64>,
    /// Resume: resumes made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumes: Option<u64>,
    /// Resume: server CPU time per resume, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_cpu_us: Option<f64>,
    /// Resume: time from a resume's connect to its last replayed event (to the response head
    /// when nothing is behind), microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_us: Option<Summary>,
    /// Resume: resumes whose replay was not exactly the events behind, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_inexact: Option<u64>,
    /// Reconnecting clients: reconnects made in the reconnecting window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<u64>,
    /// Reconnecting clients: server CPU per reconnect beyond the steady window's CPU per
    /// delivered event, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_cpu_us: Option<f64>,
    /// Reconnecting clients: events delivered per second in the reconnecting window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnecting_delivered_per_s: Option<f64>,
    /// Reconnecting clients: server CPU per delivered event in the reconnecting window,
    /// microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnecting_cpu_us_per_event: Option<f64>,
    /// Reconnecting clients: time from the start of a reconnect (before its TCP connect) to
    /// the first frame of the new stream, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_frame_us: Option<Summary>,
    /// Reconnecting clients: bytes of prelude data (frames without an id before the first
    /// id) per reconnect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prelude_bytes: Option<f64>,
    /// Reconnecting clients: events a prelude stood for (published while the client was
    /// away, carried by the snapshot instead of replayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prelude_covered: Option<u64>,
    /// AG-UI checks: responses checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses_checked: Option<u64>,
    /// AG-UI checks: responses that broke the official client's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_responses: Option<u64>,
    /// AG-UI checks: text that did not continue what the client had received before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_mismatches: Option<u64>,
    /// Events received (whole run, every session).
    pub delivered: u64,
    /// Events silently missing (gaps in the ids, or published but never received).
    pub lost: u64,
    /// Events received twice.
    pub duplicated: u64,
    /// Resync signals received.
    pub resyncs: u64,
    /// Events skipped after a resync signal (announced gaps).
    pub resync_skipped: u64,
    /// Failed connection attempts (refused, timed out, or not 200).
    pub conn_errors: u64,
    /// Streams that ended while the scenario still ran.
    pub disconnects: u64,
    /// Failed publish requests.
    pub publish_errors: u64,
}

impl ScenarioResult {
    /// `scenario` or `scenario-publish`, the key results are grouped by.
    pub fn key(&self) -> String {
        match &self.publish {
            Some(p) => format!("{}-{p}", self.scenario),
            None => self.scenario.clone(),
        }
    }

    /// One human-readable line.
    pub fn human(&self) -> String {
        let mut s = format!("{} [{}]", self.key(), self.server);
        let mut push = |text: String| {
            s.push_str("  ");
            s.push_str(&text);
        };
        push(format!("conns {}/{}", self.connected, self.connections));
        if let Some(v) = self.delivered_per_s {
            push(format!("delivered {v:.0}/s"));
        }
        if let Some(v) = self.published_per_s {
            push(format!("published {v:.0}/s"));
        }
        if let Some(v) = self.sessions {
            push(format!("sessions {v}"));
        }
        if let Some(v) = self.server_cpu_us_per_event {
            push(format!("server cpu {v:.2} µs/event"));
        }
        if let Some(v) = self.server_cpu_us_per_published {
            push(format!("server cpu {v:.2} µs/published event"));
        }
        if let Some(v) = self.rss_end_kib {
            push(format!("server rss {:.1} MiB", v as f64 / 1024.0));
        }
        if let Some(v) = self.rss_per_session_bytes {
            push(format!("rss {:.2} KiB/session", v / 1024.0));
        }
        if let (Some(k), Some(n)) = (self.resume_behind, self.resumes) {
            push(format!("{n} resumes {k} behind"));
        }
        if let Some(v) = self.resume_cpu_us {
            push(format!("server cpu {v:.1} µs/resume"));
        }
        if let Some(r) = &self.resume_us {
            push(format!("resumed in p50 {} p99 {} µs", r.p50, r.p99));
        }
        if let Some(v) = self.resume_inexact {
            push(format!("inexact replays {v}"));
        }
        if let Some(v) = self.server_cpu_pct {
            push(format!("server cpu {v:.0}%"));
        }
        match &self.latency_us {
            // The flood's few hundred events say little past p99: their max is the news.
            Some(l) if self.scenario == "idle-flood" => push(format!(
                "event p50 {} p99 {} max {} µs",
                l.p50, l.p99, l.max
            )),
            Some(l) => push(format!(
                "latency p50 {} p99 {} p99.9 {} µs",
                l.p50, l.p99, l.p999
            )),
            None => {}
        }
        if let Some(v) = self.rss_per_conn_bytes {
            push(format!("rss {:.1} KiB/conn", v / 1024.0));
        }
        if let Some(v) = self.connect_all_ms {
            push(format!("opened in {v:.0} ms"));
        }
        if let Some(h) = &self.health_us {
            push(format!(
                "health p50 {} p99 {} max {} µs",
                h.p50, h.p99, h.max
            ));
        }
        if let Some(s) = &self.subscribe_us {
            push(format!(
                "subscribe p50 {} p99 {} max {} µs",
                s.p50, s.p99, s.max
            ));
        }
        if let (Some(n), Some(failed), Some(timed_out)) =
            (self.legit_requests, self.legit_failed, self.legit_timed_out)
        {
            push(format!(
                "legit requests {n} failed {failed} timed out {timed_out}"
            ));
        }
        if let (Some(opening), Some(window)) = (self.flood_closed_opening, self.flood_closed) {
            push(format!(
                "flood closed by server {opening} opening + {window} in window"
            ));
        }
        if let Some(v) = self.flood_held_min {
            push(format!("flood held min {v}"));
        }
        if let Some(v) = self.server_max_connections {
            push(format!("server max connections {v}"));
        }
        if let Some(v) = self.server_refused {
            push(format!("server refused {v}"));
        }
        if self.scenario == "idle-flood"
            && let Some(v) = self.rss_after_kib
        {
            push(format!("server rss max {:.1} MiB", v as f64 / 1024.0));
        }
        if let Some(v) = self.reconnect_all_ms {
            push(format!("all reconnected {v:.0} ms"));
        }
        if let Some(n) = self.reconnects {
            push(format!("reconnects {n}"));
        }
        if let Some(v) = self.reconnecting_cpu_us_per_event {
            push(format!("reconnecting: server cpu {v:.2} µs/event"));
        }
        if let Some(v) = self.reconnect_cpu_us {
            push(format!("server cpu {v:.0} µs/reconnect beyond steady"));
        }
        if let Some(f) = &self.first_frame_us {
            push(format!("first frame p50 {} p99 {} µs", f.p50, f.p99));
        }
        if let Some(v) = self.prelude_bytes {
            push(format!("prelude {v:.0} bytes/reconnect"));
        }
        if let Some(v) = self.prelude_covered {
            push(format!("covered by preludes {v}"));
        }
        if let (Some(n), Some(bad), Some(mismatch)) = (
            self.responses_checked,
            self.invalid_responses,
            self.content_mismatches,
        ) {
            push(format!(
                "responses checked {n} invalid {bad} text mismatches {mismatch}"
            ));
        }
        if let Some(v) = self.catchup_all_ms {
            push(format!("all caught up {v:.0} ms"));
        }
        if let Some(v) = &self.evicted_answer {
            push(format!(
                "evicted id: {v}, first event after resume {}, {} published while away",
                self.evicted_first_seq
                    .map_or_else(|| "–".to_owned(), |s| s.to_string()),
                self.evicted_away.unwrap_or(0)
            ));
        }
        push(format!(
            "lost {} dup {} resyncs {} conn errors {} disconnects {} publish errors {}",
            self.lost,
            self.duplicated,
            self.resyncs,
            self.conn_errors,
            self.disconnects,
            self.publish_errors
        ));
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Run,
    Storm,
    Stop,
}

/// State shared by the driver, the clients and the publishers.
struct Shared {
    target: Target,
    publish_target: Target,
    server_kind: ServerKind,
    seq_source: SeqSource,
    run_id: String,
    read_buf: usize,
    connect_permits: Semaphore,
    /// Events delivered (all sessions, whole run).
    delivered: AtomicU64,
    connected: AtomicUsize,
    gave_up: AtomicUsize,
    with_event: AtomicUsize,
    caught_up: AtomicUsize,
    reconnected: AtomicUsize,
    measuring: AtomicBool,
    latency: SharedHistogram,
    storm_at_us: AtomicU64,
    received_max: Vec<AtomicU64>,
    published_max: Vec<AtomicU64>,
    publishing: AtomicBool,
    published: AtomicU64,
    publish_errors: AtomicU64,
    /// Reads an event's publish time.
    ts_of: fn(&[u8]) -> Option<u64>,
    /// Clients reconnect now and then (while `reconnecting`), and may check what they get.
    reconnect: Option<ReconnectOptions>,
    reconnecting: AtomicBool,
    reconnects: AtomicU64,
    first_frame: SharedHistogram,
    prelude_bytes: AtomicU64,
    /// Read each delivered event's `"n"` (the server's count of events it published) into
    /// `published_count`, the highest seen.
    count_published: bool,
    published_count: AtomicU64,
    /// Storm: clients per wave and the time between waves (all at once when `None`).
    storm_waves: Option<(usize, Duration)>,
    /// The sessions have history before the clients connect: a client's first event sets
    /// its position ([`SessionTracker::join_live`]).
    join_live: bool,
}

impl Shared {
    fn new(cfg: &RunConfig, sessions: usize, read_buf: usize, seq_source: SeqSource) -> Arc<Self> {
        Arc::new(Self::build(cfg, sessions, read_buf, seq_source))
    }

    fn build(cfg: &RunConfig, sessions: usize, read_buf: usize, seq_source: SeqSource) -> Self {
        Self {
            target: cfg.target.clone(),
            publish_target: cfg.publish_target.clone().unwrap_or(cfg.target.clone()),
            server_kind: cfg.server_kind,
            seq_source,
            run_id: format!("load{:x}", unix_micros() & 0xff_ffff_ffff),
            read_buf,
            connect_permits: Semaphore::new(256),
            delivered: AtomicU64::new(0),
            connected: AtomicUsize::new(0),
            gave_up: AtomicUsize::new(0),
            with_event: AtomicUsize::new(0),
            caught_up: AtomicUsize::new(0),
            reconnected: AtomicUsize::new(0),
            measuring: AtomicBool::new(false),
            latency: SharedHistogram::default(),
            storm_at_us: AtomicU64::new(0),
            received_max: (0..sessions).map(|_| AtomicU64::new(0)).collect(),
            published_max: (0..sessions).map(|_| AtomicU64::new(0)).collect(),
            publishing: AtomicBool::new(true),
            published: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            ts_of,
            reconnect: None,
            reconnecting: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            first_frame: SharedHistogram::default(),
            prelude_bytes: AtomicU64::new(0),
            count_published: false,
            published_count: AtomicU64::new(0),
            storm_waves: None,
            join_live: false,
        }
    }

    /// Sessions of the run (clients may be fewer).
    fn sessions(&self) -> usize {
        self.received_max.len()
    }

    /// How long after the storm's start client `index` drops its stream.
    fn storm_delay(&self, index: usize) -> Duration {
        match self.storm_waves {
            Some((per_wave, step)) if per_wave > 0 => step * (index / per_wave) as u32,
            _ => Duration::ZERO,
        }
    }

    fn session(&self, index: usize) -> String {
        format!("{}-{index}", self.run_id)
    }
}

/// What one client task reports when it ends.
#[derive(Debug, Default)]
struct ClientOutcome {
    index: usize,
    tracker: SessionTracker,
    connected: bool,
    conn_errors: u64,
    disconnects: u64,
    reconnect_us: Option<u64>,
    catchup_us: Option<u64>,
    /// What the client checked of the AG-UI events (reconnecting clients with `verify`).
    check: Option<AguiCheck>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_FAILED_ATTEMPTS: u32 = 5;

/// The stream a client is reading.
struct StreamState {
    parser: SseParser,
    chunked: Option<ChunkedDecoder>,
    /// After a storm: when the new stream opened; an event published later means caught up.
    reconnected_at: Option<u64>,
    /// After a periodic reconnect: when it started (unix µs), until the first frame.
    reconnect_started: Option<u64>,
    /// Until the first frame with an id: frames without one are the prelude.
    in_prelude: bool,
}

/// Decodes, parses and accounts bytes of a client's stream; false when the stream is over
/// (broken framing, or the last chunk of a chunked body).
fn ingest(
    shared: &Shared,
    out: &mut ClientOutcome,
    stream: &mut StreamState,
    latencies: &mut Vec<u64>,
    bytes: &[u8],
) -> bool {
    let now = unix_micros();
    let measuring = shared.measuring.load(Relaxed);
    let had_events = out.tracker.delivered > 0;
    let mut delivered = 0u64;
    let mut live = false;
    let tracker = &mut out.tracker;
    let check = &mut out.check;
    let reconnected_at = stream.reconnected_at;
    let read_ts = shared.ts_of;
    let reconnect_started = &mut stream.reconnect_started;
    let in_prelude = &mut stream.in_prelude;
    let mut prelude_bytes = 0u64;
    let mut first_frame = None;
    let count_published = shared.count_published;
    let mut published_count = 0u64;
    let mut on_frame = |frame: Frame<'_>| {
        if let Some(started) = reconnect_started.take() {
            first_frame = Some(now.saturating_sub(started));
        }
        if frame.id.is_some() {
            *in_prelude = false;
        } else if *in_prelude && let Some(data) = frame.data {
            prelude_bytes += data.len() as u64;
        }
        if let (Some(check), Some(data)) = (check.as_mut(), frame.data) {
            check.on_data(data, frame.id.is_some());
        }
        if let FrameKind::Delivered(_) = tracker.on_frame(frame) {
            delivered += 1;
            // The server's events only: the generator's own (the history) carry a "seq".
            if count_published
                && let Some(data) = frame.data
                && payload_seq_of(data).is_none()
                && let Some(n) = count_of(data)
            {
                published_count = published_count.max(n);
            }
            if let Some(ts) = frame.data.and_then(read_ts) {
                if measuring {
                    latencies.push(now.saturating_sub(ts));
                }
                if reconnected_at.is_some_and(|at| ts >= at) {
                    live = true;
                }
            }
        }
    };
    let parser = &mut stream.parser;
    let ok = match stream.chunked.as_mut() {
        Some(decoder) => {
            decoder
                .feed(bytes, &mut |b| parser.feed(b, &mut on_frame))
                .is_ok()
                && !decoder.is_done()
        }
        None => {
            parser.feed(bytes, &mut on_frame);
            true
        }
    };
    if published_count > 0 {
        shared.published_count.fetch_max(published_count, Relaxed);
    }
    if delivered > 0 {
        shared.delivered.fetch_add(delivered, Relaxed);
        if let Some(seq) = out.tracker.last_seq {
            shared.received_max[out.index].store(seq, Relaxed);
        }
        if !had_events {
            shared.with_event.fetch_add(1, Relaxed);
        }
    }
    if live {
        stream.reconnected_at = None;
        out.catchup_us = Some(now.saturating_sub(shared.storm_at_us.load(Relaxed)));
        shared.caught_up.fetch_add(1, Relaxed);
    }
    if let Some(us) = first_frame {
        shared.first_frame.flush(&mut vec![us]);
    }
    if prelude_bytes > 0 {
        shared.prelude_bytes.fetch_add(prelude_bytes, Relaxed);
    }
    if latencies.len() >= 512 {
        shared.latency.flush(latencies);
    }
    ok
}

/// One SSE client: connects, reads and accounts until told to stop; reconnects with
/// `Last-Event-ID` when its stream ends or a storm is called.
async fn client(
    shared: Arc<Shared>,
    index: usize,
    mut phase: watch::Receiver<Phase>,
) -> ClientOutcome {
    let session = shared.session(index);
    let mut out = ClientOutcome {
        index,
        tracker: SessionTracker::new(shared.seq_source),
        check: shared
            .reconnect
            .filter(|r| r.verify)
            .map(|_| AguiCheck::default()),
        ..ClientOutcome::default()
    };
    if shared.join_live {
        out.tracker.join_live();
    }
    let mut failed_attempts = 0;
    let mut storm_pending = false;
    // A storm in waves: when this client's wave drops its stream.
    let mut storm_drop_at: Option<Instant> = None;
    let mut latencies: Vec<u64> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    // Periodic reconnects: when the one under way started (unix µs), and when the next is due.
    let mut rng = Rng::new(index as u64);
    let mut reconnect_started: Option<u64> = None;
    let client_id = shared.reconnect.map(|_| format!("clientId=load-{index}"));
    let next_reconnect = |rng: &mut Rng| {
        let every = shared.reconnect.map(|r| r.every);
        Instant::now() + every.map_or(Duration::from_secs(86_400), |e| e.mul_f64(0.5 + rng.unit()))
    };
    'connect: loop {
        if *phase.borrow() == Phase::Stop {
            break;
        }
        let permit = if out.connected {
            None
        } else {
            shared.connect_permits.acquire().await.ok()
        };
        let last_id = (!out.tracker.last_id.is_empty()).then_some(&out.tracker.last_id[..]);
        // A reconnecting client names itself (`clientId`), as a client that reconnects on
        // purpose should: the stream it replaces may still be open on the server, and a
        // nameless client coming back to a session whose stream superseded it is told to
        // stop (204).
        let query = match (&client_id, reconnect_started) {
            (Some(id), Some(_)) => format!("{id}&prelude=always"),
            (Some(id), None) => id.clone(),
            (None, _) => String::new(),
        };
        let opened = timeout(
            CONNECT_TIMEOUT,
            open_sse_query(&shared.target, &session, &query, last_id),
        )
        .await;
        drop(permit);
        let Ok(Ok(sse)) = opened else {
            out.conn_errors += 1;
            failed_attempts += 1;
            if failed_attempts >= MAX_FAILED_ATTEMPTS {
                shared.gave_up.fetch_add(1, Relaxed);
                break;
            }
            tokio::select! {
                _ = sleep(Duration::from_millis(200 * u64::from(failed_attempts))) => continue 'connect,
                _ = phase.changed() => continue 'connect,
            }
        };
        failed_attempts = 0;
        if !out.connected {
            out.connected = true;
            shared.connected.fetch_add(1, Relaxed);
        }
        let SseStream {
            stream,
            pending,
            chunked,
        } = sse;
        let mut state = StreamState {
            parser: SseParser::default(),
            chunked,
            reconnected_at: None,
            reconnect_started: reconnect_started.take(),
            in_prelude: false,
        };
        if state.reconnect_started.is_some() {
            state.in_prelude = true;
            out.tracker.expect_prelude();
            shared.reconnects.fetch_add(1, Relaxed);
        }
        if let Some(check) = out.check.as_mut() {
            check.new_response();
        }
        let reconnect_timer = sleep_until(next_reconnect(&mut rng));
        tokio::pin!(reconnect_timer);
        let storm_timer = sleep_until(
            storm_drop_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400)),
        );
        tokio::pin!(storm_timer);
        if storm_pending && out.catchup_us.is_none() {
            let now = unix_micros();
            state.reconnected_at = Some(now);
            if out.reconnect_us.is_none() {
                out.reconnect_us = Some(now.saturating_sub(shared.storm_at_us.load(Relaxed)));
                shared.reconnected.fetch_add(1, Relaxed);
            }
        }
        if !pending.is_empty() && !ingest(&shared, &mut out, &mut state, &mut latencies, &pending) {
            out.disconnects += 1;
            continue 'connect;
        }
        drop(pending);
        loop {
            tokio::select! {
                biased;
                changed = phase.changed() => {
                    match changed.map(|()| *phase.borrow_and_update()) {
                        Ok(Phase::Storm) => {
                            let delay = shared.storm_delay(index);
                            if delay.is_zero() {
                                storm_pending = true;
                                drop(stream);
                                continue 'connect;
                            }
                            let at = Instant::now() + delay;
                            storm_drop_at = Some(at);
                            storm_timer.as_mut().reset(at);
                        }
                        Ok(Phase::Run) => {}
                        Ok(Phase::Stop) | Err(_) => break 'connect,
                    }
                }
                () = &mut storm_timer, if storm_drop_at.is_some() => {
                    storm_drop_at = None;
                    storm_pending = true;
                    drop(stream);
                    continue 'connect;
                }
                () = &mut reconnect_timer, if shared.reconnect.is_some() => {
                    if shared.reconnecting.load(Relaxed) {
                        reconnect_started = Some(unix_micros());
                        drop(stream);
                        continue 'connect;
                    }
                    reconnect_timer.as_mut().reset(next_reconnect(&mut rng));
                }
                ready = stream.readable() => {
                    if ready.is_err() {
                        out.disconnects += 1;
                        continue 'connect;
                    }
                    if buf.len() < shared.read_buf {
                        buf.resize(shared.read_buf, 0);
                    }
                    match stream.try_read(&mut buf) {
                        Ok(0) => {
                            out.disconnects += 1;
                            // A server that ends the stream is reconnected to, as EventSource does.
                            tokio::select! {
                                _ = sleep(Duration::from_millis(100)) => {}
                                _ = phase.changed() => {}
                            }
                            continue 'connect;
                        }
                        Ok(n) => {
                            if !ingest(&shared, &mut out, &mut state, &mut latencies, &buf[..n]) {
                                out.disconnects += 1;
                                continue 'connect;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => {
                            out.disconnects += 1;
                            continue 'connect;
                        }
                    }
                }
            }
        }
    }
    shared.latency.flush(&mut latencies);
    out
}

/// The generated event: JSON of about `bytes` bytes carrying its publish time in `ts` and
/// its sequence number in its session in `seq` (1 for the session's first event).
pub fn bench_event(out: &mut Vec<u8>, ts: u64, seq: u64, n: u64, bytes: usize) {
    let mut buffer = itoa::Buffer::new();
    let start = out.len();
    out.extend_from_slice(b"{\"ts\":");
    out.extend_from_slice(buffer.format(ts).as_bytes());
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(buffer.format(seq).as_bytes());
    out.extend_from_slice(b",\"n\":");
    out.extend_from_slice(buffer.format(n).as_bytes());
    out.extend_from_slice(b",\"pad\":\"");
    let used = out.len() - start + 2;
    out.resize(out.len() + bytes.saturating_sub(used), b'x');
    out.extend_from_slice(b"\"}");
}

/// What a publishing connection posts.
#[derive(Debug, Clone, Copy)]
struct Posts {
    /// Events/s over all publishers, or as fast as the server answers.
    rate: Option<u64>,
    /// Events per request.
    batch: usize,
    /// Size of each event's JSON.
    event_bytes: usize,
    /// Stop after this many requests to each session (run until told otherwise when `None`).
    rounds: Option<u64>,
}

/// How late tokio's millisecond timer may wake a paced publisher.
const TIMER_SLACK_US: u64 = 2_000;

/// One publishing connection: posts batches round-robin over its share of the sessions,
/// paced to `rate` (events/s over all publishers) or as fast as the server answers. A batch
/// of one is posted as a bare JSON object, a larger one as an array. Each session belongs to
/// one publisher, which numbers its events (`"seq"`) 1, 2, 3, ... in the order it posts them;
/// the numbers of a request that failed are given again to the next one, so only what the
/// server acknowledged counts as published.
async fn publisher(
    shared: Arc<Shared>,
    worker: usize,
    workers: usize,
    sessions: usize,
    posts: Posts,
) {
    let Posts {
        rate,
        batch,
        event_bytes,
        rounds,
    } = posts;
    let mine: Vec<usize> = (worker..sessions).step_by(workers).collect();
    if mine.is_empty() {
        return;
    }
    let mut publisher = Publisher::with_kind(shared.publish_target.clone(), shared.server_kind);
    // The last sequence number given in each of `mine` (after any history posted before).
    let mut seqs: Vec<u64> = mine
        .iter()
        .map(|i| shared.published_max[*i].load(Relaxed))
        .collect();
    let interval_us = rate.map(|r| (batch * workers) as f64 * 1e6 / r.max(1) as f64);
    let start = Instant::now();
    let start_us = unix_micros();
    let mut body = Vec::with_capacity(batch * (event_bytes + 1) + 2);
    let mut n = (worker as u64) << 40;
    let mut k: u64 = 0;
    let requests = rounds.map(|r| r * mine.len() as u64);
    while shared.publishing.load(Relaxed) && requests.is_none_or(|r| k < r) {
        let ts = match interval_us {
            Some(interval) => {
                // Open loop. A request sent late (the server held the publisher up) keeps its
                // scheduled time, beyond the timer's own slack, so a slow server cannot hide
                // its delay by slowing the publisher down.
                let offset = (k as f64 * interval) as u64;
                sleep_until(start + Duration::from_micros(offset)).await;
                unix_micros().min(start_us + offset + TIMER_SLACK_US)
            }
            None => unix_micros(),
        };
        let slot = k as usize % mine.len();
        let index = mine[slot];
        k += 1;
        body.clear();
        if batch > 1 {
            body.push(b'[');
        }
        for i in 0..batch as u64 {
            if i > 0 {
                body.push(b',');
            }
            n += 1;
            bench_event(&mut body, ts, seqs[slot] + i + 1, n, event_bytes);
        }
        if batch > 1 {
            body.push(b']');
        }
        match publisher.post(&shared.session(index), &body).await {
            Ok(answer) => {
                seqs[slot] += batch as u64;
                shared.published.fetch_add(answer.accepted as u64, Relaxed);
                shared.published_max[index].fetch_max(seqs[slot], Relaxed);
            }
            Err(_) => {
                shared.publish_errors.fetch_add(1, Relaxed);
                sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// One publishing connection of the AG-UI scenarios: plays an agent's runs in each of its
/// share of the sessions, a burst per turn round-robin, each event its own request or (with
/// `batch_bursts`) each burst one JSON array; paced to `rate` events/s over all publishers,
/// open loop, or as fast as the server answers. A failed publish ends the session's run with
/// `RUN_ERROR` and starts a fresh one.
async fn agui_publisher(
    shared: Arc<Shared>,
    worker: usize,
    workers: usize,
    sessions: usize,
    rate: Option<u64>,
    batch_bursts: bool,
) {
    let mine: Vec<usize> = (worker..sessions).step_by(workers).collect();
    if mine.is_empty() {
        return;
    }
    let names: Vec<String> = mine.iter().map(|i| shared.session(*i)).collect();
    let mut agents: Vec<AgentRuns> = mine
        .iter()
        .map(|i| AgentRuns::new(unix_micros() ^ ((*i as u64) << 20)))
        .collect();
    let mut publisher = Publisher::with_kind(shared.publish_target.clone(), shared.server_kind);
    let interval_us = rate.map(|r| workers as f64 * 1e6 / r.max(1) as f64);
    let start = Instant::now();
    let start_us = unix_micros();
    // Events scheduled so far (the open-loop clock counts events, not requests).
    let mut scheduled: u64 = 0;
    let mut body = Vec::with_capacity(8 * 256);
    let mut turn: usize = 0;
    'turns: while shared.publishing.load(Relaxed) {
        let slot = turn % mine.len();
        turn += 1;
        let (index, session) = (mine[slot], &names[slot]);
        let mut more = true;
        body.clear();
        let mut in_body = 0usize;
        let mut ts = 0;
        while more {
            // A batch carries its request's time; otherwise each event has its own.
            if !batch_bursts || in_body == 0 {
                ts = match interval_us {
                    Some(interval) => {
                        let offset = (scheduled as f64 * interval) as u64;
                        sleep_until(start + Duration::from_micros(offset)).await;
                        unix_micros().min(start_us + offset + TIMER_SLACK_US)
                    }
                    None => unix_micros(),
                };
            }
            if batch_bursts {
                body.push(if in_body == 0 { b'[' } else { b',' });
            }
            more = agents[slot].next_event(session, ts, &mut body);
            in_body += 1;
            scheduled += 1;
            if batch_bursts && more {
                continue;
            }
            if batch_bursts {
                body.push(b']');
            }
            match publisher.post(session, &body).await {
                Ok(answer) => {
                    shared.published.fetch_add(answer.accepted as u64, Relaxed);
                    if let Some(seq) = answer.last_seq {
                        shared.published_max[index].fetch_max(seq, Relaxed);
                    }
                }
                Err(_) => {
                    shared.publish_errors.fetch_add(1, Relaxed);
                    agents[slot].restart();
                    sleep(Duration::from_millis(20)).await;
                    continue 'turns;
                }
            }
            body.clear();
            in_body = 0;
            if !shared.publishing.load(Relaxed) {
                break 'turns;
            }
        }
    }
}

/// A progress bar on stderr, or nothing.
pub(crate) struct Progress {
    pub(crate) bar: ProgressBar,
}

impl Progress {
    pub(crate) fn new(enabled: bool) -> Self {
        let bar = if enabled {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        Self { bar }
    }

    pub(crate) fn stage(&self, message: String, len: u64) {
        let style = ProgressStyle::with_template(
            "{prefix:>10} {wide_msg} [{bar:30}] {pos}/{len} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        self.bar.set_style(style);
        self.bar.set_length(len);
        self.bar.set_position(0);
        self.bar.set_message(message);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Readings of the server and the generator at one moment.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    delivered: u64,
    published: u64,
    /// The server's count of events it published, as far as the clients saw it.
    published_count: u64,
    server_cpu_us: Option<u64>,
    own_cpu_us: Option<u64>,
}

impl Snapshot {
    fn take(shared: &Shared, cfg: &RunConfig) -> Self {
        Self {
            at: Instant::now(),
            delivered: shared.delivered.load(Relaxed),
            published: shared.published.load(Relaxed),
            published_count: shared.published_count.load(Relaxed),
            server_cpu_us: server_cpu(cfg),
            own_cpu_us: procfs::cpu_micros(std::process::id()),
        }
    }
}

/// CPU time of the server and of every process counted with it, in microseconds.
pub(crate) fn server_cpu(cfg: &RunConfig) -> Option<u64> {
    let mut total = cfg.server_pid.and_then(procfs::cpu_micros)?;
    for pid in &cfg.cpu_pids {
        total += procfs::cpu_micros(*pid)?;
    }
    Some(total)
}

/// Resident memory of the server and of every process counted with it, in KiB.
fn server_rss(cfg: &RunConfig) -> Option<u64> {
    let mut total = cfg.server_pid.and_then(procfs::rss_kib)?;
    for pid in &cfg.rss_pids {
        total += procfs::rss_kib(*pid)?;
    }
    Some(total)
}

fn per_conn(before: Option<u64>, after: Option<u64>, conns: usize) -> Option<f64> {
    let (before, after) = (before?, after?);
    (conns > 0).then(|| (after as f64 - before as f64) * 1024.0 / conns as f64)
}

struct Clients {
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    tasks: JoinSet<ClientOutcome>,
    count: usize,
}

impl Clients {
    /// `count` clients spread evenly over the sessions (client `i` on session
    /// `i * sessions / count`: each on its own when there are as many).
    fn spawn(shared: &Arc<Shared>, count: usize) -> Self {
        let (phase, rx) = watch::channel(Phase::Run);
        let mut tasks = JoinSet::new();
        let sessions = shared.sessions().max(count);
        for i in 0..count {
            let index = i * sessions / count.max(1);
            tasks.spawn(client(Arc::clone(shared), index, rx.clone()));
        }
        Self {
            shared: Arc::clone(shared),
            phase,
            tasks,
            count,
        }
    }

    /// Waits until every client connected or gave up; returns how long that took.
    async fn wait_connected(&self, progress: &Progress) -> Duration {
        let start = Instant::now();
        progress.stage("connecting".into(), self.count as u64);
        loop {
            let connected = self.shared.connected.load(Relaxed);
            let gave_up = self.shared.gave_up.load(Relaxed);
            progress.bar.set_position(connected as u64);
            if connected + gave_up >= self.count || start.elapsed() > Duration::from_secs(120) {
                return start.elapsed();
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) -> Vec<ClientOutcome> {
        let _ = self.phase.send(Phase::Stop);
        let mut outcomes = Vec::with_capacity(self.count);
        while let Some(outcome) = self.tasks.join_next().await {
            if let Ok(outcome) = outcome {
                outcomes.push(outcome);
            }
        }
        outcomes.sort_by_key(|o| o.index);
        outcomes
    }
}

/// Waits `length`, showing the delivery rate.
async fn timed_stage(progress: &Progress, shared: &Shared, name: &str, length: Duration) {
    let start = Instant::now();
    let tenths = (length.as_millis() / 100) as u64;
    progress.stage(name.to_owned(), tenths);
    let mut last = (start, shared.delivered.load(Relaxed));
    while start.elapsed() < length {
        sleep(Duration::from_millis(100).min(length.saturating_sub(start.elapsed()))).await;
        let now = Instant::now();
        let delivered = shared.delivered.load(Relaxed);
        if now.duration_since(last.0) >= Duration::from_millis(500) {
            let rate = (delivered - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            progress
                .bar
                .set_message(format!("{name}: {rate:.0} events/s"));
            last = (now, delivered);
        }
        progress
            .bar
            .set_position((start.elapsed().as_millis() / 100) as u64);
    }
}

fn spawn_publishers(
    shared: &Arc<Shared>,
    publish: Publish,
    events: Events,
    sessions: usize,
    event_bytes: usize,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    if let Publish::Http {
        rate,
        batch,
        connections,
    } = publish
    {
        let connections = connections.max(1);
        for worker in 0..connections {
            if let Events::Agui { batch_bursts } = events {
                set.spawn(agui_publisher(
                    Arc::clone(shared),
                    worker,
                    connections,
                    sessions,
                    rate,
                    batch_bursts,
                ));
                continue;
            }
            let posts = Posts {
                rate,
                batch: batch.max(1),
                event_bytes,
                rounds: None,
            };
            set.spawn(publisher(
                Arc::clone(shared),
                worker,
                connections,
                sessions,
                posts,
            ));
        }
    }
    set
}

/// Connections that post the history of [`StreamOptions::prefill`].
const PREFILL_CONNECTIONS: usize = 8;

/// Posts `events` events to every session over HTTP, one request per session, and waits until
/// every request was answered.
async fn prefill(shared: &Arc<Shared>, progress: &Progress, events: usize, event_bytes: usize) {
    let sessions = shared.sessions();
    progress.stage("history".into(), sessions as u64);
    let mut set = JoinSet::new();
    for worker in 0..PREFILL_CONNECTIONS {
        let posts = Posts {
            rate: None,
            batch: events.max(1),
            event_bytes,
            rounds: Some(1),
        };
        set.spawn(publisher(
            Arc::clone(shared),
            worker,
            PREFILL_CONNECTIONS,
            sessions,
            posts,
        ));
    }
    loop {
        tokio::select! {
            done = set.join_next() => if done.is_none() { break },
            () = sleep(Duration::from_millis(100)) => {}
        }
        progress
            .bar
            .set_position(shared.published.load(Relaxed) / events.max(1) as u64);
    }
}

/// Stops the publishers; with HTTP publishing, waits (up to `limit`) until every session has
/// received what was published to it.
async fn stop_publishers(
    shared: &Shared,
    mut publishers: JoinSet<()>,
    http: bool,
    limit: Duration,
) {
    shared.publishing.store(false, Relaxed);
    while publishers.join_next().await.is_some() {}
    let start = Instant::now();
    while http && start.elapsed() < limit {
        let behind = shared
            .published_max
            .iter()
            .zip(&shared.received_max)
            .any(|(published, received)| received.load(Relaxed) < published.load(Relaxed));
        if !behind {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    if !http {
        sleep(Duration::from_millis(200)).await;
    }
}

fn totals(shared: &Shared, outcomes: &mut [ClientOutcome], http: bool) -> (Totals, u64, u64) {
    let mut totals = Totals::default();
    let (mut conn_errors, mut disconnects) = (0, 0);
    for outcome in outcomes.iter_mut() {
        if http {
            outcome
                .tracker
                .settle_tail(shared.published_max[outcome.index].load(Relaxed));
        }
        totals.add(&outcome.tracker);
        conn_errors += outcome.conn_errors;
        disconnects += outcome.disconnects;
    }
    (totals, conn_errors, disconnects)
}

fn base_result(
    cfg: &RunConfig,
    scenario: &str,
    publish: Option<&Publish>,
    connections: usize,
    shared: &Shared,
) -> ScenarioResult {
    ScenarioResult {
        scenario: scenario.to_owned(),
        publish: publish.map(|p| p.name().to_owned()),
        events_per_request: publish.and_then(Publish::batch),
        server: cfg.label.clone(),
        round: cfg.round,
        connections: connections as u64,
        connected: shared.connected.load(Relaxed) as u64,
        target_rate: publish.and_then(Publish::rate),
        ..ScenarioResult::default()
    }
}

fn fill_totals(
    result: &mut ScenarioResult,
    totals: Totals,
    conn_errors: u64,
    disconnects: u64,
    shared: &Shared,
) {
    result.delivered = totals.delivered;
    result.lost = totals.lost;
    result.duplicated = totals.duplicated;
    result.resyncs = totals.resyncs;
    result.resync_skipped = totals.resync_skipped;
    result.conn_errors = conn_errors;
    result.disconnects = disconnects;
    result.publish_errors = shared.publish_errors.load(Relaxed);
}

/// Throughput or latency: `sessions` SSE clients, events published by the generator or the
/// server, measured over a window after a warmup.
pub async fn run_stream(cfg: &RunConfig, scenario: &str, opts: &StreamOptions) -> ScenarioResult {
    // AG-UI events carry no sequence of the generator's: their ids say where they stand, and
    // a prelude's id-only frame moves the position.
    let seq_source = match opts.events {
        Events::Plain => opts.publish.seq_source(),
        Events::Agui { .. } => SeqSource::Id,
    };
    let mut shared = Shared::build(cfg, opts.sessions, 16 * 1024, seq_source);
    if let Events::Agui { .. } = opts.events {
        shared.ts_of = raw_event_ts_of;
    }
    let client_count = opts
        .clients
        .unwrap_or(opts.sessions)
        .clamp(1, opts.sessions.max(1));
    // Most sessions have no client: what the server published is told by the events' "n".
    let partial = client_count < opts.sessions;
    let self_published = matches!(opts.publish, Publish::InProcess { .. });
    shared.count_published = partial && self_published;
    shared.join_live = opts.prefill > 0;
    let shared = Arc::new(shared);
    let progress = Progress::new(cfg.progress);
    progress.bar.set_prefix(scenario.to_owned());
    let mut rss_before = server_rss(cfg);
    // The history first, so that a server publishing to every session spreads its events
    // over all of them by the time the clients come.
    let (mut rss_sessions, mut rss_per_session) = (None, None);
    if opts.prefill > 0 {
        prefill(&shared, &progress, opts.prefill, opts.event_bytes).await;
        sleep(Duration::from_millis(500)).await;
        rss_sessions = server_rss(cfg);
        if let (Some(a), Some(b)) = (rss_before, rss_sessions) {
            rss_per_session = Some((b as f64 - a as f64) * 1024.0 / opts.sessions.max(1) as f64);
        }
        rss_before = rss_sessions;
    }
    let clients = Clients::spawn(&shared, client_count);
    let connect_time = clients.wait_connected(&progress).await;
    sleep(Duration::from_millis(500)).await;
    let rss_after = server_rss(cfg);

    let publishers = spawn_publishers(
        &shared,
        opts.publish,
        opts.events,
        opts.sessions,
        opts.event_bytes,
    );
    timed_stage(&progress, &shared, "warmup", opts.warmup).await;
    let begin = Snapshot::take(&shared, cfg);
    shared.measuring.store(true, Relaxed);
    timed_stage(&progress, &shared, "measuring", opts.duration).await;
    shared.measuring.store(false, Relaxed);
    let end = Snapshot::take(&shared, cfg);
    let rss_end = server_rss(cfg);

    let http = matches!(opts.publish, Publish::Http { .. });
    progress.stage("draining".into(), 1);
    stop_publishers(&shared, publishers, http, Duration::from_secs(3)).await;
    let mut outcomes = clients.stop().await;
    progress.finish();

    let window = end.at.duration_since(begin.at).as_secs_f64();
    let delivered = end.delivered - begin.delivered;
    let mut result = base_result(cfg, scenario, Some(&opts.publish), client_count, &shared);
    if let Events::Agui { batch_bursts: true } = opts.events {
        // A request holds one burst: 1 to 8 events.
        result.events_per_request = None;
    }
    result.window_s = Some(window);
    result.delivered_per_s = Some(delivered as f64 / window);
    if http {
        result.published_per_s = Some((end.published - begin.published) as f64 / window);
    }
    let published = end.published_count.saturating_sub(begin.published_count);
    if shared.count_published {
        result.published_per_s = Some(published as f64 / window);
    }
    result.latency_us = Some(shared.latency.summary());
    if let (Some(a), Some(b)) = (begin.server_cpu_us, end.server_cpu_us) {
        let cpu = b.saturating_sub(a) as f64;
        result.server_cpu_pct = Some(cpu / 1e6 / window * 100.0);
        if delivered > 0 {
            result.server_cpu_us_per_event = Some(cpu / delivered as f64);
        }
        if shared.count_published && published > 0 {
            result.server_cpu_us_per_published = Some(cpu / published as f64);
        }
    }
    if partial {
        result.sessions = Some(opts.sessions as u64);
    }
    if opts.prefill > 0 {
        result.history_events = Some(opts.prefill as u64);
    }
    if opts.prefill > 0 {
        result.rss_sessions_kib = rss_sessions;
        result.rss_end_kib = rss_end;
        result.rss_per_session_bytes = rss_per_session;
    }
    if let (Some(a), Some(b)) = (begin.own_cpu_us, end.own_cpu_us) {
        result.generator_cpu_pct = Some(b.saturating_sub(a) as f64 / 1e6 / window * 100.0);
    }
    result.rss_before_kib = rss_before;
    result.rss_after_kib = rss_after;
    result.rss_per_conn_bytes = per_conn(rss_before, rss_after, shared.connected.load(Relaxed));
    result.connect_all_ms = Some(connect_time.as_secs_f64() * 1e3);
    let (totals, conn_errors, disconnects) = totals(&shared, &mut outcomes, http);
    fill_totals(&mut result, totals, conn_errors, disconnects, &shared);
    result
}

/// AG-UI runs with reconnecting clients: after the warmup, a steady window (nobody
/// reconnects), then a reconnecting window of the same length in which each client drops its
/// stream every `reconnect.every` on average and comes back with `Last-Event-ID` and
/// `?prelude=always`, publishing going on at the same rate. Reports the steady window's
/// delivery, CPU and latency, the reconnects, the server CPU per reconnect beyond what the
/// delivered events cost in the steady window, the time from a reconnect's start to its first
/// frame, the prelude's bytes, the events preludes stood for, and what was lost or
/// duplicated; with `reconnect.verify`, each response checked by the AG-UI client's rules.
pub async fn run_agui_reconnect(
    cfg: &RunConfig,
    opts: &StreamOptions,
    reconnect: ReconnectOptions,
) -> ScenarioResult {
    let mut shared = Shared::build(cfg, opts.sessions, 16 * 1024, SeqSource::Id);
    shared.ts_of = raw_event_ts_of;
    shared.reconnect = Some(reconnect);
    let shared = Arc::new(shared);
    let progress = Progress::new(cfg.progress);
    progress.bar.set_prefix("agui-reconnect");
    let rss_before = server_rss(cfg);
    let clients = Clients::spawn(&shared, opts.sessions);
    let connect_time = clients.wait_connected(&progress).await;
    sleep(Duration::from_millis(500)).await;
    let rss_after = server_rss(cfg);

    let events = match opts.events {
        Events::Plain => Events::Agui {
            batch_bursts: false,
        },
        agui => agui,
    };
    let publishers = spawn_publishers(&shared, opts.publish, events, opts.sessions, 0);
    timed_stage(&progress, &shared, "warmup", opts.warmup).await;
    let begin = Snapshot::take(&shared, cfg);
    shared.measuring.store(true, Relaxed);
    timed_stage(&progress, &shared, "steady", opts.duration).await;
    shared.measuring.store(false, Relaxed);
    let mid = Snapshot::take(&shared, cfg);
    let reconnects_before = shared.reconnects.load(Relaxed);
    shared.reconnecting.store(true, Relaxed);
    timed_stage(&progress, &shared, "reconnecting", opts.duration).await;
    shared.reconnecting.store(false, Relaxed);
    let end = Snapshot::take(&shared, cfg);
    let reconnects = shared.reconnects.load(Relaxed) - reconnects_before;

    let http = matches!(opts.publish, Publish::Http { .. });
    progress.stage("draining".into(), 1);
    stop_publishers(&shared, publishers, http, Duration::from_secs(3)).await;
    let mut outcomes = clients.stop().await;
    progress.finish();

    let mut result = base_result(
        cfg,
        "agui-reconnect",
        Some(&opts.publish),
        opts.sessions,
        &shared,
    );
    let steady = between(&begin, &mid);
    let moving = between(&mid, &end);
    result.window_s = Some(steady.window);
    result.delivered_per_s = Some(steady.delivered as f64 / steady.window);
    result.reconnecting_delivered_per_s = Some(moving.delivered as f64 / moving.window);
    if http {
        result.published_per_s = Some(steady.published as f64 / steady.window);
    }
    result.latency_us = Some(shared.latency.summary());
    if let (Some(cpu), Some(cpu2)) = (steady.server_cpu_us, moving.server_cpu_us) {
        result.server_cpu_pct = Some(cpu / 1e6 / steady.window * 100.0);
        if steady.delivered > 0 {
            let per_event = cpu / steady.delivered as f64;
            result.server_cpu_us_per_event = Some(per_event);
            if reconnects > 0 {
                let beyond = cpu2 - per_event * moving.delivered as f64;
                result.reconnect_cpu_us = Some(beyond / reconnects as f64);
            }
        }
        if moving.delivered > 0 {
            result.reconnecting_cpu_us_per_event = Some(cpu2 / moving.delivered as f64);
        }
    }
    if let Some(own) = steady.own_cpu_us {
        result.generator_cpu_pct = Some(own / 1e6 / steady.window * 100.0);
    }
    result.rss_before_kib = rss_before;
    result.rss_after_kib = rss_after;
    result.connect_all_ms = Some(connect_time.as_secs_f64() * 1e3);
    result.reconnects = Some(reconnects);
    result.first_frame_us = Some(shared.first_frame.summary());
    let all_reconnects = shared.reconnects.load(Relaxed);
    if all_reconnects > 0 {
        result.prelude_bytes =
            Some(shared.prelude_bytes.load(Relaxed) as f64 / all_reconnects as f64);
    }
    if reconnect.verify {
        let (mut n, mut bad, mut mismatch) = (0, 0, 0);
        let mut first_error = None;
        for check in outcomes.iter_mut().filter_map(|o| o.check.as_mut()) {
            n += check.responses;
            bad += check.invalid_responses;
            mismatch += check.content_mismatches;
            first_error = first_error.or(check.first_error.take());
        }
        if let Some(e) = first_error {
            eprintln!(
                "tether-load: {} [{}]: first AG-UI check failure: {e}",
                result.key(),
                cfg.label
            );
        }
        result.responses_checked = Some(n);
        result.invalid_responses = Some(bad);
        result.content_mismatches = Some(mismatch);
    }
    let (totals, conn_errors, disconnects) = totals(&shared, &mut outcomes, http);
    result.prelude_covered = Some(totals.covered);
    // The clients' own reconnects are not counted as disconnects.
    fill_totals(&mut result, totals, conn_errors, disconnects, &shared);
    result
}

/// What happened between two snapshots.
struct Interval {
    window: f64,
    delivered: u64,
    published: u64,
    server_cpu_us: Option<f64>,
    own_cpu_us: Option<f64>,
}

fn between(a: &Snapshot, b: &Snapshot) -> Interval {
    let diff = |x: Option<u64>, y: Option<u64>| Some(y?.saturating_sub(x?) as f64);
    Interval {
        window: b.at.duration_since(a.at).as_secs_f64(),
        delivered: b.delivered - a.delivered,
        published: b.published - a.published,
        server_cpu_us: diff(a.server_cpu_us, b.server_cpu_us),
        own_cpu_us: diff(a.own_cpu_us, b.own_cpu_us),
    }
}

/// Idle connections: opens `connections` SSE streams that receive nothing and reports the
/// server's memory per connection.
pub async fn run_idle(cfg: &RunConfig, connections: usize, settle: Duration) -> ScenarioResult {
    let shared = Shared::new(cfg, connections, 4096, SeqSource::Id);
    let progress = Progress::new(cfg.progress);
    progress.bar.set_prefix("idle");
    let rss_before = server_rss(cfg);
    let clients = Clients::spawn(&shared, connections);
    let connect_time = clients.wait_connected(&progress).await;
    timed_stage(&progress, &shared, "settling", settle).await;
    let rss_after = server_rss(cfg);
    let mut outcomes = clients.stop().await;
    progress.finish();

    let mut result = base_result(cfg, "idle", None, connections, &shared);
    result.rss_before_kib = rss_before;
    result.rss_after_kib = rss_after;
    result.rss_per_conn_bytes = per_conn(rss_before, rss_after, shared.connected.load(Relaxed));
    result.connect_all_ms = Some(connect_time.as_secs_f64() * 1e3);
    let (totals, conn_errors, disconnects) = totals(&shared, &mut outcomes, false);
    fill_totals(&mut result, totals, conn_errors, disconnects, &shared);
    result
}

/// Reconnect storm: every client drops its stream at the same moment (or in waves spread over
/// `opts.spread`) and reconnects with `Last-Event-ID` while publishing goes on; reports the
/// time from the storm's start until all have caught up (each received an event published
/// after its new stream opened) and what was lost or duplicated.
pub async fn run_storm(cfg: &RunConfig, opts: &StormOptions) -> ScenarioResult {
    let mut shared = Shared::build(cfg, opts.sessions, 8 * 1024, opts.publish.seq_source());
    let (per_wave, step) = opts.waves();
    if !step.is_zero() {
        shared.storm_waves = Some((per_wave, step));
    }
    let shared = Arc::new(shared);
    let progress = Progress::new(cfg.progress);
    progress.bar.set_prefix("storm");
    let rss_before = server_rss(cfg);
    let clients = Clients::spawn(&shared, opts.sessions);
    let connect_time = clients.wait_connected(&progress).await;
    let rss_after = server_rss(cfg);
    let publishers = spawn_publishers(
        &shared,
        opts.publish,
        Events::Plain,
        opts.sessions,
        opts.event_bytes,
    );

    // Every client should hold a position (a last id) before the storm.
    let connected = shared.connected.load(Relaxed);
    progress.stage("first events".into(), connected as u64);
    let start = Instant::now();
    while shared.with_event.load(Relaxed) < connected && start.elapsed() < Duration::from_secs(15) {
        progress
            .bar
            .set_position(shared.with_event.load(Relaxed) as u64);
        sleep(Duration::from_millis(50)).await;
    }
    timed_stage(&progress, &shared, "steady", Duration::from_secs(1)).await;

    let gave_up_before = shared.gave_up.load(Relaxed);
    let alive = connected.saturating_sub(gave_up_before);
    let cpu_before = server_cpu(cfg);
    let own_before = procfs::cpu_micros(std::process::id());
    shared.storm_at_us.store(unix_micros(), Relaxed);
    let storm_at = Instant::now();
    let _ = clients.phase.send(Phase::Storm);
    progress.stage("catching up".into(), alive as u64);
    while shared.caught_up.load(Relaxed)
        < alive.saturating_sub(shared.gave_up.load(Relaxed) - gave_up_before)
        && storm_at.elapsed() < opts.timeout
    {
        progress
            .bar
            .set_position(shared.caught_up.load(Relaxed) as u64);
        sleep(Duration::from_millis(10)).await;
    }
    let cpu_after = server_cpu(cfg);
    let own_after = procfs::cpu_micros(std::process::id());
    timed_stage(&progress, &shared, "after", Duration::from_secs(1)).await;

    let http = matches!(opts.publish, Publish::Http { .. });
    stop_publishers(&shared, publishers, http, Duration::from_secs(3)).await;
    let mut outcomes = clients.stop().await;
    progress.finish();

    let mut result = base_result(cfg, "storm", Some(&opts.publish), opts.sessions, &shared);
    if opts.wave > 0 {
        result.storm_wave = Some(per_wave as u64);
        result.storm_spread_ms = Some(opts.spread.as_secs_f64() * 1e3);
    }
    result.rss_before_kib = rss_before;
    result.rss_after_kib = rss_after;
    result.rss_per_conn_bytes = per_conn(rss_before, rss_after, connected);
    result.connect_all_ms = Some(connect_time.as_secs_f64() * 1e3);
    let mut catchup = new_histogram();
    let mut reconnect_max = None::<u64>;
    let mut catchup_max = None::<u64>;
    for outcome in &outcomes {
        if let Some(us) = outcome.reconnect_us {
            reconnect_max = Some(reconnect_max.unwrap_or(0).max(us));
        }
        if let Some(us) = outcome.catchup_us {
            catchup_max = Some(catchup_max.unwrap_or(0).max(us));
            catchup.saturating_record((us / 1000).max(1));
        }
    }
    let all_caught_up = shared.caught_up.load(Relaxed) >= alive;
    result.reconnect_all_ms = reconnect_max.map(|us| us as f64 / 1e3);
    // Only a storm that every client came through has an "all caught up" time.
    result.catchup_all_ms = catchup_max
        .filter(|_| all_caught_up)
        .map(|us| us as f64 / 1e3);
    result.catchup_ms = Some(Summary::of(&catchup));
    result.caught_up = Some(shared.caught_up.load(Relaxed) as u64);
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        result.storm_server_cpu_ms = Some(b.saturating_sub(a) as f64 / 1e3);
    }
    if let (Some(a), Some(b)) = (own_before, own_after) {
        result.storm_generator_cpu_ms = Some(b.saturating_sub(a) as f64 / 1e3);
    }
    let (totals, conn_errors, disconnects) = totals(&shared, &mut outcomes, http);
    fill_totals(&mut result, totals, conn_errors, disconnects, &shared);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_events_have_the_asked_size() {
        for size in [60, 200, 1000] {
            let mut out = Vec::new();
            bench_event(&mut out, unix_micros(), 77, 12_345, size);
            assert_eq!(out.len(), size);
            let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(value["n"], 12_345);
            assert_eq!(value["seq"], 77);
            assert_eq!(ts_of(&out), value["ts"].as_u64());
            assert_eq!(crate::sse::payload_seq_of(&out), Some(77));
        }
    }
}
