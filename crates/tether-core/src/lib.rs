//! # tether-core
//!
//! The broker behind tether: it lets a web service stream live events to browsers over
//! Server-Sent Events without losing one. **A client that reconnects gets every event exactly
//! once and in order, or an explicit in-band signal that it must resync, never a silent gap.**
//!
//! Depend on this crate to embed the broker in any async Rust service, or to write an adapter
//! for a web framework; the `tether-axum`, `tether-actix` and `tether-warp` crates are such
//! adapters. It depends on no web framework.
//!
//! ```
//! use futures_util::StreamExt;
//! use tether_core::{Broker, ConnectOptions, SessionId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::builder().start()?;
//! let session = SessionId::new("user-42")?;
//!
//! // Publishing never waits for a subscriber; it returns the event's id.
//! let first = broker.publish(&session, &serde_json::json!({"type": "progress", "pct": 10}))?;
//!
//! // A connection is a stream of ready-to-write SSE bytes: `retry:` first, then events.
//! let mut stream = broker.connect(&session, ConnectOptions::default())?;
//! let opening = stream.next().await.unwrap();
//! assert!(opening.starts_with(b"retry: "));
//! let event = stream.next().await.unwrap();
//! assert!(std::str::from_utf8(&event)?.starts_with(&format!("id: {first}\n")));
//!
//! // A client that comes back with its Last-Event-ID resumes exactly after it.
//! drop(stream);
//! broker.publish(&session, &serde_json::json!({"type": "progress", "pct": 20}))?;
//! let mut resumed = broker.connect(&session, ConnectOptions::resume(first.to_string()))?;
//! resumed.next().await; // retry:
//! let next = resumed.next().await.unwrap();
//! assert!(std::str::from_utf8(&next)?.contains(r#""pct":20"#));
//! # Ok(()) }
//! ```
//!
//! ## Model
//!
//! - A **session** (id of 1 to 128 chars of `[A-Za-z0-9._:-]`) holds an ordered ring of
//!   encoded frames bounded by count and bytes, at most one connection, and its pending
//!   approvals. Event ids are `<epoch>-<seq>`; the epoch changes with each incarnation.
//! - **The ring is the queue**: a connection is a cursor into the ring and a wake-up. Frames
//!   are encoded once at publish time and shared as [`bytes::Bytes`].
//! - **Resume**: a `Last-Event-ID` still in the ring resumes exactly; an evicted, foreign or
//!   future id gets a `tether.resync` signal (and the session tracker's snapshot, if any).
//! - **One connection per session**: [`ConnectionPolicy::Replace`] (the old stream ends with a
//!   `tether.superseded` signal) or [`ConnectionPolicy::Reject`].
//! - **Heartbeats** after `keepalive_interval` without a write; **client timeout** for readers
//!   that stall; **approvals** with deadlines; **drain** for rolling restarts.
//!
//! ## Where the dependencies are used
//!
//! | crate | for |
//! |---|---|
//! | tokio | timers (heartbeat sleeps, the driver's deadline map), `watch` for approval outcomes, `Notify` for the driver and idle waits |
//! | dashmap | the session registry; no reference is held across an `.await` or a session lock |
//! | parking_lot | the per-session lock (short, never held across `.await`) |
//! | bytes | encoded frames, shared between replay and live delivery |
//! | serde / serde_json | events, signals, approvals |
//! | metrics / tracing | the runbook's metric names and log lines ([`metrics`](mod@crate::metrics)) |
//! | socket2 | TCP keepalive and `TCP_USER_TIMEOUT` ([`net`]) |
//! | proptest, tokio-stream (dev) | the model test and stream helpers in tests |
//!
//! The broker needs no broadcast channel: the ring is the queue, so a session has no
//! per-subscriber buffers to fan out to, and drain notices are a flag and a wake-up per
//! connection.
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `http` | [`http`](mod@crate::http): the framework-neutral HTTP layer every adapter shares |
//! | `server` | [`server`](mod@crate::server): the server shell (listener, accept policy, the HTTP/1.1 connection loop); implies `http` |
//! | `prometheus` | [`metrics::install_prometheus`]: the Prometheus recorder with the runbook's histogram buckets |
//! | `jwt` | [`auth`]: signed access tokens (JWT) with session patterns, key sets from secrets, PEM and JWKS files (jsonwebtoken, pure-Rust crypto) |
#![doc(test(attr(deny(warnings))))]

mod approval;
mod backplane;
mod broker;
mod budget;
mod config;
mod driver;
mod error;
pub mod frame;
mod id;
pub mod idempotency;
mod limits;
pub mod metrics;
pub mod net;
mod resume;
mod ring;
mod session;
mod settings;
mod shutdown;
mod signal;
pub mod sse_parse;
mod stream;

#[cfg(any(feature = "jwt", feature = "http"))]
pub mod auth;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "server")]
pub mod server;

pub use approval::{
    ApprovalHandle, ApprovalInfo, ApprovalRequest, ApprovalStatus, Decision, Payload,
    PreparedApproval,
};
pub use backplane::{
    Backplane, BackplaneError, BackplaneHealth, BackplaneStatus, BoxFuture, Judged, Placed,
};
pub use broker::{Broker, ClientInfo, ConnectOptions, Health, event_name};
pub use config::{
    BrokerBuilder, Config, ConfigError, ConnectionPolicy, HeartbeatStyle, RateLimit, Setting,
};
pub use driver::BrokerDriver;
pub use error::{ApprovalError, ConnectError, DecideError, PublishError, SerializeError};
pub use frame::{EventName, InvalidEventName};
pub use id::{Epoch, EventId, IdKind, InvalidId, LastEventId, MAX_ID_LEN, SessionId, is_valid_id};
pub use session::Event;
pub use settings::BrokerSettings;
pub use shutdown::SHUTDOWN_GRACE;
pub use signal::{
    Refusal, Resync, ResyncReason, SessionTracker, Signal, SnapshotProvider, Terminal,
    TrackerFactory, default_prelude,
};
pub use stream::EventStream;

/// The README's examples, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
