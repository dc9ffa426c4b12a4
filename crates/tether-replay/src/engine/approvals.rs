//! The approval steps: `request_approval`, `decide` and `expect_approval`.
//!
//! They speak to the server's approval routes rather than to a stream, and they log the
//! decisions and statuses the checker holds to "decided exactly once".

use std::time::Duration;

use serde_json::Value;

use super::{DEFAULT_WITHIN_MS, Engine};
use crate::driver::{ApprovalRequest, Driver};
use crate::log::{DecisionRecord, StatusRecord};
use crate::report::Rule;
use crate::transcript::{Action, DecideExpect, Outcome};

impl<D: Driver> Engine<'_, D> {
    /// Runs an approval step; returns its note.
    pub(super) async fn approval_step(&mut self, i: usize, action: &Action) -> String {
        match action {
            Action::RequestApproval {
                session,
                approval,
                title,
                payload,
                timeout_ms,
            } => {
                self.request_approval(i, session, approval, title.as_deref(), payload, *timeout_ms)
                    .await
            }
            Action::Decide {
                session,
                approval,
                approved,
                reason,
                expect,
            } => {
                self.decide(i, session, approval, *approved, reason.as_deref(), *expect)
                    .await
            }
            Action::ExpectApproval {
                session,
                approval,
                outcome,
                within_ms,
            } => {
                self.expect_approval(i, session, approval, *outcome, *within_ms)
                    .await
            }
            other => unreachable!("{} is not an approval step", other.op()),
        }
    }

    /// Asks for a decision in `session`.
    async fn request_approval(
        &mut self,
        i: usize,
        session: &str,
        approval: &str,
        title: Option<&str>,
        payload: &Value,
        timeout_ms: Option<u64>,
    ) -> String {
        let req = ApprovalRequest {
            id: approval.to_owned(),
            title: title.map(Into::into),
            payload: payload.clone(),
            timeout: timeout_ms.map(|ms| self.timing.span(ms)),
        };
        match self.driver.request_approval(session, &req).await {
            Ok(id) => format!("{session}: approval {id} requested"),
            Err(e) => {
                self.violation(
                    Rule::Step,
                    i,
                    None,
                    format!("the approval request was refused: {e}"),
                );
                "refused".into()
            }
        }
    }

    /// Decides an approval and logs what the server answered.
    async fn decide(
        &mut self,
        i: usize,
        session: &str,
        approval: &str,
        approved: bool,
        reason: Option<&str>,
        expect: Option<DecideExpect>,
    ) -> String {
        let result = self
            .driver
            .decide(session, approval, approved, reason)
            .await;
        let name = result.name().to_owned();
        self.shared.update(|log| {
            log.decisions.push(DecisionRecord {
                step: i,
                session: session.to_owned(),
                approval: approval.to_owned(),
                approved,
                result: name.clone(),
            })
        });
        if let Some(e) = expect
            && e.as_str() != name
        {
            self.violation(
                Rule::Expectation,
                i,
                None,
                format!(
                    "deciding {approval} was expected to answer {}, it answered {result:?}",
                    e.as_str()
                ),
            );
        }
        let verb = if approved { "approve" } else { "reject" };
        format!("{session}: {verb} {approval} -> {name}")
    }

    /// Asks for an approval's status (waiting for a final one unless `pending` is
    /// expected) and logs it.
    async fn expect_approval(
        &mut self,
        i: usize,
        session: &str,
        approval: &str,
        outcome: Outcome,
        within_ms: Option<u64>,
    ) -> String {
        let ms = within_ms.unwrap_or(DEFAULT_WITHIN_MS);
        let wait = if outcome == Outcome::Pending {
            Duration::ZERO
        } else {
            self.timing.wait(ms)
        };
        let status = match self.driver.approval_status(session, approval, wait).await {
            Err(e) => {
                self.violation(Rule::Step, i, None, format!("approval status: {e}"));
                return "status unavailable".into();
            }
            Ok(status) => status,
        };
        self.shared.update(|log| {
            log.statuses.push(StatusRecord {
                step: i,
                session: session.to_owned(),
                approval: approval.to_owned(),
                status: status.clone(),
            })
        });
        if status.as_deref() != Some(outcome.as_str()) {
            self.violation(
                Rule::Expectation,
                i,
                None,
                format!(
                    "expected approval {approval} to be {} within {ms} ms, it is {}",
                    outcome.as_str(),
                    status.as_deref().unwrap_or("unknown to the server")
                ),
            );
        }
        format!("{approval}: {}", status.as_deref().unwrap_or("unknown"))
    }
}
