//! The server shell (feature `server`): what every server of tether's contract does around
//! the [`Service`](crate::http::Service), written once.
//!
//! - [`SseListener`]: the listen backlog, socket options on accept, and one accept-error
//!   policy;
//! - [`serve`]: the hub's HTTP/1.1 connection loop, written for long-lived streams (an idle
//!   stream keeps no request buffer), with graceful drain through
//!   [`Broker::shutdown`](crate::Broker::shutdown);
//! - [`serve_connection`]: that loop on one accepted connection, for tests and fuzzing.
//!
//! The adapters use [`SseListener`] and [`Broker::shutdown`](crate::Broker::shutdown) around
//! their framework's own server.

mod http1;
mod listener;

pub use http1::{serve, serve_connection};
pub use listener::SseListener;
