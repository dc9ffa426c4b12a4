//! With CORS configured, the routes answer preflights and name allowed origins.

use std::time::Duration;

use tether_conformance::client::{Target, send};
use tether_core::Broker;
use tether_warp::{Cors, Hooks, SocketOptions, SseListener};

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_and_allowed_origins() {
    let broker = Broker::builder().start();
    let app = tether_warp::with_cors(
        tether_warp::router(broker.clone(), Hooks::new()),
        Cors::new(["https://app.example"]),
    );
    let listener =
        SseListener::bind("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
    let target = Target::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tether_warp::serve(
        listener,
        app,
        broker,
        async move {
            let _ = rx.await;
        },
        Duration::ZERO,
    ));
    let limit = Duration::from_secs(10);

    let r = send(
        &target,
        "OPTIONS",
        "/api/sessions/s/events",
        &h(&[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
        ]),
        b"",
        limit,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(r.header("access-control-allow-methods").is_some());

    let r = send(
        &target,
        "GET",
        "/health/sse",
        &h(&[("Origin", "https://app.example")]),
        b"",
        limit,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));

    let r = send(
        &target,
        "GET",
        "/health/sse",
        &h(&[("Origin", "https://elsewhere.example")]),
        b"",
        limit,
    )
    .await
    .unwrap();
    assert!(r.header("access-control-allow-origin").is_none());

    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
