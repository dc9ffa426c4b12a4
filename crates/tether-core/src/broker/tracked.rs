//! A tracker for sessions a backplane feeds. Several nodes append to one session's log, so a
//! node cannot let its tracker see an event before the log has placed it: the events are
//! judged on a copy of the tracker ([`Broker::judge`]), appended only if the log's head has
//! not moved (the backplane's compare and set), and shown to the tracker when they come back
//! from the log through [`Broker::append_next`], in the log's order, on every node alike.
//!
//! A node that did not see a session's whole history (it met the session late, or the
//! budget forgot it) rebuilds the tracker from a checkpoint the backplane keeps
//! ([`Broker::tracker_checkpoint`], [`Broker::rebuild_tracker`]) and the ring's events after
//! it.

use super::Broker;
use super::registry::SessionErr;
use crate::backplane::Judged;
use crate::error::PublishError;
use crate::frame;
use crate::id::{EventId, SessionId};
use crate::session::{Event, SessionState};
use crate::signal::{SessionTracker, Signal};

impl Broker {
    /// Judges events a backplane is about to append to the session's log, on a copy of the
    /// session's tracker (installing one from the factory as a publish does), and says where
    /// they may land. Nothing changes: the tracker sees the events when they come back from
    /// the log. Creates the session if needed.
    ///
    /// # Errors
    /// [`PublishError::Rejected`] or [`PublishError::PreludeTooLarge`] for the first event
    /// the tracker refuses (the whole batch is refused: nothing was stored), and the limits
    /// of a local publish (too many sessions).
    pub fn judge(&self, session: &SessionId, events: &[Event]) -> Result<Judged, PublishError> {
        let config = &self.inner.config;
        let Some(factory) = config.tracker_factory.as_ref() else {
            return Ok(Judged::Anywhere);
        };
        self.with_session(session, |st| {
            let Some(head) = judged_position(st) else {
                return Ok(Judged::Rebuild);
            };
            // A tracker that cannot be copied refuses nothing (see `SessionTracker::fork`).
            let mut copy = match st.tracker.as_ref() {
                Some(tracker) => match tracker.fork() {
                    Some(copy) => Some(copy),
                    None => return Ok(Judged::After { head }),
                },
                None => None,
            };
            for (index, e) in events.iter().enumerate() {
                let name = e.name.as_ref().map(frame::EventName::as_str);
                if copy.is_none() {
                    copy = factory.track(session, name, &e.data);
                }
                if let Some(tracker) = copy.as_mut()
                    && let Err(refusal) = tracker.on_publish(name, &e.data)
                {
                    // Nothing of the batch is stored.
                    return Err(refusal.at(index));
                }
            }
            Ok(if copy.is_some() {
                Judged::After { head }
            } else {
                Judged::Untracked
            })
        })
        .map_err(SessionErr::into_publish)
    }

    /// The events that carry `signal` (an approval's notice) into the session's history, as
    /// the session's tracker writes them, and where they may land ([`judge`](Self::judge)).
    /// Creates the session if needed.
    ///
    /// # Errors
    /// The limits of a local publish (too many sessions).
    pub fn signal_events(
        &self,
        session: &SessionId,
        signal: &Signal<'_>,
    ) -> Result<(Judged, Vec<String>), PublishError> {
        let tracked = self.inner.config.tracker_factory.is_some();
        self.with_session(session, |st| {
            let mut out = Vec::new();
            match st.tracker.as_ref() {
                Some(tracker) if !st.tracker_lost => tracker.stored_signal(signal, &mut out),
                _ => out.push(signal.custom_json()),
            }
            let judged = match judged_position(st) {
                _ if !tracked => Judged::Anywhere,
                Some(_) if st.tracker.is_none() => Judged::Untracked,
                Some(head) => Judged::After { head },
                None => Judged::Rebuild,
            };
            Ok::<_, PublishError>((judged, out))
        })
        .map_err(SessionErr::into_publish)
    }

    /// The session's tracker state as data frames that rebuild it
    /// ([`SessionTracker::checkpoint`]), with the position they stand for; `None` when the
    /// session has no tracker that saw its whole history.
    pub fn tracker_checkpoint(&self, session: &SessionId) -> Option<(EventId, Vec<String>)> {
        let sess = self.inner.sessions.get(session).map(|s| s.clone())?;
        let st = sess.state.lock();
        let tracker = st.tracker.as_ref().filter(|_| !st.tracker_lost)?;
        let mut out = Vec::new();
        tracker.checkpoint(&mut out);
        Some((
            EventId {
                epoch: st.epoch,
                seq: st.head,
            },
            out,
        ))
    }

    /// Whether the session's tracker missed part of its history and must be rebuilt before
    /// it judges events or writes a prelude.
    pub fn tracker_lost(&self, session: &SessionId) -> bool {
        self.inner.config.tracker_factory.is_some()
            && self
                .inner
                .sessions
                .get(session)
                .is_some_and(|s| s.state.lock().tracker_lost)
    }

    /// Rebuilds the session's tracker from a checkpoint taken at `at` (data frames from
    /// [`tracker_checkpoint`](Self::tracker_checkpoint), empty for the start of the epoch)
    /// and the ring's events after it. Returns `false`, changing nothing, when the ring is in
    /// another epoch, behind `at`, or no longer holds every event after `at`.
    pub fn rebuild_tracker(
        &self,
        session: &SessionId,
        at: EventId,
        checkpoint: &[String],
    ) -> Result<bool, PublishError> {
        let Some(factory) = self.inner.config.tracker_factory.clone() else {
            return Ok(false);
        };
        self.with_session(session, |st| {
            if st.epoch != at.epoch || st.head < at.seq {
                return Ok(false);
            }
            let Some(frames) = st.ring.frames_after(at.seq) else {
                return Ok(false);
            };
            let mut tracker: Option<Box<dyn SessionTracker>> = None;
            let events = checkpoint
                .iter()
                .map(|data| (None, std::borrow::Cow::Borrowed(data.as_str())))
                .chain(frames.filter_map(|f| frame::decode_event(f)));
            let mut refused = 0usize;
            for (name, data) in events {
                if tracker.is_none() {
                    tracker = factory.track(session, name, &data);
                }
                if let Some(t) = tracker.as_mut()
                    && t.on_publish(name, &data).is_err()
                {
                    refused += 1;
                }
            }
            if refused > 0 {
                tracing::warn!(session = %session, refused, "SSE backplane: rebuilding the session's tracker skipped events it refused");
            }
            st.tracker = tracker;
            st.tracker_lost = false;
            self.inner.settle_state(st);
            Ok::<_, PublishError>(true)
        })
        .map_err(SessionErr::into_publish)
    }
}

/// The position events are judged after, `None` when the tracker lost part of the history.
fn judged_position(st: &SessionState) -> Option<EventId> {
    (!st.tracker_lost).then_some(EventId {
        epoch: st.epoch,
        seq: st.head,
    })
}
