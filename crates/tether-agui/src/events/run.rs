//! Run input, interrupts and the outcome of a run.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Metadata;
use super::de::{count, interrupt_list, present};
use super::messages::Message;

/// A request to run an agent: the body a client POSTs, echoed back as
/// `RUN_STARTED.input`.
///
/// `tools` and `context` keep whether they were sent: the 1.0 schema reads an
/// absent list as empty, and an absent list stays absent when written again.
/// `state: null` reads as absent, as the schema does. `forwardedProps`, a
/// tool's `parameters` and a resume entry's `payload` also read `null` as
/// absent, because clients before 1.0 sent it there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunAgentInput {
    /// The conversation thread.
    pub thread_id: String,
    /// The run this input starts.
    pub run_id: String,
    /// The protocol version the client speaks, `"1.0"`.
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
    /// Agent state: any JSON value except `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools the client offers for this run.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub tools: Option<Vec<Tool>>,
    /// Ambient information for the run.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub context: Option<Vec<Context>>,
    /// Application data passed through to the agent: any JSON value except
    /// `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_props: Option<Value>,
    /// Answers to the interrupts the previous run ended with.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub resume: Option<Vec<ResumeEntry>>,
}

/// A tool the agent may call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The tool's name.
    pub name: String,
    /// What the tool does.
    pub description: String,
    /// JSON Schema of the arguments: any JSON value except `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Extra information, open by key.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub metadata: Option<Metadata>,
}

/// A named piece of ambient information given to the agent for the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// What the value is.
    pub description: String,
    /// The value.
    pub value: String,
}

/// An answer to one interrupt, sent on the run that continues from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeEntry {
    /// The interrupt answered.
    pub interrupt_id: String,
    /// Whether the interrupt was resolved or cancelled.
    pub status: ResumeStatus,
    /// The answer: any JSON value except `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Extra information, open by key.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub metadata: Option<Metadata>,
}

/// How an interrupt was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResumeStatus {
    /// Answered; the payload carries the answer.
    Resolved,
    /// Withdrawn, for example after its deadline passed.
    Cancelled,
}

/// Something a run needs from outside before it can continue, such as an
/// approval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interrupt {
    /// The subagent invocation that raised it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub subagent_run_id: Option<String>,
    /// Interrupt id, answered by a [`ResumeEntry`] with the same id.
    pub id: String,
    /// Why the run stopped, as the application names it (e.g. `"approval"`).
    pub reason: String,
    /// Text for the person who answers.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub message: Option<String>,
    /// The tool call waiting on this interrupt.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub tool_call_id: Option<String>,
    /// JSON Schema of the expected answer: a JSON object.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub response_schema: Option<Metadata>,
    /// When the interrupt stops accepting answers, as an RFC 3339 string.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub expires_at: Option<String>,
    /// Extra information, open by key.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub metadata: Option<Metadata>,
}

/// Why a run ended, discriminated by `type`. An absent outcome means success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum RunFinishedOutcome {
    /// The run completed.
    Success {
        /// Frontend tool calls the application still has to answer.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pending_tool_call_ids: Option<Vec<String>>,
    },
    /// The run is paused until the interrupts are answered by a new run whose
    /// `resume` entries address every one of them.
    Interrupt {
        /// What the run waits for; at least one.
        #[serde(deserialize_with = "interrupt_list")]
        interrupts: Vec<Interrupt>,
    },
    /// The run was stopped before it completed, and did not fail.
    Cancelled,
}

/// Why a subagent's segment of a run ended, discriminated by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum SubagentFinishedOutcome {
    /// The subagent completed its work.
    Success,
    /// The subagent waits for outside input.
    Suspended {
        /// The interrupts it waits for.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        interrupt_ids: Option<Vec<String>>,
    },
}

/// Token counts for one provider and model. Every count is an integer between
/// 0 and 2^53 - 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// The provider, e.g. `"openai"`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub provider: Option<String>,
    /// The model.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub model: Option<String>,
    /// All input tokens.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "count"
    )]
    pub input_tokens: Option<u64>,
    /// All output tokens.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "count"
    )]
    pub output_tokens: Option<u64>,
    /// Input plus output.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "count"
    )]
    pub total_tokens: Option<u64>,
    /// The part of the output spent on reasoning.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "count"
    )]
    pub reasoning_tokens: Option<u64>,
    /// The part of the input read from a cache.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "count"
    )]
    pub cached_input_tokens: Option<u64>,
    /// The part of the input written to a cache.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "count"
    )]
    pub cache_write_input_tokens: Option<u64>,
}
