//! Every known attack on access control, over real HTTP against the axum adapter with
//! `Hooks::jwt` (`tether_conformance::access`): missing, forged and expired tokens, tokens
//! for other sessions, HEAD and anonymous GETs that would supersede the owner, cross-site
//! decisions, smuggled `Content-Length`, unauthenticated bodies held open (memory measured
//! in this process, which runs the server), streams past their token's `exp`, and the
//! Reject policy after a blip.

mod common;

use tether_conformance::SuiteConfig;
use tether_conformance::access::{AccessConfig, run_all};
use tether_core::ConnectionPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_adapter_refuses_every_known_attack() {
    let suite = SuiteConfig::default();
    let mut cfg = AccessConfig {
        server_pid: Some(std::process::id()),
        ..AccessConfig::default()
    };
    let main = common::start_with(
        &suite,
        cfg.broker(ConnectionPolicy::Replace),
        cfg.hooks(),
        axum::Router::new(),
        Default::default(),
    )
    .await;
    let reject = common::start_with(
        &suite,
        cfg.broker(ConnectionPolicy::Reject),
        cfg.hooks(),
        axum::Router::new(),
        Default::default(),
    )
    .await;
    cfg.reject_base_url = Some(reject.base_url.clone());
    let report = run_all(&main.base_url, &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}
