//! Connection limits over real sockets against the warp adapter: a flood of idle connections
//! leaves room for real requests, and a slow head is cut at the head timeout
//! (`tether_conformance::limits`).

mod common;

use tether_conformance::SuiteConfig;
use tether_conformance::limits::{self, LimitsConfig};
use tether_core::ConnectionPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_adapter_holds_its_connection_limits() {
    let suite = SuiteConfig::default();
    let cfg = LimitsConfig::default();
    let broker = tether_core::Broker::builder()
        .connection_policy(ConnectionPolicy::Replace)
        .start();
    let server = common::start_with(
        &suite,
        broker,
        tether_core::http::Hooks::allow_all(),
        common::none(),
        cfg.connection_limits(),
    )
    .await;
    let report = limits::run(limits::CHECKS, &server.base_url, &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}
