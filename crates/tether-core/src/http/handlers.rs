//! One function per route of the HTTP contract.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderName, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::retry_after_value;
use super::request::{connect_options, session_id, wait_duration, wants_event_stream};
use super::{Access, Body, Hooks, HttpError, Response, query_param};
use crate::approval::{ApprovalRequest, Decision};
use crate::broker::{Broker, event_name};
use crate::error::ConnectError;
use crate::frame::EventName;
use crate::id::{InvalidId, SessionId, is_valid_id};
use crate::session::Event;

/// Long-poll of the approval status route when the request names no `waitMs`: 25 seconds,
/// below the usual 30 to 60 second idle timeouts of proxies.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(25);
/// Longest long-poll of the approval status route.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Longest `timeoutMs` of an approval request created over HTTP.
const MAX_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

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
fn draining(broker: &Broker) -> HttpError {
    HttpError::from(ConnectError::Draining {
        retry_after: broker.drain_retry_hint(),
    })
}

fn closing(mut res: Response) -> Response {
    res.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    res
}

fn approval_id(raw: &str) -> Result<&str, HttpError> {
    if is_valid_id(raw) {
        Ok(raw)
    } else {
        Err(InvalidId {
            what: "approval id",
        }
        .into())
    }
}

/// `GET /api/sse/session/{session_id}`: the session's event stream.
///
/// 200 with the [SSE headers](sse_headers) and the live stream; 400 for a session id or
/// `Last-Event-ID` outside the id grammar (a well-formed foreign id gets an in-band resync
/// instead); 401/403 from the authorizer; 409 under the Reject policy; 204 for a client
/// instance superseded moments ago. While draining: 200 with a `retry:` spread over the drain
/// window and an immediate end for event-stream requests, 503 with `Retry-After` otherwise.
pub fn subscribe(
    broker: &Broker,
    hooks: &Hooks,
    session: &str,
    headers: &HeaderMap,
    query: &str,
) -> Response {
    respond((|| {
        let sid = session_id(session)?;
        hooks.authorize(&sid, headers).into_result()?;
        let opts = connect_options(headers, query)?;
        match broker.connect(&sid, opts) {
            Ok(stream) => {
                let mut res = Response::new(Body::Stream(stream));
                *res.headers_mut() = sse_headers(hooks);
                Ok(res)
            }
            Err(ConnectError::Draining { retry_after }) if wants_event_stream(headers) => {
                let retry = format!("retry: {}\n\n", retry_after.as_millis());
                let mut res = Response::new(Body::Full(Bytes::from(retry)));
                *res.headers_mut() = sse_headers(hooks);
                Ok(closing(res))
            }
            Err(e @ ConnectError::Draining { .. }) => {
                Ok(closing(HttpError::from(e).into_response()))
            }
            Err(e) => Err(e.into()),
        }
    })())
}

/// Splits a publish body into events: one JSON object, or an array of objects. The data of
/// each event is its JSON text as sent (compacted only if it spans lines), so a publish costs
/// one validating parse and no re-serialization.
fn parse_events(body: &[u8], name: Option<&EventName>) -> Result<Vec<Event>, HttpError> {
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
/// 202 `{"ids":[...]}`; 400 for invalid JSON, an event that is not an object or a bad name;
/// 401/403 from the publisher authentication; 413 for an event over the broker's maximum or a
/// body over [`Hooks::max_body_bytes`]; 429 over the session's rate; 503 while draining.
pub fn publish(
    broker: &Broker,
    hooks: &Hooks,
    session: &str,
    headers: &HeaderMap,
    query: &str,
    body: &[u8],
) -> Response {
    respond((|| {
        let sid = session_id(session)?;
        hooks.authenticate_publisher(&sid, headers).into_result()?;
        if body.len() > hooks.max_body_bytes {
            return Err(HttpError::body_too_large(hooks.max_body_bytes));
        }
        if broker.is_draining() {
            return Ok(closing(draining(broker).into_response()));
        }
        let name = match query_param(query, "event") {
            Some(n) => Some(event_name(&n).map_err(HttpError::from)?),
            None => None,
        };
        let events = parse_events(body, name.as_ref())?;
        let ids = broker.publish_batch(&sid, &events)?;
        Ok(json(StatusCode::ACCEPTED, ids_body(&ids)))
    })())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewApproval {
    id: Option<String>,
    title: Option<String>,
    payload: serde_json::Value,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
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
/// 201 `{"id":...,"expiresAt":...}`; 400 for a bad body or id; 401/403 from the publisher
/// authentication; 409 when the id is taken; 503 while draining.
pub fn create_approval(
    broker: &Broker,
    hooks: &Hooks,
    session: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    respond((|| {
        let sid = session_id(session)?;
        hooks.authenticate_publisher(&sid, headers).into_result()?;
        if body.len() > hooks.max_body_bytes {
            return Err(HttpError::body_too_large(hooks.max_body_bytes));
        }
        if broker.is_draining() {
            return Ok(closing(draining(broker).into_response()));
        }
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
        let handle = broker.request_approval(&sid, req)?;
        let expires_at = broker
            .approval(&sid, handle.id())
            .map(|a| a.expires_at)
            .unwrap_or_default();
        Ok(json_value(
            StatusCode::CREATED,
            &serde_json::json!({ "id": handle.id(), "expiresAt": expires_at }),
        ))
    })())
}

/// The status route is for the publisher waiting on a decision and for the session's own
/// browser: a request passes if the authorizer admits it to the session, or if publisher
/// authentication is configured and accepts it.
fn status_access(hooks: &Hooks, sid: &SessionId, headers: &HeaderMap) -> Result<(), HttpError> {
    let browser = hooks.authorize(sid, headers);
    if browser.is_allowed() {
        return Ok(());
    }
    if hooks.publisher.is_some() && hooks.authenticate_publisher(sid, headers) == Access::Allow {
        return Ok(());
    }
    browser.into_result()
}

/// `GET /api/sessions/{session_id}/approvals/{approval_id}?waitMs=`: the approval as it stands,
/// after waiting up to `waitMs` (default 25 s, at most 60 s) for a pending one to be resolved.
///
/// 200 `{"id","title"?,"payload","expiresAt","status","reason"?}` with `status` one of
/// `pending`, `approved`, `rejected`, `timed_out`, `cancelled`; 400 for bad ids or `waitMs`;
/// 401/403 (see the crate docs: authorizer or publisher); 404 for an unknown approval.
pub async fn approval_status(
    broker: &Broker,
    hooks: &Hooks,
    session: &str,
    approval: &str,
    headers: &HeaderMap,
    query: &str,
) -> Response {
    let checked = (|| {
        let sid = session_id(session)?;
        let id = approval_id(approval)?;
        status_access(hooks, &sid, headers)?;
        Ok::<_, HttpError>((sid, id, wait_duration(query)?))
    })();
    let (sid, id, wait) = match checked {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    match broker.wait_approval(&sid, id, wait).await {
        Some(info) => json_value(StatusCode::OK, &info),
        None => HttpError::from(crate::error::DecideError::Unknown).into_response(),
    }
}

/// `POST /api/sessions/{session_id}/approvals/{approval_id}/decision`: a human's decision,
/// body `{"approved": bool, "reason"?: string}`. Goes through the authorizer.
///
/// 200 with the resolved approval; 400 for a bad body or id; 401/403; 404 unknown; 409
/// already decided or cancelled; 410 expired.
pub fn decide(
    broker: &Broker,
    hooks: &Hooks,
    session: &str,
    approval: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    respond((|| {
        let sid = session_id(session)?;
        let id = approval_id(approval)?;
        hooks.authorize(&sid, headers).into_result()?;
        let d: DecisionBody = parse_json(body, r#"{"approved": bool, "reason"?: string}"#)?;
        let info = broker.decide(
            &sid,
            id,
            Decision {
                approved: d.approved,
                reason: d.reason,
            },
        )?;
        Ok(json_value(StatusCode::OK, &info))
    })())
}

/// `DELETE /api/sessions/{session_id}/approvals/{approval_id}`: cancels a pending approval.
///
/// 200 with the cancelled approval; 401/403 from the publisher authentication; 404 unknown;
/// 409 already decided; 410 expired.
pub fn cancel_approval(
    broker: &Broker,
    hooks: &Hooks,
    session: &str,
    approval: &str,
    headers: &HeaderMap,
) -> Response {
    respond((|| {
        let sid = session_id(session)?;
        let id = approval_id(approval)?;
        hooks.authenticate_publisher(&sid, headers).into_result()?;
        let info = broker.cancel_approval(&sid, id)?;
        Ok(json_value(StatusCode::OK, &info))
    })())
}

/// `GET /health/sse`: `{"status","sessions","connections","draining","ring_bytes",
/// "backplane"}`, 200 when healthy and 503 (with `Retry-After`) while draining. `backplane`
/// is `null` for the in-memory broker.
pub fn health(broker: &Broker) -> Response {
    let h = broker.health();
    let mut value = serde_json::to_value(&h).unwrap_or_default();
    value["backplane"] = serde_json::Value::Null;
    if h.is_healthy() {
        json_value(StatusCode::OK, &value)
    } else {
        let mut res = json_value(StatusCode::SERVICE_UNAVAILABLE, &value);
        res.headers_mut()
            .insert(RETRY_AFTER, retry_after_value(broker.drain_retry_hint()));
        res
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;
    use http::header::WWW_AUTHENTICATE;

    use super::*;
    use crate::ConnectionPolicy;

    fn hdr(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
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

    #[tokio::test]
    async fn publish_then_subscribe() {
        let broker = Broker::builder().start();
        let hooks = Hooks::new();
        let res = publish(
            &broker,
            &hooks,
            "s",
            &HeaderMap::new(),
            "event=note",
            br#"[{"a":1},{"b":2}]"#,
        );
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let ids = body_json(&res)["ids"].as_array().unwrap().clone();
        assert_eq!(ids.len(), 2);
        let res = subscribe(&broker, &hooks, "s", &HeaderMap::new(), "");
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
        let hooks = Hooks::new().max_body_bytes(256);
        let h = HeaderMap::new();
        let status =
            |body: &[u8], q: &str| publish(&broker, &hooks, "s", &h, q, body).status().as_u16();
        assert_eq!(status(b"{\"a\":\n 1}", ""), 202);
        assert_eq!(status(b"{", ""), 400);
        assert_eq!(status(b"42", ""), 400);
        assert_eq!(status(b"[1]", ""), 400);
        assert_eq!(status(b"[]", ""), 202);
        assert_eq!(status(b"{}", "event=a%0Ab"), 400);
        assert_eq!(
            status(format!("{{\"a\":\"{}\"}}", "x".repeat(100)).as_bytes(), ""),
            413
        );
        assert_eq!(status(&[b' '; 300], ""), 413);
        assert_eq!(
            publish(&broker, &hooks, "a b", &h, "", b"{}").status(),
            StatusCode::BAD_REQUEST
        );
        // Multi-line JSON is compacted, so each event is one data line.
        let res = subscribe(&broker, &hooks, "s", &h, "");
        let t = text(res, 2).await;
        assert!(t.contains("data: {\"a\":1}\n"), "{t}");
    }

    #[tokio::test]
    async fn publisher_token() {
        let broker = Broker::builder().start();
        let hooks = Hooks::new().publish_token("tok");
        let res = publish(&broker, &hooks, "s", &HeaderMap::new(), "", b"{}");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(body_json(&res)["error"], "unauthorized");
        let ok = hdr(&[("authorization", "Bearer tok")]);
        assert_eq!(
            publish(&broker, &hooks, "s", &ok, "", b"{}").status(),
            StatusCode::ACCEPTED
        );
    }

    #[tokio::test]
    async fn authorizer_guards_subscribe_decide_and_status() {
        let broker = Broker::builder().start();
        let hooks =
            Hooks::new()
                .publish_token("tok")
                .authorizer(super::super::SessionOwnerHeader::new(
                    HeaderName::from_static("x-user"),
                ));
        let s = "alice:1";
        assert_eq!(
            subscribe(&broker, &hooks, s, &HeaderMap::new(), "").status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            subscribe(&broker, &hooks, s, &hdr(&[("x-user", "bob")]), "").status(),
            StatusCode::FORBIDDEN
        );
        assert!(
            !broker.has_session(&SessionId::new(s).unwrap()),
            "a refused connect creates nothing"
        );
        let publisher = hdr(&[("authorization", "Bearer tok")]);
        let res = create_approval(
            &broker,
            &hooks,
            s,
            &publisher,
            br#"{"id":"a1","payload":{}}"#,
        );
        assert_eq!(res.status(), StatusCode::CREATED);
        let bob = hdr(&[("x-user", "bob")]);
        assert_eq!(
            decide(&broker, &hooks, s, "a1", &bob, br#"{"approved":true}"#).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            approval_status(&broker, &hooks, s, "a1", &bob, "waitMs=0")
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        // The publisher's token reads the status too.
        assert_eq!(
            approval_status(&broker, &hooks, s, "a1", &publisher, "waitMs=0")
                .await
                .status(),
            StatusCode::OK
        );
        let alice = hdr(&[("x-user", "alice")]);
        assert_eq!(
            decide(&broker, &hooks, s, "a1", &alice, br#"{"approved":true}"#).status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn approvals() {
        let broker = Broker::builder().start();
        let hooks = Hooks::new();
        let h = HeaderMap::new();
        let res = create_approval(
            &broker,
            &hooks,
            "s",
            &h,
            br#"{"id":"a1","title":"Deploy?","payload":{"x":1},"timeoutMs":60000}"#,
        );
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(body_json(&res)["id"], "a1");
        assert!(
            body_json(&res)["expiresAt"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        let dup = create_approval(&broker, &hooks, "s", &h, br#"{"id":"a1","payload":null}"#);
        assert_eq!(dup.status(), StatusCode::CONFLICT);
        assert_eq!(
            create_approval(&broker, &hooks, "s", &h, br#"{"id":"a1"}"#).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            create_approval(&broker, &hooks, "s", &h, br#"{"payload":1,"timeoutMs":0}"#).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            create_approval(&broker, &hooks, "s", &h, br#"{"id":"a b","payload":1}"#).status(),
            StatusCode::BAD_REQUEST
        );

        let res = approval_status(&broker, &hooks, "s", "a1", &h, "waitMs=1").await;
        assert_eq!(body_json(&res)["status"], "pending");

        let (b2, h2) = (broker.clone(), hooks.clone());
        let poll = tokio::spawn(async move {
            approval_status(&b2, &h2, "s", "a1", &HeaderMap::new(), "waitMs=5000").await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let res = decide(
            &broker,
            &hooks,
            "s",
            "a1",
            &h,
            br#"{"approved":false,"reason":"no"}"#,
        );
        assert_eq!(res.status(), StatusCode::OK);
        let res = poll.await.unwrap();
        assert_eq!(body_json(&res)["status"], "rejected");
        assert_eq!(body_json(&res)["reason"], "no");
        let again = decide(&broker, &hooks, "s", "a1", &h, br#"{"approved":true}"#);
        assert_eq!(again.status(), StatusCode::CONFLICT);
        assert_eq!(body_json(&again)["error"], "already_decided");
        assert_eq!(
            decide(&broker, &hooks, "s", "a1", &h, b"{}").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            decide(&broker, &hooks, "s", "zz", &h, br#"{"approved":true}"#).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            approval_status(&broker, &hooks, "s", "zz", &h, "waitMs=0")
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            approval_status(&broker, &hooks, "s", "a1", &h, "waitMs=x")
                .await
                .status(),
            StatusCode::BAD_REQUEST
        );

        let res = create_approval(&broker, &hooks, "s", &h, br#"{"payload":1,"timeoutMs":30}"#);
        let id = body_json(&res)["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            decide(&broker, &hooks, "s", &id, &h, br#"{"approved":true}"#).status(),
            StatusCode::GONE
        );

        let res = create_approval(&broker, &hooks, "s", &h, br#"{"id":"c","payload":1}"#);
        assert_eq!(res.status(), StatusCode::CREATED);
        let res = cancel_approval(&broker, &hooks, "s", "c", &h);
        assert_eq!(body_json(&res)["status"], "cancelled");
        assert_eq!(
            cancel_approval(&broker, &hooks, "s", "c", &h).status(),
            StatusCode::CONFLICT
        );
    }

    #[tokio::test]
    async fn reject_policy_and_supersede_grace() {
        let broker = Broker::builder()
            .connection_policy(ConnectionPolicy::Reject)
            .start();
        let hooks = Hooks::new();
        let h = HeaderMap::new();
        let first = subscribe(&broker, &hooks, "s", &h, "");
        assert_eq!(first.status(), StatusCode::OK);
        let second = subscribe(&broker, &hooks, "s", &h, "");
        assert_eq!(second.status(), StatusCode::CONFLICT);
        assert_eq!(body_json(&second)["error"], "conflict");

        let broker = Broker::builder().start();
        let a = subscribe(&broker, &hooks, "s", &h, "clientId=a");
        let _b = subscribe(&broker, &hooks, "s", &h, "clientId=b");
        drop(a);
        let again = subscribe(&broker, &hooks, "s", &h, "clientId=a");
        assert_eq!(again.status(), StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn bad_ids() {
        let broker = Broker::builder().start();
        let hooks = Hooks::new();
        let long = "1".repeat(129);
        let res = subscribe(&broker, &hooks, "s", &hdr(&[("last-event-id", &long)]), "");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_json(&res)["error"], "invalid_last_event_id");
        let res = subscribe(&broker, &hooks, &long, &HeaderMap::new(), "");
        assert_eq!(body_json(&res)["error"], "invalid_session_id");
        // Well-formed but foreign: a stream that opens with a resync.
        let res = subscribe(
            &broker,
            &hooks,
            "s",
            &HeaderMap::new(),
            "lastEventId=msg_17",
        );
        assert_eq!(res.status(), StatusCode::OK);
        let t = text(res, 1).await;
        assert!(
            t.contains("tether.resync") && t.contains("\"unknown\""),
            "{t}"
        );
    }

    #[tokio::test]
    async fn draining_answers() {
        let broker = Broker::builder().start();
        let hooks = Hooks::new();
        let live = subscribe(&broker, &hooks, "s", &HeaderMap::new(), "");
        broker.drain(Duration::from_secs(4));
        let t = text(live, 2).await;
        assert!(t.contains("tether.drain"), "{t}");

        let es = hdr(&[("accept", "text/event-stream")]);
        let res = subscribe(&broker, &hooks, "s", &es, "");
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

        let res = subscribe(&broker, &hooks, "s", &HeaderMap::new(), "");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key(RETRY_AFTER));
        let res = publish(&broker, &hooks, "s", &HeaderMap::new(), "", b"{}");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let res = health(&broker);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body_json(&res)["draining"], true);
    }

    #[tokio::test]
    async fn health_json() {
        let broker = Broker::builder().start();
        let res = health(&broker);
        assert_eq!(res.status(), StatusCode::OK);
        let v = body_json(&res);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["connections"], 0);
        assert!(v["backplane"].is_null());
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

    #[test]
    fn accel_buffering_can_be_left_out() {
        let h = sse_headers(&Hooks::new().accel_buffering_header(false));
        assert!(h.get("x-accel-buffering").is_none());
    }
}
