//! Test support: a `redis-server` child per test, a connection-cutting TCP proxy, nodes on
//! one Redis, and an SSE client that checks what it receives.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::Stdio;
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
            let mut child = Command::new(&redis_server)
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
                        return Some(Self { child, port });
                    }
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill().await;
        }
        panic!("redis-server did not start");
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

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A TCP proxy on loopback that can cut every connection through it.
pub struct Proxy {
    pub addr: SocketAddr,
    refuse: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let refuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = conns.clone();
        let r = refuse.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if r.load(std::sync::atomic::Ordering::Acquire) {
                    drop(down);
                    continue;
                }
                let h = tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
                let mut v = c.lock().unwrap();
                v.retain(|h| !h.is_finished());
                v.push(h);
            }
        });
        Self {
            addr,
            refuse,
            conns,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// While set, new connections are accepted and closed at once (Redis is unreachable).
    pub fn set_refuse(&self, on: bool) {
        self.refuse.store(on, std::sync::atomic::Ordering::Release);
    }

    /// Cuts every connection through the proxy (both directions close at once).
    pub fn cut(&self) -> usize {
        let v: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        let n = v.len();
        for h in v {
            h.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
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
