//! # tether-actix
//!
//! The [actix-web] adapter for tether: tether's HTTP contract, one
//! [`Service`], registered with an actix-web `App`, plus what a
//! server of long-lived streams needs around it:
//!
//! - [`router`]: the service on the paths tether claims (`/api/sse/`, `/api/sessions/`,
//!   `/api/agui/`, `/health/sse`, `/health/live`, and `/metrics` when the service mounts it), as resources of
//!   their own, so every other path still reaches the application's routes and its
//!   `default_service`. The stream body is the core's pre-encoded bytes, sent as they are.
//! - [`configure_server`]: the `HttpServer` settings an SSE server needs: it notices clients
//!   that closed their connection (actix-web by default keeps writing to a half-closed
//!   connection, so a closed tab would hold its session's slot until a write fails), and it
//!   applies [`SocketOptions`] (TCP keepalive, `TCP_USER_TIMEOUT`) to every accepted socket.
//! - [`serve`]: actix-web's HTTP/1.1 service behind the core's connection limits (the same
//!   cap, shed answers, idle-first closing and per-address cap as the hub), with
//!   [`Broker::shutdown`](tether_core::Broker::shutdown) hooked into graceful shutdown;
//!   [`run_with_drain`] does the drain for an `HttpServer` built by the application.
//!
//! Routing, credentials, CORS, body limits and every answer live in
//! [`tether_core::http`]; this crate only converts between the two.
//!
//! ```
//! use std::time::Duration;
//! use actix_web::{App, web};
//! use tether_actix::{Hooks, Service, SocketOptions, SseListener};
//! use tether_core::Broker;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let broker = Broker::builder().start().expect("valid config");
//! let tether = tether_actix::router(Service::new(broker.clone(), Hooks::allow_all()));
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
//! ## Building your own `HttpServer`
//!
//! Pass it through [`configure_server`] before binding, or set at least
//! `HttpServer::h1_allow_half_closed(false)`: without it actix-web does not notice a client
//! that closed its connection while its stream is idle, and under the Reject policy the
//! client's next connect to the session gets 409 until a heartbeat write fails. Then run it
//! with [`run_with_drain`]. actix-web runs its own accept loop (it pauses accepting when the
//! process is out of file descriptors), and at its connection cap it stops accepting rather
//! than answering the connection past it: [`serve`] answers it.
//!
//! actix-web speaks the `http` 0.2 types and the core the `http` 1 types: methods, status codes
//! and header maps are converted at this crate's edge, so neither side sees the other's.
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `agui` | module `agui` (`tether_agui::http` re-exported): the durable AG-UI run route (`POST /api/agui/run`), plugged in with `Service::extension` |
#![doc(test(attr(deny(warnings))))]

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::HttpServiceFactory;
use actix_web::http::{StatusCode, header as ax_header};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use http as http1;
use tether_core::http::{self as th, EXACT_PATHS, PREFIXES};

mod server;

pub use server::{configure_server, run_with_drain, serve};
#[cfg(feature = "agui")]
pub use tether_agui::http as agui;
pub use tether_core::SHUTDOWN_GRACE;
#[cfg(feature = "jwt")]
pub use tether_core::auth::JwtKeys;
#[cfg(feature = "jwt")]
pub use tether_core::http::JwtAuthorizer;
pub use tether_core::http::{
    Access, AccessRequest, AllowAll, Authorizer, Capability, Cors, Hooks, Service,
    SessionOwnerHeader,
};
pub use tether_core::net::SocketOptions;
pub use tether_core::server::{ConnectionLimits, SseListener};

/// `service` as an actix-web service factory, on the paths tether claims; register it with
/// `App::service` (or `Scope::service`). Cheap to clone, once per worker in the application
/// factory.
pub fn router(service: Service) -> Router {
    Router { service }
}

/// tether's paths as actix-web resources; see [`router`].
#[derive(Clone, Debug)]
#[must_use = "a router does nothing until registered with `App::service`"]
pub struct Router {
    service: Service,
}

impl HttpServiceFactory for Router {
    fn register(self, config: &mut actix_web::dev::AppService) {
        let mut paths: Vec<String> = PREFIXES.iter().map(|p| format!("{p}{{tail:.*}}")).collect();
        paths.extend(EXACT_PATHS.iter().map(|p| (*p).to_owned()));
        if self.service.has_metrics() {
            paths.push("/metrics".into());
        }
        let data = web::Data::new(self.service);
        for path in paths {
            web::resource(path)
                .app_data(data.clone())
                .route(web::route().to(handle))
                .register(config);
        }
    }
}

/// The request's head as the `http` 1 parts the core reads. Names and values are copied as
/// bytes: both crates accept the same grammar.
fn parts_of(req: &HttpRequest) -> http1::request::Parts {
    let mut out = http1::Request::new(());
    *out.method_mut() =
        http1::Method::from_bytes(req.method().as_str().as_bytes()).unwrap_or_default();
    if let Some(pq) = req.uri().path_and_query()
        && let Ok(uri) = pq.as_str().parse()
    {
        *out.uri_mut() = uri;
    }
    *out.version_mut() = match req.version() {
        actix_web::http::Version::HTTP_10 => http1::Version::HTTP_10,
        _ => http1::Version::HTTP_11,
    };
    let headers = out.headers_mut();
    for (name, value) in req.headers() {
        if let (Ok(n), Ok(v)) = (
            http1::HeaderName::from_bytes(name.as_str().as_bytes()),
            http1::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    out.into_parts().0
}

async fn handle(service: web::Data<Service>, req: HttpRequest, body: web::Payload) -> HttpResponse {
    into_response(service.respond(parts_of(&req), body).await)
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
            _ => BodySize::Stream,
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
