//! The checks of who may subscribe, publish and decide: missing, foreign, expired and
//! too-narrow tokens, other identities' sessions and tabs, cross-site decisions.

use std::time::Duration;

use tether_core::auth::{Claims, mint_hs256};

use super::{Ctx, bearer, error_code, unix_now, with};
use crate::client::{SseConn, StreamOptions, Target};
use crate::{CheckError, CheckResult, ensure};

/// No credentials: the stream (GET and HEAD), publishing and deciding answer 401
/// `unauthorized` with `WWW-Authenticate: Bearer`.
pub(super) async fn no_token(ctx: &Ctx<'_>) -> CheckResult {
    let session = ctx.session("alice", "anon");
    let stream = ctx.stream_path(&session, "");
    for (method, path, body) in [
        ("GET", stream.clone(), &b""[..]),
        ("HEAD", stream, &b""[..]),
        (
            "POST",
            format!("/api/sessions/{session}/events"),
            br#"{"n":1}"#,
        ),
        (
            "POST",
            format!("/api/sessions/{session}/approvals/a/decision"),
            br#"{"approved":true}"#,
        ),
    ] {
        let reply = ctx.send(method, &path, &[], body).await?;
        ensure!(
            reply.status == 401,
            "{method} {path} without a token answered {} {}",
            reply.status,
            reply.text()
        );
        ensure!(
            reply.header("www-authenticate") == Some("Bearer"),
            "{method} {path}: 401 without `WWW-Authenticate: Bearer`: {:?}",
            reply.headers
        );
        if method != "HEAD" {
            ensure!(
                error_code(&reply) == "unauthorized",
                "{method} {path}: {}",
                reply.text()
            );
        }
    }
    Ok(())
}

/// A token signed with another key is 401 `invalid_token` with
/// `Bearer error="invalid_token"`.
pub(super) async fn token_of_another_key(ctx: &Ctx<'_>) -> CheckResult {
    let claims = Claims::expiring_in(Duration::from_secs(3600))
        .subject("alice")
        .subscribe("*")
        .publish("*");
    let forged = mint_hs256(b"another-secret-that-is-32-bytes-long!", &claims);
    let session = ctx.session("alice", "forged");
    let reply = ctx
        .get(&ctx.stream_path(&session, ""), &bearer(&forged))
        .await?;
    ensure!(
        reply.status == 401 && error_code(&reply) == "invalid_token",
        "a forged token answered {} {}",
        reply.status,
        reply.text()
    );
    ensure!(
        reply.header("www-authenticate") == Some(r#"Bearer error="invalid_token""#),
        "challenge {:?}",
        reply.header("www-authenticate")
    );
    let status = ctx.publish(&session, bearer(&forged)).await?;
    ensure!(
        status == 401,
        "publishing with a forged token answered {status}"
    );
    Ok(())
}

/// A token expired past the leeway is 401 `invalid_token`.
pub(super) async fn expired_token(ctx: &Ctx<'_>) -> CheckResult {
    let expired = mint_hs256(
        ctx.cfg.secret.as_bytes(),
        &Claims::new(unix_now() - 120)
            .subject("alice")
            .subscribe("*"),
    );
    let session = ctx.session("alice", "expired");
    let reply = ctx
        .get(&ctx.stream_path(&session, ""), &bearer(&expired))
        .await?;
    ensure!(
        reply.status == 401 && error_code(&reply) == "invalid_token",
        "an expired token answered {} {}",
        reply.status,
        reply.text()
    );
    Ok(())
}

/// A valid token without a claim for the session is 403 `forbidden` and creates no
/// session; the same token opens its own session, also as the `token` query parameter.
pub(super) async fn token_for_another_session(ctx: &Ctx<'_>) -> CheckResult {
    let bob = ctx.cfg.subscriber("bob", "bob:*");
    let before = ctx.sessions().await?;
    let alices = ctx.session("alice", "private");
    let reply = ctx
        .get(&ctx.stream_path(&alices, ""), &bearer(&bob))
        .await?;
    ensure!(
        reply.status == 403 && error_code(&reply) == "forbidden",
        "bob's token on alice's session answered {} {}",
        reply.status,
        reply.text()
    );
    ensure!(
        ctx.sessions().await? == before,
        "a refused subscribe created a session"
    );
    let own = ctx.session("bob", "own");
    let conn = ctx
        .open(&ctx.stream_path(&own, &format!("?token={bob}")), Vec::new())
        .await?;
    ensure!(
        conn.status() == 200,
        "bob's own session with the token as a query parameter answered {}",
        conn.status()
    );
    Ok(())
}

/// Publishing takes a publish claim or the static token: none is 401, a subscribe-only
/// token 403 (for approvals too), a publish claim or the static token 202.
pub(super) async fn publish_without_a_publish_claim(ctx: &Ctx<'_>) -> CheckResult {
    let session = ctx.session("alice", "writes");
    let reader = ctx.cfg.subscriber("alice", "alice:*");
    let writer = mint_hs256(
        ctx.cfg.secret.as_bytes(),
        &Claims::expiring_in(Duration::from_secs(600)).publish("alice:*"),
    );
    for (who, headers, expected) in [
        ("nobody", Vec::new(), 401),
        ("a subscriber", bearer(&reader), 403),
        ("a publish claim", bearer(&writer), 202),
        ("the static token", ctx.publisher(), 202),
    ] {
        let status = ctx.publish(&session, headers).await?;
        ensure!(
            status == expected,
            "{who} publishing: {status}, expected {expected}"
        );
    }
    let path = format!("/api/sessions/{session}/approvals");
    let body = br#"{"id":"a1","payload":{}}"#;
    let status = ctx
        .send("POST", &path, &bearer(&reader), body)
        .await?
        .status;
    ensure!(status == 403, "a subscriber creating an approval: {status}");
    Ok(())
}

/// An uptime check's HEAD and an anonymous GET with the owner's `clientId` leave the owner's
/// stream open and receiving; HEAD answers 200 with the SSE headers and no body.
pub(super) async fn head_and_unauthorized_get_leave_the_owner_alone(ctx: &Ctx<'_>) -> CheckResult {
    let alice = ctx.cfg.subscriber("alice", "alice:*");
    let session = ctx.session("alice", "owned");
    let path = ctx.stream_path(&session, "?clientId=tab-1");
    let mut owner = ctx.open(&path, bearer(&alice)).await?;
    ensure!(
        owner.status() == 200,
        "the owner's stream: {}",
        owner.status()
    );
    let head = ctx.send("HEAD", &path, &bearer(&alice), b"").await?;
    ensure!(
        head.status == 200
            && head.header("content-type") == Some("text/event-stream")
            && head.body.is_empty(),
        "HEAD answered {} {:?} with {} body bytes",
        head.status,
        head.header("content-type"),
        head.body.len()
    );
    let anonymous = ctx.get(&path, &[]).await?;
    ensure!(
        anonymous.status == 401,
        "anonymous GET: {}",
        anonymous.status
    );
    let status = ctx.publish(&session, ctx.publisher()).await?;
    ensure!(status == 202, "publish: {status}");
    let frame = owner.next_event(ctx.cfg.timeout).await?;
    ensure!(
        frame.data.as_deref() == Some(r#"{"n":1}"#),
        "the owner's stream got {frame:?} instead of the event: it was superseded"
    );
    Ok(())
}

/// Fifty anonymous subscribes to fifty names create no session.
pub(super) async fn anonymous_subscribes_create_no_session(ctx: &Ctx<'_>) -> CheckResult {
    let before = ctx.sessions().await?;
    for i in 0..50 {
        let path = ctx.stream_path(&ctx.session("squat", &i.to_string()), "");
        let status = ctx.get(&path, &[]).await?.status;
        ensure!(status == 401, "anonymous subscribe {i}: {status}");
    }
    let after = ctx.sessions().await?;
    ensure!(after == before, "sessions went from {before} to {after}");
    Ok(())
}

/// A cross-site `<form enctype="text/plain">` decision is 415 and the same JSON from a
/// foreign `Origin` 403 `origin_not_allowed`, a body with unknown fields 400, and the
/// approval stays pending; the page's own origin then decides.
pub(super) async fn cross_site_decisions(ctx: &Ctx<'_>) -> CheckResult {
    let alice = ctx.cfg.subscriber("alice", "alice:*");
    let session = ctx.session("alice", "decide");
    let created = ctx
        .send(
            "POST",
            &format!("/api/sessions/{session}/approvals"),
            &ctx.publisher(),
            br#"{"id":"deploy-1","payload":{}}"#,
        )
        .await?;
    ensure!(
        created.status == 201,
        "creating the approval: {}",
        created.text()
    );
    let decision = format!("/api/sessions/{session}/approvals/deploy-1/decision");
    let cookie = ("Cookie".to_owned(), format!("tether_token={alice}"));
    let form = vec![
        ("Content-Type".to_owned(), "text/plain".to_owned()),
        cookie.clone(),
    ];
    let reply = ctx
        .send("POST", &decision, &form, br#"{"approved":true,"x":"="}"#)
        .await?;
    ensure!(
        reply.status == 415,
        "a text/plain decision: {} {}",
        reply.status,
        reply.text()
    );
    let foreign = with(vec![cookie], "Origin", "https://evil.example");
    let reply = ctx
        .send("POST", &decision, &foreign, br#"{"approved":true}"#)
        .await?;
    ensure!(
        reply.status == 403 && error_code(&reply) == "origin_not_allowed",
        "a foreign origin's decision: {} {}",
        reply.status,
        reply.text()
    );
    let reply = ctx
        .send(
            "POST",
            &decision,
            &bearer(&alice),
            br#"{"approved":true,"extra":1}"#,
        )
        .await?;
    ensure!(
        reply.status == 400,
        "unknown fields: {} {}",
        reply.status,
        reply.text()
    );
    let status_path = format!("/api/sessions/{session}/approvals/deploy-1?waitMs=0");
    let status = ctx.get(&status_path, &bearer(&alice)).await?.json()?;
    ensure!(
        status["status"] == "pending",
        "after the refusals: {status}"
    );
    let own = with(bearer(&alice), "Origin", &ctx.origin);
    let reply = ctx
        .send("POST", &decision, &own, br#"{"approved":true}"#)
        .await?;
    ensure!(
        reply.status == 200,
        "the page's own origin deciding: {} {}",
        reply.status,
        reply.text()
    );
    Ok(())
}

/// A stream opened with a token that expires in 3 s ends soon after, with a closing
/// `retry:`, so an expired or revoked token does not read forever.
pub(super) async fn stream_ends_at_token_exp(ctx: &Ctx<'_>) -> CheckResult {
    let short = mint_hs256(
        ctx.cfg.secret.as_bytes(),
        &Claims::new(unix_now() + 3)
            .subject("alice")
            .subscribe("alice:*"),
    );
    let session = ctx.session("alice", "expiring");
    let mut conn = ctx
        .open(&ctx.stream_path(&session, ""), bearer(&short))
        .await?;
    ensure!(conn.status() == 200, "subscribe: {}", conn.status());
    let frames = conn.until_end(Duration::from_secs(20)).await?;
    let retries = frames.iter().filter(|f| f.retry.is_some()).count();
    ensure!(
        retries >= 2,
        "the stream should open and close with `retry:`: {frames:?}"
    );
    Ok(())
}

/// Stream `tab-a`, supersede it with `tab-b`: `tab-a` coming back under the same identity
/// gets 204 (stop), under another identity a stream.
pub(super) async fn superseded_tab_of_another_identity(ctx: &Ctx<'_>) -> CheckResult {
    let alice = ctx.cfg.subscriber("alice", "alice:*");
    let session = ctx.session("alice", "tabs");
    let _a = ctx
        .open(
            &ctx.stream_path(&session, "?clientId=tab-a"),
            bearer(&alice),
        )
        .await?;
    let b = ctx
        .open(
            &ctx.stream_path(&session, "?clientId=tab-b"),
            bearer(&alice),
        )
        .await?;
    ensure!(b.status() == 200, "tab-b: {}", b.status());
    let again = ctx
        .open(
            &ctx.stream_path(&session, "?clientId=tab-a"),
            bearer(&alice),
        )
        .await?;
    ensure!(
        again.status() == 204,
        "the superseded tab of the same identity: {}",
        again.status()
    );
    let eve = ctx.cfg.subscriber("eve", "alice:*");
    let other = ctx
        .open(&ctx.stream_path(&session, "?clientId=tab-a"), bearer(&eve))
        .await?;
    ensure!(
        other.status() == 200,
        "another identity with the superseded clientId got {} (a 204 would stop it for good)",
        other.status()
    );
    Ok(())
}

/// One identity creates at most `max_sessions_per_subject` sessions by connecting; the
/// next is 429 `too_many_sessions_for_subject`.
pub(super) async fn sessions_capped_per_identity(ctx: &Ctx<'_>) -> CheckResult {
    let sub = format!("capped-{}", ctx.run);
    let token = ctx.cfg.subscriber(&sub, "*");
    let mut held = Vec::new();
    for i in 0..ctx.cfg.max_sessions_per_subject {
        let path = ctx.stream_path(&ctx.session("cap", &i.to_string()), "");
        let conn = ctx.open(&path, bearer(&token)).await?;
        ensure!(conn.status() == 200, "session {i}: {}", conn.status());
        held.push(conn);
    }
    let path = ctx.stream_path(&ctx.session("cap", "over"), "");
    let reply = ctx.get(&path, &bearer(&token)).await?;
    ensure!(
        reply.status == 429 && error_code(&reply) == "too_many_sessions_for_subject",
        "one session over the cap: {} {}",
        reply.status,
        reply.text()
    );
    Ok(())
}

/// Under the Reject policy, the same identity and `clientId` replace their own stream after
/// a network blip; another tab, or another identity with the same `clientId`, is 409.
pub(super) async fn reject_policy_blip(ctx: &Ctx<'_>) -> CheckResult {
    let Some(base) = &ctx.cfg.reject_base_url else {
        return Err(CheckError::Skip(
            "no Reject-policy server configured".into(),
        ));
    };
    let target = Target::parse(base)?;
    let open = |token: String, query: &'static str, session: String| {
        let target = target.clone();
        async move {
            let path = format!("/api/sse/session/{session}?{query}");
            SseConn::open(
                &target,
                &path,
                StreamOptions {
                    headers: bearer(&token),
                    recv_buffer: None,
                },
            )
            .await
        }
    };
    let alice = ctx.cfg.subscriber("alice", "alice:*");
    let session = ctx.session("alice", "reject");
    // Every connection stays open: to the server, the first one is still alive.
    let first = open(alice.clone(), "clientId=tab-1", session.clone()).await?;
    ensure!(first.status() == 200, "first: {}", first.status());
    let back = open(alice.clone(), "clientId=tab-1", session.clone()).await?;
    ensure!(
        back.status() == 200,
        "the same identity and tab after a blip: {}",
        back.status()
    );
    let other_tab = open(alice, "clientId=tab-2", session.clone()).await?;
    ensure!(
        other_tab.status() == 409,
        "another tab: {}",
        other_tab.status()
    );
    let mallory = ctx.cfg.subscriber("mallory", "alice:*");
    let squat = open(mallory, "clientId=tab-1", session).await?;
    ensure!(
        squat.status() == 409,
        "another identity with the same clientId: {}",
        squat.status()
    );
    drop((first, back));
    Ok(())
}
