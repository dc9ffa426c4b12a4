//! `TEXT_MESSAGE_*` events: streamed text messages.

use serde::{Deserialize, Serialize};

use super::de::present;

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
