//! The limits a broker and its server enforce, and how often each refused: counted in
//! `sse_limit_refusals_total{limit}`, logged at most once per limit every 10 s, and reported in
//! `/health/sse` under `"limits"`, while health itself stays 200 (a 503 would make the load
//! balancer drop every stream of a full node).

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::metrics::LIMIT_REFUSALS_TOTAL;

/// At most one log line per limit in this interval, carrying the count since the last one.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Entry {
    max: u64,
    refused: u64,
    unlogged: u64,
    last_log: Option<Instant>,
}

/// Every limit by name.
#[derive(Debug, Default)]
pub(crate) struct LimitBook {
    entries: Mutex<BTreeMap<&'static str, Entry>>,
}

impl LimitBook {
    pub(crate) fn declare(&self, name: &'static str, max: u64) {
        self.entries.lock().entry(name).or_default().max = max;
        metrics::counter!(LIMIT_REFUSALS_TOTAL, "limit" => name).absolute(0);
    }

    pub(crate) fn refuse(&self, name: &'static str) {
        metrics::counter!(LIMIT_REFUSALS_TOTAL, "limit" => name).increment(1);
        let now = Instant::now();
        let mut entries = self.entries.lock();
        let e = entries.entry(name).or_default();
        e.refused += 1;
        e.unlogged += 1;
        if e.last_log
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            e.last_log = Some(now);
            let count = std::mem::take(&mut e.unlogged);
            let max = e.max;
            drop(entries);
            tracing::warn!(
                limit = name,
                max,
                refused = count,
                "SSE limit reached: refusing"
            );
        }
    }

    pub(crate) fn report(&self) -> Value {
        let entries = self.entries.lock();
        Value::Object(
            entries
                .iter()
                .map(|(name, e)| {
                    (
                        (*name).to_owned(),
                        json!({"max": e.max, "refused": e.refused}),
                    )
                })
                .collect(),
        )
    }
}

impl Broker {
    /// Declares a limit of the server around this broker (a connection cap, say), so that
    /// `/health/sse` reports it with its refusals.
    pub fn declare_limit(&self, name: &'static str, max: u64) {
        self.inner.limits.declare(name, max);
    }

    /// Counts one refusal by the limit `name` (and logs it at a bounded rate).
    pub fn refuse_by_limit(&self, name: &'static str) {
        self.inner.limits.refuse(name);
    }

    /// Every declared limit with its maximum and how many requests it refused, as
    /// `/health/sse` reports them: `{"<name>": {"max": .., "refused": ..}}`.
    pub fn limits_report(&self) -> Value {
        self.inner.limits.report()
    }
}
