//! How long a session's keys live: at least the TTL after every append, at most an eighth of
//! it more, although an append refreshes them only once an eighth of the TTL has passed since
//! the last refresh it made.

mod common;

use std::time::{Duration, Instant};

use common::*;
use redis::AsyncCommands;
use tether_core::Broker;
use tether_redis::RedisBackplane;

const TTL_MS: i64 = 2_000;

async fn pttl(con: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    con.pttl(key).await.unwrap()
}

/// Checks both keys right after a publish that started at `started`: whatever the refresh
/// skipped, they expire no sooner than the TTL after the publish, and no later than the TTL
/// and an eighth of it.
async fn assert_keys_outlive(con: &mut redis::aio::MultiplexedConnection, started: Instant) {
    for key in ["k1:{s:s1}:meta", "k1:{s:s1}:log"] {
        let left = pttl(con, key).await;
        let since = started.elapsed().as_millis() as i64;
        assert!(
            left >= TTL_MS - since - 1,
            "{key} expires in {left} ms, {since} ms after the publish began: sooner than the TTL after it"
        );
        assert!(
            left <= TTL_MS + TTL_MS / 8,
            "{key} expires in {left} ms: later than the TTL and an eighth"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_s_keys_outlive_every_append_by_the_ttl() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = RedisBackplane::start(
        broker(Broker::builder()),
        config(&redis.url(), "a", "k1").ttl(Duration::from_millis(TTL_MS as u64)),
    )
    .await
    .unwrap();
    let s = sid("s1");
    let mut con = redis.con().await;
    // Publishes 150 ms apart, across several refresh windows (250 ms each) and inside them.
    for n in 1..=10 {
        let started = Instant::now();
        a.publish(&s, &[ev(n)]).await.unwrap();
        assert_keys_outlive(&mut con, started).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // A log evicted on its own comes back with a TTL, however recent the last refresh: the
    // publish after the pause refreshes, the one right after the eviction would not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.publish(&s, &[ev(11)]).await.unwrap();
    let _: () = con.del("k1:{s:s1}:log").await.unwrap();
    let started = Instant::now();
    a.publish(&s, &[ev(12)]).await.unwrap();
    assert_keys_outlive(&mut con, started).await;
}
