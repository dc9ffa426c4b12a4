//! AG-UI for tether.
//!
//! [AG-UI](https://docs.ag-ui.com) is the event protocol between AI agents and
//! the user interfaces that show them. This crate holds every AG-UI 1.0 event,
//! message and run input as serde types ([`Event`], [`Message`],
//! [`RunAgentInput`]) that accept and produce exactly what the official
//! TypeScript client (`@ag-ui/client` 1.0) accepts: optional fields are absent
//! rather than `null`, timestamps are integer milliseconds, and the legacy
//! shapes the client still tolerates read as their 1.0 equivalents. The
//! [`events`] module documents each rule; all its items are re-exported here.
//!
//! ```
//! use serde_json::json;
//! use tether_agui::{Event, RunFinished, RunStarted, TextMessageContent, is_agui_type};
//!
//! // Parse what a publisher sent, telling apart unknown types and bad fields.
//! let event = Event::from_slice(br#"{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"Hi"}"#)?;
//! assert_eq!(event.type_name(), "TEXT_MESSAGE_CONTENT");
//! assert!(is_agui_type(event.type_name()));
//!
//! // Build events in Rust; unset optional fields are left out of the JSON.
//! let started = Event::from(RunStarted {
//!     thread_id: "t1".into(),
//!     run_id: "r1".into(),
//!     timestamp: Some(1_700_000_000_000),
//!     ..Default::default()
//! });
//! assert_eq!(
//!     started.to_value(),
//!     json!({"type": "RUN_STARTED", "threadId": "t1", "runId": "r1", "timestamp": 1_700_000_000_000_i64}),
//! );
//!
//! let content = Event::from(TextMessageContent {
//!     message_id: "m1".into(),
//!     delta: "Hi".into(),
//!     ..Default::default()
//! });
//! assert_eq!(content, event);
//!
//! let finished = Event::from(RunFinished { thread_id: "t1".into(), run_id: "r1".into(), ..Default::default() });
//! assert_eq!(serde_json::to_string(&finished)?, r#"{"type":"RUN_FINISHED","threadId":"t1","runId":"r1"}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crate's tests check these types against `@ag-ui/core` 1.0.0 itself:
//! `tests/conformance/` holds Node scripts that validate events with the
//! official zod schemas and run raw SSE bodies through the official client's
//! pipeline, and `tests/conformance/FINDINGS.md` records what that client
//! accepts on the wire.

#![doc(test(attr(deny(warnings))))]

pub mod events;

pub use events::*;
