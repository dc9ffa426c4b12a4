//! Errors, one enum per failure domain. Each message says what to do.

use std::sync::Arc;
use std::time::Duration;

use crate::id::{EventId, InvalidId};

/// Why an event could not be serialized: the [`serde_json::Error`], shared so that
/// [`PublishError`] stays `Clone`. Its [`source`](std::error::Error::source) is the
/// `serde_json::Error`; two are equal when their messages are.
#[derive(Debug, Clone)]
pub struct SerializeError(Arc<serde_json::Error>);

impl SerializeError {
    /// The JSON error.
    pub fn json(&self) -> &serde_json::Error {
        &self.0
    }
}

impl From<serde_json::Error> for SerializeError {
    fn from(e: serde_json::Error) -> Self {
        Self(Arc::new(e))
    }
}

impl PartialEq for SerializeError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl std::fmt::Display for SerializeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SerializeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The event could not be serialized to JSON.
    #[error("the event could not be serialized to JSON: {0}")]
    Serialize(#[source] SerializeError),
    /// The encoded event is larger than the configured maximum.
    #[error(
        "the event is {size} bytes encoded, more than the maximum of {max}; split it or raise max_event_bytes"
    )]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The SSE event name would break the framing.
    #[error(transparent)]
    InvalidEventName(#[from] crate::frame::InvalidEventName),
    /// The broker already holds its maximum number of sessions.
    #[error("the broker holds its maximum of {max} sessions; retry later or raise max_sessions")]
    TooManySessions {
        /// Configured maximum.
        max: usize,
    },
    /// The session's publish rate limit is exceeded.
    #[error("the session's publish rate is exceeded; retry after {retry_after:?}")]
    RateLimited {
        /// When a token is available again.
        retry_after: Duration,
    },
    /// The session's tracker refused the event because it would make the stream invalid
    /// (for AG-UI sessions: a schema or sequence violation). Events of the same batch before
    /// it were stored; their ids are in `stored`.
    #[error("event {index} was refused: {reason}")]
    Rejected {
        /// Position of the refused event in its batch.
        index: usize,
        /// What is wrong with it.
        reason: String,
        /// Ids of the events of the batch stored before it.
        stored: Vec<EventId>,
    },
    /// The session's tracker refused the event because the state it keeps for preludes would
    /// pass its cap (HTTP 413 `prelude_too_large`). Events of the same batch before it were
    /// stored; their ids are in `stored`.
    #[error("event {index} was refused: {reason}")]
    PreludeTooLarge {
        /// Position of the refused event in its batch.
        index: usize,
        /// What would pass the cap.
        reason: String,
        /// Ids of the events of the batch stored before it.
        stored: Vec<EventId>,
    },
    /// The broker's memory budget is spent by state it cannot evict (tracker state and
    /// approvals of sessions in use), so it takes no new session or approval (HTTP 503
    /// `memory_budget_exceeded`).
    #[error(
        "the broker's memory budget of {budget} bytes is spent by sessions in use; retry later or raise memory_budget_bytes"
    )]
    MemoryBudget {
        /// The configured budget.
        budget: usize,
    },
    /// The idempotency key was used by another publish to the session, with other events
    /// (HTTP 422 `idempotency_key_reused`). Nothing was stored.
    #[error(
        "the idempotency key {key:?} was used by another publish to this session; use a new key for new events"
    )]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
    /// A sequence number outside 1 to 2^64 - 2 (an explicit one given to
    /// [`append_at`](crate::Broker::append_at) or
    /// [`mark_lost`](crate::Broker::mark_lost), or the next one of a session whose numbers are
    /// used up).
    #[error("sequence {seq} is outside 1 to 2^64 - 2; start a new epoch")]
    SeqOutOfRange {
        /// The sequence number refused.
        seq: u64,
    },
    /// An append at an explicit sequence number was not after the session's head.
    #[error("sequence {seq} is not after the session's head {head}")]
    OutOfOrder {
        /// The sequence number given.
        seq: u64,
        /// The session's last sequence number.
        head: u64,
    },
    /// A batch with more events than the broker takes at once; nothing was stored.
    #[error("the batch has {count} events, more than the maximum of {max}; split it")]
    TooManyEvents {
        /// Events in the batch.
        count: usize,
        /// Configured maximum.
        max: usize,
    },
}

impl PublishError {
    /// Whether a session's tracker refused the events ([`Rejected`](Self::Rejected),
    /// [`PreludeTooLarge`](Self::PreludeTooLarge)): what the session's history decides, not
    /// the broker's limits.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Rejected { .. } | Self::PreludeTooLarge { .. })
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// `Last-Event-ID` breaks the id grammar (HTTP 400).
    #[error("invalid Last-Event-ID: {0}")]
    InvalidLastEventId(InvalidId),
    /// The session already has a connection and the policy is `Reject` (HTTP 409).
    #[error("the session already has a connection; close it first")]
    Conflict,
    /// This client instance was superseded by another connection moments ago (HTTP 204, which
    /// makes EventSource stop instead of taking the session back).
    #[error("this client was superseded by a newer connection to the session")]
    SupersededRecently,
    /// The broker is draining for a restart (HTTP 503, or 200 with a `retry:` hint for event
    /// streams, so browsers come back through the load balancer).
    #[error("the server is draining; reconnect in {retry_after:?}")]
    Draining {
        /// A jittered reconnection delay within the drain window.
        retry_after: Duration,
    },
    /// The broker already holds its maximum number of sessions (HTTP 503).
    #[error("the broker holds its maximum of {max} sessions; retry later")]
    TooManySessions {
        /// Configured maximum.
        max: usize,
    },
    /// The connecting identity already created its maximum number of sessions by connecting
    /// (HTTP 429 or 403). Sessions created by publishes do not count.
    #[error(
        "this identity already holds its maximum of {max} sessions created by connecting; reuse one or wait for one to expire"
    )]
    TooManySessionsForSubject {
        /// Configured maximum ([`BrokerBuilder::max_sessions_per_subject`](crate::BrokerBuilder::max_sessions_per_subject)).
        max: usize,
    },
}

/// Why an approval request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// The approval id breaks the id grammar.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// An approval with this id already exists in the session (HTTP 409).
    #[error("an approval with this id already exists in the session")]
    Duplicate,
    /// Announcing the request in the session's stream failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The session already has its maximum of pending approvals (HTTP 409).
    #[error("the session has {max} pending approvals, its maximum; decide or cancel one first")]
    TooManyPending {
        /// Configured maximum.
        max: usize,
    },
    /// The payload is larger than the configured maximum (HTTP 413).
    #[error("the approval's payload is {size} bytes of JSON, more than the maximum of {max}")]
    TooLarge {
        /// Payload size, in bytes of JSON as given.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
}

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecideError {
    /// No such approval in the session (HTTP 404).
    #[error("no such approval in this session")]
    Unknown,
    /// The approval was already decided or cancelled (HTTP 409).
    #[error("the approval was already {}", .0.as_str())]
    AlreadyDecided(crate::approval::ApprovalStatus),
    /// The approval's deadline passed before the decision arrived (HTTP 410).
    #[error("the approval expired before the decision arrived")]
    Expired,
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_serialize_error_keeps_the_json_error_as_its_source() {
        let map: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        let Err(e) = crate::Event::json(&map) else {
            panic!("a map with non-string keys is not JSON");
        };
        let PublishError::Serialize(inner) = &e else {
            panic!("{e:?}");
        };
        let source = e.source().expect("a source");
        assert_eq!(source.to_string(), inner.json().to_string());
        let json = source.source().expect("the serde_json error");
        assert!(json.downcast_ref::<serde_json::Error>().is_some());
    }
}
