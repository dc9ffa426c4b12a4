//! Metric names (the runbook's, so its PromQL and alert rules work unchanged) and the
//! buckets their histograms should be exported with.
//!
//! Metrics go through the [`metrics`] facade; the application installs the exporter.
//!
//! # Registered once, present from the first scrape
//!
//! A broker registers every series it writes when it is built
//! ([`BrokerBuilder::build`](crate::BrokerBuilder::build)), each label value it knows
//! ([`DISCONNECT_REASONS`], [`RESYNC_REASONS`], [`EVICTION_CAUSES`], [`APPROVAL_OUTCOMES`])
//! included, and keeps the handles: a fresh node's `/metrics` already shows every series at 0
//! (so the runbook's queries and `rate()` see the first increment), and the hot path does no
//! recorder lookup. **Install the recorder before building the broker** (as
//! [`install_prometheus`] then `Broker::builder()...build()`); a broker built before it keeps
//! writing to the no-op recorder until [`Broker::rebind_metrics`](crate::Broker::rebind_metrics)
//! registers its handles again with the recorder now installed.

/// Gauge: open SSE connections.
pub const ACTIVE_CONNECTIONS: &str = "sse_active_connections";
/// Histogram: how long connections lasted, in seconds.
pub const CONNECTION_DURATION_SECONDS: &str = "sse_connection_duration_seconds";
/// Counter: ended connections by `reason` (token_expired: the stream reached its token's
/// expiry and told its client to come back with a fresh one): the runbook's client_closed, superseded, timeout,
/// drain and error, plus removed (the session was removed) and lagged (an AG-UI stream fell
/// behind its ring and ends so its client resyncs on a fresh response).
pub const DISCONNECTS_TOTAL: &str = "sse_disconnects_total";
/// Counter: connects that carried a `Last-Event-ID`.
pub const RECONNECTS_TOTAL: &str = "sse_reconnects_total";
/// Counter: resyncs by `reason` (evicted, epoch, ahead, unknown).
pub const RESYNCS_TOTAL: &str = "sse_resyncs_total";
/// Counter: events stored.
pub const EVENTS_PUBLISHED_TOTAL: &str = "sse_events_published_total";
/// Counter: stored events written to connections (replays included).
pub const EVENTS_DELIVERED_TOTAL: &str = "sse_events_delivered_total";
/// Counter: events evicted from rings, by `cause` (ring, budget).
pub const EVENTS_EVICTED_TOTAL: &str = "sse_events_evicted_total";
/// Counter: evicted events that no client had read.
pub const EVENTS_EVICTED_UNREAD_TOTAL: &str = "sse_events_evicted_unread_total";
/// Counter: heartbeats written.
pub const HEARTBEATS_TOTAL: &str = "sse_heartbeats_total";
/// Gauge: sessions alive.
pub const SESSIONS_ACTIVE: &str = "sse_sessions_active";
/// Counter: approval requests.
pub const APPROVAL_REQUESTS_TOTAL: &str = "approval_requests_total";
/// Counter: approval resolutions by `outcome` (approved, rejected, timed_out, cancelled).
pub const APPROVAL_DECISIONS_TOTAL: &str = "approval_decisions_total";
/// Histogram: seconds from request to resolution.
pub const APPROVAL_WAIT_SECONDS: &str = "approval_wait_seconds";

/// Counter: requests or connections refused by a limit, by `limit` (connections,
/// connections_per_ip, batch_events, pending_approvals, approval_bytes, ...).
pub const LIMIT_REFUSALS_TOTAL: &str = "sse_limit_refusals_total";

/// Gauge, always 1: the build, labelled `version`.
pub const BUILD_INFO: &str = "tether_build_info";

/// The `reason` values of [`DISCONNECTS_TOTAL`].
pub const DISCONNECT_REASONS: &[&str] = &[
    "client_closed",
    "superseded",
    "timeout",
    "drain",
    "error",
    "removed",
    "lagged",
    "token_expired",
];
/// The `reason` values of [`RESYNCS_TOTAL`].
pub const RESYNC_REASONS: &[&str] = &["evicted", "epoch", "ahead", "unknown"];
/// The `cause` values of [`EVENTS_EVICTED_TOTAL`]: the session's ring bound, the broker-wide
/// budget, and events a backplane lost.
pub const EVICTION_CAUSES: &[&str] = &["ring", "budget", "lost"];
/// The `outcome` values of [`APPROVAL_DECISIONS_TOTAL`].
pub const APPROVAL_OUTCOMES: &[&str] = &["approved", "rejected", "timed_out", "cancelled"];

/// Every series a broker registers at build time, with its labels: what a fresh node's
/// `/metrics` shows at 0. Histograms are named by their base name.
pub fn registered_series() -> Vec<(&'static str, Option<(&'static str, &'static str)>)> {
    let mut out = vec![
        (ACTIVE_CONNECTIONS, None),
        (CONNECTION_DURATION_SECONDS, None),
        (RECONNECTS_TOTAL, None),
        (EVENTS_PUBLISHED_TOTAL, None),
        (EVENTS_DELIVERED_TOTAL, None),
        (EVENTS_EVICTED_UNREAD_TOTAL, None),
        (HEARTBEATS_TOTAL, None),
        (SESSIONS_ACTIVE, None),
        (APPROVAL_REQUESTS_TOTAL, None),
        (APPROVAL_WAIT_SECONDS, None),
        (BUILD_INFO, Some(("version", env!("CARGO_PKG_VERSION")))),
    ];
    let labelled: [(&'static str, &'static str, &'static [&'static str]); 4] = [
        (DISCONNECTS_TOTAL, "reason", DISCONNECT_REASONS),
        (RESYNCS_TOTAL, "reason", RESYNC_REASONS),
        (EVENTS_EVICTED_TOTAL, "cause", EVICTION_CAUSES),
        (APPROVAL_DECISIONS_TOTAL, "outcome", APPROVAL_OUTCOMES),
    ];
    for (name, label, values) in labelled {
        out.extend(values.iter().map(|v| (name, Some((label, *v)))));
    }
    out
}

/// The handles of every series a broker writes, registered once with the recorder installed
/// at the time.
pub(crate) struct Handles {
    pub(crate) active_connections: metrics::Gauge,
    pub(crate) connection_duration: metrics::Histogram,
    disconnects: Vec<metrics::Counter>,
    pub(crate) reconnects: metrics::Counter,
    resyncs: Vec<metrics::Counter>,
    pub(crate) published: metrics::Counter,
    pub(crate) delivered: metrics::Counter,
    evicted: Vec<metrics::Counter>,
    pub(crate) evicted_unread: metrics::Counter,
    pub(crate) heartbeats: metrics::Counter,
    pub(crate) sessions_active: metrics::Gauge,
    pub(crate) approval_requests: metrics::Counter,
    decisions: Vec<metrics::Counter>,
    pub(crate) approval_wait: metrics::Histogram,
}

fn labelled(
    name: &'static str,
    label: &'static str,
    values: &[&'static str],
) -> Vec<metrics::Counter> {
    values
        .iter()
        .map(|v| metrics::counter!(name, label => *v))
        .collect()
}

fn pick<'a>(handles: &'a [metrics::Counter], values: &[&str], value: &str) -> &'a metrics::Counter {
    let i = values.iter().position(|v| *v == value).unwrap_or(0);
    &handles[i]
}

impl Handles {
    /// Registers every series (at 0) with the current recorder and keeps the handles.
    pub(crate) fn register() -> Self {
        describe();
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Self {
            active_connections: metrics::gauge!(ACTIVE_CONNECTIONS),
            connection_duration: metrics::histogram!(CONNECTION_DURATION_SECONDS),
            disconnects: labelled(DISCONNECTS_TOTAL, "reason", DISCONNECT_REASONS),
            reconnects: metrics::counter!(RECONNECTS_TOTAL),
            resyncs: labelled(RESYNCS_TOTAL, "reason", RESYNC_REASONS),
            published: metrics::counter!(EVENTS_PUBLISHED_TOTAL),
            delivered: metrics::counter!(EVENTS_DELIVERED_TOTAL),
            evicted: labelled(EVENTS_EVICTED_TOTAL, "cause", EVICTION_CAUSES),
            evicted_unread: metrics::counter!(EVENTS_EVICTED_UNREAD_TOTAL),
            heartbeats: metrics::counter!(HEARTBEATS_TOTAL),
            sessions_active: metrics::gauge!(SESSIONS_ACTIVE),
            approval_requests: metrics::counter!(APPROVAL_REQUESTS_TOTAL),
            decisions: labelled(APPROVAL_DECISIONS_TOTAL, "outcome", APPROVAL_OUTCOMES),
            approval_wait: metrics::histogram!(APPROVAL_WAIT_SECONDS),
        }
    }

    /// `sse_disconnects_total{reason}`; a reason outside [`DISCONNECT_REASONS`] (there is
    /// none) would count as the first.
    pub(crate) fn disconnects(&self, reason: &str) -> &metrics::Counter {
        pick(&self.disconnects, DISCONNECT_REASONS, reason)
    }
    /// `sse_resyncs_total{reason}`.
    pub(crate) fn resyncs(&self, reason: &str) -> &metrics::Counter {
        pick(&self.resyncs, RESYNC_REASONS, reason)
    }
    /// `sse_events_evicted_total{cause}`.
    pub(crate) fn evicted(&self, cause: &str) -> &metrics::Counter {
        pick(&self.evicted, EVICTION_CAUSES, cause)
    }
    /// `approval_decisions_total{outcome}`.
    pub(crate) fn decisions(&self, outcome: &str) -> &metrics::Counter {
        pick(&self.decisions, APPROVAL_OUTCOMES, outcome)
    }
}

/// The standard process metrics of the Prometheus client libraries, as exposition text:
/// `process_resident_memory_bytes`, `process_open_fds`, `process_cpu_seconds_total` and
/// `process_start_time_seconds`, read from `/proc/self` (Linux; empty elsewhere). Append it
/// to the recorder's render on every scrape.
pub fn process_metrics_text() -> String {
    #[cfg(target_os = "linux")]
    {
        linux_process::text()
    }
    #[cfg(not(target_os = "linux"))]
    {
        String::new()
    }
}

#[cfg(target_os = "linux")]
mod linux_process {
    use std::fmt::Write as _;

    /// Clock ticks per second of `/proc/*/stat` times: `USER_HZ`, 100 on every Linux
    /// architecture's user-space ABI.
    const TICKS: f64 = 100.0;
    const PAGE: u64 = 4096;

    fn stat_fields() -> Option<Vec<String>> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        Some(rest.split_whitespace().map(str::to_owned).collect())
    }

    fn boot_time() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    }

    pub(super) fn text() -> String {
        let mut out = String::new();
        let fields = stat_fields().unwrap_or_default();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        // After the name: state is field 0, utime 11, stime 12, starttime 19, rss 21.
        if let (Some(u), Some(s)) = (field(11), field(12)) {
            let _ = write!(
                out,
                "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n",
                (u + s) as f64 / TICKS
            );
        }
        let rss = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
        if let Some(pages) = rss {
            let _ = write!(
                out,
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n",
                pages * PAGE
            );
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries.
            let n = dir.count().saturating_sub(1);
            let _ = write!(
                out,
                "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {n}\n"
            );
        }
        if let (Some(start), Some(boot)) = (field(19), boot_time()) {
            let _ = write!(
                out,
                "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}\n",
                boot as f64 + start as f64 / TICKS
            );
        }
        out
    }
}

/// Buckets for [`CONNECTION_DURATION_SECONDS`].
pub const CONNECTION_DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Buckets for [`APPROVAL_WAIT_SECONDS`].
pub const APPROVAL_WAIT_BUCKETS: &[f64] =
    &[1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// Histogram (seconds): one append to a backplane's log, publish to reply (`tether-redis`).
pub const BACKPLANE_APPEND_SECONDS: &str = "tether_backplane_append_seconds";
/// Buckets for [`BACKPLANE_APPEND_SECONDS`].
pub const BACKPLANE_APPEND_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0,
];

/// Every histogram with its buckets, for exporters that need them spelled out.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (CONNECTION_DURATION_SECONDS, CONNECTION_DURATION_BUCKETS),
    (APPROVAL_WAIT_SECONDS, APPROVAL_WAIT_BUCKETS),
    (BACKPLANE_APPEND_SECONDS, BACKPLANE_APPEND_BUCKETS),
];

/// Registers every metric's description with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(ACTIVE_CONNECTIONS, "Open SSE connections.");
    describe_histogram!(
        CONNECTION_DURATION_SECONDS,
        Unit::Seconds,
        "SSE connection lifetimes."
    );
    describe_counter!(DISCONNECTS_TOTAL, "Ended SSE connections by reason.");
    describe_counter!(
        RECONNECTS_TOTAL,
        "SSE connects that carried a Last-Event-ID."
    );
    describe_counter!(
        RESYNCS_TOTAL,
        "Streams that could not resume exactly, by reason."
    );
    describe_counter!(EVENTS_PUBLISHED_TOTAL, "Events stored.");
    describe_counter!(
        EVENTS_DELIVERED_TOTAL,
        "Stored events written to connections."
    );
    describe_counter!(EVENTS_EVICTED_TOTAL, "Events evicted from rings, by cause.");
    describe_counter!(
        EVENTS_EVICTED_UNREAD_TOTAL,
        "Evicted events no client had read."
    );
    describe_counter!(HEARTBEATS_TOTAL, "Heartbeats written.");
    describe_gauge!(SESSIONS_ACTIVE, "Sessions alive.");
    describe_counter!(APPROVAL_REQUESTS_TOTAL, "Approval requests.");
    describe_counter!(
        LIMIT_REFUSALS_TOTAL,
        "Requests refused by a limit, by limit."
    );
    describe_counter!(APPROVAL_DECISIONS_TOTAL, "Approval resolutions by outcome.");
    describe_histogram!(
        APPROVAL_WAIT_SECONDS,
        Unit::Seconds,
        "Time from approval request to resolution."
    );
    describe_gauge!(BUILD_INFO, "The tether build, labelled version; always 1.");
}

/// Installs the Prometheus recorder as the global one, with the explicit buckets of
/// [`HISTOGRAMS`] (without them the exporter renders summaries, and the runbook's
/// `histogram_quantile(..._bucket)` finds nothing), and describes every metric. Serve
/// [`PrometheusHandle::render`](metrics_exporter_prometheus::PrometheusHandle::render) on a
/// route of your own, e.g. `/metrics`; call
/// [`run_upkeep`](metrics_exporter_prometheus::PrometheusHandle::run_upkeep) every few
/// seconds. Feature `prometheus`.
#[cfg(feature = "prometheus")]
pub fn install_prometheus()
-> Result<metrics_exporter_prometheus::PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in HISTOGRAMS {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)?;
    }
    let handle = builder.install_recorder()?;
    describe();
    Ok(handle)
}
