//! The broker-wide byte totals (rings, and trackers with approval payloads) that the memory
//! budget reads, and the metrics of each append. Totals change under the session's lock,
//! metrics and wake-ups after it is released.

use std::sync::atomic::Ordering;

use super::Inner;
use crate::id::EventId;
use crate::session::{Appended, SessionState};

impl Inner {
    /// Applies a locked operation's byte changes to the broker-wide total. Called while the
    /// session's lock is still held, so the total never counts bytes a ring does not hold
    /// yet (a trim of the same ring could otherwise subtract them first and wrap it).
    pub(crate) fn settle_bytes(&self, out: &mut Appended) {
        let added = std::mem::take(&mut out.added_bytes);
        let freed = std::mem::take(&mut out.evicted.bytes);
        if added > freed {
            self.ring_bytes.fetch_add(added - freed, Ordering::Relaxed);
        } else if freed > added {
            self.ring_bytes.fetch_sub(freed - added, Ordering::Relaxed);
        }
    }

    /// Brings the broker-wide state total up to date with a session's tracker and approvals.
    /// Called under the session's lock after anything that changes them.
    pub(crate) fn settle_state(&self, st: &mut SessionState) {
        let now = if st.removed { 0 } else { st.held_state() };
        let before = std::mem::replace(&mut st.state_counted, now);
        if now > before {
            self.state_bytes.fetch_add(now - before, Ordering::Relaxed);
        } else if before > now {
            self.state_bytes.fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    /// Bytes the memory budget covers: rings, trackers and approval payloads.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.ring_bytes.load(Ordering::Relaxed) + self.state_bytes.load(Ordering::Relaxed)
    }

    /// Accounts for an append after the session's lock is released (its bytes were settled
    /// under the lock); hands back the ids it stored.
    pub(crate) fn account(&self, a: Appended) -> smallvec::SmallVec<[EventId; 1]> {
        debug_assert!(
            a.added_bytes == 0 && a.evicted.bytes == 0,
            "ring bytes are settled under the session lock"
        );
        if !a.ids.is_empty() {
            self.mx().published.increment(a.ids.len() as u64);
        }
        if a.evicted.count > 0 {
            self.mx().evicted("ring").increment(a.evicted.count);
        }
        if a.evicted.unread > 0 {
            self.mx().evicted_unread.increment(a.evicted.unread);
        }
        if let Some(w) = a.waker {
            w.wake();
        }
        a.ids
    }
}
