//! # tether-replay
//!
//! A test harness for services that stream events with tether: write down a session as a
//! **transcript** (who publishes what, which clients connect, read, stall, drop and come
//! back, who approves what, what each must observe), replay it against a broker in this
//! process or against a deployed service over HTTP, and get every broken rule back with the
//! step, client and event it concerns.
//!
//! It is shaped like `tracing-mock` and `tokio-test`: set expectations, run, then
//! [`assert_finished`](Report::assert_finished).
//!
//! ```
//! use serde_json::json;
//! use tether_replay::Transcript;
//!
//! let transcript = Transcript::new()
//!     .connect("tab", "user-42")
//!     .publish("user-42", json!({"type": "progress", "pct": 10}))
//!     .drop_client("tab")
//!     .publish("user-42", json!({"type": "progress", "pct": 20}))
//!     .resume("tab", "user-42")
//!     .expect_events("tab", [json!({"type": "progress", "pct": 10}), json!({"type": "progress", "pct": 20})]);
//!
//! // In process, on a paused clock: deterministic and instant.
//! tether_replay::replay_in_process(&transcript).assert_finished();
//! ```
//!
//! The same transcript, written as JSON Lines, runs against a service:
//! `tether replay session.jsonl --url http://127.0.0.1:8080` (see [`run_cli`]; it first
//! checks that the service's settings, from `/health/sse`, are those the transcript needs),
//! against a hub started for it with them (`--spawn`), or [`Http::run`] from a test.
//!
//! ## The transcript format
//!
//! JSON Lines, one step per line, each with an `op` and optionally `at_ms` (milliseconds
//! since the start; absent: right after the previous step). An optional first line
//! `{"op":"config",...}` sets `keepalive_ms`, `client_timeout_ms`, `ring_max_events`,
//! `ring_max_bytes`, `max_event_bytes`, `approval_timeout_ms`, `connection_policy` and
//! `silence_tolerance_ms`; the server settings it names are the ones a server must have
//! ([`Transcript::server_needs`]). The steps:
//!
//! - `publish` (`session`, `event` or `events`, `name`?, `pad_bytes`?): publish one event or a
//!   batch;
//! - `connect` (`client`, `session`, `resume`?, `last_event_id`?, `client_id`?): open a
//!   stream, fresh or resuming with the last id that client saw;
//! - `read` (`client`, `events`?, `within_ms`?): wait for n more events, or until caught up;
//! - `stall` (`client`, `ms`): stop reading for a while; `drop` (`client`): close;
//! - `supersede` (`client`, `by`, `resume`?): another client takes the session over;
//! - `request_approval` (`session`, `approval`, `payload`?, `title`?, `timeout_ms`?) and
//!   `decide` (`session`, `approval`, `approved`, `reason`?, `expect`?);
//! - `advance` (`ms`): time passes;
//! - `expect_events` (`client`, `events`, `match`?), `expect_resync` (`client`, `reason`?),
//!   `expect_ended` (`client`, `superseded`?), `expect_approval` (`session`, `approval`,
//!   `outcome`), each with an optional `within_ms`.
//!
//! The full description, with what each step waits for, is in [`transcript_format`]
//! (`TRANSCRIPTS.md` in the crate).
//!
//! ## What is always checked
//!
//! Besides the transcript's expectations, the [checker](check) verifies over everything the
//! clients received: order, no duplicates, every gap preceded by a `tether.resync`, the
//! content of each event, no silence longer than the keepalive interval plus a tolerance,
//! approvals decided exactly once, superseded streams ending.
//!
//! ## Pieces
//!
//! - [`Transcript`]: the format, a parser and a writer, and a builder for tests.
//! - [`driver`]: [`InProcess`] (a [`tether_core::Broker`] on a paused clock) and [`Http`]
//!   (a small HTTP/1.1 client over TCP, for any service that exposes tether's HTTP contract);
//!   implement [`Driver`] to run transcripts against something else or to inject faults.
//! - [`run`]: the engine, one reader task per connection; [`Report`]: notes and violations.
//! - [`Recorder`]: wraps a broker and its clients' streams, and writes what happened as a
//!   transcript that replays it.
//! - [`strategy`] (feature `proptest`): generated transcripts, and a check that writes a
//!   shrunk failure to `target/replay-failures/` as a transcript that replays it.
//! - [`sse`]: the blocks of an SSE stream, read with the spec-following parser of
//!   `tether_core::sse_parse`.
//!
//! ## Where the dependencies are used
//!
//! | crate | for |
//! |---|---|
//! | tether-core | the in-process driver, the recorder, event id parsing |
//! | tokio | reader tasks, the paused clock (`test-util`), TCP for the HTTP driver |
//! | futures-util / futures-core | the `Stream` of a connection's bytes |
//! | serde / serde_json | the transcript format, events, HTTP bodies |
//! | bytes | received chunks |
//! | proptest (optional) | transcript strategies |
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `proptest` | yes | [`strategy`]: transcript strategies and the failure-writing check |
//! | `fuzzing` | no | `fuzzing`: the checks the fuzz targets and the corpus replay test share |
#![doc(test(attr(deny(warnings))))]

pub mod check;
mod cli;
pub mod driver;
mod engine;
pub mod log;
mod recorder;
mod report;
mod spawn;
pub mod sse;
mod transcript;

#[cfg(feature = "proptest")]
pub mod strategy;

#[cfg(feature = "fuzzing")]
mod fuzz_hub;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use cli::run_cli;
pub use driver::{Driver, Http, HttpOptions, InProcess};
pub use engine::{DEFAULT_WITHIN_MS, Timing, is_subset, run};
pub use recorder::{RecordedApproval, RecordedStream, Recorder};
pub use report::{Report, Rule, StepNote, Violation};
pub use transcript::{
    Action, DecideExpect, Match, Outcome, ParseError, Policy, SERVER_SETTINGS, SettingMismatch,
    Settings, Step, Transcript,
};

/// The transcript format in full (`TRANSCRIPTS.md`).
#[doc = include_str!("../TRANSCRIPTS.md")]
pub mod transcript_format {}

/// Runs `future` on a new current-thread runtime whose clock is paused, so timers fire in
/// virtual time as soon as every task is idle.
pub fn block_on_paused<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

/// Replays a transcript against a new in-process broker built from its settings, on a
/// paused clock of its own runtime. Deterministic; call it outside any runtime (from a plain
/// `#[test]`).
///
/// # Panics
/// Inside a tokio runtime (a runtime cannot be started from within another).
pub fn replay_in_process(transcript: &Transcript) -> Report {
    block_on_paused(async {
        let mut driver = InProcess::from_settings(&transcript.settings);
        driver.run(transcript).await
    })
}
