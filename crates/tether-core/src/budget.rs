//! The broker-wide byte budget of the rings, kept without work proportional to the number of
//! sessions.
//!
//! Every session is on one clock (a queue of weak handles, in creation order). A publish or
//! connect sets its session's `referenced` bit. When a publish takes the rings over the
//! budget, the clock hand visits at most [`SWEEP_STEPS`] sessions: one whose bit is set gets
//! a second chance (the bit is cleared), one found unset has been idle since the hand last
//! passed and loses its history but its newest event (its clients resume into a resync).
//! Only if that is not enough does the publishing session trim its own oldest events, and
//! then the hand moves on once more, now finding the sessions it cleared idle. So the sessions idle
//! longest lose their history first, and a publish never walks every session: the hand
//! costs the same with a hundred sessions as with a hundred thousand.
//!
//! Sessions the hand finds locked (being published to right now) are skipped: the hand never
//! waits for a lock while the publishing session's own lock is held.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::broker::Inner;
use crate::session::{Appended, Session, SessionState};

/// Sessions the clock hand visits per publish while the rings are over budget.
pub(crate) const SWEEP_STEPS: usize = 64;
/// Over-budget publishes that skip the hand after a sweep that freed nothing (every session
/// it passed held only its newest event): the budget cannot be met by the hand now, and
/// trying on every publish would cost [`SWEEP_STEPS`] visits each time.
const BARREN_SKIP: u32 = 64;

/// The clock of every session.
#[derive(Default)]
pub(crate) struct Clock {
    hand: Mutex<VecDeque<Weak<Session>>>,
    /// Whether "over budget with every session's newest event" was said already.
    warned: AtomicBool,
    /// Over-budget publishes left that skip the hand (see [`BARREN_SKIP`]).
    skip: AtomicU32,
}

impl Clock {
    /// Puts a new session on the clock.
    pub(crate) fn add(&self, session: &Arc<Session>) {
        self.hand.lock().push_back(Arc::downgrade(session));
    }

    /// Drops the handles of sessions that are gone (the broker's periodic sweep calls it).
    pub(crate) fn prune(&self) {
        self.hand.lock().retain(|w| w.strong_count() > 0);
    }

    fn len(&self) -> usize {
        self.hand.lock().len()
    }

    /// The session under the hand, moving the hand on by one.
    fn next(&self) -> Option<Arc<Session>> {
        let mut hand = self.hand.lock();
        while let Some(weak) = hand.pop_front() {
            if let Some(session) = weak.upgrade() {
                hand.push_back(weak);
                return Some(session);
            }
        }
        None
    }
}

impl Inner {
    /// Settles the append's bytes and, while the broker is over its memory budget, evicts
    /// history: first of sessions idle since the clock hand's last visit, then the publishing
    /// session's own oldest events. Runs under the publishing session's lock (`st`).
    pub(crate) fn enforce_budget(&self, st: &mut SessionState, out: &mut Appended) {
        self.settle_bytes(out);
        self.settle_state(st);
        let budget = self.config.total_ring_bytes;
        if self.memory_bytes() <= budget {
            return;
        }
        // Idle sessions first; the publishing session's own oldest events next; then, the
        // hand having cleared the bits it passed, the sessions it gave a second chance.
        let skip = self.clock.skip.load(Ordering::Relaxed);
        let sweep = skip == 0;
        if !sweep {
            self.clock.skip.store(skip - 1, Ordering::Relaxed);
        }
        let mut freed = 0;
        if sweep {
            freed += self.evict_idle(budget);
        }
        let total = self.memory_bytes();
        if total > budget {
            let target = st.ring.bytes().saturating_sub(total - budget);
            let ev = st.trim_to(target);
            if ev.count > 0 {
                self.ring_bytes.fetch_sub(ev.bytes, Ordering::Relaxed);
                self.count_budget_eviction(ev.count, ev.unread);
            }
        }
        if sweep && self.memory_bytes() > budget {
            freed += self.evict_idle(budget);
            if freed == 0 {
                self.clock.skip.store(BARREN_SKIP, Ordering::Relaxed);
            }
        }
        if self.memory_bytes() > budget && !self.clock.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                budget,
                ring_bytes = self.ring_bytes.load(Ordering::Relaxed),
                state_bytes = self.state_bytes.load(Ordering::Relaxed),
                "SSE memory budget: the broker stays over its budget (sessions in use hold it); new sessions and approvals are refused until it frees; raise the budget or lower ring sizes"
            );
        }
    }

    /// Whether new state (a new session's, an approval's) fits the memory budget, after the
    /// clock hand had a pass at idle sessions. When it does not, the refusal is counted under
    /// `memory_budget_bytes`.
    pub(crate) fn make_room(&self) -> bool {
        let budget = self.config.total_ring_bytes;
        if self.memory_bytes() <= budget {
            return true;
        }
        // Twice, as a publish does: the first pass gives the sessions it passes their second
        // chance, the second takes from those still idle.
        for _ in 0..2 {
            self.evict_idle(budget);
            if self.memory_bytes() <= budget {
                return true;
            }
        }
        self.limits.refuse("memory_budget_bytes");
        false
    }

    /// Moves the clock hand over at most [`SWEEP_STEPS`] sessions (once round the clock at
    /// most), taking the history of idle ones until the broker fits its budget: a session
    /// nobody is connected to and no approval waits on loses its every event and its tracker
    /// state; one with a connection keeps only its newest event.
    /// Returns the bytes freed.
    fn evict_idle(&self, budget: usize) -> usize {
        let mut freed = 0;
        for _ in 0..SWEEP_STEPS.min(self.clock.len()) {
            if self.memory_bytes() <= budget {
                break;
            }
            let Some(session) = self.clock.next() else {
                break;
            };
            // The publishing session's lock is held by this thread: it is skipped here.
            let Some(mut st) = session.state.try_lock() else {
                continue;
            };
            if st.removed || (st.ring.bytes() == 0 && st.state_counted == 0) {
                continue;
            }
            if std::mem::take(&mut st.referenced) {
                continue;
            }
            let before = st.state_counted;
            let ev = if st.conn.is_none() && st.approvals.pending.is_empty() {
                let ev = st.forget_history();
                self.settle_state(&mut st);
                ev
            } else {
                st.trim_to(0)
            };
            self.ring_bytes.fetch_sub(ev.bytes, Ordering::Relaxed);
            freed += ev.bytes + before.saturating_sub(st.state_counted);
            drop(st);
            if ev.count > 0 {
                self.count_budget_eviction(ev.count, ev.unread);
            }
        }
        freed
    }

    fn count_budget_eviction(&self, count: u64, unread: u64) {
        self.mx().evicted("budget").increment(count);
        if unread > 0 {
            self.mx().evicted_unread.increment(unread);
        }
    }
}
