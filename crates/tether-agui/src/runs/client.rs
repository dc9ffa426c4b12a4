//! A client's run: the thread reserved for it, how it started, and the id
//! of its last event.

use tether_core::{EventId, SessionId};
use tokio::sync::watch;

use super::publisher::Handoff;
use super::{AguiError, AguiRuns, RunPublisher};
use crate::events::{Event, RunAgentInput, RunError};

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
    pub(super) fn new(runs: AguiRuns, session: SessionId, run_id: String) -> Self {
        Self {
            runs,
            session,
            run_id,
            armed: true,
        }
    }

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
        let thread_id = handoff.input.thread_id;
        Ok(ClientRun::New {
            publisher: RunPublisher::new(runs, session, &thread_id, handoff.run),
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
