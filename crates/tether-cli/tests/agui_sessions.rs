//! `tether serve` tracks AG-UI sessions with no flag: a client that joins a
//! session carrying AG-UI events, fresh or with a stale id, gets a stream the
//! official client's checks accept, and an event that would break the stream
//! is refused.

use std::time::Duration;

use serde_json::json;
use tether_conformance::client::{SseConn, StreamOptions, Target, send};
use tether_conformance::hub::Hub;

const EXE: &str = env!("CARGO_BIN_EXE_tether");

fn body(frames: &[tether_conformance::sse::Block]) -> String {
    let mut out = String::new();
    for f in frames {
        if let Some(d) = &f.data {
            out.push_str(&format!("data: {d}\n\n"));
        }
    }
    out
}

#[tokio::test]
async fn a_hub_session_with_agui_events_gets_valid_preludes_and_refuses_bad_events() {
    let hub = Hub::spawn(EXE, &["--ring-events".to_owned(), "4".to_owned()])
        .await
        .unwrap();
    let target = Target::parse(&hub.base_url()).unwrap();
    let limit = Duration::from_secs(10);
    let json_header = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let events = json!([
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r1"},
        {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "Hello"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": ", wor"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "ld"},
        {"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "f"},
    ]);
    let path = "/api/sessions/agui-hub/events";
    let reply = send(
        &target,
        "POST",
        path,
        &json_header,
        events.to_string().as_bytes(),
        limit,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 202, "{}", reply.text());

    let refused = json!({"type": "RUN_FINISHED", "threadId": "t", "runId": "r1"});
    let reply = send(
        &target,
        "POST",
        path,
        &json_header,
        refused.to_string().as_bytes(),
        limit,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("still active"), "{}", reply.text());

    for (name, headers) in [
        ("no id", vec![]),
        (
            "stale id",
            vec![("Last-Event-ID".to_owned(), "0badc0de-1".to_owned())],
        ),
    ] {
        let mut conn = SseConn::open(
            &target,
            "/api/sse/session/agui-hub",
            StreamOptions {
                headers,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(conn.status(), 200);
        let mut frames = Vec::new();
        while let Ok(Some(f)) = conn.next(Duration::from_millis(500)).await {
            frames.push(f);
        }
        let text = body(&frames);
        tether_agui::verify_sse(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert!(
            text.contains("\"delta\":\"Hello, world\""),
            "{name}: {text}"
        );
    }
}
