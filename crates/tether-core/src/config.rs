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
#[non_exhaustive]
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

/// The longest duration a setting takes: a day.
const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// The shortest keepalive interval: a heartbeat every 10 ms is already a hundred a second.
const MIN_KEEPALIVE: Duration = Duration::from_millis(10);

/// A builder setting [`BrokerBuilder::build`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// [`BrokerBuilder::total_ring_bytes`] (`tether serve --memory-budget-bytes`).
    TotalRingBytes,
    /// [`BrokerBuilder::max_event_bytes`] (`--max-event-bytes`).
    MaxEventBytes,
    /// [`BrokerBuilder::max_sessions`] (`--max-sessions`).
    MaxSessions,
    /// [`BrokerBuilder::max_approval_bytes`] (`--max-approval-bytes`).
    MaxApprovalBytes,
    /// [`BrokerBuilder::keepalive_interval`] (`--keepalive-secs`).
    KeepaliveInterval,
    /// [`BrokerBuilder::reconnect_base`] (no flag).
    ReconnectBase,
    /// [`BrokerBuilder::reconnect_backoff_max`] (`--reconnect-backoff-max-secs`).
    ReconnectBackoffMax,
    /// [`BrokerBuilder::publish_rate`] (no flag).
    PublishRate,
}

impl Setting {
    /// The builder method that sets it, e.g. `"keepalive_interval"`.
    pub fn method(self) -> &'static str {
        match self {
            Self::TotalRingBytes => "total_ring_bytes",
            Self::MaxEventBytes => "max_event_bytes",
            Self::MaxSessions => "max_sessions",
            Self::MaxApprovalBytes => "max_approval_bytes",
            Self::KeepaliveInterval => "keepalive_interval",
            Self::ReconnectBase => "reconnect_base",
            Self::ReconnectBackoffMax => "reconnect_backoff_max",
            Self::PublishRate => "publish_rate",
        }
    }

    /// The `tether serve` flag that sets it, if there is one, e.g. `"--keepalive-secs"`.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Self::TotalRingBytes => Some("--memory-budget-bytes"),
            Self::MaxEventBytes => Some("--max-event-bytes"),
            Self::MaxSessions => Some("--max-sessions"),
            Self::MaxApprovalBytes => Some("--max-approval-bytes"),
            Self::KeepaliveInterval => Some("--keepalive-secs"),
            Self::ReconnectBackoffMax => Some("--reconnect-backoff-max-secs"),
            Self::ReconnectBase | Self::PublishRate => None,
        }
    }
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.flag() {
            Some(flag) => write!(f, "{} ({flag})", self.method()),
            None => f.write_str(self.method()),
        }
    }
}

/// Why [`BrokerBuilder::build`] refused its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The setting refused.
    pub setting: Setting,
    /// Why, and what it takes instead.
    pub reason: &'static str,
}

impl ConfigError {
    fn new(setting: Setting, reason: &'static str) -> Self {
        Self { setting, reason }
    }
}

impl Config {
    /// Refuses the settings the broker cannot run with: what would overflow or panic when a
    /// client connects or an event is published, and zero bounds that would refuse
    /// everything.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        use Setting as S;
        let refuse = |setting, reason| Err(ConfigError::new(setting, reason));
        if self.total_ring_bytes == 0 {
            return refuse(S::TotalRingBytes, "must be at least 1 byte");
        }
        if self.max_event_bytes == 0 {
            return refuse(S::MaxEventBytes, "must be at least 1 byte");
        }
        if self.max_sessions == 0 {
            return refuse(S::MaxSessions, "must be at least 1");
        }
        if self.max_approval_bytes == Some(0) {
            return refuse(S::MaxApprovalBytes, "must be at least 1 byte");
        }
        if self.keepalive_interval.is_some_and(|k| k < MIN_KEEPALIVE) {
            return refuse(
                S::KeepaliveInterval,
                "must be at least 10 ms; use without_heartbeats() to turn heartbeats off",
            );
        }
        if self.reconnect_base > MAX_DURATION {
            return refuse(S::ReconnectBase, "must be at most a day");
        }
        if self.reconnect_backoff_max > MAX_DURATION {
            return refuse(S::ReconnectBackoffMax, "must be at most a day");
        }
        if let Some(rate) = self.publish_rate
            && !(rate.per_second.is_finite() && rate.per_second > 0.0)
        {
            return refuse(
                S::PublishRate,
                "events per second must be a finite number above zero; use without_publish_rate() for no limit",
            );
        }
        Ok(())
    }
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
    /// How long a superseded client instance that comes back is told to stop (HTTP 204).
    pub fn supersede_grace(&self) -> Duration {
        self.supersede_grace
    }
    /// How many decided approvals a session keeps for status reads.
    pub fn decided_approvals_kept(&self) -> usize {
        self.decided_approvals_kept
    }
}

/// Builder for a [`Broker`](crate::Broker).
///
/// Setters take any value; [`build`](Self::build) and [`start`](Self::start) refuse, with a
/// [`ConfigError`] naming the setting, what the broker could not run with (a zero budget, a
/// `retry:` hint past a day, a publish rate of zero). Each setter's doc says what it refuses
/// and what it clamps.
///
/// ```
/// # use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tether_core::ConfigError> {
/// let broker = tether_core::Broker::builder()
///     .keepalive_interval(Duration::from_secs(15))
///     .client_timeout(Duration::from_secs(60))
///     .start()?;
/// # drop(broker); Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build()` or `start()`"]
pub struct BrokerBuilder {
    pub(crate) config: Config,
}

impl BrokerBuilder {
    /// Checks the settings as [`build`](Self::build) does, without building.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.config.check()
    }

    /// Most events a session's ring keeps; the oldest are evicted. 0 counts as 1.
    /// Default is 1024.
    pub fn ring_max_events(mut self, n: usize) -> Self {
        self.config.ring_max_events = n.max(1);
        self
    }
    /// Most bytes (encoded frames) a session's ring keeps. 0 counts as 1. Default is 1 MiB.
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
    /// HTTP 503 `memory_budget_exceeded`) until some frees. Zero is refused by
    /// [`build`](Self::build) with [`Setting::TotalRingBytes`]. Default is 256 MiB.
    pub fn total_ring_bytes(mut self, n: usize) -> Self {
        self.config.total_ring_bytes = n;
        self
    }
    /// Largest encoded event accepted ([`PublishError::TooLarge`](crate::PublishError::TooLarge),
    /// HTTP 413). Zero is refused by [`build`](Self::build) with [`Setting::MaxEventBytes`].
    /// Default is 256 KiB.
    pub fn max_event_bytes(mut self, n: usize) -> Self {
        self.config.max_event_bytes = n;
        self
    }
    /// Most sessions alive at once; a publish or connect that would create one more is refused
    /// (HTTP 503). Zero is refused by [`build`](Self::build) with [`Setting::MaxSessions`].
    /// Default is 100,000.
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
    /// (HTTP 413 `too_many_events`). 0 counts as 1. Default is 1,000.
    pub fn max_batch_events(mut self, n: usize) -> Self {
        self.config.max_batch_events = n.max(1);
        self
    }
    /// Most pending approvals per session; one more is refused with
    /// [`ApprovalError::TooManyPending`](crate::ApprovalError::TooManyPending) (HTTP 409
    /// `too_many_pending_approvals`). With the deadline (at most a year, the HTTP route's at
    /// most a day) it bounds how long approvals keep a session alive. 0 counts as 1.
    /// Default is 64.
    pub fn max_pending_approvals(mut self, n: usize) -> Self {
        self.config.max_pending_approvals = n.max(1);
        self
    }
    /// Largest approval payload, in bytes of its JSON as given; a larger one is refused with
    /// [`ApprovalError::TooLarge`](crate::ApprovalError::TooLarge) (HTTP 413
    /// `approval_too_large`). Zero is refused by [`build`](Self::build) with
    /// [`Setting::MaxApprovalBytes`]. Default is [`max_event_bytes`](Self::max_event_bytes).
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
    /// `keepalive_interval: 15`). Values above a day are capped at a day; one below 10 ms
    /// (zero included) is refused by [`build`](Self::build) with [`Setting::KeepaliveInterval`]
    /// (turn heartbeats off with [`without_heartbeats`](Self::without_heartbeats)).
    /// Default is 15 seconds.
    pub fn keepalive_interval(mut self, interval: Duration) -> Self {
        self.config.keepalive_interval = Some(interval.min(MAX_DURATION));
        self
    }
    /// Turns heartbeats off: a quiet stream writes nothing, and a proxy's idle timer may cut
    /// it. Undone by [`keepalive_interval`](Self::keepalive_interval). Default is on, every
    /// 15 seconds.
    pub fn without_heartbeats(mut self) -> Self {
        self.config.keepalive_interval = None;
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
    /// capped by the backoff maximum. One above a day is refused by [`build`](Self::build)
    /// with [`Setting::ReconnectBase`]. Default is 3 seconds.
    pub fn reconnect_base(mut self, base: Duration) -> Self {
        self.config.reconnect_base = base;
        self
    }
    /// Longest `retry:` hint (runbook: `reconnect_backoff_max: 30`); superseded streams get it.
    /// One above a day is refused by [`build`](Self::build) with
    /// [`Setting::ReconnectBackoffMax`]. Default is 30 seconds.
    pub fn reconnect_backoff_max(mut self, max: Duration) -> Self {
        self.config.reconnect_backoff_max = max;
        self
    }
    /// Timeout of an approval request that names none. Like a timeout a request names, it is
    /// capped at a year. Default is 300 seconds.
    pub fn approval_timeout(mut self, timeout: Duration) -> Self {
        self.config.approval_timeout = timeout;
        self
    }
    /// Most bytes coalesced into one chunk when a connection is behind (at least one frame is
    /// always written). 0 counts as 1. Default is 64 KiB.
    pub fn max_chunk_bytes(mut self, n: usize) -> Self {
        self.config.max_chunk_bytes = n.max(1);
        self
    }
    /// Per-session publish rate limit ([`PublishError::RateLimited`](crate::PublishError::RateLimited),
    /// HTTP 429). A rate of zero, below zero, NaN or infinite is refused by
    /// [`build`](Self::build) with [`Setting::PublishRate`]; a burst of 0 counts as 1, and a
    /// `retry_after` is capped at a day. Default is none.
    pub fn publish_rate(mut self, limit: RateLimit) -> Self {
        self.config.publish_rate = Some(limit);
        self
    }
    /// Removes the per-session publish rate limit. Default is none.
    pub fn without_publish_rate(mut self) -> Self {
        self.config.publish_rate = None;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::{Broker, ConnectOptions, SessionId};

    fn refused(builder: BrokerBuilder) -> Setting {
        let check = builder.check().expect_err("refused");
        let built = builder.build().expect_err("refused");
        assert_eq!(check, built);
        built.setting
    }

    #[test]
    fn zero_bounds_are_refused() {
        let b = Broker::builder;
        assert_eq!(refused(b().total_ring_bytes(0)), Setting::TotalRingBytes);
        assert_eq!(refused(b().max_event_bytes(0)), Setting::MaxEventBytes);
        assert_eq!(refused(b().max_sessions(0)), Setting::MaxSessions);
        assert_eq!(
            refused(b().max_approval_bytes(0)),
            Setting::MaxApprovalBytes
        );
    }

    #[test]
    fn keepalive_below_10_ms_is_refused() {
        let b = Broker::builder;
        for short in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(9),
        ] {
            assert_eq!(
                refused(b().keepalive_interval(short)),
                Setting::KeepaliveInterval
            );
        }
        assert!(
            b().keepalive_interval(Duration::from_millis(10))
                .check()
                .is_ok()
        );
        assert!(b().without_heartbeats().check().is_ok());
        let c = b().keepalive_interval(Duration::MAX).config;
        assert_eq!(c.keepalive_interval, Some(MAX_DURATION));
    }

    #[test]
    fn retry_hints_past_a_day_are_refused() {
        let b = Broker::builder;
        assert_eq!(
            refused(b().reconnect_base(Duration::MAX)),
            Setting::ReconnectBase
        );
        assert_eq!(
            refused(b().reconnect_base(MAX_DURATION + Duration::from_nanos(1))),
            Setting::ReconnectBase
        );
        assert_eq!(
            refused(b().reconnect_backoff_max(Duration::MAX)),
            Setting::ReconnectBackoffMax
        );
        assert!(
            b().reconnect_base(MAX_DURATION)
                .reconnect_backoff_max(MAX_DURATION)
                .check()
                .is_ok()
        );
    }

    #[test]
    fn publish_rates_that_are_not_a_positive_number_are_refused() {
        for per_second in [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let b = Broker::builder().publish_rate(RateLimit {
                per_second,
                burst: 1,
            });
            assert_eq!(refused(b), Setting::PublishRate, "{per_second}");
        }
        let b = Broker::builder().publish_rate(RateLimit {
            per_second: 0.0,
            burst: 1,
        });
        assert!(b.without_publish_rate().check().is_ok());
    }

    #[test]
    fn the_error_names_the_method_and_the_flag() {
        let e = Broker::builder()
            .keepalive_interval(Duration::ZERO)
            .check()
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("keepalive_interval (--keepalive-secs): "),
            "{text}"
        );
        let e = Broker::builder()
            .reconnect_base(Duration::MAX)
            .check()
            .unwrap_err();
        assert!(e.to_string().starts_with("reconnect_base: "), "{e}");
    }

    fn extreme_duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::from_nanos(1)),
            Just(Duration::MAX),
            Just(Duration::from_secs(u64::MAX)),
            Just(MAX_DURATION),
            any::<u64>().prop_map(Duration::from_millis),
            any::<u64>().prop_map(Duration::from_nanos),
        ]
    }

    fn extreme_count() -> impl Strategy<Value = usize> {
        prop_oneof![Just(0), Just(1), Just(usize::MAX), any::<usize>()]
    }

    fn extreme_rate() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            Just(f64::MIN_POSITIVE),
            Just(f64::MAX),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-1.0),
            any::<f64>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the settings, building either refuses them or yields a broker that
        /// publishes, connects, requests an approval and drains without panicking.
        #[test]
        fn extreme_settings_never_panic(
            durations in proptest::collection::vec(extreme_duration(), 7),
            counts in proptest::collection::vec(extreme_count(), 6),
            per_second in extreme_rate(),
            burst in any::<u32>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let built = Broker::builder()
                    .keepalive_interval(durations[0])
                    .reconnect_base(durations[1])
                    .reconnect_backoff_max(durations[2])
                    .session_ttl(durations[3])
                    .client_timeout(durations[4])
                    .supersede_grace(durations[5])
                    .approval_timeout(durations[6])
                    .ring_max_events(counts[0])
                    .ring_max_bytes(counts[1])
                    .total_ring_bytes(counts[2])
                    .max_event_bytes(counts[3])
                    .max_sessions(counts[4])
                    .max_approval_bytes(counts[5])
                    .publish_rate(RateLimit { per_second, burst })
                    .start();
                let Ok(broker) = built else { return };
                let s = SessionId::new("s").unwrap();
                for i in 0..3 {
                    let _ = broker.publish(&s, &i);
                }
                if let Ok(mut stream) = broker.connect(&s, ConnectOptions::default()) {
                    use futures_util::StreamExt;
                    let _ = stream.next().await;
                }
                let _ = broker.request_approval(&s, crate::ApprovalRequest::new(serde_json::json!({"a": 1})));
                broker.drain(Duration::MAX);
                let _ = broker.drain_retry_hint();
            });
        }
    }

    #[tokio::test]
    async fn a_drain_of_duration_max_spreads_over_a_day() {
        let broker = Broker::builder().start().expect("valid config");
        broker.drain(Duration::MAX);
        for _ in 0..100 {
            assert!(broker.drain_retry_hint() <= MAX_DURATION);
        }
    }
}
