//! Starts the example binary on a free port, runs a job over HTTP and follows it on the
//! session's event stream: every progress event arrives once and in order, then `finished`;
//! SIGTERM then drains the stream and the process exits.

mod common;

use std::time::Duration;

use tether_conformance::client::{SseConn, StreamOptions, Target, send};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reports_its_progress_in_order_then_finishes() {
    let (mut child, url) = common::start().await;
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
