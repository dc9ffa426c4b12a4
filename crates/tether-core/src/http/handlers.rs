//! The answer of each route of the HTTP contract, once its request was admitted on the head
//! (see [`Service`](super::Service)).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderName, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::retry_after_value;
use super::expiry::UntilExpiry;
use super::hooks::Identity;
use super::request::wants_event_stream;
use super::{Body, Hooks, HttpError, Response};
use crate::approval::{ApprovalRequest, Decision};
use crate::backplane::{Backplane, BackplaneError};
use crate::broker::{Broker, ConnectOptions};
use crate::error::ConnectError;
use crate::frame::EventName;
use crate::id::SessionId;
use crate::session::Event;

/// Long-poll of the approval status route when the request names no `waitMs`: 25 seconds,
/// below the usual 30 to 60 second idle timeouts of proxies.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(25);
/// Longest long-poll of the approval status route.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Longest `timeoutMs` of an approval request created over HTTP.
const MAX_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// What every handler reads besides its route's parameters.
pub(super) struct Call<'a> {
    pub(super) broker: &'a Broker,
    pub(super) hooks: &'a Hooks,
    pub(super) headers: &'a HeaderMap,
    /// The backplane the stream and publish routes go through, when there is one.
    pub(super) backplane: Option<&'a dyn Backplane>,
}

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

/// `GET /api/sse/session/{session_id}`: the session's event stream.
///
/// 200 with the [SSE headers](sse_headers) and the live stream; 409 under the Reject policy;
/// 204 for a client instance superseded moments ago. While draining: 200 with a `retry:`
/// spread over the drain window and an immediate end for event-stream requests, 503 with
/// `Retry-After` otherwise.
///
/// A stream of a token's identity ends at the token's expiry with a `retry:` hint.
///
/// With a backplane the connect goes through it (the same options, identity included), and
/// an unreachable backplane answers 503 `backplane_unavailable`.
pub(super) async fn stream(
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
            let retry = format!("retry: {}\n\n", retry_after.as_millis());
            let mut res = Response::new(Body::Full(Bytes::from(retry)));
            *res.headers_mut() = sse_headers(call.hooks);
            Ok(closing(res))
        }
        Err(BackplaneError::Connect(e @ ConnectError::Draining { .. })) => {
            Ok(closing(HttpError::from(e).into_response()))
        }
        Err(e) => Err(e.into()),
    })
}

/// `HEAD /api/sse/session/{session_id}`: what a `GET` would answer on its head (the id and
/// credential checks ran in admission), without connecting: it creates no session, supersedes
/// nobody and counts as no reconnect, so an uptime check cannot end a user's stream.
pub(super) fn stream_head(call: &Call<'_>) -> Response {
    let mut res = Response::new(Body::empty());
    *res.headers_mut() = sse_headers(call.hooks);
    res
}

/// Splits a publish body into events: one JSON object, or an array of objects. The data of
/// each event is its JSON text as sent (compacted only if it spans lines), so a publish costs
/// one validating parse and no re-serialization.
fn parse_events(
    body: &[u8],
    name: Option<&EventName>,
    broker: &Broker,
) -> Result<Vec<Event>, HttpError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| HttpError::bad_request("invalid_json", "the body must be UTF-8 JSON"))?;
    let invalid_json = |e: serde_json::Error| {
        HttpError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    };
    let raws: Vec<&RawValue> = match text.trim_start().as_bytes().first() {
        Some(b'{') => vec![serde_json::from_str::<&RawValue>(text).map_err(invalid_json)?],
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text).map_err(invalid_json)?,
        _ => {
            return Err(HttpError::bad_request(
                "invalid_body",
                "publish one event as a JSON object, or several as an array of objects",
            ));
        }
    };
    // Counted before any event is looked at: a 1 MiB body can hold 300,000 tiny events.
    let max = broker.config().max_batch_events();
    if raws.len() > max {
        broker.refuse_by_limit("batch_events");
        return Err(crate::PublishError::TooManyEvents {
            count: raws.len(),
            max,
        }
        .into());
    }
    raws.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let data = raw.get();
            if !data.starts_with('{') {
                return Err(HttpError::bad_request(
                    "invalid_event",
                    format!("event {i} is not a JSON object"),
                )
                .with_field("index", i));
            }
            let data = if data.contains(['\n', '\r']) {
                serde_json::from_str::<serde_json::Value>(data)
                    .map_err(invalid_json)?
                    .to_string()
            } else {
                data.to_owned()
            };
            let event = Event::raw(data);
            Ok(match name {
                Some(n) => event.named(n.clone()),
                None => event,
            })
        })
        .collect()
}

fn ids_body(ids: &[crate::id::EventId]) -> Bytes {
    use std::fmt::Write;
    let mut s = String::with_capacity(10 + ids.len() * 24);
    s.push_str("{\"ids\":[");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Event ids are hex digits, '-' and decimal digits: nothing to escape.
        let _ = write!(s, "\"{id}\"");
    }
    s.push_str("]}");
    Bytes::from(s)
}

/// `POST /api/sessions/{session_id}/events`: publish one event (a JSON object) or a batch (an
/// array of objects); `?event=NAME` sets the SSE event name of all of them.
///
/// 202 `{"ids":[...]}`; 400 for invalid JSON or an event that is not an object; 413 for an
/// event over the broker's maximum; 429 over the session's rate. With a backplane the events
/// are appended through it; 503 `backplane_unavailable` or `backplane_full` when it cannot
/// store them.
pub(super) async fn publish(
    call: &Call<'_>,
    sid: &SessionId,
    name: Option<&EventName>,
    body: &[u8],
) -> Response {
    let events = match parse_events(body, name, call.broker) {
        Ok(events) => events,
        Err(e) => return e.into_response(),
    };
    let ids = match call.backplane {
        Some(backplane) => backplane.publish(sid, events).await,
        None => call
            .broker
            .publish_batch(sid, &events)
            .map_err(BackplaneError::Publish),
    };
    respond(
        ids.map(|ids| json(StatusCode::ACCEPTED, ids_body(&ids)))
            .map_err(HttpError::from),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewApproval {
    id: Option<String>,
    title: Option<String>,
    /// Kept as the bytes sent: never parsed into a tree.
    payload: Box<serde_json::value::RawValue>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    approved: bool,
    reason: Option<String>,
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8], shape: &str) -> Result<T, HttpError> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            "invalid_body"
        } else {
            "invalid_json"
        };
        HttpError::bad_request(code, format!("expected {shape}: {e}"))
    })
}

/// `POST /api/sessions/{session_id}/approvals`: ask a human for a decision. Body `{"id"?,
/// "title"?, "payload", "timeoutMs"?}`; the request is announced in the session's stream.
///
/// 201 `{"id":...,"expiresAt":...}`; 400 for a bad body or id; 409 when the id is taken.
pub(super) fn create_approval(call: &Call<'_>, sid: &SessionId, body: &[u8]) -> Response {
    respond((|| {
        let shape = r#"{"id"?: string, "title"?: string, "payload": any, "timeoutMs"?: number}"#;
        let new: NewApproval = parse_json(body, shape)?;
        let mut req = ApprovalRequest::new(new.payload);
        if let Some(id) = new.id {
            req = req.id(id);
        }
        if let Some(title) = new.title {
            req = req.title(title);
        }
        if let Some(ms) = new.timeout_ms {
            let timeout = Duration::from_millis(ms);
            if timeout.is_zero() || timeout > MAX_APPROVAL_TIMEOUT {
                return Err(HttpError::bad_request(
                    "invalid_body",
                    "timeoutMs must be between 1 and 86400000 (one day)",
                ));
            }
            req = req.timeout(timeout);
        }
        let handle = call.broker.request_approval(sid, req)?;
        let expires_at = call
            .broker
            .approval(sid, handle.id())
            .map(|a| a.expires_at)
            .unwrap_or_default();
        Ok(json_value(
            StatusCode::CREATED,
            &serde_json::json!({ "id": handle.id(), "expiresAt": expires_at }),
        ))
    })())
}

/// `GET /api/sessions/{session_id}/approvals/{approval_id}?waitMs=`: the approval as it stands,
/// after waiting up to `waitMs` (default 25 s, at most 60 s) for a pending one to be resolved.
///
/// 200 `{"id","title"?,"payload","expiresAt","status","reason"?}` with `status` one of
/// `pending`, `approved`, `rejected`, `timed_out`, `cancelled`; 404 for an unknown approval.
pub(super) async fn approval_status(
    call: &Call<'_>,
    sid: &SessionId,
    id: &str,
    wait: Duration,
) -> Response {
    match call.broker.wait_approval(sid, id, wait).await {
        Some(info) => json_value(StatusCode::OK, &info),
        None => HttpError::from(crate::error::DecideError::Unknown).into_response(),
    }
}

/// `POST /api/sessions/{session_id}/approvals/{approval_id}/decision`: a human's decision,
/// body `{"approved": bool, "reason"?: string}`.
///
/// 200 with the resolved approval; 400 for a bad body; 404 unknown; 409 already decided or
/// cancelled; 410 expired.
pub(super) fn decide(
    call: &Call<'_>,
    sid: &SessionId,
    id: &str,
    body: &[u8],
    who: Option<&Identity>,
) -> Response {
    respond((|| {
        let d: DecisionBody = parse_json(body, r#"{"approved": bool, "reason"?: string}"#)?;
        let approved = d.approved;
        let decision = Decision {
            approved,
            reason: d.reason,
        };
        let info = call.broker.decide(sid, id, decision)?;
        tracing::info!(
            session = %sid,
            approval = id,
            approved,
            sub = who.and_then(Identity::subject).unwrap_or("-"),
            "approval decided"
        );
        Ok(json_value(StatusCode::OK, &info))
    })())
}

/// `DELETE /api/sessions/{session_id}/approvals/{approval_id}`: cancels a pending approval.
///
/// 200 with the cancelled approval; 404 unknown; 409 already decided; 410 expired.
pub(super) fn cancel_approval(call: &Call<'_>, sid: &SessionId, id: &str) -> Response {
    respond(
        call.broker
            .cancel_approval(sid, id)
            .map(|info| json_value(StatusCode::OK, &info))
            .map_err(HttpError::from),
    )
}

/// `GET /health/sse`: `{"status","sessions","connections","draining","ring_bytes",
/// "backplane","settings","limits"}`, 200 when healthy and 503 (with `Retry-After`) while
/// draining or while the backplane is down (`"status":"backplane_down"`). `backplane` is
/// `null` for the in-memory broker, else `{"status":"up"|"down","node_id","since"}`;
/// `limits` is [`Broker::limits_report`](crate::Broker::limits_report); `settings` is
/// [`Broker::settings`](crate::Broker::settings).
pub(super) fn health(broker: &Broker, backplane: Option<&dyn Backplane>) -> Response {
    let h = broker.health();
    let mut value = serde_json::to_value(&h).unwrap_or_default();
    let backplane = backplane.map(Backplane::status);
    value["backplane"] = match &backplane {
        Some(status) => serde_json::to_value(status.health()).unwrap_or_default(),
        None => serde_json::Value::Null,
    };
    value["settings"] = serde_json::to_value(broker.settings()).unwrap_or_default();
    value["limits"] = broker.limits_report();
    let backplane_down = backplane.as_ref().is_some_and(|s| !s.up);
    if backplane_down && h.is_healthy() {
        value["status"] = "backplane_down".into();
    }
    if h.is_healthy() && !backplane_down {
        json_value(StatusCode::OK, &value)
    } else {
        let retry = if h.is_healthy() {
            BACKPLANE_HEALTH_RETRY
        } else {
            broker.drain_retry_hint()
        };
        let mut res = json_value(StatusCode::SERVICE_UNAVAILABLE, &value);
        res.headers_mut()
            .insert(RETRY_AFTER, retry_after_value(retry));
        res
    }
}

/// `Retry-After` of `/health/sse` while the backplane is down: its links are retried every
/// second or so.
const BACKPLANE_HEALTH_RETRY: Duration = Duration::from_secs(2);

/// `GET /health/live`: `{"status":"alive"}`, 200 whenever the process answers, draining
/// included: a liveness probe that failed during a drain would kill the process before its
/// streams were told where to go.
pub(super) fn live() -> Response {
    json_value(StatusCode::OK, &serde_json::json!({ "status": "alive" }))
}

/// `GET /metrics`: Prometheus text exposition.
pub(super) fn metrics(text: String) -> Response {
    let mut res = Response::new(Body::Full(Bytes::from(text)));
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;
    use http::header::WWW_AUTHENTICATE;

    use super::super::{Service, SessionOwnerHeader};
    use super::*;
    use crate::ConnectionPolicy;

    /// One request through the service's three steps.
    async fn call(
        svc: &Service,
        method: &str,
        uri: &str,
        headers: &[(&'static str, &str)],
        body: &[u8],
    ) -> Response {
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost");
        if method == "POST" && !headers.iter().any(|(k, _)| *k == "content-type") {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        svc.call(req.body(Bytes::copy_from_slice(body)).unwrap())
            .await
    }

    async fn get(svc: &Service, uri: &str, headers: &[(&'static str, &str)]) -> Response {
        call(svc, "GET", uri, headers, b"").await
    }

    async fn post(
        svc: &Service,
        uri: &str,
        headers: &[(&'static str, &str)],
        body: &[u8],
    ) -> Response {
        call(svc, "POST", uri, headers, body).await
    }

    fn body_json(res: &Response) -> serde_json::Value {
        serde_json::from_slice(res.body().as_full().expect("a full body")).unwrap()
    }

    async fn text(res: Response, frames: usize) -> String {
        let Body::Stream(mut s) = res.into_body() else {
            panic!("not a stream")
        };
        let mut out = String::new();
        for _ in 0..frames {
            let b = tokio::time::timeout(Duration::from_secs(5), s.next())
                .await
                .unwrap()
                .unwrap();
            out.push_str(std::str::from_utf8(&b).unwrap());
        }
        out
    }

    fn open(broker: Broker) -> Service {
        Service::new(broker, Hooks::allow_all())
    }

    #[tokio::test]
    async fn publish_then_subscribe() {
        let svc = open(Broker::builder().start());
        let res = post(
            &svc,
            "/api/sessions/s/events?event=note",
            &[],
            br#"[{"a":1},{"b":2}]"#,
        )
        .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let ids = body_json(&res)["ids"].as_array().unwrap().clone();
        assert_eq!(ids.len(), 2);
        let res = get(&svc, "/api/sse/session/s", &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-cache, no-transform");
        assert_eq!(res.headers()["x-accel-buffering"], "no");
        let t = text(res, 2).await;
        assert!(t.starts_with("retry: "), "{t}");
        assert!(
            t.contains(&format!(
                "id: {}\nevent: note\ndata: {{\"a\":1}}\n\n",
                ids[0].as_str().unwrap()
            )),
            "{t}"
        );
    }

    #[tokio::test]
    async fn publish_bodies() {
        let broker = Broker::builder().max_event_bytes(64).start();
        let svc = Service::new(broker, Hooks::allow_all().max_body_bytes(256));
        let mut statuses = Vec::new();
        for (body, q) in [
            (&b"{\"a\":\n 1}"[..], ""),
            (b"{", ""),
            (b"42", ""),
            (b"[1]", ""),
            (b"[]", ""),
            (b"{}", "?event=a%0Ab"),
        ] {
            let uri = format!("/api/sessions/s/events{q}");
            statuses.push(post(&svc, &uri, &[], body).await.status().as_u16());
        }
        assert_eq!(statuses, [202, 400, 400, 400, 202, 400]);
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(100));
        let res = post(&svc, "/api/sessions/s/events", &[], big.as_bytes()).await;
        assert_eq!(res.status(), 413);
        let res = post(&svc, "/api/sessions/s/events", &[], &[b' '; 300]).await;
        assert_eq!(res.status(), 413);
        let res = post(&svc, "/api/sessions/a%20b/events", &[], b"{}").await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        // Multi-line JSON is compacted, so each event is one data line.
        let t = text(get(&svc, "/api/sse/session/s", &[]).await, 2).await;
        assert!(t.contains("data: {\"a\":1}\n"), "{t}");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_on_the_head() {
        let svc = Service::new(
            Broker::builder().start(),
            Hooks::allow_all().max_body_bytes(8),
        );
        let req = http::Request::post("/api/sessions/s/events")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("content-length", "9")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let refused = svc.admit(&parts).expect_err("refused before the body");
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn publisher_token() {
        let svc = Service::new(
            Broker::builder().start(),
            Hooks::allow_all().publish_token("tok"),
        );
        let res = post(&svc, "/api/sessions/s/events", &[], b"{}").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(body_json(&res)["error"], "unauthorized");
        let ok = [("authorization", "Bearer tok")];
        let res = post(&svc, "/api/sessions/s/events", &ok, b"{}").await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn authorizer_guards_subscribe_decide_and_status() {
        let broker = Broker::builder().start();
        let hooks = Hooks::allow_all()
            .publish_token("tok")
            .authorizer(SessionOwnerHeader::new(HeaderName::from_static("x-user")));
        let svc = Service::new(broker.clone(), hooks);
        let stream = "/api/sse/session/alice:1";
        assert_eq!(
            get(&svc, stream, &[]).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(&svc, stream, &[("x-user", "bob")]).await.status(),
            StatusCode::FORBIDDEN
        );
        assert!(
            !broker.has_session(&SessionId::new("alice:1").unwrap()),
            "a refused connect creates nothing"
        );
        let publisher = [("authorization", "Bearer tok")];
        let res = post(
            &svc,
            "/api/sessions/alice:1/approvals",
            &publisher,
            br#"{"id":"a1","payload":{}}"#,
        )
        .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let bob = [("x-user", "bob")];
        let decision = "/api/sessions/alice:1/approvals/a1/decision";
        let status = "/api/sessions/alice:1/approvals/a1?waitMs=0";
        let approve = br#"{"approved":true}"#;
        assert_eq!(post(&svc, decision, &bob, approve).await.status(), 403);
        assert_eq!(get(&svc, status, &bob).await.status(), 403);
        // The publisher's token reads the status too.
        assert_eq!(get(&svc, status, &publisher).await.status(), 200);
        let alice = [("x-user", "alice")];
        assert_eq!(post(&svc, decision, &alice, approve).await.status(), 200);
    }

    #[tokio::test]
    async fn approvals() {
        let svc = open(Broker::builder().start());
        let create = "/api/sessions/s/approvals";
        let res = post(
            &svc,
            create,
            &[],
            br#"{"id":"a1","title":"Deploy?","payload":{"x":1},"timeoutMs":60000}"#,
        )
        .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(body_json(&res)["id"], "a1");
        assert!(
            body_json(&res)["expiresAt"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        let dup = post(&svc, create, &[], br#"{"id":"a1","payload":null}"#).await;
        assert_eq!(dup.status(), StatusCode::CONFLICT);
        for bad in [
            &br#"{"id":"a1"}"#[..],
            br#"{"payload":1,"timeoutMs":0}"#,
            br#"{"id":"a b","payload":1}"#,
        ] {
            assert_eq!(post(&svc, create, &[], bad).await.status(), 400);
        }

        let res = get(&svc, "/api/sessions/s/approvals/a1?waitMs=1", &[]).await;
        assert_eq!(body_json(&res)["status"], "pending");

        let svc2 = svc.clone();
        let poll = tokio::spawn(async move {
            get(&svc2, "/api/sessions/s/approvals/a1?waitMs=5000", &[]).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let decision = "/api/sessions/s/approvals/a1/decision";
        let res = post(&svc, decision, &[], br#"{"approved":false,"reason":"no"}"#).await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = poll.await.unwrap();
        assert_eq!(body_json(&res)["status"], "rejected");
        assert_eq!(body_json(&res)["reason"], "no");
        let again = post(&svc, decision, &[], br#"{"approved":true}"#).await;
        assert_eq!(again.status(), StatusCode::CONFLICT);
        assert_eq!(body_json(&again)["error"], "already_decided");
        assert_eq!(post(&svc, decision, &[], b"{}").await.status(), 400);
        let unknown = "/api/sessions/s/approvals/zz/decision";
        assert_eq!(
            post(&svc, unknown, &[], br#"{"approved":true}"#)
                .await
                .status(),
            404
        );
        let status = |q: &'static str| get(&svc, q, &[]);
        assert_eq!(
            status("/api/sessions/s/approvals/zz?waitMs=0")
                .await
                .status(),
            404
        );
        assert_eq!(
            status("/api/sessions/s/approvals/a1?waitMs=x")
                .await
                .status(),
            400
        );

        let res = post(&svc, create, &[], br#"{"payload":1,"timeoutMs":30}"#).await;
        let id = body_json(&res)["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let late = format!("/api/sessions/s/approvals/{id}/decision");
        assert_eq!(
            post(&svc, &late, &[], br#"{"approved":true}"#)
                .await
                .status(),
            410
        );

        let res = post(&svc, create, &[], br#"{"id":"c","payload":1}"#).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let cancel = "/api/sessions/s/approvals/c";
        let res = call(&svc, "DELETE", cancel, &[], b"").await;
        assert_eq!(body_json(&res)["status"], "cancelled");
        assert_eq!(call(&svc, "DELETE", cancel, &[], b"").await.status(), 409);
    }

    #[tokio::test]
    async fn reject_policy_and_supersede_grace() {
        let svc = open(
            Broker::builder()
                .connection_policy(ConnectionPolicy::Reject)
                .start(),
        );
        let first = get(&svc, "/api/sse/session/s", &[]).await;
        assert_eq!(first.status(), StatusCode::OK);
        let second = get(&svc, "/api/sse/session/s", &[]).await;
        assert_eq!(second.status(), StatusCode::CONFLICT);
        assert_eq!(body_json(&second)["error"], "conflict");

        let svc = open(Broker::builder().start());
        let a = get(&svc, "/api/sse/session/s?clientId=a", &[]).await;
        let _b = get(&svc, "/api/sse/session/s?clientId=b", &[]).await;
        drop(a);
        let again = get(&svc, "/api/sse/session/s?clientId=a", &[]).await;
        assert_eq!(again.status(), StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn bad_ids() {
        let svc = open(Broker::builder().start());
        let long = "1".repeat(129);
        let res = get(&svc, "/api/sse/session/s", &[("last-event-id", &long)]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_json(&res)["error"], "invalid_last_event_id");
        let res = get(&svc, &format!("/api/sse/session/{long}"), &[]).await;
        assert_eq!(body_json(&res)["error"], "invalid_session_id");
        // Well-formed but foreign: a stream that opens with a resync.
        let res = get(&svc, "/api/sse/session/s?lastEventId=msg_17", &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        let t = text(res, 1).await;
        assert!(
            t.contains("tether.resync") && t.contains("\"unknown\""),
            "{t}"
        );
    }

    #[tokio::test]
    async fn head_answers_the_stream_head_without_connecting() {
        let broker = Broker::builder().start();
        let svc = open(broker.clone());
        let live = get(&svc, "/api/sse/session/s", &[]).await;
        let res = call(&svc, "HEAD", "/api/sse/session/s", &[], b"").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
        assert!(res.body().as_full().unwrap().is_empty());
        assert_eq!(broker.connection_count(), 1, "the live stream is untouched");
        let res = call(&svc, "HEAD", "/api/sse/session/other", &[], b"").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(!broker.has_session(&SessionId::new("other").unwrap()));
        drop(live);
    }

    #[tokio::test]
    async fn draining_answers() {
        let broker = Broker::builder().start();
        let svc = open(broker.clone());
        let live = get(&svc, "/api/sse/session/s", &[]).await;
        broker.drain(Duration::from_secs(4));
        let t = text(live, 2).await;
        assert!(t.contains("tether.drain"), "{t}");

        let es = [("accept", "text/event-stream")];
        let res = get(&svc, "/api/sse/session/s", &es).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
        assert_eq!(res.headers()[CONNECTION], "close");
        let body = std::str::from_utf8(res.body().as_full().unwrap())
            .unwrap()
            .to_owned();
        let ms: u64 = body
            .strip_prefix("retry: ")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(ms <= 4000, "{body}");

        let res = get(&svc, "/api/sse/session/s", &[]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key(RETRY_AFTER));
        let res = post(&svc, "/api/sessions/s/events", &[], b"{}").await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[CONNECTION], "close");
        let res = get(&svc, "/health/sse", &[]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_json(&res)["draining"], true);
    }

    #[tokio::test]
    async fn health_json() {
        let svc = open(Broker::builder().start());
        let res = get(&svc, "/health/sse", &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        let v = body_json(&res);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["connections"], 0);
        assert!(v["backplane"].is_null());
    }

    #[tokio::test]
    async fn metrics_only_where_mounted() {
        let svc = open(Broker::builder().start());
        assert_eq!(get(&svc, "/metrics", &[]).await.status(), 404);
        let svc = svc.metrics(|| "up 1\n".to_owned());
        let res = get(&svc, "/metrics", &[]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.body().as_full().unwrap(), "up 1\n");
    }

    #[tokio::test]
    async fn routing_errors_are_json() {
        let svc = open(Broker::builder().start());
        let res = post(&svc, "/api/sse/session/s", &[], b"").await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
        assert_eq!(body_json(&res)["error"], "method_not_allowed");
        let res = get(&svc, "/nowhere", &[]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_json(&res)["error"], "not_found");
    }

    #[tokio::test]
    async fn huge_approval_timeouts_do_not_panic() {
        let broker = Broker::builder().start();
        let s = SessionId::new("s").unwrap();
        let h = broker
            .request_approval(
                &s,
                ApprovalRequest::new(serde_json::Value::Null).timeout(Duration::MAX),
            )
            .unwrap();
        assert!(!broker.approval(&s, h.id()).unwrap().expires_at.is_empty());
    }

    /// A backplane in front of one broker, recording what it was asked, that can be "down".
    struct FakeBackplane {
        broker: Broker,
        up: std::sync::atomic::AtomicBool,
        publishes: std::sync::atomic::AtomicUsize,
        connects: parking_lot::Mutex<Vec<ConnectOptions>>,
    }

    impl FakeBackplane {
        fn new(broker: Broker) -> std::sync::Arc<Self> {
            std::sync::Arc::new(Self {
                broker,
                up: true.into(),
                publishes: 0.into(),
                connects: parking_lot::Mutex::new(Vec::new()),
            })
        }

        fn set_up(&self, up: bool) {
            self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        }

        fn is_up(&self) -> bool {
            self.up.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl Backplane for FakeBackplane {
        fn publish<'a>(
            &'a self,
            session: &'a SessionId,
            events: Vec<Event>,
        ) -> crate::BoxFuture<'a, Result<Vec<crate::EventId>, BackplaneError>> {
            Box::pin(async move {
                self.publishes
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if !self.is_up() {
                    return Err(BackplaneError::Unavailable("test: down".into()));
                }
                Ok(self.broker.publish_batch(session, &events)?)
            })
        }

        fn connect<'a>(
            &'a self,
            session: &'a SessionId,
            opts: ConnectOptions,
        ) -> crate::BoxFuture<'a, Result<crate::EventStream, BackplaneError>> {
            Box::pin(async move {
                self.connects.lock().push(opts.clone());
                if !self.is_up() {
                    return Err(BackplaneError::Unavailable("test: down".into()));
                }
                Ok(self.broker.connect(session, opts)?)
            })
        }

        fn status(&self) -> crate::BackplaneStatus {
            crate::BackplaneStatus {
                up: self.is_up(),
                node_id: "node-a".into(),
                since: std::time::UNIX_EPOCH,
            }
        }
    }

    #[tokio::test]
    async fn a_backplane_carries_publish_and_connect() {
        let broker = Broker::builder().start();
        let bp = FakeBackplane::new(broker.clone());
        let hooks = Hooks::allow_all()
            .publish_token("tok")
            .authorizer(SessionOwnerHeader::new(HeaderName::from_static("x-user")));
        let svc = Service::new(broker, hooks).backplane(bp.clone());
        assert!(svc.has_backplane());
        let publisher = [("authorization", "Bearer tok")];
        let events = "/api/sessions/alice:1/events";
        let res = post(&svc, events, &publisher, br#"[{"a":1},{"b":2}]"#).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(bp.publishes.load(std::sync::atomic::Ordering::SeqCst), 1);
        let res = get(
            &svc,
            "/api/sse/session/alice:1?clientId=tab1",
            &[("x-user", "alice"), ("last-event-id", "e1-1")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
        let opts = bp.connects.lock()[0].clone();
        assert_eq!(
            opts.identity.as_deref(),
            Some("alice"),
            "the identity goes along"
        );
        assert_eq!(opts.client_id.as_deref(), Some("tab1"));
        assert_eq!(opts.last_event_id.as_deref(), Some("e1-1"));
        // A refused caller never reaches the backplane.
        let res = get(&svc, "/api/sse/session/alice:1", &[("x-user", "bob")]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(bp.connects.lock().len(), 1);
    }

    #[tokio::test]
    async fn a_backplane_that_is_down_answers_503() {
        let broker = Broker::builder().start();
        let bp = FakeBackplane::new(broker.clone());
        let svc = open(broker.clone()).backplane(bp.clone());
        let res = get(&svc, "/health/sse", &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        let v = body_json(&res);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["backplane"]["status"], "up");
        assert_eq!(v["backplane"]["node_id"], "node-a");
        assert_eq!(v["backplane"]["since"], "1970-01-01T00:00:00Z");

        bp.set_up(false);
        let res = post(&svc, "/api/sessions/s/events", &[], b"{}").await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_json(&res)["error"], "backplane_unavailable");
        assert!(res.headers().contains_key(RETRY_AFTER));
        assert_eq!(
            broker.head(&SessionId::new("s").unwrap()),
            None,
            "nothing stored"
        );
        let res = get(&svc, "/api/sse/session/s", &[]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_json(&res)["error"], "backplane_unavailable");
        let res = get(&svc, "/health/sse", &[]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key(RETRY_AFTER));
        let v = body_json(&res);
        assert_eq!(v["status"], "backplane_down");
        assert_eq!(v["backplane"]["status"], "down");
    }

    #[tokio::test]
    async fn a_backplane_keeps_the_draining_answers() {
        let broker = Broker::builder().start();
        let bp = FakeBackplane::new(broker.clone());
        let svc = open(broker.clone()).backplane(bp);
        broker.drain(Duration::from_secs(4));
        let es = [("accept", "text/event-stream")];
        let res = get(&svc, "/api/sse/session/s", &es).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONNECTION], "close");
        let res = get(&svc, "/api/sse/session/s", &[]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_json(&res)["error"], "draining");
    }

    #[tokio::test]
    async fn approvals_are_refused_on_a_backplane() {
        let broker = Broker::builder().start();
        let svc = Service::new(broker.clone(), Hooks::allow_all().publish_token("tok"))
            .backplane(FakeBackplane::new(broker));
        let create = "/api/sessions/s/approvals";
        let res = post(&svc, create, &[], br#"{"payload":1}"#).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "credentials first");
        let ok = [("authorization", "Bearer tok")];
        let res = post(&svc, create, &ok, br#"{"payload":1}"#).await;
        assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(body_json(&res)["error"], "approvals_not_shared");
        let res = get(&svc, "/api/sessions/s/approvals/a1?waitMs=0", &ok).await;
        assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
        let res = call(&svc, "DELETE", "/api/sessions/s/approvals/a1", &ok, b"").await;
        assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
        let decision = "/api/sessions/s/approvals/a1/decision";
        let res = post(&svc, decision, &[], br#"{"approved":true}"#).await;
        assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
    }

    #[test]
    fn accel_buffering_can_be_left_out() {
        let h = sse_headers(&Hooks::allow_all().accel_buffering_header(false));
        assert!(h.get("x-accel-buffering").is_none());
    }
}
