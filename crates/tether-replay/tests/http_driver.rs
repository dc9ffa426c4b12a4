//! The HTTP driver against a small hyper 1 server around the core broker (the routes of the
//! HTTP contract that transcripts use), on 127.0.0.1:0. Real sockets cannot pause the clock:
//! the transcripts run sped up 20 times against a broker whose intervals are scaled alike,
//! and every wait has a generous slack.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tether_core::{
    ApprovalRequest, Broker, ConnectError, ConnectOptions, DecideError, Decision, Event, SessionId,
    event_name,
};
use tether_replay::{Http, HttpOptions, Rule, Settings, Transcript};

const SCALE: f64 = 0.05;

enum Body {
    Full(Option<Bytes>),
    Sse(tether_core::EventStream),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Sse(s) => Pin::new(s)
                .poll_next(cx)
                .map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }
}

fn json_response(status: StatusCode, v: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Full(Some(Bytes::from(v.to_string()))))
        .unwrap()
}

fn error(status: StatusCode, code: &str, message: impl ToString) -> Response<Body> {
    json_response(
        status,
        json!({"error": code, "message": message.to_string()}),
    )
}

async fn read_body(mut body: Incoming) -> Bytes {
    use http_body::Body as _;
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame.expect("a body frame").into_data() {
            out.extend_from_slice(&data);
        }
    }
    out.into()
}

fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

async fn handle(
    broker: Broker,
    token: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path: Vec<String> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    let authorized = token.as_deref().is_none_or(|t| {
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {t}"))
    });
    let session = |s: &str| SessionId::new(s);
    let method = req.method().clone();
    Ok(match (method, parts.as_slice()) {
        (Method::GET, ["api", "sse", "session", id]) => {
            let Ok(s) = session(id) else {
                return Ok(error(StatusCode::BAD_REQUEST, "bad_session_id", "bad id"));
            };
            let mut opts = ConnectOptions::new();
            opts.last_event_id = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            opts.client_id = query(&req, "clientId");
            match broker.connect(&s, opts) {
                Ok(stream) => Response::builder()
                    .header("content-type", "text/event-stream")
                    .header("cache-control", "no-cache, no-transform")
                    .header("x-accel-buffering", "no")
                    .body(Body::Sse(stream))
                    .unwrap(),
                Err(ConnectError::InvalidLastEventId(e)) => {
                    error(StatusCode::BAD_REQUEST, "bad_last_event_id", e)
                }
                Err(ConnectError::Conflict) => error(StatusCode::CONFLICT, "conflict", "taken"),
                Err(ConnectError::SupersededRecently) => Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Body::Full(None))
                    .unwrap(),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e),
            }
        }
        (Method::POST, ["api", "sessions", _, ..]) if !authorized => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a bearer token",
        ),
        (Method::POST, ["api", "sessions", id, "events"]) => {
            let Ok(s) = session(id) else {
                return Ok(error(StatusCode::BAD_REQUEST, "bad_session_id", "bad id"));
            };
            let name = match query(&req, "event").map(|n| event_name(&n)).transpose() {
                Ok(n) => n,
                Err(e) => return Ok(error(StatusCode::BAD_REQUEST, "bad_event_name", e)),
            };
            let body = read_body(req.into_body()).await;
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return Ok(error(StatusCode::BAD_REQUEST, "bad_json", "not JSON"));
            };
            let values = match v {
                Value::Array(a) => a,
                one => vec![one],
            };
            let events: Vec<Event> = values
                .iter()
                .map(|v| {
                    let e = Event::json(v).unwrap();
                    match &name {
                        Some(n) => e.named(n.clone()),
                        None => e,
                    }
                })
                .collect();
            match broker.publish_batch(&s, &events) {
                Ok(ids) => json_response(
                    StatusCode::ACCEPTED,
                    json!({"ids": ids.iter().map(ToString::to_string).collect::<Vec<_>>()}),
                ),
                Err(e) => error(StatusCode::BAD_REQUEST, "refused", e),
            }
        }
        (Method::POST, ["api", "sessions", id, "approvals"]) => {
            let Ok(s) = session(id) else {
                return Ok(error(StatusCode::BAD_REQUEST, "bad_session_id", "bad id"));
            };
            let body: Value =
                serde_json::from_slice(&read_body(req.into_body()).await).unwrap_or_default();
            let mut r = ApprovalRequest::new(body["payload"].clone());
            if let Some(id) = body["id"].as_str() {
                r = r.id(id);
            }
            if let Some(t) = body["title"].as_str() {
                r = r.title(t);
            }
            if let Some(ms) = body["timeoutMs"].as_u64() {
                r = r.timeout(Duration::from_millis(ms));
            }
            match broker.request_approval(&s, r) {
                Ok(h) => json_response(StatusCode::CREATED, json!({"id": h.id()})),
                Err(e) => error(StatusCode::BAD_REQUEST, "refused", e),
            }
        }
        (Method::GET, ["api", "sessions", id, "approvals", aid]) => {
            let Ok(s) = session(id) else {
                return Ok(error(StatusCode::BAD_REQUEST, "bad_session_id", "bad id"));
            };
            let wait = query(&req, "waitMs")
                .and_then(|w| w.parse().ok())
                .unwrap_or(0u64)
                .min(60_000);
            match broker
                .wait_approval(&s, aid, Duration::from_millis(wait))
                .await
            {
                Some(info) => json_response(StatusCode::OK, serde_json::to_value(info).unwrap()),
                None => error(
                    StatusCode::NOT_FOUND,
                    "unknown_approval",
                    "no such approval",
                ),
            }
        }
        (Method::POST, ["api", "sessions", id, "approvals", aid, "decision"]) => {
            let Ok(s) = session(id) else {
                return Ok(error(StatusCode::BAD_REQUEST, "bad_session_id", "bad id"));
            };
            let aid = aid.to_string();
            let body: Value =
                serde_json::from_slice(&read_body(req.into_body()).await).unwrap_or_default();
            let decision = Decision {
                approved: body["approved"].as_bool().unwrap_or(false),
                reason: body["reason"].as_str().map(Into::into),
            };
            match broker.decide(&s, &aid, decision) {
                Ok(info) => json_response(StatusCode::OK, serde_json::to_value(info).unwrap()),
                Err(DecideError::Unknown) => error(StatusCode::NOT_FOUND, "unknown", "unknown"),
                Err(DecideError::Expired) => error(StatusCode::GONE, "expired", "expired"),
                Err(e) => error(StatusCode::CONFLICT, "already_decided", e),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such route"),
    })
}

/// Serves `broker` on 127.0.0.1:0 until the test's runtime ends.
async fn serve(broker: Broker, token: Option<String>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let broker = broker.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    handle(broker.clone(), token.clone(), req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn shipped(name: &str) -> (PathBuf, Transcript) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("transcripts")
        .join(name);
    let t = Transcript::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, t)
}

fn options() -> HttpOptions {
    HttpOptions {
        time_scale: SCALE,
        slack: Duration::from_secs(3),
        ..HttpOptions::default()
    }
}

async fn replay_over_http(t: &Transcript) -> tether_replay::Report {
    let broker = t
        .settings
        .broker_builder(SCALE)
        .start()
        .expect("valid config");
    let addr = serve(broker, None).await;
    let mut driver = Http::new(&format!("http://{addr}"), options()).unwrap();
    driver.run(t).await
}

// Over TCP a client that stops reading is slow for the server only once the socket buffers
// are full: the slow reader's bursts are padded, and the driver opens its streams with a
// small receive window because the transcript stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_over_http() {
    let (_, t) = shipped("slow_reader.jsonl");
    let report = replay_over_http(&t).await;
    assert!(report.is_ok(), "{report}");
    let reader = &report.log.clients["reader"];
    assert_eq!(reader.signals("tether.resync").len(), 1, "{report}");
    assert_eq!(
        reader.connections[0].end.map(|e| e.by),
        Some(tether_replay::log::EndedBy::Server),
        "the server dropped the stalled reader: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agui_text_streaming_over_http() {
    let (_, t) = shipped("agui_text_streaming.jsonl");
    let report = replay_over_http(&t).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.log.clients["tab"].event_count(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_approval_over_http() {
    let (_, t) = shipped("tool_call_approval.jsonl");
    let report = replay_over_http(&t).await;
    assert!(report.is_ok(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_network_over_http() {
    let (_, t) = shipped("flapping_network.jsonl");
    let report = replay_over_http(&t).await;
    assert!(report.is_ok(), "{report}");
    assert!(report.log.clients["phone"].connections.len() > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_over_http() {
    let (_, t) = shipped("reconnect_storm.jsonl");
    let report = replay_over_http(&t).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.log.clients.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_is_sent_when_given() {
    let t = Transcript::parse(
        r#"
{"op":"connect","client":"c","session":"s"}
{"op":"publish","session":"s","event":{"n":1},"name":"progress"}
{"op":"expect_events","client":"c","events":[{"n":1}]}
"#,
    )
    .unwrap();
    let broker = Settings::default()
        .broker_builder(SCALE)
        .start()
        .expect("valid config");
    let addr = serve(broker, Some("sesame".into())).await;
    let url = format!("http://{addr}");

    let mut without = Http::new(&url, options()).unwrap();
    let report = without.run(&t).await;
    let refused: Vec<_> = report.of(Rule::Step).collect();
    assert_eq!(refused.len(), 1, "{report}");
    assert!(refused[0].message.contains("HTTP 401"), "{}", refused[0]);

    let mut with = Http::new(
        &url,
        HttpOptions {
            token: Some("sesame".into()),
            ..options()
        },
    )
    .unwrap();
    let report = with.run(&t).await;
    assert!(report.is_ok(), "{report}");
    // The name travelled as `?event=` and came back as the event's `event:` line.
    let got = report.log.clients["c"].events();
    assert_eq!(got[0].name.as_deref(), Some("progress"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_violations_with_the_status() {
    let t = Transcript::parse(
        r#"
{"op":"connect","client":"c","session":"s","last_event_id":"a b"}
{"op":"decide","session":"s","approval":"nope","approved":true,"expect":"ok"}
"#,
    )
    .unwrap();
    let report = replay_over_http(&t).await;
    let all = report.violations_text();
    assert!(all.contains("the connect was refused: HTTP 400"), "{all}");
    assert!(
        all.contains("deciding nope was expected to answer ok, it answered Unknown"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_entry_replays_a_file_against_a_url() {
    let broker = Settings::default()
        .broker_builder(SCALE)
        .start()
        .expect("valid config");
    let addr = serve(broker, None).await;
    let url = format!("http://{addr}");
    let (path, _) = shipped("tool_call_approval.jsonl");
    let args = |file: &str| -> Vec<String> {
        [
            "replay",
            file,
            "--url",
            &url,
            "--time-scale",
            "0.05",
            "--slack-ms",
            "3000",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    assert_eq!(
        tether_replay::run_cli(&args(path.to_str().unwrap())).await,
        ExitCode::SUCCESS
    );

    let dir = std::env::temp_dir().join(format!("tether-replay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let failing = dir.join("failing.jsonl");
    std::fs::write(
        &failing,
        "{\"op\":\"connect\",\"client\":\"c\",\"session\":\"cli\"}\n\
         {\"op\":\"expect_events\",\"client\":\"c\",\"events\":[{\"never\":true}],\"within_ms\":10}\n",
    )
    .unwrap();
    assert_eq!(
        tether_replay::run_cli(&args(failing.to_str().unwrap())).await,
        ExitCode::from(1)
    );
    let broken = dir.join("broken.jsonl");
    std::fs::write(&broken, "{\"op\":\"publish\"}\n").unwrap();
    assert_eq!(
        tether_replay::run_cli(&args(broken.to_str().unwrap())).await,
        ExitCode::from(2)
    );
    // Without --url the file runs in process.
    let in_process: Vec<String> = ["replay", path.to_str().unwrap()]
        .map(str::to_owned)
        .to_vec();
    assert_eq!(tether_replay::run_cli(&in_process).await, ExitCode::SUCCESS);
    let _ = std::fs::remove_dir_all(&dir);
}
