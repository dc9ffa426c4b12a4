//! `TOOL_CALL_*` events: tool calls and their results.

use serde::{Deserialize, Serialize};

use super::Content;
use super::de::present;

/// The `role` of `TOOL_CALL_RESULT`: when present, always `"tool"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolRole {
    /// `"tool"`.
    #[default]
    Tool,
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
