//! One forwarded run: the browser's `RunAgentInput` goes to the agent, the agent's events go
//! into the thread's session through the run's publisher.
//!
//! The run route already wrote `RUN_STARTED` (echoing the input) when this starts, and it
//! runs as a task of its own, so the browser's response can drop and the agent's answer is
//! still read to its end. The agent's own `RUN_STARTED` is therefore skipped, and its
//! `RUN_FINISHED` / `RUN_ERROR` close the run with the thread and run ids the browser gave.
//! Whatever else happens (the agent cannot be reached, answers an error status, sends an
//! event the session's tracker refuses, stops before its last event, passes the deadline, or
//! the run is cancelled) the run ends with one `RUN_ERROR` that says so, and the session's
//! stream stays valid for every replay.

use std::sync::Arc;
use tether_agui::{AguiError, Event, RunAgentInput, RunFinishedOutcome, RunPublisher};
use tokio::time::Instant;

use super::Proxy;
use super::cancel::Registered;
use super::metrics::Outcome;
use super::reader::EventReader;
use super::upstream::UpstreamError;

/// How a run ended, with what the browser is told when it is tether that ends it.
#[derive(Debug)]
enum Ended {
    /// The agent's `RUN_FINISHED` closed the run; `interrupts` approvals were created.
    Finished { interrupts: usize },
    /// The agent's `RUN_ERROR` closed the run.
    AgentError(String),
    /// tether must close the run with `RUN_ERROR`.
    Fail {
        outcome: Outcome,
        /// The `kind` of `tether_agent_upstream_errors_total`, if it counts there.
        kind: Option<&'static str>,
        code: &'static str,
        message: String,
    },
}

impl Ended {
    fn outcome(&self) -> Outcome {
        match self {
            Ended::Finished { interrupts: 0 } => Outcome::Finished,
            Ended::Finished { .. } => Outcome::Interrupted,
            Ended::AgentError(_) => Outcome::AgentError,
            Ended::Fail { outcome, .. } => *outcome,
        }
    }

    fn upstream(e: &UpstreamError) -> Self {
        Ended::Fail {
            outcome: Outcome::UpstreamError,
            kind: Some(e.kind()),
            code: e.code(),
            message: e.to_string(),
        }
    }

    fn invalid(message: String) -> Self {
        Ended::Fail {
            outcome: Outcome::InvalidEvent,
            kind: Some("invalid_event"),
            code: "agent_invalid_event",
            message,
        }
    }
}

/// Forwards one run and ends it; the run route spawns this for every new run.
pub(crate) async fn run(
    proxy: Arc<Proxy>,
    input: RunAgentInput,
    mut run: RunPublisher,
    mut registered: Registered,
) {
    let started = Instant::now();
    let session = run.session().clone();
    let run_id = run.run_id().to_owned();
    let mut status = None;
    let ended = tokio::select! {
        ended = pump(&proxy, &input, &mut run, &mut status) => ended,
        () = tokio::time::sleep(proxy.timeout) => Ended::Fail {
            outcome: Outcome::Timeout,
            kind: Some("timeout"),
            code: "agent_timeout",
            message: format!(
                "the agent did not finish the run within {} s (--agent-timeout-secs)",
                proxy.timeout.as_secs()
            ),
        },
        Ok(()) = &mut registered.cancelled => Ended::Fail {
            outcome: Outcome::Cancelled,
            kind: None,
            code: "cancelled",
            message: "the run was cancelled (DELETE /api/agui/run/{threadId})".into(),
        },
    };
    // The agent's connection is closed by now: `pump` and its stream were dropped.
    drop(registered);
    let outcome = ended.outcome();
    let took = started.elapsed();
    proxy.metrics.run_ended(outcome, took);
    let status = status.map_or_else(
        || "-".to_owned(),
        |s: http::StatusCode| s.as_u16().to_string(),
    );
    match &ended {
        Ended::Finished { interrupts } => tracing::info!(
            thread = %session, run_id = %run_id, upstream_status = %status,
            outcome = outcome.as_str(), interrupts, took_ms = took.as_millis() as u64,
            "agent run ended"
        ),
        Ended::AgentError(message) => tracing::warn!(
            thread = %session, run_id = %run_id, upstream_status = %status,
            outcome = outcome.as_str(), error = %message, took_ms = took.as_millis() as u64,
            "agent run ended with the agent's RUN_ERROR"
        ),
        Ended::Fail {
            kind,
            code,
            message,
            ..
        } => {
            if let Some(kind) = kind {
                proxy.metrics.upstream_error(kind);
            }
            tracing::warn!(
                thread = %session, run_id = %run_id, upstream_status = %status,
                outcome = outcome.as_str(), code, error = %message,
                took_ms = took.as_millis() as u64,
                "agent run failed"
            );
            if run.is_open()
                && let Err(e) = run.fail(message, Some(code))
            {
                // Dropping the publisher still ends the run (with its own RUN_ERROR) and
                // gives the thread back.
                tracing::warn!(thread = %session, run_id = %run_id, error = %e, "SSE error: cannot write the run's RUN_ERROR");
            }
        }
    }
}

/// Calls the agent and publishes its events until one ends the run, or something breaks.
async fn pump(
    proxy: &Proxy,
    input: &RunAgentInput,
    run: &mut RunPublisher,
    status: &mut Option<http::StatusCode>,
) -> Ended {
    let body = match serde_json::to_string(input) {
        Ok(b) => b,
        Err(e) => return Ended::invalid(format!("the run's input does not serialize: {e}")),
    };
    let mut stream = match proxy.upstream.start(body).await {
        Ok(s) => s,
        Err(e) => {
            *status = e.status();
            return Ended::upstream(&e);
        }
    };
    *status = Some(stream.status());
    let mut reader = EventReader::new(proxy.max_event_bytes);
    let mut seen_start = false;
    loop {
        let chunk = match stream.chunk().await {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Ended::upstream(&e),
            None => {
                return Ended::Fail {
                    outcome: Outcome::UpstreamError,
                    kind: Some("closed_early"),
                    code: "agent_stream_closed",
                    message: "the agent's event stream ended before RUN_FINISHED or RUN_ERROR"
                        .into(),
                };
            }
        };
        let events = match reader.feed(&chunk) {
            Ok(events) => events,
            Err(e) => return Ended::invalid(e.to_string()),
        };
        for data in events {
            if let Some(ended) = step(proxy, run, &data, &mut seen_start) {
                return ended;
            }
        }
    }
}

/// Publishes one of the agent's events; `Some` when the run ended.
fn step(proxy: &Proxy, run: &mut RunPublisher, data: &str, seen_start: &mut bool) -> Option<Ended> {
    let event = match Event::from_slice(data.as_bytes()) {
        Ok(e) => e,
        Err(e) => {
            return Some(Ended::invalid(format!(
                "the agent sent an event that is not AG-UI 1.0: {e}"
            )));
        }
    };
    let type_name = event.type_name();
    let refused =
        |e: AguiError| Ended::invalid(format!("the agent's {type_name} event was refused: {e}"));
    match event {
        // tether opened the run with the browser's ids already.
        Event::RunStarted(_) if !*seen_start => {
            *seen_start = true;
            None
        }
        Event::RunStarted(_) => Some(Ended::invalid(
            "the agent sent a second RUN_STARTED in one run".into(),
        )),
        Event::RunFinished(finished) => {
            let interrupted =
                matches!(finished.outcome, Some(RunFinishedOutcome::Interrupt { .. }));
            Some(if interrupted {
                match run.finish_interrupted(finished, proxy.interrupt_timeout) {
                    Ok(ids) => Ended::Finished {
                        interrupts: ids.len().max(1),
                    },
                    Err(e) => refused(e),
                }
            } else {
                match run.finish_with(finished) {
                    Ok(_) => Ended::Finished { interrupts: 0 },
                    Err(e) => refused(e),
                }
            })
        }
        Event::RunError(error) => Some(match run.fail(&error.message, error.code.as_deref()) {
            Ok(_) => Ended::AgentError(error.message),
            Err(e) => refused(e),
        }),
        other => run.publish(other).err().map(refused),
    }
}
