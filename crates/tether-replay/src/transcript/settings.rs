//! The transcript's settings (its `config` line) and how they compare with a server's.
//!
//! They describe the server a transcript needs rather than what it does, and both the
//! in-process driver and the CLI's settings check read them, so they stand apart from the
//! steps.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Settings that apply to the whole transcript: the broker the in-process driver builds, and
/// what the checker expects of any server (its keepalive interval).
///
/// On the wire it is an optional first line `{"op":"config", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The server's keepalive interval in milliseconds, `null` when heartbeats are off.
    /// Default is 15000 (the runbook's `keepalive_interval: 15`).
    #[serde(default = "default_keepalive")]
    pub keepalive_ms: Option<u64>,
    /// The server's client timeout in milliseconds. Default is 60000.
    #[serde(default = "default_client_timeout")]
    pub client_timeout_ms: u64,
    /// Events a session's ring keeps. Default is 1024.
    #[serde(default = "default_ring")]
    pub ring_max_events: usize,
    /// Bytes a session's ring keeps. Default is 1 MiB (1048576).
    #[serde(default = "default_ring_bytes")]
    pub ring_max_bytes: usize,
    /// The largest encoded event the server accepts. Default is 256 KiB (262144).
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// What a second connection to a session does: `replace` (the default) or `reject`.
    #[serde(default)]
    pub connection_policy: Policy,
    /// Timeout of approval requests that name none, in milliseconds. Default is 300000.
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_ms: u64,
    /// How much longer than the keepalive interval a reading client may go without a byte
    /// before the checker reports silence, in milliseconds. Default is 1000.
    #[serde(default = "default_tolerance")]
    pub silence_tolerance_ms: u64,
}

fn default_keepalive() -> Option<u64> {
    Some(15_000)
}
fn default_client_timeout() -> u64 {
    60_000
}
fn default_ring() -> usize {
    1024
}
fn default_ring_bytes() -> usize {
    1024 * 1024
}
fn default_max_event_bytes() -> usize {
    256 * 1024
}
fn default_approval_timeout() -> u64 {
    300_000
}
fn default_tolerance() -> u64 {
    1_000
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            keepalive_ms: default_keepalive(),
            client_timeout_ms: default_client_timeout(),
            ring_max_events: default_ring(),
            ring_max_bytes: default_ring_bytes(),
            max_event_bytes: default_max_event_bytes(),
            connection_policy: Policy::default(),
            approval_timeout_ms: default_approval_timeout(),
            silence_tolerance_ms: default_tolerance(),
        }
    }
}

impl Settings {
    /// A broker builder with these settings, every duration multiplied by `time_scale` (1.0
    /// for the in-process driver; the HTTP tests scale a server down to match a sped-up
    /// replay).
    pub fn broker_builder(&self, time_scale: f64) -> tether_core::BrokerBuilder {
        let ms = |v: u64| std::time::Duration::from_secs_f64(v as f64 * time_scale / 1000.0);
        let builder = match self.keepalive_ms.filter(|&k| k > 0) {
            Some(k) => tether_core::Broker::builder().keepalive_interval(ms(k)),
            None => tether_core::Broker::builder().without_heartbeats(),
        };
        builder
            .client_timeout(ms(self.client_timeout_ms))
            .ring_max_events(self.ring_max_events)
            .ring_max_bytes(self.ring_max_bytes)
            .max_event_bytes(self.max_event_bytes)
            .connection_policy(match self.connection_policy {
                Policy::Replace => tether_core::ConnectionPolicy::Replace,
                Policy::Reject => tether_core::ConnectionPolicy::Reject,
            })
            .approval_timeout(ms(self.approval_timeout_ms))
    }

    /// What a server reporting these settings (the `"settings"` object of `/health/sse`)
    /// says for the server setting `name`, durations multiplied by `time_scale` and rounded
    /// to whole milliseconds; `None` for a name that is not one of [`SERVER_SETTINGS`].
    pub fn server_value(&self, name: &str, time_scale: f64) -> Option<Value> {
        let ms = |v: u64| Value::from((v as f64 * time_scale).round() as u64);
        Some(match name {
            "keepalive_ms" => self.keepalive_ms.map_or(Value::Null, ms),
            "client_timeout_ms" => ms(self.client_timeout_ms),
            "approval_timeout_ms" => ms(self.approval_timeout_ms),
            "ring_max_events" => self.ring_max_events.into(),
            "ring_max_bytes" => self.ring_max_bytes.into(),
            "max_event_bytes" => self.max_event_bytes.into(),
            "connection_policy" => self.connection_policy.as_str().into(),
            _ => return None,
        })
    }
}

/// The config fields that describe the server (as `/health/sse` reports them under
/// `"settings"`), as opposed to the checker's own (`silence_tolerance_ms`).
pub const SERVER_SETTINGS: [&str; 7] = [
    "ring_max_events",
    "ring_max_bytes",
    "keepalive_ms",
    "client_timeout_ms",
    "max_event_bytes",
    "approval_timeout_ms",
    "connection_policy",
];

/// The connection policy a transcript needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The newer connection wins; the older stream ends with `tether.superseded`. The
    /// default.
    #[default]
    Replace,
    /// The newer connection is refused with 409.
    Reject,
}

impl Policy {
    /// The wire name, as `/health/sse` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Reject => "reject",
        }
    }
}

/// A server setting that differs from what a transcript needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingMismatch {
    /// The setting (one of [`SERVER_SETTINGS`]).
    pub name: &'static str,
    /// What the transcript needs, in the server's time (scaled).
    pub needed: Value,
    /// What the transcript says, unscaled (differs from `needed` when the time scale is not 1).
    pub written: Value,
    /// What the server reports; `None` when it reports nothing for it.
    pub server: Option<Value>,
}

impl fmt::Display for SettingMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: transcript needs {}", self.name, self.needed)?;
        if self.written != self.needed {
            write!(f, " ({} in transcript time)", self.written)?;
        }
        match &self.server {
            Some(v) => write!(f, ", server has {v}"),
            None => write!(f, ", server does not report it"),
        }
    }
}
