//! Graceful drain for rolling restarts: every stream ends with a `retry:` hint spread over
//! the drain window, new connections are refused, and `idle` tells when the last one left.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;

use super::{Broker, Inner};
use crate::session::{Session, end};

impl Inner {
    pub(super) fn drain_retry_ms(&self) -> u64 {
        let window = self.drain_window_ms.load(Ordering::Relaxed);
        rand::rng().random_range(0..=window)
    }
}

impl Broker {
    /// Starts draining: every stream ends now with a `retry:` hint spread uniformly over
    /// `window` (so clients come back through the load balancer at different moments), and
    /// new connections are refused with [`ConnectError::Draining`]. The hints are spread over
    /// at most a day: a longer window (up to `Duration::MAX`) counts as a day.
    ///
    /// [`ConnectError::Draining`]: crate::ConnectError::Draining
    pub fn drain(&self, window: Duration) {
        let inner = &self.inner;
        let spread = window.min(Duration::from_secs(86_400));
        inner
            .drain_window_ms
            .store(spread.as_millis() as u64, Ordering::Relaxed);
        inner.draining.store(true, Ordering::Release);
        tracing::info!(window_s = window.as_secs_f64(), "SSE drain started");
        let sessions: Vec<Arc<Session>> =
            inner.sessions.iter().map(|e| e.value().clone()).collect();
        for s in sessions {
            let conn = s.state.lock().conn.clone();
            if let Some(conn) = conn {
                conn.drain_retry_ms
                    .store(inner.drain_retry_ms(), Ordering::Relaxed);
                if let Some(w) = conn.end(end::DRAIN) {
                    w.wake();
                }
            }
        }
    }

    /// Whether the broker is draining.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// A jittered reconnection delay within the drain window (for `Retry-After` and the
    /// `retry:` of refused event-stream requests).
    pub fn drain_retry_hint(&self) -> Duration {
        Duration::from_millis(self.inner.drain_retry_ms())
    }

    /// Resolves when no connection is open (e.g. after [`drain`](Self::drain)).
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.connections.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}
