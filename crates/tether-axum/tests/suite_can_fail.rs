//! The conformance checks are not vacuous: a server that breaks the contract fails them.

use std::time::Duration;

use tether_axum::{Hooks, Service, SocketOptions, SseListener};
use tether_conformance::{CheckError, SuiteConfig};
use tether_core::Broker;

async fn serve(broker: Broker, hooks: Hooks) -> String {
    let listener =
        SseListener::bind("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = tether_axum::router(Service::new(broker.clone(), hooks));
    tokio::spawn(tether_axum::serve(
        listener,
        app,
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
        ..SuiteConfig::default()
    }
}

#[tokio::test]
async fn missing_accel_header_fails_the_headers_check() {
    let url = serve(
        Broker::builder().start().expect("valid config"),
        Hooks::allow_all().accel_buffering_header(false),
    )
    .await;
    let r = tether_conformance::headers(&url, &open()).await;
    assert!(
        matches!(&r, Err(CheckError::Fail(m)) if m.contains("x-accel-buffering")),
        "{r:?}"
    );
}

#[tokio::test]
async fn no_heartbeats_fail_the_heartbeat_check() {
    let url = serve(
        Broker::builder()
            .without_heartbeats()
            .start()
            .expect("valid config"),
        Hooks::allow_all(),
    )
    .await;
    let r = tether_conformance::heartbeats(&url, &open()).await;
    assert!(matches!(r, Err(CheckError::Fail(_))), "{r:?}");
}

#[tokio::test]
async fn a_ring_of_another_size_fails_the_eviction_check() {
    let broker = Broker::builder()
        .ring_max_events(32)
        .start()
        .expect("valid config");
    let url = serve(broker, Hooks::allow_all()).await;
    let r = tether_conformance::resync_evicted(&url, &open()).await;
    assert!(matches!(r, Err(CheckError::Fail(_))), "{r:?}");
}
