//! Test support: a `redis-server` child per test, a connection-cutting TCP proxy, nodes on
//! one Redis, and an SSE client that checks what it receives.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tether_core::sse_parse::Parser;
use tether_core::{Broker, BrokerBuilder, ConnectOptions, Event, EventStream, SessionId};
use tether_redis::{RedisBackplane, RedisConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub fn sid(s: &str) -> SessionId {
    SessionId::new(s).unwrap()
}

/// A `redis-server` on a free loopback port, without persistence, killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// Starts one. `None` (with a message) when `redis-server` is not installed, unless
    /// `CI=true`, where that is a failure: the test must not pass without running.
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// Starts one with extra arguments (ACL users, ...).
    pub async fn start_with(extra: &[&str]) -> Option<Self> {
        let redis_server = tether_testkit::require_tool("redis-server")?;
        for _attempt in 0..5 {
            let port = free_port().await;
            if let Some(child) = spawn_on(&redis_server, port, extra).await {
                return Some(Self { child, port });
            }
        }
        panic!("redis-server did not start");
    }

    /// Kills the server (SIGKILL: nothing is saved, as without persistence).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts an empty server again on the same port.
    pub async fn restart(&mut self) {
        let redis_server = tether_testkit::require_tool("redis-server").expect("was there");
        for _attempt in 0..50 {
            if let Some(child) = spawn_on(&redis_server, self.port, &[]).await {
                self.child = child;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("redis-server did not start again on port {}", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A plain connection for the test's own commands (FLUSHDB, DEL, XRANGE).
    pub async fn con(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// Spawns `redis-server` on `port` and waits until it answers; `None` if it exits first
/// (the port is taken) or never answers.
async fn spawn_on(redis_server: &std::path::Path, port: u16, extra: &[&str]) -> Option<Child> {
    let mut child = Command::new(redis_server)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--maxmemory-policy", "noeviction"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn redis-server");
    for _ in 0..100 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s.write_all(b"PING\r\n").await;
            let mut buf = [0u8; 16];
            use tokio::io::AsyncReadExt;
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await
                && (buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
            {
                return Some(child);
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill().await;
    None
}

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// The proxy's connections: each relay task and its blackholed-for-good flag.
type Conns = Arc<Mutex<Vec<(JoinHandle<()>, Arc<AtomicBool>)>>>;

/// What the proxy does to the bytes through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Forwards both ways.
    Pass = 0,
    /// New connections are accepted and closed at once (Redis is unreachable).
    Refuse = 1,
    /// Connections, old and new, stay open but no byte moves either way until the mode
    /// changes (a partition where TCP does not break).
    Blackhole = 2,
    /// Requests reach Redis, but the connection closes before a reply gets back: Redis ran
    /// the command and the caller cannot know.
    DropReplies = 3,
}

/// A TCP proxy on loopback in front of Redis, with the faults a network gives: pass,
/// refuse, blackhole, cut and drop replies; and a blackhole of the connections open now
/// only, which stays after the mode changes (a NAT entry gone: only a new connection works).
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    conns: Conns,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Conns = Arc::default();
        let mode = Arc::new(AtomicU8::new(Fault::Pass as u8));
        let (c, m) = (conns.clone(), mode.clone());
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                if m.load(Ordering::Acquire) == Fault::Refuse as u8 {
                    drop(down);
                    continue;
                }
                let dead = Arc::new(AtomicBool::new(false));
                let h = tokio::spawn(relay(down, upstream, m.clone(), dead.clone()));
                let mut v = c.lock().unwrap();
                v.retain(|(h, _)| !h.is_finished());
                v.push((h, dead));
            }
        });
        Self {
            addr,
            mode,
            conns,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Sets what happens to bytes from now on.
    pub fn set(&self, fault: Fault) {
        self.mode.store(fault as u8, Ordering::Release);
    }

    /// While set, new connections are accepted and closed at once (Redis is unreachable).
    pub fn set_refuse(&self, on: bool) {
        self.set(if on { Fault::Refuse } else { Fault::Pass });
    }

    /// Cuts every connection through the proxy (both directions close at once).
    pub fn cut(&self) -> usize {
        let v: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        let n = v.len();
        for (h, _) in v {
            h.abort();
        }
        n
    }

    /// Blackholes the connections open now, for good, without closing them; new ones pass.
    pub fn blackhole_open_connections(&self) -> usize {
        let v = self.conns.lock().unwrap();
        for (_, dead) in v.iter() {
            dead.store(true, Ordering::Release);
        }
        v.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// One connection through the proxy: two pumps under the shared mode.
async fn relay(down: TcpStream, upstream: SocketAddr, mode: Arc<AtomicU8>, dead: Arc<AtomicBool>) {
    let Ok(up) = TcpStream::connect(upstream).await else {
        return;
    };
    let (dr, dw) = down.into_split();
    let (ur, uw) = up.into_split();
    tokio::select! {
        () = pump(dr, uw, false, &mode, &dead) => {}
        () = pump(ur, dw, true, &mode, &dead) => {}
    }
}

/// Copies one direction, chunk by chunk, holding each chunk while the mode (or this
/// connection) is blackholed; a reply under `DropReplies` ends the connection unsent.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    replies: bool,
    mode: &AtomicU8,
    dead: &AtomicBool,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n @ 1..) = from.read(&mut buf).await else {
            return;
        };
        // Bounded: a blackhole that outlives the test ends with the test's runtime.
        for _ in 0..1_000_000 {
            let held = dead.load(Ordering::Acquire)
                || mode.load(Ordering::Acquire) == Fault::Blackhole as u8;
            if !held {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if replies && mode.load(Ordering::Acquire) == Fault::DropReplies as u8 {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Short intervals for tests over real sockets.
pub fn config(url: &str, node: &str, prefix: &str) -> RedisConfig {
    RedisConfig::new(url)
        .node_id(node)
        .prefix(prefix)
        .health_interval(Duration::from_millis(100))
        .head_check_interval(Duration::from_millis(500))
}

pub fn broker(builder: BrokerBuilder) -> Broker {
    builder.without_heartbeats().start().expect("valid config")
}

pub async fn node(url: &str, name: &str, prefix: &str, builder: BrokerBuilder) -> RedisBackplane {
    RedisBackplane::start(broker(builder), config(url, name, prefix))
        .await
        .expect("backplane starts")
}

pub fn ev(n: u64) -> Event {
    Event::json(&serde_json::json!({"n": n})).unwrap()
}

/// A client: its last event id, and the checks of what it saw.
#[derive(Debug, Default)]
pub struct Client {
    pub last_id: Option<String>,
    /// Event numbers received since the last resync, in order.
    pub seen: Vec<u64>,
    /// Every resync: (reason, value).
    pub resyncs: Vec<(String, serde_json::Value)>,
    /// Everything in order: `Some(n)` an event, `None` a resync.
    pub history: Vec<Option<u64>>,
    pub parser: Parser,
}

impl Client {
    /// The options of the next connect (a new response: any partial frame is gone).
    pub fn opts(&mut self) -> ConnectOptions {
        self.parser = Parser::new();
        match &self.last_id {
            Some(id) => ConnectOptions::resume(id.clone()),
            None => ConnectOptions::default(),
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        for f in self.parser.feed(bytes) {
            if let Some(id) = &f.id {
                self.last_id = Some(id.clone());
            }
            if let (Some(name), Some(value)) = (f.signal(), f.signal_value()) {
                if name == "tether.resync" {
                    let reason = value["reason"].as_str().unwrap_or("").to_owned();
                    self.resyncs.push((reason, value));
                    self.seen.clear();
                    self.history.push(None);
                }
                continue;
            }
            if let Some(n) = f.json().and_then(|v| v["n"].as_u64()) {
                self.seen.push(n);
                self.history.push(Some(n));
            }
        }
    }

    /// Reads until `until(self)` holds or `wait` passes with nothing new; returns whether
    /// the stream ended.
    pub async fn read(
        &mut self,
        stream: &mut EventStream,
        wait: Duration,
        until: impl Fn(&Client) -> bool,
    ) -> bool {
        for _ in 0..100_000 {
            if until(self) {
                return false;
            }
            match tokio::time::timeout(wait, stream.next()).await {
                Ok(Some(b)) => self.take(&b),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
        false
    }

    /// Reads whatever arrives until nothing does for `quiet`.
    pub async fn settle(&mut self, stream: &mut EventStream, quiet: Duration) -> bool {
        self.read(stream, quiet, |_| false).await
    }
}
