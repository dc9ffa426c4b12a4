//! warp hands path segments over still percent-encoded: ids are decoded before the grammar
//! check, as the other adapters' routers do.

mod common;

use std::time::Duration;

use tether_conformance::SuiteConfig;
use tether_conformance::client::{Target, send};
use tether_core::{ConnectionPolicy, SessionId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_ids_are_decoded() {
    let cfg = SuiteConfig::default();
    let server = common::start(&cfg, ConnectionPolicy::Replace, common::none()).await;
    let target = Target::parse(&server.base_url).unwrap();
    let publisher = vec![(
        "Authorization".to_owned(),
        "Bearer conformance-token".to_owned(),
    )];
    let limit = Duration::from_secs(10);

    let r = send(
        &target,
        "POST",
        "/api/sessions/alice%3Aencoded/events",
        &publisher,
        b"{}",
        limit,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(
        server
            .broker
            .has_session(&SessionId::new("alice:encoded").unwrap())
    );

    let r = send(
        &target,
        "POST",
        "/api/sessions/a%2Fb/events",
        &publisher,
        b"{}",
        limit,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json().unwrap()["error"], "invalid_session_id");
}
