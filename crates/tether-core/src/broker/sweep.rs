//! The driver's periodic sweep: connections whose reader stalled are dropped within the
//! client timeout, and idle sessions expire after their TTL.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Inner;
use crate::session::{ConnShared, Session, end};

impl Inner {
    /// The runbook's "SSE keepalive timeout" line for a connection that stopped reading.
    pub(crate) fn log_keepalive_timeout(&self, conn: &ConnShared) {
        crate::session::conn_event!(
            warn,
            *conn,
            reason = "timeout",
            duration_s = conn.opened.elapsed().as_secs_f64(),
            timeout_s = self.config.client_timeout.as_secs_f64(),
            "SSE keepalive timeout"
        );
    }

    /// Whether a connection whose server dropped it without saying why had stalled: frames
    /// waited unread for at least half the client timeout, or the server took a chunk and
    /// never came back for the next one for as long (its write to the client never ended:
    /// the stream had handed over every frame, so none was left pending). The kernel's
    /// `TCP_USER_TIMEOUT` (the client timeout) cuts such a client about one timeout after
    /// its socket filled, while the server may have taken frames into its own buffer a little
    /// later, so the whole timeout would be a coin toss.
    pub(crate) fn had_stalled(&self, conn: &ConnShared, handed_out: bool) -> bool {
        let now = self.now().ms;
        let half_timeout_ms = self.config.client_timeout.as_millis() as u64 / 2;
        let pending = conn.pending_since_ms.load(Ordering::Acquire);
        let last_poll = conn.last_poll_ms.load(Ordering::Acquire);
        (pending != 0 && now.saturating_sub(pending) >= half_timeout_ms)
            || (handed_out && now.saturating_sub(last_poll) >= half_timeout_ms)
    }

    /// Drops stalled connections and expires idle sessions.
    pub(crate) fn sweep(&self) {
        self.clock.prune();
        let now = self.now();
        let timeout_ms = self.config.client_timeout.as_millis() as u64;
        let silent_ms = self
            .config
            .keepalive_interval
            .map(|k| k.as_millis() as u64 + timeout_ms);
        let ttl = self.config.session_ttl;
        let sessions: Vec<Arc<Session>> = self.sessions.iter().map(|e| e.value().clone()).collect();
        for session in sessions {
            let mut expired = false;
            let mut stalled = None;
            {
                let mut st = session.state.lock();
                if let Some(conn) = &st.conn {
                    let last_poll = conn.last_poll_ms.load(Ordering::Acquire);
                    let pending = conn.pending_since_ms.load(Ordering::Acquire);
                    let since = |t: u64| now.ms.saturating_sub(t);
                    let stalled_pending = pending != 0
                        && since(pending) >= timeout_ms
                        && since(last_poll) >= timeout_ms;
                    let stalled_silent = silent_ms.is_some_and(|s| since(last_poll) >= s);
                    if stalled_pending || stalled_silent {
                        let conn = st.conn.take();
                        st.last_activity = now.at;
                        stalled = conn;
                    }
                } else if st.approvals.pending.is_empty()
                    && now.at.saturating_duration_since(st.last_activity) >= ttl
                {
                    st.removed = true;
                    let bytes = st.ring.clear();
                    self.ring_bytes.fetch_sub(bytes, Ordering::Relaxed);
                    self.settle_state(&mut st);
                    expired = true;
                }
            }
            if let Some(conn) = stalled {
                self.log_keepalive_timeout(&conn);
                if let Some(w) = conn.end(end::TIMEOUT) {
                    w.wake();
                }
                self.finish_connection(&conn, "timeout");
            }
            if expired {
                tracing::debug!(session = %session.id, "session expired");
                self.forget(&session);
            }
        }
    }
}
