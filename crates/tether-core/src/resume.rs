//! Where a stream starts reading and what it says first, decided in one place for a client
//! that connects and for a live stream that fell out of its session's ring.
//!
//! A reader that can continue exactly after its last id just continues. One that cannot gets
//! a [`Resync`] saying why and from where the stream continues, then the session's prelude
//! (the tracker's snapshot, the pending approvals), then an id-only frame that moves the
//! client's last id to where the stream now stands, so its next reconnect does not resync
//! again. With a snapshot the stream continues after the session's head, since the snapshot
//! stands for the history; without one, at the oldest retained event.

use bytes::BytesMut;

use crate::frame;
use crate::id::{EventId, LastEventId};
use crate::session::SessionState;
use crate::signal::{Resync, ResyncReason};
use crate::stream::Position;

/// Where a reader stands before it is placed.
pub(crate) enum Standing<'a> {
    /// A client connecting with the `Last-Event-ID` it sent, if any.
    Connecting(Option<&'a LastEventId>),
    /// A live stream that has read through this id (`seq` 0 before the first event).
    Reading(EventId),
}

/// A reader to place in its session.
pub(crate) struct Reader<'a> {
    pub(crate) at: Standing<'a>,
    /// The client's last id as the resync reports it (`lastEventId`).
    pub(crate) last_event_id: Option<String>,
    /// Whether the prelude goes even when nothing was lost (`prelude=always`).
    pub(crate) prelude_always: bool,
}

/// History a reader cannot have: why, and how many events it skipped, where known.
#[derive(Clone, Copy)]
pub(crate) struct Lost {
    pub(crate) reason: ResyncReason,
    pub(crate) skipped: Option<u64>,
}

/// Where a placed reader stands, and the resync it was given.
pub(crate) struct Placed {
    pub(crate) position: Position,
    pub(crate) resync: Option<Resync>,
}

impl Standing<'_> {
    /// What the reader cannot continue from, if anything. Called under the session's lock.
    pub(crate) fn lost(&self, st: &SessionState) -> Option<Lost> {
        let (reason, skipped) = match self {
            // No id: the stream starts at the oldest retained event, so only eviction loses.
            Standing::Connecting(None) => (ResyncReason::Evicted, st.lost_after(0)?),
            Standing::Connecting(Some(LastEventId::Foreign(_))) => (ResyncReason::Unknown, None),
            Standing::Connecting(Some(LastEventId::Known(id))) | Standing::Reading(id)
                if id.epoch != st.epoch =>
            {
                (ResyncReason::Epoch, None)
            }
            // A client's id can be ahead of the head (another node's, or from before a
            // restart); a live stream's cursor was placed within the ring.
            Standing::Connecting(Some(LastEventId::Known(id))) if id.seq > st.head => {
                (ResyncReason::Ahead, None)
            }
            Standing::Connecting(Some(LastEventId::Known(id))) | Standing::Reading(id) => {
                (ResyncReason::Evicted, st.lost_after(id.seq)?)
            }
        };
        Some(Lost { reason, skipped })
    }
}

impl Reader<'_> {
    /// Places the reader in the session `st` (under its lock) after what it `lost`: picks
    /// its cursor, and writes the resync, the prelude and the id-only frame to `buf`.
    pub(crate) fn place(self, st: &SessionState, lost: Option<Lost>, buf: &mut BytesMut) -> Placed {
        let (has_snapshot, join_prelude) = st
            .tracker
            .as_ref()
            .map_or((false, false), |t| (t.has_snapshot(), t.prelude_on_join()));
        let no_id = matches!(self.at, Standing::Connecting(None));
        let prelude = lost.is_some() || self.prelude_always || (no_id && join_prelude);
        let exact = match &self.at {
            Standing::Connecting(Some(LastEventId::Known(id))) | Standing::Reading(id) => {
                Some(id.seq)
            }
            _ => None,
        };
        let mut cursor = match exact {
            Some(seq) if lost.is_none() => seq,
            _ => st.floor,
        };
        if prelude && has_snapshot {
            cursor = st.head;
        }
        let resync = lost.map(|lost| Resync {
            reason: lost.reason,
            last_event_id: self.last_event_id,
            resume_from: EventId {
                epoch: st.epoch,
                seq: st.next_seq_after(cursor),
            },
            skipped: lost.skipped.filter(|n| *n > 0),
        });
        if prelude {
            st.put_prelude(resync.as_ref(), cursor, buf);
            // Moves the client's last id to the cursor, so its next reconnect resumes there
            // instead of resyncing again (`<epoch>-0` before the first event, even in a new
            // epoch whose ring starts at 1).
            if cursor > 0 || resync.is_some() {
                buf.extend_from_slice(&frame::encode_id_only(EventId {
                    epoch: st.epoch,
                    seq: cursor,
                }));
            }
        }
        let zero_id = cursor == 0 && (resync.is_some() || exact == Some(0));
        Placed {
            position: Position {
                epoch: st.epoch,
                cursor,
                zero_id,
            },
            resync,
        }
    }
}
