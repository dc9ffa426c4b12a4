//! The hold: one stream kept open for the probe's duration, reconnecting as a browser would,
//! with a few marked events published early on. It measures silences, heartbeats,
//! publish-to-arrival delays and drops; the judging of them is `judge`'s.

use std::collections::HashMap;
use std::time::Duration;

use tether_replay::sse::Block;
use tokio::time::{Instant, sleep_until};

use super::conn::{Conn, Kind, Obs, classify, next_obs};
use super::http::End;
use super::judge::{self, Check, Delay, Disconnect, Silence, Status};
use super::{LATE, Probe};

/// Events the hold publishes to measure publish-to-arrival.
const MARKS: u64 = 5;
/// Reconnects during the hold before the probe stops trying.
const MAX_RECONNECTS: u32 = 30;

/// What the hold found.
pub(super) struct Hold {
    pub(super) held: Duration,
    pub(super) head: Result<Vec<(String, String)>, String>,
    pub(super) subscribe: Check,
    pub(super) retry: Option<u64>,
    pub(super) silence: Silence,
    pub(super) delays: Vec<Delay>,
    pub(super) publish_error: Option<String>,
    pub(super) drops: Vec<Disconnect>,
    /// The probe's events the stream delivered.
    pub(super) seen: Vec<u64>,
    /// The last event id the stream carried (what a browser would resume from).
    pub(super) last_id: Option<String>,
    /// The last of the probe's events with its id.
    pub(super) anchor: Option<(String, u64)>,
    pub(super) conn: Option<Conn>,
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

/// What the stream's blocks carried so far.
#[derive(Default)]
struct Arrivals {
    /// When each of the probe's events first arrived.
    at: HashMap<u64, Instant>,
    seen: Vec<u64>,
    last_id: Option<String>,
    anchor: Option<(String, u64)>,
    heartbeats: u32,
}

impl Arrivals {
    fn block(&mut self, at: Instant, block: &Block, nonce: &str) {
        if let Some(id) = &block.id {
            self.last_id = Some(id.clone());
        }
        match classify(block, nonce) {
            Kind::Probe(n) => {
                self.at.entry(n).or_insert(at);
                self.seen.push(n);
                if let Some(id) = &block.id {
                    self.anchor = Some((id.clone(), n));
                }
            }
            Kind::Heartbeat => self.heartbeats += 1,
            _ => {}
        }
    }
}

/// Whether the hold goes on after an observation.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

/// The hold while it runs.
struct Holding {
    start: Instant,
    end: Instant,
    /// Time between two marked events.
    spacing: Duration,
    conn: Option<Conn>,
    head: Option<Vec<(String, String)>>,
    /// Why the first request got no stream.
    refused: Option<String>,
    /// The first `retry:` hint.
    retry: Option<u64>,
    /// The latest `retry:` hint, which paces reconnects.
    last_retry: Option<u64>,
    silence: Silences,
    drops: Vec<Disconnect>,
    reconnects: u32,
    reconnect_at: Option<Instant>,
    publish_from: Option<Instant>,
    sent: Vec<(u64, Instant)>,
    last_publish: Option<Instant>,
    publish_error: Option<String>,
    arrivals: Arrivals,
    stopped_at: Instant,
}

impl Holding {
    fn new(duration: Duration) -> Self {
        let start = Instant::now();
        let end = start + duration;
        let spacing = if duration >= Duration::from_secs(10) {
            Duration::from_secs(1)
        } else {
            duration / 10
        };
        Self {
            start,
            end,
            spacing,
            conn: None,
            head: None,
            refused: None,
            retry: None,
            last_retry: None,
            silence: Silences::new(start),
            drops: Vec::new(),
            reconnects: 0,
            reconnect_at: None,
            publish_from: None,
            sent: Vec::new(),
            last_publish: None,
            publish_error: None,
            arrivals: Arrivals::default(),
            stopped_at: end,
        }
    }

    /// When the next marked event is due, if one is.
    fn next_publish(&self, can_publish: bool) -> Option<Instant> {
        let can_publish =
            can_publish && self.publish_error.is_none() && (self.sent.len() as u64) < MARKS;
        self.publish_from
            .filter(|_| can_publish)
            .map(|t| t + self.spacing * (self.sent.len() as u32 + 1))
            .filter(|t| *t + LATE < self.end)
    }

    fn published(&mut self, result: Result<(Vec<u64>, Instant), String>) {
        match result {
            Ok((ns, at)) => {
                self.sent.extend(ns.into_iter().map(|n| (n, at)));
                self.last_publish = Some(at);
            }
            Err(e) => self.publish_error = Some(e),
        }
    }

    fn reconnected(&mut self, conn: Conn) {
        self.reconnect_at = None;
        self.reconnects += 1;
        self.conn = Some(conn);
        // The silence clock runs from the request again.
        self.silence.mark_start(Instant::now());
    }

    fn take(&mut self, obs: Obs, nonce: &str) -> Flow {
        let first = self.head.is_none() && self.refused.is_none();
        match obs {
            Obs::Head { at, headers } => {
                self.silence.mark(at);
                if first {
                    self.head = Some(headers);
                    self.publish_from.get_or_insert(at);
                }
            }
            Obs::Bytes { at } => self.silence.mark(at),
            Obs::Block { at, block } => {
                if self.retry.is_none() {
                    self.retry = block.retry;
                }
                if block.retry.is_some() {
                    self.last_retry = block.retry;
                }
                self.arrivals.block(at, &block, nonce);
            }
            Obs::End { at, how } => self.ended(at, how),
            Obs::Refused { status, body } if first => {
                return self.no_stream(format!("answered {status} {body}"));
            }
            Obs::OpenFailed(e) if first => return self.no_stream(e.to_string()),
            Obs::Refused { status, body } => {
                self.reconnect_failed(format!("reconnect answered {status} {body}"));
            }
            Obs::OpenFailed(e) => self.reconnect_failed(format!("reconnect failed: {e}")),
        }
        Flow::Go
    }

    fn ended(&mut self, at: Instant, how: End) {
        self.silence.mark(at);
        self.silence.pause();
        self.conn = None;
        self.drops
            .push((at.saturating_duration_since(self.start), how.to_string()));
        if self.reconnects < MAX_RECONNECTS {
            // As EventSource does, after the stream's reconnection hint, but
            // within a few seconds so the hold goes on.
            let wait = Duration::from_millis(self.last_retry.unwrap_or(500).min(3000));
            self.reconnect_at = Some(at + wait);
        }
    }

    fn no_stream(&mut self, why: String) -> Flow {
        self.refused = Some(why);
        self.stopped_at = Instant::now();
        Flow::Stop
    }

    fn reconnect_failed(&mut self, why: String) {
        self.conn = None;
        self.drops.push((self.start.elapsed(), why));
        if self.reconnects < MAX_RECONNECTS {
            self.reconnect_at = Some(Instant::now() + Duration::from_secs(1));
        }
    }

    /// Takes what the reader stamped before `stop` but the hold had not taken yet.
    fn take_pending(&mut self, stop: Instant, nonce: &str) {
        let Some(c) = &mut self.conn else {
            return;
        };
        while let Some(obs) = c.try_next() {
            match obs {
                Obs::Head { at, .. } | Obs::Bytes { at } if at <= stop => self.silence.mark(at),
                Obs::Block { at, block } if at <= stop => self.arrivals.block(at, &block, nonce),
                _ => {}
            }
        }
    }

    fn finish(mut self, duration: Duration, nonce: &str) -> Hold {
        let stop = self.stopped_at.min(Instant::now());
        self.take_pending(stop, nonce);
        if self.refused.is_none() {
            // The silence still running at the end of the hold counts too.
            self.silence.mark(stop);
        }
        let held = stop.saturating_duration_since(self.start);
        let (head, subscribe) = subscribe_row(self.head, self.refused, held, duration);
        let arrivals = self.arrivals;
        let delays = self
            .sent
            .iter()
            .map(|(n, at)| {
                arrivals
                    .at
                    .get(n)
                    .filter(|a| **a <= stop)
                    .map(|a| a.saturating_duration_since(*at))
            })
            .collect();
        Hold {
            held,
            head,
            subscribe,
            retry: self.retry,
            silence: Silence {
                longest: self.silence.longest.0,
                from: self.silence.longest.1,
                heartbeats: arrivals.heartbeats,
                quiet: stop.saturating_duration_since(self.last_publish.unwrap_or(self.start)),
            },
            delays,
            publish_error: self.publish_error,
            drops: self.drops,
            seen: arrivals.seen,
            last_id: arrivals.last_id,
            anchor: arrivals.anchor,
            conn: self.conn,
        }
    }
}

/// The subscribe row, and the response head the header rows judge (or why there is none).
fn subscribe_row(
    head: Option<Vec<(String, String)>>,
    refused: Option<String>,
    held: Duration,
    duration: Duration,
) -> (Result<Vec<(String, String)>, String>, Check) {
    let subscribe_expected = format!("200 text/event-stream for {}", judge::secs(duration));
    match (head, refused) {
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
    }
}

impl Probe {
    /// Holds the stream for the duration, publishing marked events early on and staying
    /// quiet afterwards so that only heartbeats can break the silence.
    pub(super) async fn hold(&mut self) -> Hold {
        let mut h = Holding::new(self.duration);
        h.conn = Some(self.open(None));
        let head_wait = (self.duration / 4).min(Duration::from_secs(5));
        let far = h.end + Duration::from_secs(3600);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            let next_publish = h.next_publish(self.publish_token.is_some());
            let obs = tokio::select! {
                biased;
                () = sleep_until(h.end) => break,
                obs = next_obs(&mut h.conn) => obs,
                () = sleep_until(next_publish.unwrap_or(far)), if next_publish.is_some() => {
                    h.published(self.publish(1).await);
                    continue;
                }
                () = sleep_until(h.reconnect_at.unwrap_or(far)), if h.reconnect_at.is_some() => {
                    let conn = self.open(h.arrivals.last_id.as_deref());
                    h.reconnected(conn);
                    continue;
                }
                () = sleep_until(h.start + head_wait), if h.publish_from.is_none() => {
                    // No head yet: publish anyway; what a proxy holds back is what this measures.
                    h.publish_from = Some(Instant::now());
                    continue;
                }
                _ = tick.tick() => {
                    self.show_hold(&h);
                    continue;
                }
            };
            let Some(obs) = obs else {
                h.conn = None;
                continue;
            };
            if h.take(obs, &self.nonce) == Flow::Stop {
                break;
            }
        }
        h.finish(self.duration, &self.nonce)
    }

    fn show_hold(&self, h: &Holding) {
        let t = h.start.elapsed().min(self.duration);
        self.bar.set_position(t.as_millis() as u64 / 100);
        self.bar.set_message(format!(
            "hold {}/{} s, longest silence {}",
            t.as_secs(),
            self.duration.as_secs(),
            judge::secs(h.silence.longest.0)
        ));
    }
}
