//! Metric names (the runbook's, so its PromQL and alert rules work unchanged) and the
//! buckets their histograms should be exported with.
//!
//! Metrics go through the [`metrics`] facade; the application installs the exporter.

/// Gauge: open SSE connections.
pub const ACTIVE_CONNECTIONS: &str = "sse_active_connections";
/// Histogram: how long connections lasted, in seconds.
pub const CONNECTION_DURATION_SECONDS: &str = "sse_connection_duration_seconds";
/// Counter: ended connections by `reason`: the runbook's client_closed, superseded, timeout,
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
