//! Every core error as a status code and a JSON body.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};

use super::{Body, Response};
use crate::backplane::BackplaneError;
use crate::error::{ApprovalError, ConnectError, DecideError, PublishError};
use crate::id::{IdKind, InvalidId};

/// `Retry-After` of a node that holds its maximum of sessions.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(5);
/// `Retry-After` when the backplane cannot be reached: its links reconnect within a second or
/// two, so a client soon finds it back (or another node through the load balancer).
const BACKPLANE_RETRY_AFTER: Duration = Duration::from_secs(2);
/// `Retry-After` when the backplane refuses to store more: an operator has to act.
const BACKPLANE_FULL_RETRY_AFTER: Duration = Duration::from_secs(10);

/// An error answer: status, a stable machine-readable code, and a message that says what to
/// do. Rendered as `{"error": code, "message": message, ...}` with `Content-Type:
/// application/json` (a 204 has no body).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    retry_after: Option<Duration>,
    headers: Vec<(HeaderName, HeaderValue)>,
    extra: Vec<(&'static str, serde_json::Value)>,
}

impl HttpError {
    /// An error with `status`, machine-readable `code` and a `message` saying what to do.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            headers: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The 413 for a request body over `limit` bytes, for adapters whose body reader stopped.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over {limit} bytes; send fewer events per request"),
        )
    }

    /// A 404 for a path outside the contract.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route; see the HTTP contract for the routes this server has",
        )
    }

    /// Adds a `Retry-After` header (whole seconds, rounded up, at least 1).
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Adds a `WWW-Authenticate` challenge (for 401).
    #[must_use]
    pub fn with_challenge(self, challenge: impl Into<Cow<'static, str>>) -> Self {
        match HeaderValue::from_str(&challenge.into()) {
            Ok(v) => self.with_header(WWW_AUTHENTICATE, v),
            Err(_) => self,
        }
    }

    /// Adds a response header (such as `Allow` on a 405).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds a field to the JSON body.
    #[must_use]
    pub fn with_field(mut self, name: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code (`"error"` in the body).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Retry-After` delay, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The response.
    pub fn into_response(self) -> Response {
        let body = if self.status == StatusCode::NO_CONTENT {
            Bytes::new()
        } else {
            let mut obj = serde_json::Map::with_capacity(2 + self.extra.len());
            obj.insert("error".into(), self.code.into());
            obj.insert("message".into(), self.message.as_ref().into());
            for (k, v) in self.extra {
                obj.insert(k.into(), v);
            }
            Bytes::from(serde_json::Value::Object(obj).to_string())
        };
        let mut res = Response::new(Body::Full(body));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        if self.status != StatusCode::NO_CONTENT {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(after) = self.retry_after {
            h.insert(RETRY_AFTER, retry_after_value(after));
        }
        for (name, value) in self.headers {
            h.insert(name, value);
        }
        res
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for HttpError {}

/// `Retry-After` in whole seconds, rounded up, at least 1 (0 would invite an instant storm).
pub(crate) fn retry_after_value(after: Duration) -> HeaderValue {
    let secs = after.as_millis().div_ceil(1000).max(1) as u64;
    HeaderValue::from(secs)
}

impl From<InvalidId> for HttpError {
    fn from(e: InvalidId) -> Self {
        let code = match e.kind {
            IdKind::SessionId => "invalid_session_id",
            IdKind::ApprovalId => "invalid_approval_id",
            IdKind::LastEventId => "invalid_last_event_id",
            IdKind::ClientId => "invalid_client_id",
            #[allow(unreachable_patterns)]
            _ => "invalid_id",
        };
        Self::bad_request(code, e.to_string())
    }
}

impl From<PublishError> for HttpError {
    fn from(e: PublishError) -> Self {
        let msg = e.to_string();
        match e {
            PublishError::Serialize(_) => Self::bad_request("invalid_event", msg),
            PublishError::TooLarge { size, max } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", msg)
                    .with_field("size", size)
                    .with_field("max", max)
            }
            PublishError::InvalidEventName(_) => Self::bad_request("invalid_event_name", msg),
            PublishError::TooManySessions { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions", msg)
                    .with_retry_after(FULL_RETRY_AFTER)
            }
            PublishError::RateLimited { retry_after } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", msg)
                    .with_retry_after(retry_after)
            }
            PublishError::Rejected { index, stored, .. } => {
                let ids: Vec<String> = stored.iter().map(ToString::to_string).collect();
                Self::bad_request("rejected", msg)
                    .with_field("index", index)
                    .with_field("ids", ids)
            }
            PublishError::PreludeTooLarge { index, stored, .. } => {
                let ids: Vec<String> = stored.iter().map(ToString::to_string).collect();
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "prelude_too_large", msg)
                    .with_field("index", index)
                    .with_field("ids", ids)
            }
            PublishError::MemoryBudget { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "memory_budget_exceeded",
                msg,
            )
            .with_retry_after(FULL_RETRY_AFTER),
            PublishError::IdempotencyKeyReused { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                msg,
            ),
            PublishError::OutOfOrder { .. } => Self::new(StatusCode::CONFLICT, "out_of_order", msg),
            PublishError::SeqOutOfRange { .. } => Self::bad_request("seq_out_of_range", msg),
            PublishError::TooManyEvents { count, max } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_events", msg)
                    .with_field("count", count)
                    .with_field("max", max)
            }
            #[allow(unreachable_patterns)]
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg),
        }
    }
}

impl From<ConnectError> for HttpError {
    fn from(e: ConnectError) -> Self {
        let msg = e.to_string();
        match e {
            ConnectError::InvalidLastEventId(id) => id.into(),
            ConnectError::Conflict => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "the session already has a connection and this server allows one; close the other one first",
            ),
            ConnectError::SupersededRecently => {
                Self::new(StatusCode::NO_CONTENT, "superseded", msg)
            }
            ConnectError::Draining { retry_after } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "draining", msg)
                    .with_retry_after(retry_after)
            }
            ConnectError::TooManySessions { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions", msg)
                    .with_retry_after(FULL_RETRY_AFTER)
            }
            // One identity's own cap: the node is not full, so the answer is the caller's.
            ConnectError::TooManySessionsForSubject { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sessions_for_subject",
                msg,
            )
            .with_retry_after(FULL_RETRY_AFTER),
            #[allow(unreachable_patterns)]
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg),
        }
    }
}

impl From<BackplaneError> for HttpError {
    fn from(e: BackplaneError) -> Self {
        match e {
            BackplaneError::Publish(p) => p.into(),
            BackplaneError::Connect(c) => c.into(),
            BackplaneError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backplane_unavailable",
                e.to_string(),
            )
            .with_retry_after(BACKPLANE_RETRY_AFTER),
            BackplaneError::Approval(a) => a.into(),
            BackplaneError::Decide(d) => d.into(),
            BackplaneError::Full(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backplane_full",
                e.to_string(),
            )
            .with_retry_after(BACKPLANE_FULL_RETRY_AFTER),
            #[allow(unreachable_patterns)]
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

impl From<ApprovalError> for HttpError {
    fn from(e: ApprovalError) -> Self {
        match e {
            ApprovalError::InvalidId(id) => id.into(),
            ApprovalError::Duplicate => Self::new(
                StatusCode::CONFLICT,
                "duplicate_approval",
                "an approval with this id already exists in the session; choose another id or omit it",
            ),
            ApprovalError::Publish(p) => p.into(),
            ApprovalError::TooManyPending { max } => Self::new(
                StatusCode::CONFLICT,
                "too_many_pending_approvals",
                format!("the session has {max} pending approvals, its maximum; decide or cancel one first"),
            )
            .with_field("max", max),
            ApprovalError::TooLarge { size, max } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "approval_too_large",
                format!("the approval's payload is {size} bytes of JSON, more than the maximum of {max}"),
            )
            .with_field("size", size)
            .with_field("max", max),
            #[allow(unreachable_patterns)]
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

impl From<DecideError> for HttpError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::Unknown => Self::new(
                StatusCode::NOT_FOUND,
                "unknown_approval",
                "no such approval in this session; check the session and approval ids",
            ),
            DecideError::AlreadyDecided(status) => Self::new(
                StatusCode::CONFLICT,
                "already_decided",
                format!(
                    "the approval was already {}; nothing to do",
                    status.as_str()
                ),
            )
            .with_field("status", status.as_str()),
            DecideError::Expired => Self::new(
                StatusCode::GONE,
                "expired",
                "the approval's deadline passed before the decision arrived; ask for a new one",
            ),
            #[allow(unreachable_patterns)]
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(res: &Response) -> serde_json::Value {
        serde_json::from_slice(res.body().as_full().unwrap()).unwrap()
    }

    #[test]
    fn body_and_headers() {
        let res = HttpError::from(PublishError::RateLimited {
            retry_after: Duration::from_millis(1200),
        })
        .into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[RETRY_AFTER], "2");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        let v = json(&res);
        assert_eq!(v["error"], "rate_limited");
        assert!(v["message"].as_str().unwrap().contains("retry"));
    }

    #[test]
    fn statuses() {
        let cases: Vec<(HttpError, u16)> = vec![
            (DecideError::Unknown.into(), 404),
            (
                DecideError::AlreadyDecided(crate::ApprovalStatus::Approved { reason: None })
                    .into(),
                409,
            ),
            (DecideError::Expired.into(), 410),
            (ApprovalError::Duplicate.into(), 409),
            (ConnectError::Conflict.into(), 409),
            (ConnectError::SupersededRecently.into(), 204),
            (ConnectError::TooManySessions { max: 1 }.into(), 503),
            (PublishError::TooLarge { size: 2, max: 1 }.into(), 413),
            (InvalidId::new(crate::id::IdKind::SessionId).into(), 400),
            (BackplaneError::Unavailable("down".into()).into(), 503),
            (BackplaneError::Full("oom".into()).into(), 503),
            (BackplaneError::Connect(ConnectError::Conflict).into(), 409),
            (
                BackplaneError::Publish(PublishError::TooLarge { size: 2, max: 1 }).into(),
                413,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(e.status().as_u16(), status, "{e}");
        }
    }

    #[test]
    fn backplane_errors_say_which_and_when_to_retry() {
        let res = HttpError::from(BackplaneError::Unavailable("timed out".into())).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[RETRY_AFTER], "2");
        assert_eq!(json(&res)["error"], "backplane_unavailable");
        let res = HttpError::from(BackplaneError::Full("OOM".into())).into_response();
        assert_eq!(json(&res)["error"], "backplane_full");
        assert!(res.headers().contains_key(RETRY_AFTER));
    }

    #[test]
    fn no_content_has_no_body() {
        let res = HttpError::from(ConnectError::SupersededRecently).into_response();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(res.body().as_full().unwrap().is_empty());
        assert!(res.headers().get(CONTENT_TYPE).is_none());
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(retry_after_value(Duration::ZERO), "1");
        assert_eq!(retry_after_value(Duration::from_millis(1001)), "2");
    }

    #[test]
    fn rejected_lists_stored_ids() {
        let e: HttpError = PublishError::Rejected {
            index: 1,
            reason: "bad".into(),
            stored: vec![crate::EventId::parse("a-1").unwrap()],
        }
        .into();
        let v = json(&e.into_response());
        assert_eq!(v["index"], 1);
        assert_eq!(v["ids"][0], "a-1");
    }
}
