//! What happened during a replay: what was published, and what each client received, when.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::sse::Block;

/// Everything a replay observed. The checker reads it; tests may too.
#[derive(Debug, Clone, Default)]
pub struct RunLog {
    /// Events the transcript published, with the ids the server gave them.
    pub publishes: Vec<Published>,
    /// Each client's connections, by client name.
    pub clients: BTreeMap<String, ClientLog>,
    /// Every decision attempt and its answer.
    pub decisions: Vec<DecisionRecord>,
    /// Every approval status the transcript looked at.
    pub statuses: Vec<StatusRecord>,
    /// Connections displaced by another client's connect to the same session.
    pub supersedes: Vec<SupersedeRecord>,
    /// When the replay ended (time since its start).
    pub ended_at: Duration,
}

/// One published event.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The step (0-based index) that published it.
    pub step: usize,
    /// The session.
    pub session: String,
    /// The id the server answered.
    pub id: String,
    /// The event's JSON.
    pub data: Value,
    /// Its SSE name.
    pub name: Option<String>,
}

/// A client's connections, in order, and the id it would send when it reconnects.
#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    /// Its connections, oldest first.
    pub connections: Vec<Connection>,
    /// The `lastEventId` an EventSource would hold now (empty: none).
    pub last_event_id: String,
}

/// Where a connection's history starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// No `Last-Event-ID`: a new history.
    Fresh,
    /// The client's own last id: the history goes on.
    Resume(String),
    /// A `Last-Event-ID` from the transcript: a new history that claims this position.
    From(String),
}

/// One connection of a client.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The step that opened it.
    pub step: usize,
    /// The session.
    pub session: String,
    /// How it started.
    pub history: History,
    /// When it opened.
    pub opened: Duration,
    /// What happened on it, in order.
    pub entries: Vec<Entry>,
    /// Whether the client is not reading it right now.
    pub stalled: bool,
    /// How it ended, if it did.
    pub end: Option<End>,
}

/// One thing that happened on a connection.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When (time since the replay's start).
    pub at: Duration,
    /// The step that was running.
    pub step: usize,
    /// What.
    pub kind: EntryKind,
}

/// What happened on a connection.
#[derive(Debug, Clone)]
pub enum EntryKind {
    /// Bytes arrived (a write of the server: events, heartbeats, anything).
    Bytes(usize),
    /// A complete block of SSE fields was parsed from them.
    Block(Block),
    /// The client stopped reading.
    StallStart,
    /// The client read again.
    StallEnd,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// When.
    pub at: Duration,
    /// The step that was running.
    pub step: usize,
    /// Who ended it.
    pub by: EndedBy,
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// The server closed the stream.
    Server,
    /// The client (a `drop`, or a reconnect).
    Client,
    /// The replay was over.
    RunEnd,
}

/// A decision attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    /// The step.
    pub step: usize,
    /// The session.
    pub session: String,
    /// The approval.
    pub approval: String,
    /// Approve or reject.
    pub approved: bool,
    /// The server's answer (`ok`, `already_decided`, `expired`, `unknown`, or the raw answer).
    pub result: String,
}

/// An approval status observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    /// The step.
    pub step: usize,
    /// The session.
    pub session: String,
    /// The approval.
    pub approval: String,
    /// The status (`None`: unknown to the server).
    pub status: Option<String>,
}

/// A connection displaced by another client's connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupersedeRecord {
    /// The step of the newer connect.
    pub step: usize,
    /// The displaced client.
    pub client: String,
    /// The index of its displaced connection.
    pub connection: usize,
    /// The client that connected.
    pub by: String,
    /// Whether the displaced client was not reading at the time (so the server may have
    /// dropped it for the client timeout before it could be superseded).
    pub was_stalled: bool,
}

/// What a block of SSE fields means to tether's checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame<'a> {
    /// A stored event: data with an id.
    Stored {
        /// Its id.
        id: &'a str,
        /// Its data.
        data: &'a str,
        /// Its SSE name.
        name: Option<&'a str>,
    },
    /// An id without data: moves the client's last id (after a resync or a prelude).
    IdOnly(&'a str),
    /// A `tether.*` control signal: a CUSTOM data frame without an id, or, for a stream's
    /// terminal signal where no data frame is valid (an AG-UI session between runs), the SSE
    /// comment `: tether.superseded {}` / `: tether.drain {"retryMs":...}`.
    Signal {
        /// `tether.resync`, `tether.superseded`, `tether.drain`, ...
        name: String,
        /// Its value.
        value: Value,
    },
    /// Other data without an id: a snapshot or re-announcement in a prelude, or a named
    /// heartbeat.
    Unstored(&'a str),
    /// A comment or a `retry:` field.
    Control,
}

/// What a block of the stream means to tether's checks.
pub trait TetherFrame {
    /// The block as a stored event, an id-only frame, a signal, an unstored event or a
    /// control line.
    fn frame(&self) -> Frame<'_>;
}

impl TetherFrame for Block {
    fn frame(&self) -> Frame<'_> {
        match (&self.data, &self.id) {
            (Some(data), Some(id)) => Frame::Stored {
                id,
                data,
                name: self.event.as_deref(),
            },
            (None, Some(id)) => Frame::IdOnly(id),
            (Some(data), None) => match serde_json::from_str::<Value>(data) {
                Ok(v)
                    if v["type"] == "CUSTOM"
                        && v["name"].as_str().is_some_and(|n| n.starts_with("tether.")) =>
                {
                    Frame::Signal {
                        name: v["name"].as_str().unwrap_or_default().to_owned(),
                        value: v.get("value").cloned().unwrap_or(Value::Null),
                    }
                }
                _ => Frame::Unstored(data),
            },
            (None, None) => self
                .comments
                .iter()
                .find_map(|c| comment_signal(c))
                .unwrap_or(Frame::Control),
        }
    }
}

/// The comment form of a terminal signal: `tether.superseded {}` or `tether.drain {...}`
/// (name, one space, the value's JSON), as an AG-UI session ends a stream between runs.
fn comment_signal(text: &str) -> Option<Frame<'static>> {
    let (name, value) = text.split_once(' ').unwrap_or((text, ""));
    if !matches!(name, "tether.superseded" | "tether.drain") {
        return None;
    }
    let value = match value.trim() {
        "" => Value::Null,
        v => serde_json::from_str(v).ok()?,
    };
    Some(Frame::Signal {
        name: name.to_owned(),
        value,
    })
}

/// A stored event as a client received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The connection (index into the client's connections).
    pub connection: usize,
    /// When.
    pub at: Duration,
    /// The step that was running.
    pub step: usize,
    /// Its id.
    pub id: String,
    /// Its data as JSON (a JSON string when it is not JSON).
    pub data: Value,
    /// Its SSE name.
    pub name: Option<String>,
}

/// A control signal as a client received it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSignal {
    /// The connection.
    pub connection: usize,
    /// When.
    pub at: Duration,
    /// The step that was running.
    pub step: usize,
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// Data as JSON, or as a JSON string when it is not JSON.
pub fn data_value(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
}

impl Connection {
    /// The parsed blocks, with their entries.
    pub fn blocks(&self) -> impl Iterator<Item = (&Entry, &Block)> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::Block(b) => Some((e, b)),
            _ => None,
        })
    }

    /// Whether the connection is open (not ended by either side).
    pub fn is_open(&self) -> bool {
        self.end.is_none()
    }

    /// Whether a `tether.superseded` signal arrived on it.
    pub fn got_superseded(&self) -> bool {
        self.blocks().any(
            |(_, b)| matches!(b.frame(), Frame::Signal { name, .. } if name == "tether.superseded"),
        )
    }
}

impl ClientLog {
    /// The stored events received on every connection, in order.
    pub fn events(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for (ci, c) in self.connections.iter().enumerate() {
            for (e, b) in c.blocks() {
                if let Frame::Stored { id, data, name } = b.frame() {
                    out.push(Received {
                        connection: ci,
                        at: e.at,
                        step: e.step,
                        id: id.to_owned(),
                        data: data_value(data),
                        name: name.map(Into::into),
                    });
                }
            }
        }
        out
    }

    /// Number of stored events received.
    pub fn event_count(&self) -> usize {
        self.connections
            .iter()
            .flat_map(Connection::blocks)
            .filter(|(_, b)| b.data.is_some() && b.id.is_some())
            .count()
    }

    /// The control signals named `name` received on every connection, in order.
    pub fn signals(&self, name: &str) -> Vec<ReceivedSignal> {
        let mut out = Vec::new();
        for (ci, c) in self.connections.iter().enumerate() {
            for (e, b) in c.blocks() {
                if let Frame::Signal { name: n, value } = b.frame()
                    && n == name
                {
                    out.push(ReceivedSignal {
                        connection: ci,
                        at: e.at,
                        step: e.step,
                        name: n,
                        value,
                    });
                }
            }
        }
        out
    }

    /// The newest connection, if any.
    pub fn current(&self) -> Option<&Connection> {
        self.connections.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::parse;

    #[test]
    fn terminal_signals_in_comment_form() {
        let b = parse(b": tether.superseded {}\nretry: 30000\n\n: tether.drain {\"retryMs\":1200}\n\n: keepalive\n\n: tether.resync {}\n\n");
        assert_eq!(
            b[0].frame(),
            Frame::Signal {
                name: "tether.superseded".into(),
                value: serde_json::json!({})
            }
        );
        assert_eq!(
            b[1].frame(),
            Frame::Signal {
                name: "tether.drain".into(),
                value: serde_json::json!({"retryMs": 1200})
            }
        );
        assert_eq!(b[2].frame(), Frame::Control, "a heartbeat");
        // Only the terminal signals have a comment form.
        assert_eq!(b[3].frame(), Frame::Control);
    }
}
