//! `DELETE /api/agui/run/{threadId}`: stops a thread's forwarded run. The browser that may
//! start a thread's runs may stop them (the subscribe capability on the thread's session),
//! the same check as the run route's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use tether_core::SessionId;
use tether_core::http::{
    self as th, AccessRequest, Body, Capability, ExtensionRequest, HttpError, Response,
    ResponseFuture, RouteError, RouteExtension,
};
use tokio::sync::oneshot;

/// The path prefix of the cancel route; the thread id follows.
const PREFIX: &str = "/api/agui/run/";

/// Per thread: the run id and the sender that cancels it.
type Table = HashMap<SessionId, (String, oneshot::Sender<()>)>;

/// The forwarded runs in progress, by thread: what a cancel reaches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancels {
    runs: Arc<Mutex<Table>>,
}

/// A run's place in [`Cancels`]; dropping it (the run ended) removes it.
#[derive(Debug)]
pub(crate) struct Registered {
    cancels: Cancels,
    session: SessionId,
    run_id: String,
    /// Resolves when the run is cancelled.
    pub(crate) cancelled: oneshot::Receiver<()>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut runs = self.cancels.lock();
        if runs
            .get(&self.session)
            .is_some_and(|(id, _)| *id == self.run_id)
        {
            runs.remove(&self.session);
        }
    }
}

impl Cancels {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the run `run_id` of `session` (the run route allows one per thread).
    pub(crate) fn register(&self, session: &SessionId, run_id: &str) -> Registered {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(session.clone(), (run_id.to_owned(), tx));
        Registered {
            cancels: self.clone(),
            session: session.clone(),
            run_id: run_id.to_owned(),
            cancelled: rx,
        }
    }

    /// Cancels the thread's run; its id, if one was in progress.
    pub(crate) fn cancel(&self, session: &SessionId) -> Option<String> {
        let (run_id, tx) = self.lock().remove(session)?;
        let _ = tx.send(());
        Some(run_id)
    }
}

/// The route extension.
#[derive(Debug, Clone)]
pub(crate) struct CancelRoute {
    pub(crate) cancels: Cancels,
}

impl CancelRoute {
    fn cancel(&self, request: &ExtensionRequest<'_>) -> Result<Response, HttpError> {
        let raw = request.path().strip_prefix(PREFIX).unwrap_or_default();
        let session = th::session_id(&th::percent_decode(raw))?;
        request
            .hooks()
            .check(&AccessRequest {
                session: &session,
                capability: Capability::Subscribe,
                headers: request.headers(),
                query: request.query(),
            })
            .into_result()?;
        let Some(run_id) = self.cancels.cancel(&session) else {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "no_run",
                format!("thread `{session}` has no run in progress"),
            ));
        };
        tracing::info!(thread = %session, run_id = %run_id, "agent run cancelled by request");
        let body =
            serde_json::json!({"threadId": session.as_str(), "runId": run_id, "cancelled": true});
        let mut res = Response::new(Body::Full(Bytes::from(body.to_string())));
        *res.status_mut() = StatusCode::ACCEPTED;
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(res)
    }
}

impl RouteExtension for CancelRoute {
    fn route(&self, method: &Method, path: &str) -> Option<Result<(), RouteError>> {
        let thread = path.strip_prefix(PREFIX)?;
        if thread.is_empty() || thread.contains('/') {
            return None;
        }
        Some(if *method == Method::DELETE {
            Ok(())
        } else {
            Err(RouteError::MethodNotAllowed { allow: "DELETE" })
        })
    }

    fn admit(&self, request: &ExtensionRequest<'_>) -> Result<(), HttpError> {
        request
            .hooks()
            .authenticate(request.headers(), request.query())
            .into_result()
            .map(drop)
    }

    fn handle<'a>(&'a self, request: ExtensionRequest<'a>, _body: Bytes) -> ResponseFuture<'a> {
        let res = self
            .cancel(&request)
            .unwrap_or_else(HttpError::into_response);
        Box::pin(std::future::ready(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_reaches_the_registered_run_once() {
        let cancels = Cancels::default();
        let s = SessionId::new("t-1").unwrap();
        let mut reg = cancels.register(&s, "run-1");
        assert_eq!(cancels.cancel(&s).as_deref(), Some("run-1"));
        assert!(reg.cancelled.try_recv().is_ok());
        assert_eq!(cancels.cancel(&s), None);
        drop(reg);
        let reg = cancels.register(&s, "run-2");
        drop(reg);
        assert_eq!(
            cancels.cancel(&s),
            None,
            "an ended run leaves nothing behind"
        );
    }

    #[test]
    fn routes() {
        let r = CancelRoute {
            cancels: Cancels::default(),
        };
        assert!(matches!(
            r.route(&Method::DELETE, "/api/agui/run/t-1"),
            Some(Ok(()))
        ));
        assert!(matches!(
            r.route(&Method::GET, "/api/agui/run/t-1"),
            Some(Err(_))
        ));
        assert!(r.route(&Method::DELETE, "/api/agui/run").is_none());
        assert!(r.route(&Method::DELETE, "/api/agui/run/").is_none());
        assert!(r.route(&Method::DELETE, "/api/agui/run/a/b").is_none());
    }
}
