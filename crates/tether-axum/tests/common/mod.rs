//! An in-process axum server configured as the conformance suite expects.
#![allow(dead_code)] // each test binary uses part of it

use std::time::Duration;

use tether_axum::{Service, SocketOptions, SseListener};
use tether_conformance::SuiteConfig;
use tether_core::{Broker, ConnectionPolicy};

/// A running server: its base URL, broker, and the sender that starts its shutdown.
pub(crate) struct Server {
    pub(crate) base_url: String,
    pub(crate) broker: Broker,
    pub(crate) shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts a server on 127.0.0.1:0 with the suite's settings and `extra` routes.
pub(crate) async fn start(
    cfg: &SuiteConfig,
    policy: ConnectionPolicy,
    extra: axum::Router,
) -> Server {
    let broker = Broker::builder()
        .keepalive_interval(cfg.keepalive)
        .client_timeout(cfg.client_timeout)
        .ring_max_events(cfg.ring_events)
        .ring_max_bytes(1024 * 1024)
        .max_event_bytes(cfg.max_event_bytes)
        .connection_policy(policy)
        .start()
        .expect("valid config");
    start_with(cfg, broker, cfg.hooks(), extra, Default::default()).await
}

/// Starts a server on 127.0.0.1:0 for `broker` with `hooks`, `extra` routes and `limits`.
pub(crate) async fn start_with(
    cfg: &SuiteConfig,
    broker: Broker,
    hooks: tether_axum::Hooks,
    extra: axum::Router,
    limits: tether_core::server::ConnectionLimits,
) -> Server {
    let app = tether_axum::router(Service::new(broker.clone(), hooks)).merge(extra);
    let listener = SseListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        SocketOptions::for_client_timeout(cfg.client_timeout),
    )
    .unwrap()
    .with_limits(limits);
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        let _ = rx.await;
    };
    let task = tokio::spawn(tether_axum::serve(
        listener,
        app,
        broker.clone(),
        signal,
        cfg.drain_window,
    ));
    Server {
        base_url,
        broker,
        shutdown: Some(tx),
        task,
    }
}

/// Bound for a server to finish after its shutdown signal.
pub(crate) fn shutdown_bound(cfg: &SuiteConfig) -> Duration {
    cfg.drain_window + tether_axum::SHUTDOWN_GRACE * 2 + Duration::from_secs(5)
}
