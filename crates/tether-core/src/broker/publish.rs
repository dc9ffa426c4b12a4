//! Publishing: events serialized here, frames numbered elsewhere (a backplane's log), lost
//! history declared, and a session's tracker installed.

use bytes::Bytes;
use serde::Serialize;
use smallvec::SmallVec;

use super::Broker;
use super::registry::SessionErr;
use crate::error::PublishError;
use crate::id::{EventId, SessionId};
use crate::idempotency::{self, IdempotencyKey, Published, Seen};
use crate::session::{Appended, Event};
use crate::signal::SessionTracker;

impl Broker {
    /// Publishes one event serialized as JSON; returns its id. Creates the session if needed.
    /// O(1): appends under a short lock and wakes the session's connection, never waiting for
    /// it.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        session: &SessionId,
        event: &T,
    ) -> Result<EventId, PublishError> {
        self.publish_event(session, Event::json(event)?)
    }

    /// Publishes one prepared event; returns its id.
    pub fn publish_event(
        &self,
        session: &SessionId,
        event: Event,
    ) -> Result<EventId, PublishError> {
        let (ids, _) = self.publish_locked(session, std::slice::from_ref(&event), None)?;
        Ok(ids[0])
    }

    /// Publishes events in order under one lock; returns their ids. If the session's tracker
    /// refuses an event, the ones before it stay stored and the error lists their ids.
    pub fn publish_batch(
        &self,
        session: &SessionId,
        events: &[Event],
    ) -> Result<Vec<EventId>, PublishError> {
        self.publish_locked(session, events, None)
            .map(|(ids, _)| ids.into_vec())
    }

    /// Publishes events as [`publish_batch`](Self::publish_batch) does, once per `key`: a
    /// retry of the same publish (same key, same events) stores nothing and gets the first
    /// answer's ids (`replayed`), the same key with other events
    /// [`PublishError::IdempotencyKeyReused`]. A publish that fails records nothing, so it
    /// can be retried with its key. See [`idempotency`](crate::idempotency) for how long keys
    /// are kept.
    pub fn publish_batch_once(
        &self,
        session: &SessionId,
        key: &IdempotencyKey,
        events: &[Event],
    ) -> Result<Published, PublishError> {
        self.publish_locked(session, events, Some(key))
            .map(|(ids, replayed)| Published {
                ids: ids.into_vec(),
                replayed,
            })
    }

    /// The ids of the stored events (or of the first publish with `key`) and whether they
    /// are a replay. `events` is never empty when a single publish calls it.
    fn publish_locked(
        &self,
        session: &SessionId,
        events: &[Event],
        key: Option<&IdempotencyKey>,
    ) -> Result<(SmallVec<[EventId; 1]>, bool), PublishError> {
        if events.is_empty() {
            return Ok((SmallVec::new(), false));
        }
        let max = self.inner.config.max_batch_events;
        if events.len() > max {
            self.inner.limits.refuse("batch_events");
            return Err(PublishError::TooManyEvents {
                count: events.len(),
                max,
            });
        }
        // A session already in use keeps publishing (refusing it would keep its run from
        // finishing and its state from being freed); a new one waits for room.
        if !self.inner.sessions.contains_key(session) && !self.inner.make_room() {
            return Err(PublishError::MemoryBudget {
                budget: self.inner.config.total_ring_bytes,
            });
        }
        let fingerprint = key.map(|_| idempotency::fingerprint(events));
        let now = self.inner.now();
        let mut out = Appended::default();
        let mut replayed = None;
        let result = self.with_session(session, |st| {
            if let (Some(key), Some(fp)) = (key, fingerprint) {
                st.idempotency.expire(now.at, st.epoch, st.floor);
                match st.idempotency.check(key, fp) {
                    Seen::New => {}
                    Seen::Again(ids) => {
                        replayed = Some(ids);
                        return Ok(());
                    }
                    Seen::Reused => {
                        return Err(PublishError::IdempotencyKeyReused {
                            key: key.to_string(),
                        });
                    }
                }
            }
            st.check_rate(&self.inner.config, events.len(), now.at)?;
            let r = st.append(
                session,
                &self.inner.config,
                &mut events.iter().map(|e| (e.name.as_ref(), e.data.as_str())),
                &mut out,
                now,
            );
            if let (Some(key), Some(fp), Ok(())) = (key, fingerprint, &r) {
                st.idempotency.record(key.clone(), fp, &out.ids, now.at);
            }
            self.inner.enforce_budget(st, &mut out);
            r
        });
        let ids = self.inner.account(out);
        result.map_err(SessionErr::into_publish)?;
        Ok(match replayed {
            Some(first) => (first.into(), true),
            None => (ids, false),
        })
    }

    /// Stores a frame that was encoded and numbered elsewhere (a backplane's log), at `id`.
    /// The frame must be a complete SSE frame whose `id:` line is `id`.
    ///
    /// `id.seq` must be after the session's head and at most 2^64 - 2
    /// ([`PublishError::SeqOutOfRange`], [`PublishError::OutOfOrder`]); a refused call changes
    /// nothing. A new epoch starts a new incarnation of the session (its ring is emptied).
    /// Sequence numbers may skip: numbers that were never appended are not history a client
    /// missed, so a client resuming in the hole continues without a resync. History that
    /// existed and is gone is declared with [`mark_lost`](Self::mark_lost).
    pub fn append_at(
        &self,
        session: &SessionId,
        id: EventId,
        frame: Bytes,
    ) -> Result<(), PublishError> {
        let now = self.inner.now();
        let mut out = Appended::default();
        let result = self.with_session(session, |st| {
            let r = st.append_at(id, frame.clone(), &mut out, now);
            self.inner.enforce_budget(st, &mut out);
            r
        });
        self.inner.account(out);
        result.map_err(SessionErr::into_publish)
    }

    /// Declares every event of the session up to `through` lost (a backplane's log lost or
    /// trimmed them): they leave the ring, and a stream whose position is before `through`
    /// gets a `tether.resync` (reason `evicted`) instead of silently skipping them; a parked
    /// stream is woken for it. The head moves to at least `through`, so later appends and
    /// publishes follow it. An epoch other than the session's starts a new incarnation, as in
    /// [`append_at`](Self::append_at). Creates the session if needed.
    pub fn mark_lost(&self, session: &SessionId, through: EventId) -> Result<(), PublishError> {
        if through.seq > crate::session::MAX_SEQ {
            return Err(PublishError::SeqOutOfRange { seq: through.seq });
        }
        let mut out = Appended::default();
        let result = self.with_session(session, |st| {
            st.mark_lost(through.epoch, through.seq, &mut out);
            self.inner.settle_bytes(&mut out);
            Ok::<_, PublishError>(())
        });
        if out.evicted.count > 0 {
            self.inner.mx().evicted("lost").increment(out.evicted.count);
            out.evicted.count = 0;
        }
        self.inner.account(out);
        result.map_err(SessionErr::into_publish)
    }

    /// Installs a tracker (e.g. a [`SnapshotProvider`](crate::SnapshotProvider)) on a session,
    /// creating the session if needed.
    pub fn set_tracker(
        &self,
        session: &SessionId,
        tracker: Box<dyn SessionTracker>,
    ) -> Result<(), PublishError> {
        let mut tracker = Some(tracker);
        self.with_session(session, |st| {
            st.tracker = tracker.take();
            Ok::<_, PublishError>(())
        })
        .map_err(SessionErr::into_publish)
    }
}
