//! Session patterns: what a token's `tether.subscribe` and `tether.publish` claims list.

use std::fmt;
use std::sync::Arc;

use crate::id::{MAX_ID_LEN, SessionId};

/// One entry of a token's `tether.subscribe` or `tether.publish` list: an exact session id
/// (`"alice:chat"`), a prefix ending in `*` (`"alice:*"` matches every id starting with
/// `alice:`, and `alice:` itself), or `"*"` for every session.
///
/// The part before the `*` follows the session id grammar (at most 128 characters of
/// `[A-Za-z0-9._:-]`), and `*` may only be the last character; anything else is malformed, and
/// a token carrying a malformed pattern is invalid as a whole.
///
/// ```
/// use tether_core::SessionId;
/// use tether_core::auth::SessionPattern;
///
/// let own = SessionPattern::parse("alice:*").unwrap();
/// assert!(own.matches(&SessionId::new("alice:chat").unwrap()));
/// assert!(!own.matches(&SessionId::new("bob:chat").unwrap()));
/// assert!(SessionPattern::parse("alice*:x").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionPattern(Kind);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Kind {
    All,
    Exact(Arc<str>),
    Prefix(Arc<str>),
}

impl SessionPattern {
    /// The pattern `*`: every session.
    pub fn all() -> Self {
        Self(Kind::All)
    }

    /// Parses a pattern; `None` when it is malformed: empty, a `*` anywhere but at the end,
    /// or a character outside the session id grammar, or longer than 128 characters before
    /// the `*`.
    pub fn parse(pattern: &str) -> Option<Self> {
        if pattern == "*" {
            return Some(Self::all());
        }
        let (body, prefix) = match pattern.strip_suffix('*') {
            Some(body) => (body, true),
            None => (pattern, false),
        };
        let grammar = !body.is_empty()
            && body.len() <= MAX_ID_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !grammar {
            return None;
        }
        Some(Self(if prefix {
            Kind::Prefix(body.into())
        } else {
            Kind::Exact(body.into())
        }))
    }

    /// Whether the pattern covers `session`.
    pub fn matches(&self, session: &SessionId) -> bool {
        let id = session.as_str();
        match &self.0 {
            Kind::All => true,
            Kind::Exact(exact) => id == &**exact,
            Kind::Prefix(prefix) => id.starts_with(&**prefix),
        }
    }
}

impl fmt::Display for SessionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::All => f.write_str("*"),
            Kind::Exact(exact) => f.write_str(exact),
            Kind::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

impl fmt::Debug for SessionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionPattern({self})")
    }
}

impl std::str::FromStr for SessionPattern {
    type Err = MalformedPattern;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(MalformedPattern)
    }
}

/// A pattern that is neither an exact session id, a prefix ending in `*`, nor `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a session pattern is a session id, a prefix of one ending in `*`, or `*` (1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-' before the `*`)"
)]
pub struct MalformedPattern;

/// Whether any of `patterns` covers `session`.
pub(crate) fn any_matches(patterns: &[SessionPattern], session: &SessionId) -> bool {
    patterns.iter().any(|p| p.matches(session))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::new(s).unwrap()
    }

    #[test]
    fn exact_pattern_matches_only_that_id() {
        let p = SessionPattern::parse("alice:chat").unwrap();
        assert!(p.matches(&id("alice:chat")));
        assert!(!p.matches(&id("alice:chat2")));
        assert!(!p.matches(&id("alice:cha")));
    }

    #[test]
    fn prefix_pattern_needs_the_star() {
        let prefix = SessionPattern::parse("alice:*").unwrap();
        assert!(prefix.matches(&id("alice:chat")));
        assert!(prefix.matches(&id("alice:")));
        assert!(!prefix.matches(&id("alice")));
        assert!(!prefix.matches(&id("bob:alice:x")));
        // Without the star the same text is an exact id, not a prefix.
        let exact = SessionPattern::parse("alice:").unwrap();
        assert!(!exact.matches(&id("alice:chat")));
    }

    #[test]
    fn star_matches_every_session() {
        let p = SessionPattern::parse("*").unwrap();
        assert_eq!(p, SessionPattern::all());
        assert!(p.matches(&id("x")));
        assert!(p.matches(&id(&"a".repeat(128))));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "",
            "**",
            "a**",
            "*a",
            "a*b",
            "alice *",
            "alice/x",
            "ä",
            "a\n",
            &"a".repeat(129),
        ] {
            assert!(SessionPattern::parse(bad).is_none(), "{bad:?}");
        }
        assert!(SessionPattern::parse(&"a".repeat(128)).is_some());
        assert!(SessionPattern::parse(&format!("{}*", "a".repeat(128))).is_some());
        assert!("a*b".parse::<SessionPattern>().is_err());
    }

    #[test]
    fn patterns_display_as_written() {
        for p in ["*", "alice:*", "alice:chat"] {
            assert_eq!(SessionPattern::parse(p).unwrap().to_string(), p);
        }
    }
}
