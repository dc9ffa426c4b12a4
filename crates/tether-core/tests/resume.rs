//! Resumption with Last-Event-ID: exact resume, resyncs, snapshots, and coalescing.
mod common;

use common::*;
use futures_util::StreamExt;
use tether_core::{Broker, ConnectError, ConnectOptions, Epoch, EventId, SnapshotProvider};

fn publish_n(broker: &Broker, s: &tether_core::SessionId, from: u32, to: u32) -> Vec<EventId> {
    (from..=to)
        .map(|i| broker.publish(s, &i).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn exact_resume_continues_right_after_the_id() {
    let broker = start(Broker::builder());
    let s = sid("exact");
    let ids = publish_n(&broker, &s, 1, 10);
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(ids[3].to_string()))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert!(
        frames.iter().all(|f| f.signal().is_none()),
        "no resync: {frames:?}"
    );
    let got: Vec<_> = stored(&frames).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, (5..=10).collect::<Vec<_>>());
    assert!(frames[0].retry.is_some(), "the stream opens with retry:");
}

#[tokio::test(start_paused = true)]
async fn resume_at_the_head_waits_for_live_events() {
    let broker = start(Broker::builder());
    let s = sid("head");
    let ids = publish_n(&broker, &s, 1, 3);
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(ids[2].to_string()))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert!(stored(&frames).is_empty());
    broker.publish(&s, &4).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert_eq!(stored(&frames), [(4, serde_json::json!(4))]);
}

async fn resync_for(last: &str, broker: &Broker, s: &tether_core::SessionId) -> Vec<Frame> {
    let mut stream = broker.connect(s, ConnectOptions::resume(last)).unwrap();
    drain_frames(&mut stream, QUIET).await.0
}

#[tokio::test(start_paused = true)]
async fn evicted_id_gets_a_resync_then_the_oldest_retained() {
    let broker = start(Broker::builder().ring_max_events(4));
    let s = sid("evicted");
    let ids = publish_n(&broker, &s, 1, 10);
    let frames = resync_for(&ids[1].to_string(), &broker, &s).await;
    let signal = frames.iter().find(|f| f.signal().is_some()).unwrap();
    let v = signal.json().unwrap();
    assert_eq!(v["name"], "tether.resync");
    assert_eq!(v["value"]["reason"], "evicted");
    assert_eq!(v["value"]["lastEventId"], ids[1].to_string());
    assert_eq!(v["value"]["resumeFrom"], ids[6].to_string());
    assert_eq!(v["value"]["skipped"], 4);
    let got: Vec<u64> = stored(&frames).iter().map(|(s, _)| *s).collect();
    assert_eq!(got, [7, 8, 9, 10]);
    // The signal comes before any replayed event.
    let sig_pos = frames.iter().position(|f| f.signal().is_some()).unwrap();
    let first_event = frames
        .iter()
        .position(|f| f.id.is_some() && f.data.is_some())
        .unwrap();
    assert!(sig_pos < first_event);
}

#[tokio::test(start_paused = true)]
async fn foreign_epoch_future_and_unknown_ids_get_resyncs() {
    let broker = start(Broker::builder());
    let s = sid("foreign");
    let ids = publish_n(&broker, &s, 1, 3);
    let other_epoch = EventId {
        epoch: Epoch::from_u64(ids[0].epoch.get() ^ 0xff),
        seq: 2,
    };
    let ahead = EventId { seq: 99, ..ids[0] };
    for (last, reason) in [
        (other_epoch.to_string(), "epoch"),
        (ahead.to_string(), "ahead"),
        ("msg_17".to_owned(), "unknown"),
    ] {
        let frames = resync_for(&last, &broker, &s).await;
        let signal = frames
            .iter()
            .find(|f| f.signal().is_some())
            .expect("a resync");
        assert_eq!(signal.json().unwrap()["value"]["reason"], reason, "{last}");
        let got: Vec<u64> = stored(&frames).iter().map(|(s, _)| *s).collect();
        assert_eq!(
            got,
            [1, 2, 3],
            "without a snapshot it continues from the oldest"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_ids_are_a_typed_error() {
    let broker = start(Broker::builder());
    let s = sid("malformed");
    for bad in ["a b", "x\r\nid: 5", &"1".repeat(129)] {
        let err = broker.connect(&s, ConnectOptions::resume(bad)).unwrap_err();
        assert!(
            matches!(err, ConnectError::InvalidLastEventId(_)),
            "{bad:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn snapshot_follows_the_resync_and_the_stream_continues_from_the_head() {
    let broker = start(Broker::builder().ring_max_events(3));
    let s = sid("snap");
    broker
        .set_tracker(
            &s,
            Box::new(SnapshotProvider(|out: &mut Vec<String>| {
                out.push(r#"{"type":"STATE_SNAPSHOT","snapshot":{"n":10}}"#.to_owned())
            })),
        )
        .unwrap();
    let ids = publish_n(&broker, &s, 1, 10);
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(ids[0].to_string()))
        .unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let data: Vec<_> = frames.iter().filter(|f| f.data.is_some()).collect();
    assert_eq!(data[0].signal().as_deref(), Some("tether.resync"));
    assert_eq!(data[1].json().unwrap()["type"], "STATE_SNAPSHOT");
    assert!(
        stored(&frames).is_empty(),
        "history is covered by the snapshot: {frames:?}"
    );
    // An id-only frame moves the client's last id to the head.
    let id_only = frames
        .iter()
        .find(|f| f.data.is_none() && f.id.is_some())
        .unwrap();
    assert_eq!(id_only.id.as_deref(), Some(ids[9].to_string().as_str()));
    // Live events follow, once.
    broker.publish(&s, &11).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert_eq!(stored(&frames), [(11, serde_json::json!(11))]);
    // Reconnecting with the id-only frame's id resumes exactly.
    drop(stream);
    let mut again = broker
        .connect(&s, ConnectOptions::resume(ids[9].to_string()))
        .unwrap();
    let (frames, _) = drain_frames(&mut again, QUIET).await;
    assert!(frames.iter().all(|f| f.signal().is_none()));
    assert_eq!(stored(&frames), [(11, serde_json::json!(11))]);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_is_behind_gets_one_coalesced_chunk() {
    let broker = start(Broker::builder());
    let s = sid("coalesce");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _retry = stream.next().await.unwrap();
    publish_n(&broker, &s, 1, 50);
    let chunk = stream.next().await.unwrap();
    let frames = parse(std::str::from_utf8(&chunk).unwrap());
    assert_eq!(stored(&frames).len(), 50, "all pending frames in one write");
}

#[tokio::test(start_paused = true)]
async fn a_reader_evicted_while_connected_gets_a_resync() {
    let broker = start(Broker::builder().ring_max_events(4));
    let s = sid("slow");
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let _ = stream.next().await.unwrap();
    publish_n(&broker, &s, 1, 2);
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert_eq!(stored(&frames).len(), 2);
    publish_n(&broker, &s, 3, 20);
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert_eq!(
        frames
            .iter()
            .find(|f| f.signal().is_some())
            .unwrap()
            .json()
            .unwrap()["value"]["skipped"],
        14
    );
    let got: Vec<u64> = stored(&frames).iter().map(|(s, _)| *s).collect();
    assert_eq!(got, [17, 18, 19, 20]);
}

#[tokio::test(start_paused = true)]
async fn retry_hint_is_jittered_within_bounds() {
    let broker = start(Broker::builder());
    let s = sid("retry");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
        let first = stream.next().await.unwrap();
        let frames = parse(std::str::from_utf8(&first).unwrap());
        let retry = frames[0].retry.unwrap();
        assert!((1500..=4500).contains(&retry), "{retry}");
        seen.insert(retry);
    }
    assert!(seen.len() > 10, "jittered: {seen:?}");
}
