//! Broker configuration. Every default is the runbook's where it names one.

use std::sync::Arc;
use std::time::Duration;

use crate::signal::TrackerFactory;

/// What happens when a second client connects to a session that already has a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionPolicy {
    /// The newer connection wins; the older stream ends after a final `superseded` signal.
    /// A superseded client instance that comes back within the grace period is told to stop
    /// (see [`BrokerBuilder::supersede_grace`]), so two tabs never take turns for ever.
    #[default]
    Replace,
    /// The newer connection is refused ([`ConnectError::Conflict`](crate::ConnectError::Conflict), HTTP 409).
    Reject,
}

/// How a heartbeat looks on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HeartbeatStyle {
    /// An SSE comment (`: keepalive`): invisible to parsers, resets proxy idle timers.
    #[default]
    Comment,
    /// A named event without an `id:` line, carrying `{"type":"heartbeat"}` as data, for
    /// client-side watchdogs. Never used in sessions with a tracker (AG-UI), whose client
    /// JSON-parses every data line.
    Event(crate::frame::EventName),
}

/// A per-session publish rate limit (token bucket).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained events per second.
    pub per_second: f64,
    /// Events that may be published at once before the rate applies.
    pub burst: u32,
}

/// The broker's settings. Build with [`Broker::builder`](crate::Broker::builder).
#[derive(Clone)]
pub struct Config {
    pub(crate) ring_max_events: usize,
    pub(crate) ring_max_bytes: usize,
    pub(crate) total_ring_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_sessions: usize,
    pub(crate) max_sessions_per_subject: usize,
    pub(crate) session_ttl: Duration,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) heartbeat_style: HeartbeatStyle,
    pub(crate) client_timeout: Duration,
    pub(crate) connection_policy: ConnectionPolicy,
    pub(crate) supersede_grace: Duration,
    pub(crate) reconnect_base: Duration,
    pub(crate) reconnect_backoff_max: Duration,
    pub(crate) approval_timeout: Duration,
    pub(crate) max_chunk_bytes: usize,
    pub(crate) publish_rate: Option<RateLimit>,
    pub(crate) decided_approvals_kept: usize,
    pub(crate) max_batch_events: usize,
    pub(crate) max_pending_approvals: usize,
    pub(crate) max_approval_bytes: Option<usize>,
    pub(crate) tracker_factory: Option<Arc<dyn TrackerFactory>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ring_max_events: 1024,
            ring_max_bytes: 1024 * 1024,
            total_ring_bytes: 256 * 1024 * 1024,
            max_event_bytes: 256 * 1024,
            max_sessions: 100_000,
            max_sessions_per_subject: 64,
            session_ttl: Duration::from_secs(15 * 60),
            keepalive_interval: Some(Duration::from_secs(15)),
            heartbeat_style: HeartbeatStyle::Comment,
            client_timeout: Duration::from_secs(60),
            connection_policy: ConnectionPolicy::Replace,
            supersede_grace: Duration::from_secs(60),
            reconnect_base: Duration::from_millis(3000),
            reconnect_backoff_max: Duration::from_secs(30),
            approval_timeout: Duration::from_secs(300),
            max_chunk_bytes: 64 * 1024,
            publish_rate: None,
            decided_approvals_kept: 256,
            max_batch_events: 1000,
            max_pending_approvals: 64,
            max_approval_bytes: None,
            tracker_factory: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("ring_max_events", &self.ring_max_events)
            .field("ring_max_bytes", &self.ring_max_bytes)
            .field("total_ring_bytes", &self.total_ring_bytes)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("max_sessions", &self.max_sessions)
            .field("max_sessions_per_subject", &self.max_sessions_per_subject)
            .field("session_ttl", &self.session_ttl)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("heartbeat_style", &self.heartbeat_style)
            .field("client_timeout", &self.client_timeout)
            .field("connection_policy", &self.connection_policy)
            .field("supersede_grace", &self.supersede_grace)
            .field("reconnect_base", &self.reconnect_base)
            .field("reconnect_backoff_max", &self.reconnect_backoff_max)
            .field("approval_timeout", &self.approval_timeout)
            .field("max_chunk_bytes", &self.max_chunk_bytes)
            .field("publish_rate", &self.publish_rate)
            .field("max_batch_events", &self.max_batch_events)
            .field("max_pending_approvals", &self.max_pending_approvals)
            .field("max_approval_bytes", &self.max_approval_bytes)
            .field("tracker_factory", &self.tracker_factory.is_some())
            .finish()
    }
}

impl Config {
    /// How often the driver looks for stalled connections and expired sessions: a twelfth of
    /// the client timeout, between 250 ms and 5 s. A stalled client is therefore dropped
    /// within the timeout plus at most 5 s.
    pub(crate) fn sweep_interval(&self) -> Duration {
        (self.client_timeout / 12).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }

    /// The ring bound by event count.
    pub fn ring_max_events(&self) -> usize {
        self.ring_max_events
    }
    /// The keepalive interval, `None` when heartbeats are off.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.keepalive_interval
    }
    /// The client timeout.
    pub fn client_timeout(&self) -> Duration {
        self.client_timeout
    }
    /// The largest encoded event accepted.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }
    /// The longest `retry:` hint ever sent.
    pub fn reconnect_backoff_max(&self) -> Duration {
        self.reconnect_backoff_max
    }
    /// Most events of one batch.
    pub fn max_batch_events(&self) -> usize {
        self.max_batch_events
    }
    /// Most pending approvals per session.
    pub fn max_pending_approvals(&self) -> usize {
        self.max_pending_approvals
    }
    /// Largest approval payload, in bytes of its JSON as given (the HTTP route keeps the bytes sent).
    pub fn max_approval_bytes(&self) -> usize {
        self.max_approval_bytes.unwrap_or(self.max_event_bytes)
    }
    /// The default approval timeout.
    pub fn approval_timeout(&self) -> Duration {
        self.approval_timeout
    }
    /// The connection policy.
    pub fn connection_policy(&self) -> ConnectionPolicy {
        self.connection_policy
    }
}

/// Builder for a [`Broker`](crate::Broker).
///
/// ```
/// # use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let broker = tether_core::Broker::builder()
///     .keepalive_interval(Some(Duration::from_secs(15)))
///     .client_timeout(Duration::from_secs(60))
///     .start();
/// # drop(broker); }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build()` or `start()`"]
pub struct BrokerBuilder {
    pub(crate) config: Config,
}

impl BrokerBuilder {
    /// Most events a session's ring keeps; the oldest are evicted. Default is 1024.
    pub fn ring_max_events(mut self, n: usize) -> Self {
        self.config.ring_max_events = n.max(1);
        self
    }
    /// Most bytes (encoded frames) a session's ring keeps. Default is 1 MiB.
    pub fn ring_max_bytes(mut self, n: usize) -> Self {
        self.config.ring_max_bytes = n.max(1);
        self
    }
    /// The broker-wide memory budget: the bytes of every ring, every tracker's state (AG-UI
    /// snapshots) and every approval payload together. Past it, the sessions idle longest
    /// lose their history first (one nobody is connected to and no approval waits on loses
    /// every event and its tracker state; its client comes back to a resync), then the
    /// publishing session its oldest events (counted in
    /// `sse_events_evicted_total{cause="budget"}`). When what is left is state in use, a new
    /// session or approval is refused ([`PublishError::MemoryBudget`](crate::PublishError::MemoryBudget),
    /// HTTP 503 `memory_budget_exceeded`) until some frees. Default is 256 MiB.
    pub fn total_ring_bytes(mut self, n: usize) -> Self {
        self.config.total_ring_bytes = n;
        self
    }
    /// Largest encoded event accepted ([`PublishError::TooLarge`](crate::PublishError::TooLarge),
    /// HTTP 413). Default is 256 KiB.
    pub fn max_event_bytes(mut self, n: usize) -> Self {
        self.config.max_event_bytes = n;
        self
    }
    /// Most sessions alive at once; a publish or connect that would create one more is refused
    /// (HTTP 503). Default is 100,000.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.config.max_sessions = n;
        self
    }
    /// Most sessions one identity (see [`ConnectOptions::identity`](crate::ConnectOptions::identity))
    /// may create by connecting; a connect that would create one more is refused with
    /// [`ConnectError::TooManySessionsForSubject`](crate::ConnectError::TooManySessionsForSubject).
    /// Sessions created by publishes, and anonymous connects, do not count. Default is 64.
    pub fn max_sessions_per_subject(mut self, n: usize) -> Self {
        self.config.max_sessions_per_subject = n;
        self
    }
    /// Most events one [`publish_batch`](crate::Broker::publish_batch) (one HTTP publish) may
    /// carry; a larger batch is refused whole with [`PublishError::TooManyEvents`](crate::PublishError::TooManyEvents)
    /// (HTTP 413 `too_many_events`). Default is 1,000.
    pub fn max_batch_events(mut self, n: usize) -> Self {
        self.config.max_batch_events = n.max(1);
        self
    }
    /// Most pending approvals per session; one more is refused with
    /// [`ApprovalError::TooManyPending`](crate::ApprovalError::TooManyPending) (HTTP 409
    /// `too_many_pending_approvals`). With the deadline (at most a year, the HTTP route's at
    /// most a day) it bounds how long approvals keep a session alive. Default is 64.
    pub fn max_pending_approvals(mut self, n: usize) -> Self {
        self.config.max_pending_approvals = n.max(1);
        self
    }
    /// Largest approval payload, in bytes of its JSON as given; a larger one is refused with
    /// [`ApprovalError::TooLarge`](crate::ApprovalError::TooLarge) (HTTP 413
    /// `approval_too_large`). Default is [`max_event_bytes`](Self::max_event_bytes).
    pub fn max_approval_bytes(mut self, n: usize) -> Self {
        self.config.max_approval_bytes = Some(n);
        self
    }
    /// Idle time after which a session is removed. It counts from the last publish or
    /// disconnect and pauses while a client is connected or an approval is pending.
    /// Default is 15 minutes.
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.config.session_ttl = ttl;
        self
    }
    /// Interval without a write after which a connection writes a heartbeat (runbook:
    /// `keepalive_interval: 15`); `None` turns heartbeats off. Values above a day are capped
    /// at a day. Default is 15 seconds.
    pub fn keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.keepalive_interval = interval
            .filter(|d| !d.is_zero())
            .map(|d| d.min(Duration::from_secs(86_400)));
        self
    }
    /// How a heartbeat looks. Default is an SSE comment.
    pub fn heartbeat_style(mut self, style: HeartbeatStyle) -> Self {
        self.config.heartbeat_style = style;
        self
    }
    /// A client that stops reading is dropped once its stream has had frames pending for this
    /// long without being polled (runbook: `client_timeout: 60`). Kept between 1 ms and a
    /// day. Default is 60 seconds.
    pub fn client_timeout(mut self, timeout: Duration) -> Self {
        self.config.client_timeout =
            timeout.clamp(Duration::from_millis(1), Duration::from_secs(86_400));
        self
    }
    /// One connection per session: replace the older one or reject the newer one (runbook:
    /// `max_connections_per_session: 1`). Default is [`ConnectionPolicy::Replace`].
    pub fn connection_policy(mut self, policy: ConnectionPolicy) -> Self {
        self.config.connection_policy = policy;
        self
    }
    /// How long a superseded client instance (named by `clientId`) is refused with
    /// [`ConnectError::SupersededRecently`](crate::ConnectError::SupersededRecently) (HTTP 204,
    /// which makes EventSource stop). Default is 60 seconds.
    pub fn supersede_grace(mut self, grace: Duration) -> Self {
        self.config.supersede_grace = grace;
        self
    }
    /// Base of the `retry:` hint every stream opens with; the hint is jittered by ±50 % and
    /// capped by the backoff maximum. Default is 3 seconds.
    pub fn reconnect_base(mut self, base: Duration) -> Self {
        self.config.reconnect_base = base;
        self
    }
    /// Longest `retry:` hint (runbook: `reconnect_backoff_max: 30`); superseded streams get it.
    /// Default is 30 seconds.
    pub fn reconnect_backoff_max(mut self, max: Duration) -> Self {
        self.config.reconnect_backoff_max = max;
        self
    }
    /// Timeout of an approval request that names none. Default is 300 seconds.
    pub fn approval_timeout(mut self, timeout: Duration) -> Self {
        self.config.approval_timeout = timeout;
        self
    }
    /// Most bytes coalesced into one chunk when a connection is behind (at least one frame is
    /// always written). Default is 64 KiB.
    pub fn max_chunk_bytes(mut self, n: usize) -> Self {
        self.config.max_chunk_bytes = n.max(1);
        self
    }
    /// Per-session publish rate limit ([`PublishError::RateLimited`](crate::PublishError::RateLimited),
    /// HTTP 429). Default is none.
    pub fn publish_rate(mut self, limit: Option<RateLimit>) -> Self {
        self.config.publish_rate = limit;
        self
    }
    /// Decided approvals remembered per session, so a late or second decision gets a precise
    /// answer. Default is 256.
    pub fn decided_approvals_kept(mut self, n: usize) -> Self {
        self.config.decided_approvals_kept = n;
        self
    }
    /// Installs a tracker on sessions whose events it recognises (AG-UI does this).
    /// Default is none.
    pub fn tracker_factory(mut self, factory: Arc<dyn TrackerFactory>) -> Self {
        self.config.tracker_factory = Some(factory);
        self
    }
}
