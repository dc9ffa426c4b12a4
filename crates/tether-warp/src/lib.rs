//! # tether-warp
//!
//! The [warp] adapter for tether: tether's HTTP contract, one
//! [`Service`], as a warp [`Filter`], plus warp on hyper with
//! tether's drain around it:
//!
//! - [`router`]: the service on the paths tether claims (`/api/sse/`, `/api/sessions/`,
//!   `/api/agui/`, `/health/sse`, `/health/live`, and `/metrics` when the service mounts it); every other
//!   request is rejected, so the application's filters combined after it with `or` still see
//!   it. The stream body is the core's pre-encoded bytes, sent as they are.
//! - [`serve`]: the filter on HTTP/1.1 over an [`SseListener`] (backlog 4096, socket options,
//!   one accept-error policy; `warp::serve` accepts only its own listeners) with
//!   [`Broker::shutdown`] hooked into graceful shutdown.
//!
//! Routing, credentials, CORS, body limits and every answer live in
//! [`tether_core::http`]; this crate only converts between the two.
//!
//! ```
//! use std::time::Duration;
//! use tether_core::Broker;
//! use tether_warp::{Hooks, Service, SocketOptions, SseListener};
//! use warp::Filter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let broker = Broker::builder().start().expect("valid config");
//! let service = Service::new(broker.clone(), Hooks::allow_all().publish_token("s3cret"));
//! let app = warp::path::end()
//!     .map(|| "my app")
//!     .or(tether_warp::router(service));
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
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `agui` | module `agui` (`tether_agui::http` re-exported): the durable AG-UI run route (`POST /api/agui/run`), plugged in with `Service::extension` |
#![doc(test(attr(deny(warnings))))]

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, Method};
use hyper_util::service::TowerToHyperService;
use tether_core::Broker;
use tether_core::http as th;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::filters::path::FullPath;
use warp::reply::{Reply, Response};

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

/// The core's body as the fallible stream warp's streaming reply takes; the bytes pass
/// through as they are. warp wants the stream `Sync`: the mutex makes it so, and is never
/// locked (polling has exclusive access).
struct Chunks(std::sync::Mutex<th::Body>);

impl Stream for Chunks {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let body = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Pin::new(body).poll_next(cx).map(|c| c.map(Ok))
    }
}

/// Converts a response of [`tether_core::http`] into warp's, for applications that call the
/// service from their own filters. The stream body passes through untouched.
pub fn into_response(res: th::Response) -> Response {
    let (parts, body) = res.into_parts();
    let mut out = match body {
        th::Body::Full(bytes) => Response::new(bytes.into()),
        stream => warp::reply::stream(Chunks(std::sync::Mutex::new(stream))).into_response(),
    };
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    out
}

/// The request's head as the parts the core reads.
fn parts_of(
    method: Method,
    path: &FullPath,
    query: &str,
    headers: HeaderMap,
) -> http::request::Parts {
    let mut req = http::Request::new(());
    *req.method_mut() = method;
    let target = if query.is_empty() {
        path.as_str().to_owned()
    } else {
        format!("{}?{query}", path.as_str())
    };
    if let Ok(uri) = target.parse() {
        *req.uri_mut() = uri;
    }
    *req.headers_mut() = headers;
    req.into_parts().0
}

/// `service` on the paths tether claims, as a filter; other requests are rejected (404), so
/// filters combined after it with `or` still see them.
pub fn router(service: Service) -> BoxedFilter<(Response,)> {
    let claims = service.clone();
    let tether_path = warp::path::full().and_then(move |path: FullPath| {
        let ours = claims.claims(path.as_str());
        async move {
            if ours {
                Ok(path)
            } else {
                Err(warp::reject::not_found())
            }
        }
    });
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    tether_path
        .and(warp::method())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |path: FullPath, method, query: String, headers, body| {
                let service = service.clone();
                async move {
                    let parts = parts_of(method, &path, &query, headers);
                    into_response(service.respond(parts, body).await)
                }
            },
        )
        .boxed()
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
/// connection while the response streams). It serves in the core's shell
/// ([`tether_core::server::serve_hyper`]), so the listener's
/// [`ConnectionLimits`] apply: a connection cap that
/// closes the oldest idle connection or answers the one past it, and a head timeout (which
/// in hyper also bounds how long a kept-alive connection waits for its next request).
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
    let service = TowerToHyperService::new(warp::service(filter));
    tether_core::server::serve_hyper(listener, service, broker, shutdown, drain_window).await
}
