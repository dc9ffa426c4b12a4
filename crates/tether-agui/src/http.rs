//! Durable AG-UI runs over HTTP (feature `http`): the run route as a
//! [`RouteExtension`] of tether's [`Service`](tether_core::http::Service), so the
//! hub and every adapter serve it the same way.
//!
//! [`RunRoute`] adds `POST /api/agui/run`: the body is a `RunAgentInput` (what
//! `HttpAgent` of `@ag-ui/client` sends to its URL), the answer is the run as
//! an event stream. The agent function runs as a task of its own, so a dropped
//! request does not stop the run:
//!
//! - The response is the thread's session connection (session id = `threadId`),
//!   opened at the run's first event. It ends after the run's `RUN_FINISHED` or
//!   `RUN_ERROR`, which is where `HttpAgent` expects a run's body to end.
//! - A later `GET /api/sse/session/{threadId}` (with `Last-Event-ID`) takes the
//!   session over: the run's response ends with `tether.superseded` and the
//!   new stream carries the rest of the run exactly, or a valid prelude.
//! - A second run on a thread while one is in progress gets 409
//!   `{"error":"run_in_progress"}`.
//! - A `resume` entry answers the tether approval with the interrupt's id (see
//!   [`AguiRuns::answer`]); a thread whose agent waits for that answer
//!   ([`RunPublisher::next_run`]) continues in this run, and the agent
//!   function is not called. A `resolved` answer after the approval's deadline
//!   gets a run that ends with `RUN_ERROR` at once.
//!
//! Starting a run on thread T needs the subscribe capability on session T (the
//! browser that reads the thread starts its runs). The body names the thread, so
//! the credentials are checked twice: present and valid on the head
//! ([`Authorizer::authenticate`](tether_core::http::Authorizer::authenticate)), so a
//! request without them is refused before its body is read; the claim for T once
//! the body has named it.
//!
//! ```
//! use std::sync::Arc;
//! use tether_agui::http::RunRoute;
//! use tether_agui::{AguiRuns, AguiTrackerFactory, RunAgentInput, RunPublisher};
//! use tether_core::Broker;
//! use tether_core::http::{Hooks, Service};
//!
//! async fn agent(input: RunAgentInput, mut run: RunPublisher) {
//!     let reply = format!("You said {} things.", input.messages.len());
//!     if run.text("reply-1", &reply).is_ok() {
//!         let _ = run.finish(None);
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let broker = Broker::builder().tracker_factory(Arc::new(AguiTrackerFactory::new())).start().expect("valid config");
//! let runs = AguiRuns::new(broker.clone());
//! let service = Service::new(broker, Hooks::allow_all()).extension(RunRoute::new(runs, agent));
//! # drop(service);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http::{Method, StatusCode};
use tether_core::http::{
    self as th, AccessRequest, Body, Capability, ExtensionRequest, HttpError, Response,
    ResponseFuture, RouteError, RouteExtension,
};
use tether_core::{ConnectOptions, EventId, EventStream};

use crate::{AguiError, AguiRuns, ClientRun, RunAgentInput, RunEnd, RunPublisher};

/// The path of the run route.
pub const RUN: &str = "/api/agui/run";

type AgentFn =
    dyn Fn(RunAgentInput, RunPublisher) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// `POST /api/agui/run` on a broker's [`AguiRuns`], calling an agent function for each new
/// run (see the [module docs](self)).
#[derive(Clone)]
pub struct RunRoute {
    runs: AguiRuns,
    agent: Arc<AgentFn>,
}

impl std::fmt::Debug for RunRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRoute").finish_non_exhaustive()
    }
}

impl RunRoute {
    /// The run route on `runs`, calling `agent` for each new run.
    pub fn new<F, Fut>(runs: AguiRuns, agent: F) -> Self
    where
        F: Fn(RunAgentInput, RunPublisher) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let agent: Arc<AgentFn> =
            Arc::new(move |input, publisher| Box::pin(agent(input, publisher)));
        Self { runs, agent }
    }

    fn run(&self, request: &ExtensionRequest<'_>, body: &[u8]) -> Result<Response, HttpError> {
        let input: RunAgentInput = serde_json::from_slice(body).map_err(|e| {
            HttpError::bad_request(
                "invalid_run_input",
                format!("the body must be an AG-UI RunAgentInput: {e}"),
            )
        })?;
        let session = th::session_id(&input.thread_id)?;
        request
            .hooks()
            .check(&AccessRequest {
                session: &session,
                capability: Capability::Subscribe,
                headers: request.headers(),
                query: request.query(),
            })
            .into_result()?;
        let broker = self.runs.broker().clone();
        if broker.is_draining() {
            return Err(HttpError::from(tether_core::ConnectError::Draining {
                retry_after: broker.drain_retry_hint(),
            }));
        }
        let reservation = self.runs.reserve(&input).map_err(agui_error)?;
        // The response starts at the run's first event: right after the head.
        let opts = match broker.head(&session) {
            Some(head) => ConnectOptions::resume(head.to_string()),
            None => ConnectOptions::default(),
        };
        let stream = broker.connect(&session, opts)?;
        let started = reservation.start(input.clone()).map_err(agui_error)?;
        let end = started.end();
        if let ClientRun::New { publisher, .. } = started {
            tokio::spawn((self.agent)(input, publisher));
        }
        let mut res = Response::new(Body::Chunks(Box::pin(RunStream::new(stream, end))));
        *res.headers_mut() = th::sse_headers(request.hooks());
        Ok(res)
    }
}

impl RouteExtension for RunRoute {
    fn route(&self, method: &Method, path: &str) -> Option<Result<(), RouteError>> {
        (path == RUN).then(|| {
            if *method == Method::POST {
                Ok(())
            } else {
                Err(RouteError::MethodNotAllowed { allow: "POST" })
            }
        })
    }

    fn admit(&self, request: &ExtensionRequest<'_>) -> Result<(), HttpError> {
        request
            .hooks()
            .authenticate(request.headers(), request.query())
            .into_result()
            .map(drop)
    }

    fn handle<'a>(&'a self, request: ExtensionRequest<'a>, body: Bytes) -> ResponseFuture<'a> {
        let res = self
            .run(&request, &body)
            .unwrap_or_else(HttpError::into_response);
        Box::pin(std::future::ready(res))
    }
}

fn agui_error(e: AguiError) -> HttpError {
    match e {
        AguiError::Busy(thread) => HttpError::new(
            StatusCode::CONFLICT,
            "run_in_progress",
            format!(
                "thread `{thread}` already has a run in progress; reattach to it with GET /api/sse/session/{thread}, or wait until it finishes"
            ),
        ),
        AguiError::InvalidThread(e) => e.into(),
        AguiError::Publish(e) => e.into(),
        AguiError::Approval(e) => e.into(),
        other => HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "run_failed",
            other.to_string(),
        ),
    }
}

/// A session's stream that ends after the frame of its run's last event.
struct RunStream {
    stream: EventStream,
    end: RunEnd,
    end_id: Option<EventId>,
    ended: Pin<Box<dyn Future<Output = Option<EventId>> + Send>>,
    end_known: bool,
    done: bool,
}

impl RunStream {
    fn new(stream: EventStream, end: RunEnd) -> Self {
        let mut waiter = end.clone();
        Self {
            stream,
            end,
            end_id: None,
            ended: Box::pin(async move { waiter.wait().await }),
            end_known: false,
            done: false,
        }
    }

    /// Whether the stream already wrote the run's last event.
    fn past_end(&self) -> bool {
        match (self.end_id, self.stream.last_event_id()) {
            (Some(end), Some(at)) => at.epoch != end.epoch || at.seq >= end.seq,
            _ => false,
        }
    }
}

/// The bytes of `chunk` up to the end of the frame whose id is `id`, if the
/// chunk holds it.
fn cut_after(chunk: &Bytes, id: EventId) -> Option<Bytes> {
    let needle = format!("id: {id}\n");
    let text = chunk.as_ref();
    let mut from = 0;
    while let Some(pos) = find(&text[from..], needle.as_bytes()).map(|p| p + from) {
        if pos == 0 || text[..pos].ends_with(b"\n") {
            let end = find(&text[pos..], b"\n\n").map(|p| pos + p + 2)?;
            return Some(chunk.slice(..end));
        }
        from = pos + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Stream for RunStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if !this.end_known {
                if let Some(id) = this.end.get() {
                    this.end_id = Some(id);
                    this.end_known = true;
                } else if let Poll::Ready(id) = this.ended.as_mut().poll(cx) {
                    // `None`: the run's publisher vanished without an ending.
                    this.end_id = id;
                    this.end_known = true;
                    if id.is_none() {
                        this.done = true;
                        continue;
                    }
                }
            }
            if this.past_end() {
                this.done = true;
                continue;
            }
            return match Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Ready(Some(chunk)) => {
                    if let Some(cut) = this.end_id.and_then(|id| cut_after(&chunk, id)) {
                        this.done = true;
                        return Poll::Ready(Some(cut));
                    }
                    Poll::Ready(Some(chunk))
                }
                Poll::Ready(None) => {
                    this.done = true;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_cut_after_the_frame_with_the_id() {
        let id = EventId::parse("ab12-3").unwrap();
        let chunk = Bytes::from_static(
            b"id: ab12-2\ndata: {}\n\nid: ab12-3\ndata: {\"type\":\"RUN_FINISHED\"}\n\nid: ab12-4\ndata: {}\n\n",
        );
        assert_eq!(
            cut_after(&chunk, id).unwrap(),
            Bytes::from_static(
                b"id: ab12-2\ndata: {}\n\nid: ab12-3\ndata: {\"type\":\"RUN_FINISHED\"}\n\n"
            )
        );
        let other = EventId::parse("ab12-30").unwrap();
        assert!(cut_after(&chunk, other).is_none());
    }
}
