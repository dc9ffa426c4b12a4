//! Connection limits over real sockets against the warp adapter
//! (`tether_conformance::limits`): a flood of idle connections leaves room for real
//! requests, a server full of streams answers the connection past the limit (200 + `retry:`
//! to an event stream, 503 + `Retry-After` otherwise), a slow head is cut at the head
//! timeout, and one address holds at most its share.

mod common;

use tether_conformance::SuiteConfig;
use tether_conformance::limits::{self, LimitsConfig};
use tether_core::ConnectionPolicy;

async fn run_on_a_server_with(cfg: &LimitsConfig, checks: &[&'static str]) {
    let suite = SuiteConfig::default();
    let broker = tether_core::Broker::builder()
        .connection_policy(ConnectionPolicy::Replace)
        .start()
        .expect("valid config");
    let server = common::start_with(
        &suite,
        broker,
        tether_core::http::Hooks::allow_all(),
        common::none(),
        cfg.connection_limits(),
    )
    .await;
    let report = limits::run(checks, &server.base_url, cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_adapter_holds_its_connection_limits() {
    run_on_a_server_with(&LimitsConfig::default(), limits::CHECKS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_adapter_holds_one_address_to_its_share() {
    let cfg = LimitsConfig::default().with_per_ip(3);
    run_on_a_server_with(&cfg, limits::PER_ADDRESS_CHECKS).await;
}
