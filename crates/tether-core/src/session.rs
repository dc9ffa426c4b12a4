//! One session's state and the operations that run under its lock.
//!
//! Everything that must be atomic with respect to one session (appending an event, placing a
//! new connection's cursor and taking its snapshot, resolving an approval) happens while its
//! `parking_lot::Mutex` is held. The lock is never held across an `.await`; wake-ups are
//! taken out under the lock and fired after it is released.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::Waker;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::approval::Approvals;
use crate::config::{Config, RateLimit};
use crate::error::PublishError;
use crate::frame::{self, EventName};
use crate::id::{Epoch, EventId, SessionId};
use crate::idempotency::IdempotencyLog;
use crate::ring::{Evicted, Ring};
use crate::signal::{Resync, SessionTracker, Signal, Terminal};

/// Why a connection's stream ended (or `LIVE` while it has not).
pub(crate) mod end {
    pub(crate) const LIVE: u8 = 0;
    pub(crate) const SUPERSEDED: u8 = 1;
    pub(crate) const DRAIN: u8 = 2;
    pub(crate) const TIMEOUT: u8 = 3;
    pub(crate) const CLOSED: u8 = 4;
    pub(crate) const ERROR: u8 = 5;
    pub(crate) const TOKEN_EXPIRED: u8 = 6;
}

/// The part of a connection the broker can reach: its wake-up and its end flag. The cursor
/// itself lives in the stream.
pub(crate) struct ConnShared {
    pub(crate) id: u64,
    pub(crate) session: SessionId,
    pub(crate) client_id: Option<Box<str>>,
    /// Who connected (the token's `sub`), `None` for anonymous.
    pub(crate) identity: Option<Arc<str>>,
    /// The connection this one superseded when it opened, if it was another client instance.
    pub(crate) superseded: Option<Victim>,
    pub(crate) waker: AtomicWaker,
    pub(crate) end: AtomicU8,
    /// Broker-relative milliseconds of the last poll of the stream.
    pub(crate) last_poll_ms: AtomicU64,
    /// Broker-relative milliseconds since which frames are pending (0 = none).
    pub(crate) pending_since_ms: AtomicU64,
    pub(crate) drain_retry_ms: AtomicU64,
    pub(crate) finished: AtomicBool,
    pub(crate) opened: Instant,
    /// The client's address and user agent, for log lines.
    pub(crate) client: crate::broker::ClientInfo,
    /// The `Last-Event-ID` the connect carried, as sent, for log lines.
    pub(crate) last_event_id: Option<Box<str>>,
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

/// Logs an event about a connection with the fields every connection line carries: the
/// session, the client's address, its user agent, the `Last-Event-ID` it connected with and
/// the token's `sub` (`-` where unknown). Never the token itself.
macro_rules! conn_event {
    ($level:ident, $conn:expr, $($rest:tt)*) => {{
        let conn: &$crate::session::ConnShared = &$conn;
        tracing::$level!(
            session = %conn.session,
            client_addr = %$crate::session::OrDash(conn.client.addr.as_ref()),
            user_agent = %$crate::session::OrDash(conn.client.user_agent.as_deref()),
            last_event_id = %$crate::session::OrDash(conn.last_event_id.as_deref()),
            sub = %$crate::session::OrDash(conn.identity.as_deref()),
            $($rest)*
        )
    }};
}
pub(crate) use conn_event;

impl ConnShared {
    /// Marks the stream as ending for `reason` (first reason wins) and returns its waker.
    pub(crate) fn end(&self, reason: u8) -> Option<Waker> {
        let _ = self
            .end
            .compare_exchange(end::LIVE, reason, Ordering::AcqRel, Ordering::Acquire);
        self.waker.take()
    }

    pub(crate) fn end_reason(&self) -> u8 {
        self.end.load(Ordering::Acquire)
    }
}

/// A connection that was superseded: who it was and when.
#[derive(Debug, Clone)]
pub(crate) struct Victim {
    pub(crate) client_id: Option<Box<str>>,
    pub(crate) identity: Option<Arc<str>>,
    pub(crate) at: Instant,
    /// The id of the connection that superseded it.
    pub(crate) by: u64,
}

/// The highest sequence number a session accepts, so that `head + 1` never overflows.
pub(crate) const MAX_SEQ: u64 = u64::MAX - 1;

/// The current time, as an instant and as broker-relative milliseconds (never 0).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) at: Instant,
    pub(crate) ms: u64,
}

/// A token bucket for the per-session publish rate.
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            tokens: f64::from(limit.burst.max(1)),
            last: now,
        }
    }

    fn take(
        &mut self,
        limit: RateLimit,
        n: usize,
        now: Instant,
    ) -> Result<(), std::time::Duration> {
        let burst = f64::from(limit.burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(burst);
        self.last = now;
        let need = n as f64;
        if self.tokens >= need {
            self.tokens -= need;
            Ok(())
        } else {
            let missing = need - self.tokens;
            // A rate too slow for a Duration to hold the wait waits a day, as documented on
            // `BrokerBuilder::publish_rate`.
            let wait = missing / limit.per_second.max(f64::MIN_POSITIVE);
            Err(std::time::Duration::try_from_secs_f64(wait)
                .unwrap_or(std::time::Duration::MAX)
                .min(std::time::Duration::from_secs(86_400)))
        }
    }
}

pub(crate) struct Session {
    pub(crate) id: SessionId,
    /// The identity whose connect created the session (counted against its cap).
    pub(crate) creator: Option<Arc<str>>,
    pub(crate) state: Mutex<SessionState>,
}

pub(crate) struct SessionState {
    pub(crate) epoch: Epoch,
    /// Last assigned sequence number (0 before the first event).
    pub(crate) head: u64,
    /// Every sequence number up to this one is gone (evicted or declared lost): a cursor
    /// below it gets a resync. Sequence numbers above it that the ring lacks never existed.
    pub(crate) floor: u64,
    /// Whether this epoch's sequence numbers have gaps (then the count of lost events is
    /// unknown).
    pub(crate) gapped: bool,
    pub(crate) ring: Ring,
    pub(crate) conn: Option<Arc<ConnShared>>,
    /// Named client instances superseded recently.
    pub(crate) superseded: Vec<Victim>,
    pub(crate) approvals: Approvals,
    pub(crate) tracker: Option<Box<dyn SessionTracker>>,
    /// Set when events reached the ring from a backplane's log without passing the tracker
    /// (the ring was rebased over history it never saw, or the budget forgot it): the tracker
    /// is not fed until it is rebuilt from a checkpoint, so it never judges a run it saw only
    /// part of.
    pub(crate) tracker_lost: bool,
    /// Whether the ring is fed from a backplane's log.
    pub(crate) from_log: bool,
    /// The keys of idempotent publishes.
    pub(crate) idempotency: IdempotencyLog,
    pub(crate) last_activity: Instant,
    /// Set by every publish and connect, cleared by the budget's clock hand: a session the
    /// hand finds unset has been idle since its last visit, and loses its history first.
    pub(crate) referenced: bool,
    /// Tracker and approval bytes this session added to the broker's memory total when it
    /// was last settled.
    pub(crate) state_counted: usize,
    /// Highest sequence number any connection has written.
    pub(crate) read_upto: u64,
    /// Set when the session was removed from the registry; a caller holding a stale handle
    /// looks it up again.
    pub(crate) removed: bool,
    bucket: Option<TokenBucket>,
}

/// A published event: SSE name and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub(crate) name: Option<EventName>,
    pub(crate) data: String,
}

impl Event {
    /// An event whose data is `value` serialized as JSON.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, PublishError> {
        serde_json::to_string(value)
            .map(Self::raw)
            .map_err(|e| PublishError::Serialize(e.into()))
    }

    /// An event whose data is `data` as given (already JSON, or any text). Line breaks are
    /// split into several `data:` lines.
    pub fn raw(data: impl Into<String>) -> Self {
        Self {
            name: None,
            data: data.into(),
        }
    }

    /// Sets the SSE event name (`event:` line).
    #[must_use]
    pub fn named(mut self, name: EventName) -> Self {
        self.name = Some(name);
        self
    }

    /// The event's data.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The event's SSE name.
    pub fn name(&self) -> Option<&EventName> {
        self.name.as_ref()
    }
}

/// What one locked publish did, to be accounted for after the lock is released.
#[derive(Default)]
pub(crate) struct Appended {
    /// Inline for one event: a single publish allocates nothing for its id.
    pub(crate) ids: smallvec::SmallVec<[EventId; 1]>,
    pub(crate) added_bytes: usize,
    pub(crate) evicted: Evicted,
    pub(crate) waker: Option<Waker>,
}

impl SessionState {
    pub(crate) fn new(config: &Config, now: Instant) -> Self {
        Self {
            epoch: Epoch::random(),
            head: 0,
            floor: 0,
            gapped: false,
            ring: Ring::new(config.ring_max_events, config.ring_max_bytes),
            conn: None,
            superseded: Vec::new(),
            approvals: Approvals::default(),
            tracker: None,
            tracker_lost: false,
            from_log: false,
            idempotency: IdempotencyLog::default(),
            last_activity: now,
            referenced: true,
            state_counted: 0,
            read_upto: 0,
            removed: false,
            bucket: config.publish_rate.map(|l| TokenBucket::new(l, now)),
        }
    }

    /// The bytes of state besides the ring: the tracker's, the approvals' payloads and the
    /// idempotency keys.
    pub(crate) fn held_state(&self) -> usize {
        self.tracker.as_ref().map_or(0, |t| t.state_bytes())
            + self.approvals.payload_bytes
            + self.idempotency.bytes()
    }

    /// Frees everything the session keeps for clients that come back, when the budget takes
    /// it: every retained event (a client that returns gets a resync, reason `evicted`, and
    /// the session's numbering goes on in its epoch, so no id is ever reused) and the
    /// tracker's state (a publisher starts a new run on a fresh tracker). Only for sessions
    /// without a connection or a pending approval.
    pub(crate) fn forget_history(&mut self) -> Evicted {
        let ev = self.ring.evict_through(self.head, self.read_upto);
        self.floor = self.head;
        self.tracker = None;
        // A ring fed from a log goes on at its head: the tracker is rebuilt from the
        // backplane's checkpoint before it judges anything again.
        self.tracker_lost = self.from_log;
        self.approvals.forget_resolved();
        ev
    }

    /// Whether a stream at `cursor` lost events after it; if so, how many (when known).
    pub(crate) fn lost_after(&self, cursor: u64) -> Option<Option<u64>> {
        (cursor < self.floor).then(|| (!self.gapped).then_some(self.floor - cursor))
    }

    /// The sequence number a stream at `cursor` delivers next: the next retained event, or
    /// the next one to be published.
    pub(crate) fn next_seq_after(&self, cursor: u64) -> u64 {
        self.ring.next_after(cursor).unwrap_or(self.head + 1)
    }

    /// Evicts oldest events until the ring holds at most `target` bytes.
    pub(crate) fn trim_to(&mut self, target: usize) -> Evicted {
        let ev = self.ring.trim_to(target, self.read_upto);
        self.floor = self.floor.max(ev.last_seq);
        ev
    }

    /// Declares every event up to `seq` lost: a cursor before it gets a resync.
    pub(crate) fn mark_lost(&mut self, epoch: Epoch, seq: u64, out: &mut Appended) {
        self.from_log = true;
        if epoch != self.epoch {
            self.new_epoch(epoch, out);
        }
        if seq > self.head {
            // The tracker never sees the events skipped here.
            self.tracker = None;
            self.tracker_lost = true;
        }
        let ev = self.ring.evict_through(seq, self.read_upto);
        out.evicted.add(ev);
        self.head = self.head.max(seq);
        self.floor = self.floor.max(seq);
        self.gapped = true;
        if let Some(conn) = &self.conn {
            out.waker = conn.waker.take();
        }
    }

    fn new_epoch(&mut self, epoch: Epoch, out: &mut Appended) {
        out.evicted.bytes += self.ring.clear();
        self.epoch = epoch;
        self.head = 0;
        self.floor = 0;
        self.gapped = false;
        self.read_upto = 0;
        // A new incarnation starts with no history, so with a fresh tracker.
        self.tracker = None;
        self.tracker_lost = false;
    }

    pub(crate) fn check_rate(
        &mut self,
        config: &Config,
        n: usize,
        now: Instant,
    ) -> Result<(), PublishError> {
        match (config.publish_rate, self.bucket.as_mut()) {
            (Some(limit), Some(bucket)) => bucket
                .take(limit, n, now)
                .map_err(|retry_after| PublishError::RateLimited { retry_after }),
            _ => Ok(()),
        }
    }

    /// Validates, encodes and stores events in order. Stops at the first refused event; the
    /// ones before it stay stored (their ids are in the error).
    pub(crate) fn append(
        &mut self,
        session: &SessionId,
        config: &Config,
        events: &mut dyn Iterator<Item = (Option<&EventName>, &str)>,
        out: &mut Appended,
        now: Now,
    ) -> Result<(), PublishError> {
        for (index, (name, data)) in events.enumerate() {
            let id = EventId {
                epoch: self.epoch,
                seq: self.head + 1,
            };
            if id.seq > MAX_SEQ {
                return Err(PublishError::SeqOutOfRange { seq: id.seq });
            }
            let frame = frame::encode_event(Some(id), name, data);
            let refuse = |reason: PublishError, out: &Appended| match reason {
                PublishError::Rejected { reason, .. } => PublishError::Rejected {
                    index,
                    reason,
                    stored: out.ids.to_vec(),
                },
                PublishError::PreludeTooLarge { reason, .. } => PublishError::PreludeTooLarge {
                    index,
                    reason,
                    stored: out.ids.to_vec(),
                },
                other => other,
            };
            if frame.len() > config.max_event_bytes {
                return Err(refuse(
                    PublishError::TooLarge {
                        size: frame.len(),
                        max: config.max_event_bytes,
                    },
                    out,
                ));
            }
            let name_str = name.map(EventName::as_str);
            if self.tracker.is_none()
                && let Some(factory) = &config.tracker_factory
            {
                self.tracker = factory.track(session, name_str, data);
            }
            if let Some(tracker) = self.tracker.as_mut()
                && let Err(refusal) = tracker.on_publish(name_str, data)
            {
                return Err(refuse(refusal.at(index), out));
            }
            self.store(id, frame, out);
        }
        self.after_append(out, now);
        Ok(())
    }

    /// Stores a frame encoded elsewhere at an explicit id (a backplane's log is the source of
    /// truth for order). A different epoch starts a new incarnation of the session.
    pub(crate) fn append_at(
        &mut self,
        id: EventId,
        frame: Bytes,
        out: &mut Appended,
        now: Now,
    ) -> Result<(), PublishError> {
        // Refuse before changing anything: a refused call must leave the session as it was.
        if id.seq == 0 || id.seq > MAX_SEQ {
            return Err(PublishError::SeqOutOfRange { seq: id.seq });
        }
        if id.epoch == self.epoch && id.seq <= self.head {
            return Err(PublishError::OutOfOrder {
                seq: id.seq,
                head: self.head,
            });
        }
        if id.epoch != self.epoch {
            self.new_epoch(id.epoch, out);
        }
        if id.seq != self.head + 1 {
            self.gapped = true;
        }
        self.store(id, frame, out);
        self.after_append(out, now);
        Ok(())
    }

    /// Shows the tracker a frame that came from a backplane's log (after it was stored), as a
    /// local publish shows it the event: installs one from the factory when the session has
    /// none. A tracker that lost part of the history sees nothing until it is rebuilt.
    pub(crate) fn follow(&mut self, session: &SessionId, config: &Config, frame: &[u8]) {
        self.from_log = true;
        if self.tracker_lost {
            return;
        }
        let Some(factory) = &config.tracker_factory else {
            return;
        };
        let Some((name, data)) = frame::decode_event(frame) else {
            return;
        };
        if self.tracker.is_none() {
            self.tracker = factory.track(session, name, &data);
        }
        if let Some(tracker) = self.tracker.as_mut()
            && let Err(refusal) = tracker.on_publish(name, &data)
        {
            // Every node judges an event before appending it, so only nodes configured
            // differently get here; the event is in the log either way.
            tracing::warn!(session = %session, reason = %refusal, "SSE backplane: the session's tracker refused an event from the log");
        }
    }

    fn store(&mut self, id: EventId, frame: Bytes, out: &mut Appended) {
        self.head = id.seq;
        out.added_bytes += frame.len();
        let ev = self.ring.push(id.seq, frame, self.read_upto);
        self.floor = self.floor.max(ev.last_seq);
        out.evicted.add(ev);
        out.ids.push(id);
    }

    fn after_append(&mut self, out: &mut Appended, now: Now) {
        if out.ids.is_empty() {
            return;
        }
        self.last_activity = now.at;
        self.referenced = true;
        if let Some(conn) = &self.conn {
            // Frames are pending from now unless some already were.
            let _ = conn.pending_since_ms.compare_exchange(
                0,
                now.ms,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            out.waker = conn.waker.take();
        }
    }

    /// Publishes a signal as stored events, rendered by the tracker when there is one.
    pub(crate) fn append_signal(
        &mut self,
        session: &SessionId,
        config: &Config,
        signal: &Signal<'_>,
        out: &mut Appended,
        now: Now,
    ) -> Result<(), PublishError> {
        let mut frames = Vec::new();
        match &self.tracker {
            Some(t) => t.stored_signal(signal, &mut frames),
            None => frames.push(signal.custom_json()),
        }
        self.append(
            session,
            config,
            &mut frames.iter().map(|d| (None, d.as_str())),
            out,
            now,
        )
    }

    /// The prelude (signal, snapshot, pending approvals) as encoded data-only frames, for a
    /// stream that continues after `cursor`. A request whose stored announcement follows the
    /// cursor is left out (the replay announces it), and silent requests are passed only to
    /// trackers that announce them in their own terms.
    pub(crate) fn put_prelude(&self, resync: Option<&Resync>, cursor: u64, buf: &mut BytesMut) {
        let silent = self
            .tracker
            .as_ref()
            .is_some_and(|t| t.prelude_includes_silent());
        let epoch = self.epoch;
        let before_cursor = |at: EventId| at.epoch != epoch || at.seq <= cursor;
        let mut pending = self.approvals.pending_infos(|p| match p.announced_at {
            Some(at) => before_cursor(at),
            None => silent || self.approvals.announced.contains(&p.info.id),
        });
        pending.extend(
            self.approvals
                .mirrored
                .iter()
                .filter(|m| m.announced_at.is_none_or(before_cursor))
                .map(|m| m.info.clone()),
        );
        let mut frames = Vec::new();
        match &self.tracker {
            Some(t) => t.prelude(resync, &pending, &mut frames),
            None => crate::signal::default_prelude(resync, &pending, &mut frames),
        }
        for f in &frames {
            buf.put_slice(&frame::encode_event(None, None, f));
        }
    }

    /// A stream's last words for `signal`, followed by a `retry:` hint.
    pub(crate) fn terminal(&self, signal: &Signal<'_>, retry_ms: u64) -> Bytes {
        let rendered = match &self.tracker {
            Some(t) => t.terminal(signal),
            None => Terminal::Frames(vec![signal.custom_json()]),
        };
        let mut buf = BytesMut::new();
        match rendered {
            Terminal::Frames(frames) => {
                for f in &frames {
                    buf.put_slice(&frame::encode_event(None, None, f));
                }
            }
            Terminal::Comment(text) => buf.put_slice(&frame::encode_comment(&text)),
        }
        frame::put_retry(&mut buf, retry_ms);
        buf.put_u8(b'\n');
        buf.freeze()
    }
}
