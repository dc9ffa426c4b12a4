//! In-process fan-out through the Redis backplane beside the in-memory broker, in one run:
//! CPU time per delivered event (this process plus redis-server, from `/proc/PID/stat`),
//! events/s delivered, and publish-to-receive latency (p50, p99).
//!
//! Run with: `cargo bench -p tether-redis --bench backplane` (needs `redis-server`).
//! Environment: `RATE` (events/s offered, default 20000), `SESSIONS` (default 100),
//! `SECS` (measured seconds, default 5), `ONLY` (comma-separated variants to run).
//!
//! Variants: `memory` (the broker alone), `redis-1` (one node: it publishes and holds the
//! connections, so no wakes), `redis-2` (two nodes in this process: publishes on A, streams on
//! B, every event through a wake). The readers run in the same process and their CPU is
//! counted too, for every variant alike.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tether_core::{Broker, ConnectOptions, Event, EventStream, SessionId};
use tether_redis::{RedisBackplane, RedisConfig};

fn cpu_micros(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(end) = stat.rfind(')') else {
        return 0;
    };
    let mut f = stat[end + 1..].split_whitespace();
    let utime: u64 = f.nth(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    // CLK_TCK is 100 on Linux.
    (utime + stime) * 10_000
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone)]
enum Pub {
    Memory(Broker),
    Redis(RedisBackplane),
}

impl Pub {
    async fn publish(&self, s: &SessionId, e: Event) {
        match self {
            Pub::Memory(b) => {
                b.publish_event(s, e).expect("publish");
            }
            Pub::Redis(r) => {
                r.publish(s, &[e]).await.expect("publish");
            }
        }
    }
}

struct Stats {
    delivered: AtomicU64,
    latencies: std::sync::Mutex<Vec<u64>>,
}

async fn read(mut stream: EventStream, origin: Instant, stats: Arc<Stats>, until: Instant) {
    let mut local = Vec::new();
    while Instant::now() < until {
        let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await
        else {
            continue;
        };
        let now = origin.elapsed().as_micros() as u64;
        let text = std::str::from_utf8(&chunk).unwrap_or("");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("data: {\"t\":") {
                let t: u64 = rest.trim_end_matches('}').parse().unwrap_or(now);
                local.push(now.saturating_sub(t));
                stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    stats.latencies.lock().unwrap().extend(local);
}

async fn run(name: &str, publisher: Pub, streams: Vec<EventStream>, redis_pid: Option<u32>) {
    if std::env::var("ONLY").is_ok_and(|only| !only.split(',').any(|o| o == name)) {
        return;
    }
    let rate = env("RATE", 20_000);
    let secs = env("SECS", 5);
    let sessions = streams.len() as u64;
    let origin = Instant::now();
    let warm = Duration::from_secs(1);
    let until = origin + warm + Duration::from_secs(secs);
    let stats = Arc::new(Stats {
        delivered: AtomicU64::new(0),
        latencies: std::sync::Mutex::new(Vec::new()),
    });
    let mut tasks = Vec::new();
    for stream in streams {
        tasks.push(tokio::spawn(read(stream, origin, stats.clone(), until)));
    }
    // One publisher task per session, each at rate / sessions.
    let per = Duration::from_secs_f64(sessions as f64 / rate as f64);
    for i in 0..sessions {
        let p = publisher.clone();
        let s = SessionId::new(&format!("b{i}")).unwrap();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(per);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while Instant::now() < until {
                tick.tick().await;
                let t = origin.elapsed().as_micros() as u64;
                p.publish(&s, Event::raw(format!("{{\"t\":{t}}}"))).await;
            }
        }));
    }
    tokio::time::sleep(warm).await;
    stats.latencies.lock().unwrap().clear();
    let d0 = stats.delivered.load(Ordering::Relaxed);
    let me = std::process::id();
    let (p0, r0) = (cpu_micros(me), redis_pid.map_or(0, cpu_micros));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (p1, r1) = (cpu_micros(me), redis_pid.map_or(0, cpu_micros));
    let d1 = stats.delivered.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let delivered = (d1 - d0).max(1);
    let mut lat = std::mem::take(&mut *stats.latencies.lock().unwrap());
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{name:8} {:>9.0} events/s  {:>6.2} us CPU/event (process {:.2}, redis-server {:.2})  p50 {:>6} us  p99 {:>6} us",
        delivered as f64 / elapsed,
        ((p1 - p0) + (r1 - r0)) as f64 / delivered as f64,
        (p1 - p0) as f64 / delivered as f64,
        (r1 - r0) as f64 / delivered as f64,
        pct(0.50),
        pct(0.99),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sessions = env("SESSIONS", 100);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut redis = match std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipping: redis-server cannot start ({e})");
            return;
        }
    };
    let url = format!("redis://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ready, "redis-server did not start");
    let redis_pid = Some(redis.id());
    let builder = || Broker::builder().without_heartbeats();
    let ids = |_: ()| (0..sessions).map(|i| SessionId::new(&format!("b{i}")).unwrap());
    println!(
        "rate {} events/s offered over {sessions} sessions, {} s measured",
        env("RATE", 20_000),
        env("SECS", 5)
    );

    {
        let broker = builder().start().expect("valid config");
        let streams = ids(())
            .map(|s| broker.connect(&s, ConnectOptions::default()).unwrap())
            .collect();
        run("memory", Pub::Memory(broker.clone()), streams, None).await;
    }
    {
        let a = RedisBackplane::start(
            builder().start().expect("valid config"),
            RedisConfig::new(&url).node_id("a").prefix("b1"),
        )
        .await
        .unwrap();
        let mut streams = Vec::new();
        for s in ids(()) {
            streams.push(a.connect(&s, ConnectOptions::default()).await.unwrap());
        }
        run("redis-1", Pub::Redis(a.clone()), streams, redis_pid).await;
    }
    {
        let a = RedisBackplane::start(
            builder().start().expect("valid config"),
            RedisConfig::new(&url).node_id("a").prefix("b2"),
        )
        .await
        .unwrap();
        let b = RedisBackplane::start(
            builder().start().expect("valid config"),
            RedisConfig::new(&url).node_id("b").prefix("b2"),
        )
        .await
        .unwrap();
        let mut streams = Vec::new();
        for s in ids(()) {
            streams.push(b.connect(&s, ConnectOptions::default()).await.unwrap());
        }
        run("redis-2", Pub::Redis(a.clone()), streams, redis_pid).await;
    }
    let _ = redis.kill();
    let _ = redis.wait();
}
