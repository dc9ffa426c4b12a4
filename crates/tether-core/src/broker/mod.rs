//! The broker: the session registry and the public operations on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::approval::{
    ApprovalHandle, ApprovalInfo, ApprovalRequest, ApprovalStatus, Decision, PendingApproval,
    rfc3339_after,
};
use crate::config::{BrokerBuilder, Config, ConnectionPolicy};
use crate::driver::BrokerDriver;
use crate::error::{ApprovalError, ConnectError, DecideError, PublishError};
use crate::frame::{self, EventName};
use crate::id::{EventId, LastEventId, SessionId, is_valid_id};
use crate::metrics as m;
use crate::session::{Appended, ConnShared, Event, Now, Session, SessionState, Victim, end};
use crate::signal::{Resync, ResyncReason, SessionTracker, Signal};
use crate::stream::{EventStream, Position};

/// How a connecting client wants its stream opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// Renders an optional log field as its value or `-`.
pub(crate) struct OrDash<'a, T: std::fmt::Display + ?Sized>(pub(crate) Option<&'a T>);

impl<T: std::fmt::Display + ?Sized> std::fmt::Display for OrDash<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl ConnectOptions {
    /// Options that resume after `last_event_id`.
    pub fn resume(last_event_id: impl Into<String>) -> Self {
        Self {
            last_event_id: Some(last_event_id.into()),
            ..Self::default()
        }
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

/// A snapshot for `/health/sse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// `"ok"`, or `"draining"` while the broker drains.
    pub status: &'static str,
    /// Sessions alive.
    pub sessions: usize,
    /// Open connections.
    pub connections: usize,
    /// Whether the broker is draining.
    pub draining: bool,
    /// Bytes held by all rings.
    pub ring_bytes: usize,
    /// Bytes held by the sessions' trackers (AG-UI snapshots) and approval payloads; with
    /// `ring_bytes`, what the memory budget covers.
    pub state_bytes: usize,
}

impl Health {
    /// Whether probes should see the node as healthy.
    pub fn is_healthy(&self) -> bool {
        !self.draining
    }
}

/// Signals from the broker to its driver task.
pub(crate) struct DriverSignal {
    pub(crate) changed: Notify,
    pub(crate) shutdown: AtomicBool,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) sessions: DashMap<SessionId, Arc<Session>>,
    session_count: AtomicUsize,
    /// Sessions created by connects, per identity.
    subject_sessions: Mutex<HashMap<Arc<str>, usize>>,
    pub(crate) ring_bytes: AtomicUsize,
    /// Bytes held by the sessions' trackers and approval payloads (see
    /// [`SessionState::held_state`]); with `ring_bytes`, what the memory budget covers.
    pub(crate) state_bytes: AtomicUsize,
    pub(crate) connections: AtomicUsize,
    pub(crate) draining: AtomicBool,
    drain_window_ms: AtomicU64,
    conn_ids: AtomicU64,
    pub(crate) deadlines: Mutex<BTreeMap<(Instant, u64), (SessionId, String)>>,
    deadline_seq: AtomicU64,
    pub(crate) driver: Arc<DriverSignal>,
    pub(crate) idle: Notify,
    start: Instant,
    pub(crate) limits: crate::limits::LimitBook,
    /// The budget's clock hand over every session (see [`crate::budget`]).
    pub(crate) clock: crate::budget::Clock,
    /// The metric handles, registered at build (see [`Broker::rebind_metrics`]).
    metrics: parking_lot::RwLock<Arc<m::Handles>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.driver.shutdown.store(true, Ordering::Release);
        self.driver.changed.notify_one();
    }
}

/// The broker. Cheap to clone: every clone is a handle to the same sessions.
///
/// See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("sessions", &self.inner.sessions.len())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl BrokerBuilder {
    /// Builds the broker and the future that drives its timers (approval deadlines, stalled
    /// connections, session expiry). Spawn the driver on a tokio runtime; it ends when the
    /// last broker handle is dropped.
    pub fn build(self) -> (Broker, BrokerDriver) {
        let driver = Arc::new(DriverSignal {
            changed: Notify::new(),
            shutdown: AtomicBool::new(false),
        });
        let inner = Arc::new(Inner {
            config: self.config,
            sessions: DashMap::new(),
            session_count: AtomicUsize::new(0),
            subject_sessions: Mutex::new(HashMap::new()),
            ring_bytes: AtomicUsize::new(0),
            state_bytes: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            drain_window_ms: AtomicU64::new(0),
            conn_ids: AtomicU64::new(0),
            deadlines: Mutex::new(BTreeMap::new()),
            deadline_seq: AtomicU64::new(0),
            driver: driver.clone(),
            idle: Notify::new(),
            start: Instant::now(),
            limits: Default::default(),
            clock: Default::default(),
            metrics: parking_lot::RwLock::new(Arc::new(m::Handles::register())),
        });
        let c = &inner.config;
        inner.limits.declare("sessions", c.max_sessions as u64);
        inner
            .limits
            .declare("memory_budget_bytes", c.total_ring_bytes as u64);
        inner
            .limits
            .declare("batch_events", c.max_batch_events as u64);
        inner
            .limits
            .declare("pending_approvals", c.max_pending_approvals as u64);
        inner
            .limits
            .declare("approval_bytes", c.max_approval_bytes() as u64);
        let drv = BrokerDriver::new(Arc::downgrade(&inner), driver);
        (Broker { inner }, drv)
    }

    /// Builds the broker and spawns its driver on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> Broker {
        let (broker, driver) = self.build();
        tokio::spawn(driver);
        broker
    }
}

impl Inner {
    /// The metric handles.
    pub(crate) fn mx(&self) -> parking_lot::RwLockReadGuard<'_, Arc<m::Handles>> {
        self.metrics.read()
    }

    pub(crate) fn now(&self) -> Now {
        let at = Instant::now();
        Now {
            at,
            ms: at.saturating_duration_since(self.start).as_millis() as u64 + 1,
        }
    }

    /// The session, created if absent (subject to the session limit).
    pub(crate) fn session(&self, id: &SessionId) -> Result<Arc<Session>, usize> {
        self.session_by(id, None).map_err(|e| match e {
            Limit::Total(max) | Limit::Subject(max) => max,
        })
    }

    /// The session, created if absent; a session created for `creator` counts against that
    /// identity's cap.
    fn session_by(
        &self,
        id: &SessionId,
        creator: Option<&Arc<str>>,
    ) -> Result<Arc<Session>, Limit> {
        if let Some(s) = self.sessions.get(id) {
            return Ok(s.clone());
        }
        let max = self.config.max_sessions;
        if self.session_count.fetch_add(1, Ordering::AcqRel) >= max {
            self.session_count.fetch_sub(1, Ordering::AcqRel);
            // Someone may have created it meanwhile.
            let existing = self.sessions.get(id).map(|s| s.clone());
            if existing.is_none() {
                self.limits.refuse("sessions");
            }
            return existing.ok_or(Limit::Total(max));
        }
        if let Some(sub) = creator {
            let max = self.config.max_sessions_per_subject;
            let mut counts = self.subject_sessions.lock();
            let n = counts.entry(sub.clone()).or_insert(0);
            if *n >= max {
                drop(counts);
                self.session_count.fetch_sub(1, Ordering::AcqRel);
                return self
                    .sessions
                    .get(id)
                    .map(|s| s.clone())
                    .ok_or(Limit::Subject(max));
            }
            *n += 1;
        }
        match self.sessions.entry(id.clone()) {
            Entry::Occupied(e) => {
                self.session_count.fetch_sub(1, Ordering::AcqRel);
                if let Some(sub) = creator {
                    self.release_subject(sub);
                }
                Ok(e.get().clone())
            }
            Entry::Vacant(v) => {
                let s = Arc::new(Session {
                    id: id.clone(),
                    creator: creator.cloned(),
                    state: Mutex::new(SessionState::new(&self.config, Instant::now())),
                });
                v.insert(s.clone());
                self.clock.add(&s);
                self.mx().sessions_active.increment(1.0);
                Ok(s)
            }
        }
    }

    fn release_subject(&self, sub: &Arc<str>) {
        let mut counts = self.subject_sessions.lock();
        if let Some(n) = counts.get_mut(sub) {
            *n -= 1;
            if *n == 0 {
                counts.remove(sub);
            }
        }
    }

    /// Removes a session whose state is already marked removed and emptied.
    pub(crate) fn forget(&self, session: &Arc<Session>) {
        if self
            .sessions
            .remove_if(&session.id, |_, v| Arc::ptr_eq(v, session))
            .is_some()
        {
            self.session_count.fetch_sub(1, Ordering::AcqRel);
            if let Some(sub) = &session.creator {
                self.release_subject(sub);
            }
            self.mx().sessions_active.decrement(1.0);
        }
    }

    /// Applies a locked operation's byte changes to the broker-wide total. Called while the
    /// session's lock is still held, so the total never counts bytes a ring does not hold
    /// yet (a trim of the same ring could otherwise subtract them first and wrap it).
    pub(crate) fn settle_bytes(&self, out: &mut Appended) {
        let added = std::mem::take(&mut out.added_bytes);
        let freed = std::mem::take(&mut out.evicted.bytes);
        if added > freed {
            self.ring_bytes.fetch_add(added - freed, Ordering::Relaxed);
        } else if freed > added {
            self.ring_bytes.fetch_sub(freed - added, Ordering::Relaxed);
        }
    }

    /// Brings the broker-wide state total up to date with a session's tracker and approvals.
    /// Called under the session's lock after anything that changes them.
    pub(crate) fn settle_state(&self, st: &mut SessionState) {
        let now = if st.removed { 0 } else { st.held_state() };
        let before = std::mem::replace(&mut st.state_counted, now);
        if now > before {
            self.state_bytes.fetch_add(now - before, Ordering::Relaxed);
        } else if before > now {
            self.state_bytes.fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    /// Bytes the memory budget covers: rings, trackers and approval payloads.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.ring_bytes.load(Ordering::Relaxed) + self.state_bytes.load(Ordering::Relaxed)
    }

    /// Accounts for an append after the session's lock is released (its bytes were settled
    /// under the lock); hands back the ids it stored.
    pub(crate) fn account(&self, a: Appended) -> Vec<EventId> {
        debug_assert!(
            a.added_bytes == 0 && a.evicted.bytes == 0,
            "ring bytes are settled under the session lock"
        );
        if !a.ids.is_empty() {
            self.mx().published.increment(a.ids.len() as u64);
        }
        if a.evicted.count > 0 {
            self.mx().evicted("ring").increment(a.evicted.count);
        }
        if a.evicted.unread > 0 {
            self.mx().evicted_unread.increment(a.evicted.unread);
        }
        if let Some(w) = a.waker {
            w.wake();
        }
        a.ids
    }

    /// The runbook's "SSE keepalive timeout" line for a connection that stopped reading.
    pub(crate) fn log_keepalive_timeout(&self, conn: &crate::session::ConnShared) {
        crate::session::conn_event!(
            warn,
            *conn,
            reason = "timeout",
            duration_s = conn.opened.elapsed().as_secs_f64(),
            timeout_s = self.config.client_timeout.as_secs_f64(),
            "SSE keepalive timeout"
        );
    }

    /// Whether a connection whose server dropped it without saying why had stalled: frames
    /// waited unread for at least half the client timeout. The kernel's `TCP_USER_TIMEOUT`
    /// (the client timeout) cuts such a client about one timeout after its socket filled,
    /// while the server may have taken frames into its own buffer a little later, so the
    /// whole timeout would be a coin toss.
    pub(crate) fn had_stalled(&self, conn: &crate::session::ConnShared) -> bool {
        let now = self.now().ms;
        let half_timeout_ms = self.config.client_timeout.as_millis() as u64 / 2;
        let pending = conn.pending_since_ms.load(Ordering::Acquire);
        pending != 0 && now.saturating_sub(pending) >= half_timeout_ms
    }

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

    fn drain_retry_ms(&self) -> u64 {
        let window = self.drain_window_ms.load(Ordering::Relaxed);
        rand::rng().random_range(0..=window)
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

    fn timer_insert(&self, deadline: Instant, session: &SessionId, id: &str) -> (Instant, u64) {
        let key = (deadline, self.deadline_seq.fetch_add(1, Ordering::Relaxed));
        self.deadlines
            .lock()
            .insert(key, (session.clone(), id.to_owned()));
        self.driver.changed.notify_one();
        key
    }

    /// Resolves a pending approval under its session's lock and announces the outcome.
    pub(crate) fn resolve_locked(
        &self,
        session: &Session,
        st: &mut SessionState,
        id: &str,
        status: ApprovalStatus,
        now: Now,
        out: &mut Appended,
    ) -> Option<(ApprovalInfo, PendingApproval)> {
        let keep = self.config.decided_approvals_kept;
        let (info, pending) = st.approvals.resolve(id, status, keep)?;
        self.deadlines.lock().remove(&pending.deadline_key);
        if st.approvals.announced.remove(id) {
            // An announcement the tracker refuses is dropped: the decision itself stands.
            if let Err(e) = st.append_signal(
                &session.id,
                &self.config,
                &Signal::ApprovalResolved(&info),
                out,
                now,
            ) {
                tracing::warn!(session = %session.id, approval = id, error = %e, "SSE error");
            }
        }
        self.settle_bytes(out);
        self.settle_state(st);
        self.mx().decisions(info.status.as_str()).increment(1);
        self.mx().approval_wait.record(
            now.at
                .saturating_duration_since(pending.created)
                .as_secs_f64(),
        );
        Some((info, pending))
    }

    /// Fires every approval deadline that is due; returns the next one.
    pub(crate) fn fire_deadlines(&self) -> Option<Instant> {
        loop {
            let now = self.now();
            let due = {
                let mut d = self.deadlines.lock();
                match d.first_key_value() {
                    Some((k, _)) if k.0 <= now.at => d.pop_first(),
                    Some((k, _)) => return Some(k.0),
                    None => return None,
                }
            };
            let Some((key, (sid, id))) = due else {
                continue;
            };
            let Some(session) = self.sessions.get(&sid).map(|s| s.clone()) else {
                continue;
            };
            let mut out = Appended::default();
            {
                let mut st = session.state.lock();
                let matches = st
                    .approvals
                    .pending
                    .get(&id)
                    .is_some_and(|p| p.deadline_key == key);
                if matches {
                    self.resolve_locked(
                        &session,
                        &mut st,
                        &id,
                        ApprovalStatus::TimedOut,
                        now,
                        &mut out,
                    );
                    tracing::warn!(session = %sid, approval = %id, "approval timed out");
                }
            }
            self.account(out);
        }
    }

    /// Drops stalled connections and expires idle sessions.
    pub(crate) fn sweep(&self) {
        self.clock.prune();
        let now = self.now();
        let timeout_ms = self.config.client_timeout.as_millis() as u64;
        let silent_ms = self
            .config
            .keepalive_interval
            .map(|k| k.as_millis() as u64 + timeout_ms);
        let ttl = self.config.session_ttl;
        let sessions: Vec<Arc<Session>> = self.sessions.iter().map(|e| e.value().clone()).collect();
        for session in sessions {
            let mut expired = false;
            let mut stalled = None;
            {
                let mut st = session.state.lock();
                if let Some(conn) = &st.conn {
                    let last_poll = conn.last_poll_ms.load(Ordering::Acquire);
                    let pending = conn.pending_since_ms.load(Ordering::Acquire);
                    let since = |t: u64| now.ms.saturating_sub(t);
                    let stalled_pending = pending != 0
                        && since(pending) >= timeout_ms
                        && since(last_poll) >= timeout_ms;
                    let stalled_silent = silent_ms.is_some_and(|s| since(last_poll) >= s);
                    if stalled_pending || stalled_silent {
                        let conn = st.conn.take();
                        st.last_activity = now.at;
                        stalled = conn;
                    }
                } else if st.approvals.pending.is_empty()
                    && now.at.saturating_duration_since(st.last_activity) >= ttl
                {
                    st.removed = true;
                    let bytes = st.ring.clear();
                    self.ring_bytes.fetch_sub(bytes, Ordering::Relaxed);
                    self.settle_state(&mut st);
                    expired = true;
                }
            }
            if let Some(conn) = stalled {
                self.log_keepalive_timeout(&conn);
                if let Some(w) = conn.end(end::TIMEOUT) {
                    w.wake();
                }
                self.finish_connection(&conn, "timeout");
            }
            if expired {
                tracing::debug!(session = %session.id, "session expired");
                self.forget(&session);
            }
        }
    }
}

impl Broker {
    /// A builder with the runbook's defaults.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// Registers the broker's metric handles again, with the recorder installed now, and
    /// sets the gauges to the broker's current state. A broker registers them when it is
    /// built, so a recorder installed later sees nothing until this is called (see the
    /// [`metrics`](crate::metrics) module). Counters and histograms start over in the new
    /// recorder.
    pub fn rebind_metrics(&self) {
        let handles = m::Handles::register();
        handles
            .active_connections
            .set(self.inner.connections.load(Ordering::Acquire) as f64);
        handles
            .sessions_active
            .set(self.inner.sessions.len() as f64);
        *self.inner.metrics.write() = Arc::new(handles);
    }

    /// The broker's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Publishes one event serialized as JSON; returns its id. Creates the session if needed.
    /// O(1): appends under a short lock and wakes the session's connection, never waiting for
    /// it.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        session: &SessionId,
        event: &T,
    ) -> Result<EventId, PublishError> {
        self.publish_event(session, Event::json(event)?)
    }

    /// Publishes one prepared event; returns its id.
    pub fn publish_event(
        &self,
        session: &SessionId,
        event: Event,
    ) -> Result<EventId, PublishError> {
        let ids = self.publish_batch(session, std::slice::from_ref(&event))?;
        Ok(ids[0])
    }

    /// Publishes events in order under one lock; returns their ids. If the session's tracker
    /// refuses an event, the ones before it stay stored and the error lists their ids.
    pub fn publish_batch(
        &self,
        session: &SessionId,
        events: &[Event],
    ) -> Result<Vec<EventId>, PublishError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let max = self.inner.config.max_batch_events;
        if events.len() > max {
            self.inner.limits.refuse("batch_events");
            return Err(PublishError::TooManyEvents {
                count: events.len(),
                max,
            });
        }
        // A session already in use keeps publishing (refusing it would keep its run from
        // finishing and its state from being freed); a new one waits for room.
        if !self.inner.sessions.contains_key(session) && !self.inner.make_room() {
            return Err(PublishError::MemoryBudget {
                budget: self.inner.config.total_ring_bytes,
            });
        }
        let now = self.inner.now();
        let mut out = Appended::default();
        let result = self.with_session(session, |st| {
            st.check_rate(&self.inner.config, events.len(), now.at)?;
            let r = st.append(
                session,
                &self.inner.config,
                &mut events.iter().map(|e| (e.name.as_ref(), e.data.as_str())),
                &mut out,
                now,
            );
            self.inner.enforce_budget(st, &mut out);
            r
        });
        let ids = self.inner.account(out);
        result.map_err(|e| match e {
            SessionErr::Limit(max) => PublishError::TooManySessions { max },
            SessionErr::Inner(e) => e,
        })?;
        Ok(ids)
    }

    /// Stores a frame that was encoded and numbered elsewhere (a backplane's log), at `id`.
    /// The frame must be a complete SSE frame whose `id:` line is `id`.
    ///
    /// `id.seq` must be after the session's head and at most 2^64 - 2
    /// ([`PublishError::SeqOutOfRange`], [`PublishError::OutOfOrder`]); a refused call changes
    /// nothing. A new epoch starts a new incarnation of the session (its ring is emptied).
    /// Sequence numbers may skip: numbers that were never appended are not history a client
    /// missed, so a client resuming in the hole continues without a resync. History that
    /// existed and is gone is declared with [`mark_lost`](Self::mark_lost).
    pub fn append_at(
        &self,
        session: &SessionId,
        id: EventId,
        frame: Bytes,
    ) -> Result<(), PublishError> {
        let now = self.inner.now();
        let mut out = Appended::default();
        let result = self.with_session(session, |st| {
            let r = st.append_at(id, frame.clone(), &mut out, now);
            self.inner.enforce_budget(st, &mut out);
            r
        });
        self.inner.account(out);
        result.map_err(|e| match e {
            SessionErr::Limit(max) => PublishError::TooManySessions { max },
            SessionErr::Inner(e) => e,
        })
    }

    /// Declares every event of the session up to `through` lost (a backplane's log lost or
    /// trimmed them): they leave the ring, and a stream whose position is before `through`
    /// gets a `tether.resync` (reason `evicted`) instead of silently skipping them; a parked
    /// stream is woken for it. The head moves to at least `through`, so later appends and
    /// publishes follow it. An epoch other than the session's starts a new incarnation, as in
    /// [`append_at`](Self::append_at). Creates the session if needed.
    pub fn mark_lost(&self, session: &SessionId, through: EventId) -> Result<(), PublishError> {
        if through.seq > crate::session::MAX_SEQ {
            return Err(PublishError::SeqOutOfRange { seq: through.seq });
        }
        let mut out = Appended::default();
        let result = self.with_session(session, |st| {
            st.mark_lost(through.epoch, through.seq, &mut out);
            self.inner.settle_bytes(&mut out);
            Ok::<_, PublishError>(())
        });
        if out.evicted.count > 0 {
            self.inner.mx().evicted("lost").increment(out.evicted.count);
            out.evicted.count = 0;
        }
        self.inner.account(out);
        result.map_err(|e| match e {
            SessionErr::Limit(max) => PublishError::TooManySessions { max },
            SessionErr::Inner(e) => e,
        })
    }

    /// Installs a tracker (e.g. a [`SnapshotProvider`](crate::SnapshotProvider)) on a session,
    /// creating the session if needed.
    pub fn set_tracker(
        &self,
        session: &SessionId,
        tracker: Box<dyn SessionTracker>,
    ) -> Result<(), PublishError> {
        let mut tracker = Some(tracker);
        self.with_session(session, |st| {
            st.tracker = tracker.take();
            Ok::<_, PublishError>(())
        })
        .map_err(|e| match e {
            SessionErr::Limit(max) => PublishError::TooManySessions { max },
            SessionErr::Inner(e) => e,
        })
    }

    /// Runs `f` under the session's lock, with the session created if needed; retries if the
    /// session was removed meanwhile.
    fn with_session<R, E>(
        &self,
        id: &SessionId,
        mut f: impl FnMut(&mut SessionState) -> Result<R, E>,
    ) -> Result<R, SessionErr<E>> {
        loop {
            let session = self.inner.session(id).map_err(SessionErr::Limit)?;
            let mut st = session.state.lock();
            if st.removed {
                continue;
            }
            return f(&mut st).map_err(SessionErr::Inner);
        }
    }

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
        let draining = || ConnectError::Draining {
            retry_after: Duration::from_millis(inner.drain_retry_ms()),
        };
        if inner.draining.load(Ordering::Acquire) {
            return Err(draining());
        }
        let config = &inner.config;
        let now = inner.now();
        let conn_id = inner.conn_ids.fetch_add(1, Ordering::Relaxed);
        loop {
            let sess = inner
                .session_by(session, opts.identity.as_ref())
                .map_err(|e| match e {
                    Limit::Total(max) => ConnectError::TooManySessions { max },
                    Limit::Subject(max) => ConnectError::TooManySessionsForSubject { max },
                })?;
            let mut st = sess.state.lock();
            if st.removed {
                continue;
            }
            // Checked again under the lock: `drain` sets the flag before it visits each
            // session under its lock, so a connect either sees the flag here or installs its
            // connection before `drain` looks, which then ends it.
            if inner.draining.load(Ordering::Acquire) {
                return Err(draining());
            }
            let grace = config.supersede_grace;
            st.superseded
                .retain(|v| now.at.saturating_duration_since(v.at) < grace);
            if let Some(holder) = &st.conn
                && is_returning_victim(&st.superseded, holder, &opts, last.is_some(), now.at, grace)
            {
                return Err(ConnectError::SupersededRecently);
            }
            let mut superseded = None;
            if let Some(old) = st.conn.take() {
                let same_instance = old.client_id.is_some()
                    && old.client_id.as_deref() == opts.client_id.as_deref();
                if config.connection_policy == ConnectionPolicy::Reject
                    && !(same_instance && old.identity == opts.identity)
                {
                    st.conn = Some(old);
                    return Err(ConnectError::Conflict);
                }
                if !same_instance && old.client_id.is_some() {
                    st.superseded.push(Victim {
                        client_id: old.client_id.clone(),
                        identity: old.identity.clone(),
                        at: now.at,
                        by: conn_id,
                    });
                    if st.superseded.len() > 16 {
                        st.superseded.remove(0);
                    }
                }
                superseded = Some(old);
            }
            let victim = superseded.as_ref().and_then(|old| {
                let same_instance = old.client_id.is_some()
                    && old.client_id.as_deref() == opts.client_id.as_deref();
                (!same_instance).then(|| Victim {
                    client_id: old.client_id.clone(),
                    identity: old.identity.clone(),
                    at: now.at,
                    by: conn_id,
                })
            });

            let floor = st.floor;
            let resync = match &last {
                None if floor > 0 => Some((ResyncReason::Evicted, st.lost_after(0).flatten())),
                None => None,
                Some(LastEventId::Foreign(_)) => Some((ResyncReason::Unknown, None)),
                Some(LastEventId::Known(id)) if id.epoch != st.epoch => {
                    Some((ResyncReason::Epoch, None))
                }
                Some(LastEventId::Known(id)) if id.seq > st.head => {
                    Some((ResyncReason::Ahead, None))
                }
                Some(LastEventId::Known(id)) => st
                    .lost_after(id.seq)
                    .map(|skipped| (ResyncReason::Evicted, skipped)),
            };
            let (has_snapshot, join_prelude) = st
                .tracker
                .as_ref()
                .map_or((false, false), |t| (t.has_snapshot(), t.prelude_on_join()));
            let prelude =
                resync.is_some() || opts.prelude_always || (last.is_none() && join_prelude);
            let mut cursor = match &last {
                Some(LastEventId::Known(id)) if resync.is_none() => id.seq,
                _ => floor,
            };
            if prelude && has_snapshot {
                cursor = st.head;
            }

            let mut opening = BytesMut::with_capacity(64);
            frame::put_retry(&mut opening, inner.retry_hint_ms());
            opening.extend_from_slice(b"\n");
            let resync_info = resync.map(|(reason, skipped)| Resync {
                reason,
                last_event_id: last.as_ref().map(ToString::to_string),
                resume_from: EventId {
                    epoch: st.epoch,
                    seq: st.next_seq_after(cursor),
                },
                skipped: skipped.filter(|n| *n > 0),
            });
            if prelude {
                st.put_prelude(resync_info.as_ref(), cursor, &mut opening);
                // Moves the client's last id to the cursor, so its next reconnect resumes
                // there instead of resyncing again (`<epoch>-0` before the first event).
                if cursor > 0 || resync_info.is_some() {
                    opening.extend_from_slice(&frame::encode_id_only(EventId {
                        epoch: st.epoch,
                        seq: cursor,
                    }));
                }
            }

            let conn = Arc::new(ConnShared {
                id: conn_id,
                session: session.clone(),
                client_id: opts.client_id.as_deref().map(Into::into),
                identity: opts.identity.clone(),
                superseded: victim,
                waker: Default::default(),
                end: Default::default(),
                last_poll_ms: AtomicU64::new(now.ms),
                pending_since_ms: AtomicU64::new(if cursor < st.head { now.ms } else { 0 }),
                drain_retry_ms: AtomicU64::new(0),
                finished: AtomicBool::new(false),
                opened: now.at,
                client: opts.client.clone(),
                last_event_id: opts.last_event_id.as_deref().map(Into::into),
            });
            st.conn = Some(conn.clone());
            st.last_activity = now.at;
            st.referenced = true;
            // The stream's epoch is read under the same lock that placed its cursor: an
            // epoch switch in between would pair the new epoch with the old cursor.
            let epoch = st.epoch;
            drop(st);

            if let Some(old) = superseded
                && let Some(w) = old.end(end::SUPERSEDED)
            {
                w.wake();
            }
            inner.connections.fetch_add(1, Ordering::AcqRel);
            inner.mx().active_connections.increment(1.0);
            if last.is_some() {
                inner.mx().reconnects.increment(1);
                crate::session::conn_event!(info, *conn, reason = "resume", "SSE reconnect");
            } else {
                crate::session::conn_event!(info, *conn, reason = "new", "SSE connect");
            }
            if let Some(r) = &resync_info {
                inner.mx().resyncs(r.reason.as_str()).increment(1);
                crate::session::conn_event!(info, *conn, reason = r.reason.as_str(), resume_from = %r.resume_from, "SSE resync");
            }
            let zero_id = cursor == 0
                && (resync_info.is_some()
                    || matches!(&last, Some(LastEventId::Known(id)) if id.seq == 0));
            return Ok(EventStream::new(
                inner.clone(),
                sess,
                conn,
                Position {
                    epoch,
                    cursor,
                    zero_id,
                },
                opening.freeze(),
                now.at,
            ));
        }
    }

    /// Asks a human for a decision. The request is stored in the session, announced in its
    /// stream (unless [`silent`](ApprovalRequest::silent)), and resolves exactly once.
    pub fn request_approval(
        &self,
        session: &SessionId,
        req: ApprovalRequest,
    ) -> Result<ApprovalHandle, ApprovalError> {
        let id = match req.id {
            Some(id) if is_valid_id(&id) => id,
            Some(_) => {
                return Err(crate::id::InvalidId {
                    what: "approval id",
                }
                .into());
            }
            None => format!("apr-{:016x}", rand::random::<u64>()),
        };
        // A deadline past what an Instant or a calendar date can hold would panic on addition.
        let timeout = req
            .timeout
            .unwrap_or(self.inner.config.approval_timeout)
            .min(crate::approval::MAX_TIMEOUT);
        let max_bytes = self.inner.config.max_approval_bytes();
        let size = req.payload.len();
        if size > max_bytes {
            self.inner.limits.refuse("approval_bytes");
            return Err(ApprovalError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        if !self.inner.make_room() {
            return Err(ApprovalError::Publish(PublishError::MemoryBudget {
                budget: self.inner.config.total_ring_bytes,
            }));
        }
        let now = self.inner.now();
        let deadline = now.at + timeout;
        let mut out = Appended::default();
        let max_pending = self.inner.config.max_pending_approvals;
        let result = self.with_session(session, |st| {
            if st.approvals.contains(&id) {
                return Err(ApprovalError::Duplicate);
            }
            if st.approvals.pending.len() >= max_pending {
                return Err(ApprovalError::TooManyPending { max: max_pending });
            }
            let info = ApprovalInfo {
                id: id.clone(),
                title: req.title.clone(),
                payload: req.payload.clone(),
                expires_at: rfc3339_after(timeout),
                status: ApprovalStatus::Pending,
            };
            let mut announced_at = None;
            if req.announce {
                let r = st.append_signal(
                    session,
                    &self.inner.config,
                    &Signal::ApprovalRequested(&info),
                    &mut out,
                    now,
                );
                self.inner.settle_bytes(&mut out);
                r?;
                announced_at = out.ids.last().copied();
                st.approvals.announced.insert(id.clone());
            }
            let key = self.inner.timer_insert(deadline, session, &id);
            let (tx, rx) = tokio::sync::watch::channel(ApprovalStatus::Pending);
            st.approvals.insert(PendingApproval {
                info,
                deadline_key: key,
                created: now.at,
                announced_at,
                tx,
            });
            // The payload is new state: idle sessions pay for it as for a publish.
            self.inner.enforce_budget(st, &mut out);
            Ok(rx)
        });
        self.inner.account(out);
        let rx = result.map_err(|e| match e {
            SessionErr::Limit(max) => ApprovalError::Publish(PublishError::TooManySessions { max }),
            SessionErr::Inner(e) => {
                if matches!(e, ApprovalError::TooManyPending { .. }) {
                    self.inner.limits.refuse("pending_approvals");
                }
                e
            }
        })?;
        self.inner.mx().approval_requests.increment(1);
        Ok(ApprovalHandle {
            id,
            session: session.clone(),
            rx,
        })
    }

    /// Decides a pending approval, exactly once.
    pub fn decide(
        &self,
        session: &SessionId,
        approval_id: &str,
        decision: Decision,
    ) -> Result<ApprovalInfo, DecideError> {
        self.resolve(session, approval_id, decision.into_status())
    }

    /// Cancels a pending approval.
    pub fn cancel_approval(
        &self,
        session: &SessionId,
        approval_id: &str,
    ) -> Result<ApprovalInfo, DecideError> {
        self.resolve(session, approval_id, ApprovalStatus::Cancelled)
    }

    fn resolve(
        &self,
        session: &SessionId,
        approval_id: &str,
        status: ApprovalStatus,
    ) -> Result<ApprovalInfo, DecideError> {
        let sess = self
            .inner
            .sessions
            .get(session)
            .map(|s| s.clone())
            .ok_or(DecideError::Unknown)?;
        let now = self.inner.now();
        let mut out = Appended::default();
        let result = {
            let mut st = sess.state.lock();
            let overdue = st
                .approvals
                .pending
                .get(approval_id)
                .map(|p| p.deadline_key.0 <= now.at);
            match overdue {
                Some(true) => {
                    self.inner.resolve_locked(
                        &sess,
                        &mut st,
                        approval_id,
                        ApprovalStatus::TimedOut,
                        now,
                        &mut out,
                    );
                    Err(DecideError::Expired)
                }
                Some(false) => Ok(self
                    .inner
                    .resolve_locked(&sess, &mut st, approval_id, status, now, &mut out)
                    .map(|(info, _)| info)
                    .expect("pending approval present under the lock")),
                None => Err(match st.approvals.resolved(approval_id) {
                    Some(a) if a.status == ApprovalStatus::TimedOut => DecideError::Expired,
                    Some(a) => DecideError::AlreadyDecided(a.status.as_str()),
                    None => DecideError::Unknown,
                }),
            }
        };
        self.inner.account(out);
        result
    }

    /// The approval as it stands, pending or recently resolved.
    pub fn approval(&self, session: &SessionId, approval_id: &str) -> Option<ApprovalInfo> {
        let sess = self.inner.sessions.get(session).map(|s| s.clone())?;
        let st = sess.state.lock();
        st.approvals
            .pending
            .get(approval_id)
            .map(|p| p.info.clone())
            .or_else(|| st.approvals.resolved(approval_id).cloned())
    }

    /// Waits up to `wait` for a pending approval to be resolved (long-poll), then returns it
    /// as it stands. `None` for an unknown approval.
    pub async fn wait_approval(
        &self,
        session: &SessionId,
        approval_id: &str,
        wait: Duration,
    ) -> Option<ApprovalInfo> {
        let rx = {
            let sess = self.inner.sessions.get(session).map(|s| s.clone())?;
            let st = sess.state.lock();
            match st.approvals.pending.get(approval_id) {
                Some(p) => p.tx.subscribe(),
                None => return st.approvals.resolved(approval_id).cloned(),
            }
        };
        let mut rx = rx;
        let _ = tokio::time::timeout(wait, rx.wait_for(ApprovalStatus::is_final)).await;
        self.approval(session, approval_id)
    }

    /// Starts draining: every stream ends now with a `retry:` hint spread uniformly over
    /// `window` (so clients come back through the load balancer at different moments), and
    /// new connections are refused with [`ConnectError::Draining`].
    pub fn drain(&self, window: Duration) {
        let inner = &self.inner;
        inner
            .drain_window_ms
            .store(window.as_millis() as u64, Ordering::Relaxed);
        inner.draining.store(true, Ordering::Release);
        tracing::info!(window_s = window.as_secs_f64(), "SSE drain started");
        let sessions: Vec<Arc<Session>> =
            inner.sessions.iter().map(|e| e.value().clone()).collect();
        for s in sessions {
            let conn = s.state.lock().conn.clone();
            if let Some(conn) = conn {
                conn.drain_retry_ms
                    .store(inner.drain_retry_ms(), Ordering::Relaxed);
                if let Some(w) = conn.end(end::DRAIN) {
                    w.wake();
                }
            }
        }
    }

    /// Whether the broker is draining.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// A jittered reconnection delay within the drain window (for `Retry-After` and the
    /// `retry:` of refused event-stream requests).
    pub fn drain_retry_hint(&self) -> Duration {
        Duration::from_millis(self.inner.drain_retry_ms())
    }

    /// Resolves when no connection is open (e.g. after [`drain`](Self::drain)).
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.connections.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.inner.connections.load(Ordering::Acquire)
    }

    /// Number of sessions alive.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Whether a session exists.
    pub fn has_session(&self, session: &SessionId) -> bool {
        self.inner.sessions.contains_key(session)
    }

    /// The sessions that have a connection right now (a snapshot; O(sessions)). For tools
    /// that act on connected sessions, such as a load generator publishing to each.
    pub fn connected_sessions(&self) -> Vec<SessionId> {
        self.inner
            .sessions
            .iter()
            .map(|e| e.value().clone())
            .collect::<Vec<_>>()
            .into_iter()
            .filter(|s| s.state.lock().conn.is_some())
            .map(|s| s.id.clone())
            .collect()
    }

    /// The id of a session's newest event, if it has one.
    pub fn head(&self, session: &SessionId) -> Option<EventId> {
        let sess = self.inner.sessions.get(session).map(|s| s.clone())?;
        let st = sess.state.lock();
        (st.head > 0).then_some(EventId {
            epoch: st.epoch,
            seq: st.head,
        })
    }

    /// Removes a session now: its connection ends, its pending approvals are cancelled.
    pub fn remove_session(&self, session: &SessionId) -> bool {
        let Some(sess) = self.inner.sessions.get(session).map(|s| s.clone()) else {
            return false;
        };
        let now = self.inner.now();
        let mut out = Appended::default();
        let conn = {
            let mut st = sess.state.lock();
            let ids: Vec<String> = st.approvals.pending.keys().cloned().collect();
            for id in ids {
                self.inner.resolve_locked(
                    &sess,
                    &mut st,
                    &id,
                    ApprovalStatus::Cancelled,
                    now,
                    &mut out,
                );
            }
            st.removed = true;
            out.evicted.bytes += st.ring.clear();
            self.inner.settle_bytes(&mut out);
            self.inner.settle_state(&mut st);
            st.conn.take()
        };
        self.inner.account(out);
        if let Some(conn) = conn
            && let Some(w) = conn.end(end::CLOSED)
        {
            w.wake();
        }
        self.inner.forget(&sess);
        true
    }

    /// The health snapshot for `/health/sse`.
    pub fn health(&self) -> Health {
        let draining = self.is_draining();
        Health {
            status: if draining { "draining" } else { "ok" },
            sessions: self.session_count(),
            connections: self.connection_count(),
            draining,
            ring_bytes: self.inner.ring_bytes.load(Ordering::Relaxed),
            state_bytes: self.inner.state_bytes.load(Ordering::Relaxed),
        }
    }

    /// The encoded heartbeat for sessions without a tracker (for tests and adapters).
    pub fn heartbeat_frame(&self) -> Bytes {
        crate::stream::heartbeat_frame(&self.inner.config.heartbeat_style, false)
    }
}

/// Which session limit refused a new session.
enum Limit {
    Total(usize),
    Subject(usize),
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

enum SessionErr<E> {
    Limit(usize),
    Inner(E),
}

/// Validates an SSE event name (helper for adapters' `?event=NAME`).
pub fn event_name(name: &str) -> Result<EventName, PublishError> {
    EventName::new(name).map_err(PublishError::from)
}
