//! The framework-neutral HTTP layer shared by every adapter (feature `http`).
//!
//! Everything the axum, actix-web and warp adapters would otherwise each write again lives
//! here once, on the `http` crate's types: reading `Last-Event-ID` and the query
//! parameters, validating ids, the SSE response headers, the JSON bodies of the publish and
//! approval routes, the draining answers, and the mapping of every core error to a status code
//! and a JSON body `{"error": "<code>", "message": "<what to do>"}`.
//!
//! Each route of the contract is one plain function taking the [`Broker`](crate::Broker), the
//! application's [`Hooks`], the raw path parameters, the request headers, the raw query string
//! (`""` when there is none) and, where the route has one, the body as `&[u8]`. Each returns a
//! [`Response`] whose [`Body`] is either complete bytes or the live [`EventStream`](crate::EventStream). An adapter
//! only routes, buffers request bodies up to [`Hooks::max_body_bytes`] and converts the
//! response into its framework's type:
//!
//! | route | function |
//! |---|---|
//! | `GET /api/sse/session/{session_id}` | [`subscribe`] |
//! | `POST /api/sessions/{session_id}/events` | [`publish`] |
//! | `POST /api/sessions/{session_id}/approvals` | [`create_approval`] |
//! | `GET /api/sessions/{session_id}/approvals/{approval_id}?waitMs=` | [`approval_status`] (async: long-poll) |
//! | `DELETE /api/sessions/{session_id}/approvals/{approval_id}` | [`cancel_approval`] |
//! | `POST /api/sessions/{session_id}/approvals/{approval_id}/decision` | [`decide`] |
//! | `GET /health/sse` | [`health`] |
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use tether_core::Broker;
//! use tether_core::http::{self as th, Body, Hooks};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let broker = Broker::builder().start();
//! let hooks = Hooks::new().publish_token("s3cret");
//!
//! let mut publisher = HeaderMap::new();
//! publisher.insert("authorization", "Bearer s3cret".parse().unwrap());
//! let answer = th::publish(&broker, &hooks, "chat-1", &publisher, "", br#"{"text":"hi"}"#);
//! assert_eq!(answer.status(), StatusCode::ACCEPTED);
//!
//! let answer = th::subscribe(&broker, &hooks, "chat-1", &HeaderMap::new(), "");
//! assert_eq!(answer.headers()["content-type"], "text/event-stream");
//! assert!(matches!(answer.body(), Body::Stream(_)));
//! # }
//! ```
//!
//! ## Status codes and error codes
//!
//! | status | `error` | when |
//! |---|---|---|
//! | 400 | `invalid_session_id`, `invalid_last_event_id`, `invalid_client_id`, `invalid_approval_id`, `invalid_json`, `invalid_body`, `invalid_event`, `invalid_event_name`, `invalid_query`, `rejected` | the request breaks the contract; nothing was stored |
//! | 401 | `unauthorized` | no or wrong credentials (publisher token, or the authorizer said so) |
//! | 403 | `forbidden` | the authorizer refused this session to this caller |
//! | 404 | `unknown_approval`, `not_found` | no such approval in the session |
//! | 409 | `conflict`, `duplicate_approval`, `already_decided` | Reject policy; approval id taken; second decision |
//! | 410 | `expired` | the approval's deadline passed first |
//! | 413 | `too_large`, `body_too_large` | one event or the whole body is over its limit |
//! | 429 | `rate_limited` | the session's publish rate is exceeded; `Retry-After` says when to retry |
//! | 503 | `draining`, `too_many_sessions` | the node is draining or full; `Retry-After` says when to retry |
//!
//! A client instance superseded moments ago (`clientId`) gets 204 No Content with no body,
//! which makes EventSource stop instead of taking the session back.
//!
//! ## Draining
//!
//! While the broker drains, an event-stream request (`Accept: text/event-stream`, as every
//! EventSource sends) to the subscribe route gets 200 with only a `retry:` line spread over the
//! drain window, then the response ends: EventSource gives up after any non-200 answer, so this
//! is the only way to send it back through the load balancer to another node at a moment of its
//! own. Other subscribe requests, publishes and new approvals get 503 with `Retry-After`;
//! decisions, status polls and cancellations of approvals already on this node are still
//! served; [`health`] answers 503.

mod body;
mod cors;
mod error;
mod handlers;
mod hooks;
mod request;

pub use body::Body;
pub use cors::Cors;
pub use error::HttpError;
pub use handlers::{
    DEFAULT_WAIT, MAX_WAIT, approval_status, cancel_approval, create_approval, decide, health,
    publish, sse_headers, subscribe,
};
pub use hooks::{
    Access, AllowAll, Authorizer, BearerToken, DEFAULT_MAX_BODY_BYTES, Hooks, PublisherAuth,
    SessionOwnerHeader,
};
pub use request::{
    connect_options, last_event_id, percent_decode, query_param, session_id, wait_duration,
    wants_event_stream,
};

/// A response of the HTTP layer, for an adapter to convert into its framework's type.
pub type Response = ::http::Response<Body>;

/// The contract's route paths, in the `{param}` syntax axum 0.8 and actix-web share.
pub mod routes {
    /// `GET`: the session's event stream.
    pub const SUBSCRIBE: &str = "/api/sse/session/{session_id}";
    /// `POST`: publish one event (object) or a batch (array).
    pub const EVENTS: &str = "/api/sessions/{session_id}/events";
    /// `POST`: create an approval request.
    pub const APPROVALS: &str = "/api/sessions/{session_id}/approvals";
    /// `GET` (status, long-poll with `waitMs`) and `DELETE` (cancel).
    pub const APPROVAL: &str = "/api/sessions/{session_id}/approvals/{approval_id}";
    /// `POST`: a human's decision.
    pub const DECISION: &str = "/api/sessions/{session_id}/approvals/{approval_id}/decision";
    /// `GET`: health for probes.
    pub const HEALTH: &str = "/health/sse";
}
