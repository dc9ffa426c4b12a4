//! # tether-warp
//!
//! The [warp] adapter for tether: every route of the HTTP contract as a warp [`Filter`], built
//! on the framework-neutral layer in [`tether_core::http`], plus what a server of long-lived
//! streams needs around it:
//!
//! - [`router`]: the routes, with the application's [`Hooks`] (who may subscribe, who may
//!   publish, the body limit), to combine with the application's filters by `or`. The stream
//!   body is the core's pre-encoded bytes, sent as they are (warp's own `sse` module would
//!   encode every event again).
//! - [`SseListener`]: a listener with a backlog of 4096 (a reconnect storm overflows the usual
//!   1024, and the kernel retries a dropped SYN only after a second) that applies
//!   [`SocketOptions`] (TCP keepalive, `TCP_USER_TIMEOUT`) to every accepted socket, so the
//!   kernel gives up on a vanished peer within the client timeout. `warp::serve` accepts only
//!   its own listeners, so [`serve`] runs the filter on hyper directly.
//! - [`serve`]: the filter on HTTP/1.1 with the broker's drain hooked into graceful shutdown:
//!   on the signal every stream ends with a `retry:` spread over the drain window, new requests
//!   get the draining answers for that window, then the server stops.
//! - [`with_cors`]: CORS for pages on other origins.
//!
//! ```
//! use std::time::Duration;
//! use tether_core::Broker;
//! use tether_warp::{Hooks, SocketOptions, SseListener};
//! use warp::Filter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let broker = Broker::builder().start();
//! let hooks = Hooks::new().publish_token("s3cret");
//! let app = warp::path::end()
//!     .map(|| "my app")
//!     .or(tether_warp::router(broker.clone(), hooks));
//!
//! let options = SocketOptions::for_client_timeout(broker.config().client_timeout());
//! let listener = SseListener::bind("127.0.0.1:0".parse().unwrap(), options)?;
//! println!("listening on http://{}", listener.local_addr()?);
//!
//! // Here the shutdown signal is already there; a service would pass Ctrl-C or SIGTERM.
//! let shutdown = std::future::ready(());
//! tether_warp::serve(listener, app, broker, shutdown, Duration::ZERO).await
//! # }
//! ```
//!
//! Put the routes under a prefix with `warp::path("prefix").and(router)` if the contract's
//! paths should not sit at the root. Requests outside the routes are rejected, so the
//! application's filters after an `or` still see them; end the chain with [`not_found`] for the
//! contract's JSON 404.
#![doc(test(attr(deny(warnings))))]

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use http::{HeaderMap, Method};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tether_core::Broker;
use tether_core::http::{self as th, HttpError};
use tokio::net::{TcpListener, TcpStream};
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

pub use tether_core::http::{
    Access, AllowAll, Authorizer, BearerToken, Cors, Hooks, PublisherAuth, SessionOwnerHeader,
};
pub use tether_core::net::SocketOptions;

/// How long [`serve`] waits, after the drain window, for streams whose clients were not
/// reading and for requests in flight, before it returns anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

struct State {
    broker: Broker,
    hooks: Hooks,
}

/// The core's body as the fallible stream warp's streaming reply takes. The bytes pass
/// through as they are.
struct Chunks(th::Body);

impl Stream for Chunks {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().0)
            .poll_next(cx)
            .map(|c| c.map(Ok))
    }
}

/// Converts a response of [`tether_core::http`] into warp's, for applications that call the
/// HTTP layer from their own filters. The stream body passes through untouched.
pub fn into_response(res: th::Response) -> Response {
    let (parts, body) = res.into_parts();
    let mut out = match body {
        th::Body::Full(bytes) => Response::new(bytes.into()),
        stream @ th::Body::Stream(_) => warp::reply::stream(Chunks(stream)).into_response(),
    };
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    out
}

/// The raw query string, `""` when there is none.
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Path segments arrive percent-encoded; the id grammar is checked on the decoded text.
fn segment(raw: &str) -> std::borrow::Cow<'_, str> {
    th::percent_decode(raw)
}

/// Reads the body up to `limit` bytes; 413 past it.
async fn read_body<S, B>(body: S, limit: usize) -> Result<Bytes, th::Response>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let mut chunk = chunk.map_err(|e| {
            HttpError::bad_request("invalid_body", format!("could not read the body: {e}"))
                .into_response()
        })?;
        if out.len() + chunk.remaining() > limit {
            return Err(HttpError::body_too_large(limit).into_response());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

fn with_state(
    state: &Arc<State>,
) -> impl Filter<Extract = (Arc<State>,), Error = Infallible> + Clone + use<> {
    let state = state.clone();
    warp::any().map(move || state.clone())
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
/// Request bodies are limited to [`Hooks::max_body_bytes`] (413 past it). Other requests are
/// rejected, so filters combined after it with `or` still see them.
pub fn router(broker: Broker, hooks: Hooks) -> BoxedFilter<(Response,)> {
    let state = Arc::new(State { broker, hooks });

    let subscribe = warp::get()
        .and(warp::path!("api" / "sse" / "session" / String))
        .and(with_state(&state))
        .and(warp::header::headers_cloned())
        .and(raw_query())
        .map(
            |session: String, s: Arc<State>, headers: HeaderMap, query: String| {
                into_response(th::subscribe(
                    &s.broker,
                    &s.hooks,
                    &segment(&session),
                    &headers,
                    &query,
                ))
            },
        );

    let publish = warp::post()
        .and(warp::path!("api" / "sessions" / String / "events"))
        .and(with_state(&state))
        .and(warp::header::headers_cloned())
        .and(raw_query())
        .and(warp::body::stream())
        .then(
            |session: String, s: Arc<State>, headers: HeaderMap, query: String, body| async move {
                let res = match read_body(body, s.hooks.body_limit()).await {
                    Ok(body) => th::publish(
                        &s.broker,
                        &s.hooks,
                        &segment(&session),
                        &headers,
                        &query,
                        &body,
                    ),
                    Err(res) => res,
                };
                into_response(res)
            },
        );

    let create_approval = warp::post()
        .and(warp::path!("api" / "sessions" / String / "approvals"))
        .and(with_state(&state))
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            |session: String, s: Arc<State>, headers: HeaderMap, body| async move {
                let res = match read_body(body, s.hooks.body_limit()).await {
                    Ok(body) => th::create_approval(
                        &s.broker,
                        &s.hooks,
                        &segment(&session),
                        &headers,
                        &body,
                    ),
                    Err(res) => res,
                };
                into_response(res)
            },
        );

    let approval_status = warp::get()
        .and(warp::path!(
            "api" / "sessions" / String / "approvals" / String
        ))
        .and(with_state(&state))
        .and(warp::header::headers_cloned())
        .and(raw_query())
        .then(
            |session: String,
             approval: String,
             s: Arc<State>,
             headers: HeaderMap,
             query: String| async move {
                into_response(
                    th::approval_status(
                        &s.broker,
                        &s.hooks,
                        &segment(&session),
                        &segment(&approval),
                        &headers,
                        &query,
                    )
                    .await,
                )
            },
        );

    let cancel_approval = warp::delete()
        .and(warp::path!(
            "api" / "sessions" / String / "approvals" / String
        ))
        .and(with_state(&state))
        .and(warp::header::headers_cloned())
        .map(
            |session: String, approval: String, s: Arc<State>, headers: HeaderMap| {
                into_response(th::cancel_approval(
                    &s.broker,
                    &s.hooks,
                    &segment(&session),
                    &segment(&approval),
                    &headers,
                ))
            },
        );

    let decide = warp::post()
        .and(warp::path!(
            "api" / "sessions" / String / "approvals" / String / "decision"
        ))
        .and(with_state(&state))
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            |session: String, approval: String, s: Arc<State>, headers: HeaderMap, body| async move {
                let res = match read_body(body, s.hooks.body_limit()).await {
                    Ok(body) => th::decide(
                        &s.broker,
                        &s.hooks,
                        &segment(&session),
                        &segment(&approval),
                        &headers,
                        &body,
                    ),
                    Err(res) => res,
                };
                into_response(res)
            },
        );

    let health = warp::get()
        .and(warp::path!("health" / "sse"))
        .and(with_state(&state))
        .map(|s: Arc<State>| into_response(th::health(&s.broker)));

    subscribe
        .or(publish)
        .unify()
        .or(create_approval)
        .unify()
        .or(approval_status)
        .unify()
        .or(cancel_approval)
        .unify()
        .or(decide)
        .unify()
        .or(health)
        .unify()
        .boxed()
}

/// The contract's JSON 404, for the end of an `or` chain: it matches every request.
pub fn not_found() -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    warp::any().map(|| into_response(HttpError::not_found().into_response()))
}

/// Answers CORS preflights and adds the CORS headers for allowed origins to every response of
/// `filter` (wrap the whole application, after every route that needs it).
pub fn with_cors<F, R>(filter: F, cors: Cors) -> BoxedFilter<(Response,)>
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let cors = Arc::new(cors);
    let preflight = {
        let cors = cors.clone();
        warp::method().and(warp::header::headers_cloned()).and_then(
            move |method: Method, headers: HeaderMap| {
                let cors = cors.clone();
                async move {
                    if !cors.is_empty() && th::Cors::is_preflight(&method, &headers) {
                        Ok(into_response(cors.preflight(&headers)))
                    } else {
                        Err(warp::reject::reject())
                    }
                }
            },
        )
    };
    let decorated =
        warp::header::headers_cloned()
            .and(filter)
            .map(move |headers: HeaderMap, reply: R| {
                let mut res = reply.into_response();
                cors.decorate(&headers, res.headers_mut());
                res
            });
    preflight.or(decorated).unify().boxed()
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

    /// Accepts the next connection and applies the socket options to it.
    pub async fn accept(&self) -> (TcpStream, SocketAddr) {
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
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `filter` over HTTP/1.1 on `listener` until `shutdown` resolves, then drains:
///
/// 1. [`Broker::drain`]: every stream ends now with a `retry:` spread uniformly over
///    `drain_window`, so clients come back through the load balancer at different moments;
/// 2. for `drain_window` the server keeps answering, with the draining answers (200 +
///    `retry:` for event-stream requests, 503 + `Retry-After` otherwise) while the load
///    balancer takes the node out;
/// 3. it waits up to [`SHUTDOWN_GRACE`] for the broker to be idle, stops accepting, lets
///    requests in flight finish within [`SHUTDOWN_GRACE`], and returns.
///
/// A client that closes its connection ends its stream at once (hyper reads the end of the
/// connection while the response streams).
pub async fn serve<F>(
    listener: SseListener,
    filter: F,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_window: Duration,
) -> io::Result<()>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let graceful = GracefulShutdown::new();
    let service = warp::service(filter);
    let stop_accepting = async {
        shutdown.await;
        broker.drain(drain_window);
        tokio::time::sleep(drain_window).await;
        if tokio::time::timeout(SHUTDOWN_GRACE, broker.idle())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = broker.connection_count(),
                "streams still open after the drain window; closing them"
            );
        }
    };
    let mut stop_accepting = std::pin::pin!(stop_accepting);
    loop {
        tokio::select! {
            (stream, _) = listener.accept() => {
                let service = TowerToHyperService::new(service.clone());
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut stop_accepting => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the shutdown grace; leaving them");
    }
    Ok(())
}
