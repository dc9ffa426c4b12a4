//! The idle-flood scenario: the server's connection cap filled with idle TCP connections that
//! send nothing, and legitimate requests made while they are held.
//!
//! A flood connection that the server closes (to make room, or at its head timeout) is opened
//! again at once, so the flood keeps pressing on the cap for the whole window, as a hostile
//! client would. Legitimate traffic runs open-loop on fresh connections, one round every
//! `duration / rounds`: a `GET /health/sse`, and a subscribe to a fresh session followed by a
//! publish of one event over HTTP, timed until the event arrives. Each has its own timeout, so
//! the scenario ends by itself whatever the server does.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::{
    io::AsyncReadExt,
    net::TcpStream,
    sync::{Semaphore, watch},
    task::JoinSet,
    time::{Instant, sleep, sleep_until, timeout},
};

use crate::{
    client::{Publisher, RequestError, SseStream, Target, get, open_sse},
    procfs,
    scenario::{Progress, RunConfig, ScenarioResult, bench_event, unix_micros},
    sse::{Frame, SseParser, ts_of},
    track::{Summary, new_histogram},
};

/// Settings of the idle-flood scenario.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    /// Idle connections to hold (more than the server's `--max-connections`).
    pub connections: usize,
    /// Rounds of legitimate requests (each: a health check and a subscribe + publish).
    pub rounds: usize,
    /// The window the rounds are spread over, with the flood held.
    pub duration: Duration,
    /// Longest wait for each legitimate request's answer (or event).
    pub request_timeout: Duration,
}

/// Connections opened at the same time while flooding; more only queue in the backlog.
const FLOOD_CONNECT_PERMITS: usize = 256;
/// Pause after a failed flood connect, so a refusing server is not spun against.
const FLOOD_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest wait for every flood connection's first attempt.
const FLOOD_OPEN_LIMIT: Duration = Duration::from_secs(60);
/// Errors printed on stderr, so a failing run says why without flooding the terminal.
const ERRORS_SHOWN: u64 = 3;

/// Counters of the flood, shared by its connection tasks.
#[derive(Default)]
struct FloodState {
    /// Connections open now.
    held: AtomicUsize,
    /// Connections whose first attempt is over (open, or failed).
    first_done: AtomicUsize,
    /// Connections the server closed.
    closed: AtomicU64,
    /// Failed connects.
    connect_errors: AtomicU64,
}

/// One flood connection: connects, sends nothing, waits for the server to close it and
/// connects again, until told to stop.
async fn flood_conn(
    target: Target,
    state: Arc<FloodState>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut first = true;
    while !*stop.borrow() {
        let connected = {
            let _permit = permits.acquire().await;
            timeout(Duration::from_secs(5), TcpStream::connect(target.addr)).await
        };
        if first {
            state.first_done.fetch_add(1, Relaxed);
            first = false;
        }
        let Ok(Ok(mut stream)) = connected else {
            state.connect_errors.fetch_add(1, Relaxed);
            tokio::select! {
                _ = sleep(FLOOD_RETRY_PAUSE) => continue,
                _ = stop.changed() => break,
            }
        };
        state.held.fetch_add(1, Relaxed);
        let closed_by_server = tokio::select! {
            _ = read_to_end(&mut stream) => true,
            _ = stop.changed() => false,
        };
        state.held.fetch_sub(1, Relaxed);
        if closed_by_server {
            state.closed.fetch_add(1, Relaxed);
        }
    }
}

/// Reads (and drops) whatever the server sends until it closes the connection.
async fn read_to_end(stream: &mut TcpStream) {
    let mut buf = [0u8; 256];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// The flood's tasks and the signal that stops them.
struct Flood {
    state: Arc<FloodState>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    count: usize,
}

impl Flood {
    fn start(target: &Target, count: usize) -> Self {
        let state = Arc::new(FloodState::default());
        let permits = Arc::new(Semaphore::new(FLOOD_CONNECT_PERMITS));
        let (stop, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for _ in 0..count {
            tasks.spawn(flood_conn(
                target.clone(),
                Arc::clone(&state),
                Arc::clone(&permits),
                rx.clone(),
            ));
        }
        Self {
            state,
            stop,
            tasks,
            count,
        }
    }

    /// Waits until every connection made its first attempt; returns how long that took.
    async fn wait_opened(&self, progress: &Progress) -> Duration {
        let start = Instant::now();
        progress.stage("flooding".into(), self.count as u64);
        while self.state.first_done.load(Relaxed) < self.count && start.elapsed() < FLOOD_OPEN_LIMIT
        {
            progress
                .bar
                .set_position(self.state.first_done.load(Relaxed) as u64);
            sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// How one legitimate request ended.
#[derive(Debug)]
enum Outcome {
    /// Answered (and, for the event, delivered) after this many microseconds.
    Ok(u64),
    /// A wrong answer or a broken connection.
    Failed(String),
    /// Nothing within the request timeout.
    TimedOut,
}

impl From<Result<Result<u64, RequestError>, tokio::time::error::Elapsed>> for Outcome {
    fn from(r: Result<Result<u64, RequestError>, tokio::time::error::Elapsed>) -> Self {
        match r {
            Ok(Ok(us)) => Self::Ok(us),
            Ok(Err(RequestError::Timeout)) | Err(_) => Self::TimedOut,
            Ok(Err(e)) => Self::Failed(e.to_string()),
        }
    }
}

/// One round's outcomes.
#[derive(Debug)]
struct Round {
    health: Outcome,
    subscribe: Outcome,
    event: Outcome,
}

fn micros_since(start: Instant) -> u64 {
    (start.elapsed().as_micros() as u64).max(1)
}

/// `GET /health/sse` on a fresh connection: microseconds to the whole answer.
async fn health_check(target: &Target) -> Result<u64, RequestError> {
    let start = Instant::now();
    let (status, _) = get(target, "/health/sse").await?;
    if status != 200 {
        return Err(RequestError::Status(status));
    }
    Ok(micros_since(start))
}

/// Reads the stream until the event published at `ts` arrives; returns its receive time.
async fn await_event(sse: SseStream, ts: u64) -> Result<u64, RequestError> {
    let SseStream {
        mut stream,
        mut pending,
        mut chunked,
    } = sse;
    let mut parser = SseParser::default();
    loop {
        let mut received = None;
        let mut on_frame = |frame: Frame<'_>| {
            if received.is_none() && frame.data.and_then(ts_of) == Some(ts) {
                received = Some(unix_micros());
            }
        };
        match chunked.as_mut() {
            Some(decoder) => decoder
                .feed(&pending, &mut |b| parser.feed(b, &mut on_frame))
                .map_err(|_| RequestError::Protocol("bad chunked body"))?,
            None => parser.feed(&pending, &mut on_frame),
        }
        if let Some(at) = received {
            return Ok(at);
        }
        pending.clear();
        // A shed stream (`retry:` and close) ends here.
        if stream.read_buf(&mut pending).await? == 0 {
            return Err(RequestError::Protocol("stream closed before the event"));
        }
    }
}

/// Subscribes to a fresh session, then publishes one event to it over HTTP (a fresh
/// connection) while reading the stream; the event's time is from the publish to its arrival.
async fn event_round_trip(
    target: &Target,
    publish_target: &Target,
    session: &str,
    request_timeout: Duration,
) -> (Outcome, Outcome) {
    let start = Instant::now();
    let opened = timeout(request_timeout, open_sse(target, session, None)).await;
    let sse = match opened {
        Ok(Ok(sse)) => sse,
        Ok(Err(e)) => {
            return (
                Outcome::Failed(e.to_string()),
                Outcome::Failed("no stream".into()),
            );
        }
        Err(_) => return (Outcome::TimedOut, Outcome::Failed("no stream".into())),
    };
    let subscribe = Outcome::Ok(micros_since(start));
    let ts = unix_micros();
    let mut event = Vec::with_capacity(200);
    bench_event(&mut event, ts, 1, 1, 200);
    let mut publisher = Publisher::new(publish_target.clone());
    let delivered = timeout(request_timeout, async {
        let (posted, received) =
            tokio::join!(publisher.post(session, &event), await_event(sse, ts));
        posted?;
        Ok(received?.saturating_sub(ts).max(1))
    })
    .await;
    (subscribe, delivered.into())
}

async fn legit_round(
    target: Target,
    publish_target: Target,
    session: String,
    request_timeout: Duration,
) -> Round {
    let health = timeout(request_timeout, health_check(&target)).await.into();
    let (subscribe, event) =
        event_round_trip(&target, &publish_target, &session, request_timeout).await;
    Round {
        health,
        subscribe,
        event,
    }
}

/// How many legitimate requests were made and how many went wrong.
#[derive(Default)]
struct Counts {
    requests: u64,
    failed: u64,
    timed_out: u64,
}

impl Counts {
    /// Counts `outcome` and records its time in `hist` when it succeeded.
    fn record(&mut self, what: &str, outcome: Outcome, hist: &mut Histogram<u64>) {
        self.requests += 1;
        match outcome {
            Outcome::Ok(us) => hist.saturating_record(us),
            Outcome::Failed(why) => {
                self.failed += 1;
                if self.failed <= ERRORS_SHOWN {
                    eprintln!("idle-flood: {what} failed: {why}");
                }
            }
            Outcome::TimedOut => {
                self.timed_out += 1;
                if self.timed_out <= ERRORS_SHOWN {
                    eprintln!("idle-flood: {what} timed out");
                }
            }
        }
    }
}

/// Histograms and counts of the legitimate requests.
struct Tally {
    health: Histogram<u64>,
    subscribe: Histogram<u64>,
    event: Histogram<u64>,
    counts: Counts,
}

impl Tally {
    fn new() -> Self {
        Self {
            health: new_histogram(),
            subscribe: new_histogram(),
            event: new_histogram(),
            counts: Counts::default(),
        }
    }

    fn add(&mut self, round: Round) {
        let subscribed = matches!(round.subscribe, Outcome::Ok(_));
        self.counts.record("health", round.health, &mut self.health);
        self.counts
            .record("subscribe", round.subscribe, &mut self.subscribe);
        // Without a stream there was no publish to time: the subscribe counted the failure.
        if subscribed {
            self.counts.record("event", round.event, &mut self.event);
        }
    }
}

/// What the server's `/health/sse` says of its connection limit: (max, refused).
async fn connection_limit(target: &Target) -> Option<(u64, u64)> {
    let (_, body) = timeout(Duration::from_secs(5), get(target, "/health/sse"))
        .await
        .ok()?
        .ok()?;
    parse_connection_limit(&body)
}

/// `limits.connections.{max,refused}` of a `/health/sse` body.
pub fn parse_connection_limit(body: &[u8]) -> Option<(u64, u64)> {
    let health: serde_json::Value = serde_json::from_slice(body).ok()?;
    let limit = health.pointer("/limits/connections")?;
    Some((limit.get("max")?.as_u64()?, limit.get("refused")?.as_u64()?))
}

/// The readings taken every 100 ms of the window.
struct WindowReadings {
    held_min: usize,
    rss_max: Option<u64>,
}

/// Starts a legitimate round every `duration / rounds` (open-loop: a slow answer delays no
/// later round) while reading the flood's size and the server's RSS; returns when every
/// round has ended.
async fn run_window(
    cfg: &RunConfig,
    opts: &FloodOptions,
    flood: &FloodState,
    progress: &Progress,
) -> (Vec<Round>, WindowReadings) {
    let publish_target = cfg.publish_target.clone().unwrap_or(cfg.target.clone());
    let run_id = format!("flood{:x}", unix_micros() & 0xff_ffff_ffff);
    let rounds = opts.rounds.max(1);
    let interval = opts.duration / rounds as u32;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    let mut readings = WindowReadings {
        held_min: flood.held.load(Relaxed),
        rss_max: None,
    };
    let mut next_reading = start;
    progress.stage("legit requests".into(), rounds as u64);
    for i in 0..rounds {
        let due = start + interval * i as u32;
        while next_reading < due {
            sleep_until(next_reading).await;
            read_window(cfg, flood, &mut readings);
            next_reading += Duration::from_millis(100);
        }
        sleep_until(due).await;
        tasks.spawn(legit_round(
            cfg.target.clone(),
            publish_target.clone(),
            format!("{run_id}-{i}"),
            opts.request_timeout,
        ));
        progress.bar.set_position(i as u64 + 1);
    }
    let mut done = Vec::with_capacity(rounds);
    while let Some(round) = tasks.join_next().await {
        read_window(cfg, flood, &mut readings);
        if let Ok(round) = round {
            done.push(round);
        }
    }
    (done, readings)
}

fn read_window(cfg: &RunConfig, flood: &FloodState, readings: &mut WindowReadings) {
    readings.held_min = readings.held_min.min(flood.held.load(Relaxed));
    if let Some(kib) = cfg.server_pid.and_then(procfs::rss_kib) {
        readings.rss_max = Some(readings.rss_max.map_or(kib, |m| m.max(kib)));
    }
}

/// Idle flood: holds `connections` idle TCP connections (reopened whenever the server closes
/// one) and measures legitimate requests meanwhile.
pub async fn run_idle_flood(cfg: &RunConfig, opts: &FloodOptions) -> ScenarioResult {
    let progress = Progress::new(cfg.progress);
    progress.bar.set_prefix("idle-flood");
    let rss_before = cfg.server_pid.and_then(procfs::rss_kib);
    let limit_before = connection_limit(&cfg.target).await;

    let flood = Flood::start(&cfg.target, opts.connections);
    let open_time = flood.wait_opened(&progress).await;
    // Let the server's closing of the oldest idle connections reach the generator.
    sleep(Duration::from_millis(500)).await;
    let held_at_start = flood.state.held.load(Relaxed);
    let closed_opening = flood.state.closed.load(Relaxed);
    let window_start = Instant::now();

    let (rounds, readings) = run_window(cfg, opts, &flood.state, &progress).await;
    let window = window_start.elapsed();
    let closed_window = flood.state.closed.load(Relaxed) - closed_opening;
    let connect_errors = flood.state.connect_errors.load(Relaxed);
    let limit_after = connection_limit(&cfg.target).await;
    flood.stop().await;
    progress.finish();

    let mut tally = Tally::new();
    for round in rounds {
        tally.add(round);
    }
    ScenarioResult {
        scenario: "idle-flood".into(),
        server: cfg.label.clone(),
        round: cfg.round,
        connections: opts.connections as u64,
        connected: held_at_start as u64,
        window_s: Some(window.as_secs_f64()),
        latency_us: Some(Summary::of(&tally.event)),
        health_us: Some(Summary::of(&tally.health)),
        subscribe_us: Some(Summary::of(&tally.subscribe)),
        legit_requests: Some(tally.counts.requests),
        legit_failed: Some(tally.counts.failed),
        legit_timed_out: Some(tally.counts.timed_out),
        flood_closed_opening: Some(closed_opening),
        flood_closed: Some(closed_window),
        flood_held_min: Some(readings.held_min as u64),
        server_max_connections: limit_before.map(|(max, _)| max),
        server_refused: limit_before
            .zip(limit_after)
            .map(|((_, a), (_, b))| b.saturating_sub(a)),
        rss_before_kib: rss_before,
        rss_after_kib: readings.rss_max,
        connect_all_ms: Some(open_time.as_secs_f64() * 1e3),
        conn_errors: connect_errors,
        ..ScenarioResult::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_connection_limit_of_health() {
        let body = br#"{"status":"ok","limits":{"connections":{"max":10000,"refused":7},"events":{"max":1,"refused":0}}}"#;
        assert_eq!(parse_connection_limit(body), Some((10_000, 7)));
        assert_eq!(parse_connection_limit(br#"{"status":"ok"}"#), None);
        assert_eq!(parse_connection_limit(b"not json"), None);
    }
}
