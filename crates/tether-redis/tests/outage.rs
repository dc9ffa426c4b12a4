//! Redis unreachable: publishes and connects fail within the deadline instead of hanging,
//! nothing is kept only in memory, the status says down, and everything works again once
//! Redis is back. A node holds two connections, whatever its load.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tether_core::{BackplaneError, Broker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_fail_within_the_deadline_while_redis_is_away() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = Proxy::start(redis.addr()).await;
    let a = node(&proxy.url(), "a", "o1", Broker::builder()).await;
    let s = sid("s1");
    a.publish(&s, &[ev(1)]).await.unwrap();

    proxy.set_refuse(true);
    proxy.cut();
    let started = Instant::now();
    let err = a.publish(&s, &[ev(2)]).await.unwrap_err();
    // The deadline is 2 s; the bound is generous for a busy machine.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, BackplaneError::Unavailable(_)), "{err:?}");
    let err = a.connect(&s, Default::default()).await.unwrap_err();
    assert!(matches!(err, BackplaneError::Unavailable(_)), "{err:?}");
    assert_eq!(
        a.broker().head(&s).map(|id| id.seq),
        Some(1),
        "nothing is kept only in memory"
    );
    for _ in 0..200 {
        if !a.status().up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down = a.status();
    assert!(!down.up);
    assert_eq!(a.health_json()["node_id"], "a");

    proxy.set_refuse(false);
    let mut ok = None;
    for _ in 0..100 {
        if let Ok(ids) = a.publish(&s, &[ev(2)]).await {
            ok = Some(ids);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ok.expect("publishes again").first().map(|id| id.seq),
        Some(2)
    );
    for _ in 0..200 {
        if a.status().up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let up = a.status();
    assert!(up.up);
    assert!(up.since >= down.since);
    let mut client = Client::default();
    let mut stream = a.connect(&s, client.opts()).await.unwrap();
    client
        .read(&mut stream, Duration::from_secs(5), |c| c.seen.len() == 2)
        .await;
    assert_eq!(client.seen, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holds_two_connections() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "o2", Broker::builder()).await;
    // Many sessions, publishes and connects at once: still the same two connections.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let s = sid(&format!("s{i}"));
            for n in 0..5 {
                a.publish(&s, &[ev(n)]).await.unwrap();
            }
            let _stream = a.connect(&s, Default::default()).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut con = redis.con().await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .unwrap();
    // The test's own connection is the third.
    assert_eq!(list.lines().count(), 3, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_and_password_in_the_url() {
    let acl = [
        "--user", "default", "off", "--user", "tether", "on", ">s3cret", "~*", "&*", "+@all",
    ];
    let Some(redis) = RedisServer::start_with(&acl).await else {
        return;
    };
    let wrong = format!("redis://tether:nope@127.0.0.1:{}", redis.port);
    assert!(
        tether_redis::RedisBackplane::start(broker(Broker::builder()), config(&wrong, "a", "o3"))
            .await
            .is_err()
    );
    let url = format!("redis://tether:s3cret@127.0.0.1:{}", redis.port);
    let a = node(&url, "a", "o3", Broker::builder()).await;
    let b = node(&url, "b", "o3", Broker::builder()).await;
    let s = sid("s1");
    let mut client = Client::default();
    let mut stream = b.connect(&s, client.opts()).await.unwrap();
    a.publish(&s, &[ev(1)]).await.unwrap();
    client
        .read(&mut stream, Duration::from_secs(5), |c| c.seen.len() == 1)
        .await;
    assert_eq!(
        client.seen,
        vec![1],
        "wakes reach B through its authenticated pub/sub link"
    );
}
