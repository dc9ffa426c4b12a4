//! The fixtures of the instruction-count benchmark (`benches/instructions.rs`): each builds a
//! broker and brings it to the state one benchmark starts from, so the benchmark itself runs
//! only the hot path it measures. They are plain functions, tested here without valgrind, so
//! a fixture that stops reaching its state fails `cargo test` instead of quietly measuring
//! something else.
//!
//! Every fixture runs in a tokio runtime entered for the rest of the process (a stream arms
//! its heartbeat timer on the runtime's timer wheel). The runtime is never driven: nothing in
//! a measured call waits, and the broker's driver task stays unpolled.

use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tether_core::{Broker, BrokerBuilder, ConnectOptions, Event, EventId, EventStream, SessionId};
use tokio::runtime::{EnterGuard, Runtime};

/// Events the rings of [`publish_setup`] and [`resume_setup`] hold: the default
/// `ring_max_events`.
pub const RING_EVENTS: usize = 1024;

/// The message every AG-UI event of the fixtures belongs to.
pub const MESSAGE_ID: &str = "msg-7f3a9c21";

/// A 200-byte AG-UI-like event: a `TEXT_MESSAGE_CONTENT` delta of [`MESSAGE_ID`], the same
/// event the criterion benchmarks of tether-core publish.
pub fn agui_event() -> String {
    let s = r#"{"type":"TEXT_MESSAGE_CONTENT","messageId":"MSG","delta":"DELTA","timestamp":1764163200000}"#
        .replace("MSG", MESSAGE_ID);
    let pad = 200 - (s.len() - "DELTA".len());
    s.replace("DELTA", &"x".repeat(pad))
}

/// Polls `stream` once with a waker that does nothing.
pub fn poll_once(stream: &mut EventStream) -> Poll<Option<Bytes>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(stream).poll_next(&mut cx)
}

/// Polls `stream` until it has nothing more to give; the bytes it gave.
pub fn drain(stream: &mut EventStream) -> usize {
    let mut bytes = 0;
    while let Poll::Ready(Some(chunk)) = poll_once(stream) {
        bytes += chunk.len();
    }
    bytes
}

/// The events of an SSE chunk (its `id:` lines).
pub fn frames_in(chunk: &[u8]) -> usize {
    chunk
        .split(|&b| b == b'\n')
        .filter(|line| line.starts_with(b"id:"))
        .count()
}

/// A broker and one of its sessions, with the runtime they run in entered on this thread.
pub struct Harness {
    /// The broker.
    pub broker: Broker,
    /// The session the benchmark works on.
    pub session: SessionId,
    _runtime: EnterGuard<'static>,
}

impl Harness {
    /// A broker started from `builder`, with a session named `session` (created by its first
    /// publish or connect).
    ///
    /// Before returning, it connects once to another session and reads that stream to its
    /// end: the first connect of a process seeds the thread's random generator (the `retry:`
    /// jitter) and registers the log call sites, one-time costs that are no part of a
    /// measured call.
    pub fn new(builder: BrokerBuilder, session: &str) -> Self {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        let runtime = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime")
        });
        let guard = runtime.enter();
        let broker = builder.start().expect("valid config");
        let warm = SessionId::new("warm-up").expect("valid session id");
        // Not an AG-UI event, so a tracker factory leaves this session untracked.
        broker
            .publish_event(&warm, Event::raw(r#"{"warm":"up"}"#))
            .expect("publish");
        let mut stream = broker
            .connect(
                &warm,
                ConnectOptions::resume(head(&broker, &warm).to_string()),
            )
            .expect("connect");
        drain(&mut stream);
        drop(stream);
        Self {
            broker,
            session: SessionId::new(session).expect("valid session id"),
            _runtime: guard,
        }
    }

    /// Publishes `data` `n` times into the session; the id of the last one.
    pub fn fill(&self, data: &str, n: usize) -> Option<EventId> {
        let mut last = None;
        for _ in 0..n {
            last = Some(
                self.broker
                    .publish_event(&self.session, Event::raw(data))
                    .expect("publish"),
            );
        }
        last
    }
}

fn head(broker: &Broker, session: &SessionId) -> EventId {
    broker.head(session).expect("the session has events")
}

/// What `publish` starts from: a session whose ring is full (twice [`RING_EVENTS`] published,
/// so it has been evicting for as long again), and the event to publish into it.
pub struct PublishFixture {
    /// The broker and the session.
    pub harness: Harness,
    /// The event the benchmark publishes: [`agui_event`].
    pub event: Event,
}

/// The state of `publish`.
pub fn publish_setup() -> PublishFixture {
    let harness = Harness::new(Broker::builder().ring_max_events(RING_EVENTS), "publish");
    harness.fill(&agui_event(), 2 * RING_EVENTS);
    PublishFixture {
        harness,
        event: Event::raw(agui_event()),
    }
}

/// What `read_coalesced_chunk` starts from: a connected stream that has read its opening
/// bytes and found nothing more (so its heartbeat timer is armed, as on an idle connection),
/// then `events` events published into its session.
pub struct ReadFixture {
    /// The broker and the session.
    pub harness: Harness,
    /// The connected stream, with `events` events to read.
    pub stream: EventStream,
}

/// The state of `read_coalesced_chunk` with `events` events waiting.
pub fn read_setup(events: usize) -> ReadFixture {
    let harness = Harness::new(Broker::builder(), "read");
    let mut stream = harness
        .broker
        .connect(&harness.session, ConnectOptions::new())
        .expect("connect");
    drain(&mut stream);
    harness.fill(&agui_event(), events);
    ReadFixture { harness, stream }
}

/// What `resume` starts from: a full ring of [`RING_EVENTS`] events and the `Last-Event-ID`
/// of the one at `from` (1-based), so the replay is every event after it.
pub struct ResumeFixture {
    /// The broker and the session.
    pub harness: Harness,
    /// The id the client resumes after.
    pub last_event_id: String,
}

/// The state of `resume` from the `from`-th of [`RING_EVENTS`] events.
pub fn resume_setup(from: usize) -> ResumeFixture {
    let harness = Harness::new(Broker::builder().ring_max_events(RING_EVENTS), "resume");
    let data = agui_event();
    harness.fill(&data, from);
    let last_event_id = head(&harness.broker, &harness.session).to_string();
    harness.fill(&data, RING_EVENTS - from);
    ResumeFixture {
        harness,
        last_event_id,
    }
}

/// Connects to the fixture's session resuming after its `last_event_id`, and reads the
/// opening bytes (the `retry:` line) and the first chunk of the replay: the resume's
/// measured work.
pub fn resume(fixture: &ResumeFixture) -> (EventStream, Bytes, Bytes) {
    let h = &fixture.harness;
    let mut stream = h
        .broker
        .connect(
            &h.session,
            ConnectOptions::resume(fixture.last_event_id.clone()),
        )
        .expect("connect");
    let opening = ready(poll_once(&mut stream));
    let chunk = ready(poll_once(&mut stream));
    (stream, opening, chunk)
}

/// The chunk a poll gave; panics on `Pending` or the end of the stream, so a fixture that no
/// longer has bytes waiting fails loudly instead of measuring an empty poll.
pub fn ready(polled: Poll<Option<Bytes>>) -> Bytes {
    match polled {
        Poll::Ready(Some(chunk)) => chunk,
        other => panic!("expected a chunk, got {other:?}"),
    }
}

/// What `tracker_publish` starts from: a session of a broker with the AG-UI run tracker, in
/// which a run was started (`RUN_STARTED`), a text message opened (`TEXT_MESSAGE_START`) and
/// `deltas` deltas of it published; and the next delta to publish.
pub struct TrackerFixture {
    /// The broker and the session.
    pub harness: Harness,
    /// The delta the benchmark publishes: [`agui_event`], a `TEXT_MESSAGE_CONTENT` of the
    /// open message.
    pub event: Event,
}

/// The state of `tracker_publish` after `deltas` deltas.
pub fn tracker_setup(deltas: usize) -> TrackerFixture {
    let builder = Broker::builder()
        .tracker_factory(std::sync::Arc::new(tether_agui::AguiTrackerFactory::new()));
    let harness = Harness::new(builder, "tracked");
    harness.fill(
        r#"{"type":"RUN_STARTED","threadId":"thread-1","runId":"run-1"}"#,
        1,
    );
    let start =
        format!(r#"{{"type":"TEXT_MESSAGE_START","messageId":"{MESSAGE_ID}","role":"assistant"}}"#);
    harness.fill(&start, 1);
    harness.fill(&agui_event(), deltas);
    TrackerFixture {
        harness,
        event: Event::raw(agui_event()),
    }
}

/// A tracked session whose history holds `runs` finished runs, each with one completed
/// assistant message; the event is the next `RUN_STARTED`. What a run start costs as a
/// conversation grows: the joined view's owners come from every completed message.
pub fn run_start_setup(runs: usize) -> TrackerFixture {
    let builder = Broker::builder()
        .tracker_factory(std::sync::Arc::new(tether_agui::AguiTrackerFactory::new()));
    let harness = Harness::new(builder, "tracked");
    for run in 0..runs {
        for data in [
            format!(r#"{{"type":"RUN_STARTED","threadId":"thread-1","runId":"run-{run}"}}"#),
            format!(
                r#"{{"type":"TEXT_MESSAGE_START","messageId":"msg-{run}","role":"assistant"}}"#
            ),
            format!(r#"{{"type":"TEXT_MESSAGE_CONTENT","messageId":"msg-{run}","delta":"hi"}}"#),
            format!(r#"{{"type":"TEXT_MESSAGE_END","messageId":"msg-{run}"}}"#),
            format!(r#"{{"type":"RUN_FINISHED","threadId":"thread-1","runId":"run-{run}"}}"#),
        ] {
            harness.fill(&data, 1);
        }
    }
    TrackerFixture {
        harness,
        event: Event::raw(format!(
            r#"{{"type":"RUN_STARTED","threadId":"thread-1","runId":"run-{runs}"}}"#
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_starts_after_the_history() {
        let f = run_start_setup(3);
        let before = head(&f.harness.broker, &f.harness.session);
        f.harness
            .broker
            .publish_event(&f.harness.session, f.event)
            .expect("the tracker accepts the run start");
        let after = head(&f.harness.broker, &f.harness.session);
        assert_eq!(after.seq, before.seq + 1);
        assert_eq!(before.seq, 15, "3 runs of 5 events");
    }

    #[test]
    fn the_event_is_200_bytes_of_json() {
        let data = agui_event();
        assert_eq!(data.len(), 200);
        assert!(data.contains(MESSAGE_ID));
    }

    #[test]
    fn publish_goes_into_a_full_ring() {
        let f = publish_setup();
        let h = &f.harness;
        let head = head(&h.broker, &h.session);
        assert_eq!(head.seq, 2 * RING_EVENTS as u64);
        // The ring keeps the newest RING_EVENTS: resuming after the oldest kept one replays
        // the rest without a resync.
        let oldest = EventId {
            seq: head.seq - RING_EVENTS as u64 + 1,
            ..head
        };
        let mut stream = h
            .broker
            .connect(&h.session, ConnectOptions::resume(oldest.to_string()))
            .expect("connect");
        let _opening = ready(poll_once(&mut stream));
        let mut frames = 0;
        while let Poll::Ready(Some(chunk)) = poll_once(&mut stream) {
            assert!(!chunk.windows(7).any(|w| w == b"resync\""), "no resync");
            frames += frames_in(&chunk);
        }
        assert_eq!(frames, RING_EVENTS - 1);
        let id = h
            .broker
            .publish_event(&h.session, f.event)
            .expect("publish");
        assert_eq!(id.seq, head.seq + 1);
    }

    #[test]
    fn the_read_coalesces_every_waiting_event_into_one_chunk() {
        let mut f = read_setup(20);
        let chunk = ready(poll_once(&mut f.stream));
        assert_eq!(frames_in(&chunk), 20);
        assert!(poll_once(&mut f.stream).is_pending());
    }

    #[test]
    fn resume_replays_from_the_middle_of_the_ring() {
        let f = resume_setup(RING_EVENTS / 2);
        let head = head(&f.harness.broker, &f.harness.session);
        assert_eq!(head.seq, RING_EVENTS as u64);
        let (mut stream, opening, chunk) = resume(&f);
        assert!(opening.starts_with(b"retry:"), "{opening:?}");
        let first = frames_in(&chunk);
        let next = EventId {
            seq: RING_EVENTS as u64 / 2 + 1,
            ..head
        };
        assert!(chunk.starts_with(format!("id: {next}\n").as_bytes()));
        // The first chunk is capped (64 KiB by default); the rest of the replay follows.
        let mut frames = first;
        while let Poll::Ready(Some(more)) = poll_once(&mut stream) {
            frames += frames_in(&more);
        }
        assert!(first > 0 && first < RING_EVENTS / 2, "{first}");
        assert_eq!(frames, RING_EVENTS / 2);
    }

    #[test]
    fn the_tracker_accepts_the_delta() {
        let f = tracker_setup(20);
        let h = &f.harness;
        let id = h
            .broker
            .publish_event(&h.session, f.event)
            .expect("the tracker accepts it");
        assert_eq!(id.seq, 23);
        // The session is tracked: a delta of a message that was never opened is refused.
        let stray = agui_event().replace(MESSAGE_ID, "msg-unknown");
        assert!(
            h.broker
                .publish_event(&h.session, Event::raw(stray))
                .is_err()
        );
    }
}
