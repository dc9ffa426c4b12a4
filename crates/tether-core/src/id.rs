//! Identifiers: session ids, event ids and the `Last-Event-ID` a client sends back.
//!
//! Session ids and `Last-Event-ID` values share one grammar: 1 to 128 bytes of
//! `[A-Za-z0-9._:-]`. Anything outside it is refused before it reaches a map, a log line or
//! an SSE frame, so no CR, LF or NUL can ever be injected through an id.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Longest session id, approval id or `Last-Event-ID` accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Whether `s` matches the id grammar: 1 to 128 bytes of `[A-Za-z0-9._:-]`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Which kind of id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdKind {
    /// A session id.
    SessionId,
    /// An approval id.
    ApprovalId,
    /// A `Last-Event-ID` (header or `lastEventId` query parameter).
    LastEventId,
    /// A `clientId` query parameter.
    ClientId,
}

impl IdKind {
    /// How messages name it: `session id`, `approval id`, `Last-Event-ID` or `clientId`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionId => "session id",
            Self::ApprovalId => "approval id",
            Self::LastEventId => "Last-Event-ID",
            Self::ClientId => "clientId",
        }
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An id that breaks the id grammar (1 to 128 bytes of `[A-Za-z0-9._:-]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'")]
#[non_exhaustive]
pub struct InvalidId {
    /// Which kind of id was refused.
    pub kind: IdKind,
}

impl InvalidId {
    /// A refused id of this kind.
    pub fn new(kind: IdKind) -> Self {
        Self { kind }
    }
}

/// A validated session id. Cloning is cheap (a reference count).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Arc<str>);

impl SessionId {
    /// Validates `id` against the id grammar.
    pub fn new(id: &str) -> Result<Self, InvalidId> {
        if is_valid_id(id) {
            Ok(Self(Arc::from(id)))
        } else {
            Err(InvalidId::new(IdKind::SessionId))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SessionId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Borrow<str> for SessionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:?})", &*self.0)
    }
}

/// A session incarnation. A restarted broker or an evicted-and-recreated session gets a new
/// epoch, so ids from an earlier life are recognised as foreign instead of being mistaken
/// for positions in the new ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(u64);

impl Epoch {
    /// A random epoch of 48 bits (12 hex digits on the wire), never zero.
    pub fn random() -> Self {
        loop {
            let v = rand::random::<u64>() & 0xffff_ffff_ffff;
            if v != 0 {
                return Self(v);
            }
        }
    }

    /// An epoch chosen by someone else, e.g. a backplane that owns the session's log.
    pub const fn from_u64(v: u64) -> Self {
        Self(v)
    }

    /// The raw value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// The id of a stored event, `<epoch>-<seq>` on the wire (epoch in lowercase hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId {
    /// The session incarnation.
    pub epoch: Epoch,
    /// Position in the session, counting up from 1.
    pub seq: u64,
}

impl EventId {
    /// Parses `<hex epoch>-<decimal seq>`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let (epoch, seq) = s.split_once('-')?;
        if epoch.is_empty() || epoch.len() > 16 || seq.is_empty() || seq.len() > 20 {
            return None;
        }
        if !epoch.bytes().all(|b| b.is_ascii_hexdigit()) || !seq.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let epoch = u64::from_str_radix(epoch, 16).ok()?;
        let seq = seq.parse::<u64>().ok()?;
        (epoch != 0).then_some(Self {
            epoch: Epoch(epoch),
            seq,
        })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{}", self.epoch.0, self.seq)
    }
}

/// What a client sent as `Last-Event-ID`, once it passed the id grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastEventId {
    /// An id in tether's format; whether it is still in the ring is decided at connect time.
    Known(EventId),
    /// A well-formed id that tether did not issue (another server, another format). Such a
    /// client gets a resync rather than an error: EventSource gives up after any non-200.
    Foreign(String),
}

impl LastEventId {
    /// Parses a raw header or query value. An empty value means "no id" (`Ok(None)`), as
    /// EventSource sends none until it has seen one; a value outside the id grammar is an
    /// error (HTTP 400).
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidId> {
        if raw.is_empty() {
            return Ok(None);
        }
        if !is_valid_id(raw) {
            return Err(InvalidId::new(IdKind::LastEventId));
        }
        Ok(Some(match EventId::parse(raw) {
            Some(id) => Self::Known(id),
            None => Self::Foreign(raw.to_owned()),
        }))
    }
}

impl fmt::Display for LastEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known(id) => id.fmt(f),
            Self::Foreign(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert!(is_valid_id("a"));
        assert!(is_valid_id("run-1.thread_2:x"));
        assert!(is_valid_id(&"x".repeat(128)));
        assert!(!is_valid_id(&"x".repeat(129)));
        assert!(!is_valid_id(""));
        for bad in ["a b", "a\n", "a\r", "a\0", "é", "a/b", "a%20"] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn event_id_round_trip() {
        let id = EventId {
            epoch: Epoch::from_u64(0x7f3a9c),
            seq: 42,
        };
        assert_eq!(id.to_string(), "7f3a9c-42");
        assert_eq!(EventId::parse("7f3a9c-42"), Some(id));
        for foreign in ["42", "abc", "0-1", "zz-1", "1-", "-1", "1-2-3", "1-x"] {
            assert_eq!(EventId::parse(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn last_event_id() {
        assert_eq!(LastEventId::parse(""), Ok(None));
        assert!(matches!(
            LastEventId::parse("ab-3"),
            Ok(Some(LastEventId::Known(_)))
        ));
        assert!(matches!(
            LastEventId::parse("msg_17"),
            Ok(Some(LastEventId::Foreign(_)))
        ));
        assert!(LastEventId::parse("a\r\nevent: x").is_err());
        assert!(LastEventId::parse(&"1".repeat(129)).is_err());
    }
}
