//! The conformance suite against the `tether` binary: a hub with the suite's settings, a
//! second one with the Reject policy, and a third that is drained by SIGTERM.

use std::time::Duration;

use tether_conformance::hub::Hub;
use tether_conformance::{SuiteConfig, run_all};

const EXE: &str = env!("CARGO_BIN_EXE_tether");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_passes_the_conformance_suite() {
    let mut cfg = SuiteConfig::default();
    let args = cfg.hub_args();
    let main = Hub::spawn(EXE, &args).await.unwrap();
    let mut reject_args = args.clone();
    reject_args.extend(["--policy".to_owned(), "reject".to_owned()]);
    let reject = Hub::spawn(EXE, &reject_args).await.unwrap();
    cfg.reject_base_url = Some(reject.base_url());

    let report = run_all(&main.base_url(), &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let cfg = SuiteConfig::default();
    let mut hub = Hub::spawn(EXE, &cfg.hub_args()).await.unwrap();
    let base = hub.base_url();
    let signal = &hub;
    tether_conformance::drain(&base, &cfg, || async move {
        signal.terminate().unwrap();
    })
    .await
    .unwrap();
    let status = hub
        .wait(cfg.drain_window + Duration::from_secs(20))
        .await
        .unwrap();
    assert!(status.success(), "the hub exited with {status}");
}
