//! Run and step lifecycle events: `RUN_*` and `STEP_*`.

use serde_json::Value;

use super::de::present;
use super::{RunAgentInput, RunFinishedOutcome, TokenUsage};

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
