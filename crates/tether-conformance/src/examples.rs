//! Checks for example services that embed tether beside routes of their own: a job started
//! with `POST /jobs?steps=N` reports its progress into a session, which a client follows over
//! the contract's stream route. Each check starts the service binary itself (on
//! `127.0.0.1:0`) and panics with a precise message when the service misbehaves. The
//! examples are secure by default: the checks subscribe with the development token the
//! example prints at startup, and [`streams_need_the_printed_token`] proves that nothing
//! else opens them.

use std::time::Duration;

use tokio::time::Instant;

use crate::client::{SseConn, StreamOptions, Target, send};
use crate::hub::Hub;

const LIMIT: Duration = Duration::from_secs(10);

fn event_stream(service: &Hub) -> StreamOptions {
    let mut headers = service.bearer();
    headers.push(("Accept".into(), "text/event-stream".into()));
    StreamOptions {
        headers,
        recv_buffer: None,
    }
}

async fn start(exe: &str) -> (Hub, Target) {
    let service = Hub::spawn_service(exe, &["--drain-secs".to_owned(), "1".to_owned()])
        .await
        .expect("the example starts and prints its address");
    let target = Target::parse(&service.base_url()).expect("a loopback URL");
    (service, target)
}

/// Runs a five-step job: every progress event arrives once and in order with consecutive
/// ids, then `finished`; SIGTERM then ends the open stream with `tether.drain` and the
/// process exits with success.
pub async fn job_reports_progress_then_drains(exe: &str) {
    let (mut service, target) = start(exe).await;
    assert!(
        service.dev_token().is_some(),
        "the example prints a development token"
    );
    let started = send(&target, "POST", "/jobs?steps=5", &[], b"", LIMIT)
        .await
        .unwrap();
    assert_eq!(started.status, 202, "{}", started.text());
    let job = started.json().unwrap();
    let path = job["events"].as_str().unwrap().to_owned();
    let job_id = job["job"].as_str().unwrap().to_owned();

    let mut stream = SseConn::open(&target, &path, event_stream(&service))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));

    let mut ids = Vec::new();
    for step in 1..=5 {
        let frame = stream.next_event(LIMIT).await.unwrap();
        let event = frame.json().unwrap();
        assert_eq!(event["type"], "progress", "{event}");
        assert_eq!(event["job"], job_id.as_str());
        assert_eq!(event["step"], step, "{event}");
        ids.push(frame.id.unwrap());
    }
    let last = stream.next_event(LIMIT).await.unwrap();
    assert_eq!(last.json().unwrap()["type"], "finished");
    ids.push(last.id.unwrap());
    let seqs: Vec<u64> = ids
        .iter()
        .map(|id| id.rsplit_once('-').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<u64>>(), "ids {ids:?}");

    service.terminate().unwrap();
    let rest = stream.until_end(LIMIT).await.unwrap();
    assert!(
        rest.iter()
            .any(|f| f.signal().as_deref() == Some("tether.drain")),
        "{rest:?}"
    );
    let status = service
        .wait(Duration::from_secs(20))
        .await
        .expect("the example exits after draining");
    assert!(status.success(), "{status}");
}

async fn connections(target: &Target) -> u64 {
    let health = send(target, "GET", "/health/sse", &[], b"", LIMIT)
        .await
        .unwrap();
    health.json().unwrap()["connections"].as_u64().unwrap()
}

/// Browsers that close their stream free their connection at once: `/health/sse` counts no
/// connection within 5 s, long before the first heartbeat (15 s) could find the closed
/// sockets.
pub async fn closed_streams_are_noticed_at_once(exe: &str) {
    let (service, target) = start(exe).await;
    let mut streams = Vec::new();
    for i in 0..3 {
        let mut s = SseConn::open(
            &target,
            &format!("/api/sse/session/closing-{i}"),
            event_stream(&service),
        )
        .await
        .unwrap();
        assert_eq!(s.status(), 200);
        s.next(LIMIT).await.unwrap();
        streams.push(s);
    }
    assert_eq!(connections(&target).await, 3);

    drop(streams);
    let closed = Instant::now();
    while connections(&target).await != 0 {
        assert!(
            closed.elapsed() < Duration::from_secs(5),
            "connections still counted 5 s after the clients closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The example is secure by default: without a token its stream, publish and decision
/// routes answer 401, a token signed with another key 401 `invalid_token`, and the printed
/// development token opens the stream.
pub async fn streams_need_the_printed_token(exe: &str) {
    let (service, target) = start(exe).await;
    let stream = "/api/sse/session/job-1";
    let anonymous = send(&target, "GET", stream, &[], b"", LIMIT).await.unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let json = [("Content-Type".to_owned(), "application/json".to_owned())];
    let publish = send(
        &target,
        "POST",
        "/api/sessions/job-1/events",
        &json,
        br#"{"n":1}"#,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(publish.status, 401, "{}", publish.text());
    let forged = tether_core::auth::mint_hs256(
        b"not-the-examples-secret-but-32-bytes-long",
        &tether_core::auth::Claims::expiring_in(Duration::from_secs(60)).subscribe("*"),
    );
    let bearer = [("Authorization".to_owned(), format!("Bearer {forged}"))];
    let refused = send(&target, "GET", stream, &bearer, b"", LIMIT)
        .await
        .unwrap();
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.json().unwrap()["error"], "invalid_token");
    let own = SseConn::open(&target, stream, event_stream(&service))
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
}
