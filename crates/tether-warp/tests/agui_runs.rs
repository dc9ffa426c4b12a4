//! The durable AG-UI run route over real HTTP on 127.0.0.1 against the warp adapter: the
//! conformance suite's run-route checks (a run's stream and its end, a dropped request and
//! the reattach, a reattach that takes the session over, 409 for a concurrent run,
//! interrupts answered with `resume[]`, bad requests), and `HttpAgent` of `@ag-ui/client`
//! 1.0.0 driving the route (skipped without node, unless `CI=true`).
#![cfg(feature = "agui")]

use std::sync::Arc;

use tether_agui::{AguiRuns, AguiTrackerFactory};
use tether_conformance::agui::{official_http_agent, run_route_all, test_agent};
use tether_conformance::{CheckError, SuiteConfig};
use tether_core::Broker;
use tether_warp::{Hooks, Service, SocketOptions, SseListener};

/// Starts a server on 127.0.0.1:0 whose service has the run route with the suite's agent;
/// returns its base URL.
async fn start(cfg: &SuiteConfig, hooks: Hooks) -> String {
    let broker = Broker::builder()
        .tracker_factory(Arc::new(AguiTrackerFactory::new()))
        .keepalive_interval(cfg.keepalive)
        .client_timeout(cfg.client_timeout)
        .start()
        .expect("valid config");
    let runs = AguiRuns::new(broker.clone());
    let service = Service::new(broker.clone(), hooks)
        .extension(tether_warp::agui::RunRoute::new(runs, test_agent));
    let listener = SseListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        SocketOptions::for_client_timeout(cfg.client_timeout),
    )
    .unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(tether_warp::serve(
        listener,
        tether_warp::router(service),
        broker,
        std::future::pending(),
        cfg.drain_window,
    ));
    base_url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_adapter_passes_the_run_route_checks() {
    let cfg = SuiteConfig::default();
    let base_url = start(&cfg, cfg.hooks()).await;
    let report = run_route_all(&base_url, &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_http_agent_runs_interrupts_and_resumes_against_the_route() {
    let base_url = start(&SuiteConfig::default(), Hooks::allow_all()).await;
    match official_http_agent(&base_url).await {
        Ok(()) => {}
        Err(CheckError::Skip(why)) => eprintln!("notice: skipping the HttpAgent check: {why}"),
        Err(e) => panic!("{e}"),
    }
}
