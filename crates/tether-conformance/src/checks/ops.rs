//! Checks for operations: health, metrics, drain.

use std::future::Future;
use std::time::Duration;

use serde_json::json;

use crate::client::SseConn;
use crate::sse::parse;

use crate::prom::{kind, sample};
use crate::{CheckError, CheckResult, Ctx, SuiteConfig, ensure};

/// `GET /health/sse`: 200 JSON with `status: "ok"`, `draining: false` and counts of sessions
/// and connections that see an open stream; `GET /health/live`: 200 `{"status":"alive"}`.
pub async fn health(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    let ctx = Ctx::new(base_url, cfg)?;
    let mut conn = ctx.subscribe(&ctx.session("health"), &[], "").await?;
    conn.next(cfg.timeout).await?;
    let r = ctx.send("GET", "/health/sse", &[], b"").await?;
    let v = r.expect_json(200)?;
    ensure!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "content-type {:?}",
        r.header("content-type")
    );
    ensure!(v["status"] == "ok" && v["draining"] == false, "health {v}");
    ensure!(
        v["sessions"].as_u64().is_some_and(|n| n >= 1),
        "sessions in {v}"
    );
    ensure!(
        v["connections"].as_u64().is_some_and(|n| n >= 1),
        "an open stream is not counted: {v}"
    );
    alive(&ctx, "").await
}

/// `GET /health/live` answers 200 `{"status":"alive"}` (`when` says in what state, for the
/// failure message): liveness, distinct from readiness.
async fn alive(ctx: &Ctx<'_>, when: &str) -> CheckResult {
    let r = ctx.send("GET", "/health/live", &[], b"").await?;
    let v = r
        .expect_json(200)
        .map_err(|e| CheckError::fail(format!("/health/live{when}: {e}")))?;
    ensure!(v["status"] == "alive", "/health/live{when}: {v}");
    Ok(())
}

async fn scrape(ctx: &Ctx<'_>) -> Result<String, CheckError> {
    let r = ctx.send("GET", "/metrics", &[], b"").await?;
    ensure!(r.status == 200, "/metrics answered {}", r.status);
    Ok(r.text())
}

/// `GET /metrics` carries the runbook's metrics with the right values after known traffic:
/// two connections (the second resuming with `Last-Event-ID` and superseding the first, then
/// closed by the client) and two events. Counts are compared before and after, so the check
/// needs a server nobody else uses meanwhile; [`run_all`](crate::run_all) runs it first.
pub async fn metrics(base_url: &str, cfg: &SuiteConfig) -> CheckResult {
    if !cfg.metrics {
        return Err(CheckError::Skip("the server has no /metrics".into()));
    }
    let ctx = Ctx::new(base_url, cfg)?;
    let settle = cfg.keepalive * 3 + cfg.timeout;
    ctx.wait_no_connections(settle).await?;
    let before = scrape(&ctx).await?;
    two_connections_one_superseded(&ctx).await?;
    ctx.wait_no_connections(settle).await?;
    let after = scrape(&ctx).await?;
    counters_grew_by_what_happened(&before, &after)?;
    shapes_of_the_export(&after)
}

/// Two events to a first client, a second client of the same session that supersedes it,
/// then both gone: one reconnect, one superseded and one closed disconnect, two connections
/// with a duration, two events published and delivered.
async fn two_connections_one_superseded(ctx: &Ctx<'_>) -> CheckResult {
    let cfg = ctx.cfg;
    let s = ctx.session("metrics");
    let mut first = ctx.subscribe(&s, &[], "").await?;
    let ids = ctx.publish_n(&s, 2).await?;
    for id in &ids {
        let f = first.next_event(cfg.timeout).await?;
        ensure!(
            f.id.as_deref() == Some(id.as_str()),
            "expected {id}, got {f:?}"
        );
    }
    let mut second = ctx.subscribe(&s, &[("Last-Event-ID", &ids[1])], "").await?;
    second.next(cfg.timeout).await?;
    first.until_end(cfg.timeout).await?;
    drop(second);
    Ok(())
}

/// The counters grew by what [`two_connections_one_superseded`] did, no more, no less.
fn counters_grew_by_what_happened(before: &str, after: &str) -> CheckResult {
    let get =
        |text: &str, name: &str, labels: &[(&str, &str)]| sample(text, name, labels).unwrap_or(0.0);
    let delta =
        |name: &str, labels: &[(&str, &str)]| get(after, name, labels) - get(before, name, labels);
    let expect = [
        ("sse_reconnects_total", vec![], 1.0),
        ("sse_disconnects_total", vec![("reason", "superseded")], 1.0),
        (
            "sse_disconnects_total",
            vec![("reason", "client_closed")],
            1.0,
        ),
        ("sse_connection_duration_seconds_count", vec![], 2.0),
        (
            "sse_connection_duration_seconds_bucket",
            vec![("le", "+Inf")],
            2.0,
        ),
        ("sse_events_published_total", vec![], 2.0),
        ("sse_events_delivered_total", vec![], 2.0),
    ];
    for (name, labels, want) in expect {
        let got = delta(name, &labels);
        ensure!(
            got == want,
            "{name}{labels:?} grew by {got}, expected {want}"
        );
    }
    Ok(())
}

/// No connection is counted active when none is, the duration is a histogram with the
/// core's buckets, and the session gauge is there.
fn shapes_of_the_export(after: &str) -> CheckResult {
    ensure!(
        sample(after, "sse_active_connections", &[]) == Some(0.0),
        "sse_active_connections is {:?} with no client connected",
        sample(after, "sse_active_connections", &[])
    );
    ensure!(
        kind(after, "sse_connection_duration_seconds") == Some("histogram"),
        "sse_connection_duration_seconds is exported as {:?}, not a histogram with buckets",
        kind(after, "sse_connection_duration_seconds")
    );
    ensure!(
        sample(
            after,
            "sse_connection_duration_seconds_bucket",
            &[("le", "1")]
        )
        .is_some(),
        "no le=\"1\" bucket of sse_connection_duration_seconds"
    );
    ensure!(
        sample(after, "sse_sessions_active", &[]).is_some_and(|n| n >= 1.0),
        "sse_sessions_active missing"
    );
    Ok(())
}

/// Drain, on a server of its own: `trigger` starts it (a signal to the process, or the
/// shutdown future of an in-process server). Open streams end with `tether.drain` and a
/// `retry:` within the drain window, spread (not all equal); during the window a new
/// event-stream request gets 200 with only a `retry:` and an immediate end, other requests
/// and publishes get 503 with `Retry-After`, `/health/sse` answers 503 and `/health/live`
/// 200.
pub async fn drain<F, Fut>(base_url: &str, cfg: &SuiteConfig, trigger: F) -> CheckResult
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let ctx = Ctx::new(base_url, cfg)?;
    let window_ms = cfg.drain_window.as_millis() as u64;
    let mut streams = Vec::new();
    for i in 0..4 {
        let mut c = ctx
            .subscribe(&ctx.session(&format!("drain{i}")), &[], "")
            .await?;
        c.next(cfg.timeout).await?;
        streams.push(c);
    }
    trigger().await;
    drained_streams_get_spread_retries(&mut streams, cfg.timeout, window_ms).await?;
    draining_refuses_new_work(&ctx, window_ms).await
}

/// Each open stream ends with `tether.drain` and a `retry:` within the window, and the
/// retries are spread, not one value for every client.
async fn drained_streams_get_spread_retries(
    streams: &mut [SseConn],
    limit: Duration,
    window_ms: u64,
) -> CheckResult {
    let mut retries = Vec::new();
    for c in streams {
        let frames = c.until_end(limit).await?;
        ensure!(
            frames
                .iter()
                .any(|f| f.signal().as_deref() == Some("tether.drain")),
            "a drained stream ended without tether.drain: {frames:?}"
        );
        let retry = frames
            .iter()
            .filter_map(|f| f.retry)
            .next_back()
            .ok_or_else(|| {
                CheckError::fail(format!("a drained stream ended without retry: {frames:?}"))
            })?;
        ensure!(
            retry <= window_ms,
            "drain retry: {retry} beyond the window of {window_ms} ms"
        );
        retries.push(retry);
    }
    ensure!(
        retries.iter().any(|r| *r != retries[0]),
        "every drained stream got retry: {} (not spread)",
        retries[0]
    );
    Ok(())
}

/// While draining, a new event-stream request gets 200 with only a `retry:` within the
/// window; plain requests, publishes and health answer 503 `draining` with `Retry-After`;
/// `/health/live` still answers 200.
async fn draining_refuses_new_work(ctx: &Ctx<'_>, window_ms: u64) -> CheckResult {
    let s = ctx.session("drain-new");
    let mut h = ctx.browser();
    h.push(("Accept".into(), "text/event-stream".into()));
    let path = format!("/api/sse/session/{s}");
    let r = ctx.send("GET", &path, &h, b"").await?;
    ensure!(
        r.status == 200,
        "an event-stream request while draining got {} {:?}",
        r.status,
        r.text()
    );
    ensure!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "content-type {:?}",
        r.header("content-type")
    );
    let blocks = parse(&r.body);
    let retry = match blocks.as_slice() {
        [only] if !only.is_event() => only.retry,
        _ => None,
    };
    ensure!(
        retry.is_some_and(|ms| ms <= window_ms),
        "the draining answer was {:?}",
        r.text()
    );

    let plain = ctx.send("GET", &path, &ctx.browser(), b"").await?;
    plain.expect_error(503, Some("draining"))?;
    ensure!(
        plain
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some(),
        "503 without a numeric Retry-After"
    );
    let p = ctx
        .publish_raw(&s, "", json!({"late": true}).to_string().as_bytes())
        .await?;
    p.expect_error(503, Some("draining"))?;
    ensure!(
        p.header("retry-after").is_some(),
        "publish 503 without Retry-After"
    );
    let (status, v) = ctx.health().await?;
    ensure!(
        status == 503 && v["draining"] == true,
        "health while draining: {status} {v}"
    );
    // A liveness probe that failed now would restart the process before its streams were
    // told where to go.
    alive(ctx, " while draining").await
}
