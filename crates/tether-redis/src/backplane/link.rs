//! A link to Redis that the supervisor can rebuild.
//!
//! A `ConnectionManager` reconnects after an I/O error, but a link that merely goes silent
//! (a blackhole, a NAT entry gone, a proxy that forgot the connection) gives it none: every
//! call times out and the manager keeps the dead connection for good. A [`Link`] holds the
//! manager behind a lock, so the supervisor can swap in a fresh one while every caller keeps
//! calling [`Link::get`].

use std::sync::RwLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tether_core::BackplaneError;

use super::reply::unavailable;

/// Failed pings in a row after which a link is rebuilt: one may be a slow moment, two at a
/// second apart are a link that does not answer.
const FAILURES_BEFORE_REBUILD: u32 = 2;

pub(super) struct Link {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// The channel a pub/sub link subscribes to (again, after a rebuild).
    channel: Option<String>,
    current: RwLock<ConnectionManager>,
    failures: AtomicU32,
}

impl Link {
    /// Connects (and subscribes to `channel`, if any) within `deadline`.
    pub(super) async fn open(
        client: redis::Client,
        config: ConnectionManagerConfig,
        channel: Option<String>,
        deadline: Duration,
    ) -> Result<Self, BackplaneError> {
        let manager = connect(&client, &config, channel.as_deref(), deadline).await?;
        Ok(Self {
            client,
            config,
            channel,
            current: RwLock::new(manager),
            failures: AtomicU32::new(0),
        })
    }

    /// The link's manager now, for one call or pipeline.
    pub(super) fn get(&self) -> ConnectionManager {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// PINGs the link within `deadline`; after [`FAILURES_BEFORE_REBUILD`] failures in a row,
    /// replaces it with a new connection (which fails as well while Redis is away, and is
    /// tried again at the next ping). Returns whether the link answered.
    pub(super) async fn check(&self, deadline: Duration) -> bool {
        if ping(self.get(), deadline).await {
            self.failures.store(0, Ordering::Release);
            return true;
        }
        if self.failures.fetch_add(1, Ordering::AcqRel) + 1 >= FAILURES_BEFORE_REBUILD {
            return self.rebuild(deadline).await.is_ok();
        }
        false
    }

    /// Replaces the link with a new connection, subscribed again when it is the pub/sub
    /// link. The old one closes when its last in-flight call ends.
    pub(super) async fn rebuild(&self, deadline: Duration) -> Result<(), BackplaneError> {
        let fresh = connect(
            &self.client,
            &self.config,
            self.channel.as_deref(),
            deadline,
        )
        .await?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.failures.store(0, Ordering::Release);
        tracing::info!(
            pubsub = self.channel.is_some(),
            "SSE backplane: rebuilt a Redis link"
        );
        Ok(())
    }
}

async fn connect(
    client: &redis::Client,
    config: &ConnectionManagerConfig,
    channel: Option<&str>,
    deadline: Duration,
) -> Result<ConnectionManager, BackplaneError> {
    let fut = async {
        let mut manager =
            ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        if let Some(channel) = channel {
            manager.subscribe(channel).await?;
        }
        Ok::<_, redis::RedisError>(manager)
    };
    tokio::time::timeout(deadline, fut)
        .await
        .map_err(|_| unavailable("connecting timed out"))?
        .map_err(unavailable)
}

async fn ping(mut con: ConnectionManager, deadline: Duration) -> bool {
    let r: Result<Result<String, _>, _> =
        tokio::time::timeout(deadline, redis::cmd("PING").query_async(&mut con)).await;
    matches!(r, Ok(Ok(_)))
}
