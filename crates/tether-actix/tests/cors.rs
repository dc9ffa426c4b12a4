//! With CORS configured, the contract's routes answer preflights and name allowed origins.

use std::time::Duration;

use actix_web::App;
use tether_actix::{Cors, Hooks, Service, SocketOptions, SseListener};
use tether_core::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_and_allowed_origins() {
    let broker = Broker::builder().start().expect("valid config");
    let tether = tether_actix::router(
        Service::new(broker.clone(), Hooks::allow_all()).cors(Cors::new(["https://app.example"])),
    );
    let listener =
        SseListener::bind("127.0.0.1:0".parse().unwrap(), SocketOptions::default()).unwrap();
    let target_addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tether_actix::serve(
        listener,
        move || App::new().service(tether.clone()),
        broker,
        async move {
            let _ = rx.await;
        },
        Duration::ZERO,
    ));
    tether_conformance::cors::assert_allows_only(
        &format!("http://{}", target_addr),
        "https://app.example",
    )
    .await;

    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
