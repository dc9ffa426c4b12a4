//! Two `tether serve --redis` nodes on one `redis-server`, behind a real nginx with
//! `deploy/nginx.conf` and both nodes in its upstream, round robin without sticky sessions:
//! the whole conformance suite passes through nginx (the checks that read one node's counts on
//! each node directly), and a client whose node is killed with SIGKILL resumes through nginx
//! on the other node with exactly the events after its `Last-Event-ID`.
//!
//! Skipped, with a notice, when `nginx` or `redis-server` is not installed; under `CI=true`
//! that fails instead.

use std::time::Duration;

use serde_json::json;
use tether_conformance::client::{SseConn, StreamOptions, Target, send};
use tether_conformance::cluster::{Cluster, RedisServer};
use tether_conformance::hub::Hub;
use tether_conformance::{CheckError, SuiteConfig, nginx, run_all};

const EXE: &str = env!("CARGO_BIN_EXE_tether");
const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_behind_round_robin_nginx_pass_the_conformance_suite() {
    let Some(nginx) = nginx::require() else {
        return;
    };
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mut cfg = SuiteConfig::default();
    let args = cfg.hub_args();
    let main = Cluster::start(EXE, &nginx, &redis.url(), 2, &args)
        .await
        .expect("the nodes start");
    let mut reject_args = args.clone();
    reject_args.extend(["--policy", "reject", "--redis-prefix", "reject"].map(str::to_owned));
    let reject = Cluster::start(EXE, &nginx, &redis.url(), 2, &reject_args)
        .await
        .expect("the Reject-policy nodes start");
    cfg.reject_base_url = Some(reject.base_url());
    cfg.nodes = main.node_urls();

    let report = run_all(&main.base_url(), &cfg).await;
    report.assert_ok();
    assert!(report.skipped().is_empty(), "{report}");
}

/// Publishes `{"n": n}` through `proxy`; returns its id.
async fn publish(proxy: &Target, session: &str, n: u64) -> String {
    let r = send(
        proxy,
        "POST",
        &format!("/api/sessions/{session}/events"),
        &[("Content-Type".into(), "application/json".into())],
        json!({ "n": n }).to_string().as_bytes(),
        LIMIT,
    )
    .await
    .expect("the publish is answered");
    assert_eq!(r.status, 202, "{}", r.text());
    r.json().unwrap()["ids"][0].as_str().unwrap().to_owned()
}

/// Opens the session's stream through `proxy`, resuming after `last` if given.
async fn open(proxy: &Target, session: &str, last: Option<&str>) -> SseConn {
    let mut headers = vec![("Accept".to_owned(), "text/event-stream".to_owned())];
    headers.extend(last.map(|id| ("Last-Event-ID".to_owned(), id.to_owned())));
    let conn = SseConn::open(
        proxy,
        &format!("/api/sse/session/{session}"),
        StreamOptions {
            headers,
            recv_buffer: None,
        },
    )
    .await
    .expect("the stream opens");
    assert_eq!(conn.status(), 200, "subscribe through nginx");
    conn
}

/// The next event's `(id, n)`.
async fn next(conn: &mut SseConn) -> (String, u64) {
    let f = conn.next_event(LIMIT).await.expect("an event arrives");
    let n = f.json().and_then(|v| v["n"].as_u64());
    match (f.id.clone(), n) {
        (Some(id), Some(n)) => (id, n),
        _ => panic!("expected one of the published events, got {f:?}"),
    }
}

/// The open connections of each node, read from the node itself.
async fn connections(nodes: &[Hub]) -> Vec<u64> {
    let mut out = Vec::new();
    for node in nodes {
        let t = Target::parse(&node.base_url()).unwrap();
        let r = send(&t, "GET", "/health/sse", &[], b"", LIMIT)
            .await
            .expect("health answers");
        out.push(r.json().unwrap()["connections"].as_u64().unwrap());
    }
    out
}

/// The index of the one node that holds an open connection (waiting up to 10 s for the
/// counts to show exactly one).
async fn serving_node(nodes: &[Hub]) -> usize {
    let mut counts = Vec::new();
    for _ in 0..100 {
        counts = connections(nodes).await;
        if counts.iter().sum::<u64>() == 1 {
            return counts.iter().position(|c| *c == 1).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected exactly one open connection on the nodes, saw {counts:?}");
}

/// Reads until the stream ends (an orderly end or a broken one); panics on an event, or if
/// it is still open after 10 s.
async fn ends_without_events(conn: &mut SseConn) {
    loop {
        match conn.next(LIMIT).await {
            Ok(Some(f)) => assert!(!f.is_event(), "an event after the node died: {f:?}"),
            Ok(None) | Err(CheckError::Fail(_)) => return,
            Err(e) => panic!("the stream outlived its node: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_node_resumes_exactly_on_the_other_through_nginx() {
    let Some(nginx) = nginx::require() else {
        return;
    };
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let args = ["--keepalive-secs", "1"].map(str::to_owned);
    let mut cluster = Cluster::start(EXE, &nginx, &redis.url(), 2, &args)
        .await
        .expect("the nodes start");
    let proxy = Target::parse(&cluster.base_url()).unwrap();
    let s = "sigkill-1";
    let (mut published, mut received) = (Vec::new(), Vec::new());

    let mut stream = open(&proxy, s, None).await;
    let victim = serving_node(cluster.nodes()).await;
    for n in 0..3 {
        published.push((publish(&proxy, s, n).await, n));
        received.push(next(&mut stream).await);
    }
    cluster.kill(victim).await.expect("SIGKILL");
    ends_without_events(&mut stream).await;
    for n in 3..6 {
        published.push((publish(&proxy, s, n).await, n));
    }

    let last = received.last().unwrap().0.clone();
    let mut resumed = open(&proxy, s, Some(&last)).await;
    for _ in 3..6 {
        received.push(next(&mut resumed).await);
    }
    published.push((publish(&proxy, s, 6).await, 6));
    received.push(next(&mut resumed).await);

    assert_eq!(received, published, "events lost, repeated or reordered");
    let counts = connections(&cluster.nodes()[1 - victim..][..1]).await;
    assert_eq!(
        counts,
        [1],
        "the resumed stream is not on the surviving node"
    );
}

/// Posts `events` (a JSON array) to one node; the status.
async fn post_to(node: &Target, session: &str, events: serde_json::Value) -> u16 {
    send(
        node,
        "POST",
        &format!("/api/sessions/{session}/events"),
        &[("Content-Type".into(), "application/json".into())],
        events.to_string().as_bytes(),
        LIMIT,
    )
    .await
    .expect("the publish is answered")
    .status
}

/// Reads a stream's frames until nothing arrives for half a second; the body as sent (ids and
/// data).
async fn read_body(conn: &mut SseConn) -> String {
    let mut out = String::new();
    while let Ok(Some(f)) = conn.next(Duration::from_millis(500)).await {
        if let Some(id) = &f.id {
            out.push_str(&format!("id: {id}\n"));
        }
        if let Some(d) = &f.data {
            out.push_str(&format!("data: {d}\n"));
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agui_publishes_on_both_nodes_keep_the_session_valid_through_nginx() {
    let Some(nginx) = nginx::require() else {
        return;
    };
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let cluster = Cluster::start(EXE, &nginx, &redis.url(), 2, &[])
        .await
        .expect("the nodes start");
    let nodes: Vec<Target> = cluster
        .node_urls()
        .iter()
        .map(|u| Target::parse(u).unwrap())
        .collect();
    let (n0, n1) = (&nodes[0], &nodes[1]);
    let s = "agui-two-nodes";
    let start = |run: &str| json!([{"type": "RUN_STARTED", "threadId": "t", "runId": run}]);
    let delta = |d: &str| json!([{"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": d}]);

    // Both nodes start a run at once: one starts it, the other's start is refused (400).
    let (a, b) = tokio::join!(post_to(n0, s, start("r1")), post_to(n1, s, start("r1")));
    let mut statuses = [a, b];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 400], "exactly one run starts");
    let opened = json!([{"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"}]);
    assert_eq!(post_to(n1, s, opened).await, 202);
    // Deltas on both nodes, some at once: all land, in the log's order.
    for i in 0..4 {
        let (a, b) = tokio::join!(
            post_to(n0, s, delta(&format!("a{i} "))),
            post_to(n1, s, delta(&format!("b{i} ")))
        );
        assert_eq!((a, b), (202, 202), "round {i}");
    }
    let ended = json!([{"type": "TEXT_MESSAGE_END", "messageId": "m1"}]);
    assert_eq!(post_to(n0, s, ended).await, 202);
    // A delta on the other node after the end is refused there too.
    assert_eq!(post_to(n1, s, delta("late")).await, 400);
    let finished = json!([{"type": "RUN_FINISHED", "threadId": "t", "runId": "r1"}]);
    let (a, b) = tokio::join!(post_to(n0, s, finished.clone()), post_to(n1, s, finished));
    let mut statuses = [a, b];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 400], "the run finishes once");

    // The whole stream through nginx, and a stale id's prelude from each node, pass the
    // client's checks.
    let proxy = Target::parse(&cluster.base_url()).unwrap();
    let mut whole = open(&proxy, s, None).await;
    let body = read_body(&mut whole).await;
    drop(whole);
    tether_agui::verify_sse(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(body.matches("RUN_STARTED").count(), 1, "{body}");
    assert_eq!(body.matches("TEXT_MESSAGE_CONTENT").count(), 8, "{body}");
    for (i, node) in nodes.iter().enumerate() {
        let mut resynced = open(node, s, Some("0badc0de-1")).await;
        let prelude = read_body(&mut resynced).await;
        tether_agui::verify_sse(prelude.as_bytes())
            .unwrap_or_else(|e| panic!("node {i}: {e}\n{prelude}"));
        assert!(prelude.contains("MESSAGES_SNAPSHOT"), "node {i}: {prelude}");
        for d in ["a0 ", "b3 "] {
            assert!(
                prelude.contains(d),
                "node {i}: the snapshot holds {d:?}: {prelude}"
            );
        }
    }
}
