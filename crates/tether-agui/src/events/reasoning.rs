//! `REASONING_*` events: reasoning spans, messages and encrypted values.

use serde::{Deserialize, Serialize};

use super::de::present;

/// The `role` of `REASONING_MESSAGE_START`: always `"reasoning"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningRole {
    /// `"reasoning"`.
    #[default]
    Reasoning,
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
