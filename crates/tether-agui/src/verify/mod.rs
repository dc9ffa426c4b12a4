//! The sequence rules of the official client's `verifyEvents`, ported to Rust.
//!
//! [`Verifier`] follows one response's events exactly as `verifyEvents` of
//! `@ag-ui/client` 1.0.0 does: the first event must be `RUN_STARTED` or
//! `RUN_ERROR`; nothing but `RUN_STARTED` or `RUN_ERROR` may follow
//! `RUN_FINISHED`, nothing but `RUN_STARTED` may follow `RUN_ERROR`; text
//! messages, tool calls, reasoning spans and messages, steps and subagents must
//! be opened before they are continued or closed, cannot be opened twice, and
//! must all be closed before `RUN_FINISHED`; and a `subagentRunId` on an event
//! must not contradict the owner recorded by the entity's opener (or by a
//! `MESSAGES_SNAPSHOT`, or by the messages echoed in `RUN_STARTED.input`).
//!
//! The client expands `*_CHUNK` events into start, content and end events
//! (`transformChunks`) before it verifies; this port does not, and reports a
//! chunk event as unsupported.
//!
//! [`verify_sse`] runs a whole response body through the client's SSE framing,
//! its event check and this verifier.
//!
//! ```
//! use tether_agui::verify_sse;
//!
//! let good = "data: {\"type\":\"RUN_STARTED\",\"threadId\":\"t\",\"runId\":\"r\"}\n\n\
//!             data: {\"type\":\"RUN_FINISHED\",\"threadId\":\"t\",\"runId\":\"r\"}\n\n";
//! assert_eq!(verify_sse(good.as_bytes())?, 2);
//!
//! let bad = "data: {\"type\":\"CUSTOM\",\"name\":\"x\",\"value\":1}\n\n";
//! assert!(verify_sse(bad.as_bytes()).is_err());
//! # Ok::<(), tether_agui::StreamError>(())
//! ```

mod sse;

use std::collections;
use std::sync::Arc;

pub use self::sse::{StreamError, sse_data, verify_sse};
use crate::events::{
    EncryptedValueSubtype, Event, Message, ReasoningEncryptedValue, SubagentError,
    SubagentFinished, SubagentStarted, ToolCallStart,
};

/// The verifier's maps and sets hash with foldhash: every event looks its entity's id up in
/// them, and SipHash was most of that. Each process seeds it at random, and a session's ids
/// come from its own publisher, within the tracker's limits.
type HashMap<K, V> = collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = collections::HashSet<K, foldhash::fast::RandomState>;

/// Why an event breaks the sequence rules; the message is the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VerifyError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError(message.into()))
}

/// The owner of an entity: `None` is the parent agent, `Some(id)` a subagent.
type Owner = Option<String>;

/// Who opened what, per entity kind (an id is unique only within its kind).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Owners {
    message: HashMap<String, Owner>,
    tool_call: HashMap<String, Owner>,
    activity: HashMap<String, Owner>,
    reasoning: HashMap<String, Owner>,
}

/// The kinds of entity an owner is recorded for.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Message,
    ToolCall,
    Activity,
    Reasoning,
}

impl Owners {
    fn of(&self, kind: Kind) -> &HashMap<String, Owner> {
        match kind {
            Kind::Message => &self.message,
            Kind::ToolCall => &self.tool_call,
            Kind::Activity => &self.activity,
            Kind::Reasoning => &self.reasoning,
        }
    }

    fn of_mut(&mut self, kind: Kind) -> &mut HashMap<String, Owner> {
        match kind {
            Kind::Message => &mut self.message,
            Kind::ToolCall => &mut self.tool_call,
            Kind::Activity => &mut self.activity,
            Kind::Reasoning => &mut self.reasoning,
        }
    }

    /// Records the owners `messages` carry, the later message winning, as a
    /// `MESSAGES_SNAPSHOT` does.
    pub(crate) fn seed<'a>(&mut self, messages: impl IntoIterator<Item = &'a Message>) {
        for message in messages {
            for (kind, id, owner) in carried_owners(message) {
                self.of_mut(kind).insert(id.to_owned(), owner);
            }
        }
    }
}

/// The owners a completed message records: its own id's, and its tool calls'.
fn carried_owners(message: &Message) -> impl Iterator<Item = (Kind, &str, Owner)> {
    let owner: Owner = message_owner(message).map(str::to_owned);
    let kind = match message {
        Message::Reasoning(_) => Kind::Reasoning,
        Message::Activity(_) => Kind::Activity,
        _ => Kind::Message,
    };
    let calls = match message {
        Message::Assistant(a) => a.tool_calls.as_deref().unwrap_or_default(),
        _ => &[],
    };
    let calls_owner = owner.clone();
    std::iter::once((kind, message.id(), owner)).chain(
        calls
            .iter()
            .map(move |call| (Kind::ToolCall, call.id.as_str(), calls_owner.clone())),
    )
}

/// The state `verifyEvents` keeps for one response.
///
/// [`check`](Self::check) tells whether an event may come next without
/// changing anything; [`apply`](Self::apply) records an event that passed;
/// [`feed`](Self::feed) does both.
///
/// ```
/// use tether_agui::{Event, Verifier};
///
/// let mut v = Verifier::new();
/// let ev = |json: &str| Event::from_slice(json.as_bytes()).unwrap();
/// v.feed(&ev(r#"{"type":"RUN_STARTED","threadId":"t","runId":"r"}"#))?;
/// v.feed(&ev(r#"{"type":"TEXT_MESSAGE_START","messageId":"m"}"#))?;
/// let err = v.check(&ev(r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r"}"#)).unwrap_err();
/// assert!(err.to_string().contains("text messages are still active: m"));
/// # Ok::<(), tether_agui::VerifyError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    active_messages: HashSet<String>,
    active_tool_calls: HashSet<String>,
    active_reasoning_spans: HashSet<String>,
    active_reasoning_messages: HashSet<String>,
    owners: Owners,
    /// Owners seeded from the completed messages when the run started, shared with the
    /// tracker that keeps them (see [`set_seeded`](Self::set_seeded)): consulted for an id
    /// `owners` has no record of, so a run start costs the same however long the history.
    seeded: Arc<Owners>,
    /// Open steps by owner, then name.
    active_steps: HashMap<Owner, Vec<String>>,
    active_subagents: HashSet<String>,
    closed_subagents: HashSet<String>,
    run_started: bool,
    run_finished: bool,
    run_error: bool,
    first_event_received: bool,
}

/// The `subagentRunId` attribution tag of an event, if it carries one.
pub(crate) fn subagent_tag(event: &Event) -> Option<&str> {
    let tag = match event {
        Event::TextMessageStart(e) => &e.subagent_run_id,
        Event::TextMessageContent(e) => &e.subagent_run_id,
        Event::TextMessageEnd(e) => &e.subagent_run_id,
        Event::TextMessageChunk(e) => &e.subagent_run_id,
        Event::ToolCallStart(e) => &e.subagent_run_id,
        Event::ToolCallArgs(e) => &e.subagent_run_id,
        Event::ToolCallEnd(e) => &e.subagent_run_id,
        Event::ToolCallChunk(e) => &e.subagent_run_id,
        Event::ToolCallResult(e) => &e.subagent_run_id,
        Event::StateSnapshot(e) => &e.subagent_run_id,
        Event::StateDelta(e) => &e.subagent_run_id,
        Event::ActivitySnapshot(e) => &e.subagent_run_id,
        Event::ActivityDelta(e) => &e.subagent_run_id,
        Event::Raw(e) => &e.subagent_run_id,
        Event::Custom(e) => &e.subagent_run_id,
        Event::StepStarted(e) => &e.subagent_run_id,
        Event::StepFinished(e) => &e.subagent_run_id,
        Event::ReasoningStart(e) => &e.subagent_run_id,
        Event::ReasoningMessageStart(e) => &e.subagent_run_id,
        Event::ReasoningMessageContent(e) => &e.subagent_run_id,
        Event::ReasoningMessageEnd(e) => &e.subagent_run_id,
        Event::ReasoningMessageChunk(e) => &e.subagent_run_id,
        Event::ReasoningEnd(e) => &e.subagent_run_id,
        Event::ReasoningEncryptedValue(e) => &e.subagent_run_id,
        Event::SubagentStarted(e) => return Some(&e.subagent_run_id),
        Event::SubagentFinished(e) => return Some(&e.subagent_run_id),
        Event::SubagentError(e) => return Some(&e.subagent_run_id),
        _ => return None,
    };
    tag.as_deref()
}

/// The `subagentRunId` of a message.
pub(crate) fn message_owner(message: &Message) -> Option<&str> {
    match message {
        Message::Developer(m) => m.subagent_run_id.as_deref(),
        Message::System(m) => m.subagent_run_id.as_deref(),
        Message::Assistant(m) => m.subagent_run_id.as_deref(),
        Message::User(m) => m.subagent_run_id.as_deref(),
        Message::Tool(m) => m.subagent_run_id.as_deref(),
        Message::Activity(m) => m.subagent_run_id.as_deref(),
        Message::Reasoning(m) => m.subagent_run_id.as_deref(),
    }
}

fn who(owner: &Owner) -> String {
    match owner {
        Some(id) => format!("'{id}'"),
        None => "'(the parent agent)'".into(),
    }
}

/// `subagentTagError`: an absent tag always agrees; a present one must equal
/// the recorded owner, if there is one.
fn tag_error(
    event_type: &str,
    tag: Option<&str>,
    owner: Option<&Owner>,
    kind: &str,
    id: &str,
) -> Result<(), VerifyError> {
    let (Some(tag), Some(owner)) = (tag, owner) else {
        return Ok(());
    };
    if owner.as_deref() != Some(tag) {
        return fail(format!(
            "Cannot send '{event_type}': subagentRunId '{tag}' does not match the {kind} '{id}' opener's subagent {}.",
            who(owner)
        ));
    }
    Ok(())
}

impl Verifier {
    /// A verifier at the start of a response.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks and records `event`; on error nothing changes.
    pub fn feed(&mut self, event: &Event) -> Result<(), VerifyError> {
        self.check(event)?;
        self.apply(event);
        Ok(())
    }

    /// Whether a run is open (started, not finished or errored).
    pub fn run_open(&self) -> bool {
        self.run_started && !self.run_finished && !self.run_error
    }

    /// The owner recorded for a message, if any.
    pub(crate) fn message_owner(&self, id: &str) -> Option<&Owner> {
        self.owner(Kind::Message, id)
    }

    /// The owner recorded for a tool call, if any.
    pub(crate) fn tool_call_owner(&self, id: &str) -> Option<&Owner> {
        self.owner(Kind::ToolCall, id)
    }

    /// The owner recorded for `id`: this response's own record, else the seeded one.
    fn owner(&self, kind: Kind, id: &str) -> Option<&Owner> {
        self.owners
            .of(kind)
            .get(id)
            .or_else(|| self.seeded.of(kind).get(id))
    }

    /// Records `owner` for `id`, over any earlier record.
    fn record(&mut self, kind: Kind, id: &str, owner: Owner) {
        self.owners.of_mut(kind).insert(id.to_owned(), owner);
    }

    /// Records `owner` for `id` unless an owner is recorded already.
    fn record_first(&mut self, kind: Kind, id: &str, owner: Owner) {
        if self.owner(kind, id).is_none() {
            self.record(kind, id, owner);
        }
    }

    /// Makes `seeded` the owners this response starts from, under its own records: the
    /// owners the completed messages carry when a run starts ([`Owners::seed`]). The
    /// tracker's joined view sets them before each `RUN_STARTED` is applied.
    pub(crate) fn set_seeded(&mut self, seeded: Arc<Owners>) {
        self.seeded = seeded;
    }

    /// Records the owners of `messages` as a `MESSAGES_SNAPSHOT` (authoritative)
    /// or the `RUN_STARTED` input echo (only ids nothing else claimed) does.
    pub(crate) fn seed_owners<'a>(
        &mut self,
        messages: impl IntoIterator<Item = &'a Message>,
        authoritative: bool,
    ) {
        for message in messages {
            for (kind, id, owner) in carried_owners(message) {
                if authoritative {
                    self.record(kind, id, owner);
                } else {
                    self.record_first(kind, id, owner);
                }
            }
        }
    }

    fn steps_open(&self) -> bool {
        self.active_steps.values().any(|names| !names.is_empty())
    }

    /// Whether `event` may come next. Changes nothing.
    pub fn check(&self, event: &Event) -> Result<(), VerifyError> {
        let ty = event.type_name();
        self.check_run_phase(event, ty)?;
        let tag = subagent_tag(event);
        match event {
            Event::TextMessageStart(e) => self.check_text_start(ty, tag, &e.message_id),
            Event::TextMessageContent(e) => self.continuation(ty, tag, &e.message_id, true),
            Event::TextMessageEnd(e) => self.continuation(ty, tag, &e.message_id, false),
            Event::ToolCallStart(e) => self.check_tool_start(ty, tag, e),
            Event::ToolCallArgs(e) => self.tool_continuation(ty, tag, &e.tool_call_id),
            Event::ToolCallEnd(e) => self.tool_continuation(ty, tag, &e.tool_call_id),
            Event::StepStarted(e) => self.check_step_started(tag, &e.step_name),
            Event::StepFinished(e) => self.check_step_finished(tag, &e.step_name),
            Event::ReasoningStart(e) => self.reasoning_opener(ty, tag, &e.message_id, true),
            Event::ReasoningMessageStart(e) => self.reasoning_opener(ty, tag, &e.message_id, false),
            Event::ReasoningMessageContent(e) => {
                self.reasoning_continuation(ty, tag, &e.message_id, false)
            }
            Event::ReasoningMessageEnd(e) => {
                self.reasoning_continuation(ty, tag, &e.message_id, false)
            }
            Event::ReasoningEnd(e) => self.reasoning_continuation(ty, tag, &e.message_id, true),
            Event::ReasoningEncryptedValue(e) => self.check_encrypted_value(ty, tag, e),
            Event::ActivityDelta(e) => tag_error(
                ty,
                tag,
                self.owner(Kind::Activity, &e.message_id),
                "activity",
                &e.message_id,
            ),
            Event::SubagentStarted(e) => self.check_subagent_started(e),
            Event::SubagentFinished(_) | Event::SubagentError(_) => {
                let id = tag.unwrap_or_default();
                if !self.active_subagents.contains(id) {
                    return fail(format!(
                        "Cannot send '{ty}': no active subagent found with ID '{id}'. A 'SUBAGENT_STARTED' event must be sent first."
                    ));
                }
                Ok(())
            }
            Event::RunFinished(_) => self.check_run_finished(),
            Event::TextMessageChunk(_)
            | Event::ToolCallChunk(_)
            | Event::ReasoningMessageChunk(_) => fail(format!(
                "'{ty}' must be expanded into start, content and end events before it is verified; this port of verifyEvents does not expand chunks"
            )),
            _ => Ok(()),
        }
    }

    /// What may come after a run errored or finished, first, or while a run
    /// is open.
    fn check_run_phase(&self, event: &Event, ty: &str) -> Result<(), VerifyError> {
        if self.run_error && !matches!(event, Event::RunStarted(_)) {
            return fail(format!(
                "Cannot send event type '{ty}': The run has already errored with 'RUN_ERROR'. No further events can be sent."
            ));
        }
        if self.run_finished && !matches!(event, Event::RunError(_) | Event::RunStarted(_)) {
            return fail(format!(
                "Cannot send event type '{ty}': The run has already finished with 'RUN_FINISHED'. Start a new run with 'RUN_STARTED'."
            ));
        }
        if !self.first_event_received {
            if !matches!(event, Event::RunStarted(_) | Event::RunError(_)) {
                return fail("First event must be 'RUN_STARTED'");
            }
        } else if matches!(event, Event::RunStarted(_)) && self.run_open() {
            return fail(
                "Cannot send 'RUN_STARTED' while a run is still active. The previous run must be finished with 'RUN_FINISHED' before starting a new run.",
            );
        }
        Ok(())
    }

    fn check_text_start(&self, ty: &str, tag: Option<&str>, id: &str) -> Result<(), VerifyError> {
        if self.active_messages.contains(id) {
            return fail(format!(
                "Cannot send 'TEXT_MESSAGE_START' event: A text message with ID '{id}' is already in progress. Complete it with 'TEXT_MESSAGE_END' first."
            ));
        }
        tag_error(ty, tag, self.owner(Kind::Message, id), "message", id)
    }

    fn check_tool_start(
        &self,
        ty: &str,
        tag: Option<&str>,
        e: &ToolCallStart,
    ) -> Result<(), VerifyError> {
        let id = &e.tool_call_id;
        if self.active_tool_calls.contains(id) {
            return fail(format!(
                "Cannot send 'TOOL_CALL_START' event: A tool call with ID '{id}' is already in progress. Complete it with 'TOOL_CALL_END' first."
            ));
        }
        let inherited = self.inherited_owner(e.parent_message_id.as_deref());
        if let (Some(parent), Some(owner), Some(tag)) =
            (e.parent_message_id.as_deref(), inherited, tag)
            && owner.as_deref() != Some(tag)
        {
            return fail(format!(
                "Cannot send 'TOOL_CALL_START': subagentRunId '{tag}' does not match its parent message '{parent}' owner {}. A tool call belongs to the message that carries it.",
                who(owner)
            ));
        }
        if let Some(existing) = self.owner(Kind::ToolCall, id) {
            tag_error(ty, tag, Some(existing), "tool call", id)?;
            if tag.is_none()
                && let Some(inherited) = inherited
                && inherited != existing
            {
                return fail(format!(
                    "Cannot send 'TOOL_CALL_START': tool call '{id}' is owned by {} but its parent message '{}' is owned by {}. A tool call belongs to the message that carries it.",
                    who(existing),
                    e.parent_message_id.as_deref().unwrap_or_default(),
                    who(inherited)
                ));
            }
        }
        Ok(())
    }

    fn check_step_started(&self, tag: Option<&str>, name: &str) -> Result<(), VerifyError> {
        let owner: Owner = tag.map(str::to_owned);
        if self
            .active_steps
            .get(&owner)
            .is_some_and(|names| names.iter().any(|n| n == name))
        {
            let within = tag
                .map(|t| format!(" in subagent '{t}'"))
                .unwrap_or_default();
            return fail(format!(
                "Step \"{name}\" is already active for 'STEP_STARTED'{within}"
            ));
        }
        Ok(())
    }

    fn check_step_finished(&self, tag: Option<&str>, name: &str) -> Result<(), VerifyError> {
        let owner: Owner = tag.map(str::to_owned);
        let has = |names: &Vec<String>| names.iter().any(|n| n == name);
        if self.active_steps.get(&owner).is_some_and(has) {
            return Ok(());
        }
        let other = self
            .active_steps
            .iter()
            .find(|(o, names)| **o != owner && has(names));
        if let Some((other, _)) = other {
            let describe = |o: &Owner| match o {
                Some(id) => format!("subagent '{id}'"),
                None => "the parent agent".into(),
            };
            return fail(format!(
                "Cannot send 'STEP_FINISHED' for step \"{name}\" attributed to {}: that step is open under {}. A step must be finished by whoever started it.",
                describe(&owner),
                describe(other)
            ));
        }
        fail(format!(
            "Cannot send 'STEP_FINISHED' for step \"{name}\" that was not started"
        ))
    }

    fn check_encrypted_value(
        &self,
        ty: &str,
        tag: Option<&str>,
        e: &ReasoningEncryptedValue,
    ) -> Result<(), VerifyError> {
        let id = &e.entity_id;
        let (owner, kind) = match e.subtype {
            EncryptedValueSubtype::ToolCall => (self.owner(Kind::ToolCall, id), "tool call"),
            EncryptedValueSubtype::Message => (
                self.owner(Kind::Message, id)
                    .or_else(|| self.owner(Kind::Reasoning, id)),
                "message",
            ),
        };
        tag_error(ty, tag, owner, kind, id)
    }

    fn check_subagent_started(&self, e: &SubagentStarted) -> Result<(), VerifyError> {
        let id = &e.subagent_run_id;
        if self.active_subagents.contains(id) {
            return fail(format!(
                "Cannot send 'SUBAGENT_STARTED': subagent '{id}' is already active. Finish it with 'SUBAGENT_FINISHED' first."
            ));
        }
        if self.closed_subagents.contains(id) {
            return fail(format!(
                "Cannot send 'SUBAGENT_STARTED': subagent '{id}' has already finished in this run. Subagent IDs are per-invocation and cannot be reused."
            ));
        }
        if let Some(parent) = &e.parent_subagent_run_id
            && !self.active_subagents.contains(parent)
            && !self.closed_subagents.contains(parent)
        {
            return fail(format!(
                "Cannot send 'SUBAGENT_STARTED': parentSubagentRunId '{parent}' has not been started in this run."
            ));
        }
        Ok(())
    }

    /// `RUN_FINISHED` needs every step, message, reasoning span, tool call
    /// and subagent closed.
    fn check_run_finished(&self) -> Result<(), VerifyError> {
        if self.steps_open() {
            let mut parts = Vec::new();
            for (owner, names) in &self.active_steps {
                for name in names {
                    parts.push(match owner {
                        Some(o) => format!("{name} (subagent '{o}')"),
                        None => name.clone(),
                    });
                }
            }
            return fail(format!(
                "Cannot send 'RUN_FINISHED' while steps are still active: {}",
                parts.join(", ")
            ));
        }
        let open = |what: &str, set: &HashSet<String>| -> Result<(), VerifyError> {
            if set.is_empty() {
                return Ok(());
            }
            let mut ids: Vec<&str> = set.iter().map(String::as_str).collect();
            ids.sort_unstable();
            fail(format!(
                "Cannot send 'RUN_FINISHED' while {what} are still active: {}",
                ids.join(", ")
            ))
        };
        open("text messages", &self.active_messages)?;
        open("reasoning messages", &self.active_reasoning_messages)?;
        open("reasoning spans", &self.active_reasoning_spans)?;
        open("tool calls", &self.active_tool_calls)?;
        open("subagents", &self.active_subagents)
    }

    fn inherited_owner(&self, parent: Option<&str>) -> Option<&Owner> {
        parent.and_then(|p| self.owner(Kind::Message, p))
    }

    fn continuation(
        &self,
        ty: &str,
        tag: Option<&str>,
        id: &str,
        content: bool,
    ) -> Result<(), VerifyError> {
        if !self.active_messages.contains(id) {
            return fail(if content {
                format!(
                    "Cannot send 'TEXT_MESSAGE_CONTENT' event: No active text message found with ID '{id}'. Start a text message with 'TEXT_MESSAGE_START' first."
                )
            } else {
                format!(
                    "Cannot send 'TEXT_MESSAGE_END' event: No active text message found with ID '{id}'. A 'TEXT_MESSAGE_START' event must be sent first."
                )
            });
        }
        tag_error(ty, tag, self.owner(Kind::Message, id), "message", id)
    }

    fn tool_continuation(&self, ty: &str, tag: Option<&str>, id: &str) -> Result<(), VerifyError> {
        if !self.active_tool_calls.contains(id) {
            return fail(if ty == "TOOL_CALL_ARGS" {
                format!(
                    "Cannot send 'TOOL_CALL_ARGS' event: No active tool call found with ID '{id}'. Start a tool call with 'TOOL_CALL_START' first."
                )
            } else {
                format!(
                    "Cannot send 'TOOL_CALL_END' event: No active tool call found with ID '{id}'. A 'TOOL_CALL_START' event must be sent first."
                )
            });
        }
        tag_error(ty, tag, self.owner(Kind::ToolCall, id), "tool call", id)
    }

    fn reasoning_opener(
        &self,
        ty: &str,
        tag: Option<&str>,
        id: &str,
        span: bool,
    ) -> Result<(), VerifyError> {
        let open = if span {
            &self.active_reasoning_spans
        } else {
            &self.active_reasoning_messages
        };
        if open.contains(id) {
            return fail(if span {
                format!(
                    "Cannot send 'REASONING_START' event: A reasoning span with ID '{id}' is already in progress. Complete it with 'REASONING_END' first."
                )
            } else {
                format!(
                    "Cannot send 'REASONING_MESSAGE_START' event: A reasoning message with ID '{id}' is already in progress. Complete it with 'REASONING_MESSAGE_END' first."
                )
            });
        }
        tag_error(
            ty,
            tag,
            self.owner(Kind::Reasoning, id),
            "reasoning message",
            id,
        )
    }

    fn reasoning_continuation(
        &self,
        ty: &str,
        tag: Option<&str>,
        id: &str,
        span: bool,
    ) -> Result<(), VerifyError> {
        let open = if span {
            &self.active_reasoning_spans
        } else {
            &self.active_reasoning_messages
        };
        if !open.contains(id) {
            return fail(if span {
                format!(
                    "Cannot send 'REASONING_END' event: No active reasoning span found with ID '{id}'. A 'REASONING_START' event must be sent first."
                )
            } else {
                format!(
                    "Cannot send '{ty}' event: No active reasoning message found with ID '{id}'. Start a reasoning message with 'REASONING_MESSAGE_START' first."
                )
            });
        }
        tag_error(
            ty,
            tag,
            self.owner(Kind::Reasoning, id),
            "reasoning message",
            id,
        )
    }

    /// Records `event`, which [`check`](Self::check) accepted.
    pub fn apply(&mut self, event: &Event) {
        self.begin(event);
        let tag: Owner = subagent_tag(event).map(str::to_owned);
        match event {
            Event::TextMessageStart(e) => {
                self.active_messages.insert(e.message_id.clone());
                self.record_first(Kind::Message, &e.message_id, tag);
            }
            Event::TextMessageEnd(e) => {
                self.active_messages.remove(&e.message_id);
            }
            Event::ToolCallStart(e) => self.open_tool_call(e, tag),
            Event::ToolCallEnd(e) => {
                self.active_tool_calls.remove(&e.tool_call_id);
            }
            Event::StepStarted(e) => {
                self.active_steps
                    .entry(tag)
                    .or_default()
                    .push(e.step_name.clone());
            }
            Event::StepFinished(e) => {
                if let Some(names) = self.active_steps.get_mut(&tag) {
                    names.retain(|n| n != &e.step_name);
                }
            }
            Event::ActivitySnapshot(e) => {
                let is_new = self.owner(Kind::Activity, &e.message_id).is_none();
                if is_new || e.replace != Some(false) {
                    self.record(Kind::Activity, &e.message_id, tag);
                }
            }
            Event::ToolCallResult(e) => {
                self.record(Kind::Message, &e.message_id, tag);
            }
            Event::ReasoningStart(e) => {
                self.active_reasoning_spans.insert(e.message_id.clone());
                self.record_first(Kind::Reasoning, &e.message_id, tag);
            }
            Event::ReasoningMessageStart(e) => {
                self.active_reasoning_messages.insert(e.message_id.clone());
                self.record_first(Kind::Reasoning, &e.message_id, tag);
            }
            Event::ReasoningMessageEnd(e) => {
                self.active_reasoning_messages.remove(&e.message_id);
            }
            Event::ReasoningEnd(e) => {
                self.active_reasoning_spans.remove(&e.message_id);
            }
            _ => self.apply_run_level(event),
        }
    }

    /// The part of [`apply`](Self::apply) for subagents, snapshots and the run itself.
    fn apply_run_level(&mut self, event: &Event) {
        match event {
            Event::SubagentStarted(e) => {
                self.active_subagents.insert(e.subagent_run_id.clone());
            }
            Event::SubagentFinished(SubagentFinished {
                subagent_run_id, ..
            })
            | Event::SubagentError(SubagentError {
                subagent_run_id, ..
            }) => {
                self.active_subagents.remove(subagent_run_id);
                self.closed_subagents.insert(subagent_run_id.clone());
            }
            Event::MessagesSnapshot(e) => self.seed_owners(&e.messages, true),
            Event::RunStarted(e) => {
                self.run_started = true;
                if let Some(input) = &e.input {
                    self.seed_owners(&input.messages, false);
                }
            }
            Event::RunFinished(_) => self.run_finished = true,
            Event::RunError(_) => self.run_error = true,
            _ => {}
        }
    }

    /// The first event starts the response; a `RUN_STARTED` after a finished
    /// or errored run starts over.
    fn begin(&mut self, event: &Event) {
        if !self.first_event_received {
            self.first_event_received = true;
        } else if matches!(event, Event::RunStarted(_)) && (self.run_finished || self.run_error) {
            let seeded = std::mem::take(&mut self.seeded);
            *self = Self {
                first_event_received: true,
                seeded,
                ..Self::default()
            };
        }
    }

    /// A tool call's owner is its tag, or else its parent message's owner;
    /// an owner already recorded stays.
    fn open_tool_call(&mut self, e: &ToolCallStart, tag: Owner) {
        let inherited = self
            .inherited_owner(e.parent_message_id.as_deref())
            .cloned();
        self.active_tool_calls.insert(e.tool_call_id.clone());
        let owner = if tag.is_some() {
            tag
        } else {
            inherited.unwrap_or(None)
        };
        self.record_first(Kind::ToolCall, &e.tool_call_id, owner);
    }
}
