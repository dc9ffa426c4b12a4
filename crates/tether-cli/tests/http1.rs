//! The hub's HTTP/1.1 connection loop, byte by byte: keep-alive, pipelining, HTTP/1.0
//! streams, `Expect: 100-continue`, and the answers to requests it does not take.

use std::time::Duration;

use tether_conformance::hub::Hub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EXE: &str = env!("CARGO_BIN_EXE_tether");
const LIMIT: Duration = Duration::from_secs(10);

async fn hub() -> Hub {
    Hub::spawn(EXE, &[]).await.unwrap()
}

/// Reads until `needle` has arrived (or the peer closes), returning everything read.
async fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(LIMIT, async {
        while !String::from_utf8_lossy(&got).contains(needle) {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{needle:?} within {LIMIT:?}: {}",
            String::from_utf8_lossy(&got)
        )
    });
    String::from_utf8(got).unwrap()
}

fn publish(session: &str, body: &str, extra: &str) -> String {
    format!(
        "POST /api/sessions/{session}/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_share_a_connection() {
    let hub = hub().await;
    let mut s = TcpStream::connect(hub.addr()).await.unwrap();
    s.write_all(publish("ka", "{\"n\":1}", "").as_bytes())
        .await
        .unwrap();
    let first = read_until(&mut s, "}").await;
    assert!(first.starts_with("HTTP/1.1 202 "), "{first}");
    // Two requests in one write.
    let two = publish("ka", "{\"n\":2}", "") + &publish("ka", "{\"n\":3}", "");
    s.write_all(two.as_bytes()).await.unwrap();
    let answers = read_until(&mut s, "-3\"]}").await;
    let replies = answers.matches("HTTP/1.1 202 ").count();
    assert_eq!(replies, 2, "{answers}");
}

#[tokio::test]
async fn http10_streams_are_close_delimited() {
    let hub = hub().await;
    let mut s = TcpStream::connect(hub.addr()).await.unwrap();
    s.write_all(b"GET /api/sse/session/old HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut s, "retry: ").await;
    assert!(head.starts_with("HTTP/1.0 200 "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
}

#[tokio::test]
async fn http11_streams_are_chunked() {
    let hub = hub().await;
    let mut s = TcpStream::connect(hub.addr()).await.unwrap();
    s.write_all(b"GET /api/sse/session/new HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut s, "retry: ").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert!(head.contains("x-accel-buffering: no\r\n"), "{head}");
}

#[tokio::test]
async fn expect_continue_is_answered_before_the_body() {
    let hub = hub().await;
    let mut s = TcpStream::connect(hub.addr()).await.unwrap();
    let body = "{\"n\":1}";
    s.write_all(
        format!(
            "POST /api/sessions/cont/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let interim = read_until(&mut s, "\r\n\r\n").await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    s.write_all(body.as_bytes()).await.unwrap();
    let done = read_until(&mut s, "}").await;
    assert!(done.starts_with("HTTP/1.1 202 "), "{done}");
}

#[tokio::test]
async fn requests_it_does_not_take_get_precise_answers() {
    let hub = hub().await;
    let cases: [(&[u8], &str); 4] = [
        (
            b"POST /api/sessions/c/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"n\":1}\r\n0\r\n\r\n",
            "HTTP/1.1 411 ",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", " 400 "),
        (b"DELETE /health/sse HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 "),
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 "),
    ];
    for (request, expected) in cases {
        let mut s = TcpStream::connect(hub.addr()).await.unwrap();
        s.write_all(request).await.unwrap();
        let answer = read_until(&mut s, "\r\n\r\n").await;
        assert!(answer.contains(expected), "{expected}: {answer}");
    }
    // A head larger than 16 KiB.
    let mut s = TcpStream::connect(hub.addr()).await.unwrap();
    let big = format!(
        "GET /health/sse HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let answer = read_until(&mut s, "\r\n\r\n").await;
    assert!(answer.contains(" 431 "), "{answer}");
}
