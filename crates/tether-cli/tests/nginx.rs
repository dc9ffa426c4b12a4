//! A real nginx in front of the hub, configured with `deploy/nginx.conf`: every event must
//! arrive before the next one is published, and resuming through the proxy must be exact.
//! A second configuration leaves nginx's buffering on and adds `gzip on; gzip_types
//! text/event-stream;` (the runbook's "events buffered" symptom): the hub's `X-Accel-Buffering:
//! no` keeps it streaming, and without that header the same check fails.
//!
//! Skipped, with a notice, when `nginx` is not installed; under `CI=true` that fails instead.

use std::net::SocketAddr;
use std::time::Duration;

use tether_conformance::client::{SseConn, StreamOptions, Target, send};
use tether_conformance::hub::Hub;
use tether_conformance::nginx::{self, Nginx};

const EXE: &str = env!("CARGO_BIN_EXE_tether");
const DEPLOY: &str = include_str!("../../../deploy/nginx.conf");
/// How long an event may take through the proxy before it counts as held back.
const PROMPT: Duration = Duration::from_secs(3);

/// The deploy config with the upstream pointed at `hub` and the listener on `port`.
fn deploy_server(hub: SocketAddr, port: u16) -> String {
    for needle in [
        "server 127.0.0.1:8080;",
        "listen 80;",
        "location /api/sse/ {",
    ] {
        assert!(DEPLOY.contains(needle), "deploy/nginx.conf lost {needle:?}");
    }
    DEPLOY
        .replace("server 127.0.0.1:8080;", &format!("server {hub};"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
}

/// The same, with the event-stream location reduced to nginx's defaults (buffering on) plus
/// gzip for event streams.
fn buffered_gzip_server(hub: SocketAddr, port: u16) -> String {
    let conf = deploy_server(hub, port);
    let start = conf.find("location /api/sse/ {").unwrap();
    let end = start + conf[start..].find('}').unwrap() + 1;
    let plain = "location /api/sse/ {\n        proxy_pass http://backend;\n        proxy_http_version 1.1;\n        proxy_set_header Connection '';\n        gzip on;\n        gzip_types text/event-stream;\n    }";
    format!("{}{plain}{}", &conf[..start], &conf[end..])
}

async fn publish(hub: &Target, session: &str, n: usize) -> String {
    let r = send(
        hub,
        "POST",
        &format!("/api/sessions/{session}/events"),
        &[("Content-Type".into(), "application/json".into())],
        format!("{{\"n\":{n}}}").as_bytes(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    r.json().unwrap()["ids"][0].as_str().unwrap().to_owned()
}

async fn open(proxy: Target, session: String, last: Option<String>) -> Result<SseConn, String> {
    let mut headers = vec![
        ("Accept".to_owned(), "text/event-stream".to_owned()),
        ("Accept-Encoding".to_owned(), "gzip".to_owned()),
    ];
    if let Some(id) = last {
        headers.push(("Last-Event-ID".to_owned(), id));
    }
    let conn = SseConn::open(
        &proxy,
        &format!("/api/sse/session/{session}"),
        StreamOptions {
            headers,
            recv_buffer: None,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    if conn.status() != 200 {
        return Err(format!(
            "subscribe through the proxy answered {}",
            conn.status()
        ));
    }
    Ok(conn)
}

/// Subscribes through the proxy, then publishes `n` events one by one to the hub; each must
/// come out of the proxy within [`PROMPT`] before the next is published (the first includes
/// the response head, which a buffering proxy holds back too). Returns the stream and the ids,
/// or which event was held back.
async fn one_by_one(
    proxy: &Target,
    hub: &Target,
    session: &str,
    n: usize,
    last: Option<&str>,
) -> Result<(SseConn, Vec<String>), String> {
    let mut opening = tokio::spawn(open(
        proxy.clone(),
        session.to_owned(),
        last.map(str::to_owned),
    ));
    let mut conn: Option<SseConn> = None;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = publish(hub, session, i).await;
        let deadline = tokio::time::Instant::now() + PROMPT;
        let held = |what: String| {
            format!("event {i} did not come through the proxy within {PROMPT:?}: {what}")
        };
        let c = match &mut conn {
            Some(c) => c,
            None => {
                let opened = tokio::time::timeout_at(deadline, &mut opening)
                    .await
                    .map_err(|_| held("not even the response head arrived".into()))?
                    .map_err(|e| e.to_string())??;
                conn.insert(opened)
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = c.next_event(left).await.map_err(|e| held(e.to_string()))?;
        if f.id.as_deref() != Some(id.as_str()) {
            return Err(format!("event {i}: expected {id}, got {f:?}"));
        }
        ids.push(id);
    }
    opening.abort();
    conn.map(|c| (c, ids))
        .ok_or_else(|| "no event was published".to_owned())
}

/// Events stream through one by one, and a resume through the proxy is exact.
async fn streams_through(proxy: &Target, hub: &Target, session: &str) -> Result<SseConn, String> {
    let (conn, ids) = one_by_one(proxy, hub, session, 5, None).await?;
    drop(conn);
    let (resumed, _) = one_by_one(proxy, hub, session, 2, Some(&ids[4])).await?;
    Ok(resumed)
}

macro_rules! require_nginx {
    () => {
        match nginx::require() {
            Some(b) => b,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbook_config_streams_every_event_and_resumes() {
    let binary = require_nginx!();
    let hub = Hub::spawn(EXE, &[]).await.unwrap();
    let nginx = Nginx::start(&binary, |port| deploy_server(hub.addr(), port));
    let proxy = Target::parse(&nginx.base_url()).unwrap();
    let direct = Target::parse(&hub.base_url()).unwrap();
    streams_through(&proxy, &direct, "nginx-runbook")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_config_streams_because_of_the_accel_header() {
    let binary = require_nginx!();
    let hub = Hub::spawn(EXE, &[]).await.unwrap();
    let nginx = Nginx::start(&binary, |port| buffered_gzip_server(hub.addr(), port));
    let proxy = Target::parse(&nginx.base_url()).unwrap();
    let direct = Target::parse(&hub.base_url()).unwrap();
    let conn = streams_through(&proxy, &direct, "nginx-gzip")
        .await
        .unwrap();
    assert_eq!(
        conn.header("content-encoding"),
        Some("gzip"),
        "the gzip configuration is not in effect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_config_holds_events_back_without_the_accel_header() {
    let binary = require_nginx!();
    let hub = Hub::spawn(EXE, &["--no-accel-buffering-header".to_owned()])
        .await
        .unwrap();
    let nginx = Nginx::start(&binary, |port| buffered_gzip_server(hub.addr(), port));
    let proxy = Target::parse(&nginx.base_url()).unwrap();
    let direct = Target::parse(&hub.base_url()).unwrap();
    let result = streams_through(&proxy, &direct, "nginx-held").await;
    let err = result.expect_err(
        "events came through a buffering proxy one by one: the check cannot tell buffering apart",
    );
    assert!(err.contains("did not come through the proxy"), "{err}");
}
