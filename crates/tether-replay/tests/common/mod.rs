//! A driver that wraps the in-process one and breaks what clients receive, to prove that
//! the checker notices.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tether_replay::driver::{ApprovalRequest, ConnectRequest, DecideResult, SseBody};
use tether_replay::{Driver, InProcess, Report, Timing, Transcript};

/// Rewrites the frames of each chunk a client receives.
pub type Fault = Arc<dyn Fn(Vec<String>) -> Vec<String> + Send + Sync>;

pub struct Faulty {
    pub inner: InProcess,
    pub fault: Fault,
    /// Answers every decision with "ok", as a broker that forgot who decided would.
    pub always_accept: bool,
}

/// Splits a chunk into frames, each with its closing blank line.
pub fn frames(chunk: &str) -> Vec<String> {
    chunk.split_inclusive("\n\n").map(str::to_owned).collect()
}

impl Driver for Faulty {
    async fn publish(
        &mut self,
        session: &str,
        events: &[Value],
        name: Option<&str>,
    ) -> Result<Vec<String>, String> {
        self.inner.publish(session, events, name).await
    }

    async fn connect(
        &mut self,
        session: &str,
        request: &ConnectRequest,
    ) -> Result<SseBody, String> {
        let body = self.inner.connect(session, request).await?;
        let fault = self.fault.clone();
        Ok(Box::pin(body.map(move |b| {
            let text = std::str::from_utf8(&b).expect("UTF-8 frames");
            Bytes::from(fault(frames(text)).concat())
        })))
    }

    async fn request_approval(
        &mut self,
        session: &str,
        request: &ApprovalRequest,
    ) -> Result<String, String> {
        self.inner.request_approval(session, request).await
    }

    async fn decide(
        &mut self,
        session: &str,
        approval: &str,
        approved: bool,
        reason: Option<&str>,
    ) -> DecideResult {
        let r = self.inner.decide(session, approval, approved, reason).await;
        if self.always_accept {
            DecideResult::Ok
        } else {
            r
        }
    }

    async fn approval_status(
        &mut self,
        session: &str,
        approval: &str,
        wait: Duration,
    ) -> Result<Option<String>, String> {
        self.inner.approval_status(session, approval, wait).await
    }
}

/// Replays `t` in process on a paused clock, with `fault` applied to what clients receive.
pub fn replay_with(t: &Transcript, fault: Fault) -> Report {
    tether_replay::block_on_paused(async {
        let mut d = Faulty {
            inner: InProcess::from_settings(&t.settings),
            fault,
            always_accept: false,
        };
        tether_replay::run(&mut d, t, Timing::exact()).await
    })
}

/// A fault that removes every frame containing `needle`.
pub fn drop_frames_with(needle: &'static str) -> Fault {
    Arc::new(move |frames: Vec<String>| {
        frames.into_iter().filter(|f| !f.contains(needle)).collect()
    })
}

/// No fault.
pub fn faithful() -> Fault {
    Arc::new(|f| f)
}
