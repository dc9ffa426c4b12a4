//! Clients that close their connection free their sessions at once: the active connection
//! count returns to 0 long before a heartbeat write could have found the closed sockets
//! (heartbeats are a minute apart here).

mod common;

use std::time::Duration;

use tether_conformance::SuiteConfig;
use tether_core::ConnectionPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_clients_free_their_connections() {
    let cfg = SuiteConfig {
        keepalive: Duration::from_secs(60),
        ..SuiteConfig::default()
    };
    let server = common::start(&cfg, ConnectionPolicy::Reject, common::none()).await;
    tether_conformance::disconnect::assert_closed_clients_free_their_connections(
        &server.base_url,
        "alice:",
        "x-test-user: alice\r\n",
    )
    .await;
}
