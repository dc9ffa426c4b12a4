//! AG-UI for tether.
//!
//! [AG-UI](https://docs.ag-ui.com) is the event protocol between AI agents and
//! the user interfaces that show them. This crate makes every stream tether
//! writes for an AG-UI session pass the official client's checks
//! (`@ag-ui/client` 1.0), replays and resyncs included:
//!
//! - [`events`]: every AG-UI 1.0 event, message and run input as serde types
//!   ([`Event`], [`Message`], [`RunAgentInput`]) that accept and produce
//!   exactly what the official client accepts: optional fields are absent
//!   rather than `null`, timestamps are integer milliseconds.
//! - [`RunTracker`] and [`AguiTrackerFactory`]: the session tracker that
//!   validates what is published and renders snapshots and signals.
//! - [`AguiRuns`] and [`RunPublisher`]: runs for agent code, with approvals as
//!   interrupts.
//! - [`Verifier`] and [`verify_sse`]: the client's `verifyEvents` rules in
//!   Rust, for tests.
//!
//! # The run tracker
//!
//! Register [`AguiTrackerFactory`] on the broker; it installs a [`RunTracker`]
//! on a session from the first published event whose `type` is an AG-UI 1.0
//! type. From then on every event published to the session goes through it:
//!
//! - An event is parsed with the 1.0 schema and checked against the sequence
//!   rules of `verifyEvents` (the first event is `RUN_STARTED`; content,
//!   arguments and ends need their opener; `RUN_FINISHED` needs everything
//!   closed; only `RUN_STARTED` or `RUN_ERROR` between runs, so no `CUSTOM`
//!   there; subagent attribution must agree with the opener). An event that
//!   would make the stream invalid is refused (HTTP 400) with the client's
//!   reason, and the tracker stays as it was: one bad event would break every
//!   replay. Events of a type AG-UI does not know pass through (the client
//!   drops them unseen); the pre-1.0 `THINKING_*` types and the `*_CHUNK`
//!   shorthands are refused, since a resync could not re-open them.
//! - It keeps the open run (thread and run id), what the run has open (text
//!   messages and tool calls with their text and arguments so far, reasoning
//!   spans and messages, steps, subagents), the completed messages as a
//!   `MESSAGES_SNAPSHOT` carries them (user, assistant, system and developer
//!   messages with their content, tool calls on assistant messages, tool
//!   results), and the state (`STATE_SNAPSHOT`, then each `STATE_DELTA`
//!   applied as a JSON Patch with [`apply_patch`]; a patch that does not apply
//!   leaves the state as it was, as the client does).
//!
//! Memory is bounded by [`TrackerLimits`]: 4 MiB of completed messages (the
//! oldest are dropped from the snapshot), 4 MiB of state, 4 MiB of content
//! streamed into the open entities of a run and 256 open entities (both
//! refused beyond), all by default.
//!
//! # The prelude
//!
//! A client that resumes exactly (its `Last-Event-ID` is still in the ring)
//! continues its stream with no prelude. A client whose id was evicted or
//! belongs to another epoch, or that joins mid-run without an id, or that
//! asks with `prelude=always`, gets a prelude, and the stream continues with
//! the events after the head:
//!
//! 1. `RUN_STARTED` with the run's thread and run id (between runs, the last
//!    run's),
//! 2. `MESSAGES_SNAPSHOT` of the completed messages, then `STATE_SNAPSHOT`
//!    once the state is known,
//! 3. the `tether.resync` `CUSTOM` signal, when history was lost,
//! 4. inside a run: the start events of everything open, in the order it was
//!    opened, each with its content so far (`TEXT_MESSAGE_START` and one
//!    `TEXT_MESSAGE_CONTENT`, `TOOL_CALL_START` and one `TOOL_CALL_ARGS`,
//!    `STEP_STARTED`, `REASONING_START`, `REASONING_MESSAGE_START` and its
//!    content, `SUBAGENT_STARTED`), so the live `TEXT_MESSAGE_CONTENT` that
//!    follows continues the same message;
//! 5. between runs: `RUN_FINISHED`, whose outcome is `interrupt` listing every
//!    pending approval as an interrupt, or `success` when none is pending.
//!
//! ```text
//! retry: 2731
//!
//! data: {"type":"RUN_STARTED","threadId":"t1","runId":"r1"}
//!
//! data: {"type":"MESSAGES_SNAPSHOT","messages":[{"role":"user","id":"u1","content":"Hi"}]}
//!
//! data: {"type":"CUSTOM","name":"tether.resync","value":{"reason":"evicted","lastEventId":"9f2c-3","resumeFrom":"9f2c-42","skipped":12}}
//!
//! data: {"type":"TEXT_MESSAGE_START","messageId":"m1","role":"assistant"}
//!
//! data: {"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"Hello, how can I"}
//!
//! id: 9f2c-41
//!
//! id: 9f2c-42
//! data: {"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":" help?"}
//!
//! ```
//!
//! A connection that falls behind the ring ends (its client reconnects and
//! gets the prelude on a fresh response) instead of receiving a prelude in the
//! middle of a run it already has open.
//!
//! # Where signals go
//!
//! | signal | inside a run | between runs |
//! |---|---|---|
//! | `tether.resync` | `CUSTOM` in the prelude | `CUSTOM` in a synthetic run: `RUN_STARTED` (last run id), snapshots, signal, `RUN_FINISHED` with the pending interrupts |
//! | approval notices (stored) | `CUSTOM` | the same synthetic run, stored |
//! | pending approvals (prelude) | `CUSTOM` `tether.approval.requested`, unless already announced as an interrupt | interrupts of the synthetic `RUN_FINISHED` |
//! | `tether.superseded`, `tether.drain` | `CUSTOM`, then the stream ends | an SSE comment, then the stream ends |
//! | heartbeats | SSE comments | SSE comments |
//!
//! Before a session's first run nothing AG-UI may be written; a prelude is
//! then empty and a terminal signal is a comment.
//!
//! # Approvals as interrupts
//!
//! [`RunPublisher::request_tool_approval`] creates a silent tether approval
//! and ends the run with `RUN_FINISHED` whose outcome is `interrupt`: the
//! interrupt's id is the approval's id, with the reason, the `toolCallId` and
//! `expiresAt` (the approval's deadline, RFC 3339). The agent awaits the
//! returned [`ApprovalHandle`](tether_core::ApprovalHandle). The decision
//! comes either through tether's decision route
//! (`POST /api/sessions/{thread}/approvals/{id}/decision`, i.e.
//! [`Broker::decide`](tether_core::Broker::decide)) or as a `resume` entry of
//! the client's next `RunAgentInput`, which [`AguiRuns`] maps to `decide` or
//! `cancel_approval` exactly once ([`decision_from_resume`]): an answer for an
//! approval already decided through the route is accepted as it is; a
//! `cancelled` answer after the deadline lets the thread continue; a
//! `resolved` answer after the deadline fails that run with `RUN_ERROR`, and
//! the waiting agent has seen `TimedOut`. [`RunPublisher::next_run`] then
//! continues in the client's answering run, or in a run of the agent's own.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use serde_json::json;
//! use tether_agui::{AguiRuns, AguiTrackerFactory, ClientRun, ResumeEntry, ResumeStatus, RunAgentInput};
//! use tether_core::{ApprovalStatus, Broker};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::builder().tracker_factory(Arc::new(AguiTrackerFactory::new())).start().expect("valid config");
//! let runs = AguiRuns::new(broker.clone());
//!
//! // The agent streams a message, proposes a tool call and asks for approval.
//! let mut run = runs.start_run("t1", "r1")?;
//! run.text("m1", "I will delete the file.")?;
//! run.tool_call_start("tc1", "delete_file", Some("m1"))?;
//! run.tool_call_args("tc1", r#"{"path":"/tmp/x"}"#)?;
//! run.tool_call_end("tc1")?;
//! let approval = run.request_tool_approval("tc1", "approval", json!({"path": "/tmp/x"}), Duration::from_secs(60))?;
//! let approval_id = approval.id().to_owned();
//!
//! let agent = tokio::spawn(async move {
//!     let outcome = approval.await;
//!     // Continue in the client's answering run.
//!     let input = run.next_run(Duration::from_secs(5)).await?;
//!     assert!(input.is_some());
//!     let text = if matches!(outcome, ApprovalStatus::Approved { .. }) { "Deleted." } else { "Kept it." };
//!     run.text("m2", text)?;
//!     run.finish(None)?;
//!     Ok::<_, tether_agui::AguiError>(())
//! });
//!
//! // The client answers the interrupt in its next run.
//! let input = RunAgentInput {
//!     thread_id: "t1".into(),
//!     run_id: "r2".into(),
//!     resume: Some(vec![ResumeEntry {
//!         interrupt_id: approval_id,
//!         status: ResumeStatus::Resolved,
//!         payload: Some(json!({"approved": true})),
//!         metadata: None,
//!     }]),
//!     ..Default::default()
//! };
//! let started = runs.reserve(&input)?.start(input)?;
//! assert!(matches!(started, ClientRun::Resumed { .. }));
//! agent.await??;
//! let mut end = started.end();
//! assert!(end.wait().await.is_some());
//! # Ok(()) }
//! ```
//!
//! # Serving runs
//!
//! Each adapter (`tether-axum`, `tether-actix`, `tether-warp`) with its `agui`
//! feature mounts `POST /api/agui/run` (`http::RunRoute`, feature `http`): a
//! `RunAgentInput` in, the run's stream out, with the agent running as a task
//! of its own so a dropped request does not stop it ([`AguiRuns::reserve`] and
//! [`Reservation::start`] are the pieces it is made of, for other frameworks).
//! `tether serve` registers [`AguiTrackerFactory`], so its sessions that carry
//! AG-UI events are tracked with no flag.
//!
//! The crate's tests check all of this against `@ag-ui/core` and
//! `@ag-ui/client` 1.0.0 themselves: `tests/conformance/` holds Node scripts
//! that validate events with the official schemas and run raw SSE bodies
//! through the official client's pipeline, and
//! `tests/conformance/FINDINGS.md` records what that client accepts on the
//! wire.

#![doc(test(attr(deny(warnings))))]

pub mod events;
#[cfg(feature = "http")]
pub mod http;
mod runs;
#[cfg(feature = "sample-runs")]
pub mod sample;
mod tracker;
mod verify;

pub use events::*;
pub use runs::{
    AguiError, AguiRuns, ClientRun, Reservation, RunEnd, RunPublisher, decision_from_resume,
};
pub use tracker::{AguiTrackerFactory, RunTracker, TrackerLimits};
pub use verify::{StreamError, Verifier, VerifyError, sse_data, verify_sse};
