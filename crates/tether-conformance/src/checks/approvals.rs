//! The approval routes: create, announce, long-poll, decide, expire, cancel.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::client::SseConn;
use crate::{CheckError, CheckResult, Ctx, SuiteConfig, ensure};

/// Approvals over HTTP: create (201; announced in the stream), duplicate id (409), long-poll
/// status (pending, then the decision as soon as it is made), decide (200), second decision
/// (409), decision after the deadline (410), unknown approval (404), cancel (200), bad bodies
/// (400).
pub async fn approvals(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("approvals");
    let base = format!("/api/sessions/{s}/approvals");
    let mut stream = ctx.subscribe(&s, &[], "").await?;
    created_and_announced(&ctx, &mut stream, &base).await?;
    long_poll_and_decision(&ctx, &mut stream, &base).await?;
    expiry(&ctx, &base).await?;
    unknown_and_cancelled(&ctx, &base).await?;
    bad_bodies(&ctx, &base).await
}

/// `deploy-1` is created (201) and announced in the stream; creating it again is 409.
async fn created_and_announced(ctx: &Ctx<'_>, stream: &mut SseConn, base: &str) -> CheckResult {
    let create = json!({"id": "deploy-1", "title": "Deploy?", "payload": {"env": "prod"}, "timeoutMs": 60000});
    let v = ctx
        .send(
            "POST",
            base,
            &ctx.publisher(),
            create.to_string().as_bytes(),
        )
        .await?
        .expect_json(201)?;
    ensure!(v["id"] == "deploy-1", "201 body {v}");
    let f = stream.next_event(ctx.cfg.timeout).await?;
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
        base,
        &ctx.publisher(),
        create.to_string().as_bytes(),
    )
    .await?
    .expect_error(409, Some("duplicate_approval"))?;

    Ok(())
}

/// A long-poll of a pending approval waits its `waitMs`; one still waiting returns as soon as
/// the browser decides (200); a second decision is 409; the stream hears the resolution.
async fn long_poll_and_decision(ctx: &Ctx<'_>, stream: &mut SseConn, base: &str) -> CheckResult {
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
    let f = stream.next_event(ctx.cfg.timeout).await?;
    ensure!(
        f.signal().as_deref() == Some("tether.approval.resolved"),
        "expected tether.approval.resolved, got {f:?}"
    );
    ensure!(
        f.signal_value().unwrap_or_default()["outcome"] == "approved",
        "resolved {f:?}"
    );

    Ok(())
}

/// A decision after the deadline is 410 `expired`, and the status says `timed_out`.
async fn expiry(ctx: &Ctx<'_>, base: &str) -> CheckResult {
    let v = ctx
        .send(
            "POST",
            base,
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

    Ok(())
}

/// An unknown approval is 404 to a status read and to a decision; a cancelled one (DELETE,
/// 200) can no longer be decided (409).
async fn unknown_and_cancelled(ctx: &Ctx<'_>, base: &str) -> CheckResult {
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
        base,
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

    Ok(())
}

/// A request without a payload, invalid JSON and a decision without a verdict are 400.
async fn bad_bodies(ctx: &Ctx<'_>, base: &str) -> CheckResult {
    ctx.send("POST", base, &ctx.publisher(), br#"{"title":"no payload"}"#)
        .await?
        .expect_error(400, None)?;
    ctx.send("POST", base, &ctx.publisher(), br#"{"payload":"#)
        .await?
        .expect_error(400, Some("invalid_json"))?;
    ctx.send(
        "POST",
        &format!("{base}/deploy-1/decision"),
        &ctx.browser(),
        br#"{"reason":"no verdict"}"#,
    )
    .await?
    .expect_error(400, None)?;
    Ok(())
}
