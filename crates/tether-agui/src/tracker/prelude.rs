//! What a [`RunTracker`] writes for a joining client: the snapshots, the
//! frames that re-open what a run has open, and the run frames around
//! interrupts.

use tether_core::ApprovalInfo;

use super::{Open, RunIds, RunTracker, event_json};
use crate::events::{
    Interrupt, MessagesSnapshot, Metadata, ReasoningMessageContent, RunFinished,
    RunFinishedOutcome, RunStarted, StateSnapshot, TextMessageContent, ToolCallArgs,
};

impl RunTracker {
    /// An approval as an interrupt: the one a `RUN_FINISHED` announced under its
    /// id, or one made from the approval.
    pub(super) fn interrupt_for(&self, approval: &ApprovalInfo) -> Interrupt {
        if let Some(known) = self.interrupts.iter().find(|i| i.id == approval.id) {
            return known.clone();
        }
        let mut metadata = Metadata::new();
        if !approval.payload.is_null() {
            metadata.insert("payload".into(), approval.payload.to_value());
        }
        Interrupt {
            id: approval.id.clone(),
            reason: "approval".into(),
            message: approval.title.clone(),
            expires_at: Some(approval.expires_at.clone()),
            metadata: (!metadata.is_empty()).then_some(metadata),
            ..Default::default()
        }
    }

    pub(super) fn outcome(interrupts: Vec<Interrupt>) -> RunFinishedOutcome {
        if interrupts.is_empty() {
            RunFinishedOutcome::Success {
                pending_tool_call_ids: None,
            }
        } else {
            RunFinishedOutcome::Interrupt { interrupts }
        }
    }

    pub(super) fn run_started(run: &RunIds) -> String {
        event_json(RunStarted {
            thread_id: run.thread_id.clone(),
            run_id: run.run_id.clone(),
            ..Default::default()
        })
    }

    pub(super) fn run_finished(run: &RunIds, interrupts: Vec<Interrupt>) -> String {
        event_json(RunFinished {
            thread_id: run.thread_id.clone(),
            run_id: run.run_id.clone(),
            outcome: Some(Self::outcome(interrupts)),
            ..Default::default()
        })
    }

    /// The frames that re-open what is open, in the order it was opened.
    pub(super) fn reopen(&self, out: &mut Vec<String>) {
        for (start, _) in &self.subagents {
            out.push(event_json(start.clone()));
        }
        for (_, end) in &self.subagents {
            if let Some(end) = end {
                out.push(event_json(end.clone()));
            }
        }
        for open in &self.open {
            match open {
                Open::Step(s) => out.push(event_json(s.clone())),
                Open::ReasoningSpan(s) => out.push(event_json(s.clone())),
                Open::ReasoningMessage { start, text } => {
                    out.push(event_json(start.clone()));
                    if !text.is_empty() {
                        out.push(event_json(ReasoningMessageContent {
                            message_id: start.message_id.clone(),
                            delta: text.clone(),
                            ..Default::default()
                        }));
                    }
                }
                Open::Text { start, text } => {
                    // The snapshot names the message and its owner, or the
                    // opener carries the owner recorded for it.
                    let mut start = start.clone();
                    start.subagent_run_id = if self.message_index(&start.message_id).is_some() {
                        None
                    } else {
                        self.owner_of(&start.message_id, start.subagent_run_id.as_ref())
                    };
                    out.push(event_json(start.clone()));
                    if !text.is_empty() {
                        out.push(event_json(TextMessageContent {
                            message_id: start.message_id.clone(),
                            delta: text.clone(),
                            ..Default::default()
                        }));
                    }
                }
                Open::Tool { start, args } => {
                    let mut start = start.clone();
                    if let Some(i) = self.tool_call_owner(&start.tool_call_id) {
                        // The snapshot already holds the call, in this message.
                        start.subagent_run_id = None;
                        start.parent_message_id = Some(self.messages[i].id().to_owned());
                    } else if let Some(recorded) = self.joined.tool_call_owner(&start.tool_call_id)
                    {
                        start.subagent_run_id = recorded.clone();
                    }
                    out.push(event_json(start.clone()));
                    if !args.is_empty() {
                        out.push(event_json(ToolCallArgs {
                            tool_call_id: start.tool_call_id.clone(),
                            delta: args.clone(),
                            ..Default::default()
                        }));
                    }
                }
            }
        }
    }

    pub(super) fn snapshots(&self, out: &mut Vec<String>) {
        out.push(event_json(MessagesSnapshot {
            messages: self.messages.to_vec(),
            ..Default::default()
        }));
        if let Some(state) = &self.state {
            out.push(event_json(StateSnapshot {
                snapshot: serde_json::Value::clone(state),
                ..Default::default()
            }));
        }
    }
}
