//! The evicted-id scenario: what a client resuming from an id the server no longer keeps
//! gets back.
//!
//! One session, one client. The client subscribes and receives event 1 (its id is the
//! position to resume from), then goes away while `away` more events are published, more than
//! the server's buffer holds, so event 1 and those right after it are evicted. The client
//! comes back with `Last-Event-ID` set to event 1's id; once its new stream is open one more
//! event is published (the marker), so a server that replays nothing still shows what it
//! skipped. Events are posted one per request and judged by the `"seq"` the generator wrote
//! in each (2, 3, ... while away), whatever ids the server gives. The answer is one of: a
//! resync signal (the gap is announced), a silent gap of N events (the stream goes on from
//! the oldest event kept, or from the marker), or a full replay.
//!
//! With [`Repeat`] it becomes the resume scenario, for a server whose buffer holds everything
//! published: after that first resume, the client resumes again and again from an id a fixed
//! number of events behind the session's head, each time on a new connection, reading until
//! the head's event arrived, and the scenario reports the server's CPU time per resume, the
//! time each took and whether each replay was exactly the events behind, in order.

use std::time::Duration;

use crate::track::{Summary, new_histogram};

use tokio::{
    io::AsyncReadExt,
    time::{Instant, sleep, timeout_at},
};

use crate::{
    client::{Publisher, RequestError, SseStream, open_sse, open_sse_query},
    scenario::{Progress, RunConfig, ScenarioResult, bench_event, server_cpu, unix_micros},
    sse::{Frame, SseParser},
    track::{FrameKind, SeqSource, SessionTracker},
};

/// Settings of the evicted-id scenario.
#[derive(Debug, Clone)]
pub struct EvictedOptions {
    /// Events published while the client is away: more than the server keeps.
    pub away: u64,
    /// Size of each event's JSON in bytes.
    pub event_bytes: usize,
    /// Longest wait for each awaited event.
    pub timeout: Duration,
    /// Events per publish request while the client is away (1: one JSON object per request).
    pub batch: usize,
    /// Resume again and again afterwards (the resume scenario).
    pub repeat: Option<Repeat>,
}

/// The repeated resumes of the resume scenario.
#[derive(Debug, Clone, Copy)]
pub struct Repeat {
    /// Events between the resume's `Last-Event-ID` and the session's head: what each resume
    /// replays.
    pub behind: u64,
    /// Most resumes.
    pub resumes: usize,
    /// Most time spent resuming.
    pub duration: Duration,
}

/// The query of the resume scenario's repeated resumes.
const RESUME_CLIENT_ID: &str = "clientId=load-resume";

/// `id` with its sequence (the part after its last `-`, or all of it) replaced by `seq`:
/// tether's `<epoch>-<seq>` and the baselines' plain numbers.
fn with_seq(id: &[u8], seq: u64) -> Vec<u8> {
    let keep = memchr::memrchr(b'-', id).map_or(0, |dash| dash + 1);
    let mut out = id[..keep].to_vec();
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    out
}

/// An open stream, read into a tracker.
struct Reader {
    sse: SseStream,
    parser: SseParser,
    /// Sequence of the first event this stream delivered.
    first_seq: Option<u64>,
}

impl Reader {
    fn new(sse: SseStream) -> Self {
        Self {
            sse,
            parser: SseParser::default(),
            first_seq: None,
        }
    }

    /// Feeds what arrives into `tracker` until it has received the event of sequence `seq`
    /// (or one after it); false when `deadline` passed first. `replayed` counts the events
    /// delivered below `seq`.
    async fn until(
        &mut self,
        tracker: &mut SessionTracker,
        seq: u64,
        replayed: &mut u64,
        deadline: Instant,
    ) -> Result<bool, RequestError> {
        loop {
            let mut reached = tracker.last_seq.is_some_and(|last| last >= seq);
            let first_seq = &mut self.first_seq;
            let mut on_frame = |frame: Frame<'_>| {
                if let FrameKind::Delivered(got) = tracker.on_frame(frame) {
                    first_seq.get_or_insert(got);
                    if got < seq {
                        *replayed += 1;
                    } else {
                        reached = true;
                    }
                }
            };
            let pending = std::mem::take(&mut self.sse.pending);
            match self.sse.chunked.as_mut() {
                Some(decoder) => decoder
                    .feed(&pending, &mut |b| self.parser.feed(b, &mut on_frame))
                    .map_err(|_| RequestError::Protocol("bad chunked body"))?,
                None => self.parser.feed(&pending, &mut on_frame),
            }
            self.sse.pending = pending;
            self.sse.pending.clear();
            if reached {
                return Ok(true);
            }
            match timeout_at(deadline, self.sse.stream.read_buf(&mut self.sse.pending)).await {
                Err(_) => return Ok(false),
                Ok(Ok(0)) => return Err(RequestError::Protocol("stream closed")),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }
}

/// Posts the generated event of sequence `seq`.
async fn post(
    publisher: &mut Publisher,
    session: &str,
    body: &mut Vec<u8>,
    seq: u64,
    event_bytes: usize,
) -> Result<(), RequestError> {
    post_many(publisher, session, body, seq, 1, event_bytes).await
}

/// Posts the generated events of sequences `first..first + count` in one request: one JSON
/// object, or an array of them.
async fn post_many(
    publisher: &mut Publisher,
    session: &str,
    body: &mut Vec<u8>,
    first: u64,
    count: u64,
    event_bytes: usize,
) -> Result<(), RequestError> {
    body.clear();
    if count > 1 {
        body.push(b'[');
    }
    for seq in first..first + count {
        if seq > first {
            body.push(b',');
        }
        bench_event(body, unix_micros(), seq, seq, event_bytes);
    }
    if count > 1 {
        body.push(b']');
    }
    publisher.post(session, body).await.map(drop)
}

/// What the resumed stream showed, in words.
fn answer(tracker: &SessionTracker, replayed: u64, marker_arrived: bool) -> String {
    if tracker.resyncs > 0 {
        format!(
            "resync signal ({} events announced as skipped, {replayed} replayed)",
            tracker.resync_skipped
        )
    } else if tracker.lost > 0 {
        format!(
            "silent gap of {} events ({replayed} replayed)",
            tracker.lost
        )
    } else if !marker_arrived {
        "nothing (the marker did not arrive)".to_owned()
    } else {
        format!("full replay ({replayed} events)")
    }
}

/// Runs the evicted-id scenario on one fresh session.
pub async fn run_evicted(cfg: &RunConfig, opts: &EvictedOptions) -> ScenarioResult {
    let progress = Progress::new(cfg.progress);
    progress.bar.set_prefix("evicted");
    let session = format!("evicted{:x}", unix_micros() & 0xff_ffff_ffff);
    let publish_target = cfg.publish_target.as_ref().unwrap_or(&cfg.target);
    let mut publisher = Publisher::with_kind(publish_target.clone(), cfg.server_kind);
    let mut result = ScenarioResult {
        scenario: "evicted".into(),
        events_per_request: Some(1),
        server: cfg.label.clone(),
        round: cfg.round,
        connections: 1,
        evicted_away: Some(0),
        ..ScenarioResult::default()
    };
    let mut tracker = SessionTracker::new(SeqSource::Payload);
    let mut body = Vec::with_capacity(opts.event_bytes);

    // 1. Subscribe and receive event 1: its id is where the client will resume from.
    progress.stage("first event".into(), 1);
    let first = async {
        let sse = open_sse(&cfg.target, &session, None).await?;
        // The stream is registered once its head came; give a server that registers it
        // later a moment.
        sleep(Duration::from_millis(100)).await;
        post(&mut publisher, &session, &mut body, 1, opts.event_bytes).await?;
        let mut reader = Reader::new(sse);
        let mut replayed = 0;
        let deadline = Instant::now() + opts.timeout;
        reader.until(&mut tracker, 1, &mut replayed, deadline).await
    };
    match first.await {
        Ok(true) => result.connected = 1,
        Ok(false) => {
            result.evicted_answer = Some("event 1 did not arrive".into());
            return result;
        }
        Err(e) => {
            result.conn_errors = 1;
            result.evicted_answer = Some(format!("first stream failed: {e}"));
            return result;
        }
    }
    let resume_from = tracker.last_id.clone();
    if resume_from.is_empty() {
        result.evicted_answer = Some("event 1 came without an id".into());
        return result;
    }

    // 2. Away (the stream was dropped above): more events than the server keeps.
    progress.stage("publishing while away".into(), opts.away);
    let mut away = 0;
    let batch = opts.batch.max(1) as u64;
    while away < opts.away {
        let seq = away + 2;
        let count = batch.min(opts.away - away);
        match post_many(
            &mut publisher,
            &session,
            &mut body,
            seq,
            count,
            opts.event_bytes,
        )
        .await
        {
            Ok(_) => away += count,
            Err(e) => {
                result.publish_errors += 1;
                result.evicted_away = Some(away);
                result.evicted_answer = Some(format!("publish of event {seq} failed: {e}"));
                return result;
            }
        }
        progress.bar.set_position(away);
    }
    result.evicted_away = Some(away);

    // 3. Back with event 1's id, then the marker.
    progress.stage("resuming".into(), 1);
    let marker = opts.away + 2;
    let mut replayed = 0;
    let resumed = async {
        let sse = open_sse(&cfg.target, &session, Some(&resume_from)).await?;
        let mut reader = Reader::new(sse);
        // The replay (if any) first, then the marker published once the stream is open.
        let settle = Instant::now() + Duration::from_millis(300);
        reader
            .until(&mut tracker, marker, &mut replayed, settle)
            .await?;
        post(
            &mut publisher,
            &session,
            &mut body,
            marker,
            opts.event_bytes,
        )
        .await?;
        let deadline = Instant::now() + opts.timeout;
        let arrived = reader
            .until(&mut tracker, marker, &mut replayed, deadline)
            .await?;
        Ok::<_, RequestError>((arrived, reader.first_seq))
    };
    let (marker_arrived, first_seq) = match resumed.await {
        Ok(answer) => answer,
        Err(e) => {
            result.conn_errors = 1;
            result.evicted_answer = Some(format!("resumed stream failed: {e}"));
            return result;
        }
    };
    result.evicted_first_seq = first_seq;
    if !marker_arrived {
        // What was published and never came counts as lost, as in the other scenarios.
        tracker.settle_tail(marker);
    }
    result.evicted_replayed = Some(replayed);
    result.evicted_answer = Some(answer(&tracker, replayed, marker_arrived));
    result.delivered = tracker.delivered;
    result.lost = tracker.lost;
    result.duplicated = tracker.duplicated;
    result.resyncs = tracker.resyncs;
    result.resync_skipped = tracker.resync_skipped;
    if let Some(repeat) = opts.repeat
        && marker_arrived
    {
        result.scenario = "resume".into();
        result.events_per_request = Some(batch);
        resume_again(
            cfg,
            &session,
            &tracker,
            repeat,
            opts.timeout,
            &progress,
            &mut result,
        )
        .await;
    }
    progress.finish();
    result
}

/// The resume scenario's repeated resumes, each on a new connection, from `repeat.behind`
/// events before the session's head, where `head` (the first resume's tracker) stands; adds
/// to `result`.
async fn resume_again(
    cfg: &RunConfig,
    session: &str,
    head: &SessionTracker,
    repeat: Repeat,
    timeout: Duration,
    progress: &Progress,
    result: &mut ScenarioResult,
) {
    let (head_id, head) = (&head.last_id, head.last_seq.unwrap_or(0));
    let behind = repeat.behind.min(head);
    let from = head - behind;
    let last_event_id = with_seq(head_id, from);
    result.resume_behind = Some(behind);
    progress.stage(format!("resuming {behind} behind"), repeat.resumes as u64);
    let mut times = new_histogram();
    let (mut resumes, mut inexact) = (0u64, 0u64);
    let cpu_before = server_cpu(cfg);
    let start = Instant::now();
    while (resumes as usize) < repeat.resumes && start.elapsed() < repeat.duration {
        let mut tracker = SessionTracker::new(SeqSource::Payload);
        tracker.last_seq = Some(from);
        let mut replayed = 0;
        let began = Instant::now();
        let resumed = async {
            // One client resuming again and again names itself, as a client that reconnects
            // on purpose does: a nameless newcomer to a session whose stream was just
            // superseded (the last resume's, not yet seen closed) is told to stop (204).
            let sse = open_sse_query(&cfg.target, session, RESUME_CLIENT_ID, Some(&last_event_id))
                .await?;
            let mut reader = Reader::new(sse);
            let deadline = Instant::now() + timeout;
            let arrived = reader
                .until(&mut tracker, head, &mut replayed, deadline)
                .await?;
            Ok::<_, RequestError>((arrived, reader.first_seq))
        };
        let outcome = resumed.await;
        let took = began.elapsed();
        resumes += 1;
        match outcome {
            Ok((arrived, first_seq)) => {
                let exact = arrived
                    && tracker.delivered == behind
                    && (tracker.lost, tracker.duplicated, tracker.resyncs) == (0, 0, 0)
                    && first_seq == (behind > 0).then_some(from + 1);
                if !exact {
                    inexact += 1;
                }
                times.saturating_record((took.as_micros() as u64).max(1));
            }
            Err(_) => {
                result.conn_errors += 1;
                inexact += 1;
            }
        }
        result.delivered += tracker.delivered;
        result.lost += tracker.lost;
        result.duplicated += tracker.duplicated;
        result.resyncs += tracker.resyncs;
        result.resync_skipped += tracker.resync_skipped;
        progress.bar.set_position(resumes);
    }
    // The server's share of the last close.
    sleep(Duration::from_millis(200)).await;
    let cpu_after = server_cpu(cfg);
    result.resumes = Some(resumes);
    result.resume_inexact = Some(inexact);
    result.resume_us = Some(Summary::of(&times));
    if let (Some(a), Some(b)) = (cpu_before, cpu_after)
        && resumes > 0
    {
        result.resume_cpu_us = Some(b.saturating_sub(a) as f64 / resumes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(lost: u64, resyncs: u64, skipped: u64) -> SessionTracker {
        let mut t = SessionTracker::new(SeqSource::Payload);
        (t.lost, t.resyncs, t.resync_skipped) = (lost, resyncs, skipped);
        t
    }

    #[test]
    fn answers() {
        assert_eq!(
            answer(&tracker(0, 1, 44), 256, true),
            "resync signal (44 events announced as skipped, 256 replayed)"
        );
        assert_eq!(
            answer(&tracker(44, 0, 0), 256, true),
            "silent gap of 44 events (256 replayed)"
        );
        assert_eq!(
            answer(&tracker(0, 0, 0), 300, true),
            "full replay (300 events)"
        );
        assert_eq!(
            answer(&tracker(0, 0, 0), 0, false),
            "nothing (the marker did not arrive)"
        );
    }
}
