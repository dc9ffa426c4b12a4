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
mod lifecycle;
mod messages;
mod patch;
mod reasoning;
mod run;
mod special;
mod state;
mod subagent;
mod text;
mod tool;

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::lifecycle::{RunError, RunFinished, RunStarted, StepFinished, StepStarted};
pub use self::messages::{
    ActivityMessage, AssistantMessage, Content, ContentPart, DataSource, DeveloperMessage,
    FileSource, FunctionCall, MediaPart, Message, PartSource, ReasoningMessage, SystemMessage,
    TextPart, ToolCall, ToolCallKind, ToolMessage, UrlSource, UserMessage,
};
pub use self::patch::{
    InvalidPointer, JsonPatch, JsonPatchOperation, JsonPointer, PatchError, apply_patch,
};
pub use self::reasoning::{
    EncryptedValueSubtype, ReasoningEncryptedValue, ReasoningEnd, ReasoningMessageChunk,
    ReasoningMessageContent, ReasoningMessageEnd, ReasoningMessageStart, ReasoningRole,
    ReasoningStart,
};
pub use self::run::{
    Context, Interrupt, ResumeEntry, ResumeStatus, RunAgentInput, RunFinishedOutcome,
    SubagentFinishedOutcome, TokenUsage, Tool,
};
pub use self::special::{Custom, Raw};
pub use self::state::{
    ActivityDelta, ActivitySnapshot, MessagesSnapshot, StateDelta, StateSnapshot,
};
pub use self::subagent::{SubagentError, SubagentFinished, SubagentStarted};
pub use self::text::{
    TextMessageChunk, TextMessageContent, TextMessageEnd, TextMessageRole, TextMessageStart,
};
pub use self::tool::{
    ToolCallArgs, ToolCallChunk, ToolCallEnd, ToolCallResult, ToolCallStart, ToolRole,
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

        impl Event {
            /// Parses `json`, already known to hold `"type": type_name`, straight into the
            /// struct of that type: `None` for a type 1.0 does not know, or when the struct
            /// does not take the document (the caller then parses it the slow way, for the
            /// error it reports).
            fn typed(type_name: &str, json: &str) -> Option<Event> {
                match type_name {
                    $( $name => serde_json::from_str::<$variant>(json).ok().map(Event::$variant), )*
                    _ => None,
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

/// Parses one event from JSON text, as [`Event::from_slice`] does from bytes.
///
/// ```
/// use tether_agui::Event;
///
/// let event: Event = r#"{"type":"TEXT_MESSAGE_END","messageId":"m1"}"#.parse()?;
/// assert_eq!(event.type_name(), "TEXT_MESSAGE_END");
/// # Ok::<(), tether_agui::EventError>(())
/// ```
impl std::str::FromStr for Event {
    type Err = EventError;

    fn from_str(json: &str) -> Result<Event, EventError> {
        Event::from_text(json).unwrap_or_else(|| Event::from_tree(json.as_bytes()))
    }
}

/// The `type` of a document that starts the way producers write one, `{"type":"NAME"`, when
/// no other member can be a `type` (the tree would take the last): the letters of `type` have
/// no escape but `\u`, so a second `type` member would show as `"type"` or a `\u` somewhere.
/// A `"type"` inside a string would have its quotes escaped. `None` leaves the document to
/// [`TypeTag`].
fn leading_type(json: &str) -> Option<&str> {
    let rest = json.strip_prefix(r#"{"type":""#)?;
    let end = memchr::memchr(b'"', rest.as_bytes())?;
    let (ty, after) = rest.split_at(end);
    let plain = ty.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    (plain && !may_hold_type(after.as_bytes())).then_some(ty)
}

/// Whether `json` may hold a `type` member: it shows `"type"` or a `\u` escape (the only
/// escape that can spell a letter of it). False answers for certain that no member, at any
/// depth, is named `type`, without parsing.
pub(crate) fn may_hold_type(json: &[u8]) -> bool {
    static TYPE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"type\""));
    static ESCAPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\u"));
    TYPE_KEY.find(json).is_some() || ESCAPE.find(json).is_some()
}

/// The `type` member of a JSON object, borrowed where it has no escapes.
#[derive(Deserialize)]
struct TypeTag<'a> {
    #[serde(borrow, rename = "type")]
    ty: Cow<'a, str>,
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
        match std::str::from_utf8(json) {
            Ok(text) => text.parse(),
            Err(_) => Event::from_tree(json),
        }
    }

    /// The common case in two passes over the text and no tree: the `type` (borrowed),
    /// then the event's own struct, which ignores the `type` member as it ignores every
    /// unknown one. `None` sends the document to [`from_tree`](Self::from_tree), whose
    /// answer, errors included, this never contradicts: it only runs on a JSON object
    /// (serde would also read a struct from an array), whose `type` appears once (a
    /// repeated member fails `TypeTag`), and a struct reads an object's members from text
    /// as from a tree.
    fn from_text(json: &str) -> Option<Result<Event, EventError>> {
        if json.trim_ascii_start().as_bytes().first() != Some(&b'{') {
            return None;
        }
        // An unknown type is only reported for valid JSON, which `TypeTag` checks.
        let ty = match leading_type(json).filter(|ty| is_agui_type(ty)) {
            Some(ty) => Cow::Borrowed(ty),
            None => serde_json::from_str::<TypeTag<'_>>(json).ok()?.ty,
        };
        if !is_agui_type(&ty) {
            return Some(Err(EventError::UnknownType(ty.into_owned())));
        }
        Event::typed(&ty, json).map(Ok)
    }

    /// Parses through a [`Value`]: the answer for every document, and the precise error.
    fn from_tree(json: &[u8]) -> Result<Event, EventError> {
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
