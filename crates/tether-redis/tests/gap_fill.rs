//! Pub/sub is at-most-once; the log is not. A wake dropped on purpose leaves a gap that the
//! next wake or the periodic head check fills from the log, with no resync.

mod common;

use std::time::Duration;

use common::*;
use tether_core::Broker;
use tether_redis::RedisBackplane;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_wake_is_filled_by_the_next_one() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "g1", Broker::builder()).await;
    // No head check during the test: the next wake alone must reveal the gap.
    let b = RedisBackplane::start(
        broker(Broker::builder()),
        config(&redis.url(), "b", "g1").head_check_interval(Duration::from_secs(600)),
    )
    .await
    .unwrap();
    let s = sid("s1");
    let mut client = Client::default();
    let mut stream = b.connect(&s, client.opts()).await.unwrap();
    a.publish(&s, &[ev(1)]).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 1).await;

    b.drop_next_wakes(2);
    a.publish(&s, &[ev(2)]).await.unwrap();
    a.publish(&s, &[ev(3), ev(4)]).await.unwrap();
    a.publish(&s, &[ev(5)]).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 5).await;
    assert_eq!(client.seen, vec![1, 2, 3, 4, 5]);
    assert!(client.resyncs.is_empty(), "{:?}", client.resyncs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_last_wake_is_found_by_the_head_check() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "g2", Broker::builder()).await;
    let b = node(&redis.url(), "b", "g2", Broker::builder()).await;
    let s = sid("s1");
    a.publish(&s, &[ev(1)]).await.unwrap();
    let mut client = Client::default();
    let mut stream = b.connect(&s, client.opts()).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 1).await;

    b.drop_next_wakes(1);
    a.publish(&s, &[ev(2)]).await.unwrap();
    // Nothing follows it; the head check (every 500 ms here) notices the moved head.
    client.read(&mut stream, WAIT, |c| c.seen.len() == 2).await;
    assert_eq!(client.seen, vec![1, 2]);
    assert!(client.resyncs.is_empty(), "{:?}", client.resyncs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakes_lost_during_an_outage_are_caught_up_after_the_resubscribe() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "g3", Broker::builder()).await;
    let proxy = Proxy::start(redis.addr()).await;
    // No periodic head check during the test: the catch-up after the resubscribe must do it.
    let b = RedisBackplane::start(
        broker(Broker::builder()),
        config(&proxy.url(), "b", "g3").head_check_interval(Duration::from_secs(600)),
    )
    .await
    .unwrap();
    let s = sid("s1");
    let mut client = Client::default();
    let mut stream = b.connect(&s, client.opts()).await.unwrap();
    a.publish(&s, &[ev(1)]).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 1).await;

    // B loses Redis: every wake published meanwhile goes to nobody.
    proxy.set_refuse(true);
    proxy.cut();
    for _ in 0..100 {
        if !b.status().up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!b.status().up, "B reports the backplane down");
    assert_eq!(b.health_json()["status"], "down");
    for n in 2..=6 {
        a.publish(&s, &[ev(n)]).await.unwrap();
    }
    let ended = client.settle(&mut stream, Duration::from_millis(300)).await;
    assert!(!ended, "the stream stays open while Redis is away");
    assert_eq!(client.seen, vec![1]);

    proxy.set_refuse(false);
    client.read(&mut stream, WAIT, |c| c.seen.len() == 6).await;
    assert_eq!(client.seen, (1..=6).collect::<Vec<_>>());
    assert!(client.resyncs.is_empty(), "{:?}", client.resyncs);
    assert!(b.status().up);
}
