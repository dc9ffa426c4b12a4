//! The run-route checks are not vacuous: a run route that breaks its contract fails them.
//! Each server here wraps the real route in an extension with one defect.
#![cfg(feature = "agui")]

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::Method;
use futures_core::Stream;
use tether_agui::{AguiRuns, AguiTrackerFactory};
use tether_axum::agui::RunRoute;
use tether_axum::{Hooks, Service, SocketOptions, SseListener};
use tether_conformance::agui::{run_bad_requests, run_stream, test_agent};
use tether_conformance::{CheckError, SuiteConfig};
use tether_core::Broker;
use tether_core::http::{
    Body, ChunkStream, ExtensionRequest, HttpError, ResponseFuture, RouteError, RouteExtension,
};

/// A server whose run route is `wrap` around the real one.
async fn serve<E: RouteExtension>(wrap: impl FnOnce(RunRoute) -> E) -> String {
    let broker = Broker::builder()
        .tracker_factory(Arc::new(AguiTrackerFactory::new()))
        .start()
        .expect("valid config");
    let route = RunRoute::new(AguiRuns::new(broker.clone()), test_agent);
    let service = Service::new(broker.clone(), Hooks::allow_all()).extension(wrap(route));
    let listener =
        SseListener::bind("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(tether_axum::serve(
        listener,
        tether_axum::router(service),
        broker,
        std::future::pending(),
        Duration::ZERO,
    ));
    url
}

fn open() -> SuiteConfig {
    SuiteConfig {
        publish_token: None,
        user_header: None,
        timeout: Duration::from_secs(3),
        ..SuiteConfig::default()
    }
}

/// A run's body that stays open after the run's last frame.
struct NeverEnds(RunRoute);

/// The chunks of a stream, then silence instead of its end.
struct Forever(Option<ChunkStream>);

impl Stream for Forever {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let Some(inner) = self.0.as_mut() else {
            return Poll::Pending;
        };
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                self.0 = None;
                Poll::Pending
            }
            other => other,
        }
    }
}

impl RouteExtension for NeverEnds {
    fn route(&self, method: &Method, path: &str) -> Option<Result<(), RouteError>> {
        self.0.route(method, path)
    }

    fn admit(&self, request: &ExtensionRequest<'_>) -> Result<(), HttpError> {
        self.0.admit(request)
    }

    fn handle<'a>(&'a self, request: ExtensionRequest<'a>, body: Bytes) -> ResponseFuture<'a> {
        Box::pin(async move {
            self.0.handle(request, body).await.map(|b| match b {
                Body::Chunks(chunks) => Body::Chunks(Box::pin(Forever(Some(chunks)))),
                other => other,
            })
        })
    }
}

/// A 405 that names a method the route does not answer.
struct WrongAllow(RunRoute);

impl RouteExtension for WrongAllow {
    fn route(&self, method: &Method, path: &str) -> Option<Result<(), RouteError>> {
        self.0
            .route(method, path)
            .map(|r| r.map_err(|_| RouteError::MethodNotAllowed { allow: "GET, POST" }))
    }

    fn handle<'a>(&'a self, request: ExtensionRequest<'a>, body: Bytes) -> ResponseFuture<'a> {
        self.0.handle(request, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_response_that_does_not_end_fails_the_stream_check() {
    let url = serve(NeverEnds).await;
    let r = run_stream(&url, &open()).await;
    assert!(
        matches!(&r, Err(CheckError::Fail(m)) if m.contains("did not end")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_allow_header_fails_the_bad_request_check() {
    let url = serve(WrongAllow).await;
    let r = run_bad_requests(&url, &open()).await;
    assert!(
        matches!(&r, Err(CheckError::Fail(m)) if m.contains("Allow")),
        "{r:?}"
    );
}
