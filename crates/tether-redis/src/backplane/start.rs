//! Starting a node: the two links, the subscription, the metrics and the tasks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use redis::aio::ConnectionManagerConfig;
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo};
use tether_core::{BackplaneError, BackplaneStatus, Broker};
use tokio::sync::mpsc;

use super::approvals::sweep_deadlines;
use super::link::Link;
use super::reply::unavailable;
use super::supervisor::supervise;
use super::wakes::ingest;
use super::{Probe, RedisBackplane, Shared};
use crate::config::RedisConfig;
use crate::metrics as m;
use crate::scripts::Scripts;

impl RedisBackplane {
    /// Connects to Redis (one multiplexed command connection and one pub/sub connection),
    /// subscribes to this node's channel and spawns the ingest and supervisor tasks on the
    /// current tokio runtime.
    ///
    /// # Errors
    /// [`BackplaneError::Unavailable`] when the URL is invalid or Redis cannot be reached
    /// within the operation deadline.
    pub async fn start(broker: Broker, cfg: RedisConfig) -> Result<Self, BackplaneError> {
        let links = Links::open(&cfg).await?;
        let bc = broker.config();
        let shared = Arc::new(Shared {
            max_events: cfg.log_max_events.unwrap_or(bc.ring_max_events()),
            max_bytes: cfg.log_max_bytes.unwrap_or(bc.ring_max_bytes()),
            ttl_ms: (cfg.ttl.unwrap_or(bc.session_ttl()).as_millis() as u64).max(1),
            broker,
            cmd: links.cmd,
            sub: links.sub,
            scripts: Scripts::new(),
            channel_prefix: links.channel_prefix,
            channel: links.channel,
            owned: DashMap::new(),
            locks: DashMap::new(),
            status: Mutex::new(BackplaneStatus {
                up: true,
                node_id: cfg.node_id.clone(),
                since: SystemTime::now(),
            }),
            catch_up: AtomicBool::new(false),
            drop_wakes: AtomicU64::new(0),
            drop_supersedes: AtomicU64::new(0),
            probe: Probe::default(),
            deadlines: Default::default(),
            tasks: Mutex::new(Vec::new()),
            metrics: m::Handles::register(),
            cfg,
        });
        shared.warn_on_eviction_policy().await;
        let ingest = tokio::spawn(ingest(
            Arc::downgrade(&shared),
            links.pushes,
            links.overflow.clone(),
        ));
        let supervisor = tokio::spawn(supervise(Arc::downgrade(&shared), links.overflow));
        let sweeper = tokio::spawn(sweep_deadlines(Arc::downgrade(&shared)));
        if let Ok(mut t) = shared.tasks.lock() {
            t.push(ingest);
            t.push(supervisor);
            t.push(sweeper);
        }
        tracing::info!(node = %shared.cfg.node_id, channel = %shared.channel, "SSE backplane up");
        Ok(Self { shared })
    }
}

/// A node's two links to Redis, subscribed to the node's channel.
struct Links {
    cmd: Link,
    sub: Link,
    channel_prefix: String,
    channel: String,
    /// What the pub/sub link receives, for the ingest task.
    pushes: mpsc::Receiver<PushInfo>,
    /// Set when `pushes` was full and a message was dropped.
    overflow: Arc<AtomicBool>,
}

impl Links {
    /// Opens the multiplexed command link and the RESP3 pub/sub link (each within the
    /// operation deadline) and subscribes to this node's channel.
    async fn open(cfg: &RedisConfig) -> Result<Self, BackplaneError> {
        let info = cfg
            .url
            .as_str()
            .into_connection_info()
            .map_err(unavailable)?;
        let cmd_client = redis::Client::open(info.clone()).map_err(unavailable)?;
        let sub_info = {
            let redis = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            info.set_redis_settings(redis)
        };
        let sub_client = redis::Client::open(sub_info).map_err(unavailable)?;

        let (tx, pushes) = mpsc::channel::<PushInfo>(cfg.push_queue);
        let overflow = Arc::new(AtomicBool::new(false));
        let overflow_flag = overflow.clone();
        let sender = move |info: PushInfo| -> Result<(), ()> {
            if tx.try_send(info).is_err() {
                overflow_flag.store(true, Ordering::Release);
            }
            Ok(())
        };
        let cmd = Link::open(cmd_client, manager_config(cfg), None, cfg.op_deadline).await?;
        let sub_config = manager_config(cfg)
            .set_push_sender(sender)
            .set_automatic_resubscription();
        let channel_prefix = format!("{}:node:", cfg.prefix);
        let channel = format!("{channel_prefix}{}", cfg.node_id);
        let sub = Link::open(
            sub_client,
            sub_config,
            Some(channel.clone()),
            cfg.op_deadline,
        )
        .await?;
        Ok(Self {
            cmd,
            sub,
            channel_prefix,
            channel,
            pushes,
            overflow,
        })
    }
}

/// Each link answers within a second (or the operation deadline, if shorter) and retries a
/// lost connection twice, so a call never outlives its deadline by much.
fn manager_config(cfg: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(cfg.op_deadline.min(Duration::from_secs(1))))
        .set_connection_timeout(Some(cfg.op_deadline.min(Duration::from_secs(1))))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}

impl Shared {
    pub(super) async fn warn_on_eviction_policy(&self) {
        let mut con = self.cmd.get();
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
}
