//! The agent's side of a run: [`RunPublisher`] writes typed events into the
//! open run, asks for approvals as interrupts and continues after them.

use std::time::Duration;

use serde_json::Value;
use tether_core::{ApprovalHandle, ApprovalRequest, Broker, EventId, SessionId};
use tokio::sync::{oneshot, watch};

use super::{AguiError, AguiRuns};
use crate::events::{
    Content, Custom, Event, Interrupt, JsonPatch, Metadata, RunAgentInput, RunError, RunFinished,
    RunFinishedOutcome, StateDelta, StateSnapshot, StepFinished, StepStarted, TextMessageContent,
    TextMessageEnd, TextMessageRole, TextMessageStart, ToolCallArgs, ToolCallEnd, ToolCallResult,
    ToolCallStart,
};

/// A client's run handed to the agent that waits for it.
pub(super) struct Handoff {
    pub(super) run: ActiveRun,
    pub(super) input: RunAgentInput,
}

/// One open run. Dropped while open, it fails the run with `RUN_ERROR`, so a
/// vanished agent never leaves its thread's run open.
pub(super) struct ActiveRun {
    runs: AguiRuns,
    session: SessionId,
    thread_id: String,
    run_id: String,
    pub(super) end: watch::Sender<Option<EventId>>,
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
    pub(super) fn new(runs: AguiRuns, session: SessionId, thread_id: &str, run_id: String) -> Self {
        let (end, _) = watch::channel(None);
        Self {
            runs,
            session,
            thread_id: thread_id.to_owned(),
            run_id,
            end,
            done: false,
        }
    }

    fn publish(&self, event: &Event) -> Result<EventId, AguiError> {
        Ok(self.runs.inner.broker.publish(&self.session, event)?)
    }

    /// Publishes the run's last event and gives the thread back.
    pub(super) fn close(&mut self, event: Event) -> Result<EventId, AguiError> {
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
    /// The publisher of `run`, an open run of the thread.
    pub(super) fn new(runs: AguiRuns, session: SessionId, thread_id: &str, run: ActiveRun) -> Self {
        Self {
            runs,
            session,
            thread_id: thread_id.to_owned(),
            last_run_id: run.run_id.clone(),
            current: Some(run),
            waiting: None,
        }
    }

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
