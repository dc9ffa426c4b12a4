//! Every AG-UI 1.0 event as a serde type.
//!
//! The shapes follow the zod schemas of `@ag-ui/core` 1.0.0, which the official
//! client validates every incoming event with:
//!
//! - [`Event`] is tagged by `"type"` with the SCREAMING_SNAKE names of
//!   [`EVENT_TYPES`]; fields are camelCase.
//! - An optional field is absent or has a value. `None` is never written, and
//!   reading `null` in an optional position is an error, as it is for the
//!   client, except for the legacy nulls the client's compatibility boundary
//!   still turns into absent fields: `rawEvent` on any event, `result` on
//!   `RUN_FINISHED` and `SUBAGENT_FINISHED`, `parentMessageId` on
//!   `TOOL_CALL_START` and `TOOL_CALL_CHUNK`, and `outcome` on `RUN_FINISHED`.
//!   Those read as `None`.
//! - `timestamp` is an integer number of milliseconds; integers are bounded to
//!   JavaScript's safe range (±(2^53 - 1)).
//! - Values the protocol leaves open (`CUSTOM.value`, `STATE_SNAPSHOT.snapshot`,
//!   `RAW.event`, `rawEvent`, metadata values) are [`serde_json::Value`] and
//!   round-trip unchanged.
//! - No 1.0 schema is strict: every object is a zod `looseObject`, so unknown
//!   properties parse. The client then strips them, with a warning, before
//!   anything sees the event. These types do the same: unknown properties are
//!   accepted and not kept. [`Event::dropped_members`] lists what was dropped,
//!   for a caller that wants to refuse or log it.
//! - A union member 1.0 does not know (an event `type`, an outcome `type`, a
//!   content part `type`, a patch `op`) is an error here. The client silently
//!   drops such material instead; refusing it keeps a producer from sending
//!   something whose meaning a 1.0 client would lose.

#[macro_use]
mod fields;

mod de;
mod messages;
mod patch;
mod run;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::de::present;
pub use self::messages::{
    ActivityMessage, AssistantMessage, Content, ContentPart, DataSource, DeveloperMessage,
    FileSource, FunctionCall, MediaPart, Message, PartSource, ReasoningMessage, SystemMessage,
    TextPart, ToolCall, ToolCallKind, ToolMessage, UrlSource, UserMessage,
};
pub use self::patch::{
    InvalidPointer, JsonPatch, JsonPatchOperation, JsonPointer, PatchError, apply_patch,
};
pub use self::run::{
    Context, Interrupt, ResumeEntry, ResumeStatus, RunAgentInput, RunFinishedOutcome,
    SubagentFinishedOutcome, TokenUsage, Tool,
};

/// Extra information attached to an event, a message, a tool call, a tool, an
/// interrupt or a resume entry: a JSON object, open by key. The key `ag-ui` is
/// reserved for the protocol.
pub type Metadata = serde_json::Map<String, Value>;

/// The protocol version these types implement.
pub const PROTOCOL_VERSION: &str = "1.0";

macro_rules! events {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// Any AG-UI 1.0 event, tagged by `"type"`.
        ///
        /// ```
        /// use tether_agui::{Event, TextMessageContent};
        ///
        /// let event: Event = serde_json::from_str(
        ///     r#"{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"Hi"}"#,
        /// )?;
        /// assert_eq!(event.type_name(), "TEXT_MESSAGE_CONTENT");
        ///
        /// let built = Event::from(TextMessageContent {
        ///     message_id: "m1".into(),
        ///     delta: "Hi".into(),
        ///     ..Default::default()
        /// });
        /// assert_eq!(built, event);
        /// # Ok::<(), serde_json::Error>(())
        /// ```
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
        #[non_exhaustive]
        pub enum Event {
            $( $(#[$doc])* $variant($variant), )*
        }

        /// The `type` of every AG-UI 1.0 event, in the order of the protocol's
        /// event union.
        pub const EVENT_TYPES: &[&str] = &[$($name),*];

        impl Event {
            /// The `type` discriminator as it appears on the wire, e.g.
            /// `"RUN_STARTED"`.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( Event::$variant(_) => $name, )*
                }
            }
        }

        $(
            impl From<$variant> for Event {
                fn from(event: $variant) -> Self {
                    Event::$variant(event)
                }
            }
        )*
    };
}

events! {
    /// Opens a streamed text message.
    TextMessageStart => "TEXT_MESSAGE_START",
    /// Appends to a streamed text message.
    TextMessageContent => "TEXT_MESSAGE_CONTENT",
    /// Closes a streamed text message.
    TextMessageEnd => "TEXT_MESSAGE_END",
    /// Shorthand for a text message's start, content and end.
    TextMessageChunk => "TEXT_MESSAGE_CHUNK",
    /// Opens a tool call.
    ToolCallStart => "TOOL_CALL_START",
    /// Appends to a tool call's arguments.
    ToolCallArgs => "TOOL_CALL_ARGS",
    /// Closes a tool call.
    ToolCallEnd => "TOOL_CALL_END",
    /// Shorthand for a tool call's start, args and end.
    ToolCallChunk => "TOOL_CALL_CHUNK",
    /// What a tool returned.
    ToolCallResult => "TOOL_CALL_RESULT",
    /// Replaces the agent state.
    StateSnapshot => "STATE_SNAPSHOT",
    /// Patches the agent state.
    StateDelta => "STATE_DELTA",
    /// The complete set of messages the producer owns.
    MessagesSnapshot => "MESSAGES_SNAPSHOT",
    /// Structured progress that is not conversation content.
    ActivitySnapshot => "ACTIVITY_SNAPSHOT",
    /// Patches an activity's content.
    ActivityDelta => "ACTIVITY_DELTA",
    /// A provider-native event passed through.
    Raw => "RAW",
    /// An application's own event.
    Custom => "CUSTOM",
    /// Opens a run.
    RunStarted => "RUN_STARTED",
    /// Closes a run that did not fail.
    RunFinished => "RUN_FINISHED",
    /// Ends a run that failed.
    RunError => "RUN_ERROR",
    /// Opens a named step.
    StepStarted => "STEP_STARTED",
    /// Closes a named step.
    StepFinished => "STEP_FINISHED",
    /// Opens a span of reasoning.
    ReasoningStart => "REASONING_START",
    /// Opens a streamed reasoning message.
    ReasoningMessageStart => "REASONING_MESSAGE_START",
    /// Appends to a streamed reasoning message.
    ReasoningMessageContent => "REASONING_MESSAGE_CONTENT",
    /// Closes a streamed reasoning message.
    ReasoningMessageEnd => "REASONING_MESSAGE_END",
    /// Shorthand for a reasoning message's start, content and end.
    ReasoningMessageChunk => "REASONING_MESSAGE_CHUNK",
    /// Closes a span of reasoning.
    ReasoningEnd => "REASONING_END",
    /// A provider's encrypted reasoning artefact.
    ReasoningEncryptedValue => "REASONING_ENCRYPTED_VALUE",
    /// A subagent invocation began.
    SubagentStarted => "SUBAGENT_STARTED",
    /// A subagent invocation's segment of the run ended.
    SubagentFinished => "SUBAGENT_FINISHED",
    /// A subagent invocation failed.
    SubagentError => "SUBAGENT_ERROR",
}

/// Whether `type_name` is the `type` of an AG-UI 1.0 event.
///
/// ```
/// assert!(tether_agui::is_agui_type("RUN_STARTED"));
/// assert!(!tether_agui::is_agui_type("THINKING_START"));
/// assert!(!tether_agui::is_agui_type("run_started"));
/// ```
pub fn is_agui_type(type_name: &str) -> bool {
    EVENT_TYPES.contains(&type_name)
}

/// Why a JSON document is not an AG-UI 1.0 event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The bytes are not JSON.
    #[error("the event is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The document is not an object with a string `type`.
    #[error("an AG-UI event is a JSON object with a string `type`")]
    NotAnEvent,
    /// The `type` is not one of [`EVENT_TYPES`].
    #[error("`{0}` is not an AG-UI 1.0 event type")]
    UnknownType(String),
    /// The `type` is known but the event does not match its schema.
    #[error("invalid {type_name} event: {source}")]
    Invalid {
        /// The event's `type`.
        type_name: &'static str,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
}

impl Event {
    /// Parses one event from JSON bytes.
    ///
    /// ```
    /// use tether_agui::{Event, EventError};
    ///
    /// let event = Event::from_slice(br#"{"type":"RUN_STARTED","threadId":"t1","runId":"r1"}"#)?;
    /// assert_eq!(event.type_name(), "RUN_STARTED");
    ///
    /// let err = Event::from_slice(br#"{"type":"THINKING_START"}"#).unwrap_err();
    /// assert!(matches!(err, EventError::UnknownType(_)));
    /// # Ok::<(), EventError>(())
    /// ```
    pub fn from_slice(json: &[u8]) -> Result<Event, EventError> {
        let value: Value = serde_json::from_slice(json).map_err(EventError::Json)?;
        Event::from_value(value)
    }

    /// Parses one event from a JSON value, telling apart a document that is
    /// not an event, an unknown `type`, and a known type with invalid fields.
    pub fn from_value(value: Value) -> Result<Event, EventError> {
        let type_name = match value.as_object().and_then(|object| object.get("type")) {
            Some(Value::String(type_name)) => type_name,
            _ => return Err(EventError::NotAnEvent),
        };
        let Some(&type_name) = EVENT_TYPES.iter().find(|known| **known == type_name) else {
            return Err(EventError::UnknownType(type_name.clone()));
        };
        serde_json::from_value(value).map_err(|source| EventError::Invalid { type_name, source })
    }

    /// The event as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("an Event always serializes to JSON")
    }

    /// The members of `raw` that this event, parsed from it, does not carry,
    /// as JSON Pointers: properties the 1.0 schemas do not describe (the
    /// official client strips these and warns), legacy `null`s that read as
    /// absent, and members of a JSON Patch operation that RFC 6902 does not
    /// define (the client keeps those; RFC 6902 says to ignore them). Empty
    /// when the event writes back exactly what `raw` holds.
    ///
    /// ```
    /// use serde_json::json;
    /// use tether_agui::Event;
    ///
    /// let raw = json!({"type": "CUSTOM", "name": "n", "value": 1, "colour": "red"});
    /// let event = Event::from_value(raw.clone())?;
    /// assert_eq!(event.dropped_members(&raw), ["/colour"]);
    /// # Ok::<(), tether_agui::EventError>(())
    /// ```
    pub fn dropped_members(&self, raw: &Value) -> Vec<String> {
        let mut dropped = Vec::new();
        let mut path = String::new();
        collect_dropped(raw, &self.to_value(), &mut path, &mut dropped);
        dropped
    }
}

fn collect_dropped(raw: &Value, kept: &Value, path: &mut String, dropped: &mut Vec<String>) {
    match (raw, kept) {
        (Value::Object(raw), Value::Object(kept)) => {
            for (key, raw_value) in raw {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                match kept.get(key) {
                    Some(kept_value) => collect_dropped(raw_value, kept_value, path, dropped),
                    None => dropped.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(raw), Value::Array(kept)) if raw.len() == kept.len() => {
            for (index, (raw_value, kept_value)) in raw.iter().zip(kept).enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&index.to_string());
                collect_dropped(raw_value, kept_value, path, dropped);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The roles a streamed text message may take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextMessageRole {
    /// `"developer"`.
    Developer,
    /// `"system"`.
    System,
    /// `"assistant"`.
    #[default]
    Assistant,
    /// `"user"`.
    User,
}

/// The `role` of `REASONING_MESSAGE_START`: always `"reasoning"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningRole {
    /// `"reasoning"`.
    #[default]
    Reasoning,
}

/// The `role` of `TOOL_CALL_RESULT`: when present, always `"tool"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolRole {
    /// `"tool"`.
    #[default]
    Tool,
}

/// What a `REASONING_ENCRYPTED_VALUE` belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EncryptedValueSubtype {
    /// `"tool-call"`: `entityId` names a tool call.
    #[serde(rename = "tool-call")]
    ToolCall,
    /// `"message"`: `entityId` names a text or reasoning message.
    #[default]
    #[serde(rename = "message")]
    Message,
}

attributed_event! {
    /// `TEXT_MESSAGE_START`: opens a streamed text message, continued by
    /// `TEXT_MESSAGE_CONTENT` and closed by `TEXT_MESSAGE_END`.
    #[derive(Default)]
    pub struct TextMessageStart {
        /// Message id.
        pub message_id: String,
        /// The author's role.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub role: Option<TextMessageRole>,
        /// Optional author name.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub name: Option<String>,
    }
}

attributed_event! {
    /// `TEXT_MESSAGE_CONTENT`: appends `delta` to an open text message.
    #[derive(Default)]
    pub struct TextMessageContent {
        /// Message id.
        pub message_id: String,
        /// The text to append.
        pub delta: String,
    }
}

attributed_event! {
    /// `TEXT_MESSAGE_END`: closes a streamed text message.
    #[derive(Default)]
    pub struct TextMessageEnd {
        /// Message id.
        pub message_id: String,
    }
}

attributed_event! {
    /// `TEXT_MESSAGE_CHUNK`: shorthand the client expands into start, content and
    /// end events. Every field is optional; a continuation chunk omits what has
    /// not changed, but the first chunk of a message must carry `messageId`.
    #[derive(Default)]
    pub struct TextMessageChunk {
        /// Message id.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub message_id: Option<String>,
        /// The author's role.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub role: Option<TextMessageRole>,
        /// The text to append.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub delta: Option<String>,
        /// Optional author name.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub name: Option<String>,
    }
}

attributed_event! {
    /// `TOOL_CALL_START`: opens a tool call, continued by `TOOL_CALL_ARGS` and
    /// closed by `TOOL_CALL_END`.
    #[derive(Default)]
    pub struct ToolCallStart {
        /// Tool call id.
        pub tool_call_id: String,
        /// The tool called.
        pub tool_call_name: String,
        /// The assistant message carrying the call. A legacy `null` reads as
        /// absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parent_message_id: Option<String>,
    }
}

attributed_event! {
    /// `TOOL_CALL_ARGS`: appends to an open tool call's arguments.
    #[derive(Default)]
    pub struct ToolCallArgs {
        /// Tool call id.
        pub tool_call_id: String,
        /// A fragment of the JSON arguments.
        pub delta: String,
    }
}

attributed_event! {
    /// `TOOL_CALL_END`: closes a tool call; its arguments are complete.
    #[derive(Default)]
    pub struct ToolCallEnd {
        /// Tool call id.
        pub tool_call_id: String,
    }
}

attributed_event! {
    /// `TOOL_CALL_CHUNK`: shorthand the client expands into start, args and end
    /// events. The first chunk of a call must carry `toolCallId` and
    /// `toolCallName`.
    #[derive(Default)]
    pub struct ToolCallChunk {
        /// Tool call id.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub tool_call_id: Option<String>,
        /// The tool called.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub tool_call_name: Option<String>,
        /// The assistant message carrying the call. A legacy `null` reads as
        /// absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parent_message_id: Option<String>,
        /// A fragment of the JSON arguments.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub delta: Option<String>,
    }
}

attributed_event! {
    /// `TOOL_CALL_RESULT`: what a tool returned. Creates a tool message with its
    /// own `messageId`.
    pub struct ToolCallResult {
        /// The tool message this result becomes.
        pub message_id: String,
        /// The call answered.
        pub tool_call_id: String,
        /// Text, or a list of parts.
        pub content: Content,
        /// Always `"tool"` when present.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub role: Option<ToolRole>,
    }
}

attributed_event! {
    /// `STATE_SNAPSHOT`: replaces the agent state wholesale.
    #[derive(Default)]
    pub struct StateSnapshot {
        /// The new state: any JSON value, `null` included. Required.
        pub snapshot: Value,
    }
}

attributed_event! {
    /// `STATE_DELTA`: changes the agent state with a JSON Patch.
    #[derive(Default)]
    pub struct StateDelta {
        /// The patch.
        pub delta: JsonPatch,
    }
}

event! {
    /// `MESSAGES_SNAPSHOT`: the complete set of messages the producer owns, in
    /// order. Conversation-wide, so it carries no subagent attribution.
    #[derive(Default)]
    pub struct MessagesSnapshot {
        /// The messages.
        pub messages: Vec<Message>,
    }
}

attributed_event! {
    /// `ACTIVITY_SNAPSHOT`: structured progress, kept in the message sequence as
    /// an activity message.
    #[derive(Default)]
    pub struct ActivitySnapshot {
        /// The activity message's id.
        pub message_id: String,
        /// What kind of activity this is, as the application names it.
        pub activity_type: String,
        /// The activity's content: a JSON object.
        pub content: Metadata,
        /// Whether this snapshot replaces an existing activity message with the
        /// same id (absent means yes).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub replace: Option<bool>,
    }
}

attributed_event! {
    /// `ACTIVITY_DELTA`: changes an activity message's content with a JSON Patch.
    #[derive(Default)]
    pub struct ActivityDelta {
        /// The activity message's id.
        pub message_id: String,
        /// What kind of activity this is.
        pub activity_type: String,
        /// The patch, applied to the content.
        pub patch: JsonPatch,
    }
}

attributed_event! {
    /// `RAW`: a provider-native event passed through untranslated.
    #[derive(Default)]
    pub struct Raw {
        /// The provider's event: any JSON value, `null` included. Required.
        pub event: Value,
        /// Where it came from.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub source: Option<String>,
    }
}

attributed_event! {
    /// `CUSTOM`: the protocol's extension point for an application's own events.
    ///
    /// ```
    /// use serde_json::json;
    /// use tether_agui::{Custom, Event};
    ///
    /// let event = Event::from(Custom {
    ///     name: "tether.resync".into(),
    ///     value: json!({"reason": "evicted"}),
    ///     ..Default::default()
    /// });
    /// assert_eq!(
    ///     serde_json::to_string(&event)?,
    ///     r#"{"type":"CUSTOM","name":"tether.resync","value":{"reason":"evicted"}}"#,
    /// );
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[derive(Default)]
    pub struct Custom {
        /// The event's name.
        pub name: String,
        /// Its payload: any JSON value, `null` included. Required.
        pub value: Value,
    }
}

event! {
    /// `RUN_STARTED`: opens a run. Run-scoped, so it carries no subagent
    /// attribution.
    #[derive(Default)]
    pub struct RunStarted {
        /// The conversation thread.
        pub thread_id: String,
        /// The run.
        pub run_id: String,
        /// The protocol version the producer speaks, `"1.0"`.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub protocol_version: Option<String>,
        /// The run this one continues from.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub parent_run_id: Option<String>,
        /// The input the run was started with, echoed back.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub input: Option<Box<RunAgentInput>>,
    }
}

event! {
    /// `RUN_FINISHED`: closes a run that did not fail. Run-scoped, so it carries
    /// no subagent attribution.
    ///
    /// ```
    /// use tether_agui::{Event, Interrupt, RunFinished, RunFinishedOutcome};
    ///
    /// let event = Event::from(RunFinished {
    ///     thread_id: "t1".into(),
    ///     run_id: "r1".into(),
    ///     outcome: Some(RunFinishedOutcome::Interrupt {
    ///         interrupts: vec![Interrupt {
    ///             id: "approval-1".into(),
    ///             reason: "approval".into(),
    ///             expires_at: Some("2030-01-01T00:00:00Z".into()),
    ///             ..Default::default()
    ///         }],
    ///     }),
    ///     ..Default::default()
    /// });
    /// assert_eq!(
    ///     serde_json::to_string(&event)?,
    ///     r#"{"type":"RUN_FINISHED","threadId":"t1","runId":"r1","outcome":{"type":"interrupt","interrupts":[{"id":"approval-1","reason":"approval","expiresAt":"2030-01-01T00:00:00Z"}]}}"#,
    /// );
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[derive(Default)]
    pub struct RunFinished {
        /// The conversation thread.
        pub thread_id: String,
        /// The run.
        pub run_id: String,
        /// The run's result: any JSON value except `null`. A legacy `null` reads
        /// as absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub result: Option<Value>,
        /// Why the run ended; absent means success. A legacy `null` reads as
        /// absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub outcome: Option<RunFinishedOutcome>,
        /// Tokens the run used, per provider and model.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub usage: Option<Vec<TokenUsage>>,
    }
}

event! {
    /// `RUN_ERROR`: ends a run that failed. Run-scoped, so it carries no subagent
    /// attribution.
    #[derive(Default)]
    pub struct RunError {
        /// What went wrong.
        pub message: String,
        /// A machine-readable code.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub code: Option<String>,
        /// Tokens the run used, per provider and model.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub usage: Option<Vec<TokenUsage>>,
    }
}

attributed_event! {
    /// `STEP_STARTED`: opens a named step within a run.
    #[derive(Default)]
    pub struct StepStarted {
        /// The step's name.
        pub step_name: String,
    }
}

attributed_event! {
    /// `STEP_FINISHED`: closes a named step.
    #[derive(Default)]
    pub struct StepFinished {
        /// The step's name.
        pub step_name: String,
    }
}

attributed_event! {
    /// `REASONING_START`: opens a span of reasoning, which may hold several
    /// reasoning messages.
    #[derive(Default)]
    pub struct ReasoningStart {
        /// The span's id.
        pub message_id: String,
    }
}

attributed_event! {
    /// `REASONING_MESSAGE_START`: opens a streamed reasoning message.
    #[derive(Default)]
    pub struct ReasoningMessageStart {
        /// Message id.
        pub message_id: String,
        /// Always `"reasoning"`; required.
        pub role: ReasoningRole,
    }
}

attributed_event! {
    /// `REASONING_MESSAGE_CONTENT`: appends to an open reasoning message.
    #[derive(Default)]
    pub struct ReasoningMessageContent {
        /// Message id.
        pub message_id: String,
        /// The text to append.
        pub delta: String,
    }
}

attributed_event! {
    /// `REASONING_MESSAGE_END`: closes a streamed reasoning message.
    #[derive(Default)]
    pub struct ReasoningMessageEnd {
        /// Message id.
        pub message_id: String,
    }
}

attributed_event! {
    /// `REASONING_MESSAGE_CHUNK`: shorthand the client expands into a reasoning
    /// message's start, content and end. The first chunk must carry `messageId`.
    #[derive(Default)]
    pub struct ReasoningMessageChunk {
        /// Message id.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub message_id: Option<String>,
        /// The text to append.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub delta: Option<String>,
    }
}

attributed_event! {
    /// `REASONING_END`: closes a span of reasoning.
    #[derive(Default)]
    pub struct ReasoningEnd {
        /// The span's id.
        pub message_id: String,
    }
}

attributed_event! {
    /// `REASONING_ENCRYPTED_VALUE`: a provider's opaque, encrypted reasoning
    /// artefact that a consumer stores and returns on a later turn.
    #[derive(Default)]
    pub struct ReasoningEncryptedValue {
        /// Whether `entity_id` names a message or a tool call.
        pub subtype: EncryptedValueSubtype,
        /// The message or tool call the value belongs to.
        pub entity_id: String,
        /// The encrypted value.
        pub encrypted_value: String,
    }
}

event! {
    /// `SUBAGENT_STARTED`: a subagent invocation began. Its `subagentRunId`
    /// identifies the invocation; later events carrying it belong to it.
    #[derive(Default)]
    pub struct SubagentStarted {
        /// The invocation's id, unique within the run.
        pub subagent_run_id: String,
        /// The subagent's name.
        pub name: String,
        /// What the subagent does.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub description: Option<String>,
        /// The enclosing subagent invocation, when nested.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub parent_subagent_run_id: Option<String>,
        /// The tool call that delegated to the subagent.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub parent_tool_call_id: Option<String>,
        /// The message that delegated to the subagent.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub parent_message_id: Option<String>,
    }
}

event! {
    /// `SUBAGENT_FINISHED`: a subagent invocation's segment of the run ended,
    /// completed or suspended.
    #[derive(Default)]
    pub struct SubagentFinished {
        /// The invocation's id.
        pub subagent_run_id: String,
        /// Its result: any JSON value except `null`. A legacy `null` reads as
        /// absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub result: Option<Value>,
        /// Why it ended; absent means success.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub outcome: Option<SubagentFinishedOutcome>,
    }
}

event! {
    /// `SUBAGENT_ERROR`: a subagent invocation failed. The run may go on.
    #[derive(Default)]
    pub struct SubagentError {
        /// The invocation's id.
        pub subagent_run_id: String,
        /// What went wrong.
        pub message: String,
        /// A machine-readable code.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub code: Option<String>,
    }
}
