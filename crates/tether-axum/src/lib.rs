//! # tether-axum
//!
//! The [axum] adapter for tether: every route of the HTTP contract as a nestable
//! [`Router`], built on the framework-neutral layer in [`tether_core::http`], plus what a
//! server of long-lived streams needs around it:
//!
//! - [`router`]: the routes, with the application's [`Hooks`] (who may subscribe, who may
//!   publish, the body limit). The stream body is the core's pre-encoded bytes, sent as they
//!   are (axum's own `Sse` type would encode every event again).
//! - [`SseListener`]: a listener with a backlog of 4096 (a reconnect storm overflows the usual
//!   1024, and the kernel retries a dropped SYN only after a second) that applies
//!   [`SocketOptions`] (TCP keepalive, `TCP_USER_TIMEOUT`) to every accepted socket, so the
//!   kernel gives up on a vanished peer within the client timeout.
//! - [`serve`]: axum's server with the broker's drain hooked into graceful shutdown: on the
//!   signal every stream ends with a `retry:` spread over the drain window, new requests get
//!   the draining answers for that window, then the server stops.
//! - [`with_cors`]: CORS for pages on other origins.
//!
//! ```
//! use std::time::Duration;
//! use tether_axum::{Hooks, SseListener, SocketOptions};
//! use tether_core::Broker;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let broker = Broker::builder().start();
//! let hooks = Hooks::new().publish_token("s3cret");
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my app" }))
//!     .merge(tether_axum::router(broker.clone(), hooks));
//!
//! let options = SocketOptions::for_client_timeout(broker.config().client_timeout());
//! let listener = SseListener::bind("127.0.0.1:0".parse().unwrap(), options)?;
//! println!("listening on http://{}", listener.local_addr()?);
//!
//! // Here the shutdown signal is already there; a service would pass Ctrl-C or SIGTERM.
//! let shutdown = std::future::ready(());
//! tether_axum::serve(listener, app, broker, shutdown, Duration::ZERO).await
//! # }
//! ```
//!
//! Nest the router under a prefix with `Router::nest("/prefix", router)` if the contract's
//! paths should not sit at the root.
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "agui")]
pub mod agui;

use std::fmt::Debug;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::Listener;
use tether_core::Broker;
use tether_core::http::{self as th, HttpError, routes};
use tokio::net::{TcpListener, TcpStream};

pub use tether_core::http::{
    Access, AllowAll, Authorizer, BearerToken, Cors, Hooks, PublisherAuth, SessionOwnerHeader,
};
pub use tether_core::net::SocketOptions;

/// How long [`serve`] waits, after the drain window, for streams whose clients were not
/// reading and for requests in flight, before it returns anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct AppState {
    broker: Broker,
    hooks: Hooks,
}

/// Converts a response of the HTTP layer; the stream body passes through untouched.
fn convert(res: th::Response) -> Response {
    res.map(axum::body::Body::new)
}

fn query(uri: &Uri) -> &str {
    uri.query().unwrap_or("")
}

/// A path segment that is not valid percent-encoded UTF-8 cannot be an id.
fn bad_path(_: PathRejection) -> Response {
    convert(
        HttpError::bad_request(
            "invalid_session_id",
            "ids must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'",
        )
        .into_response(),
    )
}

fn body_or_error(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, HttpError> {
    body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::body_too_large(limit)
        } else {
            HttpError::bad_request("invalid_body", rejection.body_text())
        }
    })
}

async fn subscribe(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    match path {
        Ok(Path(session)) => convert(th::subscribe(
            &s.broker,
            &s.hooks,
            &session,
            &headers,
            query(&uri),
        )),
        Err(e) => bad_path(e),
    }
}

async fn publish(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Path(session) = match path {
        Ok(p) => p,
        Err(e) => return bad_path(e),
    };
    match body_or_error(body, s.hooks.body_limit()) {
        Ok(body) => convert(th::publish(
            &s.broker,
            &s.hooks,
            &session,
            &headers,
            query(&uri),
            &body,
        )),
        Err(e) => convert(e.into_response()),
    }
}

async fn create_approval(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Path(session) = match path {
        Ok(p) => p,
        Err(e) => return bad_path(e),
    };
    match body_or_error(body, s.hooks.body_limit()) {
        Ok(body) => convert(th::create_approval(
            &s.broker, &s.hooks, &session, &headers, &body,
        )),
        Err(e) => convert(e.into_response()),
    }
}

async fn approval_status(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    match path {
        Ok(Path((session, approval))) => convert(
            th::approval_status(
                &s.broker,
                &s.hooks,
                &session,
                &approval,
                &headers,
                query(&uri),
            )
            .await,
        ),
        Err(e) => bad_path(e),
    }
}

async fn cancel_approval(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    match path {
        Ok(Path((session, approval))) => convert(th::cancel_approval(
            &s.broker, &s.hooks, &session, &approval, &headers,
        )),
        Err(e) => bad_path(e),
    }
}

async fn decide(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Path((session, approval)) = match path {
        Ok(p) => p,
        Err(e) => return bad_path(e),
    };
    match body_or_error(body, s.hooks.body_limit()) {
        Ok(body) => convert(th::decide(
            &s.broker, &s.hooks, &session, &approval, &headers, &body,
        )),
        Err(e) => convert(e.into_response()),
    }
}

async fn health(State(s): State<AppState>) -> Response {
    convert(th::health(&s.broker))
}

/// Every route of the HTTP contract, on `broker`, with the application's `hooks`:
///
/// | route | |
/// |---|---|
/// | `GET /api/sse/session/{session_id}` | the session's event stream |
/// | `POST /api/sessions/{session_id}/events` | publish one event or an array |
/// | `POST /api/sessions/{session_id}/approvals` | create an approval request |
/// | `GET /api/sessions/{session_id}/approvals/{approval_id}?waitMs=` | status (long-poll) |
/// | `DELETE /api/sessions/{session_id}/approvals/{approval_id}` | cancel |
/// | `POST /api/sessions/{session_id}/approvals/{approval_id}/decision` | decide |
/// | `GET /health/sse` | health for probes |
///
/// Request bodies are limited to [`Hooks::max_body_bytes`] (413 past it). Merge the router
/// into the application's or nest it under a prefix.
pub fn router(broker: Broker, hooks: Hooks) -> Router {
    let limit = hooks.body_limit();
    Router::new()
        .route(routes::SUBSCRIBE, get(subscribe))
        .route(routes::EVENTS, post(publish))
        .route(routes::APPROVALS, post(create_approval))
        .route(
            routes::APPROVAL,
            get(approval_status).delete(cancel_approval),
        )
        .route(routes::DECISION, post(decide))
        .route(routes::HEALTH, get(health))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(AppState { broker, hooks })
}

async fn cors_layer(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    if Cors::is_preflight(req.method(), req.headers()) {
        return convert(cors.preflight(req.headers()));
    }
    let request_headers = req.headers().clone();
    let mut res = next.run(req).await;
    cors.decorate(&request_headers, res.headers_mut());
    res
}

/// Answers CORS preflights and adds the CORS headers for allowed origins to every response
/// of `router` (apply it after adding every route that needs it).
pub fn with_cors(router: Router, cors: Cors) -> Router {
    if cors.is_empty() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(
        Arc::new(cors),
        cors_layer,
    ))
}

/// A TCP listener for SSE servers: bound with a backlog of
/// [`LISTEN_BACKLOG`](tether_core::net::LISTEN_BACKLOG), and applying [`SocketOptions`] to every
/// accepted connection.
#[derive(Debug)]
pub struct SseListener {
    inner: TcpListener,
    options: SocketOptions,
}

impl SseListener {
    /// Binds `addr` (port 0 picks a free port) with a backlog of 4096.
    pub fn bind(addr: SocketAddr, options: SocketOptions) -> io::Result<Self> {
        Ok(Self {
            inner: tether_core::net::bind(addr)?,
            options,
        })
    }

    /// Wraps a listener bound elsewhere.
    pub fn from_listener(inner: TcpListener, options: SocketOptions) -> Self {
        Self { inner, options }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl Listener for SseListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if let Err(e) = self.options.apply(&stream) {
                        tracing::debug!(%addr, error = %e, "could not apply socket options");
                    }
                    return (stream, addr);
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors and the like: give connections time to close.
                    tracing::error!(error = %e, "SSE error: accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains:
///
/// 1. [`Broker::drain`]: every stream ends now with a `retry:` spread uniformly over
///    `drain_window`, so clients come back through the load balancer at different moments;
/// 2. for `drain_window` the server keeps answering, with the draining answers (200 +
///    `retry:` for event-stream requests, 503 + `Retry-After` otherwise) while the load
///    balancer takes the node out;
/// 3. it waits up to [`SHUTDOWN_GRACE`] for the broker to be idle, stops accepting, lets
///    requests in flight finish within [`SHUTDOWN_GRACE`], and returns.
pub async fn serve<L>(
    listener: L,
    router: Router,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_window: Duration,
) -> io::Result<()>
where
    L: Listener,
    L::Addr: Debug,
{
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        r = &mut server => return r,
        () = shutdown => {}
    }
    broker.drain(drain_window);
    tokio::select! {
        r = &mut server => return r,
        () = tokio::time::sleep(drain_window) => {}
    }
    tokio::select! {
        r = &mut server => return r,
        idle = tokio::time::timeout(SHUTDOWN_GRACE, broker.idle()) => {
            if idle.is_err() {
                tracing::warn!(
                    connections = broker.connection_count(),
                    "streams still open after the drain window; closing them"
                );
            }
        }
    }
    let _ = stop_tx.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("requests still in flight after the shutdown grace; leaving them");
            Ok(())
        }
    }
}

/// A JSON 404 for paths outside the contract, for `Router::fallback`.
pub async fn not_found() -> Response {
    convert(HttpError::not_found().into_response())
}

/// Converts a response of [`tether_core::http`] into axum's, for applications that call the
/// HTTP layer from their own handlers. The stream body passes through untouched.
pub fn into_response(res: th::Response) -> Response {
    convert(res)
}
