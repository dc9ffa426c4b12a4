//! What each event does to a [`RunTracker`]'s model of the session: the run,
//! what the run has open, the completed messages and the state.

use std::sync::Arc;

use tether_core::Refusal;

use super::messages::kept;
use super::{Open, Phase, RunIds, RunTracker, json_len};
use crate::events::{
    Event, JsonPatchOperation, Message, MessagesSnapshot, RunFinished, RunFinishedOutcome,
    RunStarted, StateSnapshot, SubagentStarted, ToolCallResult, ToolMessage, apply_patch,
};
use crate::verify::message_owner;

impl RunTracker {
    /// Applies an event to the model, all or nothing.
    pub(super) fn model(&mut self, event: &Event, data_len: usize) -> Result<(), Refusal> {
        match event {
            Event::RunStarted(e) => self.start_run(e),
            Event::RunFinished(e) => self.finish_run(e),
            Event::RunError(_) => self.fail_run(),
            Event::TextMessageStart(e) => self.push_open(Open::Text {
                start: e.clone(),
                text: String::new(),
            })?,
            Event::TextMessageContent(e) => {
                self.stream(self.open_text(&e.message_id), &e.message_id, &e.delta)?;
            }
            Event::TextMessageEnd(e) => self.end_open_text(&e.message_id),
            Event::ToolCallStart(e) => self.push_open(Open::Tool {
                start: e.clone(),
                args: String::new(),
            })?,
            Event::ToolCallArgs(e) => {
                self.stream(self.open_tool(&e.tool_call_id), &e.tool_call_id, &e.delta)?;
            }
            Event::ToolCallEnd(e) => self.end_open_tool(&e.tool_call_id),
            Event::ToolCallResult(e) => self.tool_result(e),
            Event::MessagesSnapshot(e) => self.replace_messages(e)?,
            Event::StateSnapshot(e) => self.replace_state(e, data_len)?,
            Event::StateDelta(e) => self.delta(&e.delta, data_len)?,
            Event::StepStarted(e) => self.push_open(Open::Step(e.clone()))?,
            Event::StepFinished(e) => self.close_where(|o| {
                matches!(o, Open::Step(s) if s.step_name == e.step_name && s.subagent_run_id == e.subagent_run_id)
            }),
            Event::ReasoningStart(e) => self.push_open(Open::ReasoningSpan(e.clone()))?,
            Event::ReasoningEnd(e) => self.close_where(
                |o| matches!(o, Open::ReasoningSpan(s) if s.message_id == e.message_id),
            ),
            Event::ReasoningMessageStart(e) => self.push_open(Open::ReasoningMessage {
                start: e.clone(),
                text: String::new(),
            })?,
            Event::ReasoningMessageContent(e) => {
                self.stream(self.open_reasoning(&e.message_id), &e.message_id, &e.delta)?;
            }
            Event::ReasoningMessageEnd(e) => {
                if let Some(i) = self.open_reasoning(&e.message_id) {
                    self.close(i);
                }
            }
            Event::SubagentStarted(e) => self.start_subagent(e)?,
            Event::SubagentFinished(_) | Event::SubagentError(_) => self.end_subagent(event),
            _ => {}
        }
        Ok(())
    }

    fn start_run(&mut self, e: &RunStarted) {
        self.phase = Phase::Open;
        self.run = Some(RunIds {
            thread_id: e.thread_id.clone(),
            run_id: e.run_id.clone(),
        });
        self.open.clear();
        self.open_bytes = 0;
        self.subagents.clear();
        if let Some(input) = &e.input {
            for m in input.messages.iter().filter(|m| kept(m)) {
                if self.message_index(m.id()).is_none() {
                    self.push_message(m.clone());
                }
            }
            if let Some(state) = &input.state {
                let size = json_len(state);
                if size <= self.limits.state_bytes() {
                    self.state = Some(Arc::new(state.clone()));
                    self.state_bytes = size;
                }
            }
            self.trim_messages();
        }
    }

    fn finish_run(&mut self, e: &RunFinished) {
        self.phase = Phase::Finished;
        self.subagents.clear();
        self.interrupts = match &e.outcome {
            Some(RunFinishedOutcome::Interrupt { interrupts }) => interrupts.clone(),
            _ => Vec::new(),
        };
    }

    fn fail_run(&mut self) {
        // The client keeps what the open messages and tool calls streamed so
        // far; so does the snapshot.
        for open in std::mem::take(&mut self.open) {
            match open {
                Open::Text { start, text } => self.end_text(&start, &text),
                Open::Tool { start, args } => self.end_tool(&start, &args),
                _ => {}
            }
        }
        self.open_bytes = 0;
        self.subagents.clear();
        self.phase = Phase::Errored;
    }

    /// Opens an entity, within the limit of open entities.
    fn push_open(&mut self, open: Open) -> Result<(), Refusal> {
        self.check_opener()?;
        self.open.push(open);
        Ok(())
    }

    /// Streams `delta` into the open entity at `index` (if it is open),
    /// within the limit of streamed bytes.
    fn stream(&mut self, index: Option<usize>, id: &str, delta: &str) -> Result<(), Refusal> {
        self.check_growth(id, delta)?;
        if let Some(i) = index {
            self.grow(i, delta);
        }
        Ok(())
    }

    /// Closes the first open entity that matches, if any.
    fn close_where(&mut self, pred: impl Fn(&Open) -> bool) {
        if let Some(i) = self.find_open(pred) {
            self.close(i);
        }
    }

    fn end_open_text(&mut self, id: &str) {
        if let Some(i) = self.open_text(id)
            && let Open::Text { start, text } = self.close(i)
        {
            self.end_text(&start, &text);
            self.trim_messages();
        }
    }

    fn end_open_tool(&mut self, id: &str) {
        if let Some(i) = self.open_tool(id)
            && let Open::Tool { start, args } = self.close(i)
        {
            self.end_tool(&start, &args);
            self.trim_messages();
        }
    }

    fn tool_result(&mut self, e: &ToolCallResult) {
        let message = Message::Tool(ToolMessage {
            subagent_run_id: e.subagent_run_id.clone(),
            id: e.message_id.clone(),
            content: e.content.clone(),
            tool_call_id: e.tool_call_id.clone(),
            error: None,
            encrypted_value: None,
            metadata: None,
        });
        self.add_tool_result(message);
        self.trim_messages();
    }

    fn replace_messages(&mut self, e: &MessagesSnapshot) -> Result<(), Refusal> {
        self.check_snapshot_owners(&e.messages)?;
        self.messages_from(0).clear();
        self.message_sizes.clear();
        self.message_bytes = 0;
        for m in e.messages.iter().filter(|m| kept(m)) {
            self.push_message(m.clone());
        }
        self.trim_messages();
        // What the snapshot now holds is the base the open entities continue
        // from.
        for i in 0..self.open.len() {
            let based = match &self.open[i] {
                Open::Text { start, .. } => self.message_index(&start.message_id).is_some(),
                Open::Tool { start, .. } => self.tool_call_owner(&start.tool_call_id).is_some(),
                _ => false,
            };
            if based {
                let streamed = self.open[i].streamed();
                match &mut self.open[i] {
                    Open::Text { text, .. } => text.clear(),
                    Open::Tool { args, .. } => args.clear(),
                    _ => {}
                }
                self.open_bytes -= streamed;
            }
        }
        Ok(())
    }

    fn replace_state(&mut self, e: &StateSnapshot, data_len: usize) -> Result<(), Refusal> {
        if data_len > self.limits.state_bytes() {
            return Err(Refusal::TooLarge(format!(
                "the state snapshot ({data_len} bytes) exceeds the tracker's limit of {} bytes",
                self.limits.state_bytes()
            )));
        }
        self.state = Some(Arc::new(e.snapshot.clone()));
        self.state_bytes = data_len;
        Ok(())
    }

    fn start_subagent(&mut self, e: &SubagentStarted) -> Result<(), Refusal> {
        if self.subagents.len() >= self.limits.open() {
            return Err(Refusal::TooLarge(format!(
                "this run already started {} subagents, the tracker's limit",
                self.subagents.len()
            )));
        }
        self.subagents.push((e.clone(), None));
        Ok(())
    }

    /// A `SUBAGENT_FINISHED` or `SUBAGENT_ERROR`, kept to re-send after the
    /// invocation's start in a prelude.
    fn end_subagent(&mut self, event: &Event) {
        let id = crate::verify::subagent_tag(event).unwrap_or_default();
        if let Some(entry) = self
            .subagents
            .iter_mut()
            .find(|(s, end)| s.subagent_run_id == id && end.is_none())
        {
            entry.1 = Some(event.clone());
        }
    }

    /// A snapshot must not give another owner to an open tool call attributed
    /// to a subagent, or to the message that carries it: a client that joins
    /// later would see the call's continuations contradict its owner.
    pub(super) fn check_snapshot_owners(&self, messages: &[Message]) -> Result<(), String> {
        for open in &self.open {
            let Open::Tool { start, .. } = open else {
                continue;
            };
            let Some(Some(owner)) = self.joined.tool_call_owner(&start.tool_call_id) else {
                continue;
            };
            for m in messages {
                let carries = match m {
                    Message::Assistant(a) => a
                        .tool_calls
                        .iter()
                        .flatten()
                        .any(|c| c.id == start.tool_call_id),
                    _ => false,
                };
                let parent = start.parent_message_id.as_deref() == Some(m.id());
                if (carries || parent) && message_owner(m) != Some(owner.as_str()) {
                    return Err(format!(
                        "this MESSAGES_SNAPSHOT gives message '{}' another owner than subagent '{owner}', which owns the open tool call '{}'; finish the tool call first",
                        m.id(),
                        start.tool_call_id
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn delta(
        &mut self,
        patch: &[JsonPatchOperation],
        data_len: usize,
    ) -> Result<(), Refusal> {
        let Some(state) = self.state.as_mut() else {
            // Nothing to patch: the state the client patches came from
            // elsewhere. The prelude then carries no state.
            return Ok(());
        };
        let grown = self.state_bytes + data_len;
        if grown <= self.limits.state_bytes() {
            // A patch that does not apply leaves the state as it was, as the
            // client does (it only logs a warning).
            if apply_patch(Arc::make_mut(state), patch).is_ok() {
                self.state_bytes = grown;
            }
            return Ok(());
        }
        let mut next = serde_json::Value::clone(state);
        if apply_patch(&mut next, patch).is_err() {
            return Ok(());
        }
        let size = json_len(&next);
        if size > self.limits.state_bytes() {
            return Err(Refusal::TooLarge(format!(
                "the state after this delta ({size} bytes) would exceed the tracker's limit of {} bytes",
                self.limits.state_bytes()
            )));
        }
        self.state = Some(Arc::new(next));
        self.state_bytes = size;
        Ok(())
    }
}
