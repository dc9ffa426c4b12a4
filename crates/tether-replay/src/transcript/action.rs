//! The steps of a transcript: [`Action`] (what one step does), [`Step`] (when) and the small
//! enums the steps take.
//!
//! These types are the format itself, shared by the parser, the writer, the builder, the
//! engine and the recorder; they hold no logic beyond naming their wire forms.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
