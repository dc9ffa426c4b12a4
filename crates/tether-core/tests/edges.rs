//! The edges of resumption: the eviction boundary, epoch switches (at connect and
//! mid-stream), the id-only frame after a resync, appends at explicit ids with gaps, and
//! history declared lost.
mod common;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use tether_core::{
    Broker, ConnectOptions, Epoch, EventId, PublishError, SessionId, SessionTracker, frame,
};

fn at(epoch: u64, seq: u64) -> EventId {
    EventId {
        epoch: Epoch::from_u64(epoch),
        seq,
    }
}

fn frame_at(id: EventId) -> Bytes {
    frame::encode_event(Some(id), None, &id.seq.to_string())
}

fn append(broker: &Broker, s: &SessionId, epoch: u64, seqs: impl IntoIterator<Item = u64>) {
    for seq in seqs {
        let id = at(epoch, seq);
        broker.append_at(s, id, frame_at(id)).unwrap();
    }
}

fn seqs(frames: &[Frame]) -> Vec<u64> {
    stored(frames).iter().map(|(s, _)| *s).collect()
}

fn resyncs(frames: &[Frame]) -> Vec<serde_json::Value> {
    frames
        .iter()
        .filter(|f| f.signal().as_deref() == Some("tether.resync"))
        .map(|f| f.json().unwrap()["value"].clone())
        .collect()
}

async fn connect_and_read(broker: &Broker, s: &SessionId, last: &str) -> Vec<Frame> {
    let mut stream = broker.connect(s, ConnectOptions::resume(last)).unwrap();
    drain_frames(&mut stream, QUIET).await.0
}

#[tokio::test(start_paused = true)]
async fn the_eviction_boundary_at_connect() {
    let broker = start(Broker::builder().ring_max_events(4));
    let s = sid("boundary");
    let ids: Vec<EventId> = (1..=10u32)
        .map(|i| broker.publish(&s, &i).unwrap())
        .collect();
    // The ring holds 7..=10: a client that read 6 lost nothing, one that read 5 lost 6.
    let frames = connect_and_read(&broker, &s, &ids[5].to_string()).await;
    assert!(resyncs(&frames).is_empty(), "{frames:?}");
    assert_eq!(seqs(&frames), [7, 8, 9, 10]);
    let frames = connect_and_read(&broker, &s, &ids[4].to_string()).await;
    let r = resyncs(&frames);
    assert_eq!(r.len(), 1, "{frames:?}");
    assert_eq!(r[0]["skipped"], 1);
    assert_eq!(r[0]["resumeFrom"], ids[6].to_string());
    assert_eq!(seqs(&frames), [7, 8, 9, 10]);
}

#[tokio::test(start_paused = true)]
async fn the_eviction_boundary_mid_stream() {
    for (extra, lost) in [(4u32, false), (5, true)] {
        let broker = start(Broker::builder().ring_max_events(4));
        let s = sid("boundary-live");
        let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
        broker.publish(&s, &0).unwrap();
        let (frames, _) = drain_frames(&mut stream, QUIET).await;
        assert_eq!(seqs(&frames), [1]);
        // Four more fit behind the cursor at 1; a fifth evicts seq 2, which it never read.
        for i in 0..extra {
            broker.publish(&s, &i).unwrap();
        }
        let (frames, _) = drain_frames(&mut stream, QUIET).await;
        assert_eq!(
            resyncs(&frames).len(),
            usize::from(lost),
            "{extra}: {frames:?}"
        );
        let first = if lost { 3 } else { 2 };
        assert_eq!(
            seqs(&frames),
            (first..=u64::from(extra) + 1).collect::<Vec<_>>()
        );
    }
}

/// A tracker whose sessions end a lagging stream instead of resyncing in it.
struct EndsStream;
impl SessionTracker for EndsStream {
    fn on_publish(&mut self, _: Option<&str>, _: &str) -> Result<(), tether_core::Refusal> {
        Ok(())
    }
    fn resync_ends_stream(&self) -> bool {
        true
    }
}

#[tokio::test(start_paused = true)]
async fn an_evicted_id_is_resynced_in_the_opening_of_the_stream() {
    let broker = start(Broker::builder().ring_max_events(3));
    let s = sid("opening");
    broker.set_tracker(&s, Box::new(EndsStream)).unwrap();
    let ids: Vec<EventId> = (1..=10u32)
        .map(|i| broker.publish(&s, &i).unwrap())
        .collect();
    let mut stream = broker
        .connect(&s, ConnectOptions::resume(ids[1].to_string()))
        .unwrap();
    // The first chunk carries retry: and the resync: the client learns at once.
    let first = stream.next().await.unwrap();
    let frames = parse(std::str::from_utf8(&first).unwrap());
    assert!(frames[0].retry.is_some());
    assert_eq!(resyncs(&frames).len(), 1, "{frames:?}");
    // And the stream goes on (a session that ends lagging streams would end it otherwise, and
    // its client would reconnect into the same resync for ever).
    let (frames, ended) = drain_frames(&mut stream, QUIET).await;
    assert!(!ended);
    assert_eq!(seqs(&frames), [8, 9, 10]);
}

#[tokio::test(start_paused = true)]
async fn an_epoch_switch_mid_stream_resyncs_and_restarts_at_one() {
    let broker = start(Broker::builder());
    let s = sid("switch");
    append(&broker, &s, 0xa, 1..=5);
    let mut stream = broker.connect(&s, ConnectOptions::resume("a-3")).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert_eq!(seqs(&frames), [4, 5]);
    append(&broker, &s, 0xb, 1..=3);
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let r = resyncs(&frames);
    assert_eq!(r.len(), 1, "{frames:?}");
    assert_eq!(r[0]["reason"], "epoch");
    assert_eq!(r[0]["lastEventId"], "a-5");
    assert_eq!(r[0]["resumeFrom"], "b-1");
    assert_eq!(seqs(&frames), [1, 2, 3]);
    let ids: Vec<_> = stored(&frames).iter().map(|(q, _)| *q).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert!(
        frames
            .iter()
            .filter(|f| f.data.is_some() && f.id.is_some())
            .all(|f| f.id.as_deref().unwrap().starts_with("b-"))
    );
}

#[tokio::test(start_paused = true)]
async fn after_an_epoch_resync_an_id_only_frame_moves_the_client_on() {
    // At connect: the new epoch has nothing yet, so the client has no event to take an id from.
    let broker = start(Broker::builder());
    let s = sid("id-only");
    append(&broker, &s, 0xa, 1..=2);
    broker
        .mark_lost(&s, at(0xb, 0))
        .expect("a new epoch with nothing in it");
    let frames = connect_and_read(&broker, &s, "a-2").await;
    assert_eq!(resyncs(&frames)[0]["reason"], "epoch");
    let last = frames.iter().rev().find_map(|f| f.id.clone()).unwrap();
    assert_eq!(last, "b-0");
    // Reconnecting with it resumes exactly: no second resync.
    let frames = connect_and_read(&broker, &s, &last).await;
    assert!(resyncs(&frames).is_empty(), "{frames:?}");
    append(&broker, &s, 0xb, 1..=1);
    let frames = connect_and_read(&broker, &s, &last).await;
    assert!(resyncs(&frames).is_empty(), "{frames:?}");
    assert_eq!(seqs(&frames), [1]);

    // Mid-stream: the client's id moves before the first event of the new epoch arrives.
    let s = sid("id-only-live");
    append(&broker, &s, 0xc, 1..=1);
    let mut stream = broker.connect(&s, ConnectOptions::resume("c-1")).unwrap();
    let _ = drain_frames(&mut stream, QUIET).await;
    broker.mark_lost(&s, at(0xd, 0)).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert_eq!(resyncs(&frames).len(), 1, "{frames:?}");
    assert_eq!(
        frames.iter().rev().find_map(|f| f.id.clone()).unwrap(),
        "d-0"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_append_at_changes_nothing() {
    let broker = start(Broker::builder());
    let s = sid("refused");
    append(&broker, &s, 0xa, 1..=3);
    for bad in [at(0xb, 0), at(0xa, 0), at(0xa, u64::MAX), at(0xb, u64::MAX)] {
        let err = broker.append_at(&s, bad, frame_at(bad)).unwrap_err();
        assert!(
            matches!(err, PublishError::SeqOutOfRange { .. }),
            "{bad}: {err:?}"
        );
    }
    assert_eq!(
        broker.append_at(&s, at(0xa, 3), frame_at(at(0xa, 3))),
        Err(PublishError::OutOfOrder { seq: 3, head: 3 })
    );
    assert_eq!(broker.head(&s), Some(at(0xa, 3)));
    let frames = connect_and_read(&broker, &s, "a-1").await;
    assert!(resyncs(&frames).is_empty());
    assert_eq!(seqs(&frames), [2, 3]);
}

#[tokio::test(start_paused = true)]
async fn the_last_sequence_number_is_refused_instead_of_overflowing() {
    let broker = start(Broker::builder());
    let s = sid("max");
    let last = at(0xa, u64::MAX - 1);
    broker.append_at(&s, last, frame_at(last)).unwrap();
    assert_eq!(
        broker.publish(&s, &1).unwrap_err(),
        PublishError::SeqOutOfRange { seq: u64::MAX }
    );
    assert_eq!(broker.head(&s), Some(last));
    assert!(matches!(
        broker.mark_lost(&s, at(0xa, u64::MAX)),
        Err(PublishError::SeqOutOfRange { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn gaps_in_appended_sequence_numbers_are_not_history_lost() {
    let broker = start(Broker::builder().ring_max_events(3));
    let s = sid("gaps");
    append(&broker, &s, 0xa, [2, 5, 9]);
    // A fresh client: nothing was lost, it starts at the first event.
    let mut stream = broker.connect(&s, ConnectOptions::default()).unwrap();
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert!(resyncs(&frames).is_empty(), "{frames:?}");
    assert_eq!(seqs(&frames), [2, 5, 9]);
    drop(stream);
    // A client in a hole continues after it, once each (the ring's fallback lookup).
    for (last, want) in [("a-5", vec![9]), ("a-3", vec![5, 9]), ("a-2", vec![5, 9])] {
        let frames = connect_and_read(&broker, &s, last).await;
        assert!(resyncs(&frames).is_empty(), "{last}: {frames:?}");
        assert_eq!(seqs(&frames), want, "{last}");
    }
    // Evicting 2 and 5 loses nothing for a client that read 5.
    append(&broker, &s, 0xa, [12, 13]);
    let frames = connect_and_read(&broker, &s, "a-5").await;
    assert!(resyncs(&frames).is_empty(), "{frames:?}");
    assert_eq!(seqs(&frames), [9, 12, 13]);
    // A client that read 2 lost 5: a resync, with no count (the numbers have gaps).
    let frames = connect_and_read(&broker, &s, "a-2").await;
    let r = resyncs(&frames);
    assert_eq!(r.len(), 1, "{frames:?}");
    assert_eq!(r[0]["reason"], "evicted");
    assert!(r[0].get("skipped").is_none());
    assert_eq!(r[0]["resumeFrom"], "a-9");
}

#[tokio::test(start_paused = true)]
async fn history_marked_lost_resyncs_a_cursor_in_the_hole() {
    let broker = start(Broker::builder());
    let s = sid("lost");
    append(&broker, &s, 0xa, 1..=3);
    let mut stream = broker.connect(&s, ConnectOptions::resume("a-3")).unwrap();
    let _ = drain_frames(&mut stream, QUIET).await;
    // The log lost 4..=6; 7 follows.
    broker.mark_lost(&s, at(0xa, 6)).unwrap();
    // The parked stream is woken for the resync before any new event arrives.
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    let r = resyncs(&frames);
    assert_eq!(r.len(), 1, "{frames:?}");
    assert_eq!(r[0]["reason"], "evicted");
    assert_eq!(r[0]["resumeFrom"], "a-7");
    assert_eq!(
        frames.iter().rev().find_map(|f| f.id.clone()).unwrap(),
        "a-6"
    );
    append(&broker, &s, 0xa, 7..=7);
    let (frames, _) = drain_frames(&mut stream, QUIET).await;
    assert_eq!(seqs(&frames), [7]);
    // A reconnect from before the loss resyncs too; from the mark on it does not.
    let frames = connect_and_read(&broker, &s, "a-2").await;
    assert_eq!(resyncs(&frames).len(), 1);
    assert_eq!(seqs(&frames), [7]);
    let frames = connect_and_read(&broker, &s, "a-6").await;
    assert!(resyncs(&frames).is_empty());
    // Publishing continues after the mark.
    assert_eq!(broker.publish(&s, &8).unwrap(), at(0xa, 8));
}

#[derive(Default)]
struct Count(std::sync::atomic::AtomicUsize);
impl std::task::Wake for Count {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn marking_history_lost_wakes_a_parked_stream() {
    use futures_util::Stream;
    use std::task::{Context, Poll};
    let broker = start(Broker::builder().without_heartbeats());
    let s = sid("lost-wake");
    append(&broker, &s, 0xa, 1..=3);
    let mut stream = broker.connect(&s, ConnectOptions::resume("a-3")).unwrap();
    let count = std::sync::Arc::new(Count::default());
    let waker = std::task::Waker::from(count.clone());
    let mut cx = Context::from_waker(&waker);
    while let Poll::Ready(Some(_)) = std::pin::Pin::new(&mut stream).poll_next(&mut cx) {}
    broker.mark_lost(&s, at(0xa, 6)).unwrap();
    assert_eq!(
        count.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "parked until the next event otherwise"
    );
    let Poll::Ready(Some(chunk)) = std::pin::Pin::new(&mut stream).poll_next(&mut cx) else {
        panic!("the resync is ready");
    };
    assert_eq!(
        resyncs(&parse(std::str::from_utf8(&chunk).unwrap())).len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn an_epoch_switch_frees_the_old_ring_s_bytes() {
    let broker = start(Broker::builder());
    let s = sid("switch-bytes");
    append(&broker, &s, 0xa, 1..=5);
    let old: usize = (1..=5).map(|q| frame_at(at(0xa, q)).len()).sum();
    assert_eq!(broker.health().ring_bytes, old);
    append(&broker, &s, 0xb, 1..=2);
    let new: usize = (1..=2).map(|q| frame_at(at(0xb, q)).len()).sum();
    assert_eq!(broker.health().ring_bytes, new);
    broker.mark_lost(&s, at(0xc, 4)).unwrap();
    assert_eq!(broker.health().ring_bytes, 0);
}

#[tokio::test(start_paused = true)]
async fn the_highest_sequence_number_is_usable_once() {
    let broker = start(Broker::builder());
    let s = sid("max-once");
    let id = at(0xa, u64::MAX - 2);
    broker.append_at(&s, id, frame_at(id)).unwrap();
    assert_eq!(broker.publish(&s, &1).unwrap(), at(0xa, u64::MAX - 1));
    assert_eq!(
        broker.publish(&s, &2).unwrap_err(),
        PublishError::SeqOutOfRange { seq: u64::MAX }
    );
}

#[tokio::test(start_paused = true)]
async fn contiguous_appends_keep_the_count_of_what_was_lost() {
    let broker = start(Broker::builder().ring_max_events(2));
    let s = sid("contiguous");
    append(&broker, &s, 0xa, 1..=5);
    let frames = connect_and_read(&broker, &s, "a-1").await;
    let r = resyncs(&frames);
    assert_eq!(r.len(), 1, "{frames:?}");
    assert_eq!(r[0]["skipped"], 2);
    assert_eq!(seqs(&frames), [4, 5]);
}
