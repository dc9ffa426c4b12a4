//! The server shell (feature `server`): what every server of tether's contract does around
//! the [`Service`](crate::http::Service), written once.
//!
//! - [`SseListener`]: the listen backlog, socket options on accept, and one accept-error
//!   policy;
//! - [`serve`]: the hub's HTTP/1.1 connection loop, written for long-lived streams (an idle
//!   stream keeps no request buffer), with graceful drain through
//!   [`Broker::shutdown`](crate::Broker::shutdown);
//! - [`serve_connection`]: that loop on one accepted connection, for tests and fuzzing;
//! - [`serve_hyper`] (feature `hyper`): the same shell around a hyper service, for the axum
//!   and warp adapters;
//! - [`limits`]: how many connections a server keeps, how long it waits for a request, and
//!   what the connection past the limit is told;
//! - [`ConnectionGate`]: those limits for a server with an accept loop of its own
//!   (actix-web), applied to each connection it accepts.
//!
//! The adapters use [`SseListener`] and [`Broker::shutdown`](crate::Broker::shutdown) around
//! their framework's own server.

mod gate;
mod http1;
#[cfg(feature = "hyper")]
mod hyper_shell;
pub mod limits;
mod listener;
mod shed;

pub use gate::{ConnectionActivity, ConnectionGate, KeptConnection};
pub use http1::{serve, serve_connection, serve_io};
#[cfg(feature = "hyper")]
pub use hyper_shell::serve_hyper;
pub use limits::ConnectionLimits;
pub use listener::SseListener;
