//! `SUBAGENT_*` events: subagent invocations within a run.

use serde_json::Value;

use super::SubagentFinishedOutcome;
use super::de::present;

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
