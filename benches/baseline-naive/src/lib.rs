//! The SSE server a user would write by hand, kept as a load-test baseline for tether.
//!
//! It serves the same two routes as tether's HTTP contract with axum 0.8 and nothing else:
//!
//! - `GET /api/sse/session/{session_id}`: an [`axum::response::sse::Sse`] stream fed by the
//!   session's [`tokio::sync::broadcast`] channel; each event is `id: <n>\ndata: <json>\n\n`,
//!   where `n` counts up from 1 within the session.
//! - `POST /api/sessions/{session_id}/events`: one JSON object or an array of them; answers
//!   202 `{"ids":[...]}`.
//!
//! Sessions live in a [`dashmap::DashMap`], one broadcast channel each
//! ([`CHANNEL_CAPACITY`] messages by default). Every subscriber encodes every event again (axum's `Event`
//! builder), a subscriber that falls more than a channel's capacity behind loses the oldest
//! events, and `Last-Event-ID` is ignored: there is no history to resume from. Those are the
//! costs and gaps tether is measured against.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = baseline_naive::bind("127.0.0.1:0".parse().unwrap())?;
//! let state = baseline_naive::AppState::default();
//! baseline_naive::spawn_self_publisher(state.clone(), 10_000);
//! baseline_naive::serve(listener, state).await
//! # }
//! ```

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
    serve::ListenerExt,
};
use dashmap::DashMap;
use serde_json::Value;
use tokio::{net::TcpListener, sync::broadcast, task::JoinHandle, time::Instant};
use tokio_stream::{StreamExt, wrappers::BroadcastStream};

/// Messages each session's broadcast channel holds before a slow subscriber lags, unless
/// [`AppState::with_capacity`] says otherwise. A broadcast channel allocates every slot up
/// front (tens of bytes each), so this also sets the memory of every session.
pub const CHANNEL_CAPACITY: usize = 256;

/// Listen backlog of [`bind`]: a reconnect storm overflows the kernel's default.
pub const LISTEN_BACKLOG: u32 = 4096;

type Message = (u64, Arc<str>);

struct Session {
    seq: Mutex<u64>,
    tx: broadcast::Sender<Message>,
}

impl Session {
    fn new(capacity: usize) -> Self {
        Self {
            seq: Mutex::new(0),
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// Assigns the next id and sends; the lock keeps ids in send order.
    fn publish(&self, data: Arc<str>) -> u64 {
        let mut seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        *seq += 1;
        // No subscriber is not an error: the event is simply gone, as in any broadcast server.
        let _ = self.tx.send((*seq, data));
        *seq
    }
}

/// The server's state: every session by id.
#[derive(Clone)]
pub struct AppState {
    sessions: Arc<DashMap<String, Arc<Session>>>,
    capacity: usize,
}

impl Default for AppState {
    fn default() -> Self {
        Self::with_capacity(CHANNEL_CAPACITY)
    }
}

impl AppState {
    /// No sessions yet; each new session's channel holds `capacity` messages.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            sessions: Arc::default(),
            capacity,
        }
    }

    fn session(&self, id: &str) -> Arc<Session> {
        if let Some(session) = self.sessions.get(id) {
            return Arc::clone(&session);
        }
        Arc::clone(
            &self
                .sessions
                .entry(id.to_owned())
                .or_insert_with(|| Arc::new(Session::new(self.capacity))),
        )
    }

    /// Publishes one event (already serialized JSON) to a session and returns its id.
    pub fn publish(&self, session_id: &str, json: &str) -> u64 {
        self.session(session_id).publish(Arc::from(json))
    }

    fn subscribed_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions
            .iter()
            .filter(|entry| entry.value().tx.receiver_count() > 0)
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }
}

/// The two routes of the contract on `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/sse/session/{session_id}", get(subscribe))
        .route("/api/sessions/{session_id}/events", post(publish))
        .with_state(state)
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

/// Serves [`router`] on `listener` until the process ends.
pub async fn serve(listener: TcpListener, state: AppState) -> io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(state)).await
}

/// Raises the soft limit of open files to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

fn valid_session_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": code, "message": message })),
    )
        .into_response()
}

fn bad_session_id() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad_session_id",
        "use 1 to 128 characters of [A-Za-z0-9._:-]",
    )
}

async fn subscribe(State(state): State<AppState>, Path(session_id): Path<String>) -> Response {
    if !valid_session_id(&session_id) {
        return bad_session_id();
    }
    let rx = state.session(&session_id).tx.subscribe();
    let stream = BroadcastStream::new(rx).filter_map(|message| match message {
        Ok((id, data)) => Some(Ok::<_, Infallible>(
            Event::default().id(id.to_string()).data(&*data),
        )),
        // A lagging subscriber skips what the channel overwrote.
        Err(_lagged) => None,
    });
    (
        [(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response()
}

async fn publish(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if !valid_session_id(&session_id) {
        return bad_session_id();
    }
    let events = match body {
        Value::Array(events) => events,
        event => vec![event],
    };
    let session = state.session(&session_id);
    let ids: Vec<String> = events
        .iter()
        .map(|event| session.publish(Arc::from(event.to_string())).to_string())
        .collect();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "ids": ids })),
    )
        .into_response()
}

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The benchmark event: about 200 bytes of JSON carrying its publish time in `ts`.
pub fn bench_event(ts: u64, n: u64) -> String {
    format!(r#"{{"ts":{ts},"n":{n},"pad":"{PAD}"}}"#)
}

const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// Publishes `rate` events per second in-process, round-robin over every session that has a
/// subscriber, each event stamped with its publish time (see [`bench_event`]).
pub fn spawn_self_publisher(state: AppState, rate: u64) -> JoinHandle<()> {
    tokio::spawn(self_publish(state, rate))
}

async fn self_publish(state: AppState, rate: u64) {
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
    loop {
        tick.tick().await;
        if refreshed.is_none_or(|at| at.elapsed() >= Duration::from_millis(100)) {
            targets = state.subscribed_sessions();
            refreshed = Some(Instant::now());
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
            session.publish(Arc::from(bench_event(unix_micros(), n)));
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
    fn bench_event_is_about_200_bytes_of_json() {
        let event = bench_event(unix_micros(), 1_234_567);
        assert!((190..=210).contains(&event.len()), "{}", event.len());
        let value: Value = serde_json::from_str(&event).unwrap();
        assert!(value["ts"].as_u64().unwrap() > 1_600_000_000_000_000);
    }

    #[test]
    fn session_ids_follow_the_contract_grammar() {
        assert!(valid_session_id("abc.DEF_1:2-3"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("a/b"));
        assert!(!valid_session_id(&"a".repeat(129)));
    }

    #[tokio::test]
    async fn ids_count_up_per_session() {
        let state = AppState::default();
        assert_eq!(state.publish("a", "{}"), 1);
        assert_eq!(state.publish("a", "{}"), 2);
        assert_eq!(state.publish("b", "{}"), 1);
    }
}
