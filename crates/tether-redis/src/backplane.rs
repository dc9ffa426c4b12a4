//! The node: publish, connect, the pub/sub ingest task and the supervisor.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use dashmap::DashMap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tether_core::idempotency::{self, IdempotencyKey, Published};
use tether_core::{
    Backplane, BackplaneError, BackplaneStatus, BoxFuture, Broker, ConnectError, ConnectOptions,
    Epoch, Event, EventId, EventStream, LastEventId, Placed, PublishError, SessionId, frame,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::RedisConfig;
use crate::metrics as m;
use crate::scripts::Scripts;

/// The Redis backplane of one node. Cheap to clone; the background tasks (pub/sub ingest,
/// health pings, head checks) stop when the last clone is dropped.
#[derive(Clone)]
pub struct RedisBackplane {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("node_id", &self.shared.cfg.node_id)
            .field("prefix", &self.shared.cfg.prefix)
            .finish()
    }
}

/// How a sync claims the session's connection.
#[derive(Clone, Copy)]
enum Claim {
    /// No claim: only read.
    None,
    /// Take the session over (a connect), with this connection token.
    Force(u64),
    /// Take it only if nobody holds it (after Redis lost the meta).
    IfNone(u64),
}

/// Why a sync runs: to read (connect, publish) or to fill a gap (counted).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Read,
    Gap,
}

struct Shared {
    broker: Broker,
    cfg: RedisConfig,
    cmd: ConnectionManager,
    sub: ConnectionManager,
    scripts: Scripts,
    channel_prefix: String,
    channel: String,
    max_events: usize,
    max_bytes: usize,
    ttl_ms: u64,
    /// Sessions whose connection this node holds, with the connection token.
    owned: DashMap<SessionId, u64>,
    /// Serializes what one node does to one session's ring from Redis.
    locks: DashMap<SessionId, Arc<tokio::sync::Mutex<()>>>,
    status: Mutex<BackplaneStatus>,
    /// Set when pub/sub may have lost messages (queue overflow, a reconnect): the supervisor
    /// then runs a catch-up pass.
    catch_up: AtomicBool,
    /// Fault injection for tests: wakes to drop on purpose.
    drop_wakes: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> BackplaneError {
    BackplaneError::Unavailable(e.to_string())
}

fn redis_error(e: redis::RedisError) -> BackplaneError {
    if e.code() == Some("OOM") {
        BackplaneError::Full(e.to_string())
    } else {
        unavailable(e)
    }
}

fn epoch_hex(e: Epoch) -> String {
    format!("{e}")
}

fn parse_epoch(s: &str) -> Result<Epoch, BackplaneError> {
    u64::from_str_radix(s, 16)
        .ok()
        .filter(|v| *v != 0)
        .map(Epoch::from_u64)
        .ok_or_else(|| unavailable(format!("malformed epoch {s:?} in Redis")))
}

/// The frame the append script stores: the `id:` line, then the body.
fn frame_with_id(id: EventId, body: &[u8]) -> Bytes {
    let id_line = format!("id: {id}\n");
    let mut buf = BytesMut::with_capacity(id_line.len() + body.len());
    buf.put_slice(id_line.as_bytes());
    buf.put_slice(body);
    buf.freeze()
}

fn as_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn as_str(v: &Value) -> Option<&str> {
    as_bytes(v).and_then(|b| std::str::from_utf8(b).ok())
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => as_str(other)?.parse().ok(),
    }
}

fn bad_reply(what: &str) -> BackplaneError {
    unavailable(format!("unexpected reply from the {what} script"))
}

/// What the sync script answered.
struct SyncReply {
    epoch: Epoch,
    head: u64,
    cause: String,
    entries: Vec<(u64, Bytes)>,
}

fn parse_sync(v: Value) -> Result<SyncReply, BackplaneError> {
    let Value::Array(items) = v else {
        return Err(bad_reply("sync"));
    };
    if items.len() < 7 {
        return Err(bad_reply("sync"));
    }
    let epoch = parse_epoch(as_str(&items[0]).ok_or_else(|| bad_reply("sync"))?)?;
    let head = as_u64(&items[1]).ok_or_else(|| bad_reply("sync"))?;
    let cause = as_str(&items[3]).unwrap_or_default().to_owned();
    let mut entries = Vec::new();
    if let Value::Array(flat) = &items[6] {
        for pair in flat.chunks(2) {
            let [id, frame] = pair else {
                return Err(bad_reply("sync"));
            };
            let id = as_str(id).ok_or_else(|| bad_reply("sync"))?;
            let seq = id
                .split('-')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad_reply("sync"))?;
            let frame = as_bytes(frame).ok_or_else(|| bad_reply("sync"))?;
            entries.push((seq, Bytes::copy_from_slice(frame)));
        }
    }
    Ok(SyncReply {
        epoch,
        head,
        cause,
        entries,
    })
}

fn count_epoch_change(cause: &str) {
    if cause == "missing" || cause == "regression" {
        metrics::counter!(m::EPOCH_CHANGES_TOTAL, "cause" => cause.to_owned()).increment(1);
        tracing::warn!(
            cause,
            "SSE backplane epoch change: Redis lost this session's data"
        );
    }
}

impl RedisBackplane {
    /// Connects to Redis (one multiplexed command connection and one pub/sub connection),
    /// subscribes to this node's channel and spawns the ingest and supervisor tasks on the
    /// current tokio runtime.
    ///
    /// # Errors
    /// [`BackplaneError::Unavailable`] when the URL is invalid or Redis cannot be reached
    /// within the operation deadline.
    pub async fn start(broker: Broker, cfg: RedisConfig) -> Result<Self, BackplaneError> {
        let info = cfg
            .url
            .as_str()
            .into_connection_info()
            .map_err(unavailable)?;
        let manager_cfg = || {
            ConnectionManagerConfig::new()
                .set_response_timeout(Some(cfg.op_deadline.min(Duration::from_secs(1))))
                .set_connection_timeout(Some(cfg.op_deadline.min(Duration::from_secs(1))))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500))
        };
        let cmd_client = redis::Client::open(info.clone()).map_err(unavailable)?;
        let sub_info = {
            let redis = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            info.set_redis_settings(redis)
        };
        let sub_client = redis::Client::open(sub_info).map_err(unavailable)?;

        let (tx, rx) = mpsc::channel::<PushInfo>(cfg.push_queue);
        let overflow = Arc::new(AtomicBool::new(false));
        let overflow_flag = overflow.clone();
        let sender = move |info: PushInfo| -> Result<(), ()> {
            if tx.try_send(info).is_err() {
                overflow_flag.store(true, Ordering::Release);
            }
            Ok(())
        };
        let deadline = cfg.op_deadline;
        let cmd = tokio::time::timeout(
            deadline,
            ConnectionManager::new_with_config(cmd_client, manager_cfg()),
        )
        .await
        .map_err(|_| unavailable("connecting timed out"))?
        .map_err(unavailable)?;
        let mut sub = tokio::time::timeout(
            deadline,
            ConnectionManager::new_with_config(
                sub_client,
                manager_cfg()
                    .set_push_sender(sender)
                    .set_automatic_resubscription(),
            ),
        )
        .await
        .map_err(|_| unavailable("connecting timed out"))?
        .map_err(unavailable)?;
        let channel_prefix = format!("{}:node:", cfg.prefix);
        let channel = format!("{channel_prefix}{}", cfg.node_id);
        tokio::time::timeout(deadline, sub.subscribe(&channel))
            .await
            .map_err(|_| unavailable("subscribing timed out"))?
            .map_err(unavailable)?;

        let bc = broker.config();
        let shared = Arc::new(Shared {
            max_events: cfg.log_max_events.unwrap_or(bc.ring_max_events()),
            max_bytes: cfg.log_max_bytes.unwrap_or(bc.ring_max_bytes()),
            ttl_ms: (cfg.ttl.unwrap_or(bc.session_ttl()).as_millis() as u64).max(1),
            broker,
            cmd,
            sub,
            scripts: Scripts::new(),
            channel_prefix,
            channel,
            owned: DashMap::new(),
            locks: DashMap::new(),
            status: Mutex::new(BackplaneStatus {
                up: true,
                node_id: cfg.node_id.clone(),
                since: SystemTime::now(),
            }),
            catch_up: AtomicBool::new(false),
            drop_wakes: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            cfg,
        });
        metrics::gauge!(m::BACKPLANE_UP).set(1.0);
        // Counters show in an exposition from the start, at 0, so a rate() over them works
        // before the first wake or epoch change.
        metrics::counter!(m::WAKES_TOTAL).increment(0);
        metrics::counter!(m::GAPS_FILLED_TOTAL).increment(0);
        for cause in ["missing", "regression"] {
            metrics::counter!(m::EPOCH_CHANGES_TOTAL, "cause" => cause).increment(0);
        }
        shared.warn_on_eviction_policy().await;
        let ingest = tokio::spawn(ingest(Arc::downgrade(&shared), rx, overflow.clone()));
        let supervisor = tokio::spawn(supervise(Arc::downgrade(&shared), overflow));
        if let Ok(mut t) = shared.tasks.lock() {
            t.push(ingest);
            t.push(supervisor);
        }
        tracing::info!(node = %shared.cfg.node_id, channel = %shared.channel, "SSE backplane up");
        Ok(Self { shared })
    }

    /// The broker this backplane feeds.
    pub fn broker(&self) -> &Broker {
        &self.shared.broker
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.cfg.node_id
    }

    /// Publishes events: one atomic append to the session's Redis log (which assigns the
    /// ids and wakes the node holding the session's connection), then into this node's ring.
    ///
    /// # Errors
    /// [`BackplaneError::Publish`] for events the broker would refuse (too large);
    /// [`BackplaneError::Unavailable`] when Redis does not answer within the deadline (the
    /// events may or may not be stored when the deadline passed after the request was sent);
    /// [`BackplaneError::Full`] when Redis is out of memory (nothing stored).
    pub async fn publish(
        &self,
        session: &SessionId,
        events: &[Event],
    ) -> Result<Vec<EventId>, BackplaneError> {
        self.shared
            .publish(session, events, None)
            .await
            .map(|p| p.ids)
    }

    /// Publishes once per `key` across every node: a retry of the same publish (same key,
    /// same events) stores nothing and gets the first answer's ids, the same key with other
    /// events [`PublishError::IdempotencyKeyReused`]. The key's record lives in Redis beside
    /// the session's log for ten minutes or the log's TTL, whichever is longer.
    ///
    /// # Errors
    /// As [`publish`](Self::publish), and the reused key.
    pub async fn publish_once(
        &self,
        session: &SessionId,
        key: &IdempotencyKey,
        events: &[Event],
    ) -> Result<Published, BackplaneError> {
        self.shared.publish(session, events, Some(key)).await
    }

    /// Opens a session's stream on this node: claims the connection in Redis (a connection
    /// on another node ends with `superseded`), brings the local ring up to the log, then
    /// connects as [`Broker::connect`] does. A `Last-Event-ID` issued by any node resumes
    /// exactly.
    ///
    /// # Errors
    /// [`BackplaneError::Connect`] for what a local connect refuses;
    /// [`BackplaneError::Unavailable`] when Redis does not answer within the deadline.
    pub async fn connect(
        &self,
        session: &SessionId,
        opts: ConnectOptions,
    ) -> Result<EventStream, BackplaneError> {
        self.shared.connect(session, opts).await
    }

    /// Up or down, this node's id, and since when.
    pub fn status(&self) -> BackplaneStatus {
        self.shared.status()
    }

    /// The `"backplane"` object of `/health/sse`, as JSON.
    pub fn health_json(&self) -> serde_json::Value {
        serde_json::to_value(self.status().health()).unwrap_or_default()
    }

    /// Compares the head of every session connected to this node with Redis's now, and
    /// fills or resyncs what differs (the supervisor does this every
    /// [`head_check_interval`](RedisConfig::head_check_interval)).
    pub async fn check_heads(&self) -> Result<(), BackplaneError> {
        self.shared.check_heads().await
    }

    /// Fault injection for tests: drops the next `n` wakes this node receives, as pub/sub
    /// may (it is at-most-once).
    #[doc(hidden)]
    pub fn drop_next_wakes(&self, n: u64) {
        self.shared.drop_wakes.store(n, Ordering::Release);
    }
}

impl Backplane for RedisBackplane {
    fn publish<'a>(
        &'a self,
        session: &'a SessionId,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<Vec<EventId>, BackplaneError>> {
        Box::pin(async move {
            self.shared
                .publish(session, &events, None)
                .await
                .map(|p| p.ids)
        })
    }

    fn publish_once<'a>(
        &'a self,
        session: &'a SessionId,
        key: &'a IdempotencyKey,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<Published, BackplaneError>> {
        Box::pin(async move { self.shared.publish(session, &events, Some(key)).await })
    }

    fn connect<'a>(
        &'a self,
        session: &'a SessionId,
        opts: ConnectOptions,
    ) -> BoxFuture<'a, Result<EventStream, BackplaneError>> {
        Box::pin(self.shared.connect(session, opts))
    }

    fn status(&self) -> BackplaneStatus {
        self.shared.status()
    }
}

impl Shared {
    fn status(&self) -> BackplaneStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn set_up(&self, up: bool) -> bool {
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if st.up == up {
            return false;
        }
        st.up = up;
        st.since = SystemTime::now();
        metrics::gauge!(m::BACKPLANE_UP).set(if up { 1.0 } else { 0.0 });
        if up {
            tracing::info!(node = %self.cfg.node_id, "SSE backplane up");
        } else {
            tracing::warn!(node = %self.cfg.node_id, "SSE backplane down");
        }
        true
    }

    fn meta_key(&self, s: &SessionId) -> String {
        format!("{}:{{s:{s}}}:meta", self.cfg.prefix)
    }

    fn log_key(&self, s: &SessionId) -> String {
        format!("{}:{{s:{s}}}:log", self.cfg.prefix)
    }

    /// The record of a publish's idempotency key (without a key, a name the script does not
    /// touch, in the session's slot all the same).
    fn idempotency_key(&self, s: &SessionId, key: Option<&IdempotencyKey>) -> String {
        let key = key.map_or("", IdempotencyKey::as_str);
        format!("{}:{{s:{s}}}:idem:{key}", self.cfg.prefix)
    }

    async fn lock(&self, s: &SessionId) -> SessionGuard<'_> {
        let m = self
            .locks
            .entry(s.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let guard = m.clone().lock_owned().await;
        SessionGuard {
            shared: self,
            session: s.clone(),
            guard: Some(guard),
        }
    }

    fn try_lock(&self, s: &SessionId) -> Option<SessionGuard<'_>> {
        let m = self
            .locks
            .entry(s.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let guard = SessionGuard {
            shared: self,
            session: s.clone(),
            guard: m.try_lock_owned().ok(),
        };
        guard.guard.is_some().then_some(guard)
    }

    /// The epoch and head this node holds, as the scripts' fence takes them. A session with
    /// nothing local (head 0) claims no epoch.
    fn seen(&self, s: &SessionId) -> (String, u64) {
        match self.broker.position(s) {
            Some((e, h)) if h > 0 => (epoch_hex(e), h),
            _ => (String::new(), 0),
        }
    }

    async fn warn_on_eviction_policy(&self) {
        let mut con = self.cmd.clone();
        let got: Result<Result<Vec<String>, _>, _> = tokio::time::timeout(
            self.cfg.op_deadline,
            redis::cmd("CONFIG")
                .arg("GET")
                .arg("maxmemory-policy")
                .query_async(&mut con),
        )
        .await;
        if let Ok(Ok(v)) = got
            && let Some(policy) = v.get(1)
            && policy != "noeviction"
        {
            tracing::warn!(policy = %policy, "SSE backplane: Redis maxmemory-policy is not noeviction; evicted sessions will resync");
        }
    }

    async fn publish(
        &self,
        session: &SessionId,
        events: &[Event],
        key: Option<&IdempotencyKey>,
    ) -> Result<Published, BackplaneError> {
        if events.is_empty() {
            return Ok(Published {
                ids: Vec::new(),
                replayed: false,
            });
        }
        let fingerprint = key.map(|_| format!("{:016x}", idempotency::fingerprint(events)));
        let max = self.broker.config().max_event_bytes();
        let mut bodies = Vec::with_capacity(events.len());
        for e in events {
            let body = frame::encode_event(None, e.name(), e.data());
            // The id line adds at most 4 + 16 + 1 + 20 + 1 bytes.
            let size = body.len() + 42;
            if size > max {
                return Err(PublishError::TooLarge { size, max }.into());
            }
            bodies.push(body);
        }
        let guard = self.lock(session).await;
        let (seen_epoch, seen_head) = self.seen(session);
        let candidate = epoch_hex(Epoch::random());
        let mut inv = self.scripts.append.prepare_invoke();
        inv.key(self.meta_key(session))
            .key(self.log_key(session))
            .key(self.idempotency_key(session, key))
            .arg(&candidate)
            .arg(&seen_epoch)
            .arg(seen_head)
            .arg(self.max_events)
            .arg(self.max_bytes)
            .arg(self.ttl_ms)
            .arg(&self.cfg.node_id)
            .arg(self.cfg.inline_max)
            .arg(&self.channel_prefix)
            .arg(session.as_str())
            .arg(fingerprint.as_deref().unwrap_or_default());
        for b in &bodies {
            inv.arg(&b[..]);
        }
        let mut con = self.cmd.clone();
        let started = Instant::now();
        let reply: Value = tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con))
            .await
            .map_err(|_| unavailable("the append timed out"))?
            .map_err(redis_error)?;
        metrics::histogram!(m::APPEND_SECONDS).record(started.elapsed().as_secs_f64());
        let Value::Array(items) = reply else {
            return Err(bad_reply("append"));
        };
        if let (Some(key), Some(fp), [again, record]) = (key, &fingerprint, &items[..])
            && as_str(again) == Some("again")
        {
            drop(guard);
            return replay(key, fp, as_str(record).ok_or_else(|| bad_reply("append"))?);
        }
        if items.len() < 6 {
            return Err(bad_reply("append"));
        }
        let epoch = parse_epoch(as_str(&items[0]).ok_or_else(|| bad_reply("append"))?)?;
        let first = as_u64(&items[1]).ok_or_else(|| bad_reply("append"))?;
        count_epoch_change(as_str(&items[4]).unwrap_or_default());
        let ids: Vec<EventId> = (0..bodies.len() as u64)
            .map(|i| EventId {
                epoch,
                seq: first + i,
            })
            .collect();
        // Into the local ring, so this node's cursors see it; if this node was behind (the
        // session got events through another node), fill from the log instead.
        let mut behind = false;
        for (id, body) in ids.iter().zip(&bodies) {
            match self
                .broker
                .append_next(session, *id, frame_with_id(*id, body))
            {
                Ok(Placed::Stored | Placed::Duplicate) => {}
                Ok(Placed::Gap { .. }) => {
                    behind = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(session = %session, error = %e, "SSE backplane: local ring refused an event stored in Redis");
                    break;
                }
            }
        }
        if behind && let Err(e) = self.sync_locked(session, Claim::None, Why::Read).await {
            // The events are stored in Redis; the next wake, connect or head check fills.
            tracing::warn!(session = %session, error = %e, "SSE backplane: catching up after a publish failed");
        }
        drop(guard);
        Ok(Published {
            ids,
            replayed: false,
        })
    }

    async fn connect(
        &self,
        session: &SessionId,
        opts: ConnectOptions,
    ) -> Result<EventStream, BackplaneError> {
        if let Some(raw) = opts.last_event_id.as_deref() {
            LastEventId::parse(raw).map_err(ConnectError::InvalidLastEventId)?;
        }
        if self.broker.is_draining() {
            return Err(self
                .broker
                .connect(session, opts)
                .err()
                .map_or_else(|| unavailable("draining"), BackplaneError::Connect));
        }
        let token = rand::random::<u64>() | 1;
        let guard = self.lock(session).await;
        // This node's connection that holds the session now, if any: a connect the broker
        // refuses (Reject policy, a superseded client coming back) must leave it in place.
        let previous = self.owned.insert(session.clone(), token);
        let synced = tokio::time::timeout(
            self.cfg.op_deadline,
            self.sync_locked(session, Claim::Force(token), Why::Read),
        )
        .await
        .map_err(|_| unavailable("reading the session from Redis timed out"))
        .and_then(|r| r);
        if let Err(e) = synced {
            // Redis did not answer: asking it again would only add another deadline.
            if let Some(prev) = previous.filter(|_| self.broker.is_connected(session)) {
                self.owned.insert(session.clone(), prev);
            } else {
                self.owned.remove_if(session, |_, t| *t == token);
            }
            return Err(e);
        }
        let result = self.broker.connect(session, opts);
        match result {
            Ok(stream) => {
                drop(guard);
                Ok(stream)
            }
            Err(e) => {
                self.hand_back(session, token, previous).await;
                drop(guard);
                Err(e.into())
            }
        }
    }

    /// Undoes the claim of a connect the broker refused: the session goes back to the
    /// connection of this node that held it (when the broker still has it), else it is
    /// released. Called under the session's lock.
    async fn hand_back(&self, session: &SessionId, token: u64, previous: Option<u64>) {
        match previous.filter(|_| self.broker.is_connected(session)) {
            Some(prev) => {
                if self.owned.get(session).is_some_and(|t| *t.value() == token) {
                    self.owned.insert(session.clone(), prev);
                }
                let mut con = self.cmd.clone();
                let mut inv = self.scripts.restore.prepare_invoke();
                inv.key(self.meta_key(session))
                    .arg(&self.cfg.node_id)
                    .arg(token.to_string())
                    .arg(prev.to_string());
                let restored: Result<Result<Value, _>, _> =
                    tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con)).await;
                if !matches!(restored, Ok(Ok(_))) {
                    // The head check then sees a claim that is not the live connection's and
                    // ends it with `superseded`: the client reconnects, nothing is lost.
                    tracing::warn!(session = %session, "SSE backplane: could not hand the session back to its connection");
                }
            }
            None => {
                if self.owned.remove_if(session, |_, t| *t == token).is_some() {
                    let _ = self.release(session, token).await;
                }
            }
        }
    }

    async fn release(&self, session: &SessionId, token: u64) -> Result<(), BackplaneError> {
        let mut con = self.cmd.clone();
        let mut inv = self.scripts.release.prepare_invoke();
        inv.key(self.meta_key(session))
            .arg(&self.cfg.node_id)
            .arg(token.to_string());
        let _: Value = tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con))
            .await
            .map_err(|_| unavailable("release timed out"))?
            .map_err(redis_error)?;
        Ok(())
    }

    /// Brings the local ring up to the session's log, under the session's lock. Reads in
    /// batches until the ring holds the log's head; when the log lacks what the ring misses,
    /// records the loss (cursors behind it resync) instead of leaving a hole.
    async fn sync_locked(
        &self,
        session: &SessionId,
        claim: Claim,
        why: Why,
    ) -> Result<SyncReply, BackplaneError> {
        let mut claim = claim;
        // Each round reads up to read_batch entries; the log holds at most max_events, so
        // this bounds the rounds even while publishes keep coming.
        let rounds = self.max_events / self.cfg.read_batch + 3;
        let mut last = None;
        for _ in 0..rounds {
            let (seen_epoch, seen_head) = self.seen(session);
            let from = seen_head;
            let (mode, token) = match claim {
                Claim::None => ("", 0),
                Claim::Force(t) => ("force", t),
                Claim::IfNone(t) => ("ifnone", t),
            };
            let mut inv = self.scripts.sync.prepare_invoke();
            inv.key(self.meta_key(session))
                .key(self.log_key(session))
                .arg(epoch_hex(Epoch::random()))
                .arg(&seen_epoch)
                .arg(seen_head)
                .arg(mode)
                .arg(&self.cfg.node_id)
                .arg(token.to_string())
                .arg(self.ttl_ms)
                .arg(&self.channel_prefix)
                .arg(session.as_str())
                .arg(from)
                .arg(self.cfg.read_batch);
            let mut con = self.cmd.clone();
            let reply: Value =
                tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con))
                    .await
                    .map_err(|_| unavailable("reading the log timed out"))?
                    .map_err(redis_error)?;
            let reply = parse_sync(reply)?;
            count_epoch_change(&reply.cause);
            claim = Claim::None;
            let complete = self.apply(session, &reply, why)?;
            last = Some(reply);
            if complete {
                break;
            }
        }
        last.ok_or_else(|| unavailable("no reply"))
    }

    /// Applies a sync reply to the local ring; `true` when the ring now holds the log's head.
    fn apply(&self, session: &SessionId, r: &SyncReply, why: Why) -> Result<bool, BackplaneError> {
        let (le, lh) = self
            .broker
            .position(session)
            .unwrap_or((Epoch::from_u64(0), 0));
        let first = r.entries.first().map_or(r.head + 1, |(seq, _)| *seq);
        if le != r.epoch || lh + 1 < first {
            // What lies between the ring's head and the log's oldest entry is gone.
            self.broker
                .rebase(
                    session,
                    EventId {
                        epoch: r.epoch,
                        seq: first - 1,
                    },
                )
                .map_err(BackplaneError::Publish)?;
        }
        let mut filled = 0u64;
        for (seq, f) in &r.entries {
            let id = EventId {
                epoch: r.epoch,
                seq: *seq,
            };
            match self
                .broker
                .append_next(session, id, f.clone())
                .map_err(BackplaneError::Publish)?
            {
                Placed::Stored => filled += 1,
                Placed::Duplicate => {}
                Placed::Gap { .. } => return Ok(false),
            }
        }
        if why == Why::Gap && filled > 0 {
            metrics::counter!(m::GAPS_FILLED_TOTAL).increment(filled);
        }
        Ok(self
            .broker
            .position(session)
            .is_some_and(|(e, h)| e == r.epoch && h >= r.head))
    }

    /// Handles one message on this node's channel.
    async fn on_message(self: &Arc<Self>, payload: &[u8]) {
        let (header, rest) = match memchr_nl(payload) {
            Some(i) => (&payload[..i], &payload[i + 1..]),
            None => (payload, &payload[payload.len()..]),
        };
        let Ok(header) = std::str::from_utf8(header) else {
            return;
        };
        let mut parts = header.split(' ');
        match parts.next() {
            Some("w") => {
                metrics::counter!(m::WAKES_TOTAL).increment(1);
                if self
                    .drop_wakes
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return;
                }
                let (Some(sid), Some(epoch), Some(first), Some(_last), Some(lens)) = (
                    parts.next().and_then(|s| SessionId::new(s).ok()),
                    parts.next().and_then(|e| parse_epoch(e).ok()),
                    parts.next().and_then(|s| s.parse::<u64>().ok()),
                    parts.next().and_then(|s| s.parse::<u64>().ok()),
                    parts.next(),
                ) else {
                    return;
                };
                let mut frames = Vec::new();
                if lens != "-" {
                    let mut at = 0usize;
                    for len in lens.split(',') {
                        let Some(len) = len.parse::<usize>().ok().filter(|l| at + l <= rest.len())
                        else {
                            frames.clear();
                            break;
                        };
                        frames.push(Bytes::copy_from_slice(&rest[at..at + len]));
                        at += len;
                    }
                }
                // Usually nobody else works on the session: append in order right here.
                if let Some(guard) = self.try_lock(&sid) {
                    if self.apply_wake(&sid, epoch, first, &frames) {
                        return;
                    }
                    drop(guard);
                }
                // The session's lock is held across a Redis call by a publish or connect on
                // this node, or the wake revealed a gap: do not stall other sessions' wakes.
                let this = self.clone();
                tokio::spawn(async move {
                    this.on_wake(&sid, epoch, first, frames).await;
                });
            }
            Some("sup") => {
                let (Some(sid), Some(token)) = (
                    parts.next().and_then(|s| SessionId::new(s).ok()),
                    parts.next().and_then(|s| s.parse::<u64>().ok()),
                ) else {
                    return;
                };
                if self.owned.remove_if(&sid, |_, t| *t == token).is_some() {
                    self.broker.supersede_local(&sid);
                }
            }
            _ => {}
        }
    }

    /// Appends a wake's frames in order; `false` when they do not follow the ring's head (or
    /// came by reference), so the log must be read.
    fn apply_wake(&self, session: &SessionId, epoch: Epoch, first: u64, frames: &[Bytes]) -> bool {
        if frames.is_empty() {
            return false;
        }
        for (i, f) in frames.iter().enumerate() {
            let id = EventId {
                epoch,
                seq: first + i as u64,
            };
            match self.broker.append_next(session, id, f.clone()) {
                Ok(Placed::Stored | Placed::Duplicate) => {}
                Ok(Placed::Gap { .. }) | Err(_) => return false,
            }
        }
        true
    }

    async fn on_wake(&self, session: &SessionId, epoch: Epoch, first: u64, frames: Vec<Bytes>) {
        let _guard = self.lock(session).await;
        let complete = self.apply_wake(session, epoch, first, &frames);
        if !complete && let Err(e) = self.sync_locked(session, Claim::None, Why::Gap).await {
            tracing::warn!(session = %session, error = %e, "SSE backplane: filling a gap failed; the head check retries");
        }
    }

    /// The head check and catch-up pass: for every session this node holds, compares the
    /// local position with Redis's and syncs what differs; gives up ownership of sessions
    /// whose connection is gone.
    async fn check_heads(&self) -> Result<(), BackplaneError> {
        let owned: Vec<(SessionId, u64)> = self
            .owned
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        for chunk in owned.chunks(500) {
            let mut live = Vec::with_capacity(chunk.len());
            for (sid, token) in chunk {
                if self.broker.is_connected(sid) {
                    live.push((sid.clone(), *token));
                    continue;
                }
                // A connect holds the session's lock from its claim until its stream is open:
                // decide under it, or a connect in between would lose its fresh claim.
                let _guard = self.lock(sid).await;
                if !self.broker.is_connected(sid)
                    && self.owned.remove_if(sid, |_, t| t == token).is_some()
                {
                    self.release(sid, *token).await?;
                }
            }
            if live.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for (sid, _) in &live {
                pipe.cmd("HMGET")
                    .arg(self.meta_key(sid))
                    .arg("e")
                    .arg("s")
                    .arg("o")
                    .arg("c");
                // A connected session's idle TTL pauses: its keys live while it is connected.
                pipe.cmd("PEXPIRE")
                    .arg(self.meta_key(sid))
                    .arg(self.ttl_ms)
                    .ignore();
                pipe.cmd("PEXPIRE")
                    .arg(self.log_key(sid))
                    .arg(self.ttl_ms)
                    .ignore();
            }
            let mut con = self.cmd.clone();
            let rows: Vec<Vec<Option<String>>> =
                tokio::time::timeout(self.cfg.op_deadline, pipe.query_async(&mut con))
                    .await
                    .map_err(|_| unavailable("the head check timed out"))?
                    .map_err(redis_error)?;
            for ((sid, token), row) in live.iter().zip(rows) {
                let field = |i: usize| row.get(i).cloned().flatten();
                let (e, s, o, c) = (field(0), field(1), field(2), field(3));
                let token_s = token.to_string();
                let mine = o.as_deref() == Some(self.cfg.node_id.as_str())
                    && c.as_deref() == Some(token_s.as_str());
                let in_step = match (&e, &s, self.broker.position(sid)) {
                    (Some(e), Some(s), Some((le, lh))) => {
                        parse_epoch(e).ok() == Some(le) && s.parse::<u64>().ok() == Some(lh)
                    }
                    _ => false,
                };
                if in_step && mine {
                    continue;
                }
                // Anything else is decided under the session's lock on a fresh read: the row
                // above may predate a connect on this node.
                let _guard = self.lock(sid).await;
                if self.owned.get(sid).map(|t| *t.value()) != Some(*token) {
                    continue;
                }
                let mut con = self.cmd.clone();
                let owner: (Option<String>, Option<String>) = tokio::time::timeout(
                    self.cfg.op_deadline,
                    redis::cmd("HMGET")
                        .arg(self.meta_key(sid))
                        .arg("o")
                        .arg("c")
                        .query_async(&mut con),
                )
                .await
                .map_err(|_| unavailable("the head check timed out"))?
                .map_err(redis_error)?;
                if owner.0.is_some()
                    && (owner.0.as_deref() != Some(self.cfg.node_id.as_str())
                        || owner.1.as_deref() != Some(token_s.as_str()))
                {
                    // Another connection took the session over and its notice was lost.
                    if self.owned.remove_if(sid, |_, t| t == token).is_some() {
                        self.broker.supersede_local(sid);
                    }
                    continue;
                }
                self.sync_locked(sid, Claim::IfNone(*token), Why::Gap)
                    .await?;
            }
        }
        Ok(())
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// Holds one session's backplane lock; forgets the lock when nobody else waits for it.
struct SessionGuard<'a> {
    shared: &'a Shared,
    session: SessionId,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        self.shared
            .locks
            .remove_if(&self.session, |_, m| Arc::strong_count(m) == 1);
    }
}

/// The pub/sub ingest task: wakes and supersede notices for this node.
async fn ingest(shared: Weak<Shared>, mut rx: mpsc::Receiver<PushInfo>, overflow: Arc<AtomicBool>) {
    let mut resubscribe_pending = false;
    while let Some(info) = rx.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if overflow.swap(false, Ordering::AcqRel) {
            shared.catch_up.store(true, Ordering::Release);
        }
        match info.kind {
            PushKind::Message => {
                if let Some(payload) = info.data.get(1).and_then(as_bytes) {
                    shared.on_message(payload).await;
                }
            }
            PushKind::Disconnection => {
                resubscribe_pending = true;
                shared.set_up(false);
            }
            PushKind::Subscribe if resubscribe_pending => {
                // Messages published while the link was down are lost: catch up from the log.
                resubscribe_pending = false;
                shared.catch_up.store(true, Ordering::Release);
            }
            _ => {}
        }
    }
}

/// The supervisor: pings both links (an idle manager would not reconnect by itself), keeps
/// the status, and runs the head check and the catch-up pass.
async fn supervise(shared: Weak<Shared>, overflow: Arc<AtomicBool>) {
    let (health, head_every) = match shared.upgrade() {
        Some(s) => (s.cfg.health_interval, s.cfg.head_check_interval),
        None => return,
    };
    let mut tick = tokio::time::interval(health);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_check = Instant::now();
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let deadline = shared.cfg.op_deadline;
        let ping = |mut con: ConnectionManager| async move {
            let r: Result<Result<String, _>, _> =
                tokio::time::timeout(deadline, redis::cmd("PING").query_async(&mut con)).await;
            matches!(r, Ok(Ok(_)))
        };
        let up = ping(shared.cmd.clone()).await && ping(shared.sub.clone()).await;
        let became_up = shared.set_up(up) && up;
        if !up {
            continue;
        }
        if overflow.swap(false, Ordering::AcqRel) {
            shared.catch_up.store(true, Ordering::Release);
        }
        let due = last_check.elapsed() >= head_every;
        if became_up || due || shared.catch_up.swap(false, Ordering::AcqRel) {
            last_check = Instant::now();
            if let Err(e) = shared.check_heads().await {
                shared.catch_up.store(true, Ordering::Release);
                tracing::warn!(error = %e, "SSE backplane: head check failed; retrying");
            }
        }
    }
}

/// The answer to a publish whose key Redis has seen: the first publish's ids when the
/// fingerprints match, the reused key otherwise. `record` is `'<fingerprint> <epoch> <first> <n>'`.
fn replay(
    key: &IdempotencyKey,
    fingerprint: &str,
    record: &str,
) -> Result<Published, BackplaneError> {
    let mut parts = record.split(' ');
    let (Some(fp), Some(epoch), Some(first), Some(n), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad_reply("idempotency record"));
    };
    if fp != fingerprint {
        return Err(PublishError::IdempotencyKeyReused {
            key: key.to_string(),
        }
        .into());
    }
    let epoch = parse_epoch(epoch)?;
    let (Ok(first), Ok(n)) = (first.parse::<u64>(), n.parse::<u64>()) else {
        return Err(bad_reply("idempotency record"));
    };
    Ok(Published {
        ids: (first..first + n)
            .map(|seq| EventId { epoch, seq })
            .collect(),
        replayed: true,
    })
}
