//! A model test of the backplane: random publishes on random nodes, random reconnects on
//! random nodes, dropped wakes and Redis flushes, checked against a plain model of what a
//! client may see: every event once and in order within an epoch, a jump only right after a
//! `tether.resync` with reason `epoch`, a resync only after a flush, and nothing missing at
//! the end of each read.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tether_core::{Broker, EventStream};
use tether_redis::RedisBackplane;

const NODES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Publish { node: usize, count: u64 },
    Read { node: usize },
    Reconnect { node: usize },
    Flush,
    DropWake { node: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..NODES;
    prop_oneof![
        5 => (node.clone(), 1..=3u64).prop_map(|(node, count)| Op::Publish { node, count }),
        3 => node.clone().prop_map(|node| Op::Read { node }),
        2 => node.clone().prop_map(|node| Op::Reconnect { node }),
        1 => Just(Op::Flush),
        1 => node.prop_map(|node| Op::DropWake { node }),
    ]
}

/// The plain model: what has been published in the current epoch, and where epochs began.
#[derive(Default)]
struct Model {
    next: u64,
    /// Event numbers of the current epoch (nothing is trimmed at these bounds).
    epoch_log: Vec<u64>,
    /// The first event number of each epoch.
    epoch_starts: HashSet<u64>,
    flushes: usize,
}

async fn connect(node: &RedisBackplane, client: &mut Client) -> EventStream {
    let s = sid("m");
    node.connect(&s, client.opts()).await.expect("connect")
}

async fn read_all(model: &Model, client: &mut Client, stream: &mut EventStream) {
    let last = model.epoch_log.last().copied();
    let wait = Duration::from_secs(3);
    match last {
        Some(last) => {
            client
                .read(stream, wait, |c| c.seen.last() == Some(&last))
                .await;
            assert_eq!(
                client.seen.last(),
                Some(&last),
                "nothing missing at the end"
            );
        }
        None => {
            client.settle(stream, Duration::from_millis(300)).await;
        }
    }
}

fn check(model: &Model, client: &Client) {
    let mut seen = HashSet::new();
    let mut prev: Option<u64> = None;
    let mut after_resync = true;
    for item in &client.history {
        match item {
            None => {
                prev = None;
                after_resync = true;
            }
            Some(n) => {
                assert!(seen.insert(*n), "event {n} twice: {:?}", client.history);
                match prev {
                    Some(p) => assert_eq!(*n, p + 1, "a silent jump: {:?}", client.history),
                    None if after_resync && client.history.first() != Some(item) => {
                        assert!(
                            model.epoch_starts.contains(n),
                            "after a resync the stream starts where an epoch starts: {:?}",
                            client.history
                        );
                    }
                    None => {}
                }
                prev = Some(*n);
                after_resync = false;
            }
        }
    }
    // A client whose stream resynced into an empty epoch still holds its old id (there is no
    // event to carry a new one), so its next connect reports the same loss again: count
    // losses by the id they were reported for.
    let losses: HashSet<String> = client
        .resyncs
        .iter()
        .map(|(_, v)| v["lastEventId"].to_string())
        .collect();
    assert!(
        losses.len() <= model.flushes,
        "a resync without lost data: {:?}",
        client.resyncs
    );
    for (reason, _) in &client.resyncs {
        assert_eq!(reason, "epoch");
    }
}

async fn run_case(redis: &RedisServer, case: u64, ops: Vec<Op>) {
    let prefix = format!("m{case}");
    let mut nodes = Vec::new();
    for i in 0..NODES {
        nodes.push(node(&redis.url(), &format!("n{i}"), &prefix, Broker::builder()).await);
    }
    let s = sid("m");
    let mut model = Model::default();
    let mut client = Client::default();
    let mut stream: Option<EventStream> = None;
    for op in ops {
        match op {
            Op::Publish { node, count } => {
                let events: Vec<_> = (0..count).map(|i| ev(model.next + 1 + i)).collect();
                let ids = nodes[node].publish(&s, &events).await.expect("publish");
                for (i, id) in ids.iter().enumerate() {
                    let n = model.next + 1 + i as u64;
                    if id.seq == 1 {
                        model.epoch_log.clear();
                        model.epoch_starts.insert(n);
                    }
                    model.epoch_log.push(n);
                }
                model.next += count;
            }
            Op::Read { node } => {
                let st = match stream.as_mut() {
                    Some(st) => st,
                    None => stream.insert(connect(&nodes[node], &mut client).await),
                };
                read_all(&model, &mut client, st).await;
                check(&model, &client);
            }
            Op::Reconnect { node } => {
                drop(stream.take());
                stream = Some(connect(&nodes[node], &mut client).await);
            }
            Op::Flush => {
                let mut con = redis.con().await;
                let _: () = redis::cmd("FLUSHDB").query_async(&mut con).await.unwrap();
                model.flushes += 1;
                model.epoch_log.clear();
            }
            Op::DropWake { node } => nodes[node].drop_next_wakes(1),
        }
    }
    let mut st = match stream {
        Some(st) => st,
        None => connect(&nodes[0], &mut client).await,
    };
    read_all(&model, &mut client, &mut st).await;
    check(&model, &client);
}

#[test]
fn backplane_against_a_model() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(redis) = rt.block_on(RedisServer::start()) else {
        return;
    };
    let cases = std::env::var("TETHER_REDIS_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&proptest::collection::vec(op(), 4..24), |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rt.block_on(run_case(&redis, n, ops));
            Ok(())
        })
        .unwrap();
}
