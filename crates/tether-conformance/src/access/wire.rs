//! The checks of what arrives before the credentials are known: ambiguous request framing
//! and bodies a server must not read for a request it refuses.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::Ctx;
use crate::client;
use crate::{CheckError, CheckResult, ensure};

/// Sends raw bytes on a fresh connection; returns the status code of the answer.
async fn raw_status(ctx: &Ctx<'_>, request: &[u8]) -> Result<u16, CheckError> {
    client::raw_status(&ctx.target, request, ctx.cfg.timeout).await
}

/// Two different `Content-Length`s (a smuggled request) and `Content-Length: +7` are 400, an
/// HTTP/1.1 request without `Host` is 400. Two identical values may be taken as one (the hub
/// and hyper do) or refused (actix-web does); RFC 9112 allows both.
pub(super) async fn smuggled_content_length(ctx: &Ctx<'_>) -> CheckResult {
    let session = ctx.session("alice", "framing");
    let token = &ctx.cfg.publish_token;
    let request = |lengths: &str| {
        format!(
            "POST /api/sessions/{session}/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{lengths}Connection: close\r\n\r\n{{\"n\":1}}",
            ctx.origin.trim_start_matches("http://")
        )
    };
    for (what, lengths, expected) in [
        (
            "two different lengths",
            "Content-Length: 7\r\nContent-Length: 9\r\n",
            400,
        ),
        ("a signed length", "Content-Length: +7\r\n", 400),
    ] {
        let status = raw_status(ctx, request(lengths).as_bytes()).await?;
        ensure!(status == expected, "{what}: {status}, expected {expected}");
    }
    let identical = "Content-Length: 7\r\nContent-Length: 7\r\n";
    let status = raw_status(ctx, request(identical).as_bytes()).await?;
    ensure!(
        status == 202 || status == 400,
        "two identical lengths: {status}, expected 202 (one length) or 400"
    );
    let status = raw_status(
        ctx,
        b"GET /health/sse HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await?;
    ensure!(status == 400, "HTTP/1.1 without Host: {status}");
    Ok(())
}

/// Resident memory of `pid` in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Connections that announce a body.
const HELD_BODIES: usize = 256;
/// The body each announces and tries to send.
const BODY: usize = 1024 * 1024;
/// The server's memory may grow by this much while they are held (384 KiB a connection):
/// reading the bodies before the token check would hold `HELD_BODIES * BODY` (256 MiB). A
/// server may read a bounded amount ahead of its handler: actix-web reads up to 128 KiB of
/// a connection into its buffer, and discards what a refused request sent; hyper reads none.
const HELD_BODIES_RSS_BOUND: u64 = 96 * 1024 * 1024;

/// Heads without credentials that announce 1 MiB and then send it are answered 401 before
/// the body is read, the connection closes, and (when the server's pid is known) the
/// server's memory stays within 96 MiB of where it was for 256 of them.
pub(super) async fn unauthenticated_bodies_are_not_read(ctx: &Ctx<'_>) -> CheckResult {
    let io = |e: std::io::Error| CheckError::fail(format!("held body: {e}"));
    let before = ctx.cfg.server_pid.and_then(rss_bytes);
    let session = ctx.session("alice", "bodies");
    let head = format!(
        "POST /api/sessions/{session}/events HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n",
        ctx.origin.trim_start_matches("http://")
    );
    let filler = vec![b' '; BODY];
    let mut held = Vec::with_capacity(HELD_BODIES);
    for _ in 0..HELD_BODIES {
        let s = TcpStream::connect(ctx.target.addr()).await.map_err(io)?;
        s.try_write(head.as_bytes()).map_err(io)?;
        held.push((s, 0usize));
    }
    // Three rounds of whatever the sockets take without waiting: a server that reads bodies
    // before it checks the token drains them into its memory between the rounds.
    for _ in 0..3 {
        for (s, sent) in &mut held {
            while *sent < BODY {
                match s.try_write(&filler[*sent..]) {
                    Ok(n) => *sent += n,
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = ctx.cfg.server_pid.and_then(rss_bytes);
    for (i, (s, _)) in held.iter_mut().enumerate() {
        let head = client::read_response_head(s, ctx.cfg.timeout)
            .await
            .map_err(|e| {
                CheckError::fail(format!("connection {i}: no answer before the body: {e}"))
            })?;
        ensure!(
            head.status == 401,
            "connection {i}: {} {:?}",
            head.status,
            head.headers
        );
        // The connection ends: the unread body is never parsed as a request.
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(ctx.cfg.timeout, s.read_to_end(&mut rest)).await;
        ensure!(ended.is_ok(), "connection {i} stays open after the 401");
    }
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        ensure!(
            grown <= HELD_BODIES_RSS_BOUND,
            "the server's memory grew by {} MiB while {HELD_BODIES} unauthenticated bodies were held",
            grown / (1024 * 1024)
        );
    }
    Ok(())
}
