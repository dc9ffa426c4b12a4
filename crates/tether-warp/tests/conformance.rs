//! The conformance suite over real HTTP against the warp adapter, with a custom authorizer
//! and `/metrics` from the Prometheus exporter (this file's process has one recorder and one
//! main server, so the metrics check's counts are exact).

mod common;

use tether_conformance::{SuiteConfig, run_all};
use tether_core::ConnectionPolicy;
use warp::{Filter, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_adapter_passes_the_conformance_suite() {
    let handle = tether_core::metrics::install_prometheus().unwrap();
    let metrics = warp::get()
        .and(warp::path!("metrics"))
        .map(move || handle.render().into_response())
        .boxed();

    let mut cfg = SuiteConfig::default();
    let main = common::start(&cfg, ConnectionPolicy::Replace, metrics).await;
    let reject = common::start(&cfg, ConnectionPolicy::Reject, common::none()).await;
    cfg.reject_base_url = Some(reject.base_url.clone());

    let report = run_all(&main.base_url, &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}
