//! Starts the example binary on a free port, runs a job over HTTP and follows it on the
//! session's event stream: every progress event arrives once and in order, then `finished`;
//! SIGTERM then drains the stream and the process exits.

use std::process::Stdio;
use std::time::Duration;

use tether_conformance::client::{SseConn, StreamOptions, Target, send};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const LIMIT: Duration = Duration::from_secs(10);

/// Starts the binary with `--addr 127.0.0.1:0` and returns it with its base URL.
async fn start() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-warp"))
        .args(["--addr", "127.0.0.1:0", "--drain-secs", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the example starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_owned();
            }
        }
        panic!("the example exited before listening");
    })
    .await
    .expect("the example prints its address");
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reports_its_progress_in_order_then_finishes() {
    let (mut child, url) = start().await;
    let target = Target::parse(&url).unwrap();

    let started = send(&target, "POST", "/jobs?steps=5", &[], b"", LIMIT)
        .await
        .unwrap();
    assert_eq!(started.status, 202, "{}", started.text());
    let job = started.json().unwrap();
    let path = job["events"].as_str().unwrap().to_owned();
    let job_id = job["job"].as_str().unwrap().to_owned();

    let mut stream = SseConn::open(
        &target,
        &path,
        StreamOptions {
            headers: vec![("Accept".into(), "text/event-stream".into())],
            recv_buffer: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));

    let mut seqs = Vec::new();
    for step in 1..=5 {
        let frame = stream.next_event(LIMIT).await.unwrap();
        let event = frame.json().unwrap();
        assert_eq!(event["type"], "progress", "{event}");
        assert_eq!(event["job"], job_id.as_str());
        assert_eq!(event["step"], step, "{event}");
        seqs.push(frame.id.unwrap());
    }
    let last = stream.next_event(LIMIT).await.unwrap();
    assert_eq!(last.json().unwrap()["type"], "finished");
    seqs.push(last.id.unwrap());
    let numbers: Vec<u64> = seqs
        .iter()
        .map(|id| id.rsplit_once('-').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(numbers, (1..=6).collect::<Vec<u64>>(), "ids {seqs:?}");

    // SIGTERM: the open stream ends with the drain signal, then the process exits.
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest = stream.until_end(LIMIT).await.unwrap();
    assert!(
        rest.iter()
            .any(|f| f.signal().as_deref() == Some("tether.drain")),
        "{rest:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the example exits after draining")
        .unwrap();
    assert!(status.success(), "{status}");
}
