//! Checks of the request/response routes: publish errors, limits, approvals, hooks.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::{CheckError, CheckResult, Ctx, SuiteConfig, ensure};

/// Publish bodies that break the contract get 400 with the JSON error: invalid JSON, a body
/// that is neither an object nor an array, an array element that is not an object, an event
/// name with a line break.
pub async fn publish_errors(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("puberr");
    let cases: [(&str, &[u8], &str); 4] = [
        ("", b"{\"a\":", "invalid_json"),
        ("", b"42", "invalid_body"),
        ("", b"[{}, 1]", "invalid_event"),
        ("?event=a%0Ab", b"{}", "invalid_event_name"),
    ];
    for (query, body, code) in cases {
        ctx.publish_raw(&s, query, body)
            .await?
            .expect_error(400, Some(code))
            .map_err(|e| {
                CheckError::fail(format!(
                    "body {:?}{query}: {e}",
                    String::from_utf8_lossy(body)
                ))
            })?;
    }
    Ok(())
}

/// A publish with an `Idempotency-Key` happens once: the same publish again gets the first
/// 202 body (marked `Idempotency-Replayed: true`) and stores nothing, the key with other
/// events is 422 `idempotency_key_reused`, and a key that is empty, too long or not visible
/// ASCII is 400 `invalid_idempotency_key`.
pub async fn idempotent_publish(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("idem");
    let path = format!("/api/sessions/{s}/events");
    let with_key = |key: &str| {
        let mut h = ctx.publisher();
        h.push(("Idempotency-Key".into(), key.into()));
        h
    };
    let body = br#"[{"n":1},{"n":2}]"#;
    let first = ctx
        .send("POST", &path, &with_key("run-7/step-1"), body)
        .await?;
    let first_ids = first.expect_json(202)?;
    ensure!(
        first.header("idempotency-replayed").is_none(),
        "a first publish is marked replayed"
    );
    for attempt in 1..=2 {
        let again = ctx
            .send("POST", &path, &with_key("run-7/step-1"), body)
            .await?;
        let ids = again.expect_json(202)?;
        ensure!(
            ids == first_ids,
            "retry {attempt} answered {ids}, the first publish {first_ids}"
        );
        ensure!(
            again.header("idempotency-replayed") == Some("true"),
            "retry {attempt} is not marked Idempotency-Replayed: true: {:?}",
            again.headers
        );
    }
    ctx.send("POST", &path, &with_key("run-7/step-1"), br#"[{"n":3}]"#)
        .await?
        .expect_error(422, Some("idempotency_key_reused"))?;
    for bad in ["", "two words", &"k".repeat(129)] {
        ctx.send("POST", &path, &with_key(bad), br#"{"n":4}"#)
            .await?
            .expect_error(400, Some("invalid_idempotency_key"))
            .map_err(|e| CheckError::fail(format!("key {bad:?}: {e}")))?;
    }
    // Nothing was stored by the retries and refusals: the next event is the third.
    let ids = ctx.publish(&s, "", &json!({"n": 3})).await?;
    ensure!(
        ids.len() == 1 && ids[0].ends_with("-3"),
        "after one publish of two events and its retries, the next id is {ids:?}"
    );
    // The same key on another session is another publish.
    let other = format!("/api/sessions/{}/events", ctx.session("idem-other"));
    let reply = ctx
        .send("POST", &other, &with_key("run-7/step-1"), br#"{"n":1}"#)
        .await?;
    reply.expect_json(202)?;
    ensure!(
        reply.header("idempotency-replayed").is_none(),
        "a key is per session, but another session's publish was replayed"
    );
    Ok(())
}

/// An event over the maximum size is a 413 (`too_large`), and so is a body over the body
/// limit (`body_too_large`); nothing is stored.
pub async fn oversized(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("oversized");
    let big = json!({ "pad": "x".repeat(cfg.max_event_bytes + 1024) }).to_string();
    ctx.publish_raw(&s, "", big.as_bytes())
        .await?
        .expect_error(413, Some("too_large"))?;
    let event = json!({ "pad": "y".repeat(16 * 1024) }).to_string();
    let n = cfg.max_body_bytes / event.len() + 2;
    let body = format!("[{}]", vec![event.as_str(); n].join(","));
    ctx.publish_raw(&s, "", body.as_bytes())
        .await?
        .expect_error(413, Some("body_too_large"))?;
    let ids = ctx.publish(&s, "", &json!({"small": true})).await?;
    ensure!(
        ids.len() == 1 && ids[0].ends_with("-1"),
        "the refused events were stored: the next id is {ids:?}"
    );
    Ok(())
}

/// Approvals over HTTP: create (201; announced in the stream), duplicate id (409), long-poll
/// status (pending, then the decision as soon as it is made), decide (200), second decision
/// (409), decision after the deadline (410), unknown approval (404), cancel (200), bad bodies
/// (400).
pub async fn approvals(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("approvals");
    let base = format!("/api/sessions/{s}/approvals");
    let mut stream = ctx.subscribe(&s, &[], "").await?;

    let create = json!({"id": "deploy-1", "title": "Deploy?", "payload": {"env": "prod"}, "timeoutMs": 60000});
    let v = ctx
        .send(
            "POST",
            &base,
            &ctx.publisher(),
            create.to_string().as_bytes(),
        )
        .await?
        .expect_json(201)?;
    ensure!(v["id"] == "deploy-1", "201 body {v}");
    let f = stream.next_event(cfg.timeout).await?;
    ensure!(
        f.signal().as_deref() == Some("tether.approval.requested"),
        "expected tether.approval.requested in the stream, got {f:?}"
    );
    let announced = f.signal_value().unwrap_or_default();
    ensure!(
        announced["id"] == "deploy-1"
            && announced["payload"]["env"] == "prod"
            && announced["title"] == "Deploy?",
        "announcement {announced}"
    );

    ctx.send(
        "POST",
        &base,
        &ctx.publisher(),
        create.to_string().as_bytes(),
    )
    .await?
    .expect_error(409, Some("duplicate_approval"))?;

    let status_path = format!("{base}/deploy-1");
    let started = Instant::now();
    let v = ctx
        .send(
            "GET",
            &format!("{status_path}?waitMs=300"),
            &ctx.publisher(),
            b"",
        )
        .await?
        .expect_json(200)?;
    ensure!(v["status"] == "pending", "status {v}");
    ensure!(
        started.elapsed() >= Duration::from_millis(250),
        "a long-poll of 300 ms answered after {:?}",
        started.elapsed()
    );

    let poll = {
        let target = ctx.target.clone();
        let headers = ctx.publisher();
        let path = format!("{status_path}?waitMs=20000");
        tokio::spawn(async move {
            let started = Instant::now();
            let r = crate::client::send(
                &target,
                "GET",
                &path,
                &headers,
                b"",
                Duration::from_secs(30),
            )
            .await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let decision = format!("{status_path}/decision");
    let v = ctx
        .send(
            "POST",
            &decision,
            &ctx.browser(),
            br#"{"approved":true,"reason":"looks good"}"#,
        )
        .await?
        .expect_json(200)?;
    ensure!(v["status"] == "approved", "decision answered {v}");
    let (r, waited) = poll
        .await
        .map_err(|e| CheckError::fail(format!("long-poll task: {e}")))?;
    let v = r?.expect_json(200)?;
    ensure!(
        v["status"] == "approved" && v["reason"] == "looks good",
        "long-poll returned {v}"
    );
    ensure!(
        waited < Duration::from_secs(10),
        "the long-poll returned {waited:?} after it started, not at the decision"
    );

    ctx.send("POST", &decision, &ctx.browser(), br#"{"approved":false}"#)
        .await?
        .expect_error(409, Some("already_decided"))?;
    let f = stream.next_event(cfg.timeout).await?;
    ensure!(
        f.signal().as_deref() == Some("tether.approval.resolved"),
        "expected tether.approval.resolved, got {f:?}"
    );
    ensure!(
        f.signal_value().unwrap_or_default()["outcome"] == "approved",
        "resolved {f:?}"
    );

    let v = ctx
        .send(
            "POST",
            &base,
            &ctx.publisher(),
            br#"{"payload":{"q":"quick?"},"timeoutMs":300}"#,
        )
        .await?
        .expect_json(201)?;
    let short = v["id"]
        .as_str()
        .ok_or_else(|| CheckError::fail(format!("201 body {v}")))?
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let late = format!("{base}/{short}/decision");
    ctx.send("POST", &late, &ctx.browser(), br#"{"approved":true}"#)
        .await?
        .expect_error(410, Some("expired"))?;
    let v = ctx
        .send(
            "GET",
            &format!("{base}/{short}?waitMs=0"),
            &ctx.publisher(),
            b"",
        )
        .await?
        .expect_json(200)?;
    ensure!(
        v["status"] == "timed_out",
        "after the deadline the status is {v}"
    );

    ctx.send(
        "GET",
        &format!("{base}/nope?waitMs=0"),
        &ctx.publisher(),
        b"",
    )
    .await?
    .expect_error(404, Some("unknown_approval"))?;
    ctx.send(
        "POST",
        &format!("{base}/nope/decision"),
        &ctx.browser(),
        br#"{"approved":true}"#,
    )
    .await?
    .expect_error(404, Some("unknown_approval"))?;

    ctx.send(
        "POST",
        &base,
        &ctx.publisher(),
        br#"{"id":"c1","payload":1}"#,
    )
    .await?
    .expect_json(201)?;
    let v = ctx
        .send("DELETE", &format!("{base}/c1"), &ctx.publisher(), b"")
        .await?
        .expect_json(200)?;
    ensure!(v["status"] == "cancelled", "DELETE answered {v}");
    ctx.send(
        "POST",
        &format!("{base}/c1/decision"),
        &ctx.browser(),
        br#"{"approved":true}"#,
    )
    .await?
    .expect_error(409, Some("already_decided"))?;

    ctx.send(
        "POST",
        &base,
        &ctx.publisher(),
        br#"{"title":"no payload"}"#,
    )
    .await?
    .expect_error(400, None)?;
    ctx.send("POST", &base, &ctx.publisher(), br#"{"payload":"#)
        .await?
        .expect_error(400, Some("invalid_json"))?;
    ctx.send(
        "POST",
        &decision,
        &ctx.browser(),
        br#"{"reason":"no verdict"}"#,
    )
    .await?
    .expect_error(400, None)?;
    Ok(())
}

/// The hooks: publishing without or with a wrong token is 401 (with `WWW-Authenticate`); the
/// subscribe, decision and status routes refuse a request without a user (401) and another
/// user's session (403).
pub async fn auth(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    if cfg.publish_token.is_none() && cfg.user_header.is_none() {
        return Err(CheckError::Skip(
            "neither a publish token nor an authorizer is configured".into(),
        ));
    }
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("auth");
    let json_ct = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if cfg.publish_token.is_some() {
        let events = format!("/api/sessions/{s}/events");
        let r = ctx.send("POST", &events, &json_ct, b"{}").await?;
        r.expect_error(401, Some("unauthorized"))?;
        ensure!(
            r.header("www-authenticate").is_some(),
            "401 without WWW-Authenticate"
        );
        let mut wrong = json_ct.clone();
        wrong.push(("Authorization".into(), "Bearer not-the-token".into()));
        ctx.send("POST", &events, &wrong, b"{}")
            .await?
            .expect_error(401, Some("unauthorized"))?;
        let approvals = format!("/api/sessions/{s}/approvals");
        ctx.send("POST", &approvals, &json_ct, br#"{"payload":1}"#)
            .await?
            .expect_error(401, Some("unauthorized"))?;
    }
    if cfg.user_header.is_some() {
        let stream = format!("/api/sse/session/{s}");
        let accept = ("Accept".to_owned(), "text/event-stream".to_owned());
        ctx.send("GET", &stream, std::slice::from_ref(&accept), b"")
            .await?
            .expect_error(401, Some("unauthorized"))?;
        let mut mallory = ctx.browser_as("mallory");
        mallory.push(accept);
        ctx.send("GET", &stream, &mallory, b"")
            .await?
            .expect_error(403, Some("forbidden"))?;

        let create = format!("/api/sessions/{s}/approvals");
        ctx.send(
            "POST",
            &create,
            &ctx.publisher(),
            br#"{"id":"a1","payload":1}"#,
        )
        .await?
        .expect_json(201)?;
        let decision = format!("/api/sessions/{s}/approvals/a1/decision");
        ctx.send("POST", &decision, &json_ct, br#"{"approved":true}"#)
            .await?
            .expect_error(401, Some("unauthorized"))?;
        ctx.send(
            "POST",
            &decision,
            &ctx.browser_as("mallory"),
            br#"{"approved":true}"#,
        )
        .await?
        .expect_error(403, Some("forbidden"))?;
        let status = format!("/api/sessions/{s}/approvals/a1?waitMs=0");
        ctx.send("GET", &status, &[], b"")
            .await?
            .expect_error(401, Some("unauthorized"))?;
        ctx.send("GET", &status, &ctx.browser_as("mallory"), b"")
            .await?
            .expect_error(403, Some("forbidden"))?;
        let v = ctx
            .send("GET", &status, &ctx.browser(), b"")
            .await?
            .expect_json(200)?;
        ensure!(
            v["status"] == "pending",
            "the owner's status read answered {v}"
        );
        let v = ctx
            .send("POST", &decision, &ctx.browser(), br#"{"approved":false}"#)
            .await?
            .expect_json(200)?;
        ensure!(
            v["status"] == "rejected",
            "the owner's decision answered {v}"
        );
    }
    Ok(())
}
