//! The session registry: finding or creating a session under the session caps (in total
//! and per identity), forgetting it, and the lookups on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dashmap::mapref::entry::Entry;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Broker, Inner};
use crate::approval::ApprovalStatus;
use crate::error::{ConnectError, PublishError};
use crate::id::{EventId, SessionId};
use crate::session::{Appended, Session, SessionState, end};

impl Inner {
    /// The session, created if absent (subject to the session limit).
    pub(crate) fn session(&self, id: &SessionId) -> Result<Arc<Session>, usize> {
        self.session_by(id, None).map_err(|e| match e {
            Limit::Total(max) | Limit::Subject(max) => max,
        })
    }

    /// The session, created if absent; a session created for `creator` counts against that
    /// identity's cap.
    pub(super) fn session_by(
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
}

impl Broker {
    /// Runs `f` under the session's lock, with the session created if needed; retries if the
    /// session was removed meanwhile.
    pub(super) fn with_session<R, E>(
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

    /// Whether a session exists.
    pub fn has_session(&self, session: &SessionId) -> bool {
        self.inner.sessions.contains_key(session)
    }

    /// The sessions that have a connection right now (a snapshot; O(sessions), so not for a
    /// hot path). For tools that act on connected sessions, such as a load generator
    /// publishing to each (`tether serve --self-publish`); serving needs none of it.
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

    /// Every session alive right now, with or without a connection (a snapshot; O(sessions),
    /// so not for a hot path). For a load generator publishing to every session, as
    /// `tether serve --self-publish-all` does.
    pub fn session_ids(&self) -> Vec<SessionId> {
        self.inner
            .sessions
            .iter()
            .map(|e| e.key().clone())
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
}

/// Which session limit refused a new session.
pub(super) enum Limit {
    Total(usize),
    Subject(usize),
}

impl Limit {
    /// The connect error for the limit.
    pub(super) fn into_connect(self) -> ConnectError {
        match self {
            Limit::Total(max) => ConnectError::TooManySessions { max },
            Limit::Subject(max) => ConnectError::TooManySessionsForSubject { max },
        }
    }
}

/// Why an operation under a session's lock did not run or failed.
pub(super) enum SessionErr<E> {
    /// The session did not exist and the session cap (the number given) kept it from being
    /// created.
    Limit(usize),
    /// The operation's own error.
    Inner(E),
}

impl SessionErr<PublishError> {
    /// The publish error, a session cap as [`PublishError::TooManySessions`].
    pub(super) fn into_publish(self) -> PublishError {
        match self {
            SessionErr::Limit(max) => PublishError::TooManySessions { max },
            SessionErr::Inner(e) => e,
        }
    }
}
