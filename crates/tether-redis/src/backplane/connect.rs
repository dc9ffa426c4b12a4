//! Connecting: claiming the session in Redis, and undoing a claim the broker refused.

use redis::Value;
use tether_core::{
    BackplaneError, ConnectError, ConnectOptions, ConnectionPolicy, EventStream, LastEventId,
    SessionId,
};

use super::Shared;
use super::reply::{redis_error, unavailable};
use super::sync::{Arrival, Claim, Why};

impl Shared {
    pub(super) async fn connect(
        &self,
        session: &SessionId,
        opts: ConnectOptions,
    ) -> Result<EventStream, BackplaneError> {
        if let Some(raw) = opts.last_event_id.as_deref() {
            LastEventId::parse(raw).map_err(ConnectError::InvalidLastEventId)?;
        }
        if self.broker.is_draining() {
            return Err(self
                .broker
                .connect(session, opts)
                .err()
                .map_or_else(|| unavailable("draining"), BackplaneError::Connect));
        }
        let token = rand::random::<u64>() | 1;
        let guard = self.lock(session).await;
        // This node's connection that holds the session now, if any: a connect the broker
        // refuses (Reject policy, a superseded client coming back) must leave it in place.
        let previous = self.owned.insert(session.clone(), token);
        let who = Arrival::of(&opts);
        let claim = match self.broker.config().connection_policy() {
            ConnectionPolicy::Reject => Claim::Lease(token, &who),
            _ => Claim::Force(token, &who),
        };
        let synced = tokio::time::timeout(
            self.cfg.op_deadline,
            self.sync_locked(session, claim, Why::Read),
        )
        .await
        .map_err(|_| unavailable("reading the session from Redis timed out"))
        .and_then(|r| r);
        if let Err(e) = synced {
            // Redis did not answer. A resume this node's ring serves exactly is served from
            // it: the head check claims the session (or ends the stream, if another node
            // holds it) once Redis is back.
            if let BackplaneError::Unavailable(_) = e
                && let Some(stream) = self.serve_from_ring(session, &opts)
            {
                drop(guard);
                return Ok(stream);
            }
            // Asking Redis again would only add another deadline.
            if let Some(prev) = previous.filter(|_| self.broker.is_connected(session)) {
                self.owned.insert(session.clone(), prev);
            } else {
                self.owned.remove_if(session, |_, t| *t == token);
            }
            return Err(e);
        }
        if self.broker.tracker_lost(session)
            && let Err(e) = self.rebuild_tracker(session).await
        {
            // The stream opens anyway; its prelude lacks the snapshot until a later rebuild.
            tracing::warn!(session = %session, error = %e, "SSE backplane: rebuilding the session's tracker failed");
        }
        let result = self.broker.connect(session, opts);
        match result {
            Ok(stream) => {
                drop(guard);
                Ok(stream)
            }
            Err(e) => {
                self.hand_back(session, token, previous).await;
                drop(guard);
                Err(e.into())
            }
        }
    }

    /// The stream of a resume the local ring holds exactly, while Redis is out of reach.
    fn serve_from_ring(&self, session: &SessionId, opts: &ConnectOptions) -> Option<EventStream> {
        let last = opts.last_event_id.as_deref()?;
        if !self.broker.resumes_exactly(session, last) {
            return None;
        }
        self.broker.connect(session, opts.clone()).ok()
    }

    /// Undoes the claim of a connect the broker refused: the session goes back to the
    /// connection of this node that held it (when the broker still has it), else it is
    /// released. Called under the session's lock.
    pub(super) async fn hand_back(&self, session: &SessionId, token: u64, previous: Option<u64>) {
        match previous.filter(|_| self.broker.is_connected(session)) {
            Some(prev) => {
                if self.owned.get(session).is_some_and(|t| *t.value() == token) {
                    self.owned.insert(session.clone(), prev);
                }
                let mut con = self.cmd.get();
                let mut inv = self.scripts.restore.prepare_invoke();
                inv.key(self.meta_key(session))
                    .arg(&self.cfg.node_id)
                    .arg(token.to_string())
                    .arg(prev.to_string());
                let restored: Result<Result<Value, _>, _> =
                    tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con)).await;
                if !matches!(restored, Ok(Ok(_))) {
                    // The head check then sees a claim that is not the live connection's and
                    // ends it with `superseded`: the client reconnects, nothing is lost.
                    tracing::warn!(session = %session, "SSE backplane: could not hand the session back to its connection");
                }
            }
            None => {
                if self.owned.remove_if(session, |_, t| *t == token).is_some() {
                    let _ = self.release(session, token).await;
                }
            }
        }
    }

    pub(super) async fn release(
        &self,
        session: &SessionId,
        token: u64,
    ) -> Result<(), BackplaneError> {
        let mut con = self.cmd.get();
        let mut inv = self.scripts.release.prepare_invoke();
        inv.key(self.meta_key(session))
            .key(self.lease_key(session))
            .arg(&self.cfg.node_id)
            .arg(token.to_string());
        let _: Value = tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con))
            .await
            .map_err(|_| unavailable("release timed out"))?
            .map_err(redis_error)?;
        Ok(())
    }
}
