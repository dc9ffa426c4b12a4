//! The operator's side of `tether serve`, over real HTTP on loopback: the runbook's config
//! file, the log lines its greps look for (text and JSON, in a file that SIGHUP reopens), and
//! every metric at 0 on the first scrape.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tether_conformance::client::{SseConn, StreamOptions, Target, send};
use tether_conformance::hub::Hub;
use tether_core::auth::{Claims, mint_hs256};

const EXE: &str = env!("CARGO_BIN_EXE_tether");
const SECRET: &str = "an operations test secret of 32+ bytes";
const LIMIT: Duration = Duration::from_secs(30);

fn args(extra: &[&str]) -> Vec<String> {
    extra.iter().map(|s| (*s).to_owned()).collect()
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-ops-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn token(sub: &str) -> String {
    mint_hs256(
        SECRET.as_bytes(),
        &Claims::expiring_in(Duration::from_secs(3600))
            .subject(sub)
            .subscribe("*")
            .publish("*"),
    )
}

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {token}"))]
}

async fn health(hub: &Hub) -> serde_json::Value {
    let target = Target::parse(&hub.base_url()).unwrap();
    send(&target, "GET", "/health/sse", &[], b"", LIMIT)
        .await
        .unwrap()
        .json()
        .unwrap()
}

async fn metrics(hub: &Hub) -> String {
    let target = Target::parse(&hub.base_url()).unwrap();
    send(&target, "GET", "/metrics", &[], b"", LIMIT)
        .await
        .unwrap()
        .text()
}

/// Waits (bounded) until the file has a line containing every one of `needles`; returns it.
async fn wait_line(path: &Path, needles: &[&str]) -> String {
    for _ in 0..300 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no line with {needles:?} in {}:\n{}",
        path.display(),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

// ---------------------------------------------------------------- config

const RUNBOOK_YML: &str = "keepalive_interval: 15\nclient_timeout: 60\nmax_connections_per_session: 1\nreconnect_backoff_max: 30\n";

#[tokio::test]
async fn the_runbooks_config_file_is_accepted() {
    let dir = scratch("runbook-config");
    let file = dir.join("sse.yml");
    std::fs::write(&file, RUNBOOK_YML).unwrap();
    let hub = Hub::spawn(EXE, &args(&["--config", file.to_str().unwrap()]))
        .await
        .unwrap();
    let s = &health(&hub).await["settings"];
    assert_eq!(s["keepalive_ms"], 15_000, "{s}");
    assert_eq!(s["client_timeout_ms"], 60_000, "{s}");
    assert_eq!(s["reconnect_backoff_max_ms"], 30_000, "{s}");
    assert_eq!(s["connection_policy"], "replace", "{s}");
}

/// Values other than the defaults, so a file that was ignored cannot pass.
#[tokio::test]
async fn the_files_values_apply_in_yaml_and_toml() {
    let dir = scratch("applied-config");
    let yml = dir.join("sse.yml");
    std::fs::write(
        &yml,
        "keepalive_interval: 1\nclient_timeout: 9\nmax_connections_per_session: 1\nreconnect_backoff_max: 1\npolicy: reject\n",
    )
    .unwrap();
    let toml = dir.join("sse.toml");
    std::fs::write(
        &toml,
        "keepalive_interval = 1\nclient_timeout = 9\nmax_connections_per_session = 1\nreconnect_backoff_max = 1\npolicy = \"reject\"\n",
    )
    .unwrap();
    for file in [&yml, &toml] {
        let hub = Hub::spawn(EXE, &args(&["--config", file.to_str().unwrap()]))
            .await
            .unwrap();
        let s = &health(&hub).await["settings"];
        assert_eq!(s["keepalive_ms"], 1_000, "{}: {s}", file.display());
        assert_eq!(s["client_timeout_ms"], 9_000, "{s}");
        assert_eq!(s["reconnect_backoff_max_ms"], 1_000, "{s}");
        assert_eq!(s["connection_policy"], "reject", "{s}");
        // On the wire: the stream's retry hint stays under the file's maximum, and a
        // heartbeat comes within about a second of quiet.
        let target = Target::parse(&hub.base_url()).unwrap();
        let mut conn = SseConn::open(&target, "/api/sse/session/cfg", StreamOptions::default())
            .await
            .unwrap();
        assert_eq!(conn.status(), 200);
        let mut retry = None;
        let mut saw_heartbeat = false;
        for _ in 0..20 {
            if let Ok(Some(f)) = conn.next(Duration::from_secs(5)).await {
                retry = retry.or(f.retry);
                if !f.comments.is_empty() {
                    saw_heartbeat = true;
                    break;
                }
            }
        }
        let retry = retry.expect("a retry hint");
        assert!(retry <= 1_000, "retry {retry} over the file's 1 s");
        assert!(saw_heartbeat, "a heartbeat within the file's 1 s interval");
    }
}

#[tokio::test]
async fn a_flag_and_its_environment_variable_win_over_the_file() {
    let dir = scratch("precedence");
    let file = dir.join("sse.yml");
    std::fs::write(
        &file,
        "keepalive_interval: 7\nclient_timeout: 9\nring_events: 5\n",
    )
    .unwrap();
    let hub = {
        let mut a = args(&["--config", file.to_str().unwrap(), "--keepalive-secs", "3"]);
        a.push("--ring-events".into());
        a.push("6".into());
        Hub::spawn(EXE, &a).await.unwrap()
    };
    let s = &health(&hub).await["settings"];
    assert_eq!(s["keepalive_ms"], 3_000, "flag over file: {s}");
    assert_eq!(s["client_timeout_ms"], 9_000, "file over default: {s}");
    assert_eq!(s["ring_max_events"], 6, "{s}");

    let out = tokio::process::Command::new(EXE)
        .args(["serve", "--dev", "--addr", "127.0.0.1:0", "--config"])
        .arg(&file)
        .env("TETHER_CLIENT_TIMEOUT_SECS", "11")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = out.id().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let done = tokio::time::timeout(LIMIT, out.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(
        log.contains("client_timeout_s=11") && log.contains("keepalive_s=7"),
        "environment over file, file over default: {log}"
    );
}

/// `tether serve --config FILE` refused: exit code 2 and the message.
fn refused(name: &str, body: &str) -> String {
    let dir = scratch("refused");
    let file = dir.join(name);
    std::fs::write(&file, body).unwrap();
    let out = std::process::Command::new(EXE)
        .args(["serve", "--dev", "--addr", "127.0.0.1:0", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.trim()
        .strip_prefix(&format!("tether: {}", file.display()))
        .unwrap_or_else(|| panic!("names the file: {text}"))
        .to_owned()
}

#[test]
fn config_errors_name_the_key_and_its_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown.yml",
            "keepalive_interval: 15\nkeepalive_intervall: 15\n",
            ":2: keepalive_intervall: unknown key",
        ),
        (
            "type.yml",
            "keepalive_interval: 15\nclient_timeout: soon\n",
            ":2: client_timeout: invalid value 'soon'",
        ),
        (
            "switch.yml",
            "dev: yes please\n",
            ":1: dev: expects true or false, not a string",
        ),
        (
            "nested.yml",
            "\n\naddr:\n  port: 8080\n",
            ":3: addr: expects one value, not a table",
        ),
        (
            "twice.yml",
            "keepalive_interval: 15\nclient_timeout: 60\nkeepalive_secs: 20\n",
            ":3: keepalive_secs: two names of one setting: keepalive_interval (line 1) and keepalive_secs (line 3)",
        ),
        (
            "connections.yml",
            "max_connections_per_session: 2\n",
            ":1: max_connections_per_session: only 1 is supported, not 2",
        ),
        (
            "impossible.yml",
            "client_timeout: 0\n",
            ":1: client_timeout: invalid value '0'",
        ),
        (
            "backoff.toml",
            "keepalive_interval = 15\nreconnect_backoff_max = 0\n",
            ":2: reconnect_backoff_max: invalid value '0'",
        ),
        (
            "unknown.toml",
            "ring_events = 8\n\n[limits]\nring_bytes = 10\n",
            ":3: limits: unknown key",
        ),
        (
            "policy.toml",
            "policy = \"sometimes\"\n",
            ":1: policy: invalid value 'sometimes'",
        ),
        ("syntax.yml", "ring_bytes: [1\n", "not valid YAML"),
        (
            "format.ini",
            "ring_bytes=1\n",
            ": the file must end in .yml, .yaml or .toml",
        ),
    ];
    for (name, body, expected) in cases {
        let e = refused(name, body);
        assert!(e.contains(expected), "{name}: {e:?} lacks {expected:?}");
    }
}

// ---------------------------------------------------------------- logs

async fn publish_pad(target: &Target, headers: &[(String, String)], session: &str, n: usize) {
    let pad = "x".repeat(200 * 1024);
    let body = format!("{{\"pad\":\"{pad}\"}}");
    let mut h = headers.to_vec();
    h.push(("Content-Type".into(), "application/json".into()));
    for _ in 0..n {
        let r = send(
            target,
            "POST",
            &format!("/api/sessions/{session}/events"),
            &h,
            body.as_bytes(),
            LIMIT,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
    }
}

/// A hub that checks tokens signed with [`SECRET`] and logs at `info` to `log` in `format`,
/// with a client timeout of 1 s and rings large enough that a stalled client is not resynced
/// first.
async fn logging_hub(log: &Path, format: &str) -> Hub {
    Hub::spawn(
        EXE,
        &args(&[
            "--jwt-secret",
            SECRET,
            "--log-file",
            log.to_str().unwrap(),
            "--log-format",
            format,
            "--log-level",
            "info",
            "--client-timeout-secs",
            "1",
            "--ring-bytes",
            "67108864",
        ]),
    )
    .await
    .unwrap()
}

/// Provokes "SSE connect", "SSE disconnect", "SSE reconnect" and "SSE resync", and returns
/// the log file with the token that was used.
async fn provoke_the_runbooks_phrases(format: &str) -> (PathBuf, String) {
    let dir = scratch(&format!("phrases-{format}"));
    let log = dir.join("sse.log");
    let hub = logging_hub(&log, format).await;
    let target = Target::parse(&hub.base_url()).unwrap();
    let token = token("alice");
    let ua = ("User-Agent".to_owned(), "ops-test/1.0 (runbook)".to_owned());

    // Connect (the token in the query, where a URL log would leak it), then close.
    let conn = SseConn::open(
        &target,
        &format!("/api/sse/session/ops-a?token={token}"),
        StreamOptions {
            headers: vec![ua.clone()],
            recv_buffer: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(conn.status(), 200);
    wait_line(&log, &["SSE connect", "ops-a"]).await;
    drop(conn);
    wait_line(&log, &["SSE disconnect", "ops-a", "client_closed"]).await;

    // Reconnect with a Last-Event-ID.
    let mut headers = bearer(&token);
    headers.push(ua.clone());
    headers.push(("Last-Event-ID".into(), "0badc0de-7".into()));
    let conn = SseConn::open(
        &target,
        "/api/sse/session/ops-a",
        StreamOptions {
            headers,
            recv_buffer: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(conn.status(), 200);
    wait_line(&log, &["SSE reconnect", "0badc0de-7"]).await;
    wait_line(&log, &["SSE resync", "0badc0de-7"]).await;
    drop(conn);
    // The second connection's end is written once the hub has seen it close.
    wait_line(&log, &["SSE disconnect", "last_event_id", "0badc0de-7"]).await;

    (log, token)
}

/// Sends `request`, then reads 512 bytes every 100 ms (for at most a minute) through a
/// 4 KiB receive buffer.
async fn slow_reader(addr: std::net::SocketAddr, request: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    for _ in 0..600 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const JSON_FIELDS: [&str; 10] = [
    "timestamp",
    "level",
    "message",
    "session",
    "client_addr",
    "user_agent",
    "last_event_id",
    "reason",
    "duration_s",
    "sub",
];

#[tokio::test]
async fn text_log_lines_carry_the_runbooks_words_and_the_client() {
    let (log, token) = provoke_the_runbooks_phrases("text").await;
    let text = std::fs::read_to_string(&log).unwrap();
    // The runbook's own commands.
    let grep: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("disconnect") || l.contains("timeout") || l.contains("error"))
        .collect();
    assert!(grep.len() >= 3, "{text}");
    let line = wait_line(&log, &["SSE disconnect", "ops-a", "client_closed"]).await;
    for field in [
        "session=ops-a",
        "client_addr=127.0.0.1",
        "user_agent=ops-test/1.0 (runbook)",
        "sub=alice",
        "duration_s=",
        "last_event_id=-",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    let line = wait_line(&log, &["SSE reconnect"]).await;
    assert!(line.contains("last_event_id=0badc0de-7"), "{line}");
    assert!(!text.contains(&token), "a token was logged:\n{text}");
}

#[tokio::test]
async fn json_log_lines_are_objects_with_the_runbooks_fields() {
    let (log, token) = provoke_the_runbooks_phrases("json").await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&token), "a token was logged");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let find = |message: &str, session: &str| {
        lines
            .iter()
            .find(|v| v["message"] == message && v["session"] == session)
            .unwrap_or_else(|| panic!("no {message} for {session} in\n{text}"))
            .clone()
    };
    let disconnect = find("SSE disconnect", "ops-a");
    for f in JSON_FIELDS {
        assert!(disconnect.get(f).is_some(), "{f} in {disconnect}");
    }
    assert_eq!(disconnect["client_addr"], "127.0.0.1");
    assert_eq!(disconnect["user_agent"], "ops-test/1.0 (runbook)");
    assert_eq!(disconnect["sub"], "alice");
    assert_eq!(disconnect["reason"], "client_closed");
    assert_eq!(disconnect["level"], "INFO");
    assert!(disconnect["duration_s"].as_f64().is_some(), "{disconnect}");
    let reconnect = find("SSE reconnect", "ops-a");
    assert_eq!(reconnect["last_event_id"], "0badc0de-7");
}

/// "SSE keepalive timeout": a client that reads too slowly is dropped after the client
/// timeout, and the line carries the connection's fields in both formats.
#[tokio::test]
async fn a_stalled_client_is_logged_as_keepalive_timeout() {
    for format in ["text", "json"] {
        let dir = scratch(&format!("stall-{format}"));
        let log = dir.join("sse.log");
        let hub = logging_hub(&log, format).await;
        let target = Target::parse(&hub.base_url()).unwrap();
        let token = token("alice");
        // A client that reads too slowly: a trickle keeps its TCP connection alive (the kernel
        // never times it out), but the hub's writes wait so long that the stream goes unpolled
        // past the client timeout, and the broker drops it.
        let reader = tokio::spawn(slow_reader(
            hub.addr(),
            format!(
                "GET /api/sse/session/ops-stall HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nUser-Agent: ops-test/1.0 (runbook)\r\nAuthorization: Bearer {token}\r\n\r\n",
                hub.addr()
            ),
        ));
        wait_line(&log, &["SSE connect", "ops-stall"]).await;
        publish_pad(&target, &bearer(&token), "ops-stall", 48).await;
        wait_line(&log, &["SSE keepalive timeout", "ops-stall"]).await;
        wait_line(&log, &["SSE disconnect", "ops-stall", "timeout"]).await;
        reader.abort();
        let line = wait_line(&log, &["SSE keepalive timeout", "ops-stall"]).await;
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            for f in JSON_FIELDS {
                assert!(v.get(f).is_some(), "{f} in {v}");
            }
            assert_eq!(v["reason"], "timeout");
        } else {
            assert!(
                line.contains("sub=alice") && line.contains("client_addr=127.0.0.1"),
                "{line}"
            );
        }
    }
}

/// "SSE error": the process runs out of file descriptors and accepts fail.
#[tokio::test]
async fn an_accept_failure_is_logged_as_sse_error() {
    for format in ["text", "json"] {
        let dir = scratch(&format!("error-{format}"));
        let log = dir.join("sse.log");
        let wrapper = dir.join("tether-few-fds");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nulimit -n 48 || exit 3\nexec '{EXE}' \"$@\"\n"),
        )
        .unwrap();
        let status = std::process::Command::new("chmod")
            .arg("+x")
            .arg(&wrapper)
            .status()
            .unwrap();
        assert!(status.success());
        let hub = Hub::spawn(
            &wrapper,
            &args(&["--log-file", log.to_str().unwrap(), "--log-format", format]),
        )
        .await
        .unwrap();
        let mut held = Vec::new();
        for _ in 0..80 {
            match tokio::net::TcpStream::connect(hub.addr()).await {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        let line = wait_line(&log, &["SSE error", "accept failed"]).await;
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["level"], "ERROR", "{line}");
        }
        drop(held);
    }
}

#[tokio::test]
async fn sighup_reopens_the_log_file() {
    let dir = scratch("sighup");
    let log = dir.join("sse.log");
    let hub = Hub::spawn(
        EXE,
        &args(&["--log-file", log.to_str().unwrap(), "--log-level", "info"]),
    )
    .await
    .unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let open = |s: &'static str| {
        let target = target.clone();
        async move {
            drop(
                SseConn::open(
                    &target,
                    &format!("/api/sse/session/{s}"),
                    StreamOptions::default(),
                )
                .await
                .unwrap(),
            );
        }
    };
    open("before-rotate").await;
    wait_line(&log, &["SSE disconnect", "before-rotate"]).await;
    // logrotate: move the file away, then signal.
    let rotated = dir.join("sse.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &hub.pid().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_line(&log, &["SIGHUP: log file reopened"]).await;
    open("after-rotate").await;
    wait_line(&log, &["SSE disconnect", "after-rotate"]).await;
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("before-rotate") && !old.contains("after-rotate"),
        "{old}"
    );
    assert!(
        health(&hub).await["status"] == "ok",
        "the hub lives on after SIGHUP"
    );
}

#[tokio::test]
async fn trust_forwarded_logs_the_rightmost_forwarded_address() {
    for (trust, expected) in [
        (true, "client_addr=10.1.2.3"),
        (false, "client_addr=127.0.0.1"),
    ] {
        let dir = scratch(&format!("forwarded-{trust}"));
        let log = dir.join("sse.log");
        let mut a = args(&["--log-file", log.to_str().unwrap(), "--log-level", "info"]);
        if trust {
            a.push("--trust-forwarded".into());
        }
        let hub = Hub::spawn(EXE, &a).await.unwrap();
        let target = Target::parse(&hub.base_url()).unwrap();
        let conn = SseConn::open(
            &target,
            "/api/sse/session/fwd",
            StreamOptions {
                headers: vec![("X-Forwarded-For".into(), "203.0.113.9, 10.1.2.3".into())],
                recv_buffer: None,
            },
        )
        .await
        .unwrap();
        let line = wait_line(&log, &["SSE connect", "fwd"]).await;
        assert!(line.contains(expected), "trust {trust}: {line}");
        drop(conn);
    }
}

// ---------------------------------------------------------------- metrics

/// The value of a sample line `name{labels} value` (labels as rendered, or none).
fn sample(text: &str, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    text.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let matches = n == name
            && label.is_none_or(|(k, v)| labels.split(',').any(|p| p == format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test]
async fn every_metric_is_present_at_zero_on_a_fresh_hub() {
    let hub = Hub::spawn(EXE, &[]).await.unwrap();
    let text = metrics(&hub).await;
    for (name, label) in tether_core::metrics::registered_series() {
        let is_histogram = tether_core::metrics::HISTOGRAMS
            .iter()
            .any(|(h, _)| *h == name);
        let series = if is_histogram {
            format!("{name}_count")
        } else {
            name.to_owned()
        };
        let v = sample(&text, &series, label)
            .unwrap_or_else(|| panic!("{series} {label:?} missing from the first scrape:\n{text}"));
        let expected = if name == tether_core::metrics::BUILD_INFO {
            1.0
        } else {
            0.0
        };
        assert_eq!(v, expected, "{series} {label:?}");
        if is_histogram {
            assert!(
                sample(&text, &format!("{name}_bucket"), Some(("le", "+Inf"))).is_some(),
                "{name} is a histogram with buckets"
            );
        }
    }
    assert_eq!(
        sample(
            &text,
            "tether_build_info",
            Some(("version", env!("CARGO_PKG_VERSION")))
        ),
        Some(1.0)
    );
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
    ] {
        let v = sample(&text, name, None).unwrap_or_else(|| panic!("{name} missing"));
        assert!(v >= 0.0, "{name} {v}");
    }
    assert!(sample(&text, "process_resident_memory_bytes", None).unwrap() > 1e6);
}

#[test]
fn the_health_subcommand_exits_by_status() {
    let out = std::process::Command::new(EXE)
        .args([
            "health",
            "http://127.0.0.1:1/health/live",
            "--timeout-secs",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "unreachable: {out:?}");
}

#[tokio::test]
async fn the_health_subcommand_checks_a_running_hub() {
    let hub = Hub::spawn(EXE, &[]).await.unwrap();
    let run = |path: &str| {
        std::process::Command::new(EXE)
            .args(["health", &format!("{}{path}", hub.base_url())])
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(run("/health/live"), Some(0));
    assert_eq!(run("/health/sse"), Some(0));
    assert_eq!(run("/no/such/route"), Some(1));
}

/// A stream that reaches its token's expiry ends with one "SSE disconnect" line that names
/// the reason and carries the connection's fields, and is counted as `token_expired`.
#[tokio::test]
async fn a_stream_ended_by_its_tokens_expiry_is_logged_with_its_fields() {
    let dir = scratch("token-expiry");
    let log = dir.join("sse.log");
    let hub = logging_hub(&log, "text").await;
    let target = Target::parse(&hub.base_url()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let short = mint_hs256(
        SECRET.as_bytes(),
        &Claims::new(now + 2).subject("alice").subscribe("alice:*"),
    );
    let mut headers = bearer(&short);
    headers.push(("User-Agent".into(), "ops-test/1.0 (expiry)".into()));
    let mut conn = SseConn::open(
        &target,
        "/api/sse/session/alice:expiring",
        StreamOptions {
            headers,
            recv_buffer: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(conn.status(), 200);
    conn.until_end(Duration::from_secs(20)).await.unwrap();
    let line = wait_line(&log, &["SSE disconnect", "alice:expiring"]).await;
    for field in [
        "reason=\"token_expired\"",
        "sub=alice",
        "user_agent=ops-test/1.0 (expiry)",
        "client_addr=127.0.0.1",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("SSE disconnect") && l.contains("alice:expiring"))
        .count();
    assert_eq!(lines, 1, "one disconnect line per stream:\n{text}");
    let metrics = send(
        &target,
        "GET",
        "/metrics",
        &[],
        b"",
        Duration::from_secs(10),
    )
    .await
    .unwrap()
    .text();
    assert!(
        metrics.contains("sse_disconnects_total{reason=\"token_expired\"} 1"),
        "{metrics}"
    );
}

#[test]
fn settings_the_broker_refuses_exit_2_naming_the_flag() {
    for (flag, message) in [
        ("--memory-budget-bytes", "must be at least 1 byte"),
        ("--max-event-bytes", "must be at least 1 byte"),
        ("--max-approval-bytes", "must be at least 1 byte"),
    ] {
        let out = std::process::Command::new(EXE)
            .args(["serve", "--dev", "--addr", "127.0.0.1:0", flag, "0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}: {out:?}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(text.trim(), format!("tether: {flag}: {message}"), "{flag}");
    }
}
