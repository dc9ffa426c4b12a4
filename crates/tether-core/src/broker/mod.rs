//! The broker: the handle every operation goes through, and the state its clones share.
//!
//! Each operation on that state has its own module, so a reader finds one job in one file:
//!
//! | module | job |
//! |---|---|
//! | `registry` | finding or creating a session under the session caps, forgetting it |
//! | `accounting` | the broker-wide byte totals the memory budget reads, and append metrics |
//! | `publish` | publishing events and backplane frames, declaring history lost |
//! | `connect` | opening a connection under the one-connection policy, and its end |
//! | `approvals` | requesting, deciding and waiting for approvals; their deadlines |
//! | `drain` | graceful drain for rolling restarts |
//! | `sweep` | stalled readers and idle sessions, swept by the driver |
//! | `health` | the health snapshot and counts |
//! | `tracked` | a tracker for sessions a backplane feeds: judging first, checkpoints, rebuilds |
//!
//! The memory budget itself is [`crate::budget`]; where a stream starts reading, and what it
//! says first, is [`crate::resume`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{BrokerBuilder, Config, ConfigError};
use crate::driver::BrokerDriver;
use crate::error::PublishError;
use crate::frame::EventName;
use crate::id::SessionId;
use crate::metrics as m;
use crate::session::{Now, Session};

mod accounting;
mod approvals;
pub(crate) use approvals::approval_id;
mod connect;
mod drain;
mod health;
mod publish;
mod registry;
mod sweep;
mod tracked;

pub use connect::{ClientInfo, ConnectOptions};
pub use health::Health;

/// Signals from the broker to its driver task.
pub(crate) struct DriverSignal {
    pub(crate) changed: Notify,
    pub(crate) shutdown: AtomicBool,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) sessions: DashMap<SessionId, Arc<Session>>,
    session_count: AtomicUsize,
    /// Sessions created by connects, per identity.
    subject_sessions: Mutex<HashMap<Arc<str>, usize>>,
    pub(crate) ring_bytes: AtomicUsize,
    /// Bytes held by the sessions' trackers and approval payloads (see
    /// [`SessionState::held_state`]); with `ring_bytes`, what the memory budget covers.
    pub(crate) state_bytes: AtomicUsize,
    pub(crate) connections: AtomicUsize,
    pub(crate) draining: AtomicBool,
    drain_window_ms: AtomicU64,
    conn_ids: AtomicU64,
    pub(crate) deadlines: Mutex<BTreeMap<(Instant, u64), (SessionId, String)>>,
    deadline_seq: AtomicU64,
    pub(crate) driver: Arc<DriverSignal>,
    pub(crate) idle: Notify,
    start: Instant,
    pub(crate) limits: crate::limits::LimitBook,
    /// The budget's clock hand over every session (see [`crate::budget`]).
    pub(crate) clock: crate::budget::Clock,
    /// The metric handles, registered at build (see [`Broker::rebind_metrics`]).
    metrics: parking_lot::RwLock<Arc<m::Handles>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.driver.shutdown.store(true, Ordering::Release);
        self.driver.changed.notify_one();
    }
}

/// The broker. Cheap to clone: every clone is a handle to the same sessions.
///
/// See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("sessions", &self.inner.sessions.len())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl BrokerBuilder {
    /// Builds the broker and the future that drives its timers (approval deadlines, stalled
    /// connections, session expiry). Spawn the driver on a tokio runtime; it ends when the
    /// last broker handle is dropped.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first setting the broker cannot run with (see each
    /// setter's doc).
    pub fn build(self) -> Result<(Broker, BrokerDriver), ConfigError> {
        self.config.check()?;
        let driver = Arc::new(DriverSignal {
            changed: Notify::new(),
            shutdown: AtomicBool::new(false),
        });
        let inner = Arc::new(Inner {
            config: self.config,
            sessions: DashMap::new(),
            session_count: AtomicUsize::new(0),
            subject_sessions: Mutex::new(HashMap::new()),
            ring_bytes: AtomicUsize::new(0),
            state_bytes: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            drain_window_ms: AtomicU64::new(0),
            conn_ids: AtomicU64::new(0),
            deadlines: Mutex::new(BTreeMap::new()),
            deadline_seq: AtomicU64::new(0),
            driver: driver.clone(),
            idle: Notify::new(),
            start: Instant::now(),
            limits: Default::default(),
            clock: Default::default(),
            metrics: parking_lot::RwLock::new(Arc::new(m::Handles::register())),
        });
        let c = &inner.config;
        inner.limits.declare("sessions", c.max_sessions as u64);
        inner
            .limits
            .declare("memory_budget_bytes", c.total_ring_bytes as u64);
        inner
            .limits
            .declare("batch_events", c.max_batch_events as u64);
        inner
            .limits
            .declare("pending_approvals", c.max_pending_approvals as u64);
        inner
            .limits
            .declare("approval_bytes", c.max_approval_bytes() as u64);
        let drv = BrokerDriver::new(Arc::downgrade(&inner), driver);
        Ok((Broker { inner }, drv))
    }

    /// Builds the broker and spawns its driver on the current tokio runtime.
    ///
    /// # Errors
    /// [`ConfigError`], as [`build`](Self::build).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> Result<Broker, ConfigError> {
        let (broker, driver) = self.build()?;
        tokio::spawn(driver);
        Ok(broker)
    }
}

impl Inner {
    /// The metric handles.
    pub(crate) fn mx(&self) -> parking_lot::RwLockReadGuard<'_, Arc<m::Handles>> {
        self.metrics.read()
    }

    pub(crate) fn now(&self) -> Now {
        let at = Instant::now();
        Now {
            at,
            ms: at.saturating_duration_since(self.start).as_millis() as u64 + 1,
        }
    }
}

impl Broker {
    /// A builder with the runbook's defaults.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// Registers the broker's metric handles again, with the recorder installed now, and
    /// sets the gauges to the broker's current state. A broker registers them when it is
    /// built, so a recorder installed later sees nothing until this is called (see the
    /// [`metrics`](crate::metrics) module). Counters and histograms start over in the new
    /// recorder.
    pub fn rebind_metrics(&self) {
        let handles = m::Handles::register();
        handles
            .active_connections
            .set(self.inner.connections.load(Ordering::Acquire) as f64);
        handles
            .sessions_active
            .set(self.inner.sessions.len() as f64);
        *self.inner.metrics.write() = Arc::new(handles);
    }

    /// The broker's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}

/// Validates an SSE event name (helper for adapters' `?event=NAME`).
pub fn event_name(name: &str) -> Result<EventName, PublishError> {
    EventName::new(name).map_err(PublishError::from)
}
