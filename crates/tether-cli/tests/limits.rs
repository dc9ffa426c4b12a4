//! Connection limits of `tether serve` over real sockets (`tether_conformance::limits`), and
//! the per-address cap.

use std::time::Duration;

use tether_conformance::client::{Target, send};
use tether_conformance::hub::Hub;
use tether_conformance::limits::{LimitsConfig, run_all};
use tokio::net::TcpStream;

const EXE: &str = env!("CARGO_BIN_EXE_tether");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_holds_its_connection_limits() {
    let cfg = LimitsConfig::default();
    let hub = Hub::spawn(EXE, &cfg.hub_args()).await.unwrap();
    let report = run_all(&hub.base_url(), &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share() {
    let hub = Hub::spawn(
        EXE,
        &["--max-connections-per-ip".to_owned(), "3".to_owned()],
    )
    .await
    .unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(hub.addr()).await.unwrap());
    }
    // Give the hub the moment it needs to accept the three.
    let limit = Duration::from_secs(10);
    let mut refused = None;
    for _ in 0..50 {
        let reply = send(&target, "GET", "/health/sse", &[], b"", limit)
            .await
            .unwrap();
        if reply.status == 503 {
            refused = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("a fourth connection from the same address is refused");
    assert!(refused.header("retry-after").is_some());
    drop(held);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let reply = send(&target, "GET", "/health/sse", &[], b"", limit)
            .await
            .unwrap();
        if reply.status == 200 {
            let health = reply.json().unwrap();
            assert!(health["limits"]["connections_per_ip"]["refused"].as_u64() >= Some(1));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
