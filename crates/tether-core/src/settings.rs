//! The broker settings that clients of the HTTP contract may depend on, as `/health/sse`
//! reports them under `"settings"`.

use serde::Serialize;

use crate::broker::Broker;
use crate::config::ConnectionPolicy;

/// What a client can rely on about a broker: how much history a session keeps, how often a
/// quiet stream writes a heartbeat, how soon a client that stops reading is dropped, the
/// largest event, and what a second connection to a session does. Read it with
/// [`Broker::settings`]; `/health/sse` serves it as its `"settings"` object, so a test
/// harness can check that a server is configured the way a transcript needs.
///
/// Durations are whole milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BrokerSettings {
    /// Events each session's ring keeps.
    pub ring_max_events: usize,
    /// Bytes each session's ring keeps.
    pub ring_max_bytes: usize,
    /// The keepalive interval; `None` (`null`) when heartbeats are off.
    pub keepalive_ms: Option<u64>,
    /// How long a client may stop reading before it is dropped.
    pub client_timeout_ms: u64,
    /// The largest encoded event accepted.
    pub max_event_bytes: usize,
    /// The deadline of approval requests that name none.
    pub approval_timeout_ms: u64,
    /// What a second connection to a session does: `"replace"` or `"reject"`.
    pub connection_policy: &'static str,
    /// The longest `retry:` hint a stream is given.
    pub reconnect_backoff_max_ms: u64,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Broker {
    /// The settings a client may depend on (served by `/health/sse` as `"settings"`).
    pub fn settings(&self) -> BrokerSettings {
        let c = self.config();
        BrokerSettings {
            ring_max_events: c.ring_max_events(),
            ring_max_bytes: c.ring_max_bytes(),
            keepalive_ms: c.keepalive_interval().map(ms),
            client_timeout_ms: ms(c.client_timeout()),
            max_event_bytes: c.max_event_bytes(),
            approval_timeout_ms: ms(c.approval_timeout()),
            connection_policy: match c.connection_policy() {
                ConnectionPolicy::Replace => "replace",
                ConnectionPolicy::Reject => "reject",
            },
            reconnect_backoff_max_ms: ms(c.reconnect_backoff_max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn settings_mirror_the_builder() {
        let b = Broker::builder()
            .ring_max_events(8)
            .ring_max_bytes(4096)
            .without_heartbeats()
            .client_timeout(Duration::from_millis(1500))
            .max_event_bytes(1000)
            .connection_policy(ConnectionPolicy::Reject)
            .start()
            .expect("valid config");
        let s = b.settings();
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({
                "ring_max_events": 8,
                "ring_max_bytes": 4096,
                "keepalive_ms": null,
                "client_timeout_ms": 1500,
                "max_event_bytes": 1000,
                "approval_timeout_ms": 300000,
                "connection_policy": "reject",
                "reconnect_backoff_max_ms": 30000,
            })
        );
        let d = Broker::builder().start().expect("valid config").settings();
        assert_eq!(d.keepalive_ms, Some(15_000));
        assert_eq!(d.connection_policy, "replace");
    }
}
