//! The seam for a backplane: something outside the broker (a shared log such as Redis) that
//! numbers a session's events for several nodes, while each node's ring stays the hot path.
//!
//! A backplane publishes into its log and then feeds the frames it got back into the local
//! ring with [`Broker::append_next`], which stores a frame only when it is the next one in
//! line, so a lost or delayed message can never leave a silent hole in a ring. When the log
//! no longer holds what a ring is missing, [`Broker::rebase`] records the loss, and every
//! cursor behind it gets a `tether.resync` instead of a renumbered stream.
//!
//! The HTTP layer talks to a backplane through the object-safe [`Backplane`] trait, so it
//! needs no dependency on the backplane's crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;

use crate::approval::{ApprovalInfo, ApprovalRequest, ApprovalStatus};
use crate::broker::{Broker, ConnectOptions};
use crate::error::{ApprovalError, ConnectError, DecideError, PublishError};
use crate::id::{Epoch, EventId, LastEventId, SessionId};
use crate::idempotency::{IdempotencyKey, Published};
use crate::session::{Appended, Event, SessionState, end};
use crate::stream::EventStream;

/// A boxed future of a [`Backplane`] call (keeps the trait object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A node's view of its backplane, for `/health/sse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackplaneStatus {
    /// Whether the node can reach its backplane (both its command and its pub/sub link).
    pub up: bool,
    /// This node's id in the backplane.
    pub node_id: String,
    /// Since when `up` has had its current value.
    pub since: SystemTime,
}

/// The `"backplane"` object of `/health/sse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackplaneHealth {
    /// `"up"` or `"down"`.
    pub status: &'static str,
    /// This node's id in the backplane.
    pub node_id: String,
    /// RFC 3339 time since when `status` holds.
    pub since: String,
}

impl BackplaneStatus {
    /// The `"backplane"` object of `/health/sse`:
    /// `{"status":"up"|"down","node_id":…,"since":…}`.
    pub fn health(&self) -> BackplaneHealth {
        let since = time::OffsetDateTime::from(self.since);
        let since = since
            .replace_nanosecond(since.millisecond() as u32 * 1_000_000)
            .unwrap_or(since);
        BackplaneHealth {
            status: if self.up { "up" } else { "down" },
            node_id: self.node_id.clone(),
            since: since
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

/// Why a publish or a connect through a backplane failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackplaneError {
    /// The broker refused the publish (the same errors as a local publish).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The broker refused the connection (the same errors as a local connect).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The backplane could not be reached within its deadline; nothing was stored (HTTP 503
    /// `backplane_unavailable` with `Retry-After`).
    #[error("the backplane is unavailable ({0}); retry in a few seconds")]
    Unavailable(String),
    /// The backplane refused to store more (Redis out of memory under `noeviction`); nothing
    /// was stored (HTTP 503 `backplane_full`).
    #[error("the backplane is full ({0}); nothing was stored; free memory or raise maxmemory")]
    Full(String),
    /// The approval request was refused (the same errors as a local request).
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// The decision was refused (the same errors as a local decision).
    #[error(transparent)]
    Decide(#[from] DecideError),
}

/// A shared log behind several brokers. The HTTP layer calls it, when one is configured,
/// instead of the broker's own publish and connect.
pub trait Backplane: Send + Sync + 'static {
    /// Appends events to the session's shared log and to this node's ring; returns their ids,
    /// which are valid on every node.
    fn publish<'a>(
        &'a self,
        session: &'a SessionId,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<Vec<EventId>, BackplaneError>>;

    /// Appends events once per `key`, on every node: a retry of the same publish stores
    /// nothing and gets the first answer's ids, the same key with other events
    /// [`PublishError::IdempotencyKeyReused`](crate::PublishError::IdempotencyKeyReused)
    /// (see [`Broker::publish_batch_once`](crate::Broker::publish_batch_once)).
    fn publish_once<'a>(
        &'a self,
        session: &'a SessionId,
        key: &'a IdempotencyKey,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<Published, BackplaneError>>;

    /// Claims the session's connection for this node, brings the local ring up to the shared
    /// log, then opens the stream as [`Broker::connect`] does.
    fn connect<'a>(
        &'a self,
        session: &'a SessionId,
        opts: ConnectOptions,
    ) -> BoxFuture<'a, Result<EventStream, BackplaneError>>;

    /// Stores an approval request for every node and announces it in the session's log; it
    /// is then decided, cancelled or timed out exactly once, on whichever node comes first.
    fn request_approval<'a>(
        &'a self,
        session: &'a SessionId,
        req: ApprovalRequest,
    ) -> BoxFuture<'a, Result<ApprovalInfo, BackplaneError>>;

    /// Resolves a pending approval with `status` (a decision or
    /// [`Cancelled`](ApprovalStatus::Cancelled)): the first resolution on any node wins, one
    /// whose deadline passed settles it as timed out ([`DecideError::Expired`]).
    fn resolve_approval<'a>(
        &'a self,
        session: &'a SessionId,
        approval_id: &'a str,
        status: ApprovalStatus,
    ) -> BoxFuture<'a, Result<ApprovalInfo, BackplaneError>>;

    /// The approval as it stands, after waiting up to `wait` for a pending one to be
    /// resolved on any node; `None` for an unknown approval.
    fn approval<'a>(
        &'a self,
        session: &'a SessionId,
        approval_id: &'a str,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Option<ApprovalInfo>, BackplaneError>>;

    /// Up or down, this node's id, and since when.
    fn status(&self) -> BackplaneStatus;
}

impl<T: Backplane> Backplane for Arc<T> {
    fn publish<'a>(
        &'a self,
        session: &'a SessionId,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<Vec<EventId>, BackplaneError>> {
        (**self).publish(session, events)
    }

    fn publish_once<'a>(
        &'a self,
        session: &'a SessionId,
        key: &'a IdempotencyKey,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<Published, BackplaneError>> {
        (**self).publish_once(session, key, events)
    }

    fn connect<'a>(
        &'a self,
        session: &'a SessionId,
        opts: ConnectOptions,
    ) -> BoxFuture<'a, Result<EventStream, BackplaneError>> {
        (**self).connect(session, opts)
    }

    fn request_approval<'a>(
        &'a self,
        session: &'a SessionId,
        req: ApprovalRequest,
    ) -> BoxFuture<'a, Result<ApprovalInfo, BackplaneError>> {
        (**self).request_approval(session, req)
    }

    fn resolve_approval<'a>(
        &'a self,
        session: &'a SessionId,
        approval_id: &'a str,
        status: ApprovalStatus,
    ) -> BoxFuture<'a, Result<ApprovalInfo, BackplaneError>> {
        (**self).resolve_approval(session, approval_id, status)
    }

    fn approval<'a>(
        &'a self,
        session: &'a SessionId,
        approval_id: &'a str,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Option<ApprovalInfo>, BackplaneError>> {
        (**self).approval(session, approval_id, wait)
    }

    fn status(&self) -> BackplaneStatus {
        (**self).status()
    }
}

/// What a session's tracker made of events a backplane is about to append
/// ([`Broker::judge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// The broker tracks no session (it has no tracker factory): the events may land
    /// anywhere in the log.
    Anywhere,
    /// The session has no tracker and these events install none: they may land anywhere,
    /// unless another node made the session tracked meanwhile (then judge again on the log's
    /// head). Plain sessions published from several nodes so pay no compare and set.
    Untracked,
    /// The tracker accepts the events as the ones that follow `head`: append them only if the
    /// log's head is still `head` (compare and set), else bring the ring up to the log and
    /// judge again.
    After {
        /// The ring's epoch and head the events were judged after.
        head: EventId,
    },
    /// The tracker did not see all of the session's history: rebuild it
    /// ([`Broker::rebuild_tracker`]) and judge again.
    Rebuild,
}

/// What [`Broker::append_next`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Stored: it was the next in line.
    Stored,
    /// Already there (same epoch, at or below the head): dropped.
    Duplicate,
    /// Not stored: something is missing between the ring's head and this frame, or the frame
    /// belongs to another epoch than the ring's. The caller fills from its log (or
    /// [`rebase`](Broker::rebase)s) and tries again.
    Gap {
        /// The ring's epoch.
        epoch: Epoch,
        /// The ring's head.
        head: u64,
    },
}

impl crate::config::Config {
    /// The ring bound by bytes (a backplane bounds its log the same way).
    pub fn ring_max_bytes(&self) -> usize {
        self.ring_max_bytes
    }

    /// The idle TTL of a session (a backplane expires its keys after it).
    pub fn session_ttl(&self) -> std::time::Duration {
        self.session_ttl
    }
}

impl Broker {
    /// Runs `f` under the session's lock, with the session created if needed.
    fn locked<R>(
        &self,
        id: &SessionId,
        mut f: impl FnMut(&mut SessionState) -> Result<R, PublishError>,
    ) -> Result<R, PublishError> {
        loop {
            let session = self
                .inner
                .session(id)
                .map_err(|max| PublishError::TooManySessions { max })?;
            let mut st = session.state.lock();
            if st.removed {
                continue;
            }
            return f(&mut st);
        }
    }

    /// Stores a frame numbered by a backplane only when it directly follows the session's
    /// head in the same epoch; creates the session if needed. The frame must be a complete
    /// SSE frame whose `id:` line is `id`.
    pub fn append_next(
        &self,
        session: &SessionId,
        id: EventId,
        frame: Bytes,
    ) -> Result<Placed, PublishError> {
        let now = self.inner.now();
        let mut out = Appended::default();
        let result = self.locked(session, |st| {
            if id.epoch != st.epoch || id.seq > st.head + 1 {
                return Ok(Placed::Gap {
                    epoch: st.epoch,
                    head: st.head,
                });
            }
            if id.seq <= st.head {
                return Ok(Placed::Duplicate);
            }
            st.append_at(id, frame.clone(), &mut out, now)?;
            st.follow(session, &self.inner.config, &frame);
            if let Some(notice) = ApprovalNotice::read(&frame) {
                let max = self.inner.config.max_pending_approvals;
                match notice {
                    ApprovalNotice::Requested(info) => st.approvals.mirror(info, Some(id), max),
                    ApprovalNotice::Resolved(aid) => st.approvals.unmirror(&aid),
                }
                self.inner.settle_state(st);
            }
            self.inner.enforce_budget(st, &mut out);
            Ok(Placed::Stored)
        });
        self.inner.account(out);
        result
    }

    /// Replaces what this node knows of the session's pending approvals that a backplane
    /// stores with what the store holds now (a connect reads them with the log), each with the
    /// id of the event that announced it. Between reads the ring keeps them current itself:
    /// [`append_next`](Self::append_next) learns each `tether.approval.requested` and
    /// `tether.approval.resolved` it stores. A stream's prelude re-announces them like the
    /// broker's own.
    pub fn mirror_approvals(
        &self,
        session: &SessionId,
        pending: Vec<(ApprovalInfo, Option<EventId>)>,
    ) -> Result<(), PublishError> {
        let max = self.inner.config.max_pending_approvals;
        let mut pending = Some(pending);
        self.locked(session, |st| {
            if st.approvals.mirrored.is_empty() && pending.as_ref().is_some_and(Vec::is_empty) {
                return Ok(());
            }
            st.approvals
                .set_mirrored(pending.take().unwrap_or_default(), max);
            self.inner.settle_state(st);
            Ok(())
        })
    }

    /// Records that the session's history up to and including `upto` is not available on
    /// this node: the ring is emptied and its head set to `upto` (in `upto`'s epoch). A
    /// connection whose cursor is in another epoch gets a resync with reason `epoch`; one
    /// behind `upto` in the same epoch gets reason `evicted`. Nothing happens when the ring is
    /// already in that epoch at or past `upto`. Returns whether anything changed.
    pub fn rebase(&self, session: &SessionId, upto: EventId) -> Result<bool, PublishError> {
        let mut out = Appended::default();
        let result = self.locked(session, |st| {
            if upto.epoch == st.epoch && upto.seq <= st.head {
                return Ok(false);
            }
            // The ring holds nothing past `upto` here (the head is below it or in another
            // epoch), so this empties it and moves the head and the lost-history floor.
            st.mark_lost(upto.epoch, upto.seq, &mut out);
            self.inner.settle_bytes(&mut out);
            Ok(true)
        });
        self.inner.account(out);
        result
    }

    /// The session's epoch and head on this node (head 0 before any event), if the session
    /// exists here.
    pub fn position(&self, session: &SessionId) -> Option<(Epoch, u64)> {
        let sess = self.inner.sessions.get(session).map(|s| s.clone())?;
        let st = sess.state.lock();
        Some((st.epoch, st.head))
    }

    /// Whether a resume from `last_event_id` can be served exactly from this node's ring
    /// alone: the id is in the ring's epoch and nothing after it was evicted. A backplane
    /// that cannot reach its store serves such a resume from the ring instead of refusing.
    pub fn resumes_exactly(&self, session: &SessionId, last_event_id: &str) -> bool {
        let Ok(Some(LastEventId::Known(id))) = LastEventId::parse(last_event_id) else {
            return false;
        };
        let Some(sess) = self.inner.sessions.get(session).map(|s| s.clone()) else {
            return false;
        };
        let st = sess.state.lock();
        id.epoch == st.epoch && id.seq <= st.head && id.seq >= st.floor
    }

    /// Whether the session has a connection on this node.
    pub fn is_connected(&self, session: &SessionId) -> bool {
        let Some(sess) = self.inner.sessions.get(session).map(|s| s.clone()) else {
            return false;
        };
        sess.state.lock().conn.is_some()
    }

    /// Ends the session's connection on this node with the `superseded` signal, because a
    /// connection on another node took the session over. Returns whether one was open.
    pub fn supersede_local(&self, session: &SessionId) -> bool {
        let Some(sess) = self.inner.sessions.get(session).map(|s| s.clone()) else {
            return false;
        };
        let conn = sess.state.lock().conn.take();
        match conn {
            Some(conn) => {
                if let Some(w) = conn.end(end::SUPERSEDED) {
                    w.wake();
                }
                true
            }
            None => false,
        }
    }
}

/// An approval notice a backplane's log carries, as the broker writes it for sessions
/// without a tracker (`{"type":"CUSTOM","name":"tether.approval.…","value":…}`).
enum ApprovalNotice {
    Requested(ApprovalInfo),
    Resolved(String),
}

impl ApprovalNotice {
    const REQUESTED: &'static [u8] =
        br#"data: {"type":"CUSTOM","name":"tether.approval.requested","value":"#;
    const RESOLVED: &'static [u8] =
        br#"data: {"type":"CUSTOM","name":"tether.approval.resolved","value":"#;

    /// The notice in a stored frame (`id:` line, then one `data:` line), if it is one: a
    /// prefix test for every other frame.
    fn read(frame: &[u8]) -> Option<Self> {
        let start = frame.iter().position(|&b| b == b'\n')? + 1;
        let rest = &frame[start..];
        let requested = rest.starts_with(Self::REQUESTED);
        if !requested && !rest.starts_with(Self::RESOLVED) {
            return None;
        }
        let line = &rest[b"data: ".len()..];
        let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
        #[derive(serde::Deserialize)]
        struct Custom<'a> {
            #[serde(borrow)]
            value: &'a serde_json::value::RawValue,
        }
        #[derive(serde::Deserialize)]
        struct Resolved {
            id: String,
        }
        let value = serde_json::from_slice::<Custom<'_>>(line).ok()?.value.get();
        if requested {
            let text = format!(r#"{},"status":"pending"}}"#, value.strip_suffix('}')?);
            ApprovalInfo::from_json(&text).ok().map(Self::Requested)
        } else {
            serde_json::from_str::<Resolved>(value)
                .ok()
                .map(|r| Self::Resolved(r.id))
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn frame(id: EventId) -> Bytes {
        crate::frame::encode_event(Some(id), None, "{}")
    }

    async fn next_text(stream: &mut EventStream) -> String {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("a chunk")
            .expect("open");
        String::from_utf8(chunk.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn append_next_stores_only_the_next_frame() {
        let broker = Broker::builder().start().expect("valid config");
        let s = SessionId::new("s").unwrap();
        let e = Epoch::from_u64(0xe1);
        broker.rebase(&s, EventId { epoch: e, seq: 0 }).unwrap();
        let at = |seq| EventId { epoch: e, seq };
        assert_eq!(
            broker.append_next(&s, at(1), frame(at(1))),
            Ok(Placed::Stored)
        );
        assert_eq!(
            broker.append_next(&s, at(1), frame(at(1))),
            Ok(Placed::Duplicate)
        );
        assert_eq!(
            broker.append_next(&s, at(3), frame(at(3))),
            Ok(Placed::Gap { epoch: e, head: 1 })
        );
        let other = EventId {
            epoch: Epoch::from_u64(0xe2),
            seq: 1,
        };
        assert_eq!(
            broker.append_next(&s, other, frame(other)),
            Ok(Placed::Gap { epoch: e, head: 1 })
        );
        assert_eq!(broker.position(&s), Some((e, 1)), "a gap stores nothing");
        assert_eq!(
            broker.append_next(&s, at(2), frame(at(2))),
            Ok(Placed::Stored)
        );
        assert_eq!(broker.position(&s), Some((e, 2)));
    }

    #[tokio::test]
    async fn rebase_resyncs_cursors_behind_it() {
        let broker = Broker::builder()
            .without_heartbeats()
            .start()
            .expect("valid config");
        let s = SessionId::new("s").unwrap();
        let e = Epoch::from_u64(0xe1);
        let at = |seq| EventId { epoch: e, seq };
        broker.rebase(&s, at(0)).unwrap();
        broker.append_next(&s, at(1), frame(at(1))).unwrap();
        let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
        next_text(&mut stream).await; // retry:
        assert!(next_text(&mut stream).await.starts_with("id: e1-1\n"));

        // Seqs 2..=4 are lost: the stream says so, then continues at 5.
        assert_eq!(broker.rebase(&s, at(4)), Ok(true));
        assert_eq!(broker.rebase(&s, at(3)), Ok(false), "never backwards");
        broker.append_next(&s, at(5), frame(at(5))).unwrap();
        let text = next_text(&mut stream).await;
        assert!(
            text.contains("tether.resync") && text.contains("evicted"),
            "{text}"
        );
        assert!(text.contains("id: e1-5\n"), "{text}");

        // Another epoch: reason epoch.
        let e2 = EventId {
            epoch: Epoch::from_u64(0xe2),
            seq: 0,
        };
        assert_eq!(broker.rebase(&s, e2), Ok(true));
        let text = next_text(&mut stream).await;
        assert!(
            text.contains("tether.resync") && text.contains("\"epoch\""),
            "{text}"
        );
        assert!(broker.is_connected(&s));
        assert!(broker.supersede_local(&s));
        let text = next_text(&mut stream).await;
        assert!(text.contains("tether.superseded"), "{text}");
    }

    #[tokio::test]
    async fn resumes_exactly_only_from_an_id_the_ring_still_follows() {
        let broker = Broker::builder()
            .ring_max_events(3)
            .start()
            .expect("valid config");
        let s = SessionId::new("s").unwrap();
        let e = Epoch::from_u64(0xe1);
        let at = |seq| EventId { epoch: e, seq };
        assert!(!broker.resumes_exactly(&s, "e1-0"), "no session here");
        broker.rebase(&s, at(0)).unwrap();
        for seq in 1..=5 {
            broker.append_next(&s, at(seq), frame(at(seq))).unwrap();
        }
        // The ring holds 3..=5: a cursor at 2 misses nothing, one at 1 misses seq 2.
        assert!(broker.resumes_exactly(&s, "e1-2"));
        assert!(broker.resumes_exactly(&s, "e1-5"));
        assert!(!broker.resumes_exactly(&s, "e1-1"), "seq 2 was evicted");
        assert!(!broker.resumes_exactly(&s, "e1-6"), "past the head");
        assert!(!broker.resumes_exactly(&s, "e2-3"), "another epoch");
        assert!(!broker.resumes_exactly(&s, "not-ours"), "a foreign id");
    }
}
