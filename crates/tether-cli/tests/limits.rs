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

fn json(mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers.push(("Content-Type".into(), "application/json".into()));
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_approvals_stay_within_their_caps() {
    let args = [
        "--max-batch-events",
        "3",
        "--max-pending-approvals",
        "2",
        "--max-approval-bytes",
        "64",
    ];
    let hub = Hub::spawn(EXE, &args.map(str::to_owned)).await.unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let limit = Duration::from_secs(10);
    let post = |path: &'static str, body: &'static str| {
        let target = target.clone();
        async move {
            send(
                &target,
                "POST",
                path,
                &json(Vec::new()),
                body.as_bytes(),
                limit,
            )
            .await
            .unwrap()
        }
    };
    let four = post(
        "/api/sessions/capped/events",
        r#"[{"n":1},{"n":2},{"n":3},{"n":4}]"#,
    )
    .await;
    assert_eq!(four.status, 413, "{}", four.text());
    assert_eq!(four.json().unwrap()["error"], "too_many_events");
    let three = post(
        "/api/sessions/capped/events",
        r#"[{"n":1},{"n":2},{"n":3}]"#,
    )
    .await;
    assert_eq!(three.status, 202, "{}", three.text());
    let ids = three.json().unwrap()["ids"].as_array().unwrap().clone();
    assert!(
        ids[0].as_str().unwrap().ends_with("-1"),
        "nothing of the refused batch was stored: {ids:?}"
    );

    let big = post(
        "/api/sessions/capped/approvals",
        r#"{"payload":{"text":"a payload that is well over sixty-four bytes of compact JSON"}}"#,
    )
    .await;
    assert_eq!(big.status, 413, "{}", big.text());
    assert_eq!(big.json().unwrap()["error"], "approval_too_large");
    for _ in 0..2 {
        let ok = post("/api/sessions/capped/approvals", r#"{"payload":{}}"#).await;
        assert_eq!(ok.status, 201, "{}", ok.text());
    }
    let third = post("/api/sessions/capped/approvals", r#"{"payload":{}}"#).await;
    assert_eq!(third.status, 409, "{}", third.text());
    assert_eq!(third.json().unwrap()["error"], "too_many_pending_approvals");

    let health = send(&target, "GET", "/health/sse", &[], b"", limit)
        .await
        .unwrap();
    assert_eq!(health.status, 200, "a refusing node stays healthy");
    let limits = &health.json().unwrap()["limits"];
    assert_eq!(
        limits["batch_events"],
        serde_json::json!({"max": 3, "refused": 1})
    );
    assert_eq!(
        limits["approval_bytes"],
        serde_json::json!({"max": 64, "refused": 1})
    );
    assert_eq!(
        limits["pending_approvals"],
        serde_json::json!({"max": 2, "refused": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_session_table_refuses_with_503_while_health_stays_200() {
    let args = ["--max-sessions", "3", "--memory-budget-bytes", "100000"];
    let hub = Hub::spawn(EXE, &args.map(str::to_owned)).await.unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let limit = Duration::from_secs(10);
    for i in 0..3 {
        let path = format!("/api/sessions/full-{i}/events");
        let reply = send(
            &target,
            "POST",
            &path,
            &json(Vec::new()),
            br#"{"n":1}"#,
            limit,
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 202, "{}", reply.text());
    }
    let reply = send(
        &target,
        "POST",
        "/api/sessions/full-3/events",
        &json(Vec::new()),
        br#"{"n":1}"#,
        limit,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["error"], "too_many_sessions");
    let health = send(&target, "GET", "/health/sse", &[], b"", limit)
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    let health = health.json().unwrap();
    assert_eq!(
        health["limits"]["sessions"],
        serde_json::json!({"max": 3, "refused": 1})
    );
    assert_eq!(health["limits"]["memory_budget_bytes"]["max"], 100000);
}
