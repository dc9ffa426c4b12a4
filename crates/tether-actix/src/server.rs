//! Serving: [`serve`] runs actix-web's HTTP/1.1 service behind the core's connection limits;
//! [`configure_server`] and [`run_with_drain`] are for an `HttpServer` the application builds.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::{HttpService, Protocol, Request, Response};
use actix_service::{
    IntoServiceFactory, Service as _, ServiceFactoryExt as _, apply_fn_factory, fn_factory,
    fn_service, map_config,
};
use actix_web::HttpServer;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{AppConfig, Extensions, Server, ServiceFactory};
use actix_web::http::KeepAlive;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use tether_core::server::{ConnectionActivity, ConnectionGate, KeptConnection};
use tether_core::{Broker, SHUTDOWN_GRACE};
use tokio::net::TcpStream;

use crate::{ConnectionLimits, SocketOptions, SseListener};

/// Connections a worker may hold past the limit: the ones being shed, and the ones closed at
/// once when too many are shed. actix-server stops accepting at its own per-worker cap, which
/// must therefore stay above the gate's.
const WORKER_HEADROOM: usize = 1024;

/// Applies the settings an SSE server needs to an `HttpServer`; call it before `bind` or
/// `listen` (actix-web captures the connect hook when a listener is added):
///
/// - `h1_allow_half_closed(false)`: a client that closes its connection ends its stream at
///   once. actix-web's default (`true`) keeps serving a half-closed connection, so a closed
///   tab would hold its session's slot until a write to it fails.
/// - [`SocketOptions`] on every accepted TCP socket: keepalive probes, `TCP_USER_TIMEOUT`
///   and `TCP_NODELAY`.
/// - [`ConnectionLimits`]: `client_request_timeout` is the head timeout, `keep_alive` the
///   idle timeout, and `max_connections` the cap shared among the workers (one per CPU).
///   At the cap actix-web stops accepting, so the connection past it waits in the backlog
///   instead of being answered, and `max_per_ip` is not applied: [`serve`] applies the
///   limits in full.
pub fn configure_server<F, I, S, B>(
    server: HttpServer<F, I, S, B>,
    options: SocketOptions,
    limits: ConnectionLimits,
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
    // actix-web counts connections per worker and stops accepting at the cap (new
    // connections wait in the backlog rather than being answered).
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    server
        .h1_allow_half_closed(false)
        .client_request_timeout(limits.head_timeout)
        .keep_alive(KeepAlive::Timeout(limits.idle_timeout))
        .max_connections(limits.max_connections.div_ceil(workers).max(1))
        .on_connect(move |conn: &dyn Any, _ext| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
                && let Err(e) = options.apply(tcp)
            {
                tracing::debug!(error = %e, "could not apply socket options");
            }
        })
}

/// Serves the application built by `factory` on `listener` until `shutdown` resolves, then
/// drains (see [`run_with_drain`]).
///
/// Every accepted connection passes the core's
/// [`ConnectionGate`](tether_core::server::ConnectionGate) with the listener's
/// [`ConnectionLimits`], as on the hub and the hyper adapters: past `max_connections` the
/// oldest idle connection is closed to make room, else the new one is answered (an event
/// stream with `200` and a `retry:`, anything else with `503` and `Retry-After`) and closed;
/// `max_per_ip` connections from one address at most. A request head must arrive within
/// `head_timeout`, the next request on a kept-alive connection within `idle_timeout`. A
/// client that closes its connection ends its stream at once, the listener's
/// [`SocketOptions`] are applied to every connection, and actix-web's own signal handling
/// is off (pass Ctrl-C or SIGTERM as `shutdown`). It runs one worker per CPU, speaking
/// HTTP/1.1.
pub async fn serve<F, I, S, B>(
    listener: SseListener,
    factory: F,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_window: Duration,
) -> io::Result<()>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as actix_web::dev::Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let options = listener.options();
    let limits = listener.limits();
    let local = listener.local_addr()?;
    let gate = ConnectionGate::new(limits, broker.clone());
    let builder = Server::build();
    let closing = builder.graceful_shutdown_signal();
    let server = builder
        .max_concurrent_connections(limits.max_connections.saturating_add(WORKER_HEADROOM))
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .listen("tether", listener.into_std()?, move || {
            let http = HttpService::build()
                .keep_alive(KeepAlive::Timeout(limits.idle_timeout))
                .client_request_timeout(limits.head_timeout)
                .h1_allow_half_closed(false)
                .local_addr(local)
                .graceful_shutdown_signal({
                    let closing = closing.clone();
                    move || {
                        let closing = closing.clone();
                        async move { closing.notified().await }
                    }
                })
                .on_connect_ext(|conn: &KeptConnection, ext: &mut Extensions| {
                    ext.insert(conn.activity());
                })
                .finish(tracked(app_service(factory(), local)));
            connections(http, gate.clone(), options)
        })?
        .run();
    run_with_drain(server, broker, shutdown, drain_window).await
}

/// The application as the HTTP service wants it: configured as actix-web's `HttpServer`
/// configures it for a plain-text listener on `local`, its errors turned into responses.
fn app_service<I, S, B>(
    app: I,
    local: SocketAddr,
) -> impl actix_service::ServiceFactory<
    Request,
    Config = (),
    Response = S::Response,
    Error = Response<actix_web::body::BoxBody>,
    InitError = S::InitError,
>
where
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::Response: Into<Response<B>> + 'static,
{
    let app = app
        .into_factory()
        .map_err(|e| e.into().error_response().into());
    // The config actix-web's `HttpServer` builds for a plain-text listener (its constructor
    // is public under this name for servers outside actix-web).
    map_config(app, move |()| {
        AppConfig::__priv_test_new(false, local.to_string(), local)
    })
}

/// The per-connection service of a worker: the gate decides, then the HTTP service serves
/// the connections it keeps.
fn connections<H>(
    http: H,
    gate: ConnectionGate,
    options: SocketOptions,
) -> impl actix_service::ServiceFactory<TcpStream, Config = (), Response = (), Error = (), InitError = ()>
where
    H: actix_service::ServiceFactory<
            (KeptConnection, Protocol, Option<SocketAddr>),
            Config = (),
            Response = (),
        > + 'static,
    H::Error: fmt::Display,
    H::InitError: fmt::Debug,
    H::Service: 'static,
    <H::Service as actix_service::Service<(KeptConnection, Protocol, Option<SocketAddr>)>>::Future:
        'static,
{
    let http = Rc::new(http);
    fn_factory(move || {
        let http = http.clone();
        let gate = gate.clone();
        async move {
            let service = http.new_service(()).await.map_err(|e| {
                tracing::error!(error = ?e, "the HTTP service of a worker failed to start");
            })?;
            let service = Rc::new(service);
            Ok::<_, ()>(fn_service(move |stream: TcpStream| {
                let service = service.clone();
                let gate = gate.clone();
                async move {
                    if let Err(e) = options.apply(&stream) {
                        tracing::debug!(error = %e, "could not apply socket options");
                    }
                    let Ok(peer) = stream.peer_addr() else {
                        return Ok(());
                    };
                    let Some(conn) = gate.admit(stream, peer).await else {
                        return Ok(());
                    };
                    if let Err(e) = service.call((conn, Protocol::Http1, Some(peer))).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    Ok(())
                }
            }))
        }
    })
}

/// The application, marking its connection busy while a request is served and idle again
/// once a response that is not an event stream has been sent.
fn tracked<A, B>(
    app: A,
) -> impl actix_service::ServiceFactory<
    Request,
    Config = (),
    Response = Response<TrackedBody<B>>,
    Error = A::Error,
    InitError = A::InitError,
>
where
    A: actix_service::ServiceFactory<Request, Config = ()>,
    A::Response: Into<Response<B>>,
    <A::Service as actix_service::Service<Request>>::Future: 'static,
    A::Error: 'static,
    B: MessageBody,
{
    apply_fn_factory(app, |req: Request, app: &A::Service| {
        let activity = req.conn_data::<ConnectionActivity>().cloned();
        if let Some(a) = &activity {
            a.request_started();
        }
        let answer = app.call(req);
        async move {
            let res: Response<B> = match answer.await {
                Ok(res) => res.into(),
                Err(e) => {
                    if let Some(a) = &activity {
                        a.request_finished();
                    }
                    return Err(e);
                }
            };
            let stream = res.status().is_success()
                && res
                    .headers()
                    .get(CONTENT_TYPE)
                    .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            let guard = activity.filter(|_| !stream).map(IdleOnDrop);
            Ok(res.map_body(|_, inner| TrackedBody {
                inner: Box::pin(inner),
                _guard: guard,
            }))
        }
    })
}

/// Marks the connection idle when the response body is done with.
struct IdleOnDrop(ConnectionActivity);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that marks its connection idle once it has been sent.
struct TrackedBody<B> {
    inner: Pin<Box<B>>,
    _guard: Option<IdleOnDrop>,
}

impl<B> fmt::Debug for TrackedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedBody").finish_non_exhaustive()
    }
}

impl<B: MessageBody> MessageBody for TrackedBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.get_mut().inner.as_mut().poll_next(cx)
    }
}

/// Runs a started actix-web `server` until `shutdown` resolves, then runs
/// [`Broker::shutdown`] with `drain_window` (the server answers with the draining answers
/// meanwhile) and stops the server gracefully (requests in flight get actix-web's shutdown
/// timeout).
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
    tokio::select! {
        r = &mut server => return r,
        _ = broker.shutdown(drain_window) => {}
    }
    let (_, result) = tokio::join!(handle.stop(true), &mut server);
    result
}
