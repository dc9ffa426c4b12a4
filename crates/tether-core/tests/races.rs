//! Races at the core's edges, as loops of rounds on real threads with a fixed seed: connect
//! against an epoch switch, connect against drain, and the broker-wide byte total against
//! concurrent removals.
//!
//! Each test fails within its rounds when the guarantee it checks is broken; none asserts a
//! duration (the waits are deadlock detectors with generous bounds).
mod common;

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{FutureExt, StreamExt};
use tether_core::{Broker, ConnectOptions, Epoch, EventId, EventStream, frame};

/// xorshift64*: a tiny deterministic generator for spin delays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn spins(&mut self, max: u64) -> u64 {
        self.next() % max
    }
}

fn spin(n: u64) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

fn quiet_broker() -> Broker {
    // No driver and no heartbeats: streams are polled by hand, off any runtime.
    let (broker, _driver) = Broker::builder()
        .without_heartbeats()
        .build()
        .expect("valid config");
    broker
}

/// Everything the stream has ready now, without waiting.
fn read_ready(stream: &mut EventStream) -> (String, bool) {
    let mut text = String::new();
    loop {
        match stream.next().now_or_never() {
            Some(Some(b)) => text.push_str(std::str::from_utf8(&b).unwrap()),
            Some(None) => return (text, true),
            None => return (text, false),
        }
    }
}

fn frame_at(id: EventId) -> Bytes {
    frame::encode_event(Some(id), None, &id.seq.to_string())
}

#[test]
fn a_connect_racing_an_epoch_switch_never_skips_silently() {
    const ROUNDS: u64 = 5_000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let s = sid("epoch-race");
    let barrier = Barrier::new(2);
    for round in 0..ROUNDS {
        let broker = quiet_broker();
        let old = Epoch::from_u64(2 * round + 1);
        let new = Epoch::from_u64(2 * round + 2);
        for seq in 1..=5 {
            let id = EventId { epoch: old, seq };
            broker.append_at(&s, id, frame_at(id)).unwrap();
        }
        let (a, b) = (rng.spins(400), rng.spins(400));
        let stream = thread::scope(|scope| {
            scope.spawn(|| {
                barrier.wait();
                spin(a);
                for seq in 1..=8 {
                    let id = EventId { epoch: new, seq };
                    broker.append_at(&s, id, frame_at(id)).unwrap();
                }
            });
            let reader = scope.spawn(|| {
                barrier.wait();
                spin(b);
                broker
                    .connect(&s, ConnectOptions::resume(format!("{old}-5")))
                    .unwrap()
            });
            reader.join().unwrap()
        });
        let mut stream = stream;
        let (text, _) = read_ready(&mut stream);
        let frames = parse(&text);
        let resync = frames
            .iter()
            .position(|f| f.signal().as_deref() == Some("tether.resync"));
        let events: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.id.is_some() && f.data.is_some())
            .collect();
        let ids: Vec<String> = events.iter().map(|f| f.id.clone().unwrap()).collect();
        let expected: Vec<String> = (1..=8).map(|q| format!("{new}-{q}")).collect();
        assert_eq!(
            ids, expected,
            "round {round}: the new epoch in full after a resync: {frames:?}"
        );
        assert!(resync.is_some(), "round {round}: a resync: {frames:?}");
        assert_eq!(
            frames[resync.unwrap()].json().unwrap()["value"]["reason"],
            "epoch"
        );
    }
}

#[test]
fn a_connect_racing_drain_is_refused_or_drained() {
    const ROUNDS: usize = 3_000;
    const CONNECTS: usize = 24;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let sessions: Vec<_> = (0..CONNECTS).map(|i| sid(&format!("d{i}"))).collect();
    let barrier = Barrier::new(2);
    let mut refused = 0;
    for round in 0..ROUNDS {
        let broker = quiet_broker();
        let delay = rng.spins(20_000);
        let results = thread::scope(|scope| {
            scope.spawn(|| {
                barrier.wait();
                spin(delay);
                broker.drain(Duration::from_secs(1));
            });
            let connector = scope.spawn(|| {
                barrier.wait();
                sessions
                    .iter()
                    .map(|s| broker.connect(s, ConnectOptions::default()))
                    .collect::<Vec<_>>()
            });
            connector.join().unwrap()
        });
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Err(tether_core::ConnectError::Draining { .. }) => refused += 1,
                Err(e) => panic!("round {round}: {e}"),
                Ok(mut stream) => {
                    let (text, ended) = read_ready(&mut stream);
                    assert!(
                        ended,
                        "round {round}: connect {i} stayed live through the drain: {text:?}"
                    );
                    assert!(text.contains("tether.drain"), "round {round}: {text:?}");
                }
            }
        }
        assert_eq!(broker.connection_count(), 0);
    }
    assert!(refused > 0, "some connects came after the drain");
}

#[test]
fn the_byte_total_never_counts_bytes_a_ring_does_not_hold() {
    const ROUNDS: usize = 50;
    const PUBLISHES: usize = 2_000;
    let s = sid("bytes-race");
    for round in 0..ROUNDS {
        let broker = quiet_broker();
        let stop = AtomicBool::new(false);
        let max_seen = AtomicUsize::new(0);
        thread::scope(|scope| {
            let remover = scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    broker.remove_session(&s);
                    // Right after a removal subtracted a ring's bytes is when a total that
                    // was not yet given a publish's bytes would have wrapped.
                    max_seen.fetch_max(broker.health().ring_bytes, Ordering::Relaxed);
                }
            });
            for i in 0..PUBLISHES {
                broker.publish(&s, &i).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            remover.join().unwrap();
        });
        // One session of small events: never more than its ring, certainly not a wrapped
        // total.
        let max = max_seen.load(Ordering::Relaxed);
        assert!(max < 1 << 20, "round {round}: the total wrapped to {max}");
        broker.remove_session(&s);
        assert_eq!(broker.health().ring_bytes, 0, "round {round}");
    }
}
