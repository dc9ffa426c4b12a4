//! Approvals across nodes: created, decided and expired exactly once cluster-wide, a waiting
//! publisher on one node sees a decision made on another, pending approvals are re-announced
//! to a client that resyncs on any node, and a Redis outage answers 503 and settles a deadline
//! that passed during it once Redis is back.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use redis::AsyncCommands;
use tether_core::{
    ApprovalRequest, ApprovalStatus, Backplane, BackplaneError, Broker, ConnectOptions,
    DecideError, EventStream,
};
use tether_redis::RedisBackplane;

fn request(id: &str) -> ApprovalRequest {
    ApprovalRequest::new(serde_json::json!({"deploy": id}))
        .id(id)
        .title("Deploy?")
}

fn approved() -> ApprovalStatus {
    ApprovalStatus::Approved {
        reason: Some("ok".into()),
    }
}

/// How many `tether.approval.<what>` notices the session's log holds for approval `id`.
async fn notices(redis: &RedisServer, prefix: &str, s: &str, what: &str, id: &str) -> usize {
    let mut con = redis.con().await;
    let entries: redis::streams::StreamRangeReply = con
        .xrange_all(format!("{prefix}:{{s:{s}}}:log"))
        .await
        .unwrap();
    let name = format!("\"name\":\"tether.approval.{what}\"");
    let id = format!("\"id\":\"{id}\"");
    entries
        .ids
        .iter()
        .filter_map(|e| e.get::<String>("f"))
        .filter(|f| f.contains(&name) && f.contains(&id))
        .count()
}

/// Reads a stream's text until `until` holds or 5 s pass.
async fn read_until(stream: &mut EventStream, until: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !until(&text) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(b)) => text.push_str(std::str::from_utf8(&b).unwrap()),
            _ => break,
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deciding_one_approval_at_once_exactly_one_wins() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "ap1", Broker::builder()).await;
    let b = node(&redis.url(), "b", "ap1", Broker::builder()).await;
    let s = sid("s");
    for n in 0..20 {
        let id = format!("apr-{n}");
        a.request_approval(&s, request(&id)).await.unwrap();
        let (on_a, on_b) = tokio::join!(
            a.resolve_approval(&s, &id, approved()),
            b.resolve_approval(&s, &id, ApprovalStatus::Rejected { reason: None }),
        );
        let (winner, loser) = match (&on_a, &on_b) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w.clone(), l.clone()),
            _ => panic!("exactly one decision wins: {on_a:?} {on_b:?}"),
        };
        assert_eq!(
            loser,
            BackplaneError::Decide(DecideError::AlreadyDecided(winner.status.clone()))
        );
        let stored = b.approval(&s, &id, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(stored.status, winner.status, "every node reads the winner");
        assert_eq!(notices(&redis, "ap1", "s", "resolved", &id).await, 1);
        assert_eq!(notices(&redis, "ap1", "s", "requested", &id).await, 1);
    }
    assert!(matches!(
        b.request_approval(&s, request("apr-0")).await,
        Err(BackplaneError::Approval(
            tether_core::ApprovalError::Duplicate
        ))
    ));
    assert!(matches!(
        a.resolve_approval(&s, "nope", approved()).await,
        Err(BackplaneError::Decide(DecideError::Unknown))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_with_three_nodes_fires_once() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let url = redis.url();
    let mut nodes: Vec<RedisBackplane> = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(node(&url, n, "ap2", Broker::builder()).await);
    }
    let s = sid("s");
    for (n, at) in nodes.iter().enumerate().cycle().take(9).enumerate() {
        let id = format!("apr-{n}");
        let timeout = Duration::from_millis(200 + 50 * n as u64);
        at.1.request_approval(&s, request(&id).timeout(timeout))
            .await
            .unwrap();
    }
    // The creator of the last ones dies before their deadlines: the others settle them.
    let crashed = nodes[2].clone();
    crashed
        .request_approval(&s, request("orphan").timeout(Duration::from_millis(300)))
        .await
        .unwrap();
    drop(crashed);
    let nodes = &nodes[..2];
    let ids: Vec<String> = (0..9)
        .map(|n| format!("apr-{n}"))
        .chain(["orphan".to_owned()])
        .collect();
    let started = Instant::now();
    for id in &ids {
        loop {
            // Read the records without settling them: only the sweepers may.
            let mut con = redis.con().await;
            let rec: Option<String> = con.hget("ap2:{s:s}:appr", id).await.unwrap();
            if rec.unwrap().contains("\"status\":\"timed_out\"") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{id} was not settled by the sweepers"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            notices(&redis, "ap2", "s", "resolved", id).await,
            1,
            "{id}: one outcome"
        );
        assert!(matches!(
            nodes[1].resolve_approval(&s, id, approved()).await,
            Err(BackplaneError::Decide(DecideError::Expired))
        ));
    }
    let mut con = redis.con().await;
    let due: u64 = con.zcard("ap2:approvals:due").await.unwrap();
    assert_eq!(due, 0, "the deadline index is empty once all are settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_waiting_on_a_sees_a_decision_made_on_b() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "ap3", Broker::builder()).await;
    let b = node(&redis.url(), "b", "ap3", Broker::builder()).await;
    let s = sid("s");
    a.request_approval(&s, request("x")).await.unwrap();
    let pending = a.approval(&s, "x", Duration::from_millis(200)).await;
    assert_eq!(pending.unwrap().unwrap().status, ApprovalStatus::Pending);
    let waiter = {
        let (a, s) = (a.clone(), s.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let got = a.approval(&s, "x", Duration::from_secs(20)).await;
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.resolve_approval(&s, "x", approved()).await.unwrap();
    let (got, waited) = waiter.await.unwrap();
    assert_eq!(got.unwrap().unwrap().status, approved());
    assert!(waited < Duration::from_secs(5), "returned after {waited:?}");
    assert_eq!(a.approval(&s, "nope", Duration::ZERO).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_approvals_are_reannounced_after_a_resync_on_any_node() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    // Logs of 4 events: the announcements are trimmed away by the events after them.
    let small = || Broker::builder().ring_max_events(4);
    let a = node(&redis.url(), "a", "ap4", small()).await;
    let b = node(&redis.url(), "b", "ap4", small()).await;
    let c = node(&redis.url(), "c", "ap4", small()).await;
    let s = sid("s");
    a.request_approval(&s, request("keep")).await.unwrap();
    a.request_approval(&s, request("done")).await.unwrap();
    a.resolve_approval(&s, "done", approved()).await.unwrap();
    for n in 1..=6 {
        a.publish(&s, &[ev(n)]).await.unwrap();
    }

    // A client with an id of another epoch resyncs on B, which never saw the announcements:
    // the prelude names the pending one, read from Redis with the log.
    let mut stream = b
        .connect(&s, ConnectOptions::resume("ffff-3"))
        .await
        .unwrap();
    let text = read_until(&mut stream, |t| t.contains(r#"{"n":6}"#)).await;
    let prelude = &text[..text.find("id: ").expect("the replay follows")];
    assert!(prelude.contains("tether.resync"), "{text}");
    assert!(
        prelude.contains("tether.approval.requested") && prelude.contains("\"keep\""),
        "{text}"
    );
    assert!(
        !prelude.contains("\"done\""),
        "a decided one is not re-announced: {text}"
    );

    // While B holds the stream, C creates and A decides: B's ring learns both from the log,
    // and its next prelude (a resync after the ring lost the client's place) is current.
    c.request_approval(&s, request("late")).await.unwrap();
    a.resolve_approval(&s, "keep", approved()).await.unwrap();
    let text = read_until(&mut stream, |t| {
        t.contains("\"late\"") && t.contains("\"keep\"")
    })
    .await;
    assert!(
        text.contains("tether.approval.requested") && text.contains("\"late\""),
        "{text}"
    );
    assert!(
        text.contains("tether.approval.resolved") && text.contains("\"keep\""),
        "{text}"
    );
    drop(stream);
    let head = b.broker().head(&s).unwrap();
    b.broker()
        .rebase(
            &s,
            tether_core::EventId {
                seq: head.seq + 5,
                ..head
            },
        )
        .unwrap();
    let mut stream = b
        .broker()
        .connect(&s, ConnectOptions::resume(head.to_string()))
        .unwrap();
    let text = read_until(&mut stream, |t| t.contains("\"late\"")).await;
    assert!(text.contains("tether.resync"), "{text}");
    assert!(text.contains("\"late\""), "the new pending one: {text}");
    assert!(
        !text.contains("\"keep\""),
        "the decided one is gone: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_decisions_answer_unavailable_and_a_deadline_passed_meanwhile_settles_on_return()
{
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = Proxy::start(redis.addr()).await;
    let a = node(&proxy.url(), "a", "ap5", Broker::builder()).await;
    let b = node(&redis.url(), "b", "ap5", Broker::builder()).await;
    let s = sid("s");
    a.request_approval(&s, request("x").timeout(Duration::from_millis(500)))
        .await
        .unwrap();
    a.request_approval(&s, request("y")).await.unwrap();
    // B goes away too, so only A can settle the deadline once its Redis is back.
    drop(b);
    proxy.set(Fault::Blackhole);
    let started = Instant::now();
    let r = a.resolve_approval(&s, "y", approved()).await;
    assert!(matches!(r, Err(BackplaneError::Unavailable(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    let r = a.request_approval(&s, request("z")).await;
    assert!(matches!(r, Err(BackplaneError::Unavailable(_))), "{r:?}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.set(Fault::Pass);
    proxy.cut();
    let started = Instant::now();
    loop {
        let mut con = redis.con().await;
        let rec: String = con.hget("ap5:{s:s}:appr", "x").await.unwrap();
        if rec.contains("\"status\":\"timed_out\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the deadline was not settled after the outage: {rec}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(notices(&redis, "ap5", "s", "resolved", "x").await, 1);
    let y = a.resolve_approval(&s, "y", approved()).await.unwrap();
    assert_eq!(y.status, approved(), "decisions work again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_on_another_node_records_how_long_the_approval_waited() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    static SNAPSHOTTER: std::sync::OnceLock<Snapshotter> = std::sync::OnceLock::new();
    let snapshotter = SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder of this test");
        snapshotter
    });
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "apw", Broker::builder()).await;
    let b = node(&redis.url(), "b", "apw", Broker::builder()).await;
    let s = sid("s");
    a.request_approval(&s, request("waited")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.resolve_approval(&s, "waited", approved()).await.unwrap();
    let waits: Vec<f64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| k.key().name() == tether_core::metrics::APPROVAL_WAIT_SECONDS)
        .flat_map(|(.., v)| match v {
            DebugValue::Histogram(h) => h.into_iter().map(|x| x.into_inner()).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert!(
        waits.iter().any(|w| (0.2..30.0).contains(w)),
        "approval_wait_seconds: {waits:?}"
    );
}
