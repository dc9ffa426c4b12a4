//! The flags of `tether serve` that bound what one client, or a flood of them, can take.

use std::time::Duration;

use clap::Args;
use tether_core::server::ConnectionLimits;

/// Connection limits and timeouts (flattened into `tether serve`'s flags).
#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// Connections kept open at once (streams, requests, idle keep-alives). When full, the
    /// oldest idle connection is closed to make room; with none idle, an event-stream request
    /// gets 200 with a `retry:` and other requests 503 with `Retry-After`. Default: the
    /// open-files limit (raised to its hard maximum at startup) minus 512.
    #[arg(long, env = "TETHER_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<usize>,
    /// Connections one peer address may hold (0 = no limit). Behind a proxy every connection
    /// comes from the proxy: leave it at 0 there.
    #[arg(long, env = "TETHER_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub(crate) max_connections_per_ip: usize,
    /// Seconds a request head may take to arrive in full (from the accept, or from its first
    /// byte on a kept-alive connection); slower heads are cut.
    #[arg(long, env = "TETHER_HEAD_TIMEOUT_SECS", default_value_t = 10)]
    pub(crate) head_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request (not the SSE heartbeat:
    /// that is --keepalive-secs).
    #[arg(long, env = "TETHER_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub(crate) idle_timeout_secs: u64,
    /// Sessions alive at once; a publish or connect that would create one more gets 503
    /// `too_many_sessions` (health stays 200 and reports the refusals under `"limits"`).
    #[arg(long, env = "TETHER_MAX_SESSIONS", default_value_t = 100_000)]
    pub(crate) max_sessions: usize,
    /// Seconds a session without a connection, a publish or a pending approval lives on.
    #[arg(long, env = "TETHER_SESSION_TTL_SECS", default_value_t = 900)]
    pub(crate) session_ttl_secs: u64,
    /// Bytes all sessions may hold together: event history, AG-UI tracker state and approval
    /// payloads. Over it, the sessions idle longest lose their history first (their clients
    /// resume into a resync), then the publishing session its oldest events; when only state
    /// in use is left, new sessions and approvals get 503 `memory_budget_exceeded`.
    #[arg(long, env = "TETHER_MEMORY_BUDGET_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub(crate) memory_budget_bytes: usize,
    /// Events one publish may carry (413 `too_many_events` past it, nothing stored).
    #[arg(long, env = "TETHER_MAX_BATCH_EVENTS", default_value_t = 1000)]
    pub(crate) max_batch_events: usize,
    /// Pending approvals per session (409 `too_many_pending_approvals` past it).
    #[arg(long, env = "TETHER_MAX_PENDING_APPROVALS", default_value_t = 64)]
    pub(crate) max_pending_approvals: usize,
    /// Bytes an AG-UI session's tracker keeps for its prelude, for each of: the text and
    /// arguments streamed into the open messages and tool calls, the agent state, the
    /// completed messages (the oldest leave the snapshot past it). A publish that would pass
    /// either of the first two is refused with 413 `prelude_too_large`: a prelude cut short
    /// would not be a valid AG-UI stream.
    #[arg(long, env = "TETHER_MAX_PRELUDE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub(crate) max_prelude_bytes: usize,
    /// Largest approval payload, as sent (413 `approval_too_large` past it).
    /// Default: --max-event-bytes.
    #[arg(long, env = "TETHER_MAX_APPROVAL_BYTES")]
    pub(crate) max_approval_bytes: Option<usize>,
}

impl LimitArgs {
    /// The broker's limits on batches and approvals.
    pub(crate) fn broker(&self, builder: tether_core::BrokerBuilder) -> tether_core::BrokerBuilder {
        let builder = builder
            .max_sessions(self.max_sessions.max(1))
            .session_ttl(Duration::from_secs(self.session_ttl_secs.max(1)))
            .total_ring_bytes(self.memory_budget_bytes)
            .max_batch_events(self.max_batch_events)
            .max_pending_approvals(self.max_pending_approvals);
        match self.max_approval_bytes {
            Some(n) => builder.max_approval_bytes(n),
            None => builder,
        }
    }

    /// What an AG-UI session's tracker keeps.
    pub(crate) fn tracker(&self) -> tether_agui::TrackerLimits {
        let n = self.max_prelude_bytes.max(1);
        tether_agui::TrackerLimits::default()
            .max_open_bytes(n)
            .max_state_bytes(n)
            .max_message_bytes(n)
    }

    /// The connection limits for a process allowed `open_files` descriptors.
    pub(crate) fn connections(&self, open_files: u64) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self
                .max_connections
                .unwrap_or_else(|| ConnectionLimits::max_connections_for(open_files)),
            max_per_ip: self.max_connections_per_ip,
            head_timeout: Duration::from_secs(self.head_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
        }
    }
}
