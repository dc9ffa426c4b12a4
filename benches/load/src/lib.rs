//! Load generator for tether's HTTP contract and for the baselines it is measured against.
//!
//! It opens many SSE connections to `GET /api/sse/session/{id}` with a hand-rolled HTTP/1.1
//! client (no per-event allocation: [`sse::SseParser`] over [`tokio::net::TcpStream`]),
//! publishes through `POST /api/sessions/{id}/events` (JSON-array batches) or lets the server
//! publish in-process (`--self-publish RATE`), and reports per scenario:
//!
//! - delivered events/s over a measured window;
//! - publish-to-receive latency p50/p99/p99.9 (each event carries `"ts"`, its publish time in
//!   unix microseconds, or `"rawEvent":{"ts":..}` in the AG-UI runs of [`agui`]; recorded in
//!   an HDR histogram);
//! - the server's RSS per connection (`VmRSS` of `/proc/PID/status` before and after opening
//!   the connections) and CPU time per delivered event (`utime + stime` of `/proc/PID/stat`
//!   over the window);
//! - connection errors, and events lost or duplicated per session, judged by a sequence number
//!   per session: the `"seq"` the generator wrote into each event it published, or, when the
//!   server publishes in-process, the sequence part of each event id (after the last `-`, so
//!   `<epoch>-<seq>` and plain numbers both work). Gaps announced by a `tether.resync` signal
//!   are counted apart from silent losses.
//!
//! Scenarios live in [`scenario`], [`flood`] (the connection cap filled with idle connections
//! while legitimate requests are timed) and [`evicted`] (a resume from an id the server no
//! longer keeps), the tables and chart built from their JSON lines in [`report`]. Besides
//! servers speaking tether's contract, the generator drives nchan's publisher locations
//! ([`client::ServerKind`]). Only loopback targets are accepted ([`client::Target::parse`]).
//!
//! ```
//! use tether_load::sse::{Frame, SseParser};
//! use tether_load::track::SessionTracker;
//!
//! let mut parser = SseParser::default();
//! let mut tracker = SessionTracker::default();
//! parser.feed(b"id: e1-1\ndata: {\"ts\":1}\n\nid: e1-3\ndata: {}\n\n", &mut |frame: Frame<'_>| {
//!     tracker.on_frame(frame);
//! });
//! assert_eq!((tracker.delivered, tracker.lost), (2, 1));
//! ```

#![doc(test(attr(deny(warnings))))]

pub mod agui;
pub mod client;
pub mod evicted;
pub mod flood;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod sse;
pub mod track;
