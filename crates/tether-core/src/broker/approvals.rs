//! Approvals: requesting one, deciding or cancelling it exactly once, reading and
//! long-polling it, and the broker-wide deadline map the driver fires.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::registry::SessionErr;
use super::{Broker, Inner};
use crate::approval::{
    ApprovalHandle, ApprovalInfo, ApprovalRequest, ApprovalStatus, Decision, PendingApproval,
    rfc3339_after,
};
use crate::error::{ApprovalError, DecideError, PublishError};
use crate::id::{SessionId, is_valid_id};
use crate::session::{Appended, Now, Session, SessionState};
use crate::signal::Signal;

impl Inner {
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
}

impl Inner {
    /// Whether a payload of `size` bytes may be stored: within the approval size limit, and
    /// with room in the memory budget.
    fn admit_payload(&self, size: usize) -> Result<(), ApprovalError> {
        let max_bytes = self.config.max_approval_bytes();
        if size > max_bytes {
            self.limits.refuse("approval_bytes");
            return Err(ApprovalError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        if !self.make_room() {
            return Err(ApprovalError::Publish(PublishError::MemoryBudget {
                budget: self.config.total_ring_bytes,
            }));
        }
        Ok(())
    }
}

/// The request's approval id, checked, or a random one.
pub(crate) fn approval_id(id: Option<String>) -> Result<String, ApprovalError> {
    match id {
        Some(id) if is_valid_id(&id) => Ok(id),
        Some(_) => Err(crate::id::InvalidId::new(crate::id::IdKind::ApprovalId).into()),
        None => Ok(format!("apr-{:016x}", rand::random::<u64>())),
    }
}

impl Broker {
    /// Asks a human for a decision. The request is stored in the session, announced in its
    /// stream (unless [`silent`](ApprovalRequest::silent)), and resolves exactly once.
    pub fn request_approval(
        &self,
        session: &SessionId,
        req: ApprovalRequest,
    ) -> Result<ApprovalHandle, ApprovalError> {
        let id = approval_id(req.id)?;
        // A deadline past what an Instant or a calendar date can hold would panic on addition.
        let timeout = req
            .timeout
            .unwrap_or(self.inner.config.approval_timeout)
            .min(crate::approval::MAX_TIMEOUT);
        self.inner.admit_payload(req.payload.len())?;
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

    /// Resolves a pending approval with `status`: a decision, or
    /// [`Cancelled`](ApprovalStatus::Cancelled); one past its deadline is settled as timed out
    /// instead ([`DecideError::Expired`]).
    pub fn resolve_approval(
        &self,
        session: &SessionId,
        approval_id: &str,
        status: ApprovalStatus,
    ) -> Result<ApprovalInfo, DecideError> {
        self.resolve(session, approval_id, status)
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
                    Some(a) => DecideError::AlreadyDecided(a.status.clone()),
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
}
