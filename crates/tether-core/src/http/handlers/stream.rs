//! The event-stream routes: `GET` connects (through the backplane when there is one) and
//! answers with the SSE headers, `HEAD` answers with them without connecting.

use bytes::Bytes;
use http::HeaderMap;
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};

use super::super::expiry::UntilExpiry;
use super::super::hooks::Identity;
use super::super::request::wants_event_stream;
use super::super::{Body, Hooks, HttpError, Response};
use super::{Call, closing, respond};
use crate::backplane::BackplaneError;
use crate::broker::ConnectOptions;
use crate::error::ConnectError;
use crate::id::SessionId;

const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// The headers of an event stream: `Content-Type: text/event-stream`, `Cache-Control:
/// no-cache, no-transform` (no cache or compressing proxy may hold events back) and, unless
/// turned off in the hooks, `X-Accel-Buffering: no` (nginx passes each chunk on at once).
pub fn sse_headers(hooks: &Hooks) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(3);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    if hooks.accel_buffering_header {
        h.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    }
    h
}

/// `GET /api/sse/session/{session_id}`: the session's event stream.
///
/// 200 with the [SSE headers](sse_headers) and the live stream; 409 under the Reject policy;
/// 204 for a client instance superseded moments ago. While draining: 200 with a `retry:`
/// spread over the drain window and an immediate end for event-stream requests, 503 with
/// `Retry-After` otherwise.
///
/// A stream of a token's identity ends at the token's expiry with a `retry:` hint.
///
/// With a backplane the connect goes through it (the same options, identity included). An
/// unreachable backplane answers 200 with a `retry:` hint and an immediate end, never a
/// non-200 (the backplane serves a resume its node's ring holds exactly without it).
pub(in crate::http) async fn stream(
    call: &Call<'_>,
    sid: &SessionId,
    opts: ConnectOptions,
    who: Option<&Identity>,
) -> Response {
    let connected = match call.backplane {
        Some(backplane) => backplane.connect(sid, opts).await,
        None => call
            .broker
            .connect(sid, opts)
            .map_err(BackplaneError::Connect),
    };
    respond(match connected {
        Ok(stream) => {
            let body = match who.and_then(Identity::expires_at_unix) {
                Some(exp) => Body::Chunks(Box::pin(UntilExpiry::new(
                    stream,
                    exp,
                    call.broker.inner.retry_hint_ms(),
                ))),
                None => Body::Stream(stream),
            };
            let mut res = Response::new(body);
            *res.headers_mut() = sse_headers(call.hooks);
            Ok(res)
        }
        Err(BackplaneError::Connect(ConnectError::Draining { retry_after }))
            if wants_event_stream(call.headers) =>
        {
            Ok(come_back_in(call, retry_after.as_millis()))
        }
        Err(BackplaneError::Connect(e @ ConnectError::Draining { .. })) => {
            Ok(closing(HttpError::from(e).into_response()))
        }
        // EventSource gives up for good after a non-200: the client is told to come back in
        // a moment, when the backplane may be reachable again.
        Err(BackplaneError::Unavailable(_)) => Ok(come_back_in(
            call,
            u128::from(call.broker.inner.retry_hint_ms()),
        )),
        Err(e) => Err(e.into()),
    })
}

/// A 200 event stream that holds only a `retry:` of `ms` and ends: the client reconnects
/// then, where an error status would make EventSource stop for good.
fn come_back_in(call: &Call<'_>, ms: u128) -> Response {
    let retry = format!("retry: {ms}\n\n");
    let mut res = Response::new(Body::Full(Bytes::from(retry)));
    *res.headers_mut() = sse_headers(call.hooks);
    closing(res)
}

/// `HEAD /api/sse/session/{session_id}`: what a `GET` would answer on its head (the id and
/// credential checks ran in admission), without connecting: it creates no session, supersedes
/// nobody and counts as no reconnect, so an uptime check cannot end a user's stream.
pub(in crate::http) fn stream_head(call: &Call<'_>) -> Response {
    let mut res = Response::new(Body::empty());
    *res.headers_mut() = sse_headers(call.hooks);
    res
}
