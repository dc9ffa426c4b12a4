//! The answer of each route of the HTTP contract, once its request was admitted on the head
//! (see [`Service`](super::Service)): one module per group of routes, and here what they
//! share (the call's context, JSON answers, the draining refusal).

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::{Body, Hooks, HttpError, Response};
use crate::backplane::Backplane;
use crate::broker::Broker;
use crate::error::ConnectError;

mod approvals;
mod health;
mod publish;
mod stream;
#[cfg(test)]
mod tests;

pub use approvals::{DEFAULT_WAIT, MAX_WAIT};
pub(super) use approvals::{approval_status, cancel_approval, create_approval, decide};
pub(super) use health::{health, live, metrics};
pub(super) use publish::publish;
pub use stream::sse_headers;
pub(super) use stream::{stream, stream_head};

/// What every handler reads besides its route's parameters.
pub(super) struct Call<'a> {
    pub(super) broker: &'a Broker,
    pub(super) hooks: &'a Hooks,
    pub(super) headers: &'a HeaderMap,
    /// The backplane the stream and publish routes go through, when there is one.
    pub(super) backplane: Option<&'a dyn Backplane>,
}

fn respond(result: Result<Response, HttpError>) -> Response {
    result.unwrap_or_else(HttpError::into_response)
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut res = Response::new(Body::Full(body.into()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn json_value(status: StatusCode, value: &impl serde::Serialize) -> Response {
    json(status, serde_json::to_vec(value).unwrap_or_default())
}

/// The 503 of a draining node, for everything but event-stream subscribes. `Connection:
/// close` lets the client's next request reach another node through the load balancer.
pub(super) fn draining(broker: &Broker) -> HttpError {
    HttpError::from(ConnectError::Draining {
        retry_after: broker.drain_retry_hint(),
    })
    .with_header(CONNECTION, HeaderValue::from_static("close"))
}

fn closing(mut res: Response) -> Response {
    res.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    res
}
