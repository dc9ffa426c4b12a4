//! The application's hooks: who may subscribe to a session, who may publish, and the options
//! every adapter applies the same way.

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderName};

use crate::id::SessionId;

/// Default of [`Hooks::max_body_bytes`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// A hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Go ahead.
    Allow,
    /// No or invalid credentials (401).
    Unauthorized {
        /// What the caller should do.
        message: Cow<'static, str>,
        /// The `WWW-Authenticate` challenge, e.g. `Bearer`.
        challenge: Option<Cow<'static, str>>,
    },
    /// Credentials fine, but not for this session (403).
    Forbidden {
        /// What the caller should do.
        message: Cow<'static, str>,
    },
}

impl Access {
    /// A 401 answer.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Unauthorized {
            message: message.into(),
            challenge: None,
        }
    }

    /// A 403 answer.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden {
            message: message.into(),
        }
    }

    /// Whether this is [`Access::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }

    /// `Ok` to go ahead, or the error answer: 401 `unauthorized` (with the challenge) or 403
    /// `forbidden`.
    pub fn into_result(self) -> Result<(), super::HttpError> {
        use http::StatusCode;
        match self {
            Self::Allow => Ok(()),
            Self::Unauthorized { message, challenge } => {
                let e = super::HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
                Err(match challenge {
                    Some(c) => e.with_challenge(c),
                    None => e,
                })
            }
            Self::Forbidden { message } => Err(super::HttpError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                message,
            )),
        }
    }
}

/// Decides who may use a session from the browser side: subscribe to its stream, decide its
/// approvals and read their status. Runs before anything touches the broker, so an unauthorized
/// request never creates a session or takes over another user's stream.
///
/// Called on every request of those routes: keep it fast and non-blocking (check a signed token
/// or a header set by an authenticating proxy). Closures `Fn(&SessionId, &HeaderMap) -> Access`
/// implement it.
pub trait Authorizer: Send + Sync + 'static {
    /// Whether the request with `headers` may use `session`.
    fn authorize(&self, session: &SessionId, headers: &HeaderMap) -> Access;
}

impl<F> Authorizer for F
where
    F: Fn(&SessionId, &HeaderMap) -> Access + Send + Sync + 'static,
{
    fn authorize(&self, session: &SessionId, headers: &HeaderMap) -> Access {
        self(session, headers)
    }
}

/// Authenticates publishers: the callers of the publish and approval-management routes
/// (usually the application's backend). Closures `Fn(&SessionId, &HeaderMap) -> Access`
/// implement it.
pub trait PublisherAuth: Send + Sync + 'static {
    /// Whether the request with `headers` may publish to `session`.
    fn authenticate(&self, session: &SessionId, headers: &HeaderMap) -> Access;
}

impl<F> PublisherAuth for F
where
    F: Fn(&SessionId, &HeaderMap) -> Access + Send + Sync + 'static,
{
    fn authenticate(&self, session: &SessionId, headers: &HeaderMap) -> Access {
        self(session, headers)
    }
}

/// The default authorizer: every session to everyone. Fine when session ids are unguessable
/// capabilities; otherwise install an [`Authorizer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &SessionId, _: &HeaderMap) -> Access {
        Access::Allow
    }
}

/// Publisher authentication by a shared bearer token (`Authorization: Bearer <token>`),
/// compared in constant time.
#[derive(Clone)]
pub struct BearerToken(Arc<str>);

impl BearerToken {
    /// Accepts requests carrying `token`.
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl PublisherAuth for BearerToken {
    fn authenticate(&self, _: &SessionId, headers: &HeaderMap) -> Access {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match presented {
            Some(t) if constant_time_eq(t.as_bytes(), self.0.as_bytes()) => Access::Allow,
            Some(_) => Access::Unauthorized {
                message: "the bearer token is not valid for publishing".into(),
                challenge: Some(r#"Bearer error="invalid_token""#.into()),
            },
            None => Access::Unauthorized {
                message: "publishing needs `Authorization: Bearer <token>`".into(),
                challenge: Some("Bearer".into()),
            },
        }
    }
}

/// An authorizer for deployments where an authenticating proxy (oauth2-proxy and the like)
/// puts the user's name in a request header: a session belongs to a user when its id is the
/// user's name or starts with `<user>:`. No header is 401; another user's session is 403.
///
/// User names outside the session id grammar can own no session.
#[derive(Debug, Clone)]
pub struct SessionOwnerHeader {
    header: HeaderName,
}

impl SessionOwnerHeader {
    /// Reads the user's name from `header`.
    pub fn new(header: HeaderName) -> Self {
        Self { header }
    }
}

impl Authorizer for SessionOwnerHeader {
    fn authorize(&self, session: &SessionId, headers: &HeaderMap) -> Access {
        let Some(user) = headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .filter(|u| !u.is_empty())
        else {
            return Access::unauthorized(format!(
                "sign in first: the request carries no `{}` header",
                self.header
            ));
        };
        let id = session.as_str();
        let owned = id == user
            || id
                .strip_prefix(user)
                .is_some_and(|rest| rest.starts_with(':'));
        if owned {
            Access::Allow
        } else {
            Access::forbidden("this session belongs to another user")
        }
    }
}

/// The application's hooks and the HTTP options every adapter applies the same way. Cheap to
/// clone.
///
/// ```
/// use tether_core::http::{Access, Hooks};
///
/// let hooks = Hooks::allow_all()
///     .publish_token("s3cret")
///     .authorizer(|session: &tether_core::SessionId, headers: &http::HeaderMap| {
///         match headers.get("x-user").and_then(|v| v.to_str().ok()) {
///             None => Access::unauthorized("sign in first"),
///             Some(user) if session.as_str().starts_with(user) => Access::Allow,
///             Some(_) => Access::forbidden("not your session"),
///         }
///     });
/// # drop(hooks);
/// ```
#[derive(Clone)]
#[must_use]
pub struct Hooks {
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) publisher: Option<Arc<dyn PublisherAuth>>,
    pub(crate) max_body_bytes: usize,
    pub(crate) accel_buffering_header: bool,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("publisher_auth", &self.publisher.is_some())
            .field("max_body_bytes", &self.max_body_bytes)
            .field("accel_buffering_header", &self.accel_buffering_header)
            .finish_non_exhaustive()
    }
}

impl Hooks {
    /// Every session to everyone, and open publishing: for development, and for services
    /// whose session ids are unguessable capabilities or that sit behind an authenticating
    /// proxy. Narrow it with [`authorizer`](Self::authorizer) and
    /// [`publish_token`](Self::publish_token). There is no `Default`: a service names its
    /// policy.
    pub fn allow_all() -> Self {
        Self {
            authorizer: Arc::new(AllowAll),
            publisher: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            accel_buffering_header: true,
        }
    }

    /// Decides who may subscribe to a session, decide its approvals and read their status.
    /// Default is [`AllowAll`].
    pub fn authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Arc::new(authorizer);
        self
    }

    /// Authenticates the callers of the publish and approval-management routes; `None` leaves
    /// them open to anyone who can reach them. Default is `None`: set a token before the
    /// routes are reachable from outside a trusted network.
    pub fn publisher_auth(mut self, auth: Option<Arc<dyn PublisherAuth>>) -> Self {
        self.publisher = auth;
        self
    }

    /// Publishers must send `Authorization: Bearer <token>` ([`BearerToken`]).
    pub fn publish_token(self, token: impl Into<Arc<str>>) -> Self {
        self.publisher_auth(Some(Arc::new(BearerToken::new(token))))
    }

    /// Largest request body the routes accept (413 past it); adapters stop reading there.
    /// Default is 1 MiB.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Whether event streams carry `X-Accel-Buffering: no`, which tells nginx not to buffer
    /// them even where its configuration would. Turn it off only to reproduce a buffering
    /// proxy in a test. Default is on.
    pub fn accel_buffering_header(mut self, on: bool) -> Self {
        self.accel_buffering_header = on;
        self
    }

    /// The body limit.
    pub fn body_limit(&self) -> usize {
        self.max_body_bytes
    }

    /// Runs the authorizer.
    pub fn authorize(&self, session: &SessionId, headers: &HeaderMap) -> Access {
        self.authorizer.authorize(session, headers)
    }

    /// Runs the publisher authentication (allow when open).
    pub fn authenticate_publisher(&self, session: &SessionId, headers: &HeaderMap) -> Access {
        match &self.publisher {
            Some(p) => p.authenticate(session, headers),
            None => Access::Allow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer() {
        let s = SessionId::new("s").unwrap();
        let auth = BearerToken::new("tok");
        assert!(
            auth.authenticate(&s, &headers(&[("authorization", "Bearer tok")]))
                .is_allowed()
        );
        assert!(
            auth.authenticate(&s, &headers(&[("authorization", "bearer tok")]))
                .is_allowed()
        );
        assert!(matches!(
            auth.authenticate(&s, &headers(&[("authorization", "Bearer tok2")])),
            Access::Unauthorized { .. }
        ));
        assert!(matches!(
            auth.authenticate(&s, &HeaderMap::new()),
            Access::Unauthorized { .. }
        ));
    }

    #[test]
    fn owner_header() {
        let auth = SessionOwnerHeader::new(HeaderName::from_static("x-user"));
        let s = SessionId::new("alice:chat").unwrap();
        assert!(
            auth.authorize(&s, &headers(&[("x-user", "alice")]))
                .is_allowed()
        );
        assert!(matches!(
            auth.authorize(&s, &headers(&[("x-user", "al")])),
            Access::Forbidden { .. }
        ));
        assert!(matches!(
            auth.authorize(&s, &headers(&[("x-user", "bob")])),
            Access::Forbidden { .. }
        ));
        assert!(matches!(
            auth.authorize(&s, &HeaderMap::new()),
            Access::Unauthorized { .. }
        ));
        let own = SessionId::new("alice").unwrap();
        assert!(
            auth.authorize(&own, &headers(&[("x-user", "alice")]))
                .is_allowed()
        );
    }
}
