//! # tether-axum
//!
//! The [axum] adapter for tether: tether's HTTP contract, one
//! [`Service`], mounted on an axum [`Router`], plus axum's
//! server with tether's drain around it:
//!
//! - [`router`]: the service on the paths tether claims (`/api/sse/`, `/api/sessions/`,
//!   `/api/agui/`, `/health/sse`, `/health/live`, and `/metrics` when the service mounts it); every other
//!   path is left to the application's routes. The stream body is the core's pre-encoded
//!   bytes, sent as they are (axum's own `Sse` type would encode every event again).
//! - [`serve`]: axum's server on an [`SseListener`] (backlog 4096, socket options, one
//!   accept-error policy) with [`Broker::shutdown`] hooked into graceful shutdown.
//!
//! Routing, credentials, CORS, body limits and every answer live in
//! [`tether_core::http`]; this crate only converts between the two.
//!
//! ```
//! use std::time::Duration;
//! use tether_axum::{Hooks, Service, SocketOptions, SseListener};
//! use tether_core::Broker;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let broker = Broker::builder().start().expect("valid config");
//! let service = Service::new(broker.clone(), Hooks::allow_all().publish_token("s3cret"));
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my app" }))
//!     .merge(tether_axum::router(service));
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
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `agui` | module `agui` (`tether_agui::http` re-exported): the durable AG-UI run route (`POST /api/agui/run`), plugged in with `Service::extension` |
#![doc(test(attr(deny(warnings))))]

use std::future::Future;
use std::io;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use tether_core::Broker;
use tether_core::http::{self as th, EXACT_PATHS, PREFIXES};

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

/// Converts a response of [`tether_core::http`] into axum's, for applications that call the
/// service from their own handlers. The stream body passes through untouched.
pub fn into_response(res: th::Response) -> Response {
    res.map(axum::body::Body::new)
}

async fn handle(State(service): State<Service>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    into_response(service.respond(parts, body.into_data_stream()).await)
}

/// `service` on the paths tether claims; merge it into the application's router (or nest it
/// under a prefix). Every method reaches the service, which answers 405 itself.
pub fn router(service: Service) -> Router {
    let mut router = Router::new();
    for path in EXACT_PATHS {
        router = router.route(path, any(handle));
    }
    for prefix in PREFIXES {
        router = router.route(&format!("{prefix}{{*rest}}"), any(handle));
    }
    if service.has_metrics() {
        router = router.route("/metrics", any(handle));
    }
    router.with_state(service)
}

/// Serves `router` on `listener` until `shutdown` resolves, then runs
/// [`Broker::shutdown`] with `drain_window` (the server answers with the draining answers
/// meanwhile), stops accepting, and lets requests in flight finish within [`SHUTDOWN_GRACE`].
///
/// It serves through hyper with a timer, in the core's shell
/// ([`tether_core::server::serve_hyper`]), so the listener's
/// [`ConnectionLimits`] apply: a connection cap that
/// closes the oldest idle connection or answers the one past it, and a head timeout (which
/// in hyper also bounds how long a kept-alive connection waits for its next request).
/// Requests carry their socket's peer address as a [`PeerAddr`](tether_core::http::PeerAddr)
/// extension.
pub async fn serve(
    listener: SseListener,
    router: Router,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_window: std::time::Duration,
) -> io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(router);
    tether_core::server::serve_hyper(listener, service, broker, shutdown, drain_window).await
}
