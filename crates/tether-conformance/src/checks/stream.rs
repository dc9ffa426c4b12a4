//! Checks of the event stream: headers, `retry:`, delivery, resume, resync, supersede,
//! heartbeats and stalled clients.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::client::{SseConn, StreamOptions, Target};
use crate::sse::Block;
use crate::{CheckError, CheckResult, Ctx, SuiteConfig, ensure};

/// The stream's headers: 200, `Content-Type: text/event-stream`, `Cache-Control: no-cache,
/// no-transform`, `X-Accel-Buffering: no`.
pub async fn headers(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let conn = ctx.subscribe(&ctx.session("headers"), &[], "").await?;
    let ct = conn.header("content-type").unwrap_or("");
    ensure!(
        ct.starts_with("text/event-stream"),
        "content-type is {ct:?}"
    );
    let cc = conn.header("cache-control").unwrap_or("");
    ensure!(
        cc.contains("no-cache") && cc.contains("no-transform"),
        "cache-control is {cc:?}"
    );
    ensure!(
        conn.header("x-accel-buffering") == Some("no"),
        "x-accel-buffering is {:?}",
        conn.header("x-accel-buffering")
    );
    Ok(())
}

/// Every stream opens with a `retry:` line in the configured range, jittered (not every
/// connection gets the same value).
pub async fn retry_line(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let mut seen = Vec::new();
    for i in 0..6 {
        let mut conn = ctx
            .subscribe(&ctx.session(&format!("retry{i}")), &[], "")
            .await?;
        let first = conn
            .next(cfg.timeout)
            .await?
            .ok_or_else(|| CheckError::fail("stream ended at once"))?;
        ensure!(
            conn.first_bytes().starts_with(b"retry: "),
            "the body starts with {:?}",
            String::from_utf8_lossy(conn.first_bytes())
        );
        let retry = first
            .retry
            .ok_or_else(|| CheckError::fail(format!("first block has no retry: {first:?}")))?;
        ensure!(
            cfg.retry_ms.contains(&retry),
            "retry: {retry} outside {:?}",
            cfg.retry_ms
        );
        seen.push(retry);
    }
    seen.sort_unstable();
    seen.dedup();
    ensure!(
        seen.len() > 1,
        "six streams all got retry: {} (no jitter)",
        seen[0]
    );
    Ok(())
}

fn same_json(frame: &Block, expected: &serde_json::Value) -> bool {
    frame.json().as_ref() == Some(expected)
}

/// A published event arrives on the session's stream with its id; a batch with `?event=NAME`
/// arrives in order with that name.
pub async fn publish_receive(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("publish");
    let mut conn = ctx.subscribe(&s, &[], "").await?;
    let one = json!({"type": "note", "text": "hello"});
    let ids = ctx.publish(&s, "", &one).await?;
    ensure!(ids.len() == 1, "one event got ids {ids:?}");
    let f = conn.next_event(cfg.timeout).await?;
    ensure!(
        f.id.as_deref() == Some(ids[0].as_str()) && same_json(&f, &one),
        "expected {one} as {}, got {f:?}",
        ids[0]
    );
    ensure!(
        f.event.is_none(),
        "an event published without a name arrived as {:?}",
        f.event
    );

    let batch = json!([{"k": 1}, {"k": 2}, {"k": 3}]);
    let ids = ctx.publish(&s, "?event=progress", &batch).await?;
    ensure!(ids.len() == 3, "three events got ids {ids:?}");
    for (i, id) in ids.iter().enumerate() {
        let f = conn.next_event(cfg.timeout).await?;
        ensure!(
            f.id.as_deref() == Some(id.as_str()),
            "event {i}: expected id {id}, got {f:?}"
        );
        ensure!(
            f.event.as_deref() == Some("progress"),
            "event {i}: expected event: progress, got {f:?}"
        );
        ensure!(
            same_json(&f, &batch[i]),
            "event {i}: expected {}, got {f:?}",
            batch[i]
        );
    }
    Ok(())
}

async fn resume(base_url: &str, cfg: &SuiteConfig, via_query: bool) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session(if via_query { "resume-q" } else { "resume-h" });
    let first = ctx.publish_n(&s, 3).await?;
    let mut conn = ctx.subscribe(&s, &[], "").await?;
    for id in &first {
        let f = conn.next_event(cfg.timeout).await?;
        ensure!(
            f.id.as_deref() == Some(id.as_str()),
            "first connection: expected {id}, got {f:?}"
        );
    }
    drop(conn);
    let more = ctx.publish_n(&s, 2).await?;
    let last = first[2].as_str();
    let mut conn = if via_query {
        ctx.subscribe(&s, &[], &format!("?lastEventId={last}"))
            .await?
    } else {
        ctx.subscribe(&s, &[("Last-Event-ID", last)], "").await?
    };
    for id in &more {
        let f = conn.next_event(cfg.timeout).await?;
        ensure!(f.signal().is_none(), "an exact resume got a signal: {f:?}");
        ensure!(
            f.id.as_deref() == Some(id.as_str()),
            "resumed after {last}: expected {id}, got {f:?}"
        );
    }
    match conn.next_event(Duration::from_millis(600)).await {
        Err(CheckError::Timeout) => Ok(()),
        Ok(f) => Err(CheckError::fail(format!(
            "unexpected event after the resume: {f:?}"
        ))),
        Err(e) => Err(e),
    }
}

/// `Last-Event-ID` (header) resumes exactly after the event: nothing repeated, nothing lost.
pub async fn resume_header(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    resume(base_url, cfg, false).await
}

/// The `lastEventId` query parameter resumes like the header (for polyfills).
pub async fn resume_query(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    resume(base_url, cfg, true).await
}

/// Connects with `last` and expects a resync with `reason` as the first event; returns the
/// connection and the resync's value.
async fn expect_resync(
    ctx: &Ctx<'_>,
    s: &str,
    last: &str,
    reason: &str,
) -> Result<(SseConn, serde_json::Value), CheckError> {
    let mut conn = ctx.subscribe(s, &[("Last-Event-ID", last)], "").await?;
    let f = conn.next_event(ctx.cfg.timeout).await?;
    ensure!(
        f.signal().as_deref() == Some("tether.resync"),
        "Last-Event-ID {last}: expected a tether.resync first, got {f:?}"
    );
    let v = f.signal_value().unwrap_or_default();
    ensure!(
        v["reason"] == reason,
        "expected resync reason {reason:?}, got {v}"
    );
    ensure!(
        v["lastEventId"] == last,
        "the resync names lastEventId {} instead of {last}",
        v["lastEventId"]
    );
    ensure!(f.id.is_none(), "the resync signal carries an id: {f:?}");
    Ok((conn, v))
}

fn split_id(id: &str) -> Result<(&str, u64), CheckError> {
    id.split_once('-')
        .and_then(|(e, s)| Some((e, s.parse().ok()?)))
        .ok_or_else(|| CheckError::fail(format!("event id {id:?} is not <epoch>-<seq>")))
}

/// An id whose events were evicted gets `tether.resync` (reason `evicted`), then the oldest
/// retained events in order.
pub async fn resync_evicted(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("evicted");
    let ids = ctx.publish_n(&s, cfg.ring_events + 4).await?;
    let (mut conn, v) = expect_resync(&ctx, &s, &ids[0], "evicted").await?;
    let retained = &ids[ids.len() - cfg.ring_events..];
    ensure!(
        v["resumeFrom"] == retained[0].as_str(),
        "resumeFrom {} instead of {}",
        v["resumeFrom"],
        retained[0]
    );
    for id in retained {
        let f = conn.next_event(cfg.timeout).await?;
        ensure!(
            f.id.as_deref() == Some(id.as_str()),
            "after the resync: expected {id}, got {f:?}"
        );
    }
    Ok(())
}

/// An id of another epoch (a restarted server) gets a resync with reason `epoch`.
pub async fn resync_epoch(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("epoch");
    let ids = ctx.publish_n(&s, 2).await?;
    let (epoch, seq) = split_id(&ids[1])?;
    let other = if epoch == "1" { "2" } else { "1" };
    let (mut conn, _) = expect_resync(&ctx, &s, &format!("{other}-{seq}"), "epoch").await?;
    let f = conn.next_event(cfg.timeout).await?;
    ensure!(
        f.id.as_deref() == Some(ids[0].as_str()),
        "after an epoch resync without snapshot the stream continues from the oldest event; got {f:?}"
    );
    Ok(())
}

/// An id ahead of anything published gets a resync with reason `ahead`.
pub async fn resync_ahead(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("ahead");
    let ids = ctx.publish_n(&s, 2).await?;
    let (epoch, seq) = split_id(&ids[1])?;
    expect_resync(&ctx, &s, &format!("{epoch}-{}", seq + 1000), "ahead").await?;
    Ok(())
}

/// A well-formed id tether did not issue (`msg_17`) gets 200 and a resync with reason
/// `unknown`, not a 400: EventSource would never reconnect after an error.
pub async fn resync_foreign(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("foreign");
    ctx.publish_n(&s, 1).await?;
    expect_resync(&ctx, &s, "msg_17", "unknown").await?;
    Ok(())
}

/// Ids breaking the grammar are a 400 with the contract's JSON error: a session id of 129
/// characters or with a space (`a%20b`), a `Last-Event-ID` of 129 characters or with a space
/// (header and query).
pub async fn bad_ids(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let mut h = ctx.browser();
    h.push(("Accept".into(), "text/event-stream".into()));
    let long_session = format!("{}:{}", cfg.user, "x".repeat(129));
    for path in [
        format!("/api/sse/session/{long_session}"),
        "/api/sse/session/a%20b".to_owned(),
    ] {
        ctx.send("GET", &path, &h, b"")
            .await?
            .expect_error(400, Some("invalid_session_id"))
            .map_err(|e| CheckError::fail(format!("{path}: {e}")))?;
    }
    let s = ctx.session("badids");
    let path = format!("/api/sse/session/{s}");
    let long_id = "1".repeat(129);
    for bad in [long_id.as_str(), "a b"] {
        let mut hh = h.clone();
        hh.push(("Last-Event-ID".into(), bad.into()));
        ctx.send("GET", &path, &hh, b"")
            .await?
            .expect_error(400, Some("invalid_last_event_id"))
            .map_err(|e| CheckError::fail(format!("Last-Event-ID {bad:?}: {e}")))?;
    }
    for q in [
        format!("?lastEventId={long_id}"),
        "?lastEventId=a%20b".to_owned(),
    ] {
        ctx.send("GET", &format!("{path}{q}"), &h, b"")
            .await?
            .expect_error(400, Some("invalid_last_event_id"))
            .map_err(|e| CheckError::fail(format!("{q}: {e}")))?;
    }
    let publish = format!("/api/sessions/{}/events", "a%20b");
    ctx.send("POST", &publish, &ctx.publisher(), b"{}")
        .await?
        .expect_error(400, Some("invalid_session_id"))?;
    Ok(())
}

/// A second connection to a session supersedes the first: the old stream gets
/// `tether.superseded`, a long `retry:`, and ends; the superseded client instance
/// (`clientId`) coming back at once gets 204; the new stream keeps receiving.
pub async fn supersede(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let s = ctx.session("supersede");
    let mut a = ctx.subscribe(&s, &[], "?clientId=tab-a").await?;
    a.next(cfg.timeout).await?;
    let mut b = ctx.subscribe(&s, &[], "?clientId=tab-b").await?;
    let frames = a.until_end(cfg.timeout).await?;
    let signal = frames
        .iter()
        .find(|f| f.signal().as_deref() == Some("tether.superseded"));
    ensure!(
        signal.is_some(),
        "the superseded stream ended without tether.superseded: {frames:?}"
    );
    let retry = frames.iter().filter_map(|f| f.retry).next_back();
    ensure!(
        retry == Some(cfg.backoff_max_ms),
        "the superseded stream's last retry: is {retry:?}, expected {}",
        cfg.backoff_max_ms
    );

    let again = ctx.subscribe_any(&s, &[], "?clientId=tab-a").await?;
    ensure!(
        again.status() == 204,
        "the superseded instance coming back got {} instead of 204",
        again.status()
    );

    let ids = ctx.publish(&s, "", &json!({"after": "supersede"})).await?;
    let f = b.next_event(cfg.timeout).await?;
    ensure!(
        f.id.as_deref() == Some(ids[0].as_str()),
        "the new stream missed the event: {f:?}"
    );
    Ok(())
}

/// Under the Reject policy (a second server, [`SuiteConfig::reject_base_url`]), a second
/// connection gets 409 with the JSON error; once the first client is gone, a new one gets in.
pub async fn reject_policy(_base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let Some(url) = &cfg.reject_base_url else {
        return Err(CheckError::Skip(
            "no Reject-policy server configured (reject_base_url)".into(),
        ));
    };
    let ctx = Ctx::new(url, cfg)?;
    let s = ctx.session("reject");
    let mut first = ctx.subscribe(&s, &[], "").await?;
    first.next(cfg.timeout).await?;
    let mut h = ctx.browser();
    h.push(("Accept".into(), "text/event-stream".into()));
    let path = format!("/api/sse/session/{s}");
    ctx.send("GET", &path, &h, b"")
        .await?
        .expect_error(409, Some("conflict"))?;
    drop(first);
    // The server notices the closed socket at its next write (a heartbeat at the latest).
    let deadline = Instant::now() + cfg.keepalive * 3 + cfg.timeout;
    loop {
        let conn = ctx.subscribe_any(&s, &[], "").await?;
        if conn.status() == 200 {
            return Ok(());
        }
        ensure!(
            conn.status() == 409,
            "expected 409 or 200, got {}",
            conn.status()
        );
        ensure!(
            Instant::now() < deadline,
            "the session stayed taken after its client left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An idle stream writes a heartbeat comment every keepalive interval.
pub async fn heartbeats(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let mut conn = ctx.subscribe(&ctx.session("heartbeat"), &[], "").await?;
    conn.next(cfg.timeout).await?;
    let opened = Instant::now();
    let mut beats = Vec::new();
    while beats.len() < 3 {
        let (at, f) = conn
            .next_timed(cfg.keepalive * 3 + Duration::from_secs(2))
            .await
            .map_err(|e| CheckError::fail(format!("no heartbeat within 3 intervals: {e}")))?
            .ok_or_else(|| CheckError::fail("the stream ended"))?;
        ensure!(!f.is_event() && f.id.is_none(), "an idle stream sent {f:?}");
        if !f.comments.is_empty() {
            beats.push(at);
        }
    }
    let first = beats[0] - opened;
    ensure!(
        first <= cfg.keepalive * 2 + Duration::from_millis(500),
        "first heartbeat after {first:?}"
    );
    for w in beats.windows(2) {
        let gap = w[1] - w[0];
        ensure!(
            gap >= cfg.keepalive / 2 && gap <= cfg.keepalive * 2 + Duration::from_millis(500),
            "heartbeats {gap:?} apart, interval {:?}",
            cfg.keepalive
        );
    }
    Ok(())
}

/// A client that stops reading is dropped within the client timeout once the socket buffers
/// are full: `/health/sse` shows no connection, `/metrics` (when the server has it) counts a
/// `timeout` disconnect, and the session takes a new one.
pub async fn slow_reader(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    ctx.wait_no_connections(cfg.keepalive * 3 + cfg.timeout)
        .await?;
    let s = ctx.session("stalled");
    let timeouts_before = timeouts(&ctx).await?;
    let mut headers = ctx.browser();
    headers.push(("Accept".into(), "text/event-stream".into()));
    let target = Target::parse(base_url)?;
    let mut stalled = SseConn::open(
        &target,
        &format!("/api/sse/session/{s}"),
        StreamOptions {
            headers,
            recv_buffer: Some(4096),
        },
    )
    .await?;
    ensure!(
        stalled.status() == 200,
        "subscribe answered {}",
        stalled.status()
    );
    stalled.next(cfg.timeout).await?;
    // From here on the client reads nothing.
    publish_until_the_stalled_client_is_gone(&ctx, &s).await?;
    // Whichever part noticed (the broker's sweep, the kernel's TCP_USER_TIMEOUT, the server
    // dropping the body), a stalled client is a timeout, not a client that left.
    if let (Some(before), Some(after)) = (timeouts_before, timeouts(&ctx).await?) {
        let counted = after - before >= 1.0;
        ensure!(
            counted,
            "the stalled client was not counted as sse_disconnects_total{{reason=\"timeout\"}} ({before} before, {after} after)"
        );
    }
    let mut fresh = ctx.subscribe(&s, &[], "").await?;
    let ids = ctx.publish(&s, "", &json!({"after": "stall"})).await?;
    loop {
        let f = fresh.next_event(cfg.timeout).await?;
        if f.id.as_deref() == Some(ids[0].as_str()) {
            break;
        }
    }
    drop(stalled);
    Ok(())
}

/// Publishes 60 KiB events to the session a client stopped reading until the server lets
/// that client go (or 256 were sent), then waits for it to go within the client timeout.
async fn publish_until_the_stalled_client_is_gone(ctx: &Ctx<'_>, s: &str) -> CheckResult {
    let cfg = ctx.cfg;
    let pad = "x".repeat(60 * 1024);
    let body = json!({ "pad": pad }).to_string();
    let started = Instant::now();
    let mut published = 0;
    let gone = loop {
        for _ in 0..16 {
            ctx.publish_raw(s, "", body.as_bytes())
                .await?
                .expect_json(202)?;
            published += 1;
        }
        let (_, h) = ctx.health().await?;
        if h["connections"] == 0 {
            break true;
        }
        if published >= 256 {
            break false;
        }
    };
    let limit = cfg.client_timeout + cfg.keepalive + Duration::from_secs(10);
    if !gone {
        let deadline = Instant::now() + limit;
        loop {
            let (_, h) = ctx.health().await?;
            if h["connections"] == 0 {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "a client that stopped reading was still connected {:?} after {published} events of 60 KiB: {h}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// `sse_disconnects_total{reason="timeout"}` from `/metrics`, when the server has it (the
/// sum over [`SuiteConfig::nodes`](crate::SuiteConfig::nodes), when there are nodes).
async fn timeouts(ctx: &Ctx<'_>) -> Result<Option<f64>, CheckError> {
    if !ctx.cfg.metrics {
        return Ok(None);
    }
    let mut total = 0.0;
    for t in &ctx.count_targets()? {
        let r = crate::client::send(t, "GET", "/metrics", &[], b"", ctx.cfg.timeout).await?;
        ensure!(r.status == 200, "/metrics answered {}", r.status);
        total += crate::prom::sample(&r.text(), "sse_disconnects_total", &[("reason", "timeout")])
            .unwrap_or(0.0);
    }
    Ok(Some(total))
}
