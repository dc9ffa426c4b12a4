//! The run tracker: validates an AG-UI session's events and renders its
//! snapshots and signals so every stream tether writes passes the official
//! client's checks.
//!
//! See the [crate docs](crate) for what the prelude holds and where signals go.
//!
//! - [`limits`]: how much a tracker keeps.
//! - [`model`]: what each event does to the model.
//! - [`messages`]: the completed messages a snapshot carries.
//! - [`prelude`]: what a joining client is sent.

mod limits;
mod messages;
mod model;
mod prelude;

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tether_core::{
    ApprovalInfo, Refusal, Resync, SessionId, SessionTracker, Signal, Terminal, TrackerFactory,
};

pub use self::limits::TrackerLimits;
use crate::events::{
    Event, EventError, Interrupt, Message, ReasoningMessageStart, ReasoningStart, StepStarted,
    SubagentStarted, TextMessageStart, ToolCallStart, is_agui_type, may_hold_type,
};
use crate::verify::{Owners, Verifier};

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
///     .start().expect("valid config");
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
        // Asked of every event of a session until one makes it an AG-UI session: most events
        // of a plain session carry no `type` at all, and a byte search says so.
        if !may_hold_type(data.as_bytes()) {
            return None;
        }
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
    /// In debug builds, the joined view as it was built before the seeded owners were kept
    /// between runs: every owner copied in at each run start. Each event is judged by both,
    /// and they must agree.
    #[cfg(debug_assertions)]
    reference: Verifier,
    phase: Phase,
    run: Option<RunIds>,
    open: Vec<Open>,
    open_bytes: usize,
    subagents: Vec<(SubagentStarted, Option<Event>)>,
    /// Shared with the copies a backplane judges events on ([`SessionTracker::fork`]), which
    /// then cost the open run, not the whole history.
    messages: Arc<Vec<Message>>,
    /// The owners `messages[..seeded_upto]` carry, the joined view's base at a run start.
    seeded: Arc<Owners>,
    seeded_upto: usize,
    /// A message before `seeded_upto` changed: `seeded` is built again at the next run start.
    seeded_stale: bool,
    message_sizes: Vec<usize>,
    message_bytes: usize,
    state: Option<Arc<Value>>,
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

/// The length of `value`'s JSON, counted as it is written rather than held: a completed
/// message is measured this way each time it changes.
fn json_len<T: serde::Serialize>(value: &T) -> usize {
    let mut counted = ByteCount(0);
    match serde_json::to_writer(&mut counted, value) {
        Ok(()) => counted.0,
        Err(_) => 0,
    }
}

/// An [`std::io::Write`] that only counts.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn event_json(event: impl Into<Event>) -> String {
    serde_json::to_string(&event.into()).expect("an Event always serializes to JSON")
}

/// Whether the joined view may judge `event` otherwise than the exact one. Both verifiers
/// follow the same events (a run start after a finished run resets both), so they differ only
/// in the owners the joined one is seeded with; a streamed delta without a `subagentRunId`
/// consults no owner, only whether its entity is open. The deltas are most of an agent's
/// stream, and this spares each of them the second check.
fn owners_decide(event: &Event) -> bool {
    match event {
        Event::TextMessageContent(e) => e.subagent_run_id.is_some(),
        Event::ToolCallArgs(e) => e.subagent_run_id.is_some(),
        Event::ReasoningMessageContent(e) => e.subagent_run_id.is_some(),
        _ => true,
    }
}

impl RunTracker {
    /// A tracker for a session with no events yet.
    pub fn new(limits: TrackerLimits) -> Self {
        Self {
            limits,
            exact: Verifier::new(),
            joined: Verifier::new(),
            #[cfg(debug_assertions)]
            reference: Verifier::new(),
            phase: Phase::Idle,
            run: None,
            open: Vec::new(),
            open_bytes: 0,
            subagents: Vec::new(),
            messages: Arc::default(),
            seeded: Arc::default(),
            seeded_upto: 0,
            seeded_stale: false,
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
        self.state.as_deref()
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
        #[cfg(debug_assertions)]
        assert_eq!(
            self.joined.check(event),
            self.reference.check(event),
            "the joined view with seeded owners judges {event:?} as one with every owner copied"
        );
        self.exact.check(event).map_err(|e| e.0)?;
        if owners_decide(event) {
            self.joined
                .check(event)
                .map_err(|e| format!("{e} (for a client that joins through a snapshot)"))?;
        }
        self.touched = None;
        self.model(event, data_len)?;
        // A prelude seeds owners from the completed messages; so does the
        // joined view, at each run start and for each message completed since.
        let run_start = matches!(event, Event::RunStarted(_));
        if run_start {
            let seeded = self.seeded_owners();
            self.joined.set_seeded(seeded);
        }
        self.exact.apply(event);
        self.joined.apply(event);
        #[cfg(debug_assertions)]
        {
            self.reference.apply(event);
            if run_start {
                self.reference.seed_owners(self.messages.iter(), true);
            }
        }
        if !run_start
            && let Some(id) = self.touched.take()
            && let Some(i) = self.message_index(&id)
        {
            self.joined
                .seed_owners(std::slice::from_ref(&self.messages[i]), true);
            #[cfg(debug_assertions)]
            self.reference
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
        if self.open.len() >= self.limits.open() {
            return Err(Refusal::TooLarge(format!(
                "this run already has {} open messages, tool calls, reasoning spans and steps, the tracker's limit; close some first",
                self.open.len()
            )));
        }
        Ok(())
    }

    fn check_growth(&self, id: &str, delta: &str) -> Result<(), Refusal> {
        if self.open_bytes + delta.len() > self.limits.open_bytes() {
            return Err(Refusal::TooLarge(format!(
                "the content streamed into the open entities of this run would exceed the tracker's limit of {} bytes (at '{id}'); end them and continue in new ones",
                self.limits.open_bytes()
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
}

impl SessionTracker for RunTracker {
    fn on_publish(&mut self, _name: Option<&str>, data: &str) -> Result<(), Refusal> {
        let event = match data.parse::<Event>() {
            Ok(event) => event,
            Err(EventError::Json(e)) => {
                return Err(format!("an AG-UI session carries JSON events: {e}").into());
            }
            Err(EventError::UnknownType(t)) if !t.is_empty() => {
                if LEGACY_TYPES.contains(&t.as_str()) {
                    return Err(format!(
                        "`{t}` is a pre-1.0 event type; publish its REASONING_* equivalent"
                    )
                    .into());
                }
                // Other types pass through: the client drops them unseen.
                return Ok(());
            }
            Err(EventError::NotAnEvent | EventError::UnknownType(_)) => {
                return Err(
                    "an AG-UI session carries JSON objects with a non-empty string `type`".into(),
                );
            }
            Err(e) => return Err(e.to_string().into()),
        };
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

    fn fork(&self) -> Option<Box<dyn SessionTracker>> {
        Some(Box::new(self.clone()))
    }

    fn checkpoint(&self, out: &mut Vec<String>) {
        // The prelude's frames, with the last run's own interrupts: a tracker fed these
        // announces the same interrupts for the same approvals.
        let Some(run) = &self.run else {
            return;
        };
        out.push(Self::run_started(run));
        self.snapshots(out);
        if self.phase == Phase::Open {
            self.reopen(out);
        } else {
            out.push(Self::run_finished(run, self.interrupts.clone()));
        }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn json_len_is_the_length_of_the_json() {
        let values = [
            json!({"id": "m1", "role": "assistant", "content": "héllo \u{1F600} \"quoted\" \\ \n"}),
            json!([1, 2.5, null, true, {"nested": ["a", {"b": -3}]}]),
            json!(""),
        ];
        for v in &values {
            assert_eq!(
                super::json_len(v),
                serde_json::to_vec(v).unwrap().len(),
                "{v}"
            );
        }
    }
}
