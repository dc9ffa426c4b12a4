//! `tether probe` against servers that keep the contract and servers that break one part of
//! it: each broken part must show in its own row, and the exit code must follow.
//!
//! - the hub (`tether serve`): every row passes, exit 0;
//! - the load harness's naive baseline (axum + a broadcast channel, no history): the resume
//!   row fails;
//! - a hub without `X-Accel-Buffering: no` behind an nginx with `gzip on` for event streams:
//!   the buffering row fails (and passes behind the same nginx with the header);
//! - a hub whose heartbeat is off: the heartbeat row fails, and behind a proxy whose idle
//!   timeout is shorter than the silence, the drops row fails with the times of the cuts;
//! - a server that replays its whole history on every connect: the resume row fails with
//!   duplicates;
//! - nothing listening: exit 2.
//!
//! The nginx tests need `nginx` (or `/usr/sbin/nginx`); without it they print a notice and
//! return, except under `CI=true`, where they fail.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tether_conformance::hub::Hub;
use tether_conformance::nginx::{self, Nginx};

const EXE: &str = env!("CARGO_BIN_EXE_tether");

/// Runs `tether probe URL ARGS --json`; returns the exit code and the report.
async fn probe(url: &str, args: &[&str]) -> (i32, Value) {
    let run = tokio::process::Command::new(EXE)
        .arg("probe")
        .arg(url)
        .args(args)
        .arg("--json")
        .env_remove("TETHER_PROBE_TOKEN")
        .env_remove("TETHER_PROBE_PUBLISH_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the probe did not finish within 90 s")
        .expect("the probe ran");
    let code = out.status.code().expect("the probe exited");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the probe printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

/// The row `name` of a report.
fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no row {name:?} in {report:#}"))
}

fn status<'a>(report: &'a Value, name: &str) -> &'a str {
    row(report, name)["status"].as_str().unwrap_or_default()
}

/// Every row's status, for assertion messages.
fn summary(report: &Value) -> String {
    report["checks"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    format!(
                        "{} {}: {} (expected {})\n",
                        c["name"], c["status"], c["value"], c["expected"]
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn hub_args(extra: &[&str]) -> Vec<String> {
    ["--dev"]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_passes_every_check() {
    let hub = Hub::spawn(
        EXE,
        &hub_args(&["--keepalive-secs", "1", "--ring-events", "16"]),
    )
    .await
    .unwrap();
    let (code, report) = probe(
        &hub.base_url(),
        &[
            "--duration",
            "5",
            "--keepalive-secs",
            "1",
            "--publish-token",
            "anything",
            "--provoke-resync",
            "--ring-events",
            "16",
        ],
    )
    .await;
    let rows = summary(&report);
    assert_eq!(code, 0, "{rows}");
    assert_eq!(report["passed"], true, "{rows}");
    assert_eq!(report["url"], hub.base_url());
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["status"], "pass", "{rows}");
    }
    for name in [
        "health",
        "subscribe",
        "content-type",
        "cache-control",
        "x-accel-buffering",
        "retry",
        "heartbeat",
        "buffering",
        "drops",
        "resume",
        "resync",
    ] {
        row(&report, name);
    }
    assert!(
        row(&report, "resync")["value"]
            .as_str()
            .unwrap()
            .contains("after 17 events"),
        "ring + 1 events: {rows}"
    );
    assert!(
        report["session"].as_str().unwrap().starts_with("probe-"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resync_search_finds_the_ring_without_a_hint() {
    let hub = Hub::spawn(EXE, &hub_args(&["--ring-events", "8"]))
        .await
        .unwrap();
    let (code, report) = probe(
        &hub.base_url(),
        &[
            "--duration",
            "1",
            "--publish-token",
            "t",
            "--provoke-resync",
        ],
    )
    .await;
    let rows = summary(&report);
    assert_eq!(status(&report, "resync"), "pass", "{rows}");
    // Doubling from 1 after the anchor: 8 still resume exactly, 16 evict it.
    assert!(
        row(&report, "resync")["value"]
            .as_str()
            .unwrap()
            .contains("after 16 events"),
        "{rows}"
    );
    // One second is too short to judge a 15 s heartbeat: skipped, not failed.
    assert_eq!(status(&report, "heartbeat"), "skip", "{rows}");
    assert_eq!(code, 0, "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_publish_token_it_publishes_nothing_and_prints_a_table() {
    let hub = Hub::spawn(EXE, &hub_args(&["--keepalive-secs", "1"]))
        .await
        .unwrap();
    let (code, report) = probe(
        &hub.base_url(),
        &["--duration", "2", "--keepalive-secs", "1"],
    )
    .await;
    let rows = summary(&report);
    assert_eq!(code, 0, "{rows}");
    for name in ["buffering", "resume", "resync"] {
        assert_eq!(status(&report, name), "skip", "{rows}");
    }
    let out = Command::new(EXE)
        .args([
            "probe",
            &hub.base_url(),
            "--duration",
            "1",
            "--keepalive-secs",
            "1",
        ])
        .env_remove("TETHER_PROBE_PUBLISH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("tether probe http://"), "{table}");
    assert!(table.contains("CHECK"), "{table}");
    assert!(table.contains("\nheartbeat "), "{table}");
    assert!(table.contains("no check failed"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_publish_token_fails_the_rows_that_publish() {
    let hub = Hub::spawn(EXE, &hub_args(&["--publish-token", "right"]))
        .await
        .unwrap();
    let (code, report) = probe(
        &hub.base_url(),
        &["--duration", "2", "--publish-token", "wrong"],
    )
    .await;
    let rows = summary(&report);
    assert_eq!(code, 1, "{rows}");
    assert_eq!(status(&report, "buffering"), "fail", "{rows}");
    assert!(
        row(&report, "buffering")["value"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{rows}"
    );
    assert_eq!(status(&report, "resume"), "fail", "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_naive_baseline_fails_the_resume_row() {
    // The same server the load harness runs (its binary's main is these two calls), in
    // process: a test cannot name another package's binary.
    let listener = baseline_naive::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(baseline_naive::serve(
        listener,
        baseline_naive::AppState::default(),
    ));
    let (code, report) = probe(
        &format!("http://{addr}"),
        &[
            "--duration",
            "4",
            "--keepalive-secs",
            "1",
            "--publish-token",
            "t",
        ],
    )
    .await;
    server.abort();
    let rows = summary(&report);
    assert_eq!(code, 1, "{rows}");
    assert_eq!(report["passed"], false);
    assert_eq!(status(&report, "resume"), "fail", "{rows}");
    let resume = row(&report, "resume")["value"].as_str().unwrap();
    assert!(resume.contains("gap: 3 of 4 missing"), "{rows}");
    // What it does well shows too: it streams promptly and sends the headers.
    assert_eq!(status(&report, "buffering"), "pass", "{rows}");
    assert_eq!(status(&report, "content-type"), "pass", "{rows}");
    assert_eq!(status(&report, "x-accel-buffering"), "pass", "{rows}");
    // And what it lacks.
    assert_eq!(status(&report, "retry"), "fail", "{rows}");
    assert_eq!(status(&report, "health"), "fail", "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_without_heartbeats_fails_the_heartbeat_row() {
    let hub = Hub::spawn(EXE, &hub_args(&["--keepalive-secs", "0"]))
        .await
        .unwrap();
    // Limit 1 + 5 s; a silent 9 s hold must exceed it.
    let (code, report) = probe(
        &hub.base_url(),
        &["--duration", "9", "--keepalive-secs", "1"],
    )
    .await;
    let rows = summary(&report);
    assert_eq!(code, 1, "{rows}");
    assert_eq!(status(&report, "heartbeat"), "fail", "{rows}");
    for name in ["subscribe", "content-type", "retry", "drops", "health"] {
        assert_eq!(status(&report, name), "pass", "{rows}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_exit_code_2() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, report) = probe(&format!("http://127.0.0.1:{port}"), &["--duration", "1"]).await;
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["passed"], false);
    assert!(
        report["error"].as_str().unwrap().contains("cannot connect"),
        "{report}"
    );
    let (code, report) = probe("https://127.0.0.1:1", &["--duration", "1"]).await;
    assert_eq!(code, 2, "{report}");
}

/// A server with history that ignores `Last-Event-ID` and replays everything on every
/// connect (a body delimited by the close, a heartbeat every second): a resume gets
/// duplicates. It wants `Authorization: Bearer sub` on the stream and health routes and
/// `Bearer pub` on publishes, and answers 401 otherwise.
mod replay_all {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    type History = watch::Sender<Vec<String>>;

    pub(super) async fn start() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let history: Arc<History> = Arc::new(watch::channel(Vec::new()).0);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, Arc::clone(&history)));
            }
        });
        (addr, task)
    }

    async fn serve(mut tcp: TcpStream, history: Arc<History>) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let reply = |status: &str, body: String| {
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let bearer = |token: &str| head.contains(&format!("\r\nauthorization: bearer {token}\r\n"));
        if (path.starts_with("/api/sessions/") && !bearer("pub"))
            || ((path == "/health/sse" || path.starts_with("/api/sse/")) && !bearer("sub"))
        {
            let body = "{\"error\":\"unauthorized\"}".to_owned();
            let _ = tcp
                .write_all(reply("401 Unauthorized", body).as_bytes())
                .await;
        } else if path == "/health/sse" {
            let _ = tcp
                .write_all(reply("200 OK", "{\"status\":\"ok\"}".into()).as_bytes())
                .await;
        } else if path.starts_with("/api/sessions/") {
            let body: serde_json::Value =
                serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
            let events = match body {
                serde_json::Value::Array(a) => a,
                v => vec![v],
            };
            let mut ids = Vec::new();
            history.send_modify(|h| {
                for e in events {
                    h.push(e.to_string());
                    ids.push(h.len().to_string());
                }
            });
            let body = serde_json::json!({ "ids": ids }).to_string();
            let _ = tcp.write_all(reply("202 Accepted", body).as_bytes()).await;
        } else if path.starts_with("/api/sse/session/") {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                        X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 3000\n\n";
            if tcp.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut rx = history.subscribe();
            // Every connect starts from the first event, whatever Last-Event-ID says.
            let mut sent = 0;
            loop {
                let frames: String = {
                    let h = rx.borrow_and_update();
                    let out = h[sent..]
                        .iter()
                        .enumerate()
                        .map(|(i, e)| format!("id: {}\ndata: {e}\n\n", sent + i + 1))
                        .collect();
                    sent = h.len();
                    out
                };
                if !frames.is_empty() && tcp.write_all(frames.as_bytes()).await.is_err() {
                    return;
                }
                match tokio::time::timeout(Duration::from_secs(1), rx.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        if tcp.write_all(b": heartbeat\n\n").await.is_err() {
                            return;
                        }
                    }
                }
            }
        } else {
            let _ = tcp
                .write_all(reply("404 Not Found", "{}".into()).as_bytes())
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_replays_everything_fails_the_resume_row_with_duplicates() {
    let (addr, server) = replay_all::start().await;
    let url = format!("http://{addr}");
    let (code, report) = probe(
        &url,
        &[
            "--duration",
            "3",
            "--keepalive-secs",
            "1",
            "--token",
            "sub",
            "--publish-token",
            "pub",
        ],
    )
    .await;
    // The tokens the other way round: the stream is refused.
    let (swapped, refused) = probe(
        &url,
        &[
            "--duration",
            "1",
            "--token",
            "pub",
            "--publish-token",
            "sub",
        ],
    )
    .await;
    server.abort();
    let why = summary(&refused);
    assert_eq!(swapped, 1, "{why}");
    assert_eq!(status(&refused, "subscribe"), "fail", "{why}");
    let subscribe = row(&refused, "subscribe")["value"].as_str().unwrap();
    assert!(subscribe.contains("401"), "{why}");
    let rows = summary(&report);
    assert_eq!(code, 1, "{rows}");
    assert_eq!(status(&report, "resume"), "fail", "{rows}");
    let resume = row(&report, "resume")["value"].as_str().unwrap();
    assert!(resume.contains("duplicate #1,"), "{rows}");
    assert!(!resume.contains("gap"), "{rows}");
    // Everything else about it is fine (the tokens went where they belong), so nothing else
    // fails.
    for check in report["checks"].as_array().unwrap() {
        if check["name"] != "resume" {
            assert_ne!(check["status"], "fail", "{rows}");
        }
    }
}

// ---- nginx --------------------------------------------------------------------------

/// nginx in front of `hub` on every route, with its defaults (`proxy_buffering on`) and gzip
/// for event streams: the runbook's "events buffered" symptom unless the upstream says
/// `X-Accel-Buffering: no`.
fn start_gzip_nginx(binary: &Path, hub: SocketAddr) -> Nginx {
    start_nginx(
        binary,
        hub,
        "proxy_http_version 1.1;\n        proxy_set_header Connection '';\n        gzip on;\n        \
         gzip_types text/event-stream;",
    )
}

/// nginx in front of `hub` on every route, with `directives` in its location.
fn start_nginx(binary: &Path, hub: SocketAddr, directives: &str) -> Nginx {
    Nginx::start(binary, |port| {
        format!(
            "upstream backend {{ server {hub}; }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n        proxy_pass http://backend;\n        \
             {directives}\n    }}\n}}\n"
        )
    })
}

const THROUGH_NGINX: &[&str] = &[
    "--duration",
    "5",
    "--keepalive-secs",
    "1",
    "--publish-token",
    "t",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_nginx_without_the_accel_header_fails_the_buffering_row() {
    let Some(binary) = nginx::require() else {
        return;
    };
    let hub = Hub::spawn(
        EXE,
        &hub_args(&["--keepalive-secs", "1", "--no-accel-buffering-header"]),
    )
    .await
    .unwrap();
    let nginx = start_gzip_nginx(&binary, hub.addr());
    let (code, report) = probe(&nginx.base_url(), THROUGH_NGINX).await;
    let rows = summary(&report);
    assert_eq!(code, 1, "{rows}");
    assert_eq!(status(&report, "buffering"), "fail", "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_nginx_with_the_accel_header_passes_the_buffering_row() {
    let Some(binary) = nginx::require() else {
        return;
    };
    let hub = Hub::spawn(EXE, &hub_args(&["--keepalive-secs", "1"]))
        .await
        .unwrap();
    let nginx = start_gzip_nginx(&binary, hub.addr());
    let (code, report) = probe(&nginx.base_url(), THROUGH_NGINX).await;
    let rows = summary(&report);
    assert_eq!(status(&report, "buffering"), "pass", "{rows}");
    assert_eq!(status(&report, "resume"), "pass", "{rows}");
    assert_eq!(status(&report, "heartbeat"), "pass", "{rows}");
    // The gzip configuration is in effect: the probe decoded a compressed stream.
    assert!(
        row(&report, "content-type")["value"]
            .as_str()
            .unwrap()
            .contains("gzip"),
        "{rows}"
    );
    assert_eq!(code, 0, "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_idle_timeout_below_the_silence_shows_as_drops() {
    let Some(binary) = nginx::require() else {
        return;
    };
    // The runbook's "Load Balancer Idle Timeout": the proxy gives up on a silent upstream
    // after 2 s, and the hub sends no heartbeat to keep it busy.
    let hub = Hub::spawn(EXE, &hub_args(&["--keepalive-secs", "0"]))
        .await
        .unwrap();
    let nginx = start_nginx(
        &binary,
        hub.addr(),
        "proxy_http_version 1.1;\n        proxy_set_header Connection '';\n        \
         proxy_buffering off;\n        proxy_read_timeout 2s;",
    );
    let (code, report) = probe(
        &nginx.base_url(),
        &["--duration", "6", "--keepalive-secs", "1"],
    )
    .await;
    let rows = summary(&report);
    assert_eq!(code, 1, "{rows}");
    assert_eq!(status(&report, "drops"), "fail", "{rows}");
    let drops = row(&report, "drops")["value"].as_str().unwrap();
    // The first cut comes when the proxy's timeout runs out, not before.
    let first: f64 = drops
        .split("SSE disconnect at ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in {rows}"));
    assert!((1.5..5.0).contains(&first), "{rows}");
}
