//! Criterion micro-benchmarks of the broker core: publishing, resuming from the middle of a
//! full ring, waking one connection among 10,000 idle ones, and publishing with 100,000
//! sessions while the rings are over the broker-wide budget.
#![allow(missing_docs)]

use std::hint::black_box;
use std::task::{Context, Poll};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_core::Stream;
use tether_core::{Broker, ConnectOptions, Event, EventStream, SessionId};

/// A 200-byte AG-UI-like event.
fn agui_event() -> String {
    let s = r#"{"type":"TEXT_MESSAGE_CONTENT","messageId":"msg-7f3a9c21","delta":"DELTA","timestamp":1764163200000}"#;
    let pad = 200 - (s.len() - "DELTA".len());
    s.replace("DELTA", &"x".repeat(pad))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn poll_once(stream: &mut EventStream) -> Poll<Option<bytes::Bytes>> {
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    std::pin::Pin::new(stream).poll_next(&mut cx)
}

fn publish(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let broker = Broker::builder().start().expect("valid config");
    let session = SessionId::new("bench").unwrap();
    let data = agui_event();
    assert_eq!(data.len(), 200);
    c.bench_function("publish_200B_event", |b| {
        b.iter(|| {
            broker
                .publish_event(&session, Event::raw(black_box(data.clone())))
                .unwrap()
        })
    });
    let value: serde_json::Value = serde_json::from_str(&data).unwrap();
    c.bench_function("publish_200B_serialize", |b| {
        b.iter(|| broker.publish(&session, black_box(&value)).unwrap())
    });
}

fn resume(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let broker = Broker::builder()
        .ring_max_events(1024)
        .start()
        .expect("valid config");
    let session = SessionId::new("resume").unwrap();
    let data = agui_event();
    let ids: Vec<_> = (0..1024)
        .map(|_| {
            broker
                .publish_event(&session, Event::raw(data.clone()))
                .unwrap()
        })
        .collect();
    let middle = ids[511].to_string();
    c.bench_function("resume_512_of_1024", |b| {
        b.iter(|| {
            let mut stream = broker
                .connect(&session, ConnectOptions::resume(middle.clone()))
                .unwrap();
            let mut bytes = 0;
            while let Poll::Ready(Some(chunk)) = poll_once(&mut stream) {
                bytes += chunk.len();
            }
            black_box(bytes)
        })
    });
}

fn wake_one_of_10k(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let broker = Broker::builder().start().expect("valid config");
    let sessions: Vec<_> = (0..10_000)
        .map(|i| SessionId::new(&format!("idle-{i}")).unwrap())
        .collect();
    let mut streams: Vec<_> = sessions
        .iter()
        .map(|s| {
            let mut st = broker.connect(s, ConnectOptions::default()).unwrap();
            while let Poll::Ready(Some(_)) = poll_once(&mut st) {}
            st
        })
        .collect();
    let data = agui_event();
    let mut k = 0usize;
    c.bench_function("wake_one_of_10k_idle", |b| {
        b.iter(|| {
            k = (k + 7919) % sessions.len();
            broker
                .publish_event(&sessions[k], Event::raw(data.clone()))
                .unwrap();
            match poll_once(&mut streams[k]) {
                Poll::Ready(Some(chunk)) => black_box(chunk),
                other => panic!("expected the event, got {other:?}"),
            }
        })
    });
}

/// Publishing among 100,000 sessions of one event each, in budget and over it: the clock hand
/// bounds the work of an over-budget publish, so it stays close to the in-budget cost (the
/// budget is met by evicting idle sessions' history, not by walking every session).
fn publish_with_100k_sessions(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let data = agui_event();
    for (name, budget) in [
        ("publish_100k_sessions_in_budget", 1usize << 40),
        // 100,000 events of about 260 bytes do not fit 8 MiB.
        ("publish_100k_sessions_over_budget", 8 << 20),
    ] {
        let broker = Broker::builder()
            .total_ring_bytes(budget)
            .start()
            .expect("valid config");
        let sessions: Vec<SessionId> = (0..100_000)
            .map(|i| SessionId::new(&format!("s{i}")).unwrap())
            .collect();
        for s in &sessions {
            broker.publish_event(s, Event::raw(data.clone())).unwrap();
        }
        let mut next = 0usize;
        c.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % sessions.len();
                broker
                    .publish_event(&sessions[next], Event::raw(black_box(data.clone())))
                    .unwrap()
            })
        });
    }
}

criterion_group!(
    benches,
    publish,
    resume,
    wake_one_of_10k,
    publish_with_100k_sessions
);
criterion_main!(benches);
