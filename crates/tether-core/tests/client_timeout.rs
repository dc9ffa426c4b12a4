//! A client that stops reading is dropped within the client timeout and its slot freed.
mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tether_core::{Broker, ConnectOptions, ConnectionPolicy};

fn counter(
    snapshot: &[(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )],
    name: &str,
    label: Option<(&str, &str)>,
) -> u64 {
    snapshot
        .iter()
        .filter(|(k, ..)| k.key().name() == name)
        .filter(|(k, ..)| {
            label.is_none_or(|(lk, lv)| k.key().labels().any(|l| l.key() == lk && l.value() == lv))
        })
        .map(|(.., v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

#[tokio::test(start_paused = true)]
async fn a_stalled_reader_is_dropped_and_its_slot_freed() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let broker = start(
        Broker::builder()
            .client_timeout(Duration::from_secs(60))
            .connection_policy(ConnectionPolicy::Reject),
    );
    let s = sid("stall");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = stream.next().await.unwrap();
    // The client stops reading; events keep coming.
    broker.publish(&s, &1).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    broker.publish(&s, &2).unwrap();
    assert_eq!(broker.connection_count(), 1, "not yet");
    tokio::time::sleep(Duration::from_secs(36)).await;
    assert_eq!(
        broker.connection_count(),
        0,
        "dropped within timeout + sweep interval"
    );
    // The slot is free for the client's reconnect, even under the Reject policy.
    let mut again = broker.connect(&s, ConnectOptions::resume("")).unwrap();
    let (frames, _) = drain_frames(&mut again, QUIET).await;
    assert_eq!(stored(&frames).len(), 2, "nothing was lost");
    // The stalled stream ends if it is ever polled again.
    assert_eq!(stream.next().await, None);
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(
        counter(&snap, "sse_disconnects_total", Some(("reason", "timeout"))),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_reader_that_keeps_polling_is_not_dropped() {
    let broker = start(Broker::builder().client_timeout(Duration::from_secs(60)));
    let s = sid("idle");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    // Polled continuously (heartbeats every 15 s) for ten minutes.
    let (frames, ended) = drain_frames(&mut stream, Duration::from_secs(20)).await;
    assert!(!ended);
    assert!(frames.iter().filter(|f| f.comment).count() >= 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while tokio::time::Instant::now() < deadline {
        let _ = next_within(&mut stream, Duration::from_secs(20)).await;
    }
    assert_eq!(broker.connection_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_silent_stream_is_dropped_even_without_pending_events() {
    let broker = start(
        Broker::builder()
            .keepalive_interval(Duration::from_secs(15))
            .client_timeout(Duration::from_secs(60)),
    );
    let s = sid("silent");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = stream.next().await.unwrap();
    // Never polled again: not even heartbeats leave. keepalive + timeout + sweep later it is gone.
    tokio::time::sleep(Duration::from_secs(81)).await;
    assert_eq!(broker.connection_count(), 0);
    drop(stream);
}

#[tokio::test]
async fn socket_options_apply_to_a_loopback_connection() {
    use tether_core::net::{SocketOptions, bind};
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let opts = SocketOptions::for_client_timeout(Duration::from_secs(60));
    opts.apply(&server).unwrap();
    let sock = socket2::SockRef::from(&server);
    assert!(sock.keepalive().unwrap());
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(15));
    #[cfg(target_os = "linux")]
    assert_eq!(
        sock.tcp_user_timeout().unwrap(),
        Some(Duration::from_secs(60))
    );
    assert!(sock.tcp_nodelay().unwrap());
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_that_keeps_polling_is_kept() {
    // One frame per chunk and more published than read: frames stay pending for ten minutes,
    // but the client keeps reading.
    let broker = start(
        Broker::builder()
            .client_timeout(Duration::from_secs(60))
            .max_chunk_bytes(1)
            .ring_max_events(100_000),
    );
    let s = sid("slow-reader");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = stream.next().await.unwrap();
    let mut read = 0;
    for i in 0..60u32 {
        broker.publish(&s, &(2 * i)).unwrap();
        broker.publish(&s, &(2 * i + 1)).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let chunk = next_within(&mut stream, Duration::from_millis(1))
            .await
            .expect("a frame is ready")
            .expect("the stream is open");
        read += stored(&parse(std::str::from_utf8(&chunk).unwrap())).len();
    }
    assert_eq!(read, 60);
    assert_eq!(
        broker.connection_count(),
        1,
        "polled every 10 s: not stalled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_caught_up_is_not_stalled_while_nothing_is_pending() {
    // No heartbeats: an idle stream is not polled at all, and that is fine while it has
    // nothing to write.
    let broker = start(
        Broker::builder()
            .without_heartbeats()
            .client_timeout(Duration::from_secs(60)),
    );
    let s = sid("caught-up");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    broker.publish(&s, &1).unwrap();
    let (frames, _) = drain_frames(&mut stream, Duration::from_millis(1)).await;
    assert_eq!(stored(&frames).len(), 1);
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(broker.connection_count(), 1);
}

/// A server that took the stream's last frames and never came back for more was stuck
/// writing them to a client that stopped reading: when it drops the stream without saying
/// why (hyper and actix-web on a write error), the end counts as a timeout. One that was
/// waiting for events when it dropped the stream saw its client leave.
#[tokio::test(start_paused = true)]
async fn a_stream_dropped_while_its_last_chunk_was_being_written_counts_as_a_timeout() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let broker = start(
        Broker::builder()
            .without_heartbeats()
            .client_timeout(Duration::from_secs(10)),
    );

    let stuck = sid("stuck-writing");
    let mut stream = broker.connect(&stuck, ConnectOptions::default()).unwrap();
    let _opening = stream.next().await.unwrap();
    broker.publish(&stuck, &"x".repeat(100_000)).unwrap();
    // The server takes every frame: nothing is left pending in the session.
    let _chunk = stream.next().await.unwrap();
    // Its write of that chunk never ends; the client timeout cuts the socket.
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(stream);

    let waiting = sid("waiting-for-events");
    let mut stream = broker.connect(&waiting, ConnectOptions::default()).unwrap();
    broker.publish(&waiting, &1).unwrap();
    let (frames, _) = drain_frames(&mut stream, Duration::from_millis(1)).await;
    assert_eq!(stored(&frames).len(), 1);
    // The server waits for the next event; the client leaves long after.
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(stream);

    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(
        counter(&snap, "sse_disconnects_total", Some(("reason", "timeout"))),
        1,
        "the stream stuck writing"
    );
    assert_eq!(
        counter(
            &snap,
            "sse_disconnects_total",
            Some(("reason", "client_closed"))
        ),
        1,
        "the stream waiting for events"
    );
}
