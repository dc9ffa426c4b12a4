//! Lost history across nodes is never silent: an evicted id gets `tether.resync` (reason
//! `evicted`), and data Redis lost (`FLUSHDB`) gets reason `epoch`, in-band for connected
//! clients and on reconnect, while publishing goes on.

mod common;

use std::time::Duration;

use common::*;
use redis::AsyncCommands;
use tether_core::Broker;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_id_across_nodes_gets_a_resync() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let small = || Broker::builder().ring_max_events(5);
    let a = node(&redis.url(), "a", "r1", small()).await;
    let b = node(&redis.url(), "b", "r1", small()).await;
    let s = sid("s1");
    for n in 1..=3 {
        a.publish(&s, &[ev(n)]).await.unwrap();
    }
    let mut client = Client::default();
    let mut stream = b.connect(&s, client.opts()).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 3).await;
    drop(stream);
    for n in 4..=12 {
        a.publish(&s, &[ev(n)]).await.unwrap();
    }
    // The log holds 8..=12 now; the client's id 3 is gone on every node.
    let mut con = redis.con().await;
    let len: u64 = con.xlen("r1:{s:s1}:log").await.unwrap();
    assert_eq!(len, 5);
    for on in [&b, &a] {
        let mut c = Client {
            last_id: client.last_id.clone(),
            ..Client::default()
        };
        let mut stream = on.connect(&s, c.opts()).await.unwrap();
        c.read(&mut stream, WAIT, |c| c.seen.len() == 5).await;
        assert_eq!(c.resyncs.len(), 1, "{:?}", c.resyncs);
        assert_eq!(c.resyncs[0].0, "evicted");
        assert_eq!(c.seen, (8..=12).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushdb_while_connected_resyncs_in_band_and_publishing_goes_on() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "r2", Broker::builder()).await;
    let b = node(&redis.url(), "b", "r2", Broker::builder()).await;
    let s = sid("s1");
    for n in 1..=3 {
        a.publish(&s, &[ev(n)]).await.unwrap();
    }
    let mut client = Client::default();
    let mut stream = b.connect(&s, client.opts()).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 3).await;
    let old_id = client.last_id.clone().unwrap();

    let mut con = redis.con().await;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut con).await.unwrap();

    // Nobody publishes: the head check notices the missing meta and starts a new epoch.
    let ended = client
        .read(&mut stream, WAIT, |c| !c.resyncs.is_empty())
        .await;
    assert!(!ended, "the stream stays open");
    assert_eq!(client.resyncs.len(), 1, "{:?}", client.resyncs);
    assert_eq!(client.resyncs[0].0, "epoch");

    // Publishing goes on, on both nodes, in the new epoch.
    a.publish(&s, &[ev(4)]).await.unwrap();
    b.publish(&s, &[ev(5)]).await.unwrap();
    a.publish(&s, &[ev(6)]).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 3).await;
    assert_eq!(client.seen, vec![4, 5, 6]);
    assert_eq!(client.resyncs.len(), 1);
    let new_id = client.last_id.clone().unwrap();
    assert_ne!(new_id.split('-').next(), old_id.split('-').next());
    assert!(new_id.ends_with("-3"), "{new_id}");
    drop(stream);

    // A client still holding a pre-flush id gets reason `epoch` on either node.
    for on in [&a, &b] {
        let mut c = Client {
            last_id: Some(old_id.clone()),
            ..Client::default()
        };
        let mut stream = on.connect(&s, c.opts()).await.unwrap();
        c.read(&mut stream, WAIT, |c| c.seen.len() == 3).await;
        assert_eq!(c.resyncs.len(), 1, "{:?}", c.resyncs);
        assert_eq!(c.resyncs[0].0, "epoch");
        assert_eq!(c.seen, vec![4, 5, 6]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushdb_then_publish_on_the_other_node_resyncs_the_connected_client() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "r3", Broker::builder()).await;
    let b = node(&redis.url(), "b", "r3", Broker::builder()).await;
    let s = sid("s1");
    a.publish(&s, &[ev(1), ev(2)]).await.unwrap();
    let mut client = Client::default();
    let mut stream = b.connect(&s, client.opts()).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 2).await;
    let mut con = redis.con().await;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut con).await.unwrap();
    // A has seen epoch E up to 2; its next append finds no meta and starts a new epoch.
    let ids = a.publish(&s, &[ev(3)]).await.unwrap();
    assert_eq!(ids[0].seq, 1);
    client.read(&mut stream, WAIT, |c| c.seen == [3]).await;
    assert_eq!(client.resyncs.len(), 1, "{:?}", client.resyncs);
    assert_eq!(client.resyncs[0].0, "epoch");
    assert_eq!(client.seen, vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_below_what_a_node_saw_starts_a_new_epoch() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "r4", Broker::builder()).await;
    let s = sid("s1");
    let first = a.publish(&s, &[ev(1), ev(2), ev(3)]).await.unwrap();
    let mut client = Client::default();
    let mut stream = a.connect(&s, client.opts()).await.unwrap();
    client.read(&mut stream, WAIT, |c| c.seen.len() == 3).await;
    // A failover that lost writes: Redis's head goes back while the epoch stays.
    let mut con = redis.con().await;
    let _: () = con.hset("r4:{s:s1}:meta", "s", 1).await.unwrap();
    let ids = a.publish(&s, &[ev(4)]).await.unwrap();
    assert_eq!(ids[0].seq, 1, "a new epoch, not a renumbered seq 2");
    assert_ne!(ids[0].epoch, first[0].epoch);
    client.read(&mut stream, WAIT, |c| c.seen == [4]).await;
    assert_eq!(client.resyncs.len(), 1, "{:?}", client.resyncs);
    assert_eq!(client.resyncs[0].0, "epoch");
    assert_eq!(client.seen, vec![4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_meta_or_log_is_never_an_exact_resume() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "r5", Broker::builder()).await;
    let b = node(&redis.url(), "b", "r5", Broker::builder()).await;
    let s = sid("s1");
    let mut con = redis.con().await;
    let first = a.publish(&s, &[ev(1), ev(2)]).await.unwrap();

    // The meta is evicted, the log survives: the next append starts a new epoch (no XADD
    // error about ids at or below the stream's top).
    let _: () = con.del("r5:{s:s1}:meta").await.unwrap();
    let ids = a.publish(&s, &[ev(3)]).await.unwrap();
    assert_eq!(ids[0].seq, 1);
    assert_ne!(ids[0].epoch, first[0].epoch);
    let len: u64 = con.xlen("r5:{s:s1}:log").await.unwrap();
    assert_eq!(len, 1, "the old log went with the old epoch");

    // The log is evicted, the meta survives: a client resuming on another node is told.
    a.publish(&s, &[ev(4)]).await.unwrap();
    let _: () = con.del("r5:{s:s1}:log").await.unwrap();
    let mut c = Client {
        last_id: Some(ids[0].to_string()),
        ..Client::default()
    };
    let mut stream = b.connect(&s, c.opts()).await.unwrap();
    a.publish(&s, &[ev(5)]).await.unwrap();
    c.read(&mut stream, WAIT, |c| c.seen == [5]).await;
    assert_eq!(c.resyncs.len(), 1, "{:?}", c.resyncs);
    assert_eq!(c.resyncs[0].0, "evicted");
    assert_eq!(c.seen, vec![5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_between_publishes_is_transparent() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url(), "a", "r6", Broker::builder()).await;
    let s = sid("s1");
    a.publish(&s, &[ev(1)]).await.unwrap();
    let mut con = redis.con().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    let ids = a.publish(&s, &[ev(2)]).await.unwrap();
    assert_eq!(ids[0].seq, 2);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut c = Client::default();
    let mut stream = a.connect(&s, c.opts()).await.unwrap();
    c.read(&mut stream, WAIT, |c| c.seen.len() == 2).await;
    assert_eq!(c.seen, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_evicted_alone_starts_its_byte_count_again() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    // Frames of these events are 34 or 35 bytes: three fit in 120 bytes, four do not.
    let a = tether_redis::RedisBackplane::start(
        broker(Broker::builder()),
        config(&redis.url(), "a", "r7").log_max_bytes(120),
    )
    .await
    .unwrap();
    let s = sid("s1");
    let mut con = redis.con().await;
    for n in 1..=3 {
        a.publish(&s, &[ev(n)]).await.unwrap();
    }
    let len: u64 = con.xlen("r7:{s:s1}:log").await.unwrap();
    assert_eq!(len, 3);

    // The log goes, the meta with its byte count stays: the new log counts its own bytes,
    // so it keeps as many frames as the bound allows, not fewer.
    let _: () = con.del("r7:{s:s1}:log").await.unwrap();
    for n in 4..=6 {
        a.publish(&s, &[ev(n)]).await.unwrap();
    }
    let len: u64 = con.xlen("r7:{s:s1}:log").await.unwrap();
    assert_eq!(
        len, 3,
        "the new log was trimmed by the bytes of the lost one"
    );
}
