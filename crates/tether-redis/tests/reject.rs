//! The Reject policy across nodes: a session's connection holds a lease in Redis that its
//! node refreshes; a client on another node is refused while it lives, the same client
//! instance replaces its own lease at once, and a crashed node's lease expires.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tether_core::{BackplaneError, Broker, ConnectError, ConnectOptions, ConnectionPolicy};
use tether_redis::RedisBackplane;

async fn reject_node(url: &str, name: &str, prefix: &str) -> RedisBackplane {
    node(
        url,
        name,
        prefix,
        Broker::builder().connection_policy(ConnectionPolicy::Reject),
    )
    .await
}

fn client(id: &str, who: &str) -> ConnectOptions {
    ConnectOptions::default().client_id(id).identity(who)
}

fn is_conflict<T>(r: &Result<T, BackplaneError>) -> bool {
    matches!(r, Err(BackplaneError::Connect(ConnectError::Conflict)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_holds_across_nodes_and_the_same_instance_replaces_itself() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = reject_node(&redis.url(), "a", "r1").await;
    let b = reject_node(&redis.url(), "b", "r1").await;
    let s = sid("s");
    let _x = a.connect(&s, client("x", "alice")).await.unwrap();
    assert!(is_conflict(&b.connect(&s, client("y", "bob")).await));
    assert!(
        is_conflict(&b.connect(&s, client("x", "mallory")).await),
        "the client id alone is not the instance"
    );
    assert!(
        is_conflict(&b.connect(&s, ConnectOptions::default()).await),
        "a client without an id matches no lease"
    );
    assert!(
        b.connect(&s, client("x", "alice")).await.is_ok(),
        "the same instance replaces its own lease at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_across_nodes_with_a_crashed_owner() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = reject_node(&redis.url(), "a", "r2").await;
    let b = reject_node(&redis.url(), "b", "r2").await;
    let s = sid("s");
    let x = a.connect(&s, client("x", "alice")).await.unwrap();
    // A crashes: it stops refreshing and never releases (its stream object outlives it).
    drop(a);
    assert!(
        is_conflict(&b.connect(&s, client("y", "bob")).await),
        "the lease still lives"
    );
    let started = Instant::now();
    let mut taken = false;
    while started.elapsed() < Duration::from_secs(10) {
        if b.connect(&s, client("y", "bob")).await.is_ok() {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(taken, "the crashed node's lease expired");
    // Three head checks of 500 ms: the lease outlived a refresh or two, not much more.
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    drop(x);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_connection_frees_the_session_for_another_node() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    // Head checks a minute apart (leases of three minutes): only the release of an ended
    // connection can free the session in time.
    let slow = |name| {
        let broker = broker(Broker::builder().connection_policy(ConnectionPolicy::Reject));
        let cfg = config(&redis.url(), name, "r3").head_check_interval(Duration::from_secs(60));
        RedisBackplane::start(broker, cfg)
    };
    let a = slow("a").await.unwrap();
    let b = slow("b").await.unwrap();
    let s = sid("s");
    let x = a.connect(&s, client("x", "alice")).await.unwrap();
    drop(x);
    let started = Instant::now();
    let mut taken = false;
    while started.elapsed() < Duration::from_secs(5) {
        if b.connect(&s, client("y", "bob")).await.is_ok() {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(taken, "the lease went with the connection");
    eprintln!(
        "another node's client got the session {:?} after the first left",
        started.elapsed()
    );
    assert!(
        is_conflict(&a.connect(&s, client("x", "alice")).await),
        "and now B's client holds it"
    );
}
