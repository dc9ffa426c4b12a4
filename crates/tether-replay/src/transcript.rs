//! The transcript format: JSON Lines, one step per line.
//!
//! See the [crate docs](crate#the-transcript-format) and `TRANSCRIPTS.md` for the format.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// How `expect_events` compares an expected event with a received one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// The received event's JSON equals the expected one. The default.
    #[default]
    Exact,
    /// Every field of the expected JSON is present with an equal value (recursively for
    /// objects); the received event may carry more.
    Subset,
}

/// What a `decide` step expects the server to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecideExpect {
    /// The decision was accepted (HTTP 200).
    Ok,
    /// The approval was already decided (HTTP 409).
    AlreadyDecided,
    /// The approval's deadline passed (HTTP 410).
    Expired,
    /// No such approval (HTTP 404).
    Unknown,
}

impl DecideExpect {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::AlreadyDecided => "already_decided",
            Self::Expired => "expired",
            Self::Unknown => "unknown",
        }
    }
}

/// An approval's state, as `expect_approval` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not decided yet.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
    /// The deadline passed.
    TimedOut,
    /// Cancelled.
    Cancelled,
}

impl Outcome {
    /// The wire name, as in the status route's `status` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What one step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Publishes events to a session. On the wire, `"event": {...}` publishes one event and
    /// `"events": [...]` a batch (one request, one lock).
    Publish {
        /// The session.
        session: String,
        /// The events' JSON.
        events: Vec<Value>,
        /// The SSE event name (`event:` line) of every event of the step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Adds a field `"pad"` of this many characters to every event (each must be an
        /// object), so that a few events fill socket buffers: over TCP a client that stalls
        /// is slow for the server only once the kernel's buffers are full.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pad_bytes: Option<usize>,
    },
    /// A client connects to a session. A client that is connected reconnects: its old
    /// connection is closed first.
    Connect {
        /// The client's name in the transcript.
        client: String,
        /// The session.
        session: String,
        /// Sends the last id this client saw (on any earlier connection) as `Last-Event-ID`,
        /// as EventSource does when it reconnects. Default is false: a fresh client.
        #[serde(default, skip_serializing_if = "is_false")]
        resume: bool,
        /// Sends this `Last-Event-ID` instead (e.g. a foreign id, to provoke a resync).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_event_id: Option<String>,
        /// The `clientId` query parameter (names the instance for supersede without
        /// ping-pong).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Waits until the client has received `events` more stored events than the previous
    /// `read` or `expect_events` of this client consumed; without `events`, until it has
    /// caught up with the last event the transcript published to its session. Stops early
    /// when the stream ends; a wait that runs out is a violation.
    Read {
        /// The client.
        client: String,
        /// How many events to wait for; absent: until caught up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        events: Option<usize>,
        /// Longest wait in milliseconds. Default is 5000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_ms: Option<u64>,
    },
    /// The client stops reading its connection for `ms` (the transcript goes on meanwhile).
    Stall {
        /// The client.
        client: String,
        /// For how long.
        ms: u64,
    },
    /// The client closes its connection. It remembers the last id it saw, for a later
    /// `connect` with `resume`.
    Drop {
        /// The client.
        client: String,
    },
    /// Client `by` connects to the session `client` is connected to, which supersedes it:
    /// `client`'s stream must end after a `tether.superseded` signal.
    Supersede {
        /// The client that is connected.
        client: String,
        /// The client that takes the session over.
        by: String,
        /// Whether `by` sends the last id it saw. Default is false.
        #[serde(default, skip_serializing_if = "is_false")]
        resume: bool,
    },
    /// Asks for a human decision in a session.
    RequestApproval {
        /// The session.
        session: String,
        /// The approval's id.
        approval: String,
        /// A short title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// What is to be approved.
        #[serde(default)]
        payload: Value,
        /// The deadline from now, in milliseconds; absent: the server's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Decides an approval.
    Decide {
        /// The session.
        session: String,
        /// The approval's id.
        approval: String,
        /// Approve or reject.
        approved: bool,
        /// An optional reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// What the server must answer; absent: any answer is accepted (the checker still
        /// verifies that at most one decision was accepted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<DecideExpect>,
    },
    /// Lets `ms` pass (on the in-process driver's paused clock, instantly).
    Advance {
        /// How long.
        ms: u64,
    },
    /// The next stored events the client receives (after those consumed by earlier `read` and
    /// `expect_events` steps of this client) are these, in this order.
    ExpectEvents {
        /// The client.
        client: String,
        /// The events' JSON, as published.
        events: Vec<Value>,
        /// How to compare. Default is exact.
        #[serde(default, rename = "match", skip_serializing_if = "is_exact")]
        mode: Match,
        /// Longest wait for them in milliseconds. Default is 5000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_ms: Option<u64>,
    },
    /// The client receives a `tether.resync` signal (after those matched by earlier
    /// `expect_resync` steps of this client).
    ExpectResync {
        /// The client.
        client: String,
        /// The expected reason: `evicted`, `epoch`, `ahead` or `unknown`; absent: any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Longest wait in milliseconds. Default is 5000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_ms: Option<u64>,
    },
    /// The server ends the client's current stream.
    ExpectEnded {
        /// The client.
        client: String,
        /// Whether the stream must (true) or must not (false) end with a `tether.superseded`
        /// signal; absent: either.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        superseded: Option<bool>,
        /// Longest wait in milliseconds. Default is 5000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_ms: Option<u64>,
    },
    /// The approval reaches this state (waiting up to `within_ms` for a final one).
    ExpectApproval {
        /// The session.
        session: String,
        /// The approval's id.
        approval: String,
        /// The expected state.
        outcome: Outcome,
        /// Longest wait in milliseconds. Default is 5000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_ms: Option<u64>,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_exact(m: &Match) -> bool {
    *m == Match::Exact
}

impl Action {
    /// The step's `op` name.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Publish { .. } => "publish",
            Self::Connect { .. } => "connect",
            Self::Read { .. } => "read",
            Self::Stall { .. } => "stall",
            Self::Drop { .. } => "drop",
            Self::Supersede { .. } => "supersede",
            Self::RequestApproval { .. } => "request_approval",
            Self::Decide { .. } => "decide",
            Self::Advance { .. } => "advance",
            Self::ExpectEvents { .. } => "expect_events",
            Self::ExpectResync { .. } => "expect_resync",
            Self::ExpectEnded { .. } => "expect_ended",
            Self::ExpectApproval { .. } => "expect_approval",
        }
    }

    /// The client the step acts on, if any.
    pub fn client(&self) -> Option<&str> {
        match self {
            Self::Connect { client, .. }
            | Self::Read { client, .. }
            | Self::Stall { client, .. }
            | Self::Drop { client }
            | Self::Supersede { client, .. }
            | Self::ExpectEvents { client, .. }
            | Self::ExpectResync { client, .. }
            | Self::ExpectEnded { client, .. } => Some(client),
            _ => None,
        }
    }
}

/// One step: when, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Milliseconds since the start of the replay at which the step runs. Absent: right after
    /// the previous step. A time already passed (an earlier wait ran long) runs the step at
    /// once.
    pub at_ms: Option<u64>,
    /// What the step does.
    pub action: Action,
    /// The line of the transcript file it came from (1-based), 0 for steps built in code.
    pub line: usize,
}

impl Step {
    /// A step that runs right after the previous one.
    pub fn new(action: Action) -> Self {
        Self {
            at_ms: None,
            action,
            line: 0,
        }
    }

    /// Runs the step at `ms` since the start.
    #[must_use]
    pub fn at(mut self, ms: u64) -> Self {
        self.at_ms = Some(ms);
        self
    }
}

/// A transcript: settings and steps. Build one in code (each method appends a step), parse
/// one with [`Transcript::parse`], write one with [`Transcript::to_jsonl`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    /// The settings (the `config` line).
    pub settings: Settings,
    /// The server settings (of [`SERVER_SETTINGS`]) the `config` line names: with those set
    /// to a value other than the default, the settings a server must have for this
    /// transcript ([`Transcript::server_needs`]).
    pub stated: BTreeSet<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A transcript line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl Transcript {
    /// An empty transcript with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a transcript from JSON Lines. Blank lines and lines starting with `#` are
    /// skipped; the first other line may be the `config` line.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut t = Self::default();
        let mut first = true;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |message: String| ParseError { line, message };
            let value: Value =
                serde_json::from_str(trimmed).map_err(|e| err(format!("not JSON: {e}")))?;
            let Value::Object(mut map) = value else {
                return Err(err("each line must be a JSON object".into()));
            };
            let op = map
                .get("op")
                .and_then(Value::as_str)
                .ok_or_else(|| err("missing \"op\"".into()))?
                .to_owned();
            if op == "config" {
                if !first {
                    return Err(err("the config line must come first".into()));
                }
                map.remove("op");
                t.stated = map
                    .keys()
                    .filter(|k| SERVER_SETTINGS.contains(&k.as_str()))
                    .cloned()
                    .collect();
                t.settings = serde_json::from_value(Value::Object(map))
                    .map_err(|e| err(format!("config: {e}")))?;
                first = false;
                continue;
            }
            first = false;
            let at_ms = match map.remove("at_ms") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .ok_or_else(|| err("at_ms must be a non-negative integer".into()))?,
                ),
            };
            if op == "publish" {
                match (map.remove("event"), map.contains_key("events")) {
                    (Some(e), false) => {
                        map.insert("events".into(), Value::Array(vec![e]));
                    }
                    (None, true) => {}
                    _ => {
                        return Err(err(
                            "publish takes exactly one of \"event\" and \"events\"".into()
                        ));
                    }
                }
            }
            let action: Action = serde_json::from_value(Value::Object(map))
                .map_err(|e| err(format!("{op}: {e}")))?;
            if let Action::Publish {
                events, pad_bytes, ..
            } = &action
            {
                if events.is_empty() {
                    return Err(err("publish: \"events\" is empty".into()));
                }
                if pad_bytes.is_some() && !events.iter().all(Value::is_object) {
                    return Err(err(
                        "publish: pad_bytes needs events that are objects".into()
                    ));
                }
            }
            t.steps.push(Step {
                at_ms,
                action,
                line,
            });
        }
        Ok(t)
    }

    /// The server settings this transcript needs: those its config line names and those
    /// set to a value other than the default, in the order of [`SERVER_SETTINGS`].
    pub fn server_needs(&self) -> Vec<&'static str> {
        let default = Settings::default();
        SERVER_SETTINGS
            .into_iter()
            .filter(|n| {
                self.stated.contains(*n)
                    || self.settings.server_value(n, 1.0) != default.server_value(n, 1.0)
            })
            .collect()
    }

    /// Compares the settings a server reports (the `"settings"` object of `/health/sse`)
    /// with those this transcript needs ([`Transcript::server_needs`]), its durations
    /// multiplied by `time_scale`. Returns every difference.
    pub fn compare_settings(&self, server: &Value, time_scale: f64) -> Vec<SettingMismatch> {
        self.server_needs()
            .into_iter()
            .filter_map(|name| {
                let needed = self.settings.server_value(name, time_scale)?;
                let has = server.get(name);
                (has != Some(&needed)).then(|| SettingMismatch {
                    name,
                    written: self.settings.server_value(name, 1.0).unwrap_or_default(),
                    needed,
                    server: has.cloned(),
                })
            })
            .collect()
    }

    /// Writes the transcript as JSON Lines: the `config` line (with the fields that are
    /// stated or not the defaults, if any), then one line per step, `at_ms` and `op` first.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        let Ok(Value::Object(all)) = serde_json::to_value(&self.settings) else {
            unreachable!("settings serialize to an object")
        };
        let Ok(Value::Object(defaults)) = serde_json::to_value(Settings::default()) else {
            unreachable!("settings serialize to an object")
        };
        let map: Map<String, Value> = all
            .into_iter()
            .filter(|(k, v)| self.stated.contains(k) || defaults.get(k) != Some(v))
            .collect();
        if !map.is_empty() {
            write_line(&mut out, None, "config", map);
        }
        for step in &self.steps {
            let Ok(Value::Object(mut map)) = serde_json::to_value(&step.action) else {
                unreachable!("actions serialize to objects")
            };
            map.remove("op");
            if let Action::Publish { events, .. } = &step.action
                && events.len() == 1
                && let Some(Value::Array(mut one)) = map.remove("events")
            {
                map.insert("event".into(), one.remove(0));
            }
            write_line(&mut out, step.at_ms, step.action.op(), map);
        }
        out
    }

    /// Appends a step.
    pub fn push(&mut self, step: Step) -> &mut Self {
        self.steps.push(step);
        self
    }

    /// Appends a step that runs right after the previous one.
    #[must_use]
    pub fn then(mut self, action: Action) -> Self {
        self.steps.push(Step::new(action));
        self
    }

    /// Appends a step that runs at `ms` since the start.
    #[must_use]
    pub fn at(mut self, ms: u64, action: Action) -> Self {
        self.steps.push(Step::new(action).at(ms));
        self
    }

    /// Replaces the settings.
    #[must_use]
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Appends: publish one event.
    #[must_use]
    pub fn publish(self, session: &str, event: Value) -> Self {
        self.then(Action::Publish {
            session: session.into(),
            events: vec![event],
            name: None,
            pad_bytes: None,
        })
    }

    /// Appends: a fresh client connects.
    #[must_use]
    pub fn connect(self, client: &str, session: &str) -> Self {
        self.then(Action::Connect {
            client: client.into(),
            session: session.into(),
            resume: false,
            last_event_id: None,
            client_id: None,
        })
    }

    /// Appends: the client reconnects with the last id it saw.
    #[must_use]
    pub fn resume(self, client: &str, session: &str) -> Self {
        self.then(Action::Connect {
            client: client.into(),
            session: session.into(),
            resume: true,
            last_event_id: None,
            client_id: None,
        })
    }

    /// Appends: the client closes its connection.
    #[must_use]
    pub fn drop_client(self, client: &str) -> Self {
        self.then(Action::Drop {
            client: client.into(),
        })
    }

    /// Appends: the client stops reading for `ms`.
    #[must_use]
    pub fn stall(self, client: &str, ms: u64) -> Self {
        self.then(Action::Stall {
            client: client.into(),
            ms,
        })
    }

    /// Appends: time passes.
    #[must_use]
    pub fn advance(self, ms: u64) -> Self {
        self.then(Action::Advance { ms })
    }

    /// Appends: expect these events next, exactly.
    #[must_use]
    pub fn expect_events(self, client: &str, events: impl IntoIterator<Item = Value>) -> Self {
        self.then(Action::ExpectEvents {
            client: client.into(),
            events: events.into_iter().collect(),
            mode: Match::Exact,
            within_ms: None,
        })
    }

    /// Appends: expect a resync (with this reason, if given).
    #[must_use]
    pub fn expect_resync(self, client: &str, reason: Option<&str>) -> Self {
        self.then(Action::ExpectResync {
            client: client.into(),
            reason: reason.map(Into::into),
            within_ms: None,
        })
    }

    /// Appends: expect the client's stream to end.
    #[must_use]
    pub fn expect_ended(self, client: &str, superseded: Option<bool>) -> Self {
        self.then(Action::ExpectEnded {
            client: client.into(),
            superseded,
            within_ms: None,
        })
    }
}

fn write_line(out: &mut String, at_ms: Option<u64>, op: &str, map: Map<String, Value>) {
    out.push('{');
    if let Some(at) = at_ms {
        out.push_str(&format!("\"at_ms\":{at},"));
    }
    out.push_str("\"op\":");
    out.push_str(&Value::from(op).to_string());
    for (k, v) in map {
        out.push(',');
        out.push_str(&Value::from(k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let text = r#"
# a comment
{"op":"config","ring_max_events":4}
{"at_ms":0,"op":"publish","session":"s","event":{"n":1}}
{"op":"publish","session":"s","events":[{"n":2},{"n":3}],"name":"progress"}
{"at_ms":10,"op":"connect","client":"c","session":"s","resume":true}
{"op":"expect_events","client":"c","events":[{"n":1}],"match":"subset"}
{"op":"decide","session":"s","approval":"a","approved":true,"expect":"already_decided"}
"#;
        let t = Transcript::parse(text).unwrap();
        assert_eq!(t.settings.ring_max_events, 4);
        assert_eq!(t.steps.len(), 5);
        assert_eq!(t.steps[0].line, 4);
        let again = Transcript::parse(&t.to_jsonl()).unwrap();
        let strip = |t: &Transcript| -> Vec<(Option<u64>, Action)> {
            t.steps
                .iter()
                .map(|s| (s.at_ms, s.action.clone()))
                .collect()
        };
        assert_eq!(strip(&t), strip(&again));
        assert_eq!(t.settings, again.settings);
        assert!(
            t.to_jsonl()
                .contains(r#"{"at_ms":0,"op":"publish","event":{"n":1},"session":"s"}"#)
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = Transcript::parse("{\"op\":\"publish\",\"session\":\"s\"}").unwrap_err();
        assert_eq!(e.line, 1);
        let e = Transcript::parse("\n{\"op\":\"drop\",\"client\":\"c\",\"typo\":1}").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("typo"), "{e}");
        let e = Transcript::parse("{\"op\":\"drop\",\"client\":\"c\"}\n{\"op\":\"config\"}")
            .unwrap_err();
        assert!(e.message.contains("first"));
        assert!(Transcript::parse("[1]").is_err());
        let e = Transcript::parse(r#"{"op":"publish","session":"s","event":1,"pad_bytes":9}"#)
            .unwrap_err();
        assert!(e.message.contains("objects"), "{e}");
        assert!(Transcript::parse("{\"op\":\"nope\"}").is_err());
    }

    #[test]
    fn the_config_line_states_the_server_settings_a_transcript_needs() {
        let t = Transcript::parse(
            r#"{"op":"config","ring_max_events":8,"keepalive_ms":15000,"silence_tolerance_ms":5}"#,
        )
        .unwrap();
        // Stated ones, even at their default (keepalive); the checker's own field is not one.
        assert_eq!(t.server_needs(), ["ring_max_events", "keepalive_ms"]);
        assert!(Transcript::new().server_needs().is_empty());
        let in_code = Transcript::new().with_settings(Settings {
            connection_policy: Policy::Reject,
            ..Settings::default()
        });
        assert_eq!(in_code.server_needs(), ["connection_policy"]);

        let server = json!({"ring_max_events": 1024, "keepalive_ms": 15000});
        let diff = t.compare_settings(&server, 1.0);
        assert_eq!(diff.len(), 1);
        assert_eq!(
            diff[0].to_string(),
            "ring_max_events: transcript needs 8, server has 1024"
        );
        let server = json!({"ring_max_events": 8, "keepalive_ms": null});
        let diff = t.compare_settings(&server, 0.1);
        assert_eq!(
            diff[0].to_string(),
            "keepalive_ms: transcript needs 1500 (15000 in transcript time), server has null"
        );
        assert!(
            t.compare_settings(&json!({"ring_max_events": 8, "keepalive_ms": 1500}), 0.1)
                .is_empty()
        );
        assert_eq!(
            t.compare_settings(&json!({}), 1.0)[0].to_string(),
            "ring_max_events: transcript needs 8, server does not report it"
        );
        // What is stated survives the writer, defaults included.
        let again = Transcript::parse(&t.to_jsonl()).unwrap();
        assert_eq!(again.stated, t.stated);
    }

    #[test]
    fn builder() {
        let t = Transcript::new()
            .publish("s", json!({"n": 1}))
            .connect("c", "s")
            .expect_events("c", [json!({"n": 1})]);
        assert_eq!(t.steps.len(), 3);
        assert_eq!(t.steps[2].action.op(), "expect_events");
    }
}
