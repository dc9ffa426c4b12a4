//! The routes' answers, checked through the whole service: admission, then the handler.

use std::time::Duration;

use futures_util::StreamExt;
use http::header::{CACHE_CONTROL, HeaderName, RETRY_AFTER, WWW_AUTHENTICATE};

use super::*;
use crate::ConnectionPolicy;
use crate::approval::ApprovalRequest;
use crate::backplane::BackplaneError;
use crate::broker::ConnectOptions;
use crate::http::{Service, SessionOwnerHeader};
use crate::id::SessionId;
use crate::session::Event;

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

async fn post(svc: &Service, uri: &str, headers: &[(&'static str, &str)], body: &[u8]) -> Response {
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
    let svc = open(Broker::builder().start().expect("valid config"));
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
    let broker = Broker::builder()
        .max_event_bytes(64)
        .start()
        .expect("valid config");
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
        Broker::builder().start().expect("valid config"),
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
        Broker::builder().start().expect("valid config"),
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
    let broker = Broker::builder().start().expect("valid config");
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
async fn approvals_are_created_once_with_valid_bodies() {
    let svc = open(Broker::builder().start().expect("valid config"));
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
}

#[tokio::test]
async fn an_approval_is_decided_once_and_a_long_poll_sees_it() {
    let svc = open(Broker::builder().start().expect("valid config"));
    let create = "/api/sessions/s/approvals";
    let res = post(&svc, create, &[], br#"{"id":"a1","payload":null}"#).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let svc2 = svc.clone();
    let poll =
        tokio::spawn(
            async move { get(&svc2, "/api/sessions/s/approvals/a1?waitMs=5000", &[]).await },
        );
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
}

#[tokio::test]
async fn an_expired_approval_is_gone_and_a_cancelled_one_stays_cancelled() {
    let svc = open(Broker::builder().start().expect("valid config"));
    let create = "/api/sessions/s/approvals";
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
            .start()
            .expect("valid config"),
    );
    let first = get(&svc, "/api/sse/session/s", &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = get(&svc, "/api/sse/session/s", &[]).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(body_json(&second)["error"], "conflict");

    let svc = open(Broker::builder().start().expect("valid config"));
    let a = get(&svc, "/api/sse/session/s?clientId=a", &[]).await;
    let _b = get(&svc, "/api/sse/session/s?clientId=b", &[]).await;
    drop(a);
    let again = get(&svc, "/api/sse/session/s?clientId=a", &[]).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_ids() {
    let svc = open(Broker::builder().start().expect("valid config"));
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
    let broker = Broker::builder().start().expect("valid config");
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
    let broker = Broker::builder().start().expect("valid config");
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
    let svc = open(Broker::builder().start().expect("valid config"));
    let res = get(&svc, "/health/sse", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v = body_json(&res);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["connections"], 0);
    assert!(v["backplane"].is_null());
}

#[tokio::test]
async fn metrics_only_where_mounted() {
    let svc = open(Broker::builder().start().expect("valid config"));
    assert_eq!(get(&svc, "/metrics", &[]).await.status(), 404);
    let svc = svc.metrics(|| "up 1\n".to_owned());
    let res = get(&svc, "/metrics", &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.body().as_full().unwrap(), "up 1\n");
}

#[tokio::test]
async fn routing_errors_are_json() {
    let svc = open(Broker::builder().start().expect("valid config"));
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
    let broker = Broker::builder().start().expect("valid config");
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
    approval_calls: std::sync::atomic::AtomicUsize,
    connects: parking_lot::Mutex<Vec<ConnectOptions>>,
}

impl FakeBackplane {
    fn new(broker: Broker) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            broker,
            up: true.into(),
            publishes: 0.into(),
            approval_calls: 0.into(),
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

    fn publish_once<'a>(
        &'a self,
        session: &'a SessionId,
        key: &'a crate::idempotency::IdempotencyKey,
        events: Vec<Event>,
    ) -> crate::BoxFuture<'a, Result<crate::idempotency::Published, BackplaneError>> {
        Box::pin(async move {
            if !self.is_up() {
                return Err(BackplaneError::Unavailable("test: down".into()));
            }
            Ok(self.broker.publish_batch_once(session, key, &events)?)
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

    fn request_approval<'a>(
        &'a self,
        session: &'a SessionId,
        req: ApprovalRequest,
    ) -> crate::BoxFuture<'a, Result<crate::ApprovalInfo, BackplaneError>> {
        Box::pin(async move {
            self.approval_calls
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !self.is_up() {
                return Err(BackplaneError::Unavailable("test: down".into()));
            }
            let handle = self.broker.request_approval(session, req)?;
            Ok(self
                .broker
                .approval(session, handle.id())
                .expect("just created"))
        })
    }

    fn resolve_approval<'a>(
        &'a self,
        session: &'a SessionId,
        approval_id: &'a str,
        status: crate::ApprovalStatus,
    ) -> crate::BoxFuture<'a, Result<crate::ApprovalInfo, BackplaneError>> {
        Box::pin(async move {
            self.approval_calls
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !self.is_up() {
                return Err(BackplaneError::Unavailable("test: down".into()));
            }
            Ok(self.broker.resolve_approval(session, approval_id, status)?)
        })
    }

    fn approval<'a>(
        &'a self,
        session: &'a SessionId,
        approval_id: &'a str,
        wait: Duration,
    ) -> crate::BoxFuture<'a, Result<Option<crate::ApprovalInfo>, BackplaneError>> {
        Box::pin(async move {
            self.approval_calls
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !self.is_up() {
                return Err(BackplaneError::Unavailable("test: down".into()));
            }
            Ok(self.broker.wait_approval(session, approval_id, wait).await)
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
    let broker = Broker::builder().start().expect("valid config");
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
async fn a_backplane_that_is_down_answers_503_and_a_stream_comes_back_later() {
    let broker = Broker::builder().start().expect("valid config");
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
    // The stream route never answers a non-200 (EventSource would stop for good): a
    // `retry:` and an immediate end.
    let res = get(&svc, "/api/sse/session/s", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
    assert_eq!(res.headers()[CONNECTION], "close");
    let body = String::from_utf8_lossy(res.body().as_full().expect("a full body"));
    assert!(body.starts_with("retry: "), "{body}");
    let res = get(&svc, "/health/sse", &[]).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key(RETRY_AFTER));
    let v = body_json(&res);
    assert_eq!(v["status"], "backplane_down");
    assert_eq!(v["backplane"]["status"], "down");
}

#[tokio::test]
async fn a_backplane_keeps_the_draining_answers() {
    let broker = Broker::builder().start().expect("valid config");
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

/// With a backplane every approval route goes through it (after the credential checks), and
/// answers 503 `backplane_unavailable` while it is down.
#[tokio::test]
async fn approvals_go_through_the_backplane() {
    let broker = Broker::builder().start().expect("valid config");
    let bp = FakeBackplane::new(broker.clone());
    let svc = Service::new(broker, Hooks::allow_all().publish_token("tok")).backplane(bp.clone());
    let calls = || bp.approval_calls.load(std::sync::atomic::Ordering::SeqCst);
    let create = "/api/sessions/s/approvals";
    let res = post(&svc, create, &[], br#"{"id":"a1","payload":1}"#).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "credentials first");
    assert_eq!(calls(), 0);
    let ok = [("authorization", "Bearer tok")];
    let res = post(&svc, create, &ok, br#"{"id":"a1","payload":1}"#).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(body_json(&res)["id"], "a1");
    assert!(body_json(&res)["expiresAt"].is_string());
    let res = get(&svc, "/api/sessions/s/approvals/a1?waitMs=0", &ok).await;
    assert_eq!(body_json(&res)["status"], "pending");
    let decision = "/api/sessions/s/approvals/a1/decision";
    let res = post(&svc, decision, &[], br#"{"approved":false,"reason":"no"}"#).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_json(&res)["status"], "rejected");
    assert_eq!(body_json(&res)["reason"], "no");
    let res = call(&svc, "DELETE", "/api/sessions/s/approvals/a1", &ok, b"").await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(calls(), 4);

    bp.set_up(false);
    let res = post(&svc, create, &ok, br#"{"payload":1}"#).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_json(&res)["error"], "backplane_unavailable");
    let res = post(&svc, decision, &[], br#"{"approved":true}"#).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_json(&res)["error"], "backplane_unavailable");
    let res = get(&svc, "/api/sessions/s/approvals/a1?waitMs=0", &ok).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let res = call(&svc, "DELETE", "/api/sessions/s/approvals/a1", &ok, b"").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn accel_buffering_can_be_left_out() {
    let h = sse_headers(&Hooks::allow_all().accel_buffering_header(false));
    assert!(h.get("x-accel-buffering").is_none());
}
