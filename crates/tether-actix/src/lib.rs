//! # tether-actix
//!
//! The [actix-web] adapter for tether: every route of the HTTP contract, built on the
//! framework-neutral layer in [`tether_core::http`], plus what a server of long-lived streams
//! needs around it:
//!
//! - [`router`]: the routes, with the application's [`Hooks`] (who may subscribe, who may
//!   publish, the body limit), registered with `App::service` or under a `web::scope`. The
//!   stream body is the core's pre-encoded bytes, sent as they are (actix-web-lab's SSE type
//!   would encode every event again).
//! - [`SseListener`]: a listener with a backlog of 4096 (a reconnect storm overflows the usual
//!   1024, and the kernel retries a dropped SYN only after a second).
//! - [`configure_server`]: the `HttpServer` settings an SSE server needs: it notices clients
//!   that closed their connection (actix-web by default keeps writing to a half-closed
//!   connection, so a closed tab would hold its session's slot until a write fails), and it
//!   applies [`SocketOptions`] (TCP keepalive, `TCP_USER_TIMEOUT`) to every accepted socket, so
//!   the kernel gives up on a vanished peer within the client timeout.
//! - [`with_cors`]: CORS for pages on other origins.
//! - [`serve`]: all of the above with the broker's drain hooked into graceful shutdown: on the
//!   signal every stream ends with a `retry:` spread over the drain window, new requests get
//!   the draining answers for that window, then the server stops. [`run_with_drain`] does the
//!   same for an `HttpServer` built by the application.
//!
//! ```
//! use std::time::Duration;
//! use actix_web::{App, web};
//! use tether_actix::{Hooks, SocketOptions, SseListener};
//! use tether_core::Broker;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let broker = Broker::builder().start();
//! let hooks = Hooks::new().publish_token("s3cret");
//! let tether = tether_actix::router(broker.clone(), hooks);
//! let app = move || {
//!     App::new()
//!         .route("/", web::get().to(|| async { "my app" }))
//!         .service(tether.clone())
//! };
//!
//! let options = SocketOptions::for_client_timeout(broker.config().client_timeout());
//! let listener = SseListener::bind("127.0.0.1:0".parse().unwrap(), options)?;
//! println!("listening on http://{}", listener.local_addr()?);
//!
//! // Here the shutdown signal is already there; a service would pass Ctrl-C or SIGTERM.
//! let shutdown = std::future::ready(());
//! tether_actix::serve(listener, app, broker, shutdown, Duration::ZERO).await
//! # }
//! ```
//!
//! Register the router under a prefix with `web::scope("/prefix").service(router)` if the
//! contract's paths should not sit at the root.
//!
//! ## Building your own `HttpServer`
//!
//! Pass it through [`configure_server`] before binding, or set at least
//! `HttpServer::h1_allow_half_closed(false)`: without it actix-web does not notice a client
//! that closed its connection while its stream is idle, and under the Reject policy the
//! client's next connect to the session gets 409 until a heartbeat write fails.
//!
//! ```no_run
//! use std::time::Duration;
//! use actix_web::{App, HttpServer};
//! use tether_actix::{Hooks, SocketOptions};
//! use tether_core::Broker;
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let broker = Broker::builder().start();
//! let tether = tether_actix::router(broker.clone(), Hooks::new());
//! let server = HttpServer::new(move || App::new().service(tether.clone())).workers(4);
//! let server = tether_actix::configure_server(server, SocketOptions::default())
//!     .disable_signals()
//!     .listen(tether_core::net::bind_std("0.0.0.0:8080".parse().unwrap())?)?
//!     .run();
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! tether_actix::run_with_drain(server, broker, shutdown, Duration::from_secs(10)).await
//! # }
//! ```
//!
//! actix-web speaks the `http` 0.2 types and the core the `http` 1 types: methods, status codes
//! and header maps are converted at this crate's edge, so neither side sees the other's.
#![doc(test(attr(deny(warnings))))]

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{AppConfig, HttpServiceFactory, Server, ServiceFactory};
use actix_web::http::{StatusCode, header as ax_header};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, HttpServer};
use http as http1;
use tether_core::Broker;
use tether_core::http::{self as th, HttpError, routes};

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
    cors: Option<Cors>,
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
/// Request bodies are limited to [`Hooks::max_body_bytes`] (413 past it). Register the
/// returned [`Router`] with `App::service` or `Scope::service`; it is cheap to clone, once per
/// worker in the application factory.
pub fn router(broker: Broker, hooks: Hooks) -> Router {
    Router {
        state: Arc::new(State {
            broker,
            hooks,
            cors: None,
        }),
    }
}

/// The contract's routes as an actix-web service factory; see [`router`].
#[derive(Clone)]
#[must_use = "a router does nothing until registered with `App::service`"]
pub struct Router {
    state: Arc<State>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("hooks", &self.state.hooks)
            .field("cors", &self.state.cors)
            .finish_non_exhaustive()
    }
}

/// Answers CORS preflights on the contract's routes and adds the CORS headers for allowed
/// origins to their responses. Without it, the routes send no CORS headers (same-origin pages
/// only). The application's own routes are not covered; actix-web's CORS middleware crates
/// handle those.
pub fn with_cors(router: Router, cors: Cors) -> Router {
    let State { broker, hooks, .. } = &*router.state;
    Router {
        state: Arc::new(State {
            broker: broker.clone(),
            hooks: hooks.clone(),
            cors: (!cors.is_empty()).then_some(cors),
        }),
    }
}

impl HttpServiceFactory for Router {
    fn register(self, config: &mut actix_web::dev::AppService) {
        let with_preflight = self.state.cors.is_some();
        let data = web::Data::from(self.state);
        let resources = [
            web::resource(routes::SUBSCRIBE).route(web::get().to(subscribe)),
            web::resource(routes::EVENTS).route(web::post().to(publish)),
            web::resource(routes::APPROVALS).route(web::post().to(create_approval)),
            web::resource(routes::APPROVAL)
                .route(web::get().to(approval_status))
                .route(web::delete().to(cancel_approval)),
            web::resource(routes::DECISION).route(web::post().to(decide)),
            web::resource(routes::HEALTH).route(web::get().to(health)),
        ];
        for resource in resources {
            let resource = if with_preflight {
                resource.route(web::method(actix_web::http::Method::OPTIONS).to(preflight))
            } else {
                resource
            };
            resource.app_data(data.clone()).register(config);
        }
    }
}

/// The request's headers as the `http` 1 map the core reads. Names and values are copied as
/// bytes: both crates accept the same grammar.
fn headers_of(req: &HttpRequest) -> http1::HeaderMap {
    let src = req.headers();
    let mut out = http1::HeaderMap::with_capacity(src.len());
    for (name, value) in src {
        if let (Ok(n), Ok(v)) = (
            http1::HeaderName::from_bytes(name.as_str().as_bytes()),
            http1::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(n, v);
        }
    }
    out
}

/// A response body that passes the core's bytes to actix-web as they are: complete bytes with
/// a `Content-Length`, or the live stream, chunk by chunk.
struct SseBody(th::Body);

impl fmt::Debug for SseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SseBody").field(&self.0).finish()
    }
}

impl MessageBody for SseBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        match &self.0 {
            th::Body::Full(b) => BodySize::Sized(b.len() as u64),
            th::Body::Stream(_) => BodySize::Stream,
        }
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        futures_core::Stream::poll_next(Pin::new(&mut self.get_mut().0), cx).map(|c| c.map(Ok))
    }
}

/// Converts a response of the HTTP layer into actix-web's: status and headers are copied into
/// the `http` 0.2 types, the body passes through untouched.
pub fn into_response(res: th::Response) -> HttpResponse {
    let (parts, body) = res.into_parts();
    let status =
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::with_body(status, SseBody(body));
    let headers = out.headers_mut();
    for (name, value) in &parts.headers {
        if let (Ok(n), Ok(v)) = (
            ax_header::HeaderName::from_bytes(name.as_str().as_bytes()),
            ax_header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    out.map_into_boxed_body()
}

/// Adds the CORS headers, if configured, and converts.
fn finish(state: &State, headers: &http1::HeaderMap, mut res: th::Response) -> HttpResponse {
    if let Some(cors) = &state.cors {
        cors.decorate(headers, res.headers_mut());
    }
    into_response(res)
}

fn query(req: &HttpRequest) -> &str {
    req.uri().query().unwrap_or("")
}

fn param<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.match_info().query(name)
}

/// Reads the request body up to the hooks' limit; 413 past it.
async fn read_body(state: &State, payload: web::Payload) -> Result<Bytes, th::Response> {
    let limit = state.hooks.body_limit();
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(HttpError::bad_request("invalid_body", e.to_string()).into_response()),
        Err(_) => Err(HttpError::body_too_large(limit).into_response()),
    }
}

async fn subscribe(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let headers = headers_of(&req);
    let res = th::subscribe(
        &state.broker,
        &state.hooks,
        param(&req, "session_id"),
        &headers,
        query(&req),
    );
    finish(&state, &headers, res)
}

async fn publish(state: web::Data<State>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let headers = headers_of(&req);
    let res = match read_body(&state, payload).await {
        Ok(body) => th::publish(
            &state.broker,
            &state.hooks,
            param(&req, "session_id"),
            &headers,
            query(&req),
            &body,
        ),
        Err(res) => res,
    };
    finish(&state, &headers, res)
}

async fn create_approval(
    state: web::Data<State>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let headers = headers_of(&req);
    let res = match read_body(&state, payload).await {
        Ok(body) => th::create_approval(
            &state.broker,
            &state.hooks,
            param(&req, "session_id"),
            &headers,
            &body,
        ),
        Err(res) => res,
    };
    finish(&state, &headers, res)
}

async fn approval_status(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let headers = headers_of(&req);
    let res = th::approval_status(
        &state.broker,
        &state.hooks,
        param(&req, "session_id"),
        param(&req, "approval_id"),
        &headers,
        query(&req),
    )
    .await;
    finish(&state, &headers, res)
}

async fn cancel_approval(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let headers = headers_of(&req);
    let res = th::cancel_approval(
        &state.broker,
        &state.hooks,
        param(&req, "session_id"),
        param(&req, "approval_id"),
        &headers,
    );
    finish(&state, &headers, res)
}

async fn decide(state: web::Data<State>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let headers = headers_of(&req);
    let res = match read_body(&state, payload).await {
        Ok(body) => th::decide(
            &state.broker,
            &state.hooks,
            param(&req, "session_id"),
            param(&req, "approval_id"),
            &headers,
            &body,
        ),
        Err(res) => res,
    };
    finish(&state, &headers, res)
}

async fn health(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let headers = headers_of(&req);
    let res = th::health(&state.broker);
    finish(&state, &headers, res)
}

async fn preflight(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let headers = headers_of(&req);
    match &state.cors {
        Some(cors) if Cors::is_preflight(&http1::Method::OPTIONS, &headers) => {
            into_response(cors.preflight(&headers))
        }
        _ => HttpResponse::MethodNotAllowed().finish(),
    }
}

/// A JSON 404 for paths outside the contract, for `App::default_service`.
pub async fn not_found() -> HttpResponse {
    into_response(HttpError::not_found().into_response())
}

/// A TCP listener for SSE servers, bound with a backlog of
/// [`LISTEN_BACKLOG`](tether_core::net::LISTEN_BACKLOG), with the [`SocketOptions`] that
/// [`serve`] applies to every connection it accepts.
#[derive(Debug)]
pub struct SseListener {
    inner: std::net::TcpListener,
    options: SocketOptions,
}

impl SseListener {
    /// Binds `addr` (port 0 picks a free port) with a backlog of 4096.
    pub fn bind(addr: SocketAddr, options: SocketOptions) -> io::Result<Self> {
        Ok(Self {
            inner: tether_core::net::bind_std(addr)?,
            options,
        })
    }

    /// Wraps a listener bound elsewhere (it should be in non-blocking mode).
    pub fn from_listener(inner: std::net::TcpListener, options: SocketOptions) -> Self {
        Self { inner, options }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The socket options.
    pub fn options(&self) -> SocketOptions {
        self.options
    }

    /// The std listener, for `HttpServer::listen`.
    pub fn into_std(self) -> std::net::TcpListener {
        self.inner
    }
}

/// Applies the settings an SSE server needs to an `HttpServer`; call it before `bind` or
/// `listen` (actix-web captures the connect hook when a listener is added):
///
/// - `h1_allow_half_closed(false)`: a client that closes its connection ends its stream at
///   once. actix-web's default (`true`) keeps serving a half-closed connection, so a closed
///   tab would hold its session's slot until a write to it fails.
/// - [`SocketOptions`] on every accepted TCP socket: keepalive probes, `TCP_USER_TIMEOUT`
///   and `TCP_NODELAY`.
pub fn configure_server<F, I, S, B>(
    server: HttpServer<F, I, S, B>,
    options: SocketOptions,
) -> HttpServer<F, I, S, B>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: actix_service::IntoServiceFactory<S, actix_http::Request>,
    S: ServiceFactory<actix_http::Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<actix_web::dev::Response<B>> + 'static,
    <S::Service as actix_web::dev::Service<actix_http::Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    server
        .h1_allow_half_closed(false)
        .on_connect(move |conn: &dyn Any, _ext| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
                && let Err(e) = options.apply(tcp)
            {
                tracing::debug!(error = %e, "could not apply socket options");
            }
        })
}

/// Serves the application built by `factory` on `listener` until `shutdown` resolves, then
/// drains (see [`run_with_drain`]). The server is set up with [`configure_server`] (closed
/// clients are noticed, the listener's [`SocketOptions`] are applied to every connection),
/// actix-web's own signal handling is off (pass Ctrl-C or SIGTERM as `shutdown`), and it has
/// actix-web's default number of workers (one per physical core).
pub async fn serve<F, I, S, B>(
    listener: SseListener,
    factory: F,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_window: Duration,
) -> io::Result<()>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: actix_service::IntoServiceFactory<S, actix_http::Request>,
    S: ServiceFactory<actix_http::Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<actix_web::dev::Response<B>> + 'static,
    <S::Service as actix_web::dev::Service<actix_http::Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let options = listener.options();
    let server = configure_server(HttpServer::new(factory), options)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .listen(listener.into_std())?
        .run();
    run_with_drain(server, broker, shutdown, drain_window).await
}

/// Runs a started actix-web `server` until `shutdown` resolves, then drains:
///
/// 1. [`Broker::drain`]: every stream ends now with a `retry:` spread uniformly over
///    `drain_window`, so clients come back through the load balancer at different moments;
/// 2. for `drain_window` the server keeps answering, with the draining answers (200 +
///    `retry:` for event-stream requests, 503 + `Retry-After` otherwise) while the load
///    balancer takes the node out;
/// 3. it waits up to [`SHUTDOWN_GRACE`] for the broker to be idle, then stops the server
///    gracefully (requests in flight get actix-web's shutdown timeout) and returns.
///
/// Build the server with `disable_signals()`, or actix-web stops it on Ctrl-C by itself,
/// without the drain.
pub async fn run_with_drain(
    server: Server,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_window: Duration,
) -> io::Result<()> {
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
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
    let (_, result) = tokio::join!(handle.stop(true), &mut server);
    result
}
