//! The proxy's metrics, in the style of the broker's: every series registered at 0 when the
//! proxy is built, so dashboards and alert rules see them before the first run.

use std::time::Duration;

/// Runs forwarded to the agent, by how they ended (`outcome`).
pub(crate) const RUNS_TOTAL: &str = "tether_agent_runs_total";
/// Seconds from a run's start to its last event.
pub(crate) const RUN_DURATION_SECONDS: &str = "tether_agent_run_duration_seconds";
/// Failed calls to the agent, by kind.
pub(crate) const UPSTREAM_ERRORS_TOTAL: &str = "tether_agent_upstream_errors_total";

/// Buckets of [`RUN_DURATION_SECONDS`]: agent runs take from a second to the 600 s deadline.
pub(crate) const RUN_DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// How a run ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `RUN_FINISHED` from the agent.
    Finished,
    /// `RUN_FINISHED` with an interrupt outcome: the thread waits for approvals.
    Interrupted,
    /// `RUN_ERROR` from the agent itself.
    AgentError,
    /// The call failed: unreachable, an error status, a broken or unfinished stream.
    UpstreamError,
    /// The agent sent an event that is not valid AG-UI, or not valid at that point.
    InvalidEvent,
    /// The run passed `--agent-timeout-secs`.
    Timeout,
    /// `DELETE /api/agui/run/{threadId}`.
    Cancelled,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Finished,
        Outcome::Interrupted,
        Outcome::AgentError,
        Outcome::UpstreamError,
        Outcome::InvalidEvent,
        Outcome::Timeout,
        Outcome::Cancelled,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Finished => "finished",
            Outcome::Interrupted => "interrupted",
            Outcome::AgentError => "agent_error",
            Outcome::UpstreamError => "upstream_error",
            Outcome::InvalidEvent => "invalid_event",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The `kind` labels of [`UPSTREAM_ERRORS_TOTAL`].
const ERROR_KINDS: [&str; 8] = [
    "connect",
    "request",
    "status",
    "content_type",
    "stream",
    "closed_early",
    "invalid_event",
    "timeout",
];

/// The handles the proxy writes.
#[derive(Debug)]
pub(crate) struct Metrics {
    runs: Vec<metrics::Counter>,
    duration: metrics::Histogram,
    errors: Vec<metrics::Counter>,
}

impl Metrics {
    /// Describes and registers every series with the installed recorder.
    pub(crate) fn register() -> Self {
        metrics::describe_counter!(RUNS_TOTAL, "Runs forwarded to the agent, by outcome.");
        metrics::describe_histogram!(
            RUN_DURATION_SECONDS,
            metrics::Unit::Seconds,
            "Forwarded runs from start to their last event."
        );
        metrics::describe_counter!(UPSTREAM_ERRORS_TOTAL, "Failed calls to the agent, by kind.");
        Self {
            runs: Outcome::ALL
                .iter()
                .map(|o| metrics::counter!(RUNS_TOTAL, "outcome" => o.as_str()))
                .collect(),
            duration: metrics::histogram!(RUN_DURATION_SECONDS),
            errors: ERROR_KINDS
                .iter()
                .map(|k| metrics::counter!(UPSTREAM_ERRORS_TOTAL, "kind" => *k))
                .collect(),
        }
    }

    /// Counts one ended run.
    pub(crate) fn run_ended(&self, outcome: Outcome, took: Duration) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.runs[i].increment(1);
        self.duration.record(took.as_secs_f64());
    }

    /// Counts one failed call of `kind` (one of the kinds above).
    pub(crate) fn upstream_error(&self, kind: &str) {
        if let Some(i) = ERROR_KINDS.iter().position(|k| *k == kind) {
            self.errors[i].increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_exists_at_zero_and_counts() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let m = metrics::with_local_recorder(&recorder, Metrics::register);
        m.run_ended(Outcome::Timeout, Duration::from_secs(2));
        m.upstream_error("status");
        let counters: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match value {
                metrics_util::debugging::DebugValue::Counter(n) => {
                    let k = key.key();
                    let label = k.labels().map(|l| l.value().to_owned()).collect::<String>();
                    Some((format!("{}{{{label}}}", k.name()), n))
                }
                _ => None,
            })
            .collect();
        assert_eq!(counters.len(), Outcome::ALL.len() + ERROR_KINDS.len());
        assert!(counters.contains(&("tether_agent_runs_total{timeout}".into(), 1)));
        assert!(counters.contains(&("tether_agent_runs_total{finished}".into(), 0)));
        assert!(counters.contains(&("tether_agent_upstream_errors_total{status}".into(), 1)));
    }
}
