//! Connection limits of `tether serve` over real sockets (`tether_conformance::limits`), and
//! the per-address cap.

use std::time::Duration;

use tether_conformance::client::{Target, send};
use tether_conformance::hub::Hub;
use tether_conformance::limits::{LimitsConfig, PER_ADDRESS_CHECKS, run, run_all};

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
    let cfg = LimitsConfig::default().with_per_ip(3);
    let hub = Hub::spawn(EXE, &cfg.hub_args()).await.unwrap();
    let report = run(PER_ADDRESS_CHECKS, &hub.base_url(), &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
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

/// `POST path` with a JSON body.
async fn post_json(target: &Target, path: &str, body: &str) -> tether_conformance::client::Reply {
    send(
        target,
        "POST",
        path,
        &json(Vec::new()),
        body.as_bytes(),
        Duration::from_secs(30),
    )
    .await
    .unwrap()
}

/// `GET /health/sse`.
async fn get_health(target: &Target) -> tether_conformance::client::Reply {
    send(
        target,
        "GET",
        "/health/sse",
        &[],
        b"",
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

fn approval(id: &str, bytes: usize) -> String {
    serde_json::json!({"id": id, "payload": {"diff": "x".repeat(bytes)}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preludes_and_the_memory_budget_refuse_with_their_own_codes() {
    let args = [
        "--max-prelude-bytes",
        "1000",
        "--memory-budget-bytes",
        "200000",
    ];
    let hub = Hub::spawn(EXE, &args.map(str::to_owned)).await.unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();

    // An AG-UI session's open message may not outgrow what its prelude can carry.
    let run = r#"[{"type":"RUN_STARTED","threadId":"t","runId":"r"},{"type":"TEXT_MESSAGE_START","messageId":"m","role":"assistant"}]"#;
    let started = post_json(&target, "/api/sessions/agui-capped/events", run).await;
    assert_eq!(started.status, 202, "{}", started.text());
    let content = |n: usize| {
        serde_json::json!({"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"y".repeat(n)})
            .to_string()
    };
    let fits = post_json(&target, "/api/sessions/agui-capped/events", &content(600)).await;
    assert_eq!(fits.status, 202, "{}", fits.text());
    let over = post_json(&target, "/api/sessions/agui-capped/events", &content(600)).await;
    assert_eq!(over.status, 413, "{}", over.text());
    assert_eq!(over.json().unwrap()["error"], "prelude_too_large");

    // Approvals waiting on a human are state nobody can give back (each announcement stores
    // its payload in the ring too): once they spend the budget, a new approval and a new
    // session wait; the session in use goes on.
    for n in 0..3 {
        let ok = post_json(
            &target,
            "/api/sessions/holding/approvals",
            &approval(&format!("a{n}"), 60_000),
        )
        .await;
        assert_eq!(ok.status, 201, "{}", ok.text());
    }
    let fourth = post_json(
        &target,
        "/api/sessions/holding/approvals",
        &approval("a3", 10),
    )
    .await;
    assert_eq!(fourth.status, 503, "{}", fourth.text());
    assert_eq!(fourth.json().unwrap()["error"], "memory_budget_exceeded");
    assert!(fourth.header("retry-after").is_some());
    let newcomer = post_json(&target, "/api/sessions/newcomer/events", r#"{"n":1}"#).await;
    assert_eq!(newcomer.status, 503, "{}", newcomer.text());
    assert_eq!(newcomer.json().unwrap()["error"], "memory_budget_exceeded");
    let in_use = post_json(&target, "/api/sessions/holding/events", r#"{"n":1}"#).await;
    assert_eq!(in_use.status, 202, "{}", in_use.text());

    let health = get_health(&target).await;
    assert_eq!(health.status, 200, "a full node stays healthy");
    let health = health.json().unwrap();
    assert_eq!(
        health["limits"]["memory_budget_bytes"],
        serde_json::json!({"max": 200000, "refused": 2}),
        "{health}"
    );
    assert!(health["state_bytes"].as_u64() > Some(180_000), "{health}");
}

/// The hub's resident memory, from `/proc`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// Tracker state and approval payloads stay inside the memory budget, as the process's own
/// resident memory shows: 100 approvals of 240 KB, then 160 AG-UI sessions each streaming
/// 600 KB into an open message (rings of about one event), under a 32 MiB budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_and_approval_memory_stays_within_the_budget_in_rss() {
    const BUDGET: u64 = 32 << 20;
    // Rings of one event: what the sessions hold is mostly their trackers' open messages.
    let args = [
        "--memory-budget-bytes".to_owned(),
        BUDGET.to_string(),
        "--ring-bytes".to_owned(),
        "40000".to_owned(),
    ];
    let hub = Hub::spawn(EXE, &args).await.unwrap();
    let pid = hub.pid().expect("the hub's pid");
    let target = Target::parse(&hub.base_url()).unwrap();
    let warm = post_json(&target, "/api/sessions/warm/events", r#"{"n":1}"#).await;
    assert_eq!(warm.status, 202);
    let before = rss_bytes(pid);

    let mut accepted_payload = 0u64;
    for n in 0..100 {
        let reply = post_json(
            &target,
            &format!("/api/sessions/approvals-{}/approvals", n % 10),
            &approval(&format!("a{n}"), 240_000),
        )
        .await;
        match reply.status {
            201 => accepted_payload += 240_000,
            503 => assert_eq!(reply.json().unwrap()["error"], "memory_budget_exceeded"),
            other => panic!("approval {n}: {other} {}", reply.text()),
        }
    }
    // Twenty deltas of 30 KB per session, in one batch: 600 KB in the open message.
    let delta = serde_json::json!({"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"z".repeat(30_000)});
    let deltas = serde_json::Value::Array(vec![delta; 20]).to_string();
    for n in 0..160 {
        let path = format!("/api/sessions/agui-rss-{n}/events");
        let run = format!(
            r#"[{{"type":"RUN_STARTED","threadId":"t{n}","runId":"r"}},{{"type":"TEXT_MESSAGE_START","messageId":"m","role":"assistant"}}]"#
        );
        let started = post_json(&target, &path, &run).await;
        if started.status == 503 {
            continue;
        }
        assert_eq!(started.status, 202, "{}", started.text());
        let reply = post_json(&target, &path, &deltas).await;
        assert_eq!(reply.status, 202, "{}", reply.text());
    }
    let after = rss_bytes(pid);
    let health = get_health(&target).await.json().unwrap();
    let held = health["ring_bytes"].as_u64().unwrap() + health["state_bytes"].as_u64().unwrap();
    eprintln!(
        "rss before {before} after {after} (+{} MiB); budget {BUDGET}; held {held}; approvals accepted {accepted_payload} bytes",
        (after.saturating_sub(before)) >> 20
    );
    assert!(held <= BUDGET + 1_000_000, "{health}");
    assert!(
        accepted_payload >= 20_000_000,
        "approvals fit until the budget is spent"
    );
    // Without the budget the sessions would hold 200 × 600 KB in their trackers and rings
    // (240 MB), and the approvals 8 MB as parsed trees at many times that.
    assert!(
        after.saturating_sub(before) < BUDGET + (64 << 20),
        "resident memory grew by {} MiB under a {} MiB budget",
        (after - before) >> 20,
        BUDGET >> 20
    );
}
