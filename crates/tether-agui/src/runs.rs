//! Runs of AG-UI threads on a tether broker, for agent code: publish typed
//! events into a run, ask for approvals as interrupts, continue after them.
//!
//! A thread's id is its session's id. [`AguiRuns`] keeps, per thread, the run
//! in progress (a second one is refused with [`AguiError::Busy`]) and the agent
//! waiting for the client's answer to an interrupt, so the run that carries
//! the answer (`RunAgentInput.resume`) continues that agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tether_core::{
    ApprovalError, ApprovalHandle, ApprovalRequest, Broker, DecideError, Decision, EventId,
    InvalidId, PublishError, SessionId,
};
use tokio::sync::{Notify, oneshot, watch};

use crate::events::{
    Content, Custom, Event, Interrupt, JsonPatch, Metadata, ResumeEntry, ResumeStatus,
    RunAgentInput, RunError, RunFinished, RunFinishedOutcome, RunStarted, StateDelta,
    StateSnapshot, StepFinished, StepStarted, TextMessageContent, TextMessageEnd, TextMessageRole,
    TextMessageStart, ToolCallArgs, ToolCallEnd, ToolCallResult, ToolCallStart,
};

/// Why a run could not be started, continued or written to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AguiError {
    /// The thread id is not a valid session id.
    #[error("invalid thread id: {0}")]
    InvalidThread(#[from] InvalidId),
    /// Another run of the thread is in progress (HTTP 409).
    #[error("thread `{0}` already has a run in progress; wait until it finishes")]
    Busy(String),
    /// The publisher has no open run: it finished, failed or was interrupted.
    #[error("no run is open on this publisher; after an interrupt, call `next_run` first")]
    NoRun,
    /// The publisher's run is still open.
    #[error("the publisher's run is still open; finish it before starting the next")]
    StillOpen,
    /// Open and close runs with the publisher's own methods.
    #[error("{0} is written by the publisher itself; use `finish`, `fail` or `next_run`")]
    Lifecycle(&'static str),
    /// The broker refused an event (for example the session's tracker found it
    /// invalid).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The broker refused an approval.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
}

/// What the registry knows about one thread.
#[derive(Default)]
struct Slot {
    /// The id of the run in progress (or reserved by a client request).
    active: Option<String>,
    /// The agent waiting for the client's answer to an interrupt.
    waiter: Option<oneshot::Sender<Handoff>>,
}

struct RunsInner {
    broker: Broker,
    threads: Mutex<HashMap<SessionId, Slot>>,
    /// Woken whenever a thread's run ends or a reservation is given up.
    released: Notify,
}

/// The AG-UI runs of a broker's threads. Cheap to clone.
///
/// ```
/// use std::sync::Arc;
/// use tether_agui::{AguiRuns, AguiTrackerFactory};
/// use tether_core::Broker;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let broker = Broker::builder().tracker_factory(Arc::new(AguiTrackerFactory::new())).start();
/// let runs = AguiRuns::new(broker);
///
/// let mut run = runs.start_run("thread-1", "run-1")?;
/// run.text("msg-1", "Hello!")?;
/// run.finish(None)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AguiRuns {
    inner: Arc<RunsInner>,
}

impl std::fmt::Debug for AguiRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AguiRuns").finish_non_exhaustive()
    }
}

impl AguiRuns {
    /// Runs on `broker`, whose AG-UI sessions should be tracked (register
    /// [`AguiTrackerFactory`](crate::AguiTrackerFactory) on its builder).
    pub fn new(broker: Broker) -> Self {
        Self {
            inner: Arc::new(RunsInner {
                broker,
                threads: Mutex::new(HashMap::new()),
                released: Notify::new(),
            }),
        }
    }

    /// The broker the runs publish to.
    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    fn threads(&self) -> MutexGuard<'_, HashMap<SessionId, Slot>> {
        self.inner
            .threads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a run of the thread is in progress.
    pub fn is_busy(&self, thread_id: &str) -> bool {
        SessionId::new(thread_id)
            .ok()
            .and_then(|s| self.threads().get(&s).map(|slot| slot.active.is_some()))
            .unwrap_or(false)
    }

    fn claim(&self, session: &SessionId, run_id: &str) -> Result<(), AguiError> {
        let mut threads = self.threads();
        let slot = threads.entry(session.clone()).or_default();
        if slot.active.is_some() {
            return Err(AguiError::Busy(session.to_string()));
        }
        slot.active = Some(run_id.to_owned());
        Ok(())
    }

    fn release(&self, session: &SessionId, run_id: &str) {
        let mut threads = self.threads();
        if let Some(slot) = threads.get_mut(session) {
            if slot.active.as_deref() == Some(run_id) {
                slot.active = None;
            }
            if slot.active.is_none() && slot.waiter.as_ref().is_none_or(|w| w.is_closed()) {
                threads.remove(session);
            }
        }
        drop(threads);
        self.inner.released.notify_waiters();
    }

    /// Starts a run that agent code drives on its own (no client request):
    /// publishes `RUN_STARTED` and returns the run's publisher.
    pub fn start_run(
        &self,
        thread_id: &str,
        run_id: impl Into<String>,
    ) -> Result<RunPublisher, AguiError> {
        let session = SessionId::new(thread_id)?;
        let run_id = run_id.into();
        let run = self.open_run(&session, thread_id, run_id, None, None)?;
        Ok(RunPublisher {
            runs: self.clone(),
            session,
            thread_id: thread_id.to_owned(),
            last_run_id: run.run_id.clone(),
            current: Some(run),
            waiting: None,
        })
    }

    /// Claims the thread, publishes `RUN_STARTED` and returns the open run.
    fn open_run(
        &self,
        session: &SessionId,
        thread_id: &str,
        run_id: String,
        parent_run_id: Option<String>,
        input: Option<&RunAgentInput>,
    ) -> Result<ActiveRun, AguiError> {
        self.claim(session, &run_id)?;
        self.open_claimed(session, thread_id, run_id, parent_run_id, input)
    }

    fn open_claimed(
        &self,
        session: &SessionId,
        thread_id: &str,
        run_id: String,
        parent_run_id: Option<String>,
        input: Option<&RunAgentInput>,
    ) -> Result<ActiveRun, AguiError> {
        let started = Event::from(RunStarted {
            thread_id: thread_id.to_owned(),
            run_id: run_id.clone(),
            parent_run_id,
            input: input.map(|i| Box::new(i.clone())),
            ..Default::default()
        });
        if let Err(e) = self.inner.broker.publish(session, &started) {
            self.release(session, &run_id);
            return Err(e.into());
        }
        let (end, _) = watch::channel(None);
        Ok(ActiveRun {
            runs: self.clone(),
            session: session.clone(),
            thread_id: thread_id.to_owned(),
            run_id,
            end,
            done: false,
        })
    }

    /// Reserves the thread for the run a client asks for, before its response
    /// is connected; [`Reservation::start`] then starts it. Refused with
    /// [`AguiError::Busy`] while another run of the thread is in progress.
    pub fn reserve(&self, input: &RunAgentInput) -> Result<Reservation, AguiError> {
        let session = SessionId::new(&input.thread_id)?;
        self.claim(&session, &input.run_id)?;
        Ok(Reservation {
            runs: self.clone(),
            session,
            run_id: input.run_id.clone(),
            armed: true,
        })
    }

    /// Answers interrupts from a client's `resume` entries, each exactly once:
    /// `resolved` approves or rejects the approval with the interrupt's id
    /// (see [`decision_from_resume`]), `cancelled` cancels it. An approval that
    /// was already decided (through tether's decision route) is accepted as
    /// is; an entry whose id is no approval of the thread is left to the agent.
    /// Returns the interrupts answered `resolved` after their deadline.
    pub fn answer(&self, session: &SessionId, resume: &[ResumeEntry]) -> Vec<Interrupt> {
        let broker = &self.inner.broker;
        let mut expired = Vec::new();
        for entry in resume {
            let id = entry.interrupt_id.as_str();
            let result = match entry.status {
                ResumeStatus::Resolved => {
                    broker.decide(session, id, decision_from_resume(entry.payload.as_ref()))
                }
                ResumeStatus::Cancelled => broker.cancel_approval(session, id),
            };
            if let (Err(DecideError::Expired), ResumeStatus::Resolved) = (result, entry.status) {
                expired.push(Interrupt {
                    id: entry.interrupt_id.clone(),
                    reason: "approval".into(),
                    expires_at: broker.approval(session, id).map(|a| a.expires_at),
                    ..Default::default()
                });
            }
        }
        expired
    }
}

/// How a `resolved` resume entry's payload decides an approval: `false`, or an
/// object with `"approved": false`, rejects (with the object's `"reason"`, if
/// a string); anything else approves.
///
/// ```
/// use serde_json::json;
/// use tether_agui::decision_from_resume;
///
/// assert!(decision_from_resume(None).approved);
/// assert!(!decision_from_resume(Some(&json!(false))).approved);
/// let d = decision_from_resume(Some(&json!({"approved": false, "reason": "too risky"})));
/// assert_eq!((d.approved, d.reason.as_deref()), (false, Some("too risky")));
/// ```
pub fn decision_from_resume(payload: Option<&Value>) -> Decision {
    match payload {
        Some(Value::Bool(approved)) => Decision {
            approved: *approved,
            reason: None,
        },
        Some(Value::Object(o)) => Decision {
            approved: o.get("approved").and_then(Value::as_bool).unwrap_or(true),
            reason: o.get("reason").and_then(Value::as_str).map(str::to_owned),
        },
        _ => Decision::approve(),
    }
}

/// A thread held for a client's run between the 409 check and the start of
/// the run; dropping it gives the thread back.
#[derive(Debug)]
#[must_use = "a reservation holds the thread until it is started or dropped"]
pub struct Reservation {
    runs: AguiRuns,
    session: SessionId,
    run_id: String,
    armed: bool,
}

/// The run a client started, as [`Reservation::start`] left it.
#[derive(Debug)]
pub enum ClientRun {
    /// A new run: hand the publisher to the agent.
    New {
        /// The run's publisher.
        publisher: RunPublisher,
        /// Resolves to the id of the run's last event.
        end: RunEnd,
    },
    /// The run continues the agent that waited for the answer to its
    /// interrupt ([`RunPublisher::next_run`]).
    Resumed {
        /// Resolves to the id of the run's last event.
        end: RunEnd,
    },
    /// The run failed at once with `RUN_ERROR` (a `resolved` answer to an
    /// interrupt past its deadline).
    Failed {
        /// Resolves to the id of the `RUN_ERROR`.
        end: RunEnd,
    },
}

impl ClientRun {
    /// Resolves to the id of the run's last event.
    pub fn end(&self) -> RunEnd {
        match self {
            ClientRun::New { end, .. } | ClientRun::Resumed { end } | ClientRun::Failed { end } => {
                end.clone()
            }
        }
    }
}

/// The id of a run's last event (`RUN_FINISHED` or `RUN_ERROR`), once written.
#[derive(Debug, Clone)]
pub struct RunEnd(watch::Receiver<Option<EventId>>);

impl RunEnd {
    /// The id, if the run has ended.
    pub fn get(&self) -> Option<EventId> {
        *self.0.borrow()
    }

    /// Waits for the run to end; `None` if its publisher vanished without
    /// ending it.
    pub async fn wait(&mut self) -> Option<EventId> {
        self.0.wait_for(Option::is_some).await.ok().and_then(|v| *v)
    }
}

impl Reservation {
    /// Starts the client's run: answers its `resume` entries
    /// ([`AguiRuns::answer`]), then publishes `RUN_STARTED` (echoing `input`)
    /// and hands the run to the agent waiting on the thread, or returns it for
    /// a new agent. A `resolved` answer past its deadline fails the run with
    /// `RUN_ERROR`.
    pub fn start(mut self, input: RunAgentInput) -> Result<ClientRun, AguiError> {
        self.armed = false;
        let runs = self.runs.clone();
        let session = self.session.clone();
        let expired = runs.answer(&session, input.resume.as_deref().unwrap_or_default());
        let mut run = runs.open_claimed(
            &session,
            &input.thread_id,
            input.run_id.clone(),
            input.parent_run_id.clone(),
            Some(&input),
        )?;
        let end = RunEnd(run.end.subscribe());
        if let Some(first) = expired.first() {
            let message = format!(
                "interrupt {} expired at {}; answer it with status \"cancelled\" to continue the thread",
                first.id,
                first.expires_at.as_deref().unwrap_or("its deadline")
            );
            run.close(Event::from(RunError {
                message,
                code: Some("interrupt_expired".into()),
                ..Default::default()
            }))?;
            return Ok(ClientRun::Failed { end });
        }
        let waiter = runs
            .threads()
            .get_mut(&session)
            .and_then(|slot| slot.waiter.take());
        let mut handoff = Handoff { run, input };
        if let Some(waiter) = waiter {
            match waiter.send(handoff) {
                Ok(()) => return Ok(ClientRun::Resumed { end }),
                Err(back) => handoff = back,
            }
        }
        Ok(ClientRun::New {
            publisher: RunPublisher {
                runs: runs.clone(),
                session,
                thread_id: handoff.input.thread_id.clone(),
                last_run_id: handoff.run.run_id.clone(),
                current: Some(handoff.run),
                waiting: None,
            },
            end,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.armed {
            self.runs.release(&self.session, &self.run_id);
        }
    }
}

/// A client's run handed to the agent that waits for it.
struct Handoff {
    run: ActiveRun,
    input: RunAgentInput,
}

/// One open run. Dropped while open, it fails the run with `RUN_ERROR`, so a
/// vanished agent never leaves its thread's run open.
struct ActiveRun {
    runs: AguiRuns,
    session: SessionId,
    thread_id: String,
    run_id: String,
    end: watch::Sender<Option<EventId>>,
    done: bool,
}

impl std::fmt::Debug for ActiveRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveRun")
            .field("session", &self.session)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl ActiveRun {
    fn publish(&self, event: &Event) -> Result<EventId, AguiError> {
        Ok(self.runs.inner.broker.publish(&self.session, event)?)
    }

    /// Publishes the run's last event and gives the thread back.
    fn close(&mut self, event: Event) -> Result<EventId, AguiError> {
        let id = self.publish(&event)?;
        self.done = true;
        self.end.send_replace(Some(id));
        self.runs.release(&self.session, &self.run_id);
        Ok(id)
    }
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let failed = Event::from(RunError {
            message: "the agent stopped before finishing the run".into(),
            code: Some("agent_stopped".into()),
            ..Default::default()
        });
        if self.close(failed).is_err() {
            // The broker refused the event (it is draining or the session is
            // gone); the thread is given back all the same.
            self.runs.release(&self.session, &self.run_id);
        }
    }
}

/// Publishes one agent's runs into a thread: typed AG-UI events, approvals
/// as interrupts, and the continuation after them.
///
/// Dropped while a run is open, it ends the run with `RUN_ERROR`.
#[derive(Debug)]
pub struct RunPublisher {
    runs: AguiRuns,
    session: SessionId,
    thread_id: String,
    last_run_id: String,
    current: Option<ActiveRun>,
    waiting: Option<oneshot::Receiver<Handoff>>,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff").field("run", &self.run).finish()
    }
}

impl RunPublisher {
    /// The thread (and session) id.
    pub fn thread_id(&self) -> &str {
        &self.thread_id
    }

    /// The session the runs are published to.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The id of the open run, or of the last one.
    pub fn run_id(&self) -> &str {
        self.current
            .as_ref()
            .map_or(self.last_run_id.as_str(), |r| r.run_id.as_str())
    }

    /// Whether a run is open.
    pub fn is_open(&self) -> bool {
        self.current.is_some()
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        self.runs.broker()
    }

    fn run(&self) -> Result<&ActiveRun, AguiError> {
        self.current.as_ref().ok_or(AguiError::NoRun)
    }

    /// Publishes any event into the open run, except `RUN_STARTED`,
    /// `RUN_FINISHED` and `RUN_ERROR` (use [`finish`](Self::finish),
    /// [`fail`](Self::fail), [`request_tool_approval`](Self::request_tool_approval)
    /// and [`next_run`](Self::next_run)).
    pub fn publish(&self, event: impl Into<Event>) -> Result<EventId, AguiError> {
        let event = event.into();
        if let Event::RunStarted(_) | Event::RunFinished(_) | Event::RunError(_) = &event {
            return Err(AguiError::Lifecycle(event.type_name()));
        }
        self.run()?.publish(&event)
    }

    /// `TEXT_MESSAGE_START` of an assistant message.
    pub fn text_start(&self, message_id: &str) -> Result<EventId, AguiError> {
        self.publish(TextMessageStart {
            message_id: message_id.into(),
            role: Some(TextMessageRole::Assistant),
            ..Default::default()
        })
    }

    /// `TEXT_MESSAGE_CONTENT`.
    pub fn text_content(&self, message_id: &str, delta: &str) -> Result<EventId, AguiError> {
        self.publish(TextMessageContent {
            message_id: message_id.into(),
            delta: delta.into(),
            ..Default::default()
        })
    }

    /// `TEXT_MESSAGE_END`.
    pub fn text_end(&self, message_id: &str) -> Result<EventId, AguiError> {
        self.publish(TextMessageEnd {
            message_id: message_id.into(),
            ..Default::default()
        })
    }

    /// A whole assistant message: start, content, end.
    pub fn text(&self, message_id: &str, text: &str) -> Result<EventId, AguiError> {
        self.text_start(message_id)?;
        if !text.is_empty() {
            self.text_content(message_id, text)?;
        }
        self.text_end(message_id)
    }

    /// `TOOL_CALL_START`.
    pub fn tool_call_start(
        &self,
        tool_call_id: &str,
        tool_name: &str,
        parent_message_id: Option<&str>,
    ) -> Result<EventId, AguiError> {
        self.publish(ToolCallStart {
            tool_call_id: tool_call_id.into(),
            tool_call_name: tool_name.into(),
            parent_message_id: parent_message_id.map(Into::into),
            ..Default::default()
        })
    }

    /// `TOOL_CALL_ARGS`.
    pub fn tool_call_args(&self, tool_call_id: &str, delta: &str) -> Result<EventId, AguiError> {
        self.publish(ToolCallArgs {
            tool_call_id: tool_call_id.into(),
            delta: delta.into(),
            ..Default::default()
        })
    }

    /// `TOOL_CALL_END`.
    pub fn tool_call_end(&self, tool_call_id: &str) -> Result<EventId, AguiError> {
        self.publish(ToolCallEnd {
            tool_call_id: tool_call_id.into(),
            ..Default::default()
        })
    }

    /// `TOOL_CALL_RESULT`: what the tool returned, as the tool message
    /// `message_id`.
    pub fn tool_call_result(
        &self,
        message_id: &str,
        tool_call_id: &str,
        content: impl Into<Content>,
    ) -> Result<EventId, AguiError> {
        self.publish(ToolCallResult {
            message_id: message_id.into(),
            tool_call_id: tool_call_id.into(),
            content: content.into(),
            role: None,
            subagent_run_id: None,
            timestamp: None,
            raw_event: None,
            metadata: None,
        })
    }

    /// `STATE_SNAPSHOT`.
    pub fn state_snapshot(&self, snapshot: Value) -> Result<EventId, AguiError> {
        self.publish(StateSnapshot {
            snapshot,
            ..Default::default()
        })
    }

    /// `STATE_DELTA`.
    pub fn state_delta(&self, delta: JsonPatch) -> Result<EventId, AguiError> {
        self.publish(StateDelta {
            delta,
            ..Default::default()
        })
    }

    /// `STEP_STARTED`.
    pub fn step_started(&self, step_name: &str) -> Result<EventId, AguiError> {
        self.publish(StepStarted {
            step_name: step_name.into(),
            ..Default::default()
        })
    }

    /// `STEP_FINISHED`.
    pub fn step_finished(&self, step_name: &str) -> Result<EventId, AguiError> {
        self.publish(StepFinished {
            step_name: step_name.into(),
            ..Default::default()
        })
    }

    /// `CUSTOM`.
    pub fn custom(&self, name: &str, value: Value) -> Result<EventId, AguiError> {
        self.publish(Custom {
            name: name.into(),
            value,
            ..Default::default()
        })
    }

    fn close(&mut self, event: Event) -> Result<EventId, AguiError> {
        let run = self.current.as_mut().ok_or(AguiError::NoRun)?;
        let id = run.close(event)?;
        self.current = None;
        Ok(id)
    }

    /// Ends the run with `RUN_FINISHED` (success, with an optional result).
    pub fn finish(&mut self, result: Option<Value>) -> Result<EventId, AguiError> {
        let run = self.run()?;
        let event = Event::from(RunFinished {
            thread_id: run.thread_id.clone(),
            run_id: run.run_id.clone(),
            result,
            ..Default::default()
        });
        self.close(event)
    }

    /// Ends the run with `finished`, another agent's own `RUN_FINISHED` (a proxy
    /// forwarding a remote agent's run): its thread and run ids become this run's,
    /// so the stream stays one run whatever the remote agent named it. For an
    /// `interrupt` outcome use [`finish_interrupted`](Self::finish_interrupted).
    pub fn finish_with(&mut self, mut finished: RunFinished) -> Result<EventId, AguiError> {
        let run = self.run()?;
        finished.thread_id = run.thread_id.clone();
        finished.run_id = run.run_id.clone();
        self.close(Event::from(finished))
    }

    /// Ends the run with `RUN_FINISHED` whose outcome is `interrupt`, for
    /// interrupts another agent raised (a proxy forwarding a remote agent's
    /// run): each becomes a silent tether approval with the interrupt's id and
    /// `timeout`, so tether's decision route and a `resume` entry of the next
    /// run answer it alike, and pending ones are re-announced after a resync.
    /// The interrupt's `expiresAt` is set to the approval's deadline. An
    /// interrupt whose id tether cannot use as an approval id is passed on
    /// unchanged and left out of the returned list of approval ids. The
    /// agent's interrupts are not awaited here: the next run's `resume`
    /// entries go to whoever runs it.
    pub fn finish_interrupted(
        &mut self,
        mut finished: RunFinished,
        timeout: Duration,
    ) -> Result<Vec<String>, AguiError> {
        let broker = self.runs.broker().clone();
        let mut created = Vec::new();
        if let Some(RunFinishedOutcome::Interrupt { interrupts }) = finished.outcome.as_mut() {
            for interrupt in interrupts.iter_mut() {
                let payload = serde_json::to_value(&*interrupt).unwrap_or(Value::Null);
                let request = ApprovalRequest::new(payload)
                    .id(interrupt.id.clone())
                    .title(interrupt.reason.clone())
                    .timeout(timeout)
                    .silent();
                if let Ok(handle) = broker.request_approval(&self.session, request) {
                    interrupt.expires_at = broker
                        .approval(&self.session, handle.id())
                        .map(|a| a.expires_at);
                    created.push(handle.id().to_owned());
                }
            }
        }
        match self.finish_with(finished) {
            Ok(_) => Ok(created),
            Err(e) => {
                for id in &created {
                    let _ = broker.cancel_approval(&self.session, id);
                }
                Err(e)
            }
        }
    }

    /// Ends the run with `RUN_ERROR`.
    pub fn fail(&mut self, message: &str, code: Option<&str>) -> Result<EventId, AguiError> {
        self.run()?;
        self.close(Event::from(RunError {
            message: message.into(),
            code: code.map(Into::into),
            ..Default::default()
        }))
    }

    /// Asks a human to approve a tool call: creates a silent tether approval
    /// (tether writes no notice of its own) and ends the run with
    /// `RUN_FINISHED` whose outcome is `interrupt`, listing one interrupt whose
    /// id is the approval's id, with `reason`, `toolCallId`, `expiresAt` (the
    /// approval's deadline, RFC 3339) and the payload under
    /// `metadata.payload`. Every message and tool call of the run must be
    /// closed first.
    ///
    /// The decision arrives through tether's decision route, or as a `resume`
    /// entry of the client's next run; await the returned handle for it, then
    /// call [`next_run`](Self::next_run) to continue.
    pub fn request_tool_approval(
        &mut self,
        tool_call_id: &str,
        reason: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<ApprovalHandle, AguiError> {
        let run = self.run()?;
        let (thread_id, run_id) = (run.thread_id.clone(), run.run_id.clone());
        let broker = self.runs.broker().clone();
        let request = ApprovalRequest::new(payload.clone())
            .title(reason)
            .timeout(timeout)
            .silent();
        let handle = broker.request_approval(&self.session, request)?;
        let expires_at = broker
            .approval(&self.session, handle.id())
            .map(|a| a.expires_at);
        let mut metadata = Metadata::new();
        if !payload.is_null() {
            metadata.insert("payload".into(), payload);
        }
        let interrupt = Interrupt {
            id: handle.id().to_owned(),
            reason: reason.to_owned(),
            tool_call_id: Some(tool_call_id.to_owned()),
            expires_at,
            metadata: (!metadata.is_empty()).then_some(metadata),
            ..Default::default()
        };
        // The waiter is registered before the interrupt is visible, so the
        // client's answering run always finds it.
        let (tx, rx) = oneshot::channel();
        if let Some(slot) = self.runs.threads().get_mut(&self.session) {
            slot.waiter = Some(tx);
        }
        let finished = Event::from(RunFinished {
            thread_id,
            run_id,
            outcome: Some(RunFinishedOutcome::Interrupt {
                interrupts: vec![interrupt],
            }),
            ..Default::default()
        });
        match self.close(finished) {
            Ok(_) => {
                self.waiting = Some(rx);
                Ok(handle)
            }
            Err(e) => {
                let _ = broker.cancel_approval(&self.session, handle.id());
                if let Some(slot) = self.runs.threads().get_mut(&self.session) {
                    slot.waiter = None;
                }
                Err(e)
            }
        }
    }

    /// Continues after an interrupt. Waits up to `wait` for the client's run
    /// that answers it (a `RunAgentInput` with `resume`, started through
    /// [`AguiRuns::reserve`]) and continues in that run, returning its input;
    /// if none comes, starts a new run of its own (its `parentRunId` is the
    /// interrupted run) and returns `None`. A client's run that is being set
    /// up when `wait` ends is still awaited.
    pub async fn next_run(&mut self, wait: Duration) -> Result<Option<RunAgentInput>, AguiError> {
        if self.current.is_some() {
            return Err(AguiError::StillOpen);
        }
        let deadline = tokio::time::Instant::now() + wait;
        let runs = self.runs.clone();
        let mut rx = self.waiting.take();
        loop {
            let released = runs.inner.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(r) = rx.as_mut() {
                match r.try_recv() {
                    Ok(handoff) => return Ok(Some(self.adopt(handoff))),
                    Err(oneshot::error::TryRecvError::Closed) => rx = None,
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
            }
            let busy = runs.is_busy(&self.thread_id);
            if !busy && (rx.is_none() || tokio::time::Instant::now() >= deadline) {
                match self.start_own() {
                    Ok(()) => return Ok(None),
                    // A client's run claimed the thread just now: wait for it.
                    Err(AguiError::Busy(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
            match rx.as_mut() {
                Some(r) => {
                    tokio::select! {
                        handoff = r => match handoff {
                            Ok(handoff) => return Ok(Some(self.adopt(handoff))),
                            Err(_) => rx = None,
                        },
                        () = &mut released => {}
                        () = tokio::time::sleep_until(deadline), if !busy => {}
                    }
                }
                None => released.await,
            }
        }
    }

    fn adopt(&mut self, handoff: Handoff) -> RunAgentInput {
        self.waiting = None;
        self.last_run_id = handoff.run.run_id.clone();
        self.current = Some(handoff.run);
        handoff.input
    }

    fn start_own(&mut self) -> Result<(), AguiError> {
        let run_id = format!("run-{:016x}", rand::random::<u64>());
        // Claiming the thread and removing the waiter happen together, so no
        // client run is handed to a waiter that already went on.
        let run = {
            let mut threads = self.runs.threads();
            let slot = threads.entry(self.session.clone()).or_default();
            if slot.active.is_some() {
                return Err(AguiError::Busy(self.thread_id.clone()));
            }
            slot.waiter = None;
            slot.active = Some(run_id.clone());
            drop(threads);
            self.waiting = None;
            self.runs.open_claimed(
                &self.session,
                &self.thread_id,
                run_id,
                Some(self.last_run_id.clone()),
                None,
            )?
        };
        self.last_run_id = run.run_id.clone();
        self.current = Some(run);
        Ok(())
    }
}
