//! The recorder: wraps a [`Broker`] and its clients' streams, and writes what was published
//! and what each client received as a transcript that replays the same session.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use serde::Serialize;
use serde_json::Value;
use tether_core::{
    ApprovalError, ApprovalHandle, ApprovalInfo, Broker, ConnectError, ConnectOptions, DecideError,
    Decision, Event, EventId, EventStream, PublishError, SessionId,
};
use tokio::time::Instant;

use crate::log::{Frame, TetherFrame, data_value};
use crate::sse::Parser;
use crate::transcript::{Action, DecideExpect, Match, Step, Transcript};

#[derive(Default)]
struct State {
    transcript: Transcript,
    last_ids: std::collections::HashMap<String, String>,
}

struct Inner {
    state: Mutex<State>,
    start: Instant,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn at_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn push(&self, action: Action) {
        let at = self.at_ms();
        self.lock().transcript.steps.push(Step::new(action).at(at));
    }
}

/// Records a session as a transcript: publish, connect and decide through it, read through
/// the [`RecordedStream`]s it hands out, then take [`transcript`](Self::transcript).
///
/// The transcript holds every publish, connect, drop and decision, and, as expectations,
/// what each client received: `expect_events` for its events, `expect_resync` for each
/// resync, `expect_ended` when the server ended a stream. Replaying it checks that the broker
/// still behaves the same.
#[derive(Clone)]
pub struct Recorder {
    broker: Broker,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("steps", &self.inner.lock().transcript.steps.len())
            .finish()
    }
}

/// An approval request, as the recorder takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedApproval {
    /// The approval's id.
    pub id: String,
    /// A short title.
    pub title: Option<String>,
    /// What is to be approved.
    pub payload: Value,
    /// The deadline from now; `None` for the broker's default.
    pub timeout: Option<Duration>,
}

impl Recorder {
    /// Records what goes through this recorder into `broker`, with times counted from now.
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            inner: Arc::new(Inner {
                state: Mutex::default(),
                start: Instant::now(),
            }),
        }
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Publishes one event (as [`Broker::publish`]) and records it.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        session: &SessionId,
        event: &T,
    ) -> Result<EventId, PublishError> {
        let ids = self.publish_batch(session, &[Event::json(event)?])?;
        Ok(ids[0])
    }

    /// Publishes events (as [`Broker::publish_batch`]) and records them: one step per run
    /// of events with the same SSE name.
    pub fn publish_batch(
        &self,
        session: &SessionId,
        events: &[Event],
    ) -> Result<Vec<EventId>, PublishError> {
        let ids = self.broker.publish_batch(session, events)?;
        let mut groups: Vec<(Option<String>, Vec<Value>)> = Vec::new();
        for e in events {
            let name = e.name().map(|n| n.as_str().to_owned());
            match groups.last_mut() {
                Some((n, evs)) if *n == name => evs.push(data_value(e.data())),
                _ => groups.push((name, vec![data_value(e.data())])),
            }
        }
        for (name, events) in groups {
            self.inner.push(Action::Publish {
                session: session.to_string(),
                events,
                name,
                pad_bytes: None,
            });
        }
        Ok(ids)
    }

    /// Requests an approval (as [`Broker::request_approval`]) and records it.
    pub fn request_approval(
        &self,
        session: &SessionId,
        req: RecordedApproval,
    ) -> Result<ApprovalHandle, ApprovalError> {
        let mut r = tether_core::ApprovalRequest::new(req.payload.clone()).id(&req.id);
        if let Some(t) = &req.title {
            r = r.title(t);
        }
        if let Some(t) = req.timeout {
            r = r.timeout(t);
        }
        let handle = self.broker.request_approval(session, r)?;
        self.inner.push(Action::RequestApproval {
            session: session.to_string(),
            approval: req.id,
            title: req.title,
            payload: req.payload,
            timeout_ms: req.timeout.map(|t| t.as_millis() as u64),
        });
        Ok(handle)
    }

    /// Decides an approval (as [`Broker::decide`]) and records it with the answer it got.
    pub fn decide(
        &self,
        session: &SessionId,
        approval: &str,
        decision: Decision,
    ) -> Result<ApprovalInfo, DecideError> {
        let result = self.broker.decide(session, approval, decision.clone());
        let expect = match &result {
            Ok(_) => Some(DecideExpect::Ok),
            Err(DecideError::AlreadyDecided(_)) => Some(DecideExpect::AlreadyDecided),
            Err(DecideError::Expired) => Some(DecideExpect::Expired),
            Err(DecideError::Unknown) => Some(DecideExpect::Unknown),
            Err(_) => None,
        };
        self.inner.push(Action::Decide {
            session: session.to_string(),
            approval: approval.to_owned(),
            approved: decision.approved,
            reason: decision.reason,
            expect,
        });
        result
    }

    /// Connects a client (as [`Broker::connect`]) and records it. `client` names it in the
    /// transcript; a `Last-Event-ID` equal to the last id this client received is recorded
    /// as a resume.
    pub fn connect(
        &self,
        client: &str,
        session: &SessionId,
        opts: ConnectOptions,
    ) -> Result<RecordedStream, ConnectError> {
        let stream = self.broker.connect(session, opts.clone())?;
        let own = self.inner.lock().last_ids.get(client).cloned();
        let (resume, literal) = match (&opts.last_event_id, own) {
            (None, _) => (false, None),
            (Some(l), Some(own)) if *l == own => (true, None),
            (Some(l), _) => (false, Some(l.clone())),
        };
        self.inner.push(Action::Connect {
            client: client.to_owned(),
            session: session.to_string(),
            resume,
            last_event_id: literal,
            client_id: opts.client_id,
        });
        Ok(RecordedStream {
            stream,
            inner: self.inner.clone(),
            client: client.to_owned(),
            parser: Parser::new(),
            ended: false,
            saw_superseded: false,
        })
    }

    /// Advances the recorded clock: nothing but time passing is recorded (steps carry their
    /// times already; this is for a transcript that should end later).
    pub fn mark_advance(&self, ms: u64) {
        self.inner.push(Action::Advance { ms });
    }

    /// The transcript recorded so far, with the broker's settings that the checker needs.
    pub fn transcript(&self) -> Transcript {
        let mut t = self.inner.lock().transcript.clone();
        let c = self.broker.config();
        t.settings.keepalive_ms = c.keepalive_interval().map(|d| d.as_millis() as u64);
        t.settings.client_timeout_ms = c.client_timeout().as_millis() as u64;
        t.settings.ring_max_events = c.ring_max_events();
        t.settings.approval_timeout_ms = c.approval_timeout().as_millis() as u64;
        t.settings.ring_max_bytes = c.ring_max_bytes();
        t.settings.max_event_bytes = c.max_event_bytes();
        t.settings.connection_policy = match c.connection_policy() {
            tether_core::ConnectionPolicy::Reject => crate::transcript::Policy::Reject,
            tether_core::ConnectionPolicy::Replace => crate::transcript::Policy::Replace,
        };
        // These are what the recorded broker had: a replay against a server needs them.
        t.stated = crate::transcript::SERVER_SETTINGS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        t
    }
}

/// A client's stream that records what it reads. Dropping it records a `drop`.
#[must_use = "a stream delivers nothing unless polled"]
pub struct RecordedStream {
    stream: EventStream,
    inner: Arc<Inner>,
    client: String,
    parser: Parser,
    ended: bool,
    saw_superseded: bool,
}

impl std::fmt::Debug for RecordedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedStream")
            .field("client", &self.client)
            .field("ended", &self.ended)
            .finish()
    }
}

impl RecordedStream {
    fn record(&mut self, bytes: &[u8]) {
        let blocks = self.parser.feed(bytes);
        let at = self.inner.at_ms();
        let mut st = self.inner.lock();
        if blocks.iter().any(|b| b.id.is_some()) {
            st.last_ids
                .insert(self.client.clone(), self.parser.last_event_id().to_owned());
        }
        for b in &blocks {
            match b.frame() {
                Frame::Stored { data, .. } => {
                    let mut v = data_value(data);
                    // An approval notice carries a wall-clock deadline, different on every
                    // run: it is expected without it.
                    let mode = if v["name"] == "tether.approval.requested"
                        && let Some(value) = v.get_mut("value").and_then(Value::as_object_mut)
                    {
                        value.remove("expiresAt");
                        Match::Subset
                    } else {
                        Match::Exact
                    };
                    let steps = &mut st.transcript.steps;
                    match steps.last_mut() {
                        Some(Step {
                            at_ms: Some(a),
                            action:
                                Action::ExpectEvents {
                                    client,
                                    events,
                                    mode: m,
                                    ..
                                },
                            ..
                        }) if *a == at && *client == self.client && *m == mode => events.push(v),
                        _ => steps.push(
                            Step::new(Action::ExpectEvents {
                                client: self.client.clone(),
                                events: vec![v],
                                mode,
                                within_ms: None,
                            })
                            .at(at),
                        ),
                    }
                }
                Frame::Signal { name, .. } if name == "tether.superseded" => {
                    self.saw_superseded = true;
                }
                Frame::Signal { name, value } if name == "tether.resync" => {
                    st.transcript.steps.push(
                        Step::new(Action::ExpectResync {
                            client: self.client.clone(),
                            reason: value["reason"].as_str().map(Into::into),
                            within_ms: None,
                        })
                        .at(at),
                    );
                }
                _ => {}
            }
        }
    }

    /// The underlying stream's last event id.
    pub fn last_event_id(&self) -> Option<EventId> {
        self.stream.last_event_id()
    }
}

impl Stream for RecordedStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.stream).poll_next(cx) {
            Poll::Ready(Some(b)) => {
                this.record(&b);
                Poll::Ready(Some(b))
            }
            Poll::Ready(None) => {
                this.ended = true;
                let superseded = this.saw_superseded;
                this.inner.push(Action::ExpectEnded {
                    client: this.client.clone(),
                    superseded: Some(superseded),
                    within_ms: None,
                });
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for RecordedStream {
    fn drop(&mut self) {
        if !self.ended {
            self.inner.push(Action::Drop {
                client: self.client.clone(),
            });
        }
    }
}
