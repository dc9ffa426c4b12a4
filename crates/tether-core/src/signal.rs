//! In-band control signals and session trackers.
//!
//! A control signal (resync, superseded, drain, approval notices) travels as a data frame
//! `{"type":"CUSTOM","name":"tether.<what>","value":{...}}`, so a client that parses every
//! data line as JSON (the AG-UI client does) never meets an invalid frame.
//!
//! A [`SessionTracker`] follows a session's events and decides how signals and snapshots are
//! rendered for it: the AG-UI tracker re-opens the open run, messages and tool calls after a
//! resync, and places signals where the AG-UI sequence rules allow them. Sessions without a
//! tracker get the plain CUSTOM frames and no snapshot.

use serde::Serialize;

use crate::approval::ApprovalInfo;
use crate::id::{EventId, SessionId};

/// Why a client's stream could not continue exactly after its `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ResyncReason {
    /// The events after the client's id were evicted from the ring.
    Evicted,
    /// The id belongs to another incarnation of the session (restart, expiry).
    Epoch,
    /// The id is ahead of anything the session has published.
    Ahead,
    /// The id is well-formed but not one tether issued.
    Unknown,
}

impl ResyncReason {
    /// The metric label / wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::Epoch => "epoch",
            Self::Ahead => "ahead",
            Self::Unknown => "unknown",
        }
    }
}

/// The resync signal's content: history was lost, and from where the stream continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resync {
    /// Why history was lost.
    pub reason: ResyncReason,
    /// The id the client sent, if any.
    pub last_event_id: Option<String>,
    /// The id of the first event that follows on this stream.
    #[serde(serialize_with = "display")]
    pub resume_from: EventId,
    /// Number of events the client will never see (known only for evictions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u64>,
}

fn display<S: serde::Serializer>(id: &EventId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// A control signal, rendered by the session's tracker or as a plain CUSTOM frame.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Signal<'a> {
    /// History was lost; see [`Resync`].
    Resync(&'a Resync),
    /// A newer connection took the session; this stream ends.
    Superseded,
    /// The server is draining; this stream ends and the client should come back after
    /// `retry_ms`.
    Drain {
        /// The reconnection hint sent with the signal.
        retry_ms: u64,
    },
    /// An approval was requested (or is re-announced after a resync).
    ApprovalRequested(&'a ApprovalInfo),
    /// An approval was resolved.
    ApprovalResolved(&'a ApprovalInfo),
}

impl Signal<'_> {
    /// The signal's `tether.*` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Resync(_) => "tether.resync",
            Self::Superseded => "tether.superseded",
            Self::Drain { .. } => "tether.drain",
            Self::ApprovalRequested(_) => "tether.approval.requested",
            Self::ApprovalResolved(_) => "tether.approval.resolved",
        }
    }

    /// The signal's value object.
    pub fn value(&self) -> serde_json::Value {
        serde_json::to_value(SignalValue(self)).unwrap_or_default()
    }

    /// The signal as a CUSTOM event's JSON: `{"type":"CUSTOM","name":...,"value":...}`.
    /// An approval's payload is copied in as its stored bytes, never parsed.
    pub fn custom_json(&self) -> String {
        #[derive(Serialize)]
        struct Custom<'a> {
            r#type: &'static str,
            name: &'static str,
            value: SignalValue<'a>,
        }
        serde_json::to_string(&Custom {
            r#type: "CUSTOM",
            name: self.name(),
            value: SignalValue(self),
        })
        .unwrap_or_default()
    }
}

/// A signal's value object, written straight to JSON.
struct SignalValue<'a>(&'a Signal<'a>);

/// An approval request as announced.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Requested<'a> {
    id: &'a str,
    // Optional fields are absent rather than null (AG-UI's checks refuse null).
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    payload: &'a crate::approval::Payload,
    expires_at: &'a str,
}

/// An approval's outcome as announced.
#[derive(Serialize)]
struct Resolved<'a> {
    id: &'a str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DrainValue {
    retry_ms: u64,
}

#[derive(Serialize)]
struct Empty {}

impl Serialize for SignalValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self.0 {
            Signal::Resync(r) => r.serialize(s),
            Signal::Superseded => Empty {}.serialize(s),
            Signal::Drain { retry_ms } => DrainValue { retry_ms }.serialize(s),
            Signal::ApprovalRequested(a) => Requested {
                id: &a.id,
                title: a.title.as_deref(),
                payload: &a.payload,
                expires_at: &a.expires_at,
            }
            .serialize(s),
            Signal::ApprovalResolved(a) => Resolved {
                id: &a.id,
                outcome: a.status.as_str(),
                reason: a.status.reason(),
            }
            .serialize(s),
        }
    }
}

/// How a stream's last words are written before it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Terminal {
    /// Data frames (JSON strings), written without ids.
    Frames(Vec<String>),
    /// An SSE comment, for states where no data frame would be valid.
    Comment(String),
}

/// Why a [`SessionTracker`] refused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The event would make the stream invalid
    /// ([`PublishError::Rejected`](crate::PublishError::Rejected), HTTP 400 `rejected`).
    Invalid(String),
    /// The event would grow what the tracker keeps for preludes past its cap
    /// ([`PublishError::PreludeTooLarge`](crate::PublishError::PreludeTooLarge), HTTP 413
    /// `prelude_too_large`): a prelude cut short would itself be an invalid stream.
    TooLarge(String),
}

impl Refusal {
    /// What is wrong with the event.
    pub fn reason(&self) -> &str {
        match self {
            Self::Invalid(r) | Self::TooLarge(r) => r,
        }
    }
}

impl Refusal {
    /// The publish error for the refused event at `index` of its batch, with no event of the
    /// batch stored (the caller fills in the ones that were).
    pub(crate) fn at(self, index: usize) -> crate::error::PublishError {
        use crate::error::PublishError;
        match self {
            Self::TooLarge(reason) => PublishError::PreludeTooLarge {
                index,
                reason,
                stored: Vec::new(),
            },
            Self::Invalid(reason) => PublishError::Rejected {
                index,
                reason,
                stored: Vec::new(),
            },
        }
    }
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Self::Invalid(reason)
    }
}

impl From<&str> for Refusal {
    fn from(reason: &str) -> Self {
        Self::Invalid(reason.to_owned())
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// Follows one session's events to validate them and to render snapshots and signals.
///
/// Every method runs under the session's lock: keep them short and never block.
pub trait SessionTracker: Send + 'static {
    /// Sees every event before it is stored. An error refuses the event (see [`Refusal`]) and
    /// must leave the tracker unchanged.
    fn on_publish(&mut self, name: Option<&str>, data: &str) -> Result<(), Refusal>;

    /// Bytes the tracker holds for this session (its snapshot's parts, about as their JSON
    /// is long). They count against the broker's memory budget with the rings; keep the
    /// count cheap, it is read after every publish. Default is 0.
    fn state_bytes(&self) -> usize {
        0
    }

    /// Whether [`prelude`](Self::prelude) restores the session's state. With a snapshot, a
    /// resynced stream continues from the head; without one, from the oldest retained event.
    fn has_snapshot(&self) -> bool {
        false
    }

    /// Whether [`prelude`](Self::prelude) is also given the pending requests made
    /// [`silent`](crate::ApprovalRequest::silent), which the tracker announces in its own terms
    /// (AG-UI lists them as interrupts). Without that, a silent request is never announced, so
    /// its outcome, which is not published either, cannot leave a client waiting. Default is
    /// `true`.
    fn prelude_includes_silent(&self) -> bool {
        true
    }

    /// Whether a client that connects without `Last-Event-ID` needs a prelude (e.g. it joins
    /// in the middle of an AG-UI run).
    fn prelude_on_join(&self) -> bool {
        false
    }

    /// Data frames (JSON) that open a stream which does not continue exactly: the resync
    /// signal (if any), the snapshot, and the pending approvals.
    fn prelude(&self, resync: Option<&Resync>, pending: &[ApprovalInfo], out: &mut Vec<String>) {
        default_prelude(resync, pending, out);
    }

    /// Whether a connection that falls out of the ring (or meets a new epoch) ends, so that its
    /// client reconnects and gets the resync on a fresh response, rather than receiving the
    /// resync and prelude in the middle of its stream. For consumers that check each response
    /// as one stream: in AG-UI a prelude there would re-open a run the client still has open.
    fn resync_ends_stream(&self) -> bool {
        false
    }

    /// How a stream's final signal (superseded, drain) is written.
    fn terminal(&self, signal: &Signal<'_>) -> Terminal {
        Terminal::Frames(vec![signal.custom_json()])
    }

    /// The stored events (JSON data) that carry a signal into the session's history, such as
    /// approval notices. Each is then passed to [`on_publish`](Self::on_publish).
    fn stored_signal(&self, signal: &Signal<'_>, out: &mut Vec<String>) {
        out.push(signal.custom_json());
    }

    /// A copy to try events on before they are stored elsewhere (a backplane's log, where
    /// another node may append first): the events are judged on the copy, and the tracker
    /// itself sees them only once they come back from the log, in the log's order. `None`
    /// (the default) for a tracker that refuses nothing: its events are not judged first.
    fn fork(&self) -> Option<Box<dyn SessionTracker>> {
        None
    }

    /// Data frames (JSON) that bring a fresh tracker of this kind to this one's state when
    /// passed to its [`on_publish`](Self::on_publish): how a node that did not see the
    /// session's whole history rebuilds the tracker from a checkpoint in a backplane. The
    /// default is the prelude without a resync or approvals.
    fn checkpoint(&self, out: &mut Vec<String>) {
        self.prelude(None, &[], out);
    }
}

/// The prelude of sessions without a tracker: the resync signal, then the pending approvals.
pub fn default_prelude(resync: Option<&Resync>, pending: &[ApprovalInfo], out: &mut Vec<String>) {
    if let Some(r) = resync {
        out.push(Signal::Resync(r).custom_json());
    }
    for a in pending {
        out.push(Signal::ApprovalRequested(a).custom_json());
    }
}

/// Decides which sessions get a tracker, from their events.
pub trait TrackerFactory: Send + Sync + 'static {
    /// Called for each event published to a session that has no tracker yet; returning a
    /// tracker installs it (it then sees this event through `on_publish`).
    fn track(
        &self,
        session: &SessionId,
        name: Option<&str>,
        data: &str,
    ) -> Option<Box<dyn SessionTracker>>;
}

/// A tracker that only provides snapshots: after a resync, `snapshot` is called (under the
/// session's lock) and its frames follow the resync signal.
pub struct SnapshotProvider<F>(pub F);

impl<F> SessionTracker for SnapshotProvider<F>
where
    F: Fn(&mut Vec<String>) + Send + 'static,
{
    fn on_publish(&mut self, _: Option<&str>, _: &str) -> Result<(), Refusal> {
        Ok(())
    }
    fn has_snapshot(&self) -> bool {
        true
    }
    fn prelude_includes_silent(&self) -> bool {
        false
    }
    fn prelude(&self, resync: Option<&Resync>, pending: &[ApprovalInfo], out: &mut Vec<String>) {
        if let Some(r) = resync {
            out.push(Signal::Resync(r).custom_json());
        }
        (self.0)(out);
        for a in pending {
            out.push(Signal::ApprovalRequested(a).custom_json());
        }
    }
}
