//! State and snapshot events: `STATE_*`, `MESSAGES_SNAPSHOT` and `ACTIVITY_*`.

use serde_json::Value;

use super::de::present;
use super::{JsonPatch, Message, Metadata};

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
