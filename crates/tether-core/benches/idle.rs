//! Idle connections at scale: the broker's own memory per connection (bytes allocated while
//! opening and parking N idle streams, counted by a global allocator) and the CPU cost of
//! their heartbeats (process CPU time over a window with a short keepalive interval).
//!
//! Run with: `cargo bench -p tether-core --bench idle -- [CONNECTIONS] [SECONDS]`
#![allow(missing_docs)]

use std::alloc::System;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tether_core::{Broker, ConnectOptions, SessionId};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live_bytes(region: &Region<'_, System>) -> isize {
    let c = region.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let secs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let broker = Broker::builder()
            .keepalive_interval(Duration::from_secs(1))
            .client_timeout(Duration::from_secs(3600))
            .start().expect("valid config");
        let sessions: Vec<_> = (0..n)
            .map(|i| SessionId::new(&format!("idle-{i:06}")).unwrap())
            .collect();
        let heartbeats = Arc::new(AtomicU64::new(0));

        // Baseline: the sessions exist (the registry's cost is per session, not per connection).
        for s in &sessions {
            broker.publish(s, &0).unwrap();
        }
        tokio::task::yield_now().await;
        let region = Region::new(GLOBAL);
        let mut streams = Vec::with_capacity(n);
        for s in &sessions {
            let mut st = broker.connect(s, ConnectOptions::resume(broker.head(s).unwrap().to_string())).unwrap();
            let _ = st.next().await; // retry:
            streams.push(st);
        }
        let vec_bytes = (n * std::mem::size_of::<tether_core::EventStream>()) as isize;
        // Park each stream once so its heartbeat timer exists, as it does for a real idle client.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        for st in &mut streams {
            let _ = futures_core::Stream::poll_next(std::pin::Pin::new(st), &mut cx);
        }
        let per_conn = (live_bytes(&region) - vec_bytes) as f64 / n as f64
            + std::mem::size_of::<tether_core::EventStream>() as f64;
        println!(
            "broker state per idle connection: {per_conn:.0} bytes ({} connections; EventStream itself {} bytes)",
            n,
            std::mem::size_of::<tether_core::EventStream>()
        );

        // Heartbeats: one task drives every stream, as a server's connection tasks would.
        let mut tasks = Vec::with_capacity(n);
        for mut st in streams {
            let hb = heartbeats.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(chunk) = st.next().await {
                    if chunk.starts_with(b":") {
                        hb.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (c0, h0, t0) = (cpu_seconds(), heartbeats.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (c1, h1, t1) = (cpu_seconds(), heartbeats.load(Ordering::Relaxed), Instant::now());
        let wall = (t1 - t0).as_secs_f64();
        let hbs = h1 - h0;
        println!(
            "heartbeats: {hbs} in {wall:.1} s ({:.0}/s, expected {n}/s), CPU {:.2} s = {:.0}% of one core, {:.2} µs CPU per heartbeat",
            hbs as f64 / wall,
            c1 - c0,
            (c1 - c0) / wall * 100.0,
            (c1 - c0) * 1e6 / hbs.max(1) as f64
        );
        for t in tasks {
            t.abort();
        }
    });
}
