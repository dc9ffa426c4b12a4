//! The supervisor: keeps both links alive, keeps the status, proves the subscription still
//! carries messages, and runs the head check and the catch-up pass.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::Shared;

/// Health intervals a probe may take to come back before the subscription counts as lost:
/// a busy node's push queue may hold it back a moment.
const PROBE_PATIENCE: u32 = 3;

/// Pings both links (an idle manager would not reconnect by itself, a silent one is
/// rebuilt), probes the subscription, and runs the head check when due, after an outage and
/// after anything that may have lost a wake.
pub(super) async fn supervise(shared: Weak<Shared>, overflow: Arc<AtomicBool>) {
    let (health, head_every) = match shared.upgrade() {
        Some(s) => (s.cfg.health_interval, s.cfg.head_check_interval),
        None => return,
    };
    let mut tick = tokio::time::interval(health);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_check = Instant::now();
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let deadline = shared.cfg.op_deadline;
        let (cmd_up, sub_up) =
            futures_util::future::join(shared.cmd.check(deadline), shared.sub.check(deadline))
                .await;
        let up = cmd_up && sub_up;
        let became_up = shared.set_up(up) && up;
        if !up {
            continue;
        }
        shared.probe_subscription().await;
        if let Err(e) = shared.release_ended().await {
            tracing::warn!(error = %e, "SSE backplane: releasing ended connections failed; retrying");
        }
        if overflow.swap(false, Ordering::AcqRel) {
            shared.catch_up.store(true, Ordering::Release);
        }
        let due = last_check.elapsed() >= head_every;
        if became_up || due || shared.catch_up.swap(false, Ordering::AcqRel) {
            last_check = Instant::now();
            if let Err(e) = shared.check_heads().await {
                shared.catch_up.store(true, Ordering::Release);
                tracing::warn!(error = %e, "SSE backplane: head check failed; retrying");
            }
        }
    }
}

impl Shared {
    /// One step of the pub/sub liveness probe. When the probe in flight has not come back
    /// within [`PROBE_PATIENCE`] intervals, the subscription is rebuilt and a catch-up pass
    /// fetches what its wakes would have brought; then the next probe goes out.
    async fn probe_subscription(&self) {
        let sent = self.probe.sent.load(Ordering::Acquire);
        let back = self.probe.seen.load(Ordering::Acquire) == sent;
        let sent_at = *self.probe.sent_at.lock().unwrap_or_else(|e| e.into_inner());
        if sent != 0 && !back {
            let patience = self.cfg.health_interval * PROBE_PATIENCE;
            if sent_at.is_some_and(|at| at.elapsed() < patience) {
                return;
            }
            tracing::warn!(node = %self.cfg.node_id, "SSE backplane: the subscription stopped carrying messages; rebuilding it");
            if self.sub.rebuild(self.cfg.op_deadline).await.is_err() {
                return;
            }
            self.catch_up.store(true, Ordering::Release);
        }
        let nonce = sent.wrapping_add(1).max(1);
        let mut con = self.cmd.get();
        let published: Result<Result<i64, _>, _> = tokio::time::timeout(
            self.cfg.op_deadline,
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(format!("p {nonce}"))
                .query_async(&mut con),
        )
        .await;
        if matches!(published, Ok(Ok(_))) {
            self.probe.sent.store(nonce, Ordering::Release);
            *self.probe.sent_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    }

    /// Records a probe that came back through the subscription.
    pub(super) fn probe_returned(&self, nonce: u64) {
        self.probe.seen.store(nonce, Ordering::Release);
    }
}
