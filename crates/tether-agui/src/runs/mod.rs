//! Runs of AG-UI threads on a tether broker, for agent code: publish typed
//! events into a run, ask for approvals as interrupts, continue after them.
//!
//! A thread's id is its session's id. [`AguiRuns`] keeps, per thread, the run
//! in progress (a second one is refused with [`AguiError::Busy`]) and the agent
//! waiting for the client's answer to an interrupt, so the run that carries
//! the answer (`RunAgentInput.resume`) continues that agent.
//!
//! - `client`: a client's run, from its reservation to its end.
//! - `publisher`: the agent's side, [`RunPublisher`], and the open run it
//!   writes to.

mod client;
mod publisher;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tether_core::{
    ApprovalError, Broker, DecideError, Decision, InvalidId, PublishError, SessionId,
};
use tokio::sync::{Notify, oneshot};

pub use self::client::{ClientRun, Reservation, RunEnd};
pub use self::publisher::RunPublisher;
use self::publisher::{ActiveRun, Handoff};
use crate::events::{Event, Interrupt, ResumeEntry, ResumeStatus, RunAgentInput, RunStarted};

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
/// let broker = Broker::builder().tracker_factory(Arc::new(AguiTrackerFactory::new())).start().expect("valid config");
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
        Ok(RunPublisher::new(self.clone(), session, thread_id, run))
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
        Ok(ActiveRun::new(
            self.clone(),
            session.clone(),
            thread_id,
            run_id,
        ))
    }

    /// Reserves the thread for the run a client asks for, before its response
    /// is connected; [`Reservation::start`] then starts it. Refused with
    /// [`AguiError::Busy`] while another run of the thread is in progress.
    pub fn reserve(&self, input: &RunAgentInput) -> Result<Reservation, AguiError> {
        let session = SessionId::new(&input.thread_id)?;
        self.claim(&session, &input.run_id)?;
        Ok(Reservation::new(
            self.clone(),
            session,
            input.run_id.clone(),
        ))
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
