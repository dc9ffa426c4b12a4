//! The conformance suite over real HTTP against the axum adapter, with a custom authorizer
//! and `/metrics` from the Prometheus exporter (this file's process has one recorder and one
//! main server, so the metrics check's counts are exact).

mod common;

use axum::routing::get;
use tether_conformance::{SuiteConfig, run_all};
use tether_core::ConnectionPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_adapter_passes_the_conformance_suite() {
    let handle = tether_core::metrics::install_prometheus().unwrap();
    let metrics = axum::Router::new().route(
        "/metrics",
        get(move || {
            let h = handle.clone();
            async move { h.render() }
        }),
    );

    let mut cfg = SuiteConfig::default();
    let main = common::start(&cfg, ConnectionPolicy::Replace, metrics).await;
    let reject = common::start(&cfg, ConnectionPolicy::Reject, axum::Router::new()).await;
    cfg.reject_base_url = Some(reject.base_url.clone());

    let report = run_all(&main.base_url, &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}
