//! Idempotent publishes: a publisher that lost the reply to a publish sends it again with the
//! same key and gets the first answer back, instead of storing the events twice.
//!
//! A session keeps the keys of its publishes for [`KEPT_FOR`] after each one, and longer
//! while any event of that publish is still retained (a client may still be reading it, and
//! the publisher may still retry). A key is one publish: sent again with other events, it is
//! refused ([`PublishError::IdempotencyKeyReused`](crate::PublishError::IdempotencyKeyReused)),
//! since answering with the first publish's ids would report events that were never stored.
//! The keys are counted in the broker's memory budget with the session's other state.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::id::{Epoch, EventId};
use crate::session::Event;

/// How long a session keeps a publish's key at least.
pub const KEPT_FOR: Duration = Duration::from_secs(600);

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 128;

/// Bytes a kept key costs besides its text: the record, its place in the expiry queue and
/// the map's entry.
const RECORD_OVERHEAD: usize = 96;

/// The key of one publish: 1 to 128 visible ASCII characters (`!` to `~`), chosen by the
/// publisher, unique per session for as long as it may retry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Box<str>);

impl IdempotencyKey {
    /// Checks `key`: 1 to [`MAX_KEY_LEN`] bytes, each visible ASCII.
    pub fn new(key: &str) -> Result<Self, InvalidIdempotencyKey> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(InvalidIdempotencyKey::Length(key.len()));
        }
        if let Some(at) = key.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(InvalidIdempotencyKey::Character(at));
        }
        Ok(Self(key.into()))
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdempotencyKey").field(&&*self.0).finish()
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a text is not an [`IdempotencyKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidIdempotencyKey {
    /// Empty or longer than [`MAX_KEY_LEN`] bytes.
    #[error("an idempotency key has 1 to {MAX_KEY_LEN} characters, not {0}")]
    Length(usize),
    /// A byte that is not visible ASCII, at this offset.
    #[error("an idempotency key is visible ASCII only; byte {0} is not")]
    Character(usize),
}

/// The answer to a publish with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The ids of the events, as the first publish with the key stored them.
    pub ids: Vec<EventId>,
    /// Whether this publish was a retry: nothing was stored, the ids are the first answer's.
    pub replayed: bool,
}

/// What the session's keys say about a publish.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// A key not seen: publish, then [`IdempotencyLog::record`] it.
    New,
    /// The same publish again: its ids.
    Again(Vec<EventId>),
    /// The key of another publish.
    Reused,
}

/// A fingerprint of a publish's events (names and data, in order): a retry has the same
/// one. FNV-1a, the same on every node and every build (a rolling upgrade must not turn a
/// retry into a reused key), over each part's length and bytes. Not a defence against a
/// publisher forging a collision with its own earlier publish: it only tells a retry from a
/// mistake.
pub fn fingerprint(events: &[Event]) -> u64 {
    let mut h = Fnv::default();
    h.write_len(events.len());
    for e in events {
        match &e.name {
            Some(n) => {
                h.write_len(n.as_str().len() + 1);
                h.write(n.as_str().as_bytes());
            }
            None => h.write_len(0),
        }
        h.write_len(e.data.len());
        h.write(e.data.as_bytes());
    }
    h.0
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_len(&mut self, n: usize) {
        self.write(&(n as u64).to_le_bytes());
    }
}

struct Record {
    fingerprint: u64,
    first: EventId,
    count: usize,
}

impl Record {
    fn ids(&self) -> Vec<EventId> {
        (0..self.count as u64)
            .map(|i| EventId {
                epoch: self.first.epoch,
                seq: self.first.seq + i,
            })
            .collect()
    }
}

/// A session's kept keys, oldest first.
#[derive(Default)]
pub(crate) struct IdempotencyLog {
    records: HashMap<IdempotencyKey, Record>,
    order: VecDeque<(Instant, IdempotencyKey)>,
    bytes: usize,
}

impl fmt::Debug for IdempotencyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLog")
            .field("keys", &self.records.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl IdempotencyLog {
    /// What `key` says about a publish with `fingerprint`.
    pub(crate) fn check(&self, key: &IdempotencyKey, fingerprint: u64) -> Seen {
        match self.records.get(key) {
            None => Seen::New,
            Some(r) if r.fingerprint == fingerprint => Seen::Again(r.ids()),
            Some(_) => Seen::Reused,
        }
    }

    /// Keeps `key` for the publish that stored `ids` (at least one, consecutive in one epoch).
    pub(crate) fn record(
        &mut self,
        key: IdempotencyKey,
        fingerprint: u64,
        ids: &[EventId],
        now: Instant,
    ) {
        let Some(&first) = ids.first() else {
            return;
        };
        self.bytes += key.0.len() * 2 + RECORD_OVERHEAD;
        self.order.push_back((now, key.clone()));
        let record = Record {
            fingerprint,
            first,
            count: ids.len(),
        };
        // `check` said the key is new, so it is in neither the map nor the queue.
        self.records.insert(key, record);
    }

    /// Forgets the keys kept [`KEPT_FOR`] whose events are gone: none retained in the
    /// session's `epoch` above `floor`.
    pub(crate) fn expire(&mut self, now: Instant, epoch: Epoch, floor: u64) {
        while let Some((at, key)) = self.order.front() {
            if now.duration_since(*at) < KEPT_FOR {
                return;
            }
            let retained = self.records.get(key).is_some_and(|r| {
                r.first.epoch == epoch && r.first.seq + r.count as u64 > floor + 1
            });
            if retained {
                // Later keys are for later events: retained too.
                return;
            }
            let (_, key) = self.order.pop_front().expect("front exists");
            self.records.remove(&key);
            self.bytes = self.bytes.saturating_sub(key.0.len() * 2 + RECORD_OVERHEAD);
        }
    }

    /// Bytes the kept keys cost.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> IdempotencyKey {
        IdempotencyKey::new(s).unwrap()
    }

    fn ids(epoch: Epoch, from: u64, n: u64) -> Vec<EventId> {
        (from..from + n).map(|seq| EventId { epoch, seq }).collect()
    }

    #[test]
    fn keys_are_one_to_128_visible_ascii_characters() {
        assert!(IdempotencyKey::new("a").is_ok());
        assert!(IdempotencyKey::new(&"k".repeat(128)).is_ok());
        assert!(IdempotencyKey::new("!~09azAZ-_.").is_ok());
        assert_eq!(
            IdempotencyKey::new(""),
            Err(InvalidIdempotencyKey::Length(0))
        );
        assert_eq!(
            IdempotencyKey::new(&"k".repeat(129)),
            Err(InvalidIdempotencyKey::Length(129))
        );
        assert_eq!(
            IdempotencyKey::new("a b"),
            Err(InvalidIdempotencyKey::Character(1))
        );
        assert!(IdempotencyKey::new("caf\u{e9}").is_err());
        assert!(IdempotencyKey::new("tab\t").is_err());
    }

    #[test]
    fn fingerprints_tell_events_apart_and_are_stable() {
        let a = [Event::raw("{\"a\":1}")];
        assert_eq!(fingerprint(&a), fingerprint(&[Event::raw("{\"a\":1}")]));
        assert_ne!(fingerprint(&a), fingerprint(&[Event::raw("{\"a\":2}")]));
        let named = [Event::raw("{\"a\":1}").named(crate::frame::EventName::new("x").unwrap())];
        assert_ne!(fingerprint(&a), fingerprint(&named));
        // Where one event ends and the next begins counts.
        let split = [Event::raw("{}"), Event::raw("{}{}")];
        let other = [Event::raw("{}{}"), Event::raw("{}")];
        assert_ne!(fingerprint(&split), fingerprint(&other));
        // The same bytes on every build and node: a pinned value.
        assert_eq!(fingerprint(&[]), 0xa8c7_f832_281a_39c5);
    }

    #[test]
    fn the_same_publish_again_gets_its_ids_and_another_is_refused() {
        let epoch = Epoch::random();
        let mut log = IdempotencyLog::default();
        let now = Instant::now();
        assert_eq!(log.check(&key("k1"), 7), Seen::New);
        log.record(key("k1"), 7, &ids(epoch, 5, 3), now);
        assert_eq!(log.check(&key("k1"), 7), Seen::Again(ids(epoch, 5, 3)));
        assert_eq!(log.check(&key("k1"), 8), Seen::Reused);
        assert_eq!(log.check(&key("k2"), 7), Seen::New);
        assert!(log.bytes() > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_kept_ten_minutes_and_while_its_events_are_retained() {
        let epoch = Epoch::random();
        let mut log = IdempotencyLog::default();
        log.record(key("a"), 1, &ids(epoch, 1, 2), Instant::now());
        tokio::time::advance(Duration::from_secs(60)).await;
        log.record(key("b"), 2, &ids(epoch, 3, 1), Instant::now());
        // Events gone, but not yet ten minutes: kept.
        tokio::time::advance(KEPT_FOR - Duration::from_secs(61)).await;
        log.expire(Instant::now(), epoch, 10);
        assert_eq!(log.check(&key("a"), 1), Seen::Again(ids(epoch, 1, 2)));
        // Ten minutes, but its last event (seq 2) is still retained above floor 1: kept.
        tokio::time::advance(Duration::from_secs(1)).await;
        log.expire(Instant::now(), epoch, 1);
        assert_eq!(log.check(&key("a"), 1), Seen::Again(ids(epoch, 1, 2)));
        // Ten minutes and its events gone: forgotten; the younger key stays.
        log.expire(Instant::now(), epoch, 2);
        assert_eq!(log.check(&key("a"), 1), Seen::New);
        assert_eq!(log.check(&key("b"), 2), Seen::Again(ids(epoch, 3, 1)));
        // A new epoch retains none of the old one's events.
        tokio::time::advance(Duration::from_secs(60)).await;
        log.expire(Instant::now(), Epoch::random(), 0);
        assert_eq!(log.check(&key("b"), 2), Seen::New);
        assert_eq!(log.bytes(), 0);
    }
}
