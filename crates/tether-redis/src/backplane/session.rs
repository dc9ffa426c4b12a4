//! Per-session keys and locks.

use std::sync::Arc;

use tether_core::SessionId;
use tether_core::idempotency::IdempotencyKey;

use super::Shared;
use super::reply::epoch_hex;

impl Shared {
    pub(super) fn meta_key(&self, s: &SessionId) -> String {
        format!("{}:{{s:{s}}}:meta", self.cfg.prefix)
    }

    pub(super) fn log_key(&self, s: &SessionId) -> String {
        format!("{}:{{s:{s}}}:log", self.cfg.prefix)
    }

    /// The session's approvals: id -> `'<announcing event id or -> <json>'`.
    pub(super) fn approvals_key(&self, s: &SessionId) -> String {
        format!("{}:{{s:{s}}}:appr", self.cfg.prefix)
    }

    /// The session's pending approvals: id -> deadline (ms since the Unix epoch).
    pub(super) fn pending_key(&self, s: &SessionId) -> String {
        format!("{}:{{s:{s}}}:apend", self.cfg.prefix)
    }

    /// The session's resolved approvals: id -> when (kept to `decided_approvals_kept`).
    pub(super) fn resolved_key(&self, s: &SessionId) -> String {
        format!("{}:{{s:{s}}}:adone", self.cfg.prefix)
    }

    /// Every node's index of approval deadlines: `'<session> <approval>'` -> deadline (ms), so
    /// any node settles a deadline its creator did not live to see. Outside the sessions'
    /// slots: kept beside the scripts, not in them.
    pub(super) fn due_key(&self) -> String {
        format!("{}:approvals:due", self.cfg.prefix)
    }

    /// The Reject policy's lease on the session's connection.
    pub(super) fn lease_key(&self, s: &SessionId) -> String {
        format!("{}:{{s:{s}}}:lease", self.cfg.prefix)
    }

    /// How long a session's meta and log live after a refresh: the TTL and an eighth of it
    /// more, as the scripts' `keep_ms`, since an append refreshes them only once an eighth of
    /// the TTL passed since the last append that did.
    pub(super) fn keep_ms(&self) -> u64 {
        self.ttl_ms.saturating_add(self.ttl_ms / 8)
    }

    /// How long a lease lives without a refresh: three head checks, so one slow check does
    /// not let another client in, and a crashed node's sessions free up soon after.
    pub(super) fn lease_ms(&self) -> u64 {
        (self.cfg.head_check_interval.as_millis() as u64)
            .saturating_mul(3)
            .max(1)
    }

    /// The supersede grace in ms, as the sync script compares it.
    pub(super) fn grace_ms(&self) -> u64 {
        self.broker.config().supersede_grace().as_millis() as u64
    }

    /// The record of a publish's idempotency key (without a key, a name the script does not
    /// touch, in the session's slot all the same).
    pub(super) fn idempotency_key(&self, s: &SessionId, key: Option<&IdempotencyKey>) -> String {
        let key = key.map_or("", IdempotencyKey::as_str);
        format!("{}:{{s:{s}}}:idem:{key}", self.cfg.prefix)
    }

    pub(super) async fn lock(&self, s: &SessionId) -> SessionGuard<'_> {
        let m = self
            .locks
            .entry(s.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let guard = m.clone().lock_owned().await;
        SessionGuard {
            shared: self,
            session: s.clone(),
            guard: Some(guard),
        }
    }

    pub(super) fn try_lock(&self, s: &SessionId) -> Option<SessionGuard<'_>> {
        let m = self
            .locks
            .entry(s.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let guard = SessionGuard {
            shared: self,
            session: s.clone(),
            guard: m.try_lock_owned().ok(),
        };
        guard.guard.is_some().then_some(guard)
    }

    /// The epoch and head this node holds, as the scripts' fence takes them. A session with
    /// nothing local (head 0) claims no epoch.
    pub(super) fn seen(&self, s: &SessionId) -> (String, u64) {
        match self.broker.position(s) {
            Some((e, h)) if h > 0 => (epoch_hex(e), h),
            _ => (String::new(), 0),
        }
    }
}

/// Holds one session's backplane lock; forgets the lock when nobody else waits for it.
pub(super) struct SessionGuard<'a> {
    shared: &'a Shared,
    session: SessionId,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        self.shared
            .locks
            .remove_if(&self.session, |_, m| Arc::strong_count(m) == 1);
    }
}
