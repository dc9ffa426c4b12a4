//! Starts the example on a free port and runs its agent over HTTP: the stream passes the AG-UI
//! client's checks, the approval arrives through the decision route, and a connection dropped
//! in the middle of the message resumes without losing a token.

use std::time::Duration;

use serde_json::{Value, json};
use tether_conformance::client::{SseConn, StreamOptions, Target, send};
use tether_conformance::hub::Hub;
use tether_conformance::sse::Block;

const LIMIT: Duration = Duration::from_secs(20);
const INTRO: &str = "I looked at your workspace. The build cache in /tmp/build-cache takes 4.2 GB \
                     and has not been used for a month, so I would like to delete it.";

/// The example on a free port, its address, and the development token it printed.
async fn start(token_delay_ms: u64) -> (Hub, Target, String) {
    let args = [
        "--approval-secs".to_owned(),
        "60".to_owned(),
        "--token-delay-ms".to_owned(),
        token_delay_ms.to_string(),
    ];
    let example = Hub::spawn_service(env!("CARGO_BIN_EXE_example-agui-agent"), &args)
        .await
        .expect("the example starts and prints its address");
    let target = Target::parse(&example.base_url()).unwrap();
    let token = example
        .dev_token()
        .expect("the example prints a development token")
        .to_owned();
    (example, target, token)
}

fn json_headers() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/json".into())]
}

/// Opens the thread's stream as the page does: the token and the last id in the query.
async fn open(target: &Target, token: &str, thread: &str, last_id: Option<&str>) -> SseConn {
    let mut path = format!("/api/sse/session/{thread}?token={token}");
    if let Some(id) = last_id {
        path.push_str(&format!("&lastEventId={id}"));
    }
    let conn = SseConn::open(target, &path, StreamOptions::default())
        .await
        .unwrap();
    assert_eq!(conn.status(), 200);
    conn
}

async fn start_agent(target: &Target, thread: &str) {
    let body = json!({"threadId": thread}).to_string();
    let reply = send(
        target,
        "POST",
        "/api/demo/start",
        &json_headers(),
        body.as_bytes(),
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 202, "{}", reply.text());
}

/// Reads until a data frame satisfies `stop` (included).
async fn read_until(conn: &mut SseConn, stop: impl Fn(&Value) -> bool) -> Vec<Block> {
    let mut frames = Vec::new();
    loop {
        let f = conn.next_event(LIMIT).await.unwrap();
        let done = f.json().is_some_and(|v| stop(&v));
        frames.push(f);
        if done {
            return frames;
        }
    }
}

fn is_interrupt(v: &Value) -> bool {
    v["type"] == "RUN_FINISHED" && v["outcome"]["type"] == "interrupt"
}

fn body(frames: &[Block]) -> String {
    frames
        .iter()
        .filter_map(|f| f.data.as_ref())
        .map(|d| format!("data: {d}\n\n"))
        .collect()
}

fn text_of(frames: &[Block], message: &str) -> String {
    frames
        .iter()
        .filter_map(Block::json)
        .filter(|v| v["type"] == "TEXT_MESSAGE_CONTENT" && v["messageId"] == message)
        .map(|v| v["delta"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_streams_asks_for_approval_and_the_pages_own_origin_decides() {
    let (example, target, token) = start(2).await;
    let thread = "demo-approve";
    let mut conn = open(&target, &token, thread, None).await;
    start_agent(&target, thread).await;

    let mut frames = read_until(&mut conn, is_interrupt).await;
    assert_eq!(text_of(&frames, "run-1-intro"), INTRO);
    let interrupt = frames.last().unwrap().json().unwrap()["outcome"]["interrupts"][0].clone();
    assert_eq!(interrupt["toolCallId"], "run-1-delete");
    assert_eq!(interrupt["metadata"]["payload"]["path"], "/tmp/build-cache");

    let decision = format!(
        "/api/sessions/{thread}/approvals/{}/decision",
        interrupt["id"].as_str().unwrap()
    );
    let mut headers = json_headers();
    headers.push(("Authorization".into(), format!("Bearer {token}")));
    // Another site's page holding the same token is refused; the approval stays pending.
    let mut foreign = headers.clone();
    foreign.push(("Origin".into(), "https://evil.example".into()));
    let reply = send(
        &target,
        "POST",
        &decision,
        &foreign,
        br#"{"approved":true}"#,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 403, "{}", reply.text());
    // The example's own page decides: same origin, as its `fetch` sends it.
    headers.push(("Origin".into(), example.base_url()));
    let reply = send(
        &target,
        "POST",
        &decision,
        &headers,
        br#"{"approved":false}"#,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());

    frames.extend(read_until(&mut conn, |v| v["type"] == "RUN_FINISHED").await);
    let all = body(&frames);
    tether_agui::verify_sse(all.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{all}"));
    let events: Vec<Value> = frames.iter().filter_map(Block::json).collect();
    let result = events
        .iter()
        .find(|v| v["type"] == "TOOL_CALL_RESULT")
        .unwrap();
    assert_eq!(result["content"], "not run: rejected");
    let second_run = events
        .iter()
        .filter(|v| v["type"] == "RUN_STARTED")
        .nth(1)
        .unwrap();
    assert_eq!(second_run["parentRunId"], "run-1");
    let reply_id = format!("{}-reply", second_run["runId"].as_str().unwrap());
    assert_eq!(
        text_of(&frames, &reply_id),
        "Understood, I left the build cache where it is."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_without_losing_a_token() {
    let (_example, target, token) = start(40).await;
    let thread = "demo-drop";
    let mut conn = open(&target, &token, thread, None).await;
    start_agent(&target, thread).await;
    let first = read_until(&mut conn, |v| {
        v["type"] == "TEXT_MESSAGE_CONTENT" && v["delta"] == "cache "
    })
    .await;
    let last_id = first.iter().rev().find_map(|f| f.id.clone()).unwrap();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let mut again = open(&target, &token, thread, Some(&last_id)).await;
    let rest = read_until(&mut again, is_interrupt).await;
    assert!(
        rest.iter()
            .all(|f| f.signal().as_deref() != Some("tether.resync")),
        "an exact resume needs no resync"
    );
    let whole = [first.clone(), rest.clone()].concat();
    assert_eq!(
        text_of(&whole, "run-1-intro"),
        INTRO,
        "no token lost or repeated"
    );
    let all = body(&whole);
    tether_agui::verify_sse(all.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{all}"));
    assert!(!text_of(&first, "run-1-intro").is_empty());
    assert!(
        !text_of(&rest, "run-1-intro").is_empty(),
        "tokens came while the page was away"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_and_the_stream_needs_the_token() {
    let (_example, target, token) = start(2).await;
    let anonymous = send(
        &target,
        "GET",
        "/api/sse/session/demo-page",
        &[],
        b"",
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(anonymous.status, 401, "the stream needs the token");
    let page = send(&target, "GET", "/", &[], b"", LIMIT).await.unwrap();
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains(r#"<script src="/page.js""#),
        "the page loads its bundled script from the example itself, no CDN"
    );
    assert!(
        !html.contains("new EventSource"),
        "no hand-written stream code"
    );
    assert!(!html.contains("https://"), "nothing from another origin");
    assert!(
        !html.contains(&token),
        "the page takes the token from its URL"
    );

    let script = send(&target, "GET", "/page.js", &[], b"", LIMIT)
        .await
        .unwrap();
    assert_eq!(script.status, 200);
    let js = script.text();
    assert_eq!(js, include_str!("../src/page.bundle.js"));
    // The bundle carries TetherAgent's routes and the page's own decision call.
    assert!(js.contains("api/agui/run"));
    assert!(js.contains("prelude=always"));
    assert!(js.contains("/decision"));
    assert!(!js.contains("new EventSource"));
    assert!(!js.contains(&token));
}
