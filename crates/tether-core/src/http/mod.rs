//! The framework-neutral HTTP layer shared by every adapter (feature `http`).
//!
//! Everything the axum, actix-web and warp adapters would otherwise each write again lives
//! here once, on the `http` crate's types: reading `Last-Event-ID` and the query
//! parameters, validating ids, the SSE response headers, the JSON bodies of the publish and
//! approval routes, the draining answers, and the mapping of every core error to a status code
//! and a JSON body `{"error": "<code>", "message": "<what to do>"}`.
//!
//! One [`Service`] holds the [`Broker`](crate::Broker), the application's [`Hooks`], CORS,
//! `/metrics` and any [`RouteExtension`]s. Every server answers a request in the same three
//! steps, so every rule of the contract lives here once:
//!
//! 1. [`Service::admit`] on the request's head: CORS preflight, [`Route::parse`] (404, 405
//!    with `Allow`), ids, credentials, body size by `Content-Length`, draining;
//! 2. the server reads the body, at most [`Admitted::body_limit`] bytes, and only for an
//!    admitted request;
//! 3. [`Admitted::handle`] with the body gives the [`Response`], whose [`Body`] is either
//!    complete bytes or the live [`EventStream`](crate::EventStream).
//!
//! An adapter mounts the service on the paths tether [`claims`] and converts the response into
//! its framework's type; the hub's own connection loop calls the same three steps.
//!
//! | route | |
//! |---|---|
//! | `GET /api/sse/session/{session_id}` | the session's event stream (`HEAD`: its head only) |
//! | `POST /api/sessions/{session_id}/events` | publish one event or a batch |
//! | `POST /api/sessions/{session_id}/approvals` | create an approval request |
//! | `GET /api/sessions/{session_id}/approvals/{approval_id}?waitMs=` | its status (long-poll) |
//! | `DELETE /api/sessions/{session_id}/approvals/{approval_id}` | cancel it |
//! | `POST /api/sessions/{session_id}/approvals/{approval_id}/decision` | a human's decision |
//! | `GET /health/sse` | health for probes |
//! | `GET /health/live` | liveness: 200 while the process answers, draining included |
//! | `GET /metrics` | Prometheus text, where [`Service::metrics`] mounts it |
//!
//! ```
//! use bytes::Bytes;
//! use tether_core::Broker;
//! use tether_core::http::{Body, Hooks, Service};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = Service::new(Broker::builder().start().expect("valid config"), Hooks::allow_all().publish_token("s3cret"));
//!
//! let publish = http::Request::post("/api/sessions/chat-1/events")
//!     .header("authorization", "Bearer s3cret")
//!     .header("host", "localhost")
//!     .header("content-type", "application/json")
//!     .body(Bytes::from_static(br#"{"text":"hi"}"#))
//!     .unwrap();
//! assert_eq!(service.call(publish).await.status(), 202);
//!
//! let subscribe = http::Request::get("/api/sse/session/chat-1")
//!     .header("host", "localhost")
//!     .body(Bytes::new())
//!     .unwrap();
//! let answer = service.call(subscribe).await;
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
//! | 404 | `unknown_approval`, `not_found` | no such approval in the session; no such route |
//! | 405 | `method_not_allowed` | the route does not answer this method; `Allow` names those it does |
//! | 409 | `conflict`, `duplicate_approval`, `already_decided` | Reject policy; approval id taken; second decision |
//! | 410 | `expired` | the approval's deadline passed first |
//! | 413 | `too_large`, `body_too_large` | one event or the whole body is over its limit |
//! | 429 | `rate_limited` | the session's publish rate is exceeded; `Retry-After` says when to retry |
//! | 503 | `draining`, `too_many_sessions` | the node is draining or full; `Retry-After` says when to retry |
//! | 503 | `backplane_unavailable`, `backplane_full` | the [backplane](Service::backplane) cannot be reached or refuses to store more; nothing is kept only in this node's memory; `Retry-After` says when to retry |
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
//! served; `/health/sse` answers 503.

mod audit;
mod body;
mod cors;
mod error;
mod expiry;
mod handlers;
mod hooks;
mod request;
mod route;
mod service;

pub use body::{Body, ChunkStream};
pub use cors::Cors;
pub use error::HttpError;
pub use handlers::{DEFAULT_WAIT, MAX_WAIT, sse_headers};
#[cfg(feature = "jwt")]
pub use hooks::JwtAuthorizer;
pub use hooks::{
    Access, AccessRequest, AllowAll, Authorizer, Capability, DEFAULT_MAX_BODY_BYTES, Hooks,
    Identity, SessionOwnerHeader,
};
pub use request::{
    client_info, connect_options, last_event_id, percent_decode, query_param, session_id,
    wait_duration, wants_event_stream,
};
pub use route::{EXACT_PATHS, PREFIXES, Route, RouteError, claims};
pub use service::{Admitted, ExtensionRequest, PeerAddr, ResponseFuture, RouteExtension, Service};

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
    /// `GET`: liveness (200 while the process serves requests, draining or not).
    pub const LIVE: &str = "/health/live";
}
