//! Two `tether serve --redis` processes on one `redis-server`: a session's events published on
//! either node reach a stream on either node, a client that reconnects through a load balancer
//! without sticky sessions resumes exactly, lost Redis data is an in-band resync, and a Redis
//! outage shows in `/health/sse` and in 503 answers instead of silent loss.
//!
//! Each test starts its own `redis-server` on a free loopback port, without persistence. Without
//! `redis-server` installed the tests are skipped, except under `CI=true`, where that fails them.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_conformance::client::{Reply, SseConn, StreamOptions, Target, send};
use tether_conformance::hub::Hub;
use tether_conformance::sse::Block;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const EXE: &str = env!("CARGO_BIN_EXE_tether");
const LIMIT: Duration = Duration::from_secs(10);

/// A `redis-server` on a loopback port, without persistence, killed on drop.
struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// `None` (with a message) when `redis-server` is not installed, unless `CI=true`.
    async fn start() -> Option<Self> {
        tether_testkit::require_tool("redis-server")?;
        for _attempt in 0..5 {
            let port = free_port().await;
            if let Some(child) = spawn_redis(port).await {
                return Some(Self {
                    child: Some(child),
                    port,
                });
            }
        }
        panic!("redis-server did not start");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL): everything it held is gone.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    /// Starts a fresh, empty one on the same port (bounded retries while the port frees).
    async fn restart(&mut self) {
        self.kill().await;
        for _ in 0..50 {
            if let Some(child) = spawn_redis(self.port).await {
                self.child = Some(child);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// One command (inline form), answered as text: a status, an integer or a bulk string.
    async fn cmd(&self, command: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to redis-server");
        s.write_all(format!("{command}\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(reply) = parse_reply(&buf) {
                return reply;
            }
            assert!(Instant::now() < deadline, "no reply to {command}");
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(LIMIT, s.read(&mut chunk))
                .await
                .expect("redis-server answers")
                .unwrap();
            assert!(n > 0, "redis-server closed before answering {command}");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// A complete RESP reply of the simple kinds, if `buf` holds one.
fn parse_reply(buf: &[u8]) -> Option<String> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..end]).ok()?;
    match buf.first()? {
        b'+' | b':' | b'-' => Some(line.to_owned()),
        b'$' => {
            let len: usize = line.parse().ok()?;
            let body = buf.get(end + 2..end + 2 + len)?;
            Some(String::from_utf8_lossy(body).into_owned())
        }
        _ => Some(String::from_utf8_lossy(buf).into_owned()),
    }
}

async fn spawn_redis(port: u16) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--maxmemory-policy", "noeviction"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn redis-server");
    for _ in 0..100 {
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill().await;
    None
}

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A load balancer on loopback without sticky sessions: each new connection goes to the next
/// node in turn, and `cut` breaks every connection through it at once.
struct Balancer {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Balancer {
    async fn start(nodes: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let c = conns.clone();
        let accept = tokio::spawn(async move {
            let mut next = 0usize;
            while let Ok((mut down, _)) = listener.accept().await {
                let upstream = nodes[next % nodes.len()];
                next += 1;
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
            conns,
            accept,
        }
    }

    fn target(&self) -> Target {
        Target::parse(&format!("http://{}", self.addr)).unwrap()
    }

    /// Breaks every connection through the balancer (both sides close).
    fn cut(&self) -> usize {
        let v: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        let n = v.len();
        for h in v {
            h.abort();
        }
        n
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A hub on the Redis at `url`, with a short head check and heartbeats every second.
async fn node(url: &str) -> Hub {
    node_with(url, &[]).await
}

async fn node_with(url: &str, extra: &[&str]) -> Hub {
    let args: Vec<String> = [
        "--redis",
        url,
        "--redis-head-check-ms",
        "300",
        "--keepalive-secs",
        "1",
    ]
    .iter()
    .chain(extra)
    .map(|s| (*s).to_owned())
    .collect();
    Hub::spawn(EXE, &args).await.expect("the hub starts")
}

fn target(hub: &Hub) -> Target {
    Target::parse(&hub.base_url()).unwrap()
}

fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

async fn publish(hub: &Hub, session: &str, events: &Value) -> Reply {
    let body = serde_json::to_vec(events).unwrap();
    send(
        &target(hub),
        "POST",
        &format!("/api/sessions/{session}/events"),
        &json_headers(),
        &body,
        LIMIT,
    )
    .await
    .expect("the publish is answered")
}

/// Publishes events `{"n": from..to}` and returns their ids.
async fn publish_range(hub: &Hub, session: &str, from: u64, to: u64) -> Vec<String> {
    let events: Vec<Value> = (from..to).map(|n| json!({ "n": n })).collect();
    let reply = publish(hub, session, &Value::Array(events)).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    reply.json().unwrap()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

async fn health(hub: &Hub) -> (u16, Value) {
    let reply = send(&target(hub), "GET", "/health/sse", &[], b"", LIMIT)
        .await
        .expect("health answers");
    let v = reply.json().unwrap_or_default();
    (reply.status, v)
}

async fn open(target: &Target, session: &str, last: Option<&str>) -> SseConn {
    let headers = last
        .map(|id| vec![("last-event-id".to_owned(), id.to_owned())])
        .unwrap_or_default();
    SseConn::open(
        target,
        &format!("/api/sse/session/{session}"),
        StreamOptions {
            headers,
            ..StreamOptions::default()
        },
    )
    .await
    .expect("the stream opens")
}

/// The `n` of an event we published, `None` for control signals.
fn n_of(frame: &Block) -> Option<u64> {
    frame.json()?.get("n")?.as_u64()
}

/// The `tether.*` name of a control signal.
fn signal(frame: &Block) -> Option<String> {
    let v = frame.json()?;
    (v["type"] == "CUSTOM").then(|| v["name"].as_str().unwrap_or_default().to_owned())
}

/// The seq of an event id `<epoch>-<seq>`.
fn seq(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

fn epoch(id: &str) -> &str {
    id.rsplit_once('-').unwrap().0
}

#[tokio::test]
async fn an_event_published_on_one_node_reaches_a_stream_on_the_other() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let ids = publish_range(&a, "chat-1", 0, 2).await;
    let mut on_b = open(&target(&b), "chat-1", None).await;
    assert_eq!(on_b.status(), 200);
    for (n, id) in ids.iter().enumerate() {
        let f = on_b.next_event(LIMIT).await.unwrap();
        assert_eq!(n_of(&f), Some(n as u64), "{f:?}");
        assert_eq!(f.id.as_deref(), Some(id.as_str()));
    }
    // Live: B holds the connection, A publishes and wakes B.
    let more = publish_range(&a, "chat-1", 2, 3).await;
    let f = on_b.next_event(LIMIT).await.unwrap();
    assert_eq!(
        (n_of(&f), f.id.as_deref()),
        (Some(2), Some(more[0].as_str()))
    );
    // And a resume on A after B's last id is exact.
    let mut on_a = open(&target(&a), "chat-1", Some(&ids[0])).await;
    let f = on_a.next_event(LIMIT).await.unwrap();
    assert_eq!(n_of(&f), Some(1), "{f:?}");

    // Health names the backplane; each node holds two connections to Redis, no pool.
    let (status, h) = health(&b).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["backplane"]["status"], "up", "{h}");
    assert!(
        h["backplane"]["node_id"].as_str().unwrap().contains(':'),
        "{h}"
    );
    assert!(
        h["backplane"]["since"].as_str().unwrap().ends_with('Z'),
        "{h}"
    );
    let info = redis.cmd("INFO clients").await;
    let clients: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        clients,
        2 * 2 + 1,
        "two per node, and this query's own: {info}"
    );

    // The backplane's metrics are in the hub's exposition.
    let metrics = send(&target(&a), "GET", "/metrics", &[], b"", LIMIT)
        .await
        .unwrap()
        .text();
    for name in [
        "tether_backplane_up 1",
        "tether_backplane_append_seconds_bucket",
        "tether_backplane_wakes_total",
        "tether_backplane_gaps_filled_total",
        "tether_backplane_epoch_changes_total{cause=\"missing\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

/// A client behind a load balancer without sticky sessions: every reconnect lands on the other
/// node, while a publisher alternates between the nodes too. Every event arrives exactly once,
/// in order, with no resync.
#[tokio::test]
async fn reconnects_alternating_between_nodes_lose_and_repeat_nothing() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let lb = Balancer::start(vec![a.addr(), b.addr()]).await;
    const TOTAL: u64 = 300;
    const BATCH: u64 = 5;

    let first = publish_range(&a, "roam", 0, BATCH).await;
    let nodes = Arc::new([a, b]);
    let publisher = {
        let nodes = nodes.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for (i, from) in (BATCH..TOTAL).step_by(BATCH as usize).enumerate() {
                let hub = &nodes[i % 2];
                ids.extend(publish_range(hub, "roam", from, from + BATCH).await);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            ids
        })
    };

    let lb_target = lb.target();
    let mut got: Vec<u64> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    let mut streams = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while (got.len() as u64) < TOTAL {
        assert!(
            Instant::now() < deadline && streams < 500,
            "got {} of {TOTAL} events in {streams} streams",
            got.len()
        );
        let mut conn = open(&lb_target, "roam", last.as_deref()).await;
        assert_eq!(conn.status(), 200, "stream {streams}");
        streams += 1;
        let mut read = 0;
        while let Ok(Some(f)) = conn.next(Duration::from_secs(5)).await {
            if let Some(id) = &f.id {
                last = Some(id.clone());
            }
            if let Some(name) = signal(&f) {
                assert_ne!(name, "tether.resync", "no history was lost: {f:?}");
                continue;
            }
            let Some(n) = n_of(&f) else { continue };
            got.push(n);
            ids.push(f.id.clone().expect("a stored event has an id"));
            read += 1;
            if read == 12 {
                lb.cut();
            }
        }
    }
    let mut published = first;
    published.extend(publisher.await.unwrap());
    assert_eq!(
        got,
        (0..TOTAL).collect::<Vec<_>>(),
        "zero loss, zero duplicates, in order"
    );
    assert_eq!(ids, published, "the ids the publishers got, on every node");
    assert!(
        ids.iter().all(|id| epoch(id) == epoch(&ids[0])),
        "one epoch"
    );
    assert!(ids.windows(2).all(|w| seq(&w[1]) == seq(&w[0]) + 1));
    assert!(
        streams >= 10,
        "the client reconnected often: {streams} streams"
    );
    eprintln!("{TOTAL} events over {streams} streams, alternating nodes");
}

/// An id one node issued that the shared log no longer keeps gets a resync on the other node,
/// then the oldest event kept.
#[tokio::test]
async fn an_id_trimmed_from_the_log_resyncs_on_another_node() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let ring = ["--ring-events", "5"];
    let (a, b) = (
        node_with(&redis.url(), &ring).await,
        node_with(&redis.url(), &ring).await,
    );
    let ids = publish_range(&a, "trim", 0, 20).await;
    let mut on_b = open(&target(&b), "trim", Some(&ids[0])).await;
    let f = on_b.next_event(LIMIT).await.unwrap();
    assert_eq!(signal(&f).as_deref(), Some("tether.resync"), "{f:?}");
    let v = f.json().unwrap();
    assert_eq!(v["value"]["reason"], "evicted", "{v}");
    assert_eq!(v["value"]["lastEventId"], ids[0].as_str(), "{v}");
    let f = on_b.next_event(LIMIT).await.unwrap();
    assert_eq!(n_of(&f), Some(15), "the oldest of the five kept: {f:?}");
    // An id still kept resumes exactly on either node.
    let mut on_a = open(&target(&a), "trim", Some(&ids[17])).await;
    assert_eq!(n_of(&on_a.next_event(LIMIT).await.unwrap()), Some(18));
}

/// A connect the broker refuses (409 under `--policy reject`, 204 for a superseded tab coming
/// back) leaves the session's live stream in place: it still gets what another node publishes.
#[tokio::test]
async fn a_refused_connect_leaves_the_live_stream_in_place() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let reject = ["--policy", "reject"];
    let (a, b) = (
        node_with(&redis.url(), &reject).await,
        node_with(&redis.url(), &reject).await,
    );
    let mut live = open(&target(&a), "held", None).await;
    assert_eq!(live.status(), 200);
    let refused = open(&target(&a), "held", None).await;
    assert_eq!(refused.status(), 409);
    publish_range(&b, "held", 0, 1).await;
    let f = live
        .next_event(LIMIT)
        .await
        .expect("the live stream still gets events");
    assert_eq!(n_of(&f), Some(0));

    // Replace policy: tab y supersedes tab x, x comes back within the grace and gets 204.
    let (c, d) = (node(&redis.url()).await, node(&redis.url()).await);
    let path = |tab: &str| format!("/api/sse/session/tabs?clientId={tab}");
    let opts = StreamOptions::default;
    let _x = SseConn::open(&target(&c), &path("x"), opts())
        .await
        .unwrap();
    let mut y = SseConn::open(&target(&c), &path("y"), opts())
        .await
        .unwrap();
    let back = SseConn::open(&target(&c), &path("x"), opts())
        .await
        .unwrap();
    assert_eq!(back.status(), 204);
    publish_range(&d, "tabs", 0, 1).await;
    let f = y.next_event(LIMIT).await.expect("tab y still gets events");
    assert_eq!(n_of(&f), Some(0));
}

/// `FLUSHDB` while a client is connected: the client is told in band (`tether.resync`, reason
/// `epoch`), nothing crashes or hangs, and publishing goes on on both nodes.
#[tokio::test]
async fn a_flushed_redis_is_an_in_band_resync_and_publishing_goes_on() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let before = publish_range(&a, "flush", 0, 3).await;
    let mut on_b = open(&target(&b), "flush", None).await;
    for n in 0..3 {
        assert_eq!(n_of(&on_b.next_event(LIMIT).await.unwrap()), Some(n));
    }
    assert_eq!(redis.cmd("FLUSHDB").await, "OK");

    let after = publish_range(&a, "flush", 3, 4).await;
    assert_ne!(
        epoch(&after[0]),
        epoch(&before[0]),
        "a new epoch, never a renumbering"
    );
    let mut resync = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    let next = loop {
        assert!(
            Instant::now() < deadline,
            "no resync and no event after FLUSHDB"
        );
        let f = on_b.next_event(LIMIT).await.unwrap();
        if signal(&f).as_deref() == Some("tether.resync") {
            resync = Some(f.json().unwrap());
            continue;
        }
        if n_of(&f).is_some() {
            break f;
        }
    };
    let resync = resync.expect("a tether.resync before the new epoch's events");
    assert_eq!(resync["value"]["reason"], "epoch", "{resync}");
    assert_eq!(n_of(&next), Some(3));
    assert_eq!(next.id.as_deref(), Some(after[0].as_str()));

    // Publishing goes on through either node, and B's stream gets it.
    publish_range(&b, "flush", 4, 5).await;
    publish_range(&a, "flush", 5, 6).await;
    for n in 4..6 {
        assert_eq!(n_of(&on_b.next_event(LIMIT).await.unwrap()), Some(n));
    }
    for hub in [&a, &b] {
        assert_eq!(health(hub).await.0, 200);
    }
}

/// Redis killed: `/health/sse` turns 503 with the backplane down, publishes and new streams
/// answer 503 `backplane_unavailable`, an open stream stays open with its heartbeats; Redis
/// back (empty): health turns 200 and publishing resumes, with a resync for the stream.
#[tokio::test]
async fn a_redis_outage_is_503_and_never_silent_loss() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let a = node(&redis.url()).await;
    publish_range(&a, "outage", 0, 1).await;
    let mut stream = open(&target(&a), "outage", None).await;
    assert_eq!(n_of(&stream.next_event(LIMIT).await.unwrap()), Some(0));

    redis.kill().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let down = loop {
        let (status, h) = health(&a).await;
        if status == 503 {
            break h;
        }
        assert!(Instant::now() < deadline, "health still {status} {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(down["backplane"]["status"], "down", "{down}");
    assert_eq!(down["status"], "backplane_down", "{down}");
    // Liveness is not readiness: a liveness probe must not restart every node when Redis blips.
    let live = send(&target(&a), "GET", "/health/live", &[], b"", LIMIT)
        .await
        .expect("liveness answers");
    assert_eq!(live.status, 200, "{}", live.text());
    assert_eq!(live.json().unwrap()["status"], "alive");

    let started = Instant::now();
    let reply = publish(&a, "outage", &json!({ "n": 1 })).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(reply.header("retry-after").is_some());
    assert_eq!(reply.json().unwrap()["error"], "backplane_unavailable");
    assert!(
        took < Duration::from_secs(8),
        "a publish fails fast: {took:?}"
    );
    eprintln!("a publish with Redis down answered 503 in {took:?}");
    // The stream route never answers a non-200 (EventSource would give up): a session the
    // node's ring cannot serve gets a `retry:` and an immediate end.
    let mut later = open(&target(&a), "other", None).await;
    assert_eq!(later.status(), 200);
    let blocks = later.until_end(LIMIT).await.unwrap();
    assert!(blocks.iter().any(|b| b.retry.is_some()), "{blocks:?}");
    assert!(blocks.iter().all(|b| b.data.is_none()), "{blocks:?}");

    // The open stream stays open: heartbeats (a comment every second) keep coming.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = stream
            .next(LIMIT)
            .await
            .unwrap()
            .expect("the stream stays open");
        if !f.comments.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat during the outage");
    }

    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, h) = health(&a).await;
        if status == 200 {
            assert_eq!(h["backplane"]["status"], "up", "{h}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health did not recover: {status} {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    publish_range(&a, "outage", 2, 3).await;
    let mut saw_resync = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the stream got nothing after the outage"
        );
        let f = stream.next_event(LIMIT).await.unwrap();
        if signal(&f).as_deref() == Some("tether.resync") {
            saw_resync = true;
        } else if let Some(n) = n_of(&f) {
            assert_eq!(n, 2, "the refused event was never stored");
            break;
        }
    }
    assert!(saw_resync, "Redis came back empty: the stream is told");
}

/// Runs `openssl` with `args` in `dir`; `false` when it is not installed (outside CI).
fn openssl(dir: &std::path::Path, args: &[&str]) -> bool {
    let Some(openssl) = tether_testkit::require_tool("openssl") else {
        return false;
    };
    let status = std::process::Command::new(openssl)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}: {status}");
    true
}

/// A CA and a certificate for 127.0.0.1 signed by it, in `dir`: `ca.pem`, `srv.pem`,
/// `srv.key`.
fn make_certs(dir: &std::path::Path) -> bool {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    std::fs::write(
        dir.join("srv.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem"],
    ]
    .concat();
    let ca = [
        &ca[..],
        &["-days", "2", "-subj", "/CN=tether test CA"],
        &["-addext", "basicConstraints=critical,CA:TRUE"],
        &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]
    .concat();
    openssl(dir, &ca)
        && openssl(
            dir,
            &[
                &["req"][..],
                &ec,
                &["-keyout", "srv.key", "-out", "srv.csr"],
                &["-subj", "/CN=127.0.0.1"],
            ]
            .concat(),
        )
        && openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.pem",
                "-days",
                "2",
                "-extfile",
                "srv.ext",
            ],
        )
}

/// `rediss://`: a hub that trusts the test CA (through `SSL_CERT_FILE`) works over TLS.
#[tokio::test]
async fn rediss_connects_over_tls() {
    let Some(plain) = RedisServer::start().await else {
        return;
    };
    drop(plain);
    let dir = std::env::temp_dir().join(format!("tether-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    if !make_certs(&dir) {
        return;
    }
    let port = free_port().await;
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            &path("srv.pem"),
            "--tls-key-file",
            &path("srv.key"),
        ])
        .args([
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            "no",
        ])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn redis-server with TLS");
    let deadline = Instant::now() + LIMIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen for TLS"
        );
        assert!(
            redis.try_wait().unwrap().is_none(),
            "redis-server exited (built without TLS?)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let url = format!("rediss://127.0.0.1:{port}");
    let mut hub = Command::new(EXE)
        .args(["serve", "--dev", "--addr", "127.0.0.1:0", "--redis", &url])
        .env("SSL_CERT_FILE", path("ca.pem"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the hub");
    let mut out = tokio::io::BufReader::new(hub.stdout.take().unwrap());
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::time::timeout(Duration::from_secs(60), out.read_line(&mut line))
        .await
        .expect("the hub starts")
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the hub did not start over TLS: {line:?}"))
        .to_owned();
    let target = Target::parse(&addr).unwrap();
    let reply = send(
        &target,
        "POST",
        "/api/sessions/tls/events",
        &json_headers(),
        br#"{"n":1}"#,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 202, "{}", reply.text());
    let mut stream = open(&target, "tls", None).await;
    assert_eq!(n_of(&stream.next_event(LIMIT).await.unwrap()), Some(1));
    let h = send(&target, "GET", "/health/sse", &[], b"", LIMIT)
        .await
        .unwrap();
    assert_eq!(h.json().unwrap()["backplane"]["status"], "up");

    // Without the CA the certificate is refused: the hub says so and exits with status 1.
    let refused = Command::new(EXE)
        .args(["serve", "--dev", "--addr", "127.0.0.1:0", "--redis", &url])
        .env("SSL_CERT_FILE", path("srv.ext"))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn publish_with_key(hub: &Hub, session: &str, key: &str, events: &Value) -> Reply {
    let mut headers = json_headers();
    headers.push(("idempotency-key".into(), key.into()));
    send(
        &target(hub),
        "POST",
        &format!("/api/sessions/{session}/events"),
        &headers,
        &serde_json::to_vec(events).unwrap(),
        LIMIT,
    )
    .await
    .expect("the publish is answered")
}

#[tokio::test]
async fn a_retry_on_another_node_with_the_same_idempotency_key_stores_nothing() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, b) = (node(&redis.url()).await, node(&redis.url()).await);
    let events = json!([{ "n": 0 }, { "n": 1 }]);
    let first = publish_with_key(&a, "idem-1", "order-42", &events).await;
    assert_eq!(first.status, 202, "{}", first.text());
    assert!(first.header("idempotency-replayed").is_none());
    // The reply was lost; the publisher retries through the load balancer and lands on B.
    let retry = publish_with_key(&b, "idem-1", "order-42", &events).await;
    assert_eq!(retry.status, 202, "{}", retry.text());
    assert_eq!(retry.json().unwrap(), first.json().unwrap());
    assert_eq!(retry.header("idempotency-replayed"), Some("true"));
    let reused = publish_with_key(&b, "idem-1", "order-42", &json!({ "n": 9 })).await;
    assert_eq!(reused.status, 422, "{}", reused.text());
    assert_eq!(reused.json().unwrap()["error"], "idempotency_key_reused");
    // Nothing was stored twice: the next event on either node is the third.
    let next = publish_range(&b, "idem-1", 2, 3).await;
    assert_eq!(seq(&next[0]), 3, "{next:?}");
    let mut stream = open(&target(&a), "idem-1", None).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let f = stream.next_event(LIMIT).await.expect("the events arrive");
        seen.extend(n_of(&f));
    }
    assert_eq!(seen, [0, 1, 2]);
}

#[tokio::test]
async fn a_node_on_redis_passes_the_idempotent_publish_check() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let hub = node(&redis.url()).await;
    let cfg = tether_conformance::SuiteConfig::default();
    tether_conformance::idempotent_publish(&hub.base_url(), &cfg)
        .await
        .expect("idempotent publishes through the backplane");
}
