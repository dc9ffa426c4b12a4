//! Checks of the request/response routes: publish errors, limits, approvals, hooks.

use serde_json::json;

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
    if cfg.publish_token.is_some() {
        publisher_token_required(&ctx, &s).await?;
    }
    if cfg.user_header.is_some() {
        authorizer_guards_the_session(&ctx, &s).await?;
    }
    Ok(())
}

fn json_content_type() -> Vec<(String, String)> {
    vec![("Content-Type".to_owned(), "application/json".to_owned())]
}

/// Publishing and creating approvals without the publisher's token, or with a wrong one,
/// is 401 with `WWW-Authenticate`.
async fn publisher_token_required(ctx: &Ctx<'_>, s: &str) -> CheckResult {
    let json_ct = json_content_type();
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
    Ok(())
}

/// The authorizer guards the stream, decisions and status reads: 401 without a user, 403
/// for another user, and the owner reads and decides.
async fn authorizer_guards_the_session(ctx: &Ctx<'_>, s: &str) -> CheckResult {
    let json_ct = json_content_type();
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
    Ok(())
}
