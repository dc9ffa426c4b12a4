//! The backplane's metric names (through the `metrics` facade, like the core's).

/// Gauge: 1 while both links to Redis answer, else 0.
pub const BACKPLANE_UP: &str = "tether_backplane_up";
/// Histogram (seconds): one append script, request to reply. Export it with
/// [`tether_core::metrics::BACKPLANE_APPEND_BUCKETS`] (the core's Prometheus installer does).
pub const APPEND_SECONDS: &str = tether_core::metrics::BACKPLANE_APPEND_SECONDS;
/// Counter: wakes received on this node's channel (dropped ones included).
pub const WAKES_TOTAL: &str = "tether_backplane_wakes_total";
/// Counter: events a node read from the log because pub/sub lost or reordered their wake
/// (seq gap, resubscribe, head check).
pub const GAPS_FILLED_TOTAL: &str = "tether_backplane_gaps_filled_total";
/// Counter: new epochs started because Redis lost a session's data; label `cause` is
/// `missing` (meta gone: restart without persistence, `FLUSHDB`, eviction) or `regression`
/// (Redis's head is below one a node has seen: a failover that lost writes).
pub const EPOCH_CHANGES_TOTAL: &str = "tether_backplane_epoch_changes_total";

/// Describes every metric of the backplane to the installed recorder.
pub fn describe() {
    metrics::describe_gauge!(BACKPLANE_UP, "1 while the node reaches Redis, else 0");
    metrics::describe_histogram!(
        APPEND_SECONDS,
        metrics::Unit::Seconds,
        "one append to the session's Redis log"
    );
    metrics::describe_counter!(WAKES_TOTAL, "wakes received on this node's channel");
    metrics::describe_counter!(
        GAPS_FILLED_TOTAL,
        "events read from the log because pub/sub lost their wake"
    );
    metrics::describe_counter!(
        EPOCH_CHANGES_TOTAL,
        "new epochs started because Redis lost a session's data"
    );
}

/// The causes of [`EPOCH_CHANGES_TOTAL`] a node counts.
const EPOCH_CAUSES: [&str; 2] = ["missing", "regression"];

/// The handles of every series the backplane writes, registered once with the recorder
/// installed when the backplane starts (each series at 0, so a `rate()` over it works before
/// its first event): an append and a wake skip the facade's lookup.
pub(crate) struct Handles {
    pub(crate) up: metrics::Gauge,
    pub(crate) append_seconds: metrics::Histogram,
    pub(crate) wakes: metrics::Counter,
    pub(crate) gaps_filled: metrics::Counter,
    epoch_changes: [metrics::Counter; 2],
}

impl Handles {
    pub(crate) fn register() -> Self {
        let handles = Self {
            up: metrics::gauge!(BACKPLANE_UP),
            append_seconds: metrics::histogram!(APPEND_SECONDS),
            wakes: metrics::counter!(WAKES_TOTAL),
            gaps_filled: metrics::counter!(GAPS_FILLED_TOTAL),
            epoch_changes: EPOCH_CAUSES
                .map(|cause| metrics::counter!(EPOCH_CHANGES_TOTAL, "cause" => cause)),
        };
        handles.up.set(1.0);
        handles.wakes.increment(0);
        handles.gaps_filled.increment(0);
        for c in &handles.epoch_changes {
            c.increment(0);
        }
        handles
    }

    /// Counts an epoch change the scripts reported; `false` for a cause that is none (a new
    /// session, or no change).
    pub(crate) fn epoch_changed(&self, cause: &str) -> bool {
        let Some(i) = EPOCH_CAUSES.iter().position(|c| *c == cause) else {
            return false;
        };
        self.epoch_changes[i].increment(1);
        true
    }
}
