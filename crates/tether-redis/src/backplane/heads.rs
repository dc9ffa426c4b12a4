//! The head check: the sessions this node holds against Redis's heads and owners.

use tether_core::{BackplaneError, SessionId};

use super::Shared;
use super::reply::{parse_epoch, redis_error, unavailable};
use super::sync::{Claim, Why};

impl Shared {
    /// The head check and catch-up pass: for every session this node holds, compares the
    /// local position with Redis's and syncs what differs; gives up ownership of sessions
    /// whose connection is gone.
    pub(super) async fn check_heads(&self) -> Result<(), BackplaneError> {
        let owned: Vec<(SessionId, u64)> = self
            .owned
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        for chunk in owned.chunks(500) {
            let live = self.release_gone(chunk).await?;
            if live.is_empty() {
                continue;
            }
            let rows = self.read_heads(&live).await?;
            for ((sid, token), row) in live.iter().zip(rows) {
                let field = |i: usize| row.get(i).cloned().flatten();
                let (e, s, o, c) = (field(0), field(1), field(2), field(3));
                let mine = o.as_deref() == Some(self.cfg.node_id.as_str())
                    && c.as_deref() == Some(token.to_string().as_str());
                let in_step = match (&e, &s, self.broker.position(sid)) {
                    (Some(e), Some(s), Some((le, lh))) => {
                        parse_epoch(e).ok() == Some(le) && s.parse::<u64>().ok() == Some(lh)
                    }
                    _ => false,
                };
                if !(in_step && mine) {
                    self.settle(sid, *token).await?;
                }
            }
        }
        Ok(())
    }

    /// Gives up the sessions whose connection on this node has ended, at once rather than at
    /// the next head check: under the Reject policy a lease nobody uses would refuse a client
    /// on another node.
    pub(super) async fn release_ended(&self) -> Result<(), BackplaneError> {
        let ended: Vec<(SessionId, u64)> = self
            .owned
            .iter()
            .filter(|e| !self.broker.is_connected(e.key()))
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        for chunk in ended.chunks(500) {
            self.release_gone(chunk).await?;
        }
        Ok(())
    }

    /// Releases the sessions of `chunk` whose connection is gone; returns the live ones.
    async fn release_gone(
        &self,
        chunk: &[(SessionId, u64)],
    ) -> Result<Vec<(SessionId, u64)>, BackplaneError> {
        let mut live = Vec::with_capacity(chunk.len());
        for (sid, token) in chunk {
            if self.broker.is_connected(sid) {
                live.push((sid.clone(), *token));
                continue;
            }
            // A connect holds the session's lock from its claim until its stream is open:
            // decide under it, or a connect in between would lose its fresh claim.
            let _guard = self.lock(sid).await;
            if !self.broker.is_connected(sid)
                && self.owned.remove_if(sid, |_, t| t == token).is_some()
            {
                self.release(sid, *token).await?;
            }
        }
        Ok(live)
    }

    /// Reads epoch, head, owner node and owner connection of each live session in one
    /// pipeline, and refreshes their TTLs: a connected session's idle TTL pauses, its keys
    /// live while it is connected.
    async fn read_heads(
        &self,
        live: &[(SessionId, u64)],
    ) -> Result<Vec<Vec<Option<String>>>, BackplaneError> {
        let mut pipe = redis::pipe();
        for (sid, _) in live {
            pipe.cmd("HMGET")
                .arg(self.meta_key(sid))
                .arg("e")
                .arg("s")
                .arg("o")
                .arg("c");
            pipe.cmd("PEXPIRE")
                .arg(self.meta_key(sid))
                .arg(self.keep_ms())
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(self.log_key(sid))
                .arg(self.keep_ms())
                .ignore();
            // The Reject policy's lease lives while the connection does (a no-op without one).
            pipe.cmd("PEXPIRE")
                .arg(self.lease_key(sid))
                .arg(self.lease_ms())
                .ignore();
        }
        let mut con = self.cmd.get();
        tokio::time::timeout(self.cfg.op_deadline, pipe.query_async(&mut con))
            .await
            .map_err(|_| unavailable("the head check timed out"))?
            .map_err(redis_error)
    }

    /// Settles a session whose head or owner differs from this node's, under the session's
    /// lock on a fresh read (the pipeline's row may predate a connect on this node): ends
    /// the stream when another connection took the session over and its notice was lost,
    /// else fills the ring from the log.
    async fn settle(&self, sid: &SessionId, token: u64) -> Result<(), BackplaneError> {
        let _guard = self.lock(sid).await;
        if self.owned.get(sid).map(|t| *t.value()) != Some(token) {
            return Ok(());
        }
        let mut con = self.cmd.get();
        let owner: (Option<String>, Option<String>) = tokio::time::timeout(
            self.cfg.op_deadline,
            redis::cmd("HMGET")
                .arg(self.meta_key(sid))
                .arg("o")
                .arg("c")
                .query_async(&mut con),
        )
        .await
        .map_err(|_| unavailable("the head check timed out"))?
        .map_err(redis_error)?;
        let token_s = token.to_string();
        if owner.0.is_some()
            && (owner.0.as_deref() != Some(self.cfg.node_id.as_str())
                || owner.1.as_deref() != Some(token_s.as_str()))
        {
            if self.owned.remove_if(sid, |_, t| *t == token).is_some() {
                self.broker.supersede_local(sid);
            }
            return Ok(());
        }
        self.sync_locked(sid, Claim::IfNone(token), Why::Gap)
            .await
            .map(drop)
    }
}
