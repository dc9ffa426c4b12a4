//! A connection's stream of ready-to-write bytes.
//!
//! The stream is a cursor into its session's ring plus a wake-up: publishing appends under
//! the session lock and wakes it; when polled, it takes every frame after its cursor in one go
//! (coalesced into one chunk) and advances. Replay and live delivery are the same read, so the
//! hand-off between them can neither lose nor repeat an event.
//!
//! Heartbeats use one `tokio::time::Sleep` per connection, created on the first idle poll and
//! re-armed lazily: writes only record the time, and when the sleep fires early (because
//! something was written meanwhile) it is pushed to `last_write + interval`. A busy connection
//! therefore costs at most one timer operation per interval, and an idle one exactly one per
//! heartbeat, on tokio's hierarchical timer wheel (O(1) insert and cancel), which keeps
//! 100,000 idle connections cheap without a task per connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use crate::broker::Inner;
use crate::config::HeartbeatStyle;
use crate::frame;
use crate::id::EventId;
use crate::resume::{Reader, Standing};
use crate::session::{ConnShared, Session, end};
use crate::signal::Signal;

/// The bytes of one SSE connection, ready to write: `retry:` first, then the prelude or
/// replay, then live events and heartbeats. It ends after a final signal when superseded or
/// drained, and at once when the connection timed out or the session was removed.
///
/// Dropping it (the client went away) frees the session's connection slot.
#[must_use = "a stream delivers nothing unless polled"]
pub struct EventStream {
    inner: Arc<Inner>,
    session: Arc<Session>,
    conn: Arc<ConnShared>,
    epoch: crate::id::Epoch,
    cursor: u64,
    /// Whether the client's last id is `<epoch>-0` (it sent one, or a resync moved it there),
    /// which the cursor alone cannot tell from having no id.
    zero_id: bool,
    opening: Option<Bytes>,
    heartbeat: Option<Pin<Box<Sleep>>>,
    last_write: Instant,
    /// Whether the last poll handed the server a chunk: dropped long after that, the stream
    /// was waiting on a write its client never took.
    handed_out: bool,
    done: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("session", &self.session.id)
            .field("cursor", &self.cursor)
            .field("done", &self.done)
            .finish()
    }
}

/// Where a new stream starts: placed under the session lock at connect.
pub(crate) struct Position {
    pub(crate) epoch: crate::id::Epoch,
    pub(crate) cursor: u64,
    /// The client's last id is `<epoch>-0`.
    pub(crate) zero_id: bool,
}

pub(crate) fn heartbeat_frame(style: &HeartbeatStyle, tracked: bool) -> Bytes {
    match style {
        HeartbeatStyle::Event(name) if !tracked => {
            frame::encode_event(None, Some(name), r#"{"type":"heartbeat"}"#)
        }
        _ => Bytes::from_static(b": keepalive\n\n"),
    }
}

impl EventStream {
    pub(crate) fn new(
        inner: Arc<Inner>,
        session: Arc<Session>,
        conn: Arc<ConnShared>,
        at: Position,
        opening: Bytes,
        now: Instant,
    ) -> Self {
        Self {
            inner,
            session,
            conn,
            epoch: at.epoch,
            cursor: at.cursor,
            zero_id: at.zero_id,
            opening: Some(opening),
            heartbeat: None,
            last_write: now,
            handed_out: false,
            done: false,
        }
    }

    /// The session this stream belongs to.
    pub fn session(&self) -> &crate::id::SessionId {
        &self.session.id
    }

    /// The id of the last stored event this stream has written (or will resume after).
    pub fn last_event_id(&self) -> Option<EventId> {
        (self.cursor > 0 || self.zero_id).then_some(EventId {
            epoch: self.epoch,
            seq: self.cursor,
        })
    }

    /// Marks the connection as ended by an error the server met while writing (anything but
    /// the client going away), so it is counted as `sse_disconnects_total{reason="error"}` and
    /// logged as "SSE error" when the stream is dropped.
    pub fn fail(&mut self, error: &dyn std::fmt::Display) {
        crate::session::conn_event!(warn, *self.conn, reason = "error", error = %error, "SSE error");
        let _ = self.conn.end(end::ERROR);
    }

    /// Marks the connection as ended because its client stopped reading (the kernel's
    /// `TCP_USER_TIMEOUT` gave up on it, say), so it is counted as
    /// `sse_disconnects_total{reason="timeout"}` and logged as "SSE keepalive timeout", as
    /// when the broker's own sweep finds it.
    pub fn timed_out(&mut self) {
        if self.conn.end_reason() == end::LIVE {
            self.inner.log_keepalive_timeout(&self.conn);
            let _ = self.conn.end(end::TIMEOUT);
        }
    }

    /// Marks the connection as ended at its token's expiry, so it is counted and logged
    /// with `reason="token_expired"`.
    #[cfg(feature = "http")]
    pub(crate) fn token_expired(&mut self) {
        let _ = self.conn.end(end::TOKEN_EXPIRED);
    }

    /// Takes every frame after the cursor, with a resync first if the cursor fell out of the
    /// ring (the client was too slow) or the session started a new epoch.
    fn read(&mut self) -> Option<Bytes> {
        let cap = self.inner.config.max_chunk_bytes;
        let mut st = self.session.state.lock();
        let mut prefix: Option<BytesMut> = None;
        let at = Standing::Reading(EventId {
            epoch: self.epoch,
            seq: self.cursor,
        });
        if let Some(lost) = at.lost(&st) {
            if st.tracker.as_ref().is_some_and(|t| t.resync_ends_stream()) {
                drop(st);
                return Some(self.end_lagged());
            }
            let reader = Reader {
                at,
                last_event_id: self.last_event_id().map(|id| id.to_string()),
                prelude_always: false,
            };
            let mut buf = BytesMut::new();
            let placed = reader.place(&st, Some(lost), &mut buf);
            self.epoch = placed.position.epoch;
            self.cursor = placed.position.cursor;
            self.zero_id = placed.position.zero_id;
            let reason = lost.reason.as_str();
            self.inner.mx().resyncs(reason).increment(1);
            crate::session::conn_event!(info, *self.conn, reason, "SSE resync");
            prefix = Some(buf);
        }
        let chunk = st.ring.read_after(self.cursor, cap);
        if let Some(c) = &chunk {
            self.cursor = c.last_seq;
            st.read_upto = st.read_upto.max(c.last_seq);
        }
        if self.cursor >= st.head {
            self.conn.pending_since_ms.store(0, Ordering::Release);
        }
        drop(st);
        #[cfg(test)]
        tests::after_unlock();
        if let Some(c) = &chunk {
            self.inner.mx().delivered.increment(c.frames);
        }
        match (prefix, chunk) {
            (None, None) => None,
            (None, Some(c)) => Some(c.bytes),
            (Some(p), None) => Some(p.freeze()),
            (Some(mut p), Some(c)) => {
                p.extend_from_slice(&c.bytes);
                Some(p.freeze())
            }
        }
    }

    /// Ends a stream whose session wants resyncs on a fresh response: a `retry:` hint, then
    /// the end. The client reconnects with its last id and gets the resync there.
    fn end_lagged(&mut self) -> Bytes {
        self.done = true;
        self.inner.finish_connection(&self.conn, "lagged");
        crate::session::conn_event!(
            info,
            *self.conn,
            reason = "lagged",
            "SSE resync on reconnect: the connection fell behind the ring"
        );
        let mut buf = BytesMut::new();
        frame::put_retry(&mut buf, self.inner.retry_hint_ms());
        buf.extend_from_slice(b"\n");
        buf.freeze()
    }

    fn terminal(&mut self, reason: u8) -> Option<Bytes> {
        self.done = true;
        // The connection is over for the broker now, even if the body lingers until the
        // framework drops it.
        self.inner
            .finish_connection(&self.conn, reason_label(reason));
        let st = self.session.state.lock();
        match reason {
            end::SUPERSEDED => {
                let retry = self.inner.config.reconnect_backoff_max.as_millis() as u64;
                Some(st.terminal(&Signal::Superseded, retry))
            }
            end::DRAIN => {
                let retry_ms = self.conn.drain_retry_ms.load(Ordering::Relaxed);
                Some(st.terminal(&Signal::Drain { retry_ms }, retry_ms))
            }
            _ => None,
        }
    }

    fn heartbeat(&self) -> Bytes {
        let style = &self.inner.config.heartbeat_style;
        let tracked = matches!(style, HeartbeatStyle::Event(_))
            && self.session.state.lock().tracker.is_some();
        heartbeat_frame(style, tracked)
    }
}

impl Stream for EventStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        let polled = this.poll_chunk(cx);
        this.handed_out = matches!(polled, Poll::Ready(Some(_)));
        polled
    }
}

impl EventStream {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self;
        if this.done {
            return Poll::Ready(None);
        }
        let now = this.inner.now();
        this.conn.last_poll_ms.store(now.ms, Ordering::Release);
        if let Some(opening) = this.opening.take() {
            this.last_write = now.at;
            return Poll::Ready(Some(opening));
        }
        // Register before looking, so a publish or an end signal in between still wakes us.
        this.conn.waker.register(cx.waker());
        let reason = this.conn.end_reason();
        if reason != end::LIVE {
            return Poll::Ready(this.terminal(reason));
        }
        if let Some(chunk) = this.read() {
            this.last_write = now.at;
            return Poll::Ready(Some(chunk));
        }
        let Some(interval) = this.inner.config.keepalive_interval else {
            return Poll::Pending;
        };
        let last_write = this.last_write;
        let sleep = this
            .heartbeat
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(last_write + interval)));
        while sleep.as_mut().poll(cx).is_ready() {
            let due = this.last_write + interval;
            if now.at >= due {
                this.last_write = now.at;
                sleep.as_mut().reset(now.at + interval);
                // Register the new deadline before returning.
                let _ = sleep.as_mut().poll(cx);
                this.inner.mx().heartbeats.increment(1);
                return Poll::Ready(Some(this.heartbeat()));
            }
            sleep.as_mut().reset(due);
        }
        Poll::Pending
    }
}

/// The `reason` label of `sse_disconnects_total` for an end flag.
fn reason_label(end_flag: u8) -> &'static str {
    match end_flag {
        end::SUPERSEDED => "superseded",
        end::DRAIN => "drain",
        end::TIMEOUT => "timeout",
        end::CLOSED => "removed",
        end::ERROR => "error",
        end::TOKEN_EXPIRED => "token_expired",
        _ => "client_closed",
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // A server that drops the stream without saying why (hyper and actix-web on a write
        // error) leaves it to the stream's own state: frames left unread for long mean the
        // client stalled, not that it left.
        if self.conn.end_reason() == end::LIVE
            && self.inner.had_stalled(&self.conn, self.handed_out)
        {
            self.timed_out();
        }
        let reason = reason_label(self.conn.end_reason());
        {
            let mut st = self.session.state.lock();
            if st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.conn)) {
                st.conn = None;
                st.last_activity = Instant::now();
            }
        }
        self.inner.finish_connection(&self.conn, reason);
    }
}

#[cfg(test)]
mod tests {
    //! The order of a poll, checked by running a publish at the first moment one can land:
    //! right after a read released the session lock.

    use std::cell::RefCell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use futures_core::Stream;

    use crate::{Broker, ConnectOptions, SessionId};

    thread_local! {
        static AFTER_UNLOCK: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    pub(super) fn after_unlock() {
        if let Some(f) = AFTER_UNLOCK.with(|h| h.borrow_mut().take()) {
            f();
        }
    }

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_publish_right_after_an_empty_read_wakes_the_parked_reader() {
        let (broker, _driver) = Broker::builder()
            .without_heartbeats()
            .build()
            .expect("valid config");
        let s = SessionId::new("order").unwrap();
        let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut poll = |stream: &mut crate::EventStream| Pin::new(stream).poll_next(&mut cx);
        use std::pin::Pin;
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(_))), "retry:");
        assert!(poll(&mut stream).is_pending());
        // The first publish takes the registered waker and wakes it.
        broker.publish(&s, &1).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(_))));
        // The next read finds nothing; a publish lands just after it released the lock.
        let (b, s2) = (broker.clone(), s.clone());
        AFTER_UNLOCK.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                b.publish(&s2, &2).unwrap();
            }))
        });
        assert!(poll(&mut stream).is_pending());
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "the waker was registered before the read, so that publish woke it"
        );
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(_))));
    }
}
