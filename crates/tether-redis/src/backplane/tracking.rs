//! Tracked sessions (AG-UI) across nodes. Two nodes publishing to one session must not make
//! its stream invalid, so a node judges its events on its tracker's copy as the ones after
//! its ring's head, and the append script stores them only if the log's head is still there
//! (compare and set); otherwise the node reads what the other appended and judges again.
//! Every node's tracker then sees the same events in the log's order.
//!
//! A node that meets a session late (or whose budget forgot it) rebuilds its tracker from a
//! checkpoint in the session's meta (`ck`, `t`) and the events after it. The node that
//! appends refreshes the checkpoint when the append script says it is due, often enough that
//! trimming the log never passes it.

use tether_core::{Broker, EventId, Judged, PublishError, SessionId};

use super::Shared;
use super::reply::{epoch_hex, parse_epoch, redis_error, unavailable};
use super::sync::{Claim, Why};
use tether_core::BackplaneError;

/// How many times an append refused because the log's head moved is judged again before the
/// publish gives up with 503 (each round first reads what the other nodes appended).
pub(super) const CAS_ROUNDS: usize = 16;

/// The compare-and-set arguments of a judged append: the epoch and head the events were
/// judged after; `('', 0)` for a session judged untracked (refused once another node made it
/// tracked), `('*', 0)` for a node that tracks nothing.
pub(super) fn expected(judged: &Judged) -> (String, u64) {
    match judged {
        Judged::After { head } => (epoch_hex(head.epoch), head.seq),
        Judged::Untracked => (String::new(), 0),
        _ => ("*".to_owned(), 0),
    }
}

/// The error of an append whose head kept moving for every round.
pub(super) fn contended() -> BackplaneError {
    unavailable("other nodes kept appending to the session; nothing was stored")
}

impl Shared {
    /// Runs one of the broker's judgements, rebuilding the session's tracker first when it
    /// lost part of the history. Called under the session's lock.
    pub(super) async fn judged<T>(
        &self,
        session: &SessionId,
        judge: impl Fn(&Broker) -> Result<(Judged, T), PublishError>,
    ) -> Result<(Judged, T), BackplaneError> {
        let first = judge(&self.broker)?;
        if first.0 != Judged::Rebuild {
            return Ok(first);
        }
        self.rebuild_tracker(session).await?;
        let (judged, value) = judge(&self.broker)?;
        // A rebuild always leaves a tracker that judges; a session forgotten again meanwhile
        // is judged on the next publish.
        let judged = if judged == Judged::Rebuild {
            Judged::Anywhere
        } else {
            judged
        };
        Ok((judged, value))
    }

    /// Reads what other nodes appended, after an append refused because the log's head
    /// moved. Called under the session's lock.
    pub(super) async fn catch_up(&self, session: &SessionId) -> Result<(), BackplaneError> {
        self.sync_locked(session, Claim::None, Why::Read)
            .await
            .map(drop)
    }

    /// Rebuilds the session's tracker from the checkpoint in Redis and the ring's events
    /// after it, the ring first brought up to the log. When the log no longer holds the
    /// events after the checkpoint (or there is none and the ring misses the start), the
    /// tracker starts afresh at the head, as one forgotten by a single node's budget does.
    /// Called under the session's lock.
    pub(super) async fn rebuild_tracker(&self, session: &SessionId) -> Result<(), BackplaneError> {
        self.sync_locked(session, Claim::None, Why::Read).await?;
        let mut con = self.cmd.get();
        let (epoch, ck, frames, tracked): (
            Option<String>,
            Option<u64>,
            Option<String>,
            Option<String>,
        ) = tokio::time::timeout(
            self.cfg.op_deadline,
            redis::cmd("HMGET")
                .arg(self.meta_key(session))
                .arg("e")
                .arg("ck")
                .arg("t")
                .arg("tk")
                .query_async(&mut con),
        )
        .await
        .map_err(|_| unavailable("reading the session's checkpoint timed out"))?
        .map_err(redis_error)?;
        let Some((ring_epoch, head)) = self.broker.position(session) else {
            return Ok(());
        };
        let checkpoint = match (epoch, ck, frames) {
            (Some(e), Some(ck), Some(frames)) if parse_epoch(&e).is_ok_and(|e| e == ring_epoch) => {
                serde_json::from_str::<Vec<String>>(&frames)
                    .ok()
                    .map(|f| (ck, f))
            }
            _ => None,
        };
        let (ck, frames) = checkpoint.unwrap_or_default();
        let at = EventId {
            epoch: ring_epoch,
            seq: ck,
        };
        if self.broker.rebuild_tracker(session, at, &frames)? {
            return Ok(());
        }
        if tracked.is_some() {
            tracing::warn!(session = %session, checkpoint = ck, "SSE backplane: the log no longer holds the events after the session's tracker checkpoint; its tracker starts afresh");
        }
        let at = EventId {
            epoch: ring_epoch,
            seq: head,
        };
        self.broker.rebuild_tracker(session, at, &[])?;
        Ok(())
    }

    /// Stores the session's tracker state as its checkpoint, after an append the script
    /// found it due for. Best effort: a checkpoint that is not stored is taken after a later
    /// append. Called under the session's lock.
    pub(super) async fn checkpoint(&self, session: &SessionId) {
        let Some((at, frames)) = self.broker.tracker_checkpoint(session) else {
            return;
        };
        let Ok(frames) = serde_json::to_string(&frames) else {
            return;
        };
        let mut inv = self.scripts.checkpoint.prepare_invoke();
        inv.key(self.meta_key(session))
            .arg(epoch_hex(at.epoch))
            .arg(at.seq)
            .arg(frames);
        let mut con = self.cmd.get();
        let stored: Result<Result<redis::Value, _>, _> =
            tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con)).await;
        if !matches!(stored, Ok(Ok(_))) {
            tracing::warn!(session = %session, "SSE backplane: storing the session's tracker checkpoint failed; a later append retries");
        }
    }
}
