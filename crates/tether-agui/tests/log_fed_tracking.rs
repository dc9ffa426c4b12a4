//! The tracker of a session a backplane feeds, with the backplane played by a plain log and
//! several brokers as its nodes: events are judged before they are appended (the whole batch
//! or nothing), a judgement is tied to the ring's head (a stale one loses the compare and
//! set), the tracker follows the events that come back from the log, and a node that met the
//! session late rebuilds it from any checkpoint to the same state as a node that saw it all.

mod support;

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;
use tether_core::{
    Broker, ConnectOptions, Epoch, Event, EventId, Judged, Placed, PublishError, SessionId, frame,
};

/// The shared log: what a backplane stores, in its order.
struct Log {
    epoch: Epoch,
    frames: Vec<Bytes>,
}

impl Log {
    fn new() -> Self {
        Self {
            epoch: Epoch::from_u64(0xfeed),
            frames: Vec::new(),
        }
    }

    fn head(&self) -> EventId {
        self.at(self.frames.len() as u64)
    }

    fn at(&self, seq: u64) -> EventId {
        EventId {
            epoch: self.epoch,
            seq,
        }
    }

    /// Appends `events` judged after `judged` when the log's head is still there (the
    /// compare and set); `false` when it moved.
    fn append(&mut self, judged: Judged, events: &[Event]) -> bool {
        if let Judged::After { head } = judged
            && head != self.head()
            && !(head.seq == 0 && self.frames.is_empty())
        {
            return false;
        }
        for e in events {
            let id = self.at(self.frames.len() as u64 + 1);
            self.frames
                .push(frame::encode_event(Some(id), e.name(), e.data()));
        }
        true
    }

    /// Feeds a node everything it has not stored yet.
    fn feed(&self, node: &Broker, s: &SessionId) {
        let from = node.position(s).map_or(0, |(_, h)| h);
        if node.position(s).is_none_or(|(e, _)| e != self.epoch) {
            node.rebase(s, self.at(0)).unwrap();
        }
        for (i, f) in self.frames.iter().enumerate().skip(from as usize) {
            let placed = node.append_next(s, self.at(i as u64 + 1), f.clone());
            assert_eq!(placed, Ok(Placed::Stored));
        }
    }
}

fn events(values: &[Value]) -> Vec<Event> {
    values.iter().map(|v| Event::json(v).unwrap()).collect()
}

/// An agent run, a state snapshot, and a second run left open mid-message.
fn conversation() -> Vec<Value> {
    vec![
        run_started("t", "r1"),
        text_start("m1"),
        text("m1", "Hel"),
        text("m1", "lo"),
        text_end("m1"),
        tool_start("c1", "search", Some("m1")),
        tool_args("c1", "{\"q\":"),
        tool_args("c1", "\"rust\"}"),
        tool_end("c1"),
        tool_result("m2", "c1", "found"),
        state(json!({"step": 1})),
        run_finished("t", "r1"),
        run_started("t", "r2"),
        text_start("m3"),
        text("m3", "Work"),
        text("m3", "ing"),
    ]
}

fn checkpoint(node: &Broker, s: &SessionId) -> Vec<String> {
    node.tracker_checkpoint(s).expect("a tracker").1
}

#[tokio::test(start_paused = true)]
async fn publishes_from_two_nodes_are_judged_after_the_log_head_and_followed_on_both() {
    let (a, b) = (tracked(Broker::builder()), tracked(Broker::builder()));
    let s = sid("two-nodes");
    let mut log = Log::new();
    for (i, value) in conversation().iter().enumerate() {
        // The nodes take turns; the one not publishing learns of the event from the log.
        let (publisher, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let batch = events(std::slice::from_ref(value));
        let judged = publisher.judge(&s, &batch).unwrap();
        // (Before its first event a node's session is in an epoch of its own.)
        assert!(
            matches!(judged, Judged::After { head } if head.seq == log.head().seq),
            "event {i}: {judged:?}"
        );
        assert!(log.append(judged, &batch));
        log.feed(publisher, &s);
        log.feed(other, &s);
    }
    assert_eq!(checkpoint(&a, &s), checkpoint(&b, &s));

    // Both nodes refuse what would break the stream, the whole batch at once.
    let bad = events(&[text("m3", "!"), run_started("t", "r3")]);
    for node in [&a, &b] {
        match node.judge(&s, &bad) {
            Err(PublishError::Rejected { index, stored, .. }) => {
                assert_eq!(index, 1);
                assert!(stored.is_empty(), "nothing of a judged batch is stored");
            }
            other => panic!("refused, not {other:?}"),
        }
    }
    assert_eq!(a.position(&s), Some((log.epoch, log.head().seq)));

    // A judgement made before the other node appended loses the compare and set; judged
    // again after the log's new event, it lands.
    let stale = a.judge(&s, &events(&[text("m3", "...")])).unwrap();
    let first = events(&[text("m3", " hard")]);
    assert!(log.append(b.judge(&s, &first).unwrap(), &first));
    assert!(!log.append(stale, &events(&[text("m3", "...")])));
    log.feed(&a, &s);
    let again = a.judge(&s, &events(&[text("m3", "...")])).unwrap();
    assert_eq!(again, Judged::After { head: log.head() });

    // Every replay of the log passes the checks, from the start and joined mid-run.
    let body: Vec<u8> = log.frames.concat();
    assert_valid(&body);
    let mut joined = b.connect(&s, ConnectOptions::default()).unwrap();
    let (replay, _) = capture(&mut joined, QUIET).await;
    assert_valid(&replay);
    drop(joined);
    // A client with an id of a lost epoch gets the prelude of the node it reaches.
    let stale = ConnectOptions::resume("0badc0de-3");
    let mut resynced = a.connect(&s, stale).unwrap();
    let (prelude, _) = capture(&mut resynced, QUIET).await;
    assert_valid(&prelude);
    assert!(
        String::from_utf8_lossy(&prelude).contains("Working hard"),
        "the prelude carries the open message's text: {}",
        String::from_utf8_lossy(&prelude)
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_that_met_the_session_late_rebuilds_its_tracker_from_any_checkpoint() {
    let a = tracked(Broker::builder());
    let s = sid("late");
    let mut log = Log::new();
    // The checkpoint after each seq, as the node that saw everything writes it.
    let mut checkpoints = vec![Vec::new()];
    for value in conversation() {
        let batch = events(&[value]);
        assert!(log.append(a.judge(&s, &batch).unwrap(), &batch));
        log.feed(&a, &s);
        checkpoints.push(checkpoint(&a, &s));
    }
    let head = log.head().seq;
    let next = events(&[text("m3", "!")]);
    let bad = events(&[run_started("t", "r9")]);
    for k in 0..=head {
        let late = tracked(Broker::builder());
        // It meets the session at seq k: the events before are gone from its view.
        late.rebase(&s, log.at(k)).unwrap();
        for seq in k + 1..=head {
            let f = log.frames[seq as usize - 1].clone();
            late.append_next(&s, log.at(seq), f).unwrap();
        }
        assert_eq!(
            late.judge(&s, &next),
            Ok(if k == 0 {
                Judged::After { head: log.head() }
            } else {
                Judged::Rebuild
            }),
            "k = {k}: a tracker that missed events judges nothing"
        );
        assert!(late.tracker_lost(&s) == (k > 0), "k = {k}");
        assert_eq!(
            late.rebuild_tracker(&s, log.at(k), &checkpoints[k as usize]),
            Ok(true),
            "k = {k}"
        );
        assert_eq!(
            checkpoint(&late, &s),
            checkpoints[head as usize],
            "k = {k}: rebuilt to the same state"
        );
        assert_eq!(
            late.judge(&s, &next),
            Ok(Judged::After { head: log.head() })
        );
        assert!(late.judge(&s, &bad).is_err(), "k = {k}");
    }

    // A ring that no longer holds the events after the checkpoint cannot rebuild from it.
    let small = tracked(Broker::builder().ring_max_events(3));
    small.rebase(&s, log.at(5)).unwrap();
    for seq in 6..=head {
        let f = log.frames[seq as usize - 1].clone();
        small.append_next(&s, log.at(seq), f).unwrap();
    }
    assert!(small.tracker_lost(&s));
    assert_eq!(
        small.rebuild_tracker(&s, log.at(5), &checkpoints[5]),
        Ok(false),
        "the ring holds only the last three events"
    );
    assert!(small.tracker_lost(&s), "a failed rebuild changes nothing");
    let k = head - 3;
    assert_eq!(
        small.rebuild_tracker(&s, log.at(k), &checkpoints[k as usize]),
        Ok(true)
    );
    assert_eq!(checkpoint(&small, &s), checkpoints[head as usize]);
}
