//! Per-session accounting of what a client received (delivered, lost, duplicated, resynced)
//! and latency histograms.

use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::sse::{Frame, payload_seq_of, seq_of};

/// Where an event's sequence number is read from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum SeqSource {
    /// The sequence part of the event id (after its last `-`): the server numbers the events,
    /// as tether (`<epoch>-<seq>`) and the baselines (`<seq>`) do. For events the server
    /// publishes itself (`--self-publish`).
    #[default]
    Id,
    /// The `"seq"` field of the event's JSON, which the generator wrote when it published the
    /// event (1, 2, 3, ... in each session), whatever ids the server gives (nchan's are
    /// `<time>:<tag>`). For events the generator publishes.
    Payload,
}

/// What one session's client has seen, judged by each event's sequence number (see
/// [`SeqSource`]).
///
/// A data frame whose sequence is the next one is delivered; one further ahead is delivered and
/// the sequences in between are lost, unless a `tether.resync` signal came first, which
/// announces the gap (counted as `resync_skipped`); one at or below the last is duplicated.
/// Sequences start at 1, so a stream whose first event is 5 lost 4. With sequences from ids,
/// an id-only frame moves the position without delivering anything; a data frame without a
/// sequence is a control signal.
#[derive(Debug, Default, Clone)]
pub struct SessionTracker {
    /// Where sequences come from.
    pub source: SeqSource,
    /// Sequence of the last event received.
    pub last_seq: Option<u64>,
    /// The last `id:` received, as sent back in `Last-Event-ID`.
    pub last_id: Vec<u8>,
    /// Events received for the first time.
    pub delivered: u64,
    /// Events never received and never announced.
    pub lost: u64,
    /// Events received again.
    pub duplicated: u64,
    /// `tether.resync` signals received.
    pub resyncs: u64,
    /// Events skipped right after a resync signal (announced, not silent).
    pub resync_skipped: u64,
    /// Data frames without an id (control signals other than resync, prelude frames).
    pub control: u64,
    /// Events a prelude stood for: the gap its closing id-only frame stepped over, after a
    /// reconnect with `prelude=always` (the snapshot carries what they did).
    pub covered: u64,
    pending_resync: bool,
    expect_prelude: bool,
    from_first: bool,
}

/// How [`SessionTracker::on_frame`] classified a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A data event received for the first time, with its sequence.
    Delivered(u64),
    /// A data event received before.
    Duplicate,
    /// A frame that only moves the position or signals something.
    Other,
}

impl SessionTracker {
    /// A tracker reading sequences from `source`.
    pub fn new(source: SeqSource) -> Self {
        Self {
            source,
            ..Self::default()
        }
    }

    /// The client joins a session that already has history, without `Last-Event-ID`: its
    /// stream starts at the live head, so the first event received sets the position instead
    /// of sequence 1.
    pub fn join_live(&mut self) {
        self.from_first = true;
    }

    /// The stream that follows was asked for with `prelude=always`: a gap that its first
    /// id-only frame steps over (to the session's head, after the prelude) is covered by the
    /// prelude, not lost. The first frame with an id ends the expectation.
    pub fn expect_prelude(&mut self) {
        self.expect_prelude = true;
    }

    /// Accounts one frame.
    pub fn on_frame(&mut self, frame: Frame<'_>) -> FrameKind {
        if let Some(id) = frame.id {
            self.last_id.clear();
            self.last_id.extend_from_slice(id);
        }
        let prelude_head = std::mem::take(&mut self.expect_prelude);
        if frame.id.is_none() {
            self.expect_prelude = prelude_head;
        }
        let seq = match self.source {
            SeqSource::Id => frame.id.and_then(seq_of),
            // An id-only frame carries no payload: it moves nothing.
            SeqSource::Payload => frame.data.and_then(payload_seq_of),
        };
        match (seq, frame.data) {
            (Some(seq), None) if prelude_head => {
                let expected = self.last_seq.map_or(1, |last| last + 1);
                if seq >= expected {
                    self.covered += seq + 1 - expected;
                    self.last_seq = Some(seq);
                }
                FrameKind::Other
            }
            (Some(seq), Some(_)) => {
                if self.advance(seq) {
                    self.delivered += 1;
                    FrameKind::Delivered(seq)
                } else {
                    self.duplicated += 1;
                    FrameKind::Duplicate
                }
            }
            (Some(seq), None) => {
                self.advance(seq);
                FrameKind::Other
            }
            (None, Some(data)) => {
                if memchr::memmem::find(data, b"tether.resync").is_some() {
                    self.resyncs += 1;
                    self.pending_resync = true;
                } else {
                    self.control += 1;
                }
                FrameKind::Other
            }
            (None, None) => FrameKind::Other,
        }
    }

    fn advance(&mut self, seq: u64) -> bool {
        let expected = match self.last_seq {
            Some(last) => last + 1,
            None if self.from_first => seq,
            None => 1,
        };
        if seq < expected {
            return false;
        }
        let gap = seq - expected;
        if self.pending_resync {
            self.resync_skipped += gap;
        } else {
            self.lost += gap;
        }
        self.pending_resync = false;
        self.last_seq = Some(seq);
        true
    }

    /// Counts as lost whatever was published up to `published_max` and never arrived.
    pub fn settle_tail(&mut self, published_max: u64) {
        let last = self.last_seq.unwrap_or(0);
        if published_max > last {
            self.lost += published_max - last;
            self.last_seq = Some(published_max);
        }
    }
}

/// Totals over every session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Events received for the first time.
    pub delivered: u64,
    /// Events never received and never announced.
    pub lost: u64,
    /// Events received again.
    pub duplicated: u64,
    /// Resync signals.
    pub resyncs: u64,
    /// Events skipped after a resync signal.
    pub resync_skipped: u64,
    /// Events a prelude stood for.
    pub covered: u64,
}

impl Totals {
    /// Adds one session's counts.
    pub fn add(&mut self, t: &SessionTracker) {
        self.delivered += t.delivered;
        self.lost += t.lost;
        self.duplicated += t.duplicated;
        self.resyncs += t.resyncs;
        self.resync_skipped += t.resync_skipped;
        self.covered += t.covered;
    }
}

/// A histogram of microsecond values from 1 µs to one hour, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// A histogram shared by many connections; each buffers samples locally and flushes in batches.
#[derive(Debug)]
pub struct SharedHistogram {
    inner: Mutex<Histogram<u64>>,
}

impl Default for SharedHistogram {
    fn default() -> Self {
        Self {
            inner: Mutex::new(new_histogram()),
        }
    }
}

impl SharedHistogram {
    /// Records buffered samples and empties the buffer.
    pub fn flush(&self, samples: &mut Vec<u64>) {
        if samples.is_empty() {
            return;
        }
        let mut hist = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for &value in samples.iter() {
            hist.saturating_record(value.max(1));
        }
        samples.clear();
    }

    /// Quantiles of everything recorded.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Quantiles of a histogram, in its unit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Summary {
    /// Quantiles of `hist` (all zero when it is empty).
    pub fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        Self {
            count: hist.len(),
            p50: hist.value_at_quantile(0.5),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(t: &mut SessionTracker, id: &str) -> FrameKind {
        t.on_frame(Frame {
            id: Some(id.as_bytes()),
            data: Some(b"{}"),
        })
    }

    #[test]
    fn in_order_stream_has_no_loss() {
        let mut t = SessionTracker::default();
        for seq in 1..=5 {
            assert_eq!(
                data(&mut t, &format!("ep-{seq}")),
                FrameKind::Delivered(seq)
            );
        }
        assert_eq!((t.delivered, t.lost, t.duplicated), (5, 0, 0));
        assert_eq!(t.last_id, b"ep-5");
    }

    #[test]
    fn gaps_are_lost_and_repeats_are_duplicates() {
        let mut t = SessionTracker::default();
        data(&mut t, "3"); // 1 and 2 never came
        data(&mut t, "4");
        data(&mut t, "7"); // 5 and 6 never came
        assert_eq!(data(&mut t, "6"), FrameKind::Duplicate);
        assert_eq!(data(&mut t, "7"), FrameKind::Duplicate);
        data(&mut t, "8");
        assert_eq!((t.delivered, t.lost, t.duplicated), (4, 4, 2));
        t.settle_tail(10);
        assert_eq!(t.lost, 6);
        t.settle_tail(10);
        assert_eq!(t.lost, 6);
    }

    #[test]
    fn announced_gaps_are_not_silent_losses() {
        let mut t = SessionTracker::default();
        data(&mut t, "e-1");
        let resync = br#"{"type":"CUSTOM","name":"tether.resync","value":{"reason":"evicted"}}"#;
        t.on_frame(Frame {
            id: None,
            data: Some(resync),
        });
        t.on_frame(Frame {
            id: Some(b"e-40"),
            data: None,
        }); // id-only frame moves the position
        data(&mut t, "e-41");
        data(&mut t, "e-43");
        assert_eq!(t.resyncs, 1);
        assert_eq!(t.resync_skipped, 38);
        assert_eq!((t.delivered, t.lost, t.duplicated), (3, 1, 0));
    }

    fn payload(t: &mut SessionTracker, id: &str, seq: u64) -> FrameKind {
        let json = format!(r#"{{"ts":1,"seq":{seq},"n":77}}"#);
        t.on_frame(Frame {
            id: Some(id.as_bytes()),
            data: Some(json.as_bytes()),
        })
    }

    #[test]
    fn payload_sequences_ignore_the_ids() {
        let mut t = SessionTracker::new(SeqSource::Payload);
        // nchan's ids: <time>:<tag>, no sequence in them.
        assert_eq!(payload(&mut t, "1796311525:0", 1), FrameKind::Delivered(1));
        assert_eq!(payload(&mut t, "1796311525:1", 2), FrameKind::Delivered(2));
        assert_eq!(payload(&mut t, "1796311526:0", 5), FrameKind::Delivered(5));
        assert_eq!(payload(&mut t, "1796311526:1", 5), FrameKind::Duplicate);
        assert_eq!(t.last_id, b"1796311526:1");
        // An id-only frame and an event without "seq" move nothing.
        t.on_frame(Frame {
            id: Some(b"9-40"),
            data: None,
        });
        assert_eq!(data(&mut t, "9-41"), FrameKind::Other);
        assert_eq!(payload(&mut t, "x", 6), FrameKind::Delivered(6));
        assert_eq!((t.delivered, t.lost, t.duplicated, t.control), (4, 2, 1, 1));
    }

    #[test]
    fn payload_sequences_count_announced_gaps_apart() {
        let mut t = SessionTracker::new(SeqSource::Payload);
        payload(&mut t, "e-1", 1);
        let resync = br#"{"type":"CUSTOM","name":"tether.resync","value":{"reason":"evicted"}}"#;
        t.on_frame(Frame {
            id: None,
            data: Some(resync),
        });
        t.on_frame(Frame {
            id: Some(b"e-40"),
            data: None,
        });
        payload(&mut t, "e-41", 41);
        assert_eq!((t.resyncs, t.resync_skipped, t.lost), (1, 39, 0));
    }

    #[test]
    fn a_prelude_covers_the_gap_to_its_head() {
        let mut t = SessionTracker::default();
        data(&mut t, "e-1");
        data(&mut t, "e-2");
        t.expect_prelude();
        // Prelude frames (no id), then the id-only frame at the head.
        let prelude = br#"{"type":"RUN_STARTED","threadId":"t","runId":"r"}"#;
        t.on_frame(Frame {
            id: None,
            data: Some(prelude),
        });
        t.on_frame(Frame {
            id: Some(b"e-6"),
            data: None,
        });
        data(&mut t, "e-7");
        assert_eq!((t.delivered, t.lost, t.covered, t.control), (3, 0, 4, 1));
        // Without a prelude the same step is a loss; an exact id-only frame covers nothing.
        t.expect_prelude();
        t.on_frame(Frame {
            id: Some(b"e-7"),
            data: None,
        });
        data(&mut t, "e-9");
        assert_eq!((t.lost, t.covered), (1, 4));
    }

    #[test]
    fn histogram_summary_and_flush() {
        let shared = SharedHistogram::default();
        let mut samples: Vec<u64> = (1..=1000).collect();
        samples.push(0); // recorded as 1 µs
        shared.flush(&mut samples);
        assert!(samples.is_empty());
        let s = shared.summary();
        assert_eq!(s.count, 1001);
        assert!((495..=505).contains(&s.p50), "{s:?}");
        assert!((985..=995).contains(&s.p99), "{s:?}");
        assert_eq!(s.max, 1000);
        assert_eq!(Summary::of(&new_histogram()), Summary::default());
    }
}
