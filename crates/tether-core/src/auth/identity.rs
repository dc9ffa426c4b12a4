//! Who a request is, once its token checked out, and what it may do.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::pattern::{SessionPattern, any_matches};
use crate::id::SessionId;

/// What a request wants to do with a session.
///
/// Subscribe covers reading the stream, reading approval status, deciding approvals and
/// starting AG-UI runs on the thread; publish covers publishing and creating and cancelling
/// approvals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Read the session: its stream, its approvals' status; decide its approvals; start a run
    /// on its thread.
    Subscribe,
    /// Write to the session: publish events, create or cancel approvals.
    Publish,
}

/// The caller behind a valid token: a token's subject and the session patterns it grants, or
/// the holder of the static publish token. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    inner: Arc<Inner>,
}

#[derive(PartialEq, Eq)]
struct Inner {
    sub: Option<Arc<str>>,
    expires_at: Option<u64>,
    subscribe: Vec<SessionPattern>,
    publish: Vec<SessionPattern>,
    static_publisher: bool,
}

impl Identity {
    /// An identity with these grants: what a verified token's claims amount to. `expires_at`
    /// is the token's `exp` in seconds since the Unix epoch.
    pub fn new(
        sub: Option<Arc<str>>,
        expires_at: Option<u64>,
        subscribe: Vec<SessionPattern>,
        publish: Vec<SessionPattern>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                sub,
                expires_at,
                subscribe,
                publish,
                static_publisher: false,
            }),
        }
    }

    /// The holder of the static publish token (`--publish-token`): may publish to every
    /// session and subscribe to none. It has no subject and never expires.
    pub fn static_publisher() -> Self {
        Self {
            inner: Arc::new(Inner {
                sub: None,
                expires_at: None,
                subscribe: Vec::new(),
                publish: vec![SessionPattern::all()],
                static_publisher: true,
            }),
        }
    }

    /// Whether this identity may do `capability` on `session`. `false` means 403: the token
    /// is fine, but not for this.
    pub fn may(&self, capability: Capability, session: &SessionId) -> bool {
        let patterns = match capability {
            Capability::Subscribe => &self.inner.subscribe,
            Capability::Publish => &self.inner.publish,
        };
        any_matches(patterns, session)
    }

    /// The token's `sub` claim, if it had one.
    pub fn subject(&self) -> Option<&str> {
        self.inner.sub.as_deref()
    }

    /// When the token expires (its `exp`), in seconds since the Unix epoch; `None` for the
    /// static publisher.
    pub fn expires_at_unix(&self) -> Option<u64> {
        self.inner.expires_at
    }

    /// When the token expires (its `exp`); `None` for the static publisher.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner
            .expires_at
            .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
    }

    /// Whether this is the holder of the static publish token rather than of a signed token.
    pub fn is_static_publisher(&self) -> bool {
        self.inner.static_publisher
    }

    /// The patterns granted for `capability`.
    pub fn patterns(&self, capability: Capability) -> &[SessionPattern] {
        match capability {
            Capability::Subscribe => &self.inner.subscribe,
            Capability::Publish => &self.inner.publish,
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("sub", &self.inner.sub)
            .field("expires_at", &self.inner.expires_at)
            .field("subscribe", &self.inner.subscribe)
            .field("publish", &self.inner.publish)
            .field("static_publisher", &self.inner.static_publisher)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::new(s).unwrap()
    }

    #[test]
    fn static_publisher_publishes_everywhere_and_subscribes_nowhere() {
        let p = Identity::static_publisher();
        assert!(p.is_static_publisher());
        assert!(p.may(Capability::Publish, &id("any")));
        assert!(p.may(Capability::Publish, &id("alice:chat")));
        assert!(!p.may(Capability::Subscribe, &id("any")));
        assert_eq!(p.subject(), None);
        assert_eq!(p.expires_at(), None);
    }

    #[test]
    fn capabilities_are_checked_separately() {
        let alice = Identity::new(
            Some("alice".into()),
            Some(2_000_000_000),
            vec![SessionPattern::parse("alice:*").unwrap()],
            vec![SessionPattern::parse("alice:outbox").unwrap()],
        );
        assert!(alice.may(Capability::Subscribe, &id("alice:chat")));
        assert!(!alice.may(Capability::Publish, &id("alice:chat")));
        assert!(alice.may(Capability::Publish, &id("alice:outbox")));
        assert!(!alice.may(Capability::Subscribe, &id("bob:chat")));
        assert!(!alice.is_static_publisher());
        assert_eq!(alice.subject(), Some("alice"));
        assert_eq!(
            alice.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
    }

    #[test]
    fn no_patterns_grant_nothing() {
        let nobody = Identity::new(None, Some(1), Vec::new(), Vec::new());
        assert!(!nobody.may(Capability::Subscribe, &id("s")));
        assert!(!nobody.may(Capability::Publish, &id("s")));
    }
}
