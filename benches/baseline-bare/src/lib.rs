//! The practical limit for tether's HTTP contract, kept as a load-test baseline.
//!
//! A hand-rolled HTTP/1.1 server on raw tokio TCP, with no framework and no per-request
//! allocation beyond what the bytes need:
//!
//! - `GET /api/sse/session/{session_id}`: answers 200 `text/event-stream` and then writes the
//!   session's frames (`id: <n>\ndata: <json>\n\n`, `n` counting up from 1) as they come; the
//!   body ends when the connection closes. With `Last-Event-ID: <n>` it first replays the
//!   retained frames after `n`.
//! - `POST /api/sessions/{session_id}/events`: one JSON object or an array of them
//!   (`Content-Length` bodies); answers 202 `{"ids":[...]}`. Connections are kept alive.
//!
//! Each event is encoded once into a [`Bytes`] frame; the frame goes into a bounded ring per
//! session (for resume) and is cloned into each subscriber's bounded queue. A connection's
//! writer takes everything queued at once and writes it in one `write`. A subscriber whose
//! queue is full loses the newest frames rather than slowing the publisher. Every stream
//! writes a heartbeat comment (`:`) every 15 seconds, so a client that went away is noticed by
//! a failed write within that time.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = baseline_bare::bind("127.0.0.1:0".parse().unwrap())?;
//! let hub = baseline_bare::Hub::new(baseline_bare::Config::default());
//! baseline_bare::spawn_self_publisher(hub.clone(), 10_000, baseline_bare::Targets::Subscribed);
//! baseline_bare::serve(listener, hub).await
//! # }
//! ```

use std::{
    collections::VecDeque,
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc::{self, error::TrySendError},
    task::JoinHandle,
    time::Instant,
};

/// Listen backlog of [`bind`]: a reconnect storm overflows the kernel's default.
pub const LISTEN_BACKLOG: u32 = 4096;

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;
const MAX_WRITE: usize = 64 * 1024;

/// Sizes of the hub's buffers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Frames each session keeps for `Last-Event-ID` resume. Default is 256.
    pub ring_capacity: usize,
    /// Frames queued per subscriber before it loses new ones. Default is 1024.
    pub queue_capacity: usize,
    /// Interval of the heartbeat comment on every stream. Default is 15 seconds.
    pub heartbeat: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ring_capacity: 256,
            queue_capacity: 1024,
            heartbeat: Duration::from_secs(15),
        }
    }
}

struct SessionState {
    next_seq: u64,
    ring: VecDeque<(u64, Bytes)>,
    subscribers: Vec<mpsc::Sender<Bytes>>,
}

struct Session {
    state: Mutex<SessionState>,
}

impl Session {
    fn new() -> Self {
        Self {
            state: Mutex::new(SessionState {
                next_seq: 1,
                ring: VecDeque::new(),
                subscribers: Vec::new(),
            }),
        }
    }

    fn has_subscribers(&self) -> bool {
        !self.state.lock().subscribers.is_empty()
    }
}

/// Frames one event: `id: <seq>\ndata: <json>\n\n`.
fn encode(seq: u64, json: &[u8]) -> Bytes {
    let mut ids = itoa::Buffer::new();
    let id = ids.format(seq).as_bytes();
    let mut frame = Vec::with_capacity(json.len() + id.len() + 12);
    frame.extend_from_slice(b"id: ");
    frame.extend_from_slice(id);
    frame.extend_from_slice(b"\ndata: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// Every session by id, each with its ring and subscribers.
pub struct Hub {
    sessions: DashMap<Box<str>, Arc<Session>>,
    config: Config,
}

impl Hub {
    /// A hub with no sessions.
    pub fn new(config: Config) -> Arc<Self> {
        Arc::new(Self {
            sessions: DashMap::new(),
            config,
        })
    }

    fn session(&self, id: &str) -> Arc<Session> {
        if let Some(session) = self.sessions.get(id) {
            return Arc::clone(&session);
        }
        Arc::clone(
            &self
                .sessions
                .entry(id.into())
                .or_insert_with(|| Arc::new(Session::new())),
        )
    }

    /// Publishes events to a session, each given as one line of JSON; returns their ids.
    pub fn publish<'a>(
        &self,
        session_id: &str,
        events: impl IntoIterator<Item = &'a [u8]>,
    ) -> Vec<u64> {
        let session = self.session(session_id);
        let mut state = session.state.lock();
        events
            .into_iter()
            .map(|json| self.append(&mut state, |seq| encode(seq, json)))
            .collect()
    }

    fn append(&self, state: &mut SessionState, frame: impl FnOnce(u64) -> Bytes) -> u64 {
        let seq = state.next_seq;
        state.next_seq += 1;
        let frame = frame(seq);
        if state.ring.len() >= self.config.ring_capacity {
            state.ring.pop_front();
        }
        state.ring.push_back((seq, frame.clone()));
        state
            .subscribers
            .retain(|tx| match tx.try_send(frame.clone()) {
                Ok(()) | Err(TrySendError::Full(_)) => true,
                Err(TrySendError::Closed(_)) => false,
            });
        seq
    }

    /// Adds a subscriber to a session; with `last_seq`, the retained frames after it come first.
    fn subscribe(&self, session_id: &str, last_seq: Option<u64>) -> mpsc::Receiver<Bytes> {
        let session = self.session(session_id);
        let mut state = session.state.lock();
        let (tx, rx) = mpsc::channel(self.config.queue_capacity.max(self.config.ring_capacity));
        if let Some(last) = last_seq {
            for (_, frame) in state.ring.iter().filter(|(seq, _)| *seq > last) {
                let _ = tx.try_send(frame.clone());
            }
        }
        state.subscribers.push(tx);
        rx
    }

    fn subscribed_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions
            .iter()
            .filter(|entry| entry.value().has_subscribers())
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }

    fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions
            .iter()
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }
}

/// Binds a listener on `addr` with a [`LISTEN_BACKLOG`] backlog. Call inside a tokio runtime.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft limit of open files to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Accepts connections on `listener` and serves them until the process ends.
pub async fn serve(listener: TcpListener, hub: Arc<Hub>) -> io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or a connection reset before accept: back off briefly.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, Arc::clone(&hub)));
    }
}

enum Route<'a> {
    Subscribe(&'a str),
    Publish(&'a str),
}

struct Head {
    method_get: bool,
    method_post: bool,
    path: String,
    content_length: usize,
    last_event_id: Option<u64>,
    close: bool,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?;
    let path = request_line.next()?.to_owned();
    let version = request_line.next()?;
    let mut parsed = Head {
        method_get: method == "GET",
        method_post: method == "POST",
        path,
        content_length: 0,
        last_event_id: None,
        close: version == "HTTP/1.0",
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("last-event-id") {
            parsed.last_event_id = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            parsed.close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
    }
    Some(parsed)
}

fn route(path: &str) -> Option<Route<'_>> {
    let path = path.split('?').next().unwrap_or(path);
    if let Some(id) = path.strip_prefix("/api/sse/session/") {
        return Some(Route::Subscribe(id));
    }
    path.strip_prefix("/api/sessions/")?
        .strip_suffix("/events")
        .map(Route::Publish)
}

fn valid_session_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 96);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

fn error_response(status: &str, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    response(status, body.as_bytes())
}

/// The events of a publish body, each as one line of JSON.
fn split_events(body: &[u8]) -> Option<Vec<std::borrow::Cow<'_, [u8]>>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    let raw: Vec<&RawValue> = if *first == b'[' {
        serde_json::from_slice(body).ok()?
    } else {
        vec![serde_json::from_slice(body).ok()?]
    };
    Some(
        raw.into_iter()
            .map(|raw| {
                let text = raw.get().as_bytes();
                if memchr::memchr2(b'\n', b'\r', text).is_some() {
                    // Pretty-printed JSON would break SSE framing: compact it once.
                    let value: serde_json::Value =
                        serde_json::from_slice(text).unwrap_or(serde_json::Value::Null);
                    std::borrow::Cow::Owned(value.to_string().into_bytes())
                } else {
                    std::borrow::Cow::Borrowed(text)
                }
            })
            .collect(),
    )
}

fn publish_answer(hub: &Hub, session_id: &str, body: &[u8]) -> Vec<u8> {
    let Some(events) = split_events(body) else {
        return error_response(
            "400 Bad Request",
            "bad_body",
            "send one JSON event or an array of them",
        );
    };
    let ids = hub.publish(session_id, events.iter().map(|e| e.as_ref()));
    let mut json = Vec::with_capacity(8 + ids.len() * 10);
    json.extend_from_slice(b"{\"ids\":[");
    let mut buffer = itoa::Buffer::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.push(b'"');
        json.extend_from_slice(buffer.format(*id).as_bytes());
        json.push(b'"');
    }
    json.extend_from_slice(b"]}");
    response("202 Accepted", &json)
}

async fn connection(mut stream: TcpStream, hub: Arc<Hub>) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    loop {
        let head_end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() > MAX_HEAD {
                let answer = error_response(
                    "431 Request Header Fields Too Large",
                    "head_too_large",
                    "send a shorter request head",
                );
                return stream.write_all(&answer).await;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let Some(head) = parse_head(&buf[..head_end]) else {
            let answer = error_response(
                "400 Bad Request",
                "bad_request",
                "send HTTP/1.1 with Content-Length bodies",
            );
            return stream.write_all(&answer).await;
        };
        let answer = match route(&head.path) {
            Some(Route::Subscribe(id)) if head.method_get => {
                if !valid_session_id(id) {
                    error_response(
                        "400 Bad Request",
                        "bad_session_id",
                        "use 1 to 128 characters of [A-Za-z0-9._:-]",
                    )
                } else {
                    let rx = hub.subscribe(id, head.last_event_id);
                    drop(buf);
                    return stream_events(stream, rx, hub.config.heartbeat).await;
                }
            }
            Some(Route::Publish(id)) if head.method_post => {
                if head.content_length > MAX_BODY {
                    let answer = error_response(
                        "413 Payload Too Large",
                        "body_too_large",
                        "send at most 4 MiB per request",
                    );
                    return stream.write_all(&answer).await;
                }
                while buf.len() < head_end + head.content_length {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                let body = &buf[head_end..head_end + head.content_length];
                let answer = if valid_session_id(id) {
                    publish_answer(&hub, id, body)
                } else {
                    error_response(
                        "400 Bad Request",
                        "bad_session_id",
                        "use 1 to 128 characters of [A-Za-z0-9._:-]",
                    )
                };
                buf.drain(..head_end + head.content_length);
                answer
            }
            _ => {
                let answer = error_response(
                    "404 Not Found",
                    "not_found",
                    "the routes are GET /api/sse/session/{id} and POST /api/sessions/{id}/events",
                );
                buf.drain(..head_end + head.content_length.min(buf.len() - head_end));
                answer
            }
        };
        stream.write_all(&answer).await?;
        if head.close {
            return Ok(());
        }
    }
}

const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nx-accel-buffering: no\r\nconnection: close\r\n\r\n";

async fn stream_events(
    mut stream: TcpStream,
    mut rx: mpsc::Receiver<Bytes>,
    heartbeat: Duration,
) -> io::Result<()> {
    stream.write_all(SSE_HEAD).await?;
    let mut batch: Vec<u8> = Vec::new();
    // Polling a pinned timer again is nearly free, unlike registering read interest on the
    // socket for every frame; a peer that went away is noticed when a write fails, and the
    // heartbeat makes sure an idle stream writes.
    let tick = tokio::time::sleep(heartbeat);
    tokio::pin!(tick);
    loop {
        tokio::select! {
            biased;
            frame = rx.recv() => {
                let Some(frame) = frame else { return Ok(()) };
                if rx.is_empty() {
                    stream.write_all(&frame).await?;
                    continue;
                }
                batch.extend_from_slice(&frame);
                while batch.len() < MAX_WRITE {
                    match rx.try_recv() {
                        Ok(frame) => batch.extend_from_slice(&frame),
                        Err(_) => break,
                    }
                }
                stream.write_all(&batch).await?;
                batch.clear();
            }
            () = &mut tick => {
                stream.write_all(b":\n\n").await?;
                tick.as_mut().reset(Instant::now() + heartbeat);
            }
        }
    }
}

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

const PAD: &[u8; 156] = &[b'x'; 156];

/// Writes the benchmark event, about 200 bytes of JSON carrying its publish time in `ts`.
pub fn bench_event(out: &mut Vec<u8>, ts: u64, n: u64) {
    let mut buffer = itoa::Buffer::new();
    out.extend_from_slice(b"{\"ts\":");
    out.extend_from_slice(buffer.format(ts).as_bytes());
    out.extend_from_slice(b",\"n\":");
    out.extend_from_slice(buffer.format(n).as_bytes());
    out.extend_from_slice(b",\"pad\":\"");
    out.extend_from_slice(PAD);
    out.extend_from_slice(b"\"}");
}

/// Which sessions the in-process publisher takes round-robin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    /// Every session that has a subscriber (the list refreshed every 100 ms).
    Subscribed,
    /// Every session, with or without a subscriber (the list taken again when the number of
    /// sessions changed, looked at every 100 ms): what a publish costs as sessions with
    /// history grow, with only some of them subscribed.
    All,
}

/// Publishes `rate` events per second in-process, round-robin over the sessions `targets`
/// names, each event stamped with its publish time (see [`bench_event`]).
pub fn spawn_self_publisher(hub: Arc<Hub>, rate: u64, targets: Targets) -> JoinHandle<()> {
    tokio::spawn(self_publish(hub, rate, targets))
}

async fn self_publish(hub: Arc<Hub>, rate: u64, over: Targets) {
    let rate = rate.max(1);
    // At most 10 ms worth of events per round, so a saturated publisher does not burst later.
    let max_round = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut targets: Vec<Arc<Session>> = Vec::new();
    let mut refreshed: Option<Instant> = None;
    let mut sent: u64 = 0;
    let mut next_target = 0usize;
    let mut n: u64 = 0;
    let mut json = Vec::with_capacity(256);
    loop {
        tick.tick().await;
        if refreshed.is_none_or(|at| at.elapsed() >= Duration::from_millis(100)) {
            refreshed = Some(Instant::now());
            match over {
                Targets::Subscribed => targets = hub.subscribed_sessions(),
                // Listing 100,000 sessions takes milliseconds: only when their number changed.
                Targets::All if hub.sessions.len() != targets.len() => {
                    targets = hub.all_sessions();
                }
                Targets::All => {}
            }
        }
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if targets.is_empty() {
            sent = due;
            continue;
        }
        sent = sent.max(due.saturating_sub(rate));
        let round = due.saturating_sub(sent).min(max_round);
        for i in 0..round {
            let session = &targets[next_target % targets.len()];
            next_target = next_target.wrapping_add(1);
            n += 1;
            json.clear();
            bench_event(&mut json, unix_micros(), n);
            hub.append(&mut session.state.lock(), |seq| encode(seq, &json));
            if i % 256 == 255 {
                tokio::task::yield_now().await;
            }
        }
        sent += round;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_encoded_once_per_event() {
        assert_eq!(
            &encode(42, b"{\"a\":1}")[..],
            b"id: 42\ndata: {\"a\":1}\n\n"
        );
    }

    #[test]
    fn bench_event_is_about_200_bytes_of_json() {
        let mut out = Vec::new();
        bench_event(&mut out, unix_micros(), 1_234_567);
        assert!((190..=210).contains(&out.len()), "{}", out.len());
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["n"], 1_234_567);
    }

    #[test]
    fn publish_bodies_split_into_single_lines() {
        let events = split_events(b" [{\"a\":1}, {\n \"b\": 2\n}]").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(&*events[0], b"{\"a\":1}");
        assert_eq!(&*events[1], b"{\"b\":2}");
        assert_eq!(split_events(b"{\"a\":1}").unwrap().len(), 1);
        assert!(split_events(b"[{").is_none());
        assert!(split_events(b"").is_none());
    }

    #[test]
    fn heads_and_routes_parse() {
        let head = parse_head(
            b"GET /api/sse/session/s1?x=1 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 17\r\n\r\n",
        )
        .unwrap();
        assert!(head.method_get);
        assert_eq!(head.last_event_id, Some(17));
        assert!(matches!(route(&head.path), Some(Route::Subscribe("s1"))));
        assert!(matches!(
            route("/api/sessions/s2/events"),
            Some(Route::Publish("s2"))
        ));
        assert!(route("/api/other").is_none());
    }

    #[tokio::test]
    async fn resume_replays_retained_frames_after_the_last_id() {
        let hub = Hub::new(Config {
            ring_capacity: 3,
            queue_capacity: 8,
            ..Config::default()
        });
        hub.publish("s", [&b"1"[..], b"2", b"3", b"4"]);
        let mut rx = hub.subscribe("s", Some(2));
        assert_eq!(&rx.recv().await.unwrap()[..], b"id: 3\ndata: 3\n\n");
        assert_eq!(&rx.recv().await.unwrap()[..], b"id: 4\ndata: 4\n\n");
        hub.publish("s", [&b"5"[..]]);
        assert_eq!(&rx.recv().await.unwrap()[..], b"id: 5\ndata: 5\n\n");
    }

    #[tokio::test]
    async fn idle_streams_write_heartbeats() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = Hub::new(Config {
            heartbeat: Duration::from_millis(50),
            ..Config::default()
        });
        tokio::spawn(serve(listener, hub));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /api/sse/session/hb HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut chunk = [0u8; 512];
        while !received.ends_with(b"\r\n\r\n:\n\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0);
            received.extend_from_slice(&chunk[..n]);
        }
        assert!(received.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
}
