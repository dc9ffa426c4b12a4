//! Messages of a conversation and the parts their content is made of.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Metadata;
use super::de::present;

/// Declares a message struct (the caller writes its docs, derives and renaming): first
/// `subagentRunId` and `id` (every role has them), then `name`, `encryptedValue` and
/// `metadata` for an `authored` one, then its own fields, in that order on the wire. A field
/// written `pub field?: T` is an `Option<T>` that is left out when `None` and, when present,
/// must not be `null`.
macro_rules! message {
    ($(#[$meta:meta])* pub struct $name:ident authored { $($body:tt)* }) => {
        message!(@munch [$(#[$meta])* pub struct $name] [] [
            /// Optional author name.
            pub name?: String,
            /// A provider's opaque encrypted artefact for this message.
            pub encrypted_value?: String,
            /// Extra information, open by key.
            pub metadata?: Metadata,
            $($body)*
        ]);
    };
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        message!(@munch [$(#[$meta])* pub struct $name] [] [$($body)*]);
    };
    (@munch $head:tt [$($done:tt)*]
        [$(#[doc = $doc:literal])* pub $field:ident ?: $ty:ty, $($rest:tt)*]) => {
        message!(@munch $head [$($done)*
            $(#[doc = $doc])*
            #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
            pub $field: Option<$ty>,
        ] [$($rest)*]);
    };
    (@munch $head:tt [$($done:tt)*]
        [$(#[doc = $doc:literal])* pub $field:ident : $ty:ty, $($rest:tt)*]) => {
        message!(@munch $head [$($done)* $(#[doc = $doc])* pub $field: $ty,] [$($rest)*]);
    };
    (@munch [$($head:tt)*] [$($done:tt)*] []) => {
        $($head)* {
            /// The subagent invocation this message belongs to.
            #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
            pub subagent_run_id: Option<String>,
            /// Message id.
            pub id: String,
            $($done)*
        }
    };
}

/// Any message in a conversation, discriminated by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    /// Instructions from the application developer.
    Developer(DeveloperMessage),
    /// Instructions from the system.
    System(SystemMessage),
    /// A message from the agent.
    Assistant(AssistantMessage),
    /// A message from the person using the application.
    User(UserMessage),
    /// What a tool returned.
    Tool(ToolMessage),
    /// Structured progress that is not conversation content.
    Activity(ActivityMessage),
    /// A span of the agent's reasoning.
    Reasoning(ReasoningMessage),
}

impl Message {
    /// The message's id.
    pub fn id(&self) -> &str {
        match self {
            Message::Developer(m) => &m.id,
            Message::System(m) => &m.id,
            Message::Assistant(m) => &m.id,
            Message::User(m) => &m.id,
            Message::Tool(m) => &m.id,
            Message::Activity(m) => &m.id,
            Message::Reasoning(m) => &m.id,
        }
    }

    /// The `role` discriminator as it appears on the wire.
    pub fn role(&self) -> &'static str {
        match self {
            Message::Developer(_) => "developer",
            Message::System(_) => "system",
            Message::Assistant(_) => "assistant",
            Message::User(_) => "user",
            Message::Tool(_) => "tool",
            Message::Activity(_) => "activity",
            Message::Reasoning(_) => "reasoning",
        }
    }
}

message! {
    /// Instructions from the application developer (`role: "developer"`).
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DeveloperMessage authored {
        /// The text.
        pub content: String,
    }
}

message! {
    /// Instructions from the system (`role: "system"`).
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SystemMessage authored {
        /// The text.
        pub content: String,
    }
}

message! {
    /// A message from the agent (`role: "assistant"`). Content is optional
    /// because a turn may consist only of tool calls.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AssistantMessage authored {
        /// The text, if any.
        pub content?: String,
        /// The calls this message made.
        pub tool_calls?: Vec<ToolCall>,
    }
}

message! {
    /// A message from the person using the application (`role: "user"`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UserMessage authored {
        /// Text, or a list of parts.
        pub content: Content,
    }
}

message! {
    /// What a tool returned, as a message in the conversation (`role: "tool"`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ToolMessage {
        /// Text, or a list of parts.
        pub content: Content,
        /// The call this message answers.
        pub tool_call_id: String,
        /// Why the tool failed, when it did.
        pub error?: String,
        /// A provider's opaque encrypted artefact for this message.
        pub encrypted_value?: String,
        /// Extra information, open by key.
        pub metadata?: Metadata,
    }
}

message! {
    /// Structured progress materialised as a message (`role: "activity"`).
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ActivityMessage {
        /// What kind of activity this is, as the application names it.
        pub activity_type: String,
        /// The activity's content: a JSON object.
        pub content: Metadata,
        /// Extra information, open by key.
        pub metadata?: Metadata,
    }
}

message! {
    /// A span of the agent's reasoning materialised as a message
    /// (`role: "reasoning"`).
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ReasoningMessage {
        /// The reasoning text.
        pub content: String,
        /// A provider's opaque encrypted artefact for this message.
        pub encrypted_value?: String,
        /// Extra information, open by key.
        pub metadata?: Metadata,
    }
}

/// A call an assistant message made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// Tool call id.
    pub id: String,
    /// Always `"function"`.
    #[serde(rename = "type")]
    pub kind: ToolCallKind,
    /// The function called and its arguments.
    pub function: FunctionCall,
    /// A provider's opaque encrypted artefact for this call.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub encrypted_value: Option<String>,
    /// Extra information, open by key.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub metadata: Option<Metadata>,
}

/// The `type` of a [`ToolCall`]; 1.0 knows only `"function"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolCallKind {
    /// `"function"`.
    #[default]
    Function,
}

/// The name and arguments of a tool call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments as a JSON string.
    pub arguments: String,
}

/// Message content that is either plain text or a list of parts.
///
/// Serialized as a JSON string or a JSON array.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text and media parts, in order.
    Parts(Vec<ContentPart>),
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(text)
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(text.to_owned())
    }
}

impl From<Vec<ContentPart>> for Content {
    fn from(parts: Vec<ContentPart>) -> Self {
        Content::Parts(parts)
    }
}

// Written out rather than `untagged` so that an invalid part reports its own
// error instead of "did not match any variant".
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;

        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Content, E> {
                Ok(Content::Text(text.to_owned()))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Content, E> {
                Ok(Content::Text(text))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
        }

        deserializer.deserialize_any(ContentVisitor)
    }
}

/// One part of a message body, discriminated by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContentPart {
    /// A text part.
    Text(TextPart),
    /// An image.
    Image(MediaPart),
    /// An audio clip.
    Audio(MediaPart),
    /// A video.
    Video(MediaPart),
    /// A document.
    Document(MediaPart),
}

/// A text part of a message body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextPart {
    /// Optional part id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub id: Option<String>,
    /// The text.
    pub text: String,
    /// Extra information: any JSON value except `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub metadata: Option<Value>,
}

/// An image, audio, video or document part of a message body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaPart {
    /// Optional part id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub id: Option<String>,
    /// Where the bytes come from.
    pub source: PartSource,
    /// Extra information: any JSON value except `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub metadata: Option<Value>,
}

/// Where a media part's bytes come from, discriminated by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PartSource {
    /// Bytes carried inline.
    Data(DataSource),
    /// Bytes referenced by URL.
    Url(UrlSource),
    /// Bytes already at a provider, named by a handle the provider issued.
    File(FileSource),
}

/// Bytes carried inline (`type: "data"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// The encoded bytes (typically base64).
    pub value: String,
    /// Their media type.
    pub mime_type: String,
}

/// Bytes referenced by URL (`type: "url"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlSource {
    /// The URL.
    pub value: String,
    /// Their media type, if known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub mime_type: Option<String>,
}

/// Bytes held by a provider (`type: "file"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSource {
    /// The provider's handle.
    pub value: String,
    /// Which provider issued the handle.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub provider: Option<String>,
    /// Their media type, if known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub mime_type: Option<String>,
}
