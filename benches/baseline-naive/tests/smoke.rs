//! Starts the server binary on 127.0.0.1:0, subscribes, publishes one event and reads it back.

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

#[tokio::test]
async fn publish_reaches_subscriber() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_baseline-naive"))
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
        let mut sse = TcpStream::connect(&addr).await.unwrap();
        sse.write_all(b"GET /api/sse/session/smoke HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        read_until(&mut sse, &mut received, b"\r\n\r\n").await;
        let head = String::from_utf8_lossy(&received).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");

        let body = br#"[{"ts":1,"a":1},{"ts":2,"a":2}]"#;
        let mut publisher = TcpStream::connect(&addr).await.unwrap();
        let request = format!(
            "POST /api/sessions/smoke/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        publisher.write_all(request.as_bytes()).await.unwrap();
        publisher.write_all(body).await.unwrap();
        let mut answer = Vec::new();
        read_until(&mut publisher, &mut answer, b"]}").await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        assert!(answer.contains(r#"{"ids":["1","2"]}"#), "{answer}");

        read_until(&mut sse, &mut received, b"\"ts\":2}\n\n").await;
        let stream = String::from_utf8_lossy(&received);
        assert!(stream.contains("id: 1\ndata: {\"a\":1,\"ts\":1}\n\n"), "{stream}");
        assert!(stream.contains("id: 2\ndata: {\"a\":2,\"ts\":2}\n\n"), "{stream}");
    })
    .await
    .unwrap();
}
