//! Opening a connection: the client's options, the one-connection-per-session policy
//! (supersede, reject, the returning victim), the stream's opening bytes, and recording the
//! connection's end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use rand::Rng;
use tokio::time::Instant;

use super::registry::Limit;
use super::{Broker, Inner};
use crate::config::{Config, ConnectionPolicy};
use crate::error::ConnectError;
use crate::frame;
use crate::id::{LastEventId, SessionId};
use crate::resume::{Reader, Standing};
use crate::session::{ConnShared, Now, SessionState, Victim, end};
use crate::signal::Resync;
use crate::stream::EventStream;

/// How a connecting client wants its stream opened.
///
/// Build it with [`ConnectOptions::new`] (or [`resume`](ConnectOptions::resume)) and its
/// setters; fields may be added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The raw `Last-Event-ID` (header, or the `lastEventId` query parameter), if any.
    pub last_event_id: Option<String>,
    /// The client instance's name (`clientId` query parameter), for supersede without
    /// ping-pong.
    pub client_id: Option<String>,
    /// Give the prelude (snapshot) on every connect, even an exact resume; for consumers that
    /// check each response on its own (`prelude=always`).
    pub prelude_always: bool,
    /// Who connects: the token's `sub`, or `None` for anonymous. A superseded client instance
    /// is told to stop (204) only when it comes back as the same identity; under
    /// [`ConnectionPolicy::Reject`] the same identity and `clientId` may replace its own
    /// connection; and sessions created by connects are capped per identity
    /// ([`BrokerBuilder::max_sessions_per_subject`]).
    ///
    /// [`BrokerBuilder::max_sessions_per_subject`]: crate::BrokerBuilder::max_sessions_per_subject
    pub identity: Option<Arc<str>>,
    /// Who is at the other end, for the connection's log lines. Default is unknown.
    pub client: ClientInfo,
}

/// The client of a connection as its log lines name it: its address and its user agent.
/// Servers fill it from the request (see [`http::client_info`](crate::http::client_info) with
/// the `http` feature); it decides nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address: the socket peer, or what a trusted proxy says it forwarded.
    pub addr: Option<std::net::IpAddr>,
    /// The `User-Agent` header, at most 256 bytes of it.
    pub user_agent: Option<Box<str>>,
}

impl ClientInfo {
    /// The longest user agent kept.
    pub const MAX_USER_AGENT: usize = 256;

    /// A client at `addr` (if known) with `user_agent` (if any), cut to
    /// [`MAX_USER_AGENT`](Self::MAX_USER_AGENT) bytes.
    pub fn new(addr: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent.map(|ua| {
            let mut end = ua.len().min(Self::MAX_USER_AGENT);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].into()
        });
        Self { addr, user_agent }
    }
}

impl ConnectOptions {
    /// Options of a fresh connect: no `Last-Event-ID`, no `clientId`, anonymous.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options that resume after `last_event_id`.
    pub fn resume(last_event_id: impl Into<String>) -> Self {
        Self::new().last_event_id(last_event_id)
    }

    /// Resumes after `last_event_id` (the raw header or `lastEventId` value). Default is
    /// none.
    #[must_use]
    pub fn last_event_id(mut self, last_event_id: impl Into<String>) -> Self {
        self.last_event_id = Some(last_event_id.into());
        self
    }

    /// Asks for the prelude on this connect even when it resumes exactly (`prelude=always`).
    #[must_use]
    pub fn with_prelude(mut self) -> Self {
        self.prelude_always = true;
        self
    }

    /// Names the client instance (`clientId` query parameter). Default is none.
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets who connects: the authenticated token's `sub`. Default is none (anonymous).
    #[must_use]
    pub fn identity(mut self, sub: impl Into<Arc<str>>) -> Self {
        self.identity = Some(sub.into());
        self
    }

    /// Names the client for the connection's log lines. Default is unknown.
    #[must_use]
    pub fn client(mut self, client: ClientInfo) -> Self {
        self.client = client;
        self
    }
}

impl Inner {
    /// The jittered `retry:` hint: base ±50 %, never above the maximum.
    pub(crate) fn retry_hint_ms(&self) -> u64 {
        let base = self.config.reconnect_base.as_millis() as u64;
        let max = self.config.reconnect_backoff_max.as_millis() as u64;
        let v = if base == 0 {
            0
        } else {
            rand::rng().random_range(base / 2..=base + base / 2)
        };
        v.min(max)
    }

    /// Records the end of a connection once: gauge, duration, reason, log.
    pub(crate) fn finish_connection(&self, conn: &ConnShared, reason: &'static str) {
        if conn.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let secs = conn.opened.elapsed().as_secs_f64();
        self.mx().active_connections.decrement(1.0);
        self.mx().connection_duration.record(secs);
        self.mx().disconnects(reason).increment(1);
        crate::session::conn_event!(
            info,
            *conn,
            conn = conn.id,
            reason,
            duration_s = secs,
            "SSE disconnect"
        );
        if self.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl Broker {
    /// Opens the session's stream: a jittered `retry:` line, then (for a client that cannot
    /// resume exactly) the resync signal and prelude, then the replay, then live events.
    ///
    /// Under [`ConnectionPolicy::Replace`] a connect that would supersede the session's stream
    /// is refused with [`ConnectError::SupersededRecently`] (HTTP 204, which makes EventSource
    /// stop) when it comes from a client instance that stream superseded within the supersede
    /// grace: the same `clientId` and identity, or, for clients without a `clientId`, the same
    /// identity reconnecting with a `Last-Event-ID` (an EventSource coming back; a page reload
    /// sends none and is not refused). So two tabs never take turns for ever.
    pub fn connect(
        &self,
        session: &SessionId,
        opts: ConnectOptions,
    ) -> Result<EventStream, ConnectError> {
        let last = match opts.last_event_id.as_deref() {
            Some(raw) => LastEventId::parse(raw).map_err(ConnectError::InvalidLastEventId)?,
            None => None,
        };
        let inner = &self.inner;
        if inner.draining.load(Ordering::Acquire) {
            return Err(inner.draining_error());
        }
        let now = inner.now();
        let conn_id = inner.conn_ids.fetch_add(1, Ordering::Relaxed);
        loop {
            let sess = inner
                .session_by(session, opts.identity.as_ref())
                .map_err(Limit::into_connect)?;
            let mut st = sess.state.lock();
            if st.removed {
                continue;
            }
            // Checked again under the lock: `drain` sets the flag before it visits each
            // session under its lock, so a connect either sees the flag here or installs its
            // connection before `drain` looks, which then ends it.
            if inner.draining.load(Ordering::Acquire) {
                return Err(inner.draining_error());
            }
            let slot = take_slot(
                &mut st,
                &inner.config,
                &opts,
                last.is_some(),
                conn_id,
                now.at,
            )?;

            let mut opening = BytesMut::with_capacity(64);
            frame::put_retry(&mut opening, inner.retry_hint_ms());
            opening.extend_from_slice(b"\n");
            let reader = Reader {
                at: Standing::Connecting(last.as_ref()),
                last_event_id: last.as_ref().map(ToString::to_string),
                prelude_always: opts.prelude_always,
            };
            let lost = reader.at.lost(&st);
            // The stream's epoch is read under the same lock that placed its cursor: an
            // epoch switch in between would pair the new epoch with the old cursor.
            let placed = reader.place(&st, lost, &mut opening);

            let pending = placed.position.cursor < st.head;
            let conn = new_conn(conn_id, session, &opts, slot.victim, now, pending);
            st.conn = Some(conn.clone());
            st.last_activity = now.at;
            st.referenced = true;
            drop(st);

            inner.opened(
                &conn,
                slot.superseded,
                last.is_some(),
                placed.resync.as_ref(),
            );
            return Ok(EventStream::new(
                inner.clone(),
                sess,
                conn,
                placed.position,
                opening.freeze(),
                now.at,
            ));
        }
    }
}

impl Inner {
    /// The refusal of a connect while the broker drains.
    fn draining_error(&self) -> ConnectError {
        ConnectError::Draining {
            retry_after: Duration::from_millis(self.drain_retry_ms()),
        }
    }

    /// Counts and logs a connection that was just installed, and ends the one it superseded.
    fn opened(
        &self,
        conn: &ConnShared,
        superseded: Option<Arc<ConnShared>>,
        resumes: bool,
        resync: Option<&Resync>,
    ) {
        if let Some(old) = superseded
            && let Some(w) = old.end(end::SUPERSEDED)
        {
            w.wake();
        }
        self.connections.fetch_add(1, Ordering::AcqRel);
        self.mx().active_connections.increment(1.0);
        if resumes {
            self.mx().reconnects.increment(1);
            crate::session::conn_event!(info, *conn, reason = "resume", "SSE reconnect");
        } else {
            crate::session::conn_event!(info, *conn, reason = "new", "SSE connect");
        }
        if let Some(r) = resync {
            self.mx().resyncs(r.reason.as_str()).increment(1);
            crate::session::conn_event!(info, *conn, reason = r.reason.as_str(), resume_from = %r.resume_from, "SSE resync");
        }
    }
}

/// The shared state of connection `id`, opened `now` with frames `pending` or not.
fn new_conn(
    id: u64,
    session: &SessionId,
    opts: &ConnectOptions,
    superseded: Option<Victim>,
    now: Now,
    pending: bool,
) -> Arc<ConnShared> {
    Arc::new(ConnShared {
        id,
        session: session.clone(),
        client_id: opts.client_id.as_deref().map(Into::into),
        identity: opts.identity.clone(),
        superseded,
        waker: Default::default(),
        end: Default::default(),
        last_poll_ms: AtomicU64::new(now.ms),
        pending_since_ms: AtomicU64::new(if pending { now.ms } else { 0 }),
        drain_retry_ms: AtomicU64::new(0),
        finished: AtomicBool::new(false),
        opened: now.at,
        client: opts.client.clone(),
        last_event_id: opts.last_event_id.as_deref().map(Into::into),
    })
}

/// The session's connection slot as a connect found it.
struct Slot {
    /// The live connection the new one supersedes, to be ended once the lock is released.
    superseded: Option<Arc<ConnShared>>,
    /// Who the new connection superseded, unless it replaced its own client instance.
    victim: Option<Victim>,
}

/// Frees the session's connection slot for connection `conn_id` under the session's lock,
/// or refuses it: a client instance the live stream superseded within the grace comes back
/// ([`ConnectError::SupersededRecently`]), or [`ConnectionPolicy::Reject`] keeps the live
/// stream ([`ConnectError::Conflict`]) unless the same instance and identity replaces its own.
fn take_slot(
    st: &mut SessionState,
    config: &Config,
    opts: &ConnectOptions,
    resumes: bool,
    conn_id: u64,
    now: Instant,
) -> Result<Slot, ConnectError> {
    let grace = config.supersede_grace;
    st.superseded
        .retain(|v| now.saturating_duration_since(v.at) < grace);
    if let Some(holder) = &st.conn
        && is_returning_victim(&st.superseded, holder, opts, resumes, now, grace)
    {
        return Err(ConnectError::SupersededRecently);
    }
    let Some(old) = st.conn.take() else {
        return Ok(Slot {
            superseded: None,
            victim: None,
        });
    };
    let same_instance =
        old.client_id.is_some() && old.client_id.as_deref() == opts.client_id.as_deref();
    if config.connection_policy == ConnectionPolicy::Reject
        && !(same_instance && old.identity == opts.identity)
    {
        st.conn = Some(old);
        return Err(ConnectError::Conflict);
    }
    let victim = (!same_instance).then(|| Victim {
        client_id: old.client_id.clone(),
        identity: old.identity.clone(),
        at: now,
        by: conn_id,
    });
    // Only a named instance can be told apart when it comes back.
    if let Some(v) = &victim
        && old.client_id.is_some()
    {
        st.superseded.push(v.clone());
        if st.superseded.len() > 16 {
            st.superseded.remove(0);
        }
    }
    Ok(Slot {
        superseded: Some(old),
        victim,
    })
}

/// Whether a connect comes from a client instance that the session's live stream
/// (`holder`) superseded within the grace, and comes back as the same identity.
fn is_returning_victim(
    recent: &[Victim],
    holder: &ConnShared,
    opts: &ConnectOptions,
    resumes: bool,
    now: Instant,
    grace: Duration,
) -> bool {
    match opts.client_id.as_deref() {
        Some(cid) => recent.iter().any(|v| {
            v.by == holder.id && v.client_id.as_deref() == Some(cid) && v.identity == opts.identity
        }),
        // Without names, an EventSource coming back after being superseded (it sends its
        // Last-Event-ID) is told apart from a page reload (which sends none).
        None => {
            resumes
                && holder.superseded.as_ref().is_some_and(|v| {
                    v.client_id.is_none()
                        && v.identity == opts.identity
                        && now.saturating_duration_since(v.at) < grace
                })
        }
    }
}
