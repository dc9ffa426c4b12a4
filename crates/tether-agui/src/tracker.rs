//! The run tracker: validates an AG-UI session's events and renders its
//! snapshots and signals so every stream tether writes passes the official
//! client's checks.
//!
//! See the [crate docs](crate) for what the prelude holds and where signals go.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use tether_core::{
    ApprovalInfo, Refusal, Resync, SessionId, SessionTracker, Signal, Terminal, TrackerFactory,
};

use crate::events::{
    AssistantMessage, Content, DeveloperMessage, Event, FunctionCall, Interrupt, Message,
    MessagesSnapshot, Metadata, ReasoningMessageContent, ReasoningMessageStart, ReasoningStart,
    RunFinished, RunFinishedOutcome, RunStarted, StateSnapshot, StepStarted, SubagentStarted,
    SystemMessage, TextMessageContent, TextMessageRole, TextMessageStart, ToolCall, ToolCallArgs,
    ToolCallKind, ToolCallStart, ToolMessage, UserMessage, apply_patch, is_agui_type,
};
use crate::verify::{Verifier, message_owner};

/// Event types of the drafts before 1.0 that the official client still
/// rewrites into `REASONING_*` events. Refused: the tracker would not see the
/// reasoning the client builds from them.
const LEGACY_TYPES: &[&str] = &[
    "THINKING_START",
    "THINKING_END",
    "THINKING_TEXT_MESSAGE_START",
    "THINKING_TEXT_MESSAGE_CONTENT",
    "THINKING_TEXT_MESSAGE_END",
];

/// How much a [`RunTracker`] keeps per session.
///
/// ```
/// use tether_agui::TrackerLimits;
///
/// let limits = TrackerLimits::default().max_state_bytes(1 << 20).max_open(64);
/// assert_eq!(limits.state_bytes(), 1 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct TrackerLimits {
    message_bytes: usize,
    state_bytes: usize,
    open_bytes: usize,
    open: usize,
}

impl Default for TrackerLimits {
    fn default() -> Self {
        Self {
            message_bytes: 4 << 20,
            state_bytes: 4 << 20,
            open_bytes: 4 << 20,
            open: 256,
        }
    }
}

impl TrackerLimits {
    /// Bytes (as JSON) of the completed messages a snapshot carries; beyond it
    /// the oldest messages are dropped from the snapshot. Default is 4 MiB.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.message_bytes = bytes;
        self
    }
    /// Bytes (as JSON, approximately) of the agent state; a `STATE_SNAPSHOT` or
    /// `STATE_DELTA` that makes it larger is refused. Default is 4 MiB.
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.state_bytes = bytes;
        self
    }
    /// Bytes of text and tool-call arguments streamed so far into the open
    /// messages, tool calls and reasoning messages of a run, together; content
    /// beyond it is refused. Default is 4 MiB.
    pub fn max_open_bytes(mut self, bytes: usize) -> Self {
        self.open_bytes = bytes;
        self
    }
    /// Entities open at once in a run (text messages, tool calls, reasoning
    /// spans and messages, steps), and subagents started in a run; openers
    /// beyond it are refused. Default is 256.
    pub fn max_open(mut self, count: usize) -> Self {
        self.open = count;
        self
    }
    /// The limit set by [`max_message_bytes`](Self::max_message_bytes).
    pub fn message_bytes(&self) -> usize {
        self.message_bytes
    }
    /// The limit set by [`max_state_bytes`](Self::max_state_bytes).
    pub fn state_bytes(&self) -> usize {
        self.state_bytes
    }
    /// The limit set by [`max_open_bytes`](Self::max_open_bytes).
    pub fn open_bytes(&self) -> usize {
        self.open_bytes
    }
    /// The limit set by [`max_open`](Self::max_open).
    pub fn open(&self) -> usize {
        self.open
    }
}

/// Installs a [`RunTracker`] on every session from its first published event
/// whose `type` is an AG-UI 1.0 type (tether's own `tether.*` signals do not
/// count); sessions that never carry one stay untracked.
///
/// ```
/// use std::sync::Arc;
/// use tether_agui::AguiTrackerFactory;
/// use tether_core::Broker;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let broker = Broker::builder()
///     .tracker_factory(Arc::new(AguiTrackerFactory::new()))
///     .start();
/// # let _ = broker;
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct AguiTrackerFactory {
    limits: TrackerLimits,
}

impl AguiTrackerFactory {
    /// A factory with the default [`TrackerLimits`].
    pub fn new() -> Self {
        Self::default()
    }
    /// A factory whose trackers keep within `limits`.
    pub fn with_limits(limits: TrackerLimits) -> Self {
        Self { limits }
    }
}

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(borrow, rename = "type")]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

impl TrackerFactory for AguiTrackerFactory {
    fn track(
        &self,
        _session: &SessionId,
        _name: Option<&str>,
        data: &str,
    ) -> Option<Box<dyn SessionTracker>> {
        let typed: TypeOnly<'_> = serde_json::from_str(data).ok()?;
        let ty = typed.ty?;
        // tether's own signals (`tether.*` CUSTOM events, such as the notices of
        // an approval) do not make a session an AG-UI session.
        let signal = ty == "CUSTOM" && typed.name.is_some_and(|n| n.starts_with("tether."));
        if is_agui_type(&ty) && !signal {
            Some(Box::new(RunTracker::new(self.limits)))
        } else {
            None
        }
    }
}

/// What a run left open, in the order it was opened.
#[derive(Debug, Clone)]
enum Open {
    Step(StepStarted),
    ReasoningSpan(ReasoningStart),
    ReasoningMessage {
        start: ReasoningMessageStart,
        text: String,
    },
    Text {
        start: TextMessageStart,
        text: String,
    },
    Tool {
        start: ToolCallStart,
        args: String,
    },
}

impl Open {
    fn streamed(&self) -> usize {
        match self {
            Open::ReasoningMessage { text, .. } | Open::Text { text, .. } => text.len(),
            Open::Tool { args, .. } => args.len(),
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No run yet.
    Idle,
    /// A run is open.
    Open,
    /// The last run finished.
    Finished,
    /// The last run errored.
    Errored,
}

#[derive(Debug, Clone)]
struct RunIds {
    thread_id: String,
    run_id: String,
}

/// Follows one AG-UI session (see the [crate docs](crate)).
///
/// It refuses an event that would make the session's stream, or a stream
/// that joins it through a prelude, fail the official client's checks, and
/// keeps what a prelude needs: the open run, its open messages, tool calls,
/// reasoning, steps and subagents with their content so far, the completed
/// messages and the state.
#[derive(Debug, Clone)]
pub struct RunTracker {
    limits: TrackerLimits,
    /// The stream as stored, for clients that resume exactly.
    exact: Verifier,
    /// The stream as a client that joined through a prelude sees it: owners
    /// are seeded from the completed messages at every run start.
    joined: Verifier,
    phase: Phase,
    run: Option<RunIds>,
    open: Vec<Open>,
    open_bytes: usize,
    subagents: Vec<(SubagentStarted, Option<Event>)>,
    messages: Vec<Message>,
    message_sizes: Vec<usize>,
    message_bytes: usize,
    state: Option<Value>,
    state_bytes: usize,
    /// The interrupts of the last `RUN_FINISHED`.
    interrupts: Vec<Interrupt>,
    /// The completed message the last event added or changed.
    touched: Option<String>,
}

/// What a parsed state tree costs per byte of its JSON, about (a `serde_json::Value` holds
/// each value in a 32-byte node, each key and string on the heap).
const STATE_TREE_FACTOR: usize = 4;
/// What an open entity or kept message costs beyond its text, about (ids, owners, the
/// verifiers' sets).
const ENTITY_BYTES: usize = 256;

fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0)
}

fn event_json(event: impl Into<Event>) -> String {
    serde_json::to_string(&event.into()).expect("an Event always serializes to JSON")
}

/// Appends streamed text to a message as the client's reducer does: text
/// content is extended, any other content is replaced.
fn append_text(message: &mut Message, text: &str) {
    let extend = |content: &mut String| content.push_str(text);
    match message {
        Message::Developer(m) => extend(&mut m.content),
        Message::System(m) => extend(&mut m.content),
        Message::Assistant(m) => extend(m.content.get_or_insert_with(String::new)),
        Message::User(m) => match &mut m.content {
            Content::Text(t) => extend(t),
            other => *other = Content::Text(text.to_owned()),
        },
        Message::Tool(m) => match &mut m.content {
            Content::Text(t) => extend(t),
            other => *other = Content::Text(text.to_owned()),
        },
        Message::Reasoning(m) => extend(&mut m.content),
        Message::Activity(_) => {}
    }
}

/// Whether a message belongs in the snapshot: reasoning and activity messages
/// are left to the client, which keeps its own when a snapshot carries none.
fn kept(message: &Message) -> bool {
    !matches!(message, Message::Reasoning(_) | Message::Activity(_))
}

impl RunTracker {
    /// A tracker for a session with no events yet.
    pub fn new(limits: TrackerLimits) -> Self {
        Self {
            limits,
            exact: Verifier::new(),
            joined: Verifier::new(),
            phase: Phase::Idle,
            run: None,
            open: Vec::new(),
            open_bytes: 0,
            subagents: Vec::new(),
            messages: Vec::new(),
            message_sizes: Vec::new(),
            message_bytes: 0,
            state: None,
            state_bytes: 0,
            interrupts: Vec::new(),
            touched: None,
        }
    }

    /// Whether a run is open.
    pub fn run_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// The thread and run ids of the open or last run.
    pub fn run_ids(&self) -> Option<(&str, &str)> {
        self.run
            .as_ref()
            .map(|r| (r.thread_id.as_str(), r.run_id.as_str()))
    }

    /// The completed messages, as the prelude's `MESSAGES_SNAPSHOT` carries them.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The agent state, once a `STATE_SNAPSHOT` (or a `RUN_STARTED` echoing an
    /// input with a state) made it known.
    pub fn state(&self) -> Option<&Value> {
        self.state.as_ref()
    }

    /// Checks one event and records it; on error nothing changes. `data_len`
    /// is the size of its JSON, used for the state's byte count.
    pub fn publish(&mut self, event: &Event, data_len: usize) -> Result<(), Refusal> {
        if matches!(
            event,
            Event::TextMessageChunk(_) | Event::ToolCallChunk(_) | Event::ReasoningMessageChunk(_)
        ) {
            return Err(format!(
                "{} is not accepted in a tracked AG-UI session: publish the start, content and end events instead, which a resync can re-open",
                event.type_name()
            ).into());
        }
        self.exact.check(event).map_err(|e| e.0)?;
        self.joined
            .check(event)
            .map_err(|e| format!("{e} (for a client that joins through a snapshot)"))?;
        self.touched = None;
        self.model(event, data_len)?;
        self.exact.apply(event);
        self.joined.apply(event);
        // A prelude seeds owners from the completed messages; so does the
        // joined view, at each run start and for each message completed since.
        if matches!(event, Event::RunStarted(_)) {
            self.joined.seed_owners(&self.messages, true);
        } else if let Some(id) = self.touched.take()
            && let Some(i) = self.message_index(&id)
        {
            self.joined
                .seed_owners(std::slice::from_ref(&self.messages[i]), true);
        }
        Ok(())
    }

    fn find_open(&self, pred: impl Fn(&Open) -> bool) -> Option<usize> {
        self.open.iter().position(pred)
    }

    fn open_text(&self, id: &str) -> Option<usize> {
        self.find_open(|o| matches!(o, Open::Text { start, .. } if start.message_id == id))
    }

    fn open_tool(&self, id: &str) -> Option<usize> {
        self.find_open(|o| matches!(o, Open::Tool { start, .. } if start.tool_call_id == id))
    }

    fn open_reasoning(&self, id: &str) -> Option<usize> {
        self.find_open(
            |o| matches!(o, Open::ReasoningMessage { start, .. } if start.message_id == id),
        )
    }

    fn check_opener(&self) -> Result<(), Refusal> {
        if self.open.len() >= self.limits.open {
            return Err(Refusal::TooLarge(format!(
                "this run already has {} open messages, tool calls, reasoning spans and steps, the tracker's limit; close some first",
                self.open.len()
            )));
        }
        Ok(())
    }

    fn check_growth(&self, id: &str, delta: &str) -> Result<(), Refusal> {
        if self.open_bytes + delta.len() > self.limits.open_bytes {
            return Err(Refusal::TooLarge(format!(
                "the content streamed into the open entities of this run would exceed the tracker's limit of {} bytes (at '{id}'); end them and continue in new ones",
                self.limits.open_bytes
            )));
        }
        Ok(())
    }

    fn grow(&mut self, index: usize, delta: &str) {
        match &mut self.open[index] {
            Open::Text { text, .. } | Open::ReasoningMessage { text, .. } => text.push_str(delta),
            Open::Tool { args, .. } => args.push_str(delta),
            _ => return,
        }
        self.open_bytes += delta.len();
    }

    fn close(&mut self, index: usize) -> Open {
        let closed = self.open.remove(index);
        self.open_bytes -= closed.streamed();
        closed
    }

    /// Applies an event to the model, all or nothing.
    fn model(&mut self, event: &Event, data_len: usize) -> Result<(), Refusal> {
        match event {
            Event::RunStarted(e) => {
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
                        if size <= self.limits.state_bytes {
                            self.state = Some(state.clone());
                            self.state_bytes = size;
                        }
                    }
                    self.trim_messages();
                }
            }
            Event::RunFinished(e) => {
                self.phase = Phase::Finished;
                self.subagents.clear();
                self.interrupts = match &e.outcome {
                    Some(RunFinishedOutcome::Interrupt { interrupts }) => interrupts.clone(),
                    _ => Vec::new(),
                };
            }
            Event::RunError(_) => {
                // The client keeps what the open messages and tool calls
                // streamed so far; so does the snapshot.
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
            Event::TextMessageStart(e) => {
                self.check_opener()?;
                self.open.push(Open::Text {
                    start: e.clone(),
                    text: String::new(),
                });
            }
            Event::TextMessageContent(e) => {
                self.check_growth(&e.message_id, &e.delta)?;
                if let Some(i) = self.open_text(&e.message_id) {
                    self.grow(i, &e.delta);
                }
            }
            Event::TextMessageEnd(e) => {
                if let Some(i) = self.open_text(&e.message_id)
                    && let Open::Text { start, text } = self.close(i)
                {
                    self.end_text(&start, &text);
                    self.trim_messages();
                }
            }
            Event::ToolCallStart(e) => {
                self.check_opener()?;
                self.open.push(Open::Tool {
                    start: e.clone(),
                    args: String::new(),
                });
            }
            Event::ToolCallArgs(e) => {
                self.check_growth(&e.tool_call_id, &e.delta)?;
                if let Some(i) = self.open_tool(&e.tool_call_id) {
                    self.grow(i, &e.delta);
                }
            }
            Event::ToolCallEnd(e) => {
                if let Some(i) = self.open_tool(&e.tool_call_id)
                    && let Open::Tool { start, args } = self.close(i)
                {
                    self.end_tool(&start, &args);
                    self.trim_messages();
                }
            }
            Event::ToolCallResult(e) => {
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
            Event::MessagesSnapshot(e) => {
                self.check_snapshot_owners(&e.messages)?;
                self.messages.clear();
                self.message_sizes.clear();
                self.message_bytes = 0;
                for m in e.messages.iter().filter(|m| kept(m)) {
                    self.push_message(m.clone());
                }
                self.trim_messages();
                // What the snapshot now holds is the base the open entities
                // continue from.
                for i in 0..self.open.len() {
                    let based = match &self.open[i] {
                        Open::Text { start, .. } => {
                            self.message_index(&start.message_id).is_some()
                        }
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
            }
            Event::StateSnapshot(e) => {
                if data_len > self.limits.state_bytes {
                    return Err(Refusal::TooLarge(format!(
                        "the state snapshot ({data_len} bytes) exceeds the tracker's limit of {} bytes",
                        self.limits.state_bytes
                    )));
                }
                self.state = Some(e.snapshot.clone());
                self.state_bytes = data_len;
            }
            Event::StateDelta(e) => self.delta(&e.delta, data_len)?,
            Event::StepStarted(e) => {
                self.check_opener()?;
                self.open.push(Open::Step(e.clone()));
            }
            Event::StepFinished(e) => {
                if let Some(i) = self.find_open(|o| {
                    matches!(o, Open::Step(s) if s.step_name == e.step_name && s.subagent_run_id == e.subagent_run_id)
                }) {
                    self.close(i);
                }
            }
            Event::ReasoningStart(e) => {
                self.check_opener()?;
                self.open.push(Open::ReasoningSpan(e.clone()));
            }
            Event::ReasoningEnd(e) => {
                if let Some(i) = self.find_open(
                    |o| matches!(o, Open::ReasoningSpan(s) if s.message_id == e.message_id),
                ) {
                    self.close(i);
                }
            }
            Event::ReasoningMessageStart(e) => {
                self.check_opener()?;
                self.open.push(Open::ReasoningMessage {
                    start: e.clone(),
                    text: String::new(),
                });
            }
            Event::ReasoningMessageContent(e) => {
                self.check_growth(&e.message_id, &e.delta)?;
                if let Some(i) = self.open_reasoning(&e.message_id) {
                    self.grow(i, &e.delta);
                }
            }
            Event::ReasoningMessageEnd(e) => {
                if let Some(i) = self.open_reasoning(&e.message_id) {
                    self.close(i);
                }
            }
            Event::SubagentStarted(e) => {
                if self.subagents.len() >= self.limits.open {
                    return Err(Refusal::TooLarge(format!(
                        "this run already started {} subagents, the tracker's limit",
                        self.subagents.len()
                    )));
                }
                self.subagents.push((e.clone(), None));
            }
            Event::SubagentFinished(_) | Event::SubagentError(_) => {
                let id = crate::verify::subagent_tag(event).unwrap_or_default();
                if let Some(entry) = self
                    .subagents
                    .iter_mut()
                    .find(|(s, end)| s.subagent_run_id == id && end.is_none())
                {
                    entry.1 = Some(event.clone());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A snapshot must not give another owner to an open tool call attributed
    /// to a subagent, or to the message that carries it: a client that joins
    /// later would see the call's continuations contradict its owner.
    fn check_snapshot_owners(&self, messages: &[Message]) -> Result<(), String> {
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

    fn delta(
        &mut self,
        patch: &[crate::events::JsonPatchOperation],
        data_len: usize,
    ) -> Result<(), Refusal> {
        let Some(state) = self.state.as_mut() else {
            // Nothing to patch: the state the client patches came from
            // elsewhere. The prelude then carries no state.
            return Ok(());
        };
        let grown = self.state_bytes + data_len;
        if grown <= self.limits.state_bytes {
            // A patch that does not apply leaves the state as it was, as the
            // client does (it only logs a warning).
            if apply_patch(state, patch).is_ok() {
                self.state_bytes = grown;
            }
            return Ok(());
        }
        let mut next = state.clone();
        if apply_patch(&mut next, patch).is_err() {
            return Ok(());
        }
        let size = json_len(&next);
        if size > self.limits.state_bytes {
            return Err(Refusal::TooLarge(format!(
                "the state after this delta ({size} bytes) would exceed the tracker's limit of {} bytes",
                self.limits.state_bytes
            )));
        }
        self.state = Some(next);
        self.state_bytes = size;
        Ok(())
    }

    fn message_index(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|m| m.id() == id)
    }

    /// The index of the assistant message that carries a tool call.
    fn tool_call_owner(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|m| match m {
            Message::Assistant(a) => a.tool_calls.iter().flatten().any(|c| c.id == id),
            _ => false,
        })
    }

    fn push_message(&mut self, message: Message) {
        let size = json_len(&message);
        self.message_bytes += size;
        self.message_sizes.push(size);
        self.messages.push(message);
    }

    fn insert_message(&mut self, at: usize, message: Message) {
        let size = json_len(&message);
        self.message_bytes += size;
        self.message_sizes.insert(at, size);
        self.messages.insert(at, message);
    }

    fn resize(&mut self, index: usize) {
        let size = json_len(&self.messages[index]);
        self.message_bytes = self.message_bytes - self.message_sizes[index] + size;
        self.message_sizes[index] = size;
    }

    fn trim_messages(&mut self) {
        let mut drop = 0;
        let mut bytes = self.message_bytes;
        while bytes > self.limits.message_bytes && drop < self.messages.len() {
            bytes -= self.message_sizes[drop];
            drop += 1;
        }
        if drop > 0 {
            self.messages.drain(..drop);
            self.message_sizes.drain(..drop);
            self.message_bytes = bytes;
        }
    }

    /// The owner of a message the tracker adds: the one already recorded for
    /// its id, so a snapshot never contradicts what clients were told, or the
    /// tag of the event that made it.
    fn owner_of(&self, id: &str, tag: Option<&String>) -> Option<String> {
        match self.joined.message_owner(id) {
            Some(recorded) => recorded.clone(),
            None => tag.cloned(),
        }
    }

    /// A text message ended: its text joins the message with its id, or
    /// becomes a new message.
    fn end_text(&mut self, start: &TextMessageStart, text: &str) {
        self.touched = Some(start.message_id.clone());
        if let Some(i) = self.message_index(&start.message_id) {
            if !text.is_empty() {
                append_text(&mut self.messages[i], text);
                self.resize(i);
            }
            return;
        }
        let id = start.message_id.clone();
        let name = start.name.clone();
        let subagent_run_id = self.owner_of(&id, start.subagent_run_id.as_ref());
        let content = text.to_owned();
        let message = match start.role.unwrap_or_default() {
            TextMessageRole::Assistant => Message::Assistant(AssistantMessage {
                subagent_run_id,
                id,
                name,
                content: Some(content),
                ..Default::default()
            }),
            TextMessageRole::User => Message::User(UserMessage {
                subagent_run_id,
                id,
                name,
                encrypted_value: None,
                metadata: None,
                content: Content::Text(content),
            }),
            TextMessageRole::System => Message::System(SystemMessage {
                subagent_run_id,
                id,
                name,
                content,
                ..Default::default()
            }),
            TextMessageRole::Developer => Message::Developer(DeveloperMessage {
                subagent_run_id,
                id,
                name,
                content,
                ..Default::default()
            }),
        };
        self.push_message(message);
    }

    /// A tool call ended: its arguments join the call with its id, or the call
    /// joins (or creates) the assistant message the client attached it to.
    fn end_tool(&mut self, start: &ToolCallStart, args: &str) {
        if let Some(i) = self.tool_call_owner(&start.tool_call_id) {
            if let Message::Assistant(a) = &mut self.messages[i]
                && let Some(call) = a
                    .tool_calls
                    .iter_mut()
                    .flatten()
                    .find(|c| c.id == start.tool_call_id)
            {
                call.function.arguments.push_str(args);
            }
            self.resize(i);
            self.touched = Some(self.messages[i].id().to_owned());
            return;
        }
        let call = ToolCall {
            id: start.tool_call_id.clone(),
            kind: ToolCallKind::Function,
            function: FunctionCall {
                name: start.tool_call_name.clone(),
                arguments: args.to_owned(),
            },
            encrypted_value: None,
            metadata: None,
        };
        // Where the client put the call: an assistant message with the parent
        // id, a text message still open under that id (which the client
        // created at its start), or a new assistant message.
        // A message the call creates belongs to the call's subagent, or keeps
        // the owner already recorded for its id.
        let created = |id: String| {
            let owner = self.owner_of(&id, start.subagent_run_id.as_ref());
            (id, owner, None)
        };
        let target = match start.parent_message_id.as_deref() {
            Some(parent) => match self.message_index(parent) {
                Some(i) if matches!(self.messages[i], Message::Assistant(_)) => Ok(i),
                Some(_) => Err(created(start.tool_call_id.clone())),
                None => match self.open_text(parent).map(|i| &self.open[i]) {
                    Some(Open::Text { start: text, .. }) => {
                        if text.role.unwrap_or_default() == TextMessageRole::Assistant {
                            Err((
                                parent.to_owned(),
                                self.owner_of(parent, text.subagent_run_id.as_ref()),
                                text.name.clone(),
                            ))
                        } else {
                            Err(created(start.tool_call_id.clone()))
                        }
                    }
                    _ => Err(created(parent.to_owned())),
                },
            },
            None => Err(created(start.tool_call_id.clone())),
        };
        match target {
            Ok(i) => {
                if let Message::Assistant(a) = &mut self.messages[i] {
                    a.tool_calls.get_or_insert_with(Vec::new).push(call);
                }
                self.resize(i);
                self.touched = Some(self.messages[i].id().to_owned());
            }
            Err((id, subagent_run_id, name)) => {
                self.touched = Some(id.clone());
                self.push_message(Message::Assistant(AssistantMessage {
                    subagent_run_id,
                    id,
                    name,
                    tool_calls: Some(vec![call]),
                    ..Default::default()
                }));
            }
        }
    }

    /// A tool result goes right after the assistant message that made the call
    /// (after the results already there), as the client places it.
    fn add_tool_result(&mut self, message: Message) {
        self.touched = Some(message.id().to_owned());
        if let Some(i) = self.message_index(message.id()) {
            self.messages[i] = message;
            self.resize(i);
            return;
        }
        let Message::Tool(tool) = &message else {
            return;
        };
        match self.tool_call_owner(&tool.tool_call_id) {
            Some(owner) => {
                let mut at = owner + 1;
                while at < self.messages.len() && matches!(self.messages[at], Message::Tool(_)) {
                    at += 1;
                }
                self.insert_message(at, message);
            }
            None => self.push_message(message),
        }
    }

    /// An approval as an interrupt: the one a `RUN_FINISHED` announced under its
    /// id, or one made from the approval.
    fn interrupt_for(&self, approval: &ApprovalInfo) -> Interrupt {
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

    fn outcome(interrupts: Vec<Interrupt>) -> RunFinishedOutcome {
        if interrupts.is_empty() {
            RunFinishedOutcome::Success {
                pending_tool_call_ids: None,
            }
        } else {
            RunFinishedOutcome::Interrupt { interrupts }
        }
    }

    fn run_started(run: &RunIds) -> String {
        event_json(RunStarted {
            thread_id: run.thread_id.clone(),
            run_id: run.run_id.clone(),
            ..Default::default()
        })
    }

    fn run_finished(run: &RunIds, interrupts: Vec<Interrupt>) -> String {
        event_json(RunFinished {
            thread_id: run.thread_id.clone(),
            run_id: run.run_id.clone(),
            outcome: Some(Self::outcome(interrupts)),
            ..Default::default()
        })
    }

    /// The frames that re-open what is open, in the order it was opened.
    fn reopen(&self, out: &mut Vec<String>) {
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

    fn snapshots(&self, out: &mut Vec<String>) {
        out.push(event_json(MessagesSnapshot {
            messages: self.messages.clone(),
            ..Default::default()
        }));
        if let Some(state) = &self.state {
            out.push(event_json(StateSnapshot {
                snapshot: state.clone(),
                ..Default::default()
            }));
        }
    }
}

impl SessionTracker for RunTracker {
    fn on_publish(&mut self, _name: Option<&str>, data: &str) -> Result<(), Refusal> {
        let value: Value = serde_json::from_str(data)
            .map_err(|e| format!("an AG-UI session carries JSON events: {e}"))?;
        let type_name = match value.as_object().and_then(|o| o.get("type")) {
            Some(Value::String(t)) if !t.is_empty() => t.as_str(),
            _ => {
                return Err(
                    "an AG-UI session carries JSON objects with a non-empty string `type`".into(),
                );
            }
        };
        if !is_agui_type(type_name) {
            if LEGACY_TYPES.contains(&type_name) {
                return Err(format!(
                    "`{type_name}` is a pre-1.0 event type; publish its REASONING_* equivalent"
                )
                .into());
            }
            // Other types pass through: the client drops them unseen.
            return Ok(());
        }
        let event = Event::from_value(value).map_err(|e| e.to_string())?;
        self.publish(&event, data.len())
    }

    fn has_snapshot(&self) -> bool {
        true
    }

    fn state_bytes(&self) -> usize {
        // Text and arguments are kept as strings about as long as their JSON; the state tree
        // costs several times its JSON, and every entity its ids and bookkeeping.
        self.open_bytes
            + self.message_bytes
            + self.state_bytes * STATE_TREE_FACTOR
            + (self.open.len() + self.subagents.len() + self.messages.len()) * ENTITY_BYTES
    }

    fn prelude_on_join(&self) -> bool {
        self.phase == Phase::Open
    }

    fn resync_ends_stream(&self) -> bool {
        true
    }

    fn prelude(&self, resync: Option<&Resync>, pending: &[ApprovalInfo], out: &mut Vec<String>) {
        // Before the first run no AG-UI event may be written at all.
        let Some(run) = &self.run else {
            return;
        };
        out.push(Self::run_started(run));
        self.snapshots(out);
        if let Some(r) = resync {
            out.push(Signal::Resync(r).custom_json());
        }
        if self.phase == Phase::Open {
            // Approvals already announced as interrupts wait for the next
            // RUN_FINISHED; the others are announced in tether's own terms.
            for a in pending {
                if !self.interrupts.iter().any(|i| i.id == a.id) {
                    out.push(Signal::ApprovalRequested(a).custom_json());
                }
            }
            self.reopen(out);
        } else {
            let interrupts = pending.iter().map(|a| self.interrupt_for(a)).collect();
            out.push(Self::run_finished(run, interrupts));
        }
    }

    fn terminal(&self, signal: &Signal<'_>) -> Terminal {
        if self.phase == Phase::Open {
            Terminal::Frames(vec![signal.custom_json()])
        } else {
            Terminal::Comment(format!("{} {}", signal.name(), signal.value()))
        }
    }

    fn stored_signal(&self, signal: &Signal<'_>, out: &mut Vec<String>) {
        if self.phase == Phase::Open {
            out.push(signal.custom_json());
            return;
        }
        let Some(run) = &self.run else {
            // Before the first run a CUSTOM event would break every replay;
            // the notice is left to the prelude.
            return;
        };
        let mut interrupts = self.interrupts.clone();
        match signal {
            Signal::ApprovalRequested(a) if !interrupts.iter().any(|i| i.id == a.id) => {
                interrupts.push(self.interrupt_for(a));
            }
            Signal::ApprovalResolved(a) => interrupts.retain(|i| i.id != a.id),
            _ => {}
        }
        out.push(Self::run_started(run));
        out.push(signal.custom_json());
        out.push(Self::run_finished(run, interrupts));
    }
}
