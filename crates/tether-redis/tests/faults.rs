//! Every failure Redis or the network between meets in production, one test each: through
//! the in-test proxy (refuse, blackhole, cut, drop replies, links blackholed for good) and
//! Redis's own fault commands (`CLIENT KILL`, `CLIENT PAUSE`, `FLUSHALL`, `SCRIPT FLUSH`,
//! kill and restart). No call outlives its deadline, nothing is reported as stored that is
//! not, and service comes back by itself.
//!
//! Head checks are off (ten minutes apart) wherever a test is about wakes: an event that
//! arrives then came through the subscription, not through a check that would hide a dead one.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tether_core::idempotency::IdempotencyKey;
use tether_core::{BackplaneError, Broker, EventStream};
use tether_redis::RedisBackplane;

const NO_HEAD_CHECKS: Duration = Duration::from_secs(600);
/// The operation deadline the nodes run with (the default).
const DEADLINE: Duration = Duration::from_secs(2);
/// What a busy 2-core machine may add to a deadline.
const SLACK: Duration = Duration::from_millis(1500);

async fn wake_node(url: &str, name: &str, prefix: &str) -> RedisBackplane {
    let cfg = config(url, name, prefix).head_check_interval(NO_HEAD_CHECKS);
    RedisBackplane::start(broker(Broker::builder()), cfg)
        .await
        .expect("backplane starts")
}

/// Polls `f` every 50 ms until it holds; `false` after `within`.
async fn eventually(within: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Publishes event `n` until Redis takes it; the time that took.
async fn publish_until_stored(
    node: &RedisBackplane,
    s: &str,
    n: u64,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let ok = eventually(within, async || {
        node.publish(&sid(s), &[ev(n)]).await.is_ok()
    })
    .await;
    assert!(ok, "publishing did not come back within {within:?}");
    started.elapsed()
}

/// Reads until the client has seen event `n`; whether it did within `within`.
async fn sees(client: &mut Client, stream: &mut EventStream, n: u64, within: Duration) -> bool {
    client.read(stream, within, |c| c.seen.contains(&n)).await;
    client.seen.contains(&n)
}

/// A client of `s` on `node`, having read what is there.
async fn reader(node: &RedisBackplane, s: &str) -> (Client, EventStream) {
    let mut client = Client::default();
    let mut stream = node.connect(&sid(s), client.opts()).await.unwrap();
    client.settle(&mut stream, Duration::from_millis(300)).await;
    (client, stream)
}

fn assert_within_deadline(what: &str, took: Duration) {
    assert!(
        took <= DEADLINE + SLACK,
        "{what} waited {took:?}, past its deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_redis_fails_every_call_within_its_deadline() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = Proxy::start(redis.addr()).await;
    let a = node(&proxy.url(), "a", "f1", Broker::builder()).await;
    a.publish(&sid("s"), &[ev(1)]).await.unwrap();

    proxy.set(Fault::Blackhole);
    let started = Instant::now();
    let err = a.publish(&sid("s"), &[ev(2)]).await.unwrap_err();
    assert_within_deadline("a publish", started.elapsed());
    assert!(matches!(err, BackplaneError::Unavailable(_)), "{err:?}");
    let key = IdempotencyKey::new("k1").unwrap();
    let started = Instant::now();
    assert!(a.publish_once(&sid("s"), &key, &[ev(3)]).await.is_err());
    assert_within_deadline("an idempotent publish", started.elapsed());
    let started = Instant::now();
    assert!(a.connect(&sid("fresh"), Default::default()).await.is_err());
    assert_within_deadline("a connect", started.elapsed());
    assert!(
        eventually(Duration::from_secs(10), async || !a.status().up).await,
        "the status says down"
    );

    // The partition heals: the requests TCP held reach Redis late. The callers were told
    // their events may or may not be stored; the retry with the key stores event 3 once.
    proxy.set(Fault::Pass);
    let retried = eventually(Duration::from_secs(10), async || {
        a.publish_once(&sid("s"), &key, &[ev(3)]).await.is_ok()
    })
    .await;
    assert!(retried, "publishing comes back");
    let (client, _stream) = reader(&a, "s").await;
    let count = |n| client.seen.iter().filter(|&&m| m == n).count();
    assert_eq!(client.seen.first(), Some(&1), "{:?}", client.seen);
    assert!(count(2) <= 1, "{:?}", client.seen);
    assert_eq!(count(3), 1, "{:?}", client.seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_blackholed_for_good_are_rebuilt_without_a_restart() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = Proxy::start(redis.addr()).await;
    let a = wake_node(&redis.url(), "a", "f2").await;
    let b = wake_node(&proxy.url(), "b", "f2").await;
    a.publish(&sid("s"), &[ev(1)]).await.unwrap();
    let (mut client, mut stream) = reader(&b, "s").await;
    assert_eq!(client.seen, vec![1]);

    // Both of B's links now lead nowhere, for good; a new connection would work.
    assert_eq!(proxy.blackhole_open_connections(), 2);
    let took = publish_until_stored(&b, "s", 2, Duration::from_secs(10)).await;
    eprintln!("B publishes again {took:?} after its links were blackholed");
    a.publish(&sid("s"), &[ev(3)]).await.unwrap();
    let delivered = eventually(Duration::from_secs(10), async || {
        // A wake per try: one published before B's subscription was rebuilt is lost.
        let _ = a.publish(&sid("other"), &[ev(0)]).await;
        sees(&mut client, &mut stream, 3, Duration::from_millis(200)).await
    })
    .await;
    assert!(delivered, "B's subscription came back: {:?}", client.seen);
    a.publish(&sid("s"), &[ev(4)]).await.unwrap();
    assert!(sees(&mut client, &mut stream, 4, Duration::from_secs(5)).await);
    assert_eq!(client.seen, vec![1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_recovers_its_subscription_after_a_five_second_outage() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = Proxy::start(redis.addr()).await;
    let a = wake_node(&redis.url(), "a", "f3").await;
    let b = wake_node(&proxy.url(), "b", "f3").await;
    let (mut client, mut stream) = reader(&b, "s").await;

    proxy.set_refuse(true);
    proxy.cut();
    // Five seconds in which B is asked nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.set_refuse(false);
    assert!(
        eventually(Duration::from_secs(10), async || { b.status().up }).await,
        "B is up again by itself"
    );
    let delivered = eventually(Duration::from_secs(10), async || {
        a.publish(&sid("s"), &[ev(1)]).await.unwrap();
        sees(&mut client, &mut stream, 1, Duration::from_millis(300)).await
    })
    .await;
    assert!(delivered, "a wake reaches B after the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_is_found_by_the_probe_and_rebuilt() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = wake_node(&redis.url(), "a", "f4").await;
    let b = wake_node(&redis.url(), "b", "f4").await;
    let (mut client, mut stream) = reader(&b, "s").await;

    // The link stays up and answers PING, but no longer carries B's channel.
    b.lose_subscription().await;
    a.publish(&sid("s"), &[ev(1)]).await.unwrap();
    assert!(
        sees(&mut client, &mut stream, 1, Duration::from_secs(10)).await,
        "the probe found the lost subscription and the catch-up brought the event"
    );
    a.publish(&sid("s"), &[ev(2)]).await.unwrap();
    assert!(
        sees(&mut client, &mut stream, 2, Duration::from_secs(5)).await,
        "wakes arrive again"
    );
    assert_eq!(client.seen, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_retried_with_the_same_idempotency_key_is_stored_once() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = Proxy::start(redis.addr()).await;
    let a = node(&proxy.url(), "a", "f5", Broker::builder()).await;
    let s = sid("s");
    a.publish(&s, &[ev(1)]).await.unwrap();
    let key = IdempotencyKey::new("order-7").unwrap();

    proxy.set(Fault::DropReplies);
    let lost = a.publish_once(&s, &key, &[ev(2)]).await;
    assert!(lost.is_err(), "the reply never came: {lost:?}");
    proxy.set(Fault::Pass);
    let mut retried = None;
    let ok = eventually(Duration::from_secs(10), async || {
        retried = a.publish_once(&s, &key, &[ev(2)]).await.ok();
        retried.is_some()
    })
    .await;
    assert!(ok, "the retry gets through");
    let retried = retried.unwrap();
    assert_eq!(retried.ids.len(), 1);
    assert_eq!(retried.ids[0].seq, 2, "the first attempt's id");

    let mut con = redis.con().await;
    let stored: usize = redis::cmd("XLEN")
        .arg("f5:{s:s}:log")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(stored, 2, "event 2 is in the log once");
    let (client, _stream) = reader(&a, "s").await;
    assert_eq!(client.seen, vec![1, 2]);
}

/// Runs a Redis command from the test's own connection.
async fn redis_cmd(redis: &RedisServer, args: &[&str]) -> redis::Value {
    let mut con = redis.con().await;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut con).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_of_both_links_recovers_by_itself() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = wake_node(&redis.url(), "a", "f6").await;
    let b = wake_node(&redis.url(), "b", "f6").await;
    let (mut client, mut stream) = reader(&b, "s").await;

    redis_cmd(&redis, &["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    redis_cmd(
        &redis,
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    )
    .await;
    publish_until_stored(&b, "s", 1, Duration::from_secs(10)).await;
    let delivered = eventually(Duration::from_secs(10), async || {
        a.publish(&sid("s"), &[ev(2)]).await.is_ok()
            && sees(&mut client, &mut stream, 2, Duration::from_millis(300)).await
    })
    .await;
    assert!(delivered, "B's subscription is back: {:?}", client.seen);
    assert_eq!(client.seen.first(), Some(&1));
    let mut sorted = client.seen.clone();
    sorted.dedup();
    assert_eq!(sorted, client.seen, "no duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pause_fails_calls_within_the_deadline_then_service_resumes() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "f7", Broker::builder()).await;
    a.publish(&sid("s"), &[ev(1)]).await.unwrap();

    // Paused for longer than the deadline; the pause ends by itself (a new connection could
    // not even send UNPAUSE).
    redis_cmd(&redis, &["CLIENT", "PAUSE", "4000", "ALL"]).await;
    let started = Instant::now();
    let err = a.publish(&sid("s"), &[ev(2)]).await.unwrap_err();
    assert_within_deadline("a publish to a paused Redis", started.elapsed());
    assert!(matches!(err, BackplaneError::Unavailable(_)), "{err:?}");
    publish_until_stored(&a, "s", 3, Duration::from_secs(10)).await;
    let (client, _stream) = reader(&a, "s").await;
    // Event 2 timed out at the caller, which was told it may or may not be stored: a paused
    // Redis runs it once unpaused.
    assert!(
        client.seen == vec![1, 3] || client.seen == vec![1, 2, 3],
        "{:?}",
        client.seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_reloads_the_scripts() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "f8", Broker::builder()).await;
    let b = node(&redis.url(), "b", "f8", Broker::builder()).await;
    a.publish(&sid("s"), &[ev(1)]).await.unwrap();
    redis_cmd(&redis, &["SCRIPT", "FLUSH"]).await;
    a.publish(&sid("s"), &[ev(2)]).await.unwrap();
    let (client, _stream) = reader(&b, "s").await;
    assert_eq!(client.seen, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_while_connected_resyncs_in_band() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "f9", Broker::builder()).await;
    let b = node(&redis.url(), "b", "f9", Broker::builder()).await;
    a.publish(&sid("s"), &[ev(1)]).await.unwrap();
    let (mut client, mut stream) = reader(&b, "s").await;
    redis_cmd(&redis, &["FLUSHALL"]).await;
    a.publish(&sid("s"), &[ev(2)]).await.unwrap();
    assert!(sees(&mut client, &mut stream, 2, Duration::from_secs(10)).await);
    assert_eq!(client.history, vec![Some(1), None, Some(2)]);
    assert_eq!(client.resyncs[0].0, "epoch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_redis_resyncs_and_publishing_resumes() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "f10", Broker::builder()).await;
    let b = node(&redis.url(), "b", "f10", Broker::builder()).await;
    a.publish(&sid("s"), &[ev(1)]).await.unwrap();
    let (mut client, mut stream) = reader(&b, "s").await;

    redis.kill().await;
    let started = Instant::now();
    assert!(a.publish(&sid("s"), &[ev(2)]).await.is_err());
    assert_within_deadline("a publish to a dead Redis", started.elapsed());
    redis.restart().await;
    let took = publish_until_stored(&a, "s", 3, Duration::from_secs(10)).await;
    eprintln!("publishing resumed {took:?} after redis-server came back");
    assert!(sees(&mut client, &mut stream, 3, Duration::from_secs(10)).await);
    assert_eq!(
        client.history,
        vec![Some(1), None, Some(3)],
        "Redis came back empty: a resync, never a silent renumbering"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_during_an_outage_is_served_from_the_ring() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = Proxy::start(redis.addr()).await;
    let a = node(&proxy.url(), "a", "f11", Broker::builder()).await;
    let s = sid("s");
    a.publish(&s, &[ev(1)]).await.unwrap();
    let (mut client, stream) = reader(&a, "s").await;
    drop(stream);
    a.publish(&s, &[ev(2), ev(3)]).await.unwrap();

    proxy.set_refuse(true);
    proxy.cut();
    let mut stream = a
        .connect(&s, client.opts())
        .await
        .expect("the ring holds everything after the client's id");
    client
        .read(&mut stream, Duration::from_secs(5), |c| c.seen.len() == 3)
        .await;
    assert_eq!(client.seen, vec![1, 2, 3]);
    let unknown = a.connect(&sid("elsewhere"), Default::default()).await;
    assert!(
        matches!(unknown, Err(BackplaneError::Unavailable(_))),
        "a session this node does not hold needs Redis"
    );
}
