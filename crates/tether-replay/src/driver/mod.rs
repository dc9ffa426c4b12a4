//! Drivers: what the replay engine talks to. [`InProcess`] runs against a
//! [`tether_core::Broker`] on a paused clock; [`Http`] runs against any service that exposes
//! tether's HTTP contract. A [`Driver`] of your own can wrap either (to inject faults) or talk
//! to something else entirely.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use serde_json::Value;

mod http;
mod in_process;

pub use http::{Http, HttpOptions};
pub use in_process::InProcess;

/// The body of an SSE response: chunks of bytes as they arrive. It ends when the server
/// closes the stream. Polling it must be cancel-safe (a chunk is never half-consumed by a
/// dropped `next()`), as every [`Stream`] is.
pub type SseBody = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// How a client connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The `Last-Event-ID` to send, if any.
    pub last_event_id: Option<String>,
    /// The `clientId` query parameter, if any.
    pub client_id: Option<String>,
}

/// An approval request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRequest {
    /// The approval's id.
    pub id: String,
    /// A short title.
    pub title: Option<String>,
    /// What is to be approved.
    pub payload: Value,
    /// The deadline from now; `None` for the server's default.
    pub timeout: Option<Duration>,
}

/// The refusal a driver reports when the server told a superseded client instance to stop
/// (HTTP 204): tether's answer to two tabs that would otherwise take turns.
pub const SUPERSEDED_REFUSAL: &str = "stopped: superseded moments ago by a newer connection";

/// What the server answered to a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideResult {
    /// Accepted (HTTP 200).
    Ok,
    /// Already decided or cancelled (HTTP 409), with the state it is in.
    AlreadyDecided(String),
    /// The deadline passed (HTTP 410).
    Expired,
    /// No such approval (HTTP 404).
    Unknown,
    /// Anything else.
    Other(String),
}

impl DecideResult {
    /// The name `decide`'s `expect` field uses, or the raw answer.
    pub fn name(&self) -> &str {
        match self {
            Self::Ok => "ok",
            Self::AlreadyDecided(_) => "already_decided",
            Self::Expired => "expired",
            Self::Unknown => "unknown",
            Self::Other(s) => s,
        }
    }
}

/// The operations a transcript needs from the system under test.
///
/// Errors are strings meant for a human reading the report (the status code and the
/// server's message, for the HTTP driver).
pub trait Driver {
    /// Publishes events (with an optional SSE name) to a session, in one request; returns
    /// their ids.
    fn publish(
        &mut self,
        session: &str,
        events: &[Value],
        name: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>, String>>;

    /// Opens a session's event stream.
    fn connect(
        &mut self,
        session: &str,
        request: &ConnectRequest,
    ) -> impl Future<Output = Result<SseBody, String>>;

    /// Requests an approval; returns its id.
    fn request_approval(
        &mut self,
        session: &str,
        request: &ApprovalRequest,
    ) -> impl Future<Output = Result<String, String>>;

    /// Decides an approval.
    fn decide(
        &mut self,
        session: &str,
        approval: &str,
        approved: bool,
        reason: Option<&str>,
    ) -> impl Future<Output = DecideResult>;

    /// The approval's status (`pending`, `approved`, `rejected`, `timed_out`, `cancelled`),
    /// waiting up to `wait` while it is pending; `Ok(None)` for an unknown approval.
    fn approval_status(
        &mut self,
        session: &str,
        approval: &str,
        wait: Duration,
    ) -> impl Future<Output = Result<Option<String>, String>>;
}
