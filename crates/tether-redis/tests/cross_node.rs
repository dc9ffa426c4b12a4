//! Two nodes on one Redis: a session published on one node streams from the other, and a
//! client that reconnects alternately to either, through links that get cut, sees every event
//! once and in order.

mod common;

use std::time::Duration;

use common::*;
use redis::AsyncCommands;
use tether_core::{BackplaneError, Broker, ConnectError, ConnectOptions, Event, EventStream};
use tether_redis::RedisBackplane;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_a_subscribe_on_b() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "t1", Broker::builder()).await;
    let b = node(&redis.url(), "b", "t1", Broker::builder()).await;
    let s = sid("s1");

    // History published on A before anyone connects is replayed on B.
    for n in 1..=3 {
        a.publish(&s, &[ev(n)]).await.unwrap();
    }
    let mut client = Client::default();
    let mut stream = b.connect(&s, client.opts()).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 3).await;
    assert_eq!(client.seen, vec![1, 2, 3]);

    // Live: single events and a batch on A wake B; a publish on B itself lands too.
    a.publish(&s, &[ev(4)]).await.unwrap();
    a.publish(&s, &[ev(5), ev(6), ev(7)]).await.unwrap();
    b.publish(&s, &[ev(8)]).await.unwrap();
    // A frame above the inline maximum travels by reference.
    let big = "x".repeat(20 * 1024);
    let ids = a
        .publish(
            &s,
            &[Event::json(&serde_json::json!({"n": 9, "pad": big})).unwrap()],
        )
        .await
        .unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 9).await;
    assert_eq!(client.seen, (1..=9).collect::<Vec<_>>());
    assert!(client.resyncs.is_empty(), "{:?}", client.resyncs);
    assert_eq!(
        client.last_id,
        Some(ids[0].to_string()),
        "ids are the same on every node"
    );

    // The ids A handed out are the ones B's client saw, and the ones in Redis.
    let mut con = redis.con().await;
    let len: u64 = con.xlen("t1:{s:s1}:log").await.unwrap();
    assert_eq!(len, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_on_a_moves_the_session_from_b() {
    supersede_from_a_on_b("t2", false).await;
}

/// Pub/sub is at most once: B never hears that A took its session. B's head check sees that
/// the session's meta names another owner and ends its own stream, so the session never has
/// two live streams for longer than one head check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_supersede_notice_cannot_leave_two_live_streams() {
    supersede_from_a_on_b("tsup", true).await;
}

/// A client streaming from B comes back on A: B's stream ends with `superseded` (told by
/// the supersede notice, or with `lose_notice` by B's head check alone), B no longer holds
/// the session, and A's stream is the session's one stream.
async fn supersede_from_a_on_b(prefix: &str, lose_notice: bool) {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", prefix, Broker::builder()).await;
    let b = node(&redis.url(), "b", prefix, Broker::builder()).await;
    let s = sid("s1");
    a.publish(&s, &[ev(1)]).await.unwrap();
    let mut on_b = Client::default();
    let mut stream_b = b.connect(&s, on_b.opts()).await.unwrap();
    on_b.read(&mut stream_b, WAIT, |c| c.seen.len() == 1).await;

    if lose_notice {
        b.drop_next_supersedes(1);
    }
    let mut on_a = Client {
        last_id: on_b.last_id.clone(),
        ..Client::default()
    };
    let mut stream_a = a.connect(&s, on_a.opts()).await.unwrap();
    let mut rest = String::new();
    let ended = tokio::time::timeout(WAIT, async {
        use futures_util::StreamExt;
        while let Some(b) = stream_b.next().await {
            rest.push_str(std::str::from_utf8(&b).unwrap());
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "B's stream ends (notice lost: {lose_notice}): {rest}"
    );
    assert!(rest.contains("tether.superseded"), "{rest}");
    assert!(
        !b.broker().is_connected(&s),
        "B no longer holds the session"
    );

    b.publish(&s, &[ev(2)]).await.unwrap();
    on_a.read(&mut stream_a, WAIT, |c| c.seen.len() == 1).await;
    assert_eq!(on_a.seen, vec![2]);
    assert!(on_a.resyncs.is_empty(), "{:?}", on_a.resyncs);
}

/// Publishes `n`, retrying over a cut link; a publish whose reply was lost may have been
/// stored, which the log tells.
async fn publish_once(node: &RedisBackplane, redis: &RedisServer, prefix: &str, s: &str, n: u64) {
    for _ in 0..50 {
        match node.publish(&sid(s), &[ev(n)]).await {
            Ok(_) => return,
            Err(e) => {
                let mut con = redis.con().await;
                let last: redis::streams::StreamRangeReply = con
                    .xrevrange_count(format!("{prefix}:{{s:{s}}}:log"), "+", "-", 1)
                    .await
                    .unwrap();
                let stored = last.ids.first().and_then(|id| {
                    let f: String = id.get("f")?;
                    let block = tether_core::sse_parse::parse(f.as_bytes()).pop()?;
                    block.json()?["n"].as_u64()
                });
                if stored == Some(n) {
                    return;
                }
                eprintln!("publish {n} failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("publish {n} kept failing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_alternating_between_nodes_through_cut_links_lose_nothing() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy_a = Proxy::start(redis.addr()).await;
    let proxy_b = Proxy::start(redis.addr()).await;
    let a = node(&proxy_a.url(), "a", "t3", Broker::builder()).await;
    let b = node(&proxy_b.url(), "b", "t3", Broker::builder()).await;
    let nodes = [&a, &b];
    let proxies = [&proxy_a, &proxy_b];
    let s = "s1";
    let mut client = Client::default();
    let mut published = 0u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..24u64 {
        let on = nodes[(round % 2) as usize];
        let mut stream = None;
        for _ in 0..50 {
            match on.connect(&sid(s), client.opts()).await {
                Ok(st) => {
                    stream = Some(st);
                    break;
                }
                Err(e) => {
                    eprintln!("connect failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let mut stream = stream.expect("connects");
        for _ in 0..(next() % 4 + 1) {
            let via = nodes[(next() % 2) as usize];
            published += 1;
            publish_once(via, &redis, "t3", s, published).await;
            match next() % 5 {
                0 => {
                    proxies[(next() % 2) as usize].cut();
                }
                1 => {
                    proxy_a.cut();
                    proxy_b.cut();
                }
                _ => {}
            }
        }
        // Read part of what is there, or all of it, then drop the connection.
        let want = if next() % 3 == 0 {
            client.seen.len() as u64 + 1
        } else {
            published
        };
        let want = want.min(published) as usize;
        let mut ended = client
            .read(&mut stream, Duration::from_secs(10), |c| {
                c.seen.len() >= want
            })
            .await;
        // A stream may end early when a cut link lost the reply to its claim and the node's
        // ownership check then ends it: the client reconnects and resumes, as a browser does.
        for _ in 0..3 {
            if !(ended && client.seen.len() < want) {
                break;
            }
            eprintln!("round {round}: the stream ended early; resuming");
            let Ok(again) = on.connect(&sid(s), client.opts()).await else {
                continue;
            };
            stream = again;
            ended = client
                .read(&mut stream, Duration::from_secs(10), |c| {
                    c.seen.len() >= want
                })
                .await;
        }
        if client.seen.len() < want {
            let mut con = redis.con().await;
            let meta: Vec<Option<String>> = redis::cmd("HMGET")
                .arg("t3:{s:s1}:meta")
                .arg(&["e", "s", "o", "c"])
                .query_async(&mut con)
                .await
                .unwrap();
            panic!(
                "round {round} on {}: {:?} of {published}; ended {ended}; meta {meta:?}; a {:?} {}, b {:?} {}; status a {} b {}",
                round % 2,
                client.seen,
                a.broker().position(&sid(s)),
                a.broker().is_connected(&sid(s)),
                b.broker().position(&sid(s)),
                b.broker().is_connected(&sid(s)),
                a.status().up,
                b.status().up,
            );
        }
        drop(stream);
    }
    // A last connect reads everything that is left.
    let mut stream = a.connect(&sid(s), client.opts()).await.unwrap();
    client
        .read(&mut stream, Duration::from_secs(10), |c| {
            c.seen.len() as u64 == published
        })
        .await;
    assert!(client.resyncs.is_empty(), "{:?}", client.resyncs);
    assert_eq!(
        client.seen,
        (1..=published).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

/// Two tabs of one user on two nodes: tab A (on node A) is superseded by tab B (on node B).
/// Tab A coming back, on either node, is told to stop (204), so the tabs never take turns.
/// Another identity with the same client id, a tab that replaced its own stream, and clients
/// without a client id are let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_tab_coming_back_to_any_node_gets_told_to_stop() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "t204", Broker::builder()).await;
    let b = node(&redis.url(), "b", "t204", Broker::builder()).await;
    let tab = |id: &str| ConnectOptions::default().client_id(id).identity("alice");
    let told_to_stop = |r: &Result<EventStream, BackplaneError>| {
        matches!(
            r,
            Err(BackplaneError::Connect(ConnectError::SupersededRecently))
        )
    };
    for (n, back_on) in [(1, &b), (2, &a)] {
        let s = sid(&format!("tabs{n}"));
        let tab_a = a.connect(&s, tab("tab-a")).await.unwrap();
        let tab_b = b.connect(&s, tab("tab-b")).await.unwrap();
        assert!(told_to_stop(&back_on.connect(&s, tab("tab-a")).await));
        assert!(
            back_on
                .connect(
                    &s,
                    ConnectOptions::default()
                        .client_id("tab-a")
                        .identity("mallory")
                )
                .await
                .is_ok(),
            "another identity is not the superseded instance"
        );
        drop((tab_a, tab_b));
    }

    // Without client ids, a resuming client on another node may be the superseded tab or
    // the stream's own client reconnecting before its old stream's end reached Redis: it is
    // let in (one node tells them apart by whether the old stream is still alive).
    let s = sid("anon");
    let id = a.publish(&s, &[ev(1)]).await.unwrap()[0].to_string();
    let first = a
        .connect(&s, ConnectOptions::resume(id.clone()))
        .await
        .unwrap();
    let second = b.connect(&s, ConnectOptions::default()).await.unwrap();
    let again = a.connect(&s, ConnectOptions::resume(id.clone())).await;
    assert!(again.is_ok(), "a client without a client id is let in");
    drop((first, second, again));

    // The same tab replacing itself on another node is no victim: it may come back.
    let s = sid("self");
    let x = a.connect(&s, tab("tab-x")).await.unwrap();
    let y = b.connect(&s, tab("tab-x")).await.unwrap();
    let again = a.connect(&s, tab("tab-x")).await;
    assert!(
        again.is_ok(),
        "a tab replacing its own stream is not refused"
    );
    drop((x, y, again));
}
