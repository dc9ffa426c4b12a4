//! Graceful shutdown drains: streams end with a spread `retry:`, the server keeps giving the
//! draining answers for the window, then `serve` returns.

mod common;

use tether_conformance::SuiteConfig;
use tether_core::ConnectionPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_then_serve_returns() {
    let cfg = SuiteConfig::default();
    let mut server = common::start(&cfg, ConnectionPolicy::Replace, common::none()).await;
    let tx = server.shutdown.take().unwrap();
    tether_conformance::drain(&server.base_url, &cfg, || async move {
        tx.send(()).unwrap();
    })
    .await
    .unwrap();
    assert!(server.broker.is_draining());
    let ended = tokio::time::timeout(common::shutdown_bound(&cfg), server.task)
        .await
        .expect("serve returns after the drain window");
    ended.unwrap().unwrap();
    assert_eq!(server.broker.connection_count(), 0);
}
