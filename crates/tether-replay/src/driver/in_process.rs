//! The in-process driver: a [`tether_core::Broker`] in this process.

use std::time::Duration;

use serde_json::Value;
use tether_core::{Broker, ConnectOptions, DecideError, Decision, Event, SessionId, event_name};

use super::{ApprovalRequest, ConnectRequest, DecideResult, Driver, SseBody};
use crate::transcript::{Settings, Transcript};
use crate::{Report, Timing};

/// Runs transcripts against a [`Broker`] in this process.
///
/// Run it on a current-thread runtime with a paused clock (`#[tokio::test(start_paused =
/// true)]`, or [`replay_in_process`](crate::replay_in_process), which builds one): time
/// then passes only when every task is idle, so heartbeats, client timeouts and approval
/// deadlines fire at their exact virtual times and a replay is deterministic.
#[derive(Debug, Clone)]
pub struct InProcess {
    broker: Broker,
}

impl InProcess {
    /// A driver for an existing broker.
    pub fn new(broker: Broker) -> Self {
        Self { broker }
    }

    /// A driver for a new broker built from the transcript's settings.
    ///
    /// # Panics
    /// Outside a tokio runtime (the broker's driver task is spawned).
    pub fn from_settings(settings: &Settings) -> Self {
        Self::new(settings.broker_builder(1.0).start().expect("valid config"))
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Replays a transcript on the current runtime's (paused) clock.
    pub async fn run(&mut self, transcript: &Transcript) -> Report {
        crate::engine::run(self, transcript, Timing::exact()).await
    }
}

fn sid(session: &str) -> Result<SessionId, String> {
    SessionId::new(session).map_err(|e| e.to_string())
}

impl Driver for InProcess {
    async fn publish(
        &mut self,
        session: &str,
        events: &[Value],
        name: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let session = sid(session)?;
        let name = name
            .map(|n| event_name(n).map_err(|e| e.to_string()))
            .transpose()?;
        let events = events
            .iter()
            .map(|v| {
                let e = Event::json(v).map_err(|e| e.to_string())?;
                Ok(match &name {
                    Some(n) => e.named(n.clone()),
                    None => e,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let ids = self
            .broker
            .publish_batch(&session, &events)
            .map_err(|e| e.to_string())?;
        Ok(ids.iter().map(ToString::to_string).collect())
    }

    async fn connect(
        &mut self,
        session: &str,
        request: &ConnectRequest,
    ) -> Result<SseBody, String> {
        let session = sid(session)?;
        let mut opts = ConnectOptions::new();
        opts.last_event_id = request.last_event_id.clone();
        opts.client_id = request.client_id.clone();
        let stream = self.broker.connect(&session, opts).map_err(|e| match e {
            tether_core::ConnectError::SupersededRecently => super::SUPERSEDED_REFUSAL.to_owned(),
            e => e.to_string(),
        })?;
        Ok(Box::pin(stream))
    }

    async fn request_approval(
        &mut self,
        session: &str,
        request: &ApprovalRequest,
    ) -> Result<String, String> {
        let session = sid(session)?;
        let mut req = tether_core::ApprovalRequest::new(request.payload.clone()).id(&request.id);
        if let Some(t) = &request.title {
            req = req.title(t);
        }
        if let Some(t) = request.timeout {
            req = req.timeout(t);
        }
        let handle = self
            .broker
            .request_approval(&session, req)
            .map_err(|e| e.to_string())?;
        Ok(handle.id().to_owned())
    }

    async fn decide(
        &mut self,
        session: &str,
        approval: &str,
        approved: bool,
        reason: Option<&str>,
    ) -> DecideResult {
        let session = match sid(session) {
            Ok(s) => s,
            Err(e) => return DecideResult::Other(e),
        };
        let decision = Decision {
            approved,
            reason: reason.map(Into::into),
        };
        match self.broker.decide(&session, approval, decision) {
            Ok(_) => DecideResult::Ok,
            Err(DecideError::Unknown) => DecideResult::Unknown,
            Err(DecideError::Expired) => DecideResult::Expired,
            Err(DecideError::AlreadyDecided(s)) => DecideResult::AlreadyDecided(s.as_str().into()),
            Err(e) => DecideResult::Other(e.to_string()),
        }
    }

    async fn approval_status(
        &mut self,
        session: &str,
        approval: &str,
        wait: Duration,
    ) -> Result<Option<String>, String> {
        let session = sid(session)?;
        Ok(self
            .broker
            .wait_approval(&session, approval, wait)
            .await
            .map(|a| a.status.as_str().to_owned()))
    }
}
