//! What the broker reports about itself: the `/health/sse` snapshot and its counts.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::Broker;

/// A snapshot for `/health/sse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// `"ok"`, or `"draining"` while the broker drains.
    pub status: &'static str,
    /// Sessions alive.
    pub sessions: usize,
    /// Open connections.
    pub connections: usize,
    /// Whether the broker is draining.
    pub draining: bool,
    /// Bytes held by all rings.
    pub ring_bytes: usize,
    /// Bytes held by the sessions' trackers (AG-UI snapshots) and approval payloads; with
    /// `ring_bytes`, what the memory budget covers.
    pub state_bytes: usize,
}

impl Health {
    /// Whether probes should see the node as healthy.
    pub fn is_healthy(&self) -> bool {
        !self.draining
    }
}

impl Broker {
    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.inner.connections.load(Ordering::Acquire)
    }

    /// Number of sessions alive.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// The health snapshot for `/health/sse`.
    pub fn health(&self) -> Health {
        let draining = self.is_draining();
        Health {
            status: if draining { "draining" } else { "ok" },
            sessions: self.session_count(),
            connections: self.connection_count(),
            draining,
            ring_bytes: self.inner.ring_bytes.load(Ordering::Relaxed),
            state_bytes: self.inner.state_bytes.load(Ordering::Relaxed),
        }
    }
}
