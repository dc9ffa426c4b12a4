//! The per-session ring of encoded frames.
//!
//! The ring is the queue: a connection is only a cursor (the last sequence number it wrote)
//! into it. Entries are ordered by sequence number; numbers are usually contiguous, but an
//! outside log (a backplane) may append with gaps, so lookups use a binary search rather than
//! index arithmetic.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

#[derive(Debug)]
struct Entry {
    seq: u64,
    frame: Bytes,
}

/// What a push or a trim evicted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Evicted {
    pub(crate) count: u64,
    pub(crate) bytes: usize,
    /// Of the evicted entries, how many had a sequence number above `read_upto`.
    pub(crate) unread: u64,
    /// The highest sequence number evicted (0 if none).
    pub(crate) last_seq: u64,
}

impl Evicted {
    pub(crate) fn add(&mut self, other: Evicted) {
        self.count += other.count;
        self.bytes += other.bytes;
        self.unread += other.unread;
        self.last_seq = self.last_seq.max(other.last_seq);
    }
}

/// A chunk read from the ring: the frames after a cursor, coalesced.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) bytes: Bytes,
    pub(crate) frames: u64,
    pub(crate) last_seq: u64,
}

/// Bounded ordered storage of encoded frames.
#[derive(Debug)]
pub(crate) struct Ring {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
}

impl Ring {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sequence number of the oldest retained entry.
    #[cfg(test)]
    pub(crate) fn first_seq(&self) -> Option<u64> {
        self.entries.front().map(|e| e.seq)
    }

    /// Appends a frame and evicts the oldest entries until both bounds hold again. The new
    /// entry itself is always kept. `read_upto` is the highest sequence number any client has
    /// read, to count evicted entries nobody saw.
    pub(crate) fn push(&mut self, seq: u64, frame: Bytes, read_upto: u64) -> Evicted {
        debug_assert!(self.entries.back().is_none_or(|e| e.seq < seq));
        self.bytes += frame.len();
        self.entries.push_back(Entry { seq, frame });
        let mut evicted = Evicted::default();
        while self.entries.len() > 1
            && (self.entries.len() > self.max_events || self.bytes > self.max_bytes)
        {
            evicted.add(self.pop_oldest(read_upto));
        }
        evicted
    }

    /// Evicts oldest entries (never the newest) until the ring holds at most `target_bytes`.
    pub(crate) fn trim_to(&mut self, target_bytes: usize, read_upto: u64) -> Evicted {
        let mut evicted = Evicted::default();
        while self.entries.len() > 1 && self.bytes > target_bytes {
            evicted.add(self.pop_oldest(read_upto));
        }
        evicted
    }

    /// Evicts every entry whose sequence number is at most `seq` (history declared lost).
    pub(crate) fn evict_through(&mut self, seq: u64, read_upto: u64) -> Evicted {
        let mut evicted = Evicted::default();
        while self.entries.front().is_some_and(|e| e.seq <= seq) {
            evicted.add(self.pop_oldest(read_upto));
        }
        evicted
    }

    /// The sequence number of the first entry after `cursor`, if any.
    pub(crate) fn next_after(&self, cursor: u64) -> Option<u64> {
        self.entries.get(self.index_after(cursor)).map(|e| e.seq)
    }

    /// The frames after `cursor`, in order, when the ring still holds every one of them
    /// (nothing after `cursor` was evicted); `None` when some are gone.
    pub(crate) fn frames_after(&self, cursor: u64) -> Option<impl Iterator<Item = &Bytes>> {
        if self.entries.front().is_some_and(|e| e.seq > cursor + 1) {
            return None;
        }
        Some(
            self.entries
                .range(self.index_after(cursor)..)
                .map(|e| &e.frame),
        )
    }

    /// Drops every entry (the session is going away, or starts a new epoch).
    pub(crate) fn clear(&mut self) -> usize {
        let bytes = self.bytes;
        self.entries.clear();
        self.bytes = 0;
        bytes
    }

    fn pop_oldest(&mut self, read_upto: u64) -> Evicted {
        match self.entries.pop_front() {
            Some(e) => {
                self.bytes -= e.frame.len();
                Evicted {
                    count: 1,
                    bytes: e.frame.len(),
                    unread: u64::from(e.seq > read_upto),
                    last_seq: e.seq,
                }
            }
            None => Evicted::default(),
        }
    }

    /// Index of the first entry after `cursor`. Sequence numbers are contiguous unless an
    /// outside log appended with gaps, so the position is computed directly and checked; a
    /// binary search (which touches a cache line per probe in a large ring) is the fallback.
    fn index_after(&self, cursor: u64) -> usize {
        if let Some(first) = self.entries.front() {
            let guess = (cursor + 1).saturating_sub(first.seq);
            if let Ok(i) = usize::try_from(guess)
                && self.entries.get(i).is_some_and(|e| e.seq == cursor + 1)
            {
                return i;
            }
        }
        self.entries.partition_point(|e| e.seq <= cursor)
    }

    /// The frames after `cursor`, coalesced into one chunk of at most `cap` bytes (but always
    /// at least one frame). `None` when nothing follows the cursor.
    pub(crate) fn read_after(&self, cursor: u64, cap: usize) -> Option<Chunk> {
        // Most reads find nothing new: answer from the newest entry alone.
        if self.entries.back()?.seq <= cursor {
            return None;
        }
        let start = self.index_after(cursor);
        let first = self.entries.get(start)?;
        let mut end = start + 1;
        let mut total = first.frame.len();
        while let Some(e) = self.entries.get(end) {
            if total + e.frame.len() > cap {
                break;
            }
            total += e.frame.len();
            end += 1;
        }
        let last_seq = self.entries[end - 1].seq;
        let frames = (end - start) as u64;
        let bytes = if frames == 1 {
            first.frame.clone()
        } else {
            let mut buf = BytesMut::with_capacity(total);
            for e in self.entries.range(start..end) {
                buf.put_slice(&e.frame);
            }
            buf.freeze()
        };
        Some(Chunk {
            bytes,
            frames,
            last_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut r = Ring::new(3, 100);
        for seq in 1..=5 {
            r.push(seq, frame(10), 0);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.first_seq(), Some(3));
        let ev = r.push(6, frame(90), 3);
        assert_eq!(r.first_seq(), Some(5));
        assert_eq!(ev.count, 2);
        assert_eq!(ev.unread, 1, "seq 4 was never read");
        assert_eq!(r.bytes(), 100);
        // An entry larger than the byte bound is still kept alone.
        r.push(7, frame(500), 0);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn read_after_coalesces_up_to_cap() {
        let mut r = Ring::new(100, 10_000);
        for seq in 1..=10 {
            r.push(seq, frame(10), 0);
        }
        let c = r.read_after(3, 35).unwrap();
        assert_eq!((c.frames, c.last_seq, c.bytes.len()), (3, 6, 30));
        let c = r.read_after(0, 5).unwrap();
        assert_eq!((c.frames, c.last_seq), (1, 1));
        // A chunk may fill the cap exactly.
        let c = r.read_after(0, 30).unwrap();
        assert_eq!((c.frames, c.bytes.len()), (3, 30));
        assert!(r.read_after(10, 100).is_none());
    }

    #[test]
    fn gaps_in_sequence_numbers() {
        let mut r = Ring::new(100, 10_000);
        for seq in [2, 5, 9] {
            r.push(seq, frame(1), 0);
        }
        assert_eq!(r.read_after(3, 100).unwrap().frames, 2);
        assert_eq!(r.read_after(5, 100).unwrap().last_seq, 9);
        // The direct guess misses with gaps; the fallback starts right after the cursor,
        // whether the cursor is an entry or falls in a hole.
        for (cursor, frames, next) in [
            (0, 3, 2),
            (1, 3, 2),
            (2, 2, 5),
            (4, 2, 5),
            (5, 1, 9),
            (8, 1, 9),
        ] {
            let c = r.read_after(cursor, 100).unwrap();
            assert_eq!(
                (c.frames, c.bytes.len()),
                (frames, frames as usize),
                "after {cursor}"
            );
            assert_eq!(r.next_after(cursor), Some(next), "after {cursor}");
        }
        assert!(r.read_after(9, 100).is_none());
        assert_eq!(r.next_after(9), None);
    }

    #[test]
    fn trimming_stops_at_the_target() {
        let mut r = Ring::new(100, 10_000);
        for seq in 1..=4 {
            r.push(seq, frame(10), 0);
        }
        assert_eq!(r.trim_to(40, 0).count, 0, "already at the target");
        let ev = r.trim_to(25, 2);
        assert_eq!((ev.count, ev.bytes, ev.unread, ev.last_seq), (2, 20, 0, 2));
        assert_eq!(r.bytes(), 20);
        assert_eq!(r.trim_to(0, 0).count, 1, "the newest entry stays");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn evictions_report_the_last_sequence_number() {
        let mut r = Ring::new(2, 10_000);
        r.push(3, frame(1), 0);
        r.push(7, frame(1), 0);
        assert_eq!(r.push(8, frame(1), 0).last_seq, 3);
        let ev = r.evict_through(7, 7);
        assert_eq!((ev.count, ev.last_seq, ev.unread), (1, 7, 0));
        assert_eq!(r.first_seq(), Some(8));
        assert_eq!(r.evict_through(5, 0).count, 0);
    }
}
