//! The node: the backplane handle, its shared state and the `Backplane` impl. Each job the
//! node does on Redis lives in a module of its own: starting the links, publishing,
//! connecting, syncing a ring from the log, tracked (AG-UI) sessions, handling wakes, and the
//! head check.

mod approvals;
mod connect;
mod heads;
mod link;
mod publish;
mod reply;
mod session;
mod start;
mod supervisor;
mod sync;
mod tracking;
mod wakes;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dashmap::DashMap;
use tether_core::idempotency::{IdempotencyKey, Published};
use tether_core::{
    ApprovalInfo, ApprovalRequest, ApprovalStatus, Backplane, BackplaneError, BackplaneStatus,
    BoxFuture, Broker, ConnectOptions, Event, EventId, EventStream, SessionId,
};
use tokio::task::JoinHandle;

use self::link::Link;
use crate::config::RedisConfig;
use crate::metrics as m;
use crate::scripts::Scripts;

/// The Redis backplane of one node. Cheap to clone; the background tasks (pub/sub ingest,
/// health pings, head checks) stop when the last clone is dropped.
#[derive(Clone)]
pub struct RedisBackplane {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("node_id", &self.shared.cfg.node_id)
            .field("prefix", &self.shared.cfg.prefix)
            .finish()
    }
}

struct Shared {
    broker: Broker,
    cfg: RedisConfig,
    cmd: Link,
    sub: Link,
    scripts: Scripts,
    channel_prefix: String,
    channel: String,
    max_events: usize,
    max_bytes: usize,
    ttl_ms: u64,
    /// Sessions whose connection this node holds, with the connection token.
    owned: DashMap<SessionId, u64>,
    /// Serializes what one node does to one session's ring from Redis.
    locks: DashMap<SessionId, Arc<tokio::sync::Mutex<()>>>,
    status: Mutex<BackplaneStatus>,
    /// Set when pub/sub may have lost messages (queue overflow, a reconnect): the supervisor
    /// then runs a catch-up pass.
    catch_up: AtomicBool,
    /// Fault injection for tests: wakes to drop on purpose.
    drop_wakes: AtomicU64,
    /// Fault injection for tests: supersede notices to drop on purpose.
    drop_supersedes: AtomicU64,
    /// The pub/sub liveness probe.
    probe: Probe,
    /// The deadlines of the approvals this node created, for its sweeper.
    deadlines: approvals::Deadlines,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    metrics: m::Handles,
}

/// The pub/sub liveness probe: the supervisor publishes `p <nonce>` on the node's own
/// channel and expects it back through the subscription. A probe that does not come back
/// means the subscription is gone while the link still answers PING.
#[derive(Default)]
struct Probe {
    /// The nonce of the probe in flight (0: none).
    sent: AtomicU64,
    /// When it was sent.
    sent_at: Mutex<Option<tokio::time::Instant>>,
    /// The last nonce that came back.
    seen: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

impl RedisBackplane {
    /// The broker this backplane feeds.
    pub fn broker(&self) -> &Broker {
        &self.shared.broker
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.cfg.node_id
    }

    /// Publishes events: one atomic append to the session's Redis log (which assigns the
    /// ids and wakes the node holding the session's connection), then into this node's ring.
    ///
    /// # Errors
    /// [`BackplaneError::Publish`] for events the broker would refuse (too large);
    /// [`BackplaneError::Unavailable`] when Redis does not answer within the deadline (the
    /// events may or may not be stored when the deadline passed after the request was sent);
    /// [`BackplaneError::Full`] when Redis is out of memory (nothing stored).
    pub async fn publish(
        &self,
        session: &SessionId,
        events: &[Event],
    ) -> Result<Vec<EventId>, BackplaneError> {
        self.shared
            .publish(session, events, None)
            .await
            .map(|p| p.ids)
    }

    /// Publishes once per `key` across every node: a retry of the same publish (same key,
    /// same events) stores nothing and gets the first answer's ids, the same key with other
    /// events [`PublishError::IdempotencyKeyReused`](tether_core::PublishError::IdempotencyKeyReused). The key's record lives in Redis beside
    /// the session's log for ten minutes or the log's TTL, whichever is longer.
    ///
    /// # Errors
    /// As [`publish`](Self::publish), and the reused key.
    pub async fn publish_once(
        &self,
        session: &SessionId,
        key: &IdempotencyKey,
        events: &[Event],
    ) -> Result<Published, BackplaneError> {
        self.shared.publish(session, events, Some(key)).await
    }

    /// Opens a session's stream on this node: claims the connection in Redis (a connection
    /// on another node ends with `superseded`), brings the local ring up to the log, then
    /// connects as [`Broker::connect`] does. A `Last-Event-ID` issued by any node resumes
    /// exactly.
    ///
    /// # Errors
    /// [`BackplaneError::Connect`] for what a local connect refuses;
    /// [`BackplaneError::Unavailable`] when Redis does not answer within the deadline.
    pub async fn connect(
        &self,
        session: &SessionId,
        opts: ConnectOptions,
    ) -> Result<EventStream, BackplaneError> {
        self.shared.connect(session, opts).await
    }

    /// Up or down, this node's id, and since when.
    pub fn status(&self) -> BackplaneStatus {
        self.shared.status()
    }

    /// The `"backplane"` object of `/health/sse`, as JSON.
    pub fn health_json(&self) -> serde_json::Value {
        serde_json::to_value(self.status().health()).unwrap_or_default()
    }

    /// Compares the head of every session connected to this node with Redis's now, and
    /// fills or resyncs what differs (the supervisor does this every
    /// [`head_check_interval`](RedisConfig::head_check_interval)).
    pub async fn check_heads(&self) -> Result<(), BackplaneError> {
        self.shared.check_heads().await
    }

    /// Fault injection for tests: unsubscribes this node's channel behind the supervisor's
    /// back, as a proxy or a failover may, leaving a link that answers PING but carries no
    /// wakes.
    #[doc(hidden)]
    pub async fn lose_subscription(&self) {
        let mut sub = self.shared.sub.get();
        let _ = sub.unsubscribe(&self.shared.channel).await;
    }

    /// Fault injection for tests: drops the next `n` wakes this node receives, as pub/sub
    /// may (it is at-most-once).
    #[doc(hidden)]
    pub fn drop_next_wakes(&self, n: u64) {
        self.shared.drop_wakes.store(n, Ordering::Release);
    }

    /// Fault injection for tests: drops the next `n` supersede notices this node receives,
    /// as pub/sub may; the head check's ownership test must then end the stream.
    #[doc(hidden)]
    pub fn drop_next_supersedes(&self, n: u64) {
        self.shared.drop_supersedes.store(n, Ordering::Release);
    }
}

impl Backplane for RedisBackplane {
    fn publish<'a>(
        &'a self,
        session: &'a SessionId,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<Vec<EventId>, BackplaneError>> {
        Box::pin(async move {
            self.shared
                .publish(session, &events, None)
                .await
                .map(|p| p.ids)
        })
    }

    fn publish_once<'a>(
        &'a self,
        session: &'a SessionId,
        key: &'a IdempotencyKey,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<Published, BackplaneError>> {
        Box::pin(async move { self.shared.publish(session, &events, Some(key)).await })
    }

    fn connect<'a>(
        &'a self,
        session: &'a SessionId,
        opts: ConnectOptions,
    ) -> BoxFuture<'a, Result<EventStream, BackplaneError>> {
        Box::pin(self.shared.connect(session, opts))
    }

    fn request_approval<'a>(
        &'a self,
        session: &'a SessionId,
        req: ApprovalRequest,
    ) -> BoxFuture<'a, Result<ApprovalInfo, BackplaneError>> {
        Box::pin(self.shared.request_approval(session, req))
    }

    fn resolve_approval<'a>(
        &'a self,
        session: &'a SessionId,
        approval_id: &'a str,
        status: ApprovalStatus,
    ) -> BoxFuture<'a, Result<ApprovalInfo, BackplaneError>> {
        Box::pin(self.shared.resolve_approval(session, approval_id, status))
    }

    fn approval<'a>(
        &'a self,
        session: &'a SessionId,
        approval_id: &'a str,
        wait: std::time::Duration,
    ) -> BoxFuture<'a, Result<Option<ApprovalInfo>, BackplaneError>> {
        Box::pin(self.shared.approval(session, approval_id, wait))
    }

    fn status(&self) -> BackplaneStatus {
        self.shared.status()
    }
}

impl Shared {
    fn status(&self) -> BackplaneStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn set_up(&self, up: bool) -> bool {
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if st.up == up {
            return false;
        }
        st.up = up;
        st.since = SystemTime::now();
        self.metrics.up.set(if up { 1.0 } else { 0.0 });
        if up {
            tracing::info!(node = %self.cfg.node_id, "SSE backplane up");
        } else {
            tracing::warn!(node = %self.cfg.node_id, "SSE backplane down");
        }
        true
    }
}
