//! Starts the server binary on 127.0.0.1:0, subscribes, publishes, reads the events back and
//! resumes with `Last-Event-ID`.

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::Command,
    time::timeout,
};

async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, needle: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !buf.windows(needle.len()).any(|w| w == needle) {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed before {:?}",
            String::from_utf8_lossy(needle)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn subscribe(addr: &str, last_event_id: Option<&str>) -> (TcpStream, Vec<u8>) {
    let mut sse = TcpStream::connect(addr).await.unwrap();
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    let request = format!("GET /api/sse/session/smoke HTTP/1.1\r\nHost: x\r\n{resume}\r\n");
    sse.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    read_until(&mut sse, &mut received, b"\r\n\r\n").await;
    let head = String::from_utf8_lossy(&received).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    (sse, received)
}

async fn publish(publisher: &mut TcpStream, body: &[u8]) -> String {
    let request = format!(
        "POST /api/sessions/smoke/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    publisher.write_all(request.as_bytes()).await.unwrap();
    publisher.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    read_until(publisher, &mut answer, b"]}").await;
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn publish_reaches_subscriber_and_resume_replays() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_baseline-bare"))
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();

    timeout(Duration::from_secs(20), async {
        let (mut sse, mut received) = subscribe(&addr, None).await;
        let mut publisher = TcpStream::connect(&addr).await.unwrap();
        let answer = publish(&mut publisher, br#"[{"ts":1},{"ts":2}]"#).await;
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        assert!(answer.ends_with(r#"{"ids":["1","2"]}"#), "{answer}");
        // The same keep-alive connection takes a second request.
        let answer = publish(&mut publisher, br#"{"ts":3}"#).await;
        assert!(answer.ends_with(r#"{"ids":["3"]}"#), "{answer}");

        read_until(&mut sse, &mut received, b"id: 3\ndata: {\"ts\":3}\n\n").await;
        let stream = String::from_utf8_lossy(&received);
        assert!(
            stream.contains("\r\n\r\nid: 1\ndata: {\"ts\":1}\n\nid: 2\ndata: {\"ts\":2}\n\n"),
            "{stream}"
        );
        drop(sse);

        let (mut resumed, mut received) = subscribe(&addr, Some("1")).await;
        read_until(&mut resumed, &mut received, b"id: 3\n").await;
        let stream = String::from_utf8_lossy(&received);
        assert!(
            stream.contains("id: 2\n") && !stream.contains("id: 1\n"),
            "{stream}"
        );
    })
    .await
    .unwrap();
}
