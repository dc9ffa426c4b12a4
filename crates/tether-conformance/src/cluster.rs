//! Several `tether serve --redis` nodes behind one nginx that spreads requests round robin,
//! without sticky sessions: the deployment the backplane is for. A [`RedisServer`] is started
//! on a free loopback port without persistence; [`Cluster::start`] starts the nodes on it and
//! an nginx configured with `deploy/nginx.conf`, its upstream listing every node (plus two
//! lines that let the suite see the hub's own answers).
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! use tether_conformance::cluster::{Cluster, RedisServer};
//! let Some(redis) = RedisServer::start().await else { return };
//! let Some(nginx) = tether_conformance::nginx::require() else { return };
//! let mut cfg = tether_conformance::SuiteConfig::default();
//! let cluster = Cluster::start("tether", &nginx, &redis.url(), 2, &cfg.hub_args()).await.unwrap();
//! cfg.nodes = cluster.node_urls();
//! tether_conformance::run_all(&cluster.base_url(), &cfg).await.assert_ok();
//! # }
//! ```

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::hub::Hub;
use crate::nginx::Nginx;

/// The nginx configuration of the runbook, tested as it is but for the upstream's servers and
/// the listen port.
const DEPLOY: &str = include_str!("../../../deploy/nginx.conf");
const DEPLOY_UPSTREAM: &str = "server 127.0.0.1:8080;";
const DEPLOY_LISTEN: &str = "listen 80;";

/// A `redis-server` on a free loopback port, without persistence, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    _child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts one, or returns `None` after a notice when `redis-server` is not installed
    /// (under `CI=true` that fails instead, [`tether_testkit::require_tool`]). Panics if it
    /// does not start in five attempts.
    pub async fn start() -> Option<Self> {
        let binary = tether_testkit::require_tool("redis-server")?;
        for _attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free loopback port");
            if let Some(child) = spawn_redis(&binary, port).await {
                return Some(Self {
                    _child: child,
                    port,
                });
            }
        }
        panic!("redis-server did not start");
    }

    /// Its URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Starts `redis-server` on `port` and waits (up to about 10 s) for its `PONG`; `None` if
/// it exited (the port was taken meanwhile) or never answered.
async fn spawn_redis(binary: &Path, port: u16) -> Option<Child> {
    let mut child = Command::new(binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn redis-server");
    for _ in 0..200 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s.write_all(b"PING\r\n").await;
            let mut buf = [0u8; 16];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await
                && buf[..n].starts_with(b"+PONG")
            {
                return Some(child);
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill().await;
    None
}

/// Hub nodes on one Redis behind a round-robin nginx; everything is stopped on drop.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Hub>,
    nginx: Nginx,
}

impl Cluster {
    /// Starts `count` nodes, `exe serve --redis REDIS_URL --redis-head-check-ms 300 ARGS...`,
    /// and an nginx (`nginx_binary`) with `deploy/nginx.conf` whose upstream lists them all,
    /// in nginx's default round robin.
    pub async fn start(
        exe: impl AsRef<Path>,
        nginx_binary: &Path,
        redis_url: &str,
        count: usize,
        args: &[String],
    ) -> std::io::Result<Self> {
        let mut node_args: Vec<String> = ["--redis", redis_url, "--redis-head-check-ms", "300"]
            .map(str::to_owned)
            .to_vec();
        node_args.extend_from_slice(args);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(Hub::spawn(exe.as_ref(), &node_args).await?);
        }
        let upstream: Vec<String> = nodes
            .iter()
            .map(|n| format!("server {};", n.addr()))
            .collect();
        let nginx = Nginx::start(nginx_binary, |port| {
            round_robin_server(&upstream.join("\n    "), port)
        });
        Ok(Self { nodes, nginx })
    }

    /// nginx's base URL.
    pub fn base_url(&self) -> String {
        self.nginx.base_url()
    }

    /// The nodes, in the upstream's order.
    pub fn nodes(&self) -> &[Hub] {
        &self.nodes
    }

    /// The nodes' own base URLs, for [`SuiteConfig::nodes`](crate::SuiteConfig::nodes).
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(Hub::base_url).collect()
    }

    /// Kills node `i` with SIGKILL (no drain, no release of anything it holds in Redis) and
    /// waits up to 10 s for it to be gone.
    pub async fn kill(&mut self, i: usize) -> std::io::Result<()> {
        let node = &mut self.nodes[i];
        let pid = node
            .pid()
            .ok_or_else(|| std::io::Error::other("the node already exited"))?;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("kill -KILL {pid}: {status}")));
        }
        node.wait(Duration::from_secs(10)).await.map(drop)
    }
}

/// What the suite needs of nginx beyond `deploy/nginx.conf`, to see the hub's own answers:
/// nginx acts on `X-Accel-Buffering` and drops it from the response, where the `headers`
/// check looks for it; and its default body limit (1 MiB) answers the `oversized` check's
/// body with nginx's own HTML 413 before the hub's JSON one.
const SUITE_ADDITIONS: &str = "client_max_body_size 8m;\n    proxy_pass_header X-Accel-Buffering;";

/// `deploy/nginx.conf` with `servers` (one `server ADDR;` line per node) as the upstream,
/// the listener on `127.0.0.1:port`, and [`SUITE_ADDITIONS`].
fn round_robin_server(servers: &str, port: u16) -> String {
    for needle in [DEPLOY_UPSTREAM, DEPLOY_LISTEN, "proxy_buffering off;"] {
        assert!(DEPLOY.contains(needle), "deploy/nginx.conf lost {needle:?}");
    }
    for sticky in ["ip_hash", "hash ", "sticky", "least_conn"] {
        assert!(
            !DEPLOY.contains(sticky),
            "deploy/nginx.conf balances with {sticky:?}, not round robin"
        );
    }
    DEPLOY.replace(DEPLOY_UPSTREAM, servers).replace(
        DEPLOY_LISTEN,
        &format!("listen 127.0.0.1:{port};\n    {SUITE_ADDITIONS}"),
    )
}
