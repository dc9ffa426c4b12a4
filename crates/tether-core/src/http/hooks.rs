//! The application's access policy (who may subscribe, publish and decide) and the options
//! every server applies the same way.

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderName};

use crate::auth::constant_time_eq;
pub use crate::auth::{Capability, Identity};
use crate::id::SessionId;

/// Default of [`Hooks::max_body_bytes`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Go ahead; the caller is anonymous (development, or an open policy).
    Allow,
    /// Go ahead as this identity (its `sub` is logged with decisions; a stream ends at its
    /// token's expiry).
    Granted(Identity),
    /// No credentials (401 `unauthorized`).
    Unauthorized {
        /// What the caller should do.
        message: Cow<'static, str>,
        /// The `WWW-Authenticate` challenge, e.g. `Bearer`.
        challenge: Option<Cow<'static, str>>,
    },
    /// Credentials that are not valid: a bad signature, an expired token, a malformed claim
    /// (401 `invalid_token`, `WWW-Authenticate: Bearer error="invalid_token"`).
    InvalidToken {
        /// What is wrong, without the token itself.
        message: Cow<'static, str>,
    },
    /// Valid credentials, but not for this session or capability (403 `forbidden`).
    Forbidden {
        /// What the caller should do.
        message: Cow<'static, str>,
    },
    /// The request's credentials are malformed in a way no retry fixes (400 with `code`).
    BadRequest {
        /// The machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: Cow<'static, str>,
    },
}

impl Access {
    /// A 401 answer for a request without credentials, challenging for a bearer token.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Unauthorized {
            message: message.into(),
            challenge: Some("Bearer".into()),
        }
    }

    /// A 403 answer.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden {
            message: message.into(),
        }
    }

    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow | Self::Granted(_))
    }

    /// The identity the request goes ahead as, if any.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Self::Granted(identity) => Some(identity),
            _ => None,
        }
    }

    /// `Ok` with the identity (if any) to go ahead, or the error answer.
    pub fn into_result(self) -> Result<Option<Identity>, super::HttpError> {
        use super::HttpError;
        use http::StatusCode;
        match self {
            Self::Allow => Ok(None),
            Self::Granted(identity) => Ok(Some(identity)),
            Self::Unauthorized { message, challenge } => {
                let e = HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
                Err(match challenge {
                    Some(c) => e.with_challenge(c),
                    None => e,
                })
            }
            Self::InvalidToken { message } => {
                Err(
                    HttpError::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
                        .with_challenge(r#"Bearer error="invalid_token""#),
                )
            }
            Self::Forbidden { message } => {
                Err(HttpError::new(StatusCode::FORBIDDEN, "forbidden", message))
            }
            Self::BadRequest { code, message } => Err(HttpError::bad_request(code, message)),
        }
    }
}

/// What a request asks for: a capability on a session, with the request's headers and raw
/// query string (where the `token` parameter may be).
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// The session.
    pub session: &'a SessionId,
    /// Subscribe (read the stream, read approval status, decide approvals, start an AG-UI
    /// run) or publish (publish, create and cancel approvals).
    pub capability: Capability,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The raw query string, `""` when there is none.
    pub query: &'a str,
}

/// Decides who may use a session for what. Runs on the request's head, before anything
/// touches the broker and before the body is read, so an unauthorized request never creates a
/// session, supersedes a stream or costs a body's memory.
///
/// Called on every request of tether's routes: keep it fast and non-blocking (check a signed
/// token or a header set by an authenticating proxy). Closures `Fn(&AccessRequest) -> Access`
/// implement it.
pub trait Authorizer: Send + Sync + 'static {
    /// Whether `request` may go ahead.
    fn authorize(&self, request: &AccessRequest<'_>) -> Access;

    /// The part of the check that needs no session: whether the request's credentials are
    /// present and valid at all. Routes that learn their session from the body (the AG-UI
    /// run route names its thread there) call it on the head, so a request without valid
    /// credentials is refused before its body is read; [`authorize`](Self::authorize) still
    /// decides once the session is known. Answer `Access::Allow` when the credentials can
    /// only be judged with the session (the default).
    fn authenticate(&self, headers: &HeaderMap, query: &str) -> Access {
        let _ = (headers, query);
        Access::Allow
    }
}

impl<F> Authorizer for F
where
    F: Fn(&AccessRequest<'_>) -> Access + Send + Sync + 'static,
{
    fn authorize(&self, request: &AccessRequest<'_>) -> Access {
        self(request)
    }
}

/// Every session to everyone, for development and for services that authenticate elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &AccessRequest<'_>) -> Access {
        Access::Allow
    }
}

/// Access by signed tokens (feature `jwt`): the token of the request (`Authorization:
/// Bearer`, then the `token` query parameter, then the `tether_token` cookie) must be valid
/// and its `tether.subscribe` / `tether.publish` claim must name the session.
#[cfg(feature = "jwt")]
#[derive(Debug, Clone)]
pub struct JwtAuthorizer {
    keys: crate::auth::JwtKeys,
}

#[cfg(feature = "jwt")]
impl JwtAuthorizer {
    /// Checks tokens with `keys`.
    pub fn new(keys: crate::auth::JwtKeys) -> Self {
        Self { keys }
    }
}

#[cfg(feature = "jwt")]
impl JwtAuthorizer {
    /// The request's token, verified; the 401 answer otherwise.
    fn identity(&self, headers: &HeaderMap, query: &str) -> Result<Identity, Access> {
        use crate::auth::TokenError;
        let Some(token) = crate::auth::find_token(headers, query) else {
            return Err(Access::unauthorized(
                "send a token: `Authorization: Bearer <token>`, the `token` query parameter, or the `tether_token` cookie",
            ));
        };
        self.keys.verify(token.as_str()).map_err(|e| match e {
            TokenError::Missing => Access::unauthorized("send a token"),
            e => Access::InvalidToken {
                message: e.to_string().into(),
            },
        })
    }
}

#[cfg(feature = "jwt")]
impl Authorizer for JwtAuthorizer {
    fn authorize(&self, request: &AccessRequest<'_>) -> Access {
        match self.identity(request.headers, request.query) {
            Ok(identity) if identity.may(request.capability, request.session) => {
                Access::Granted(identity)
            }
            Ok(_) => Access::forbidden(match request.capability {
                Capability::Subscribe => "the token has no subscribe claim for this session",
                Capability::Publish => "the token has no publish claim for this session",
            }),
            Err(refused) => refused,
        }
    }

    fn authenticate(&self, headers: &HeaderMap, query: &str) -> Access {
        match self.identity(headers, query) {
            Ok(_) => Access::Allow,
            Err(refused) => refused,
        }
    }
}

/// For deployments where an authenticating proxy (oauth2-proxy and the like) puts the user's
/// name in a request header: a session belongs to a user when its id is the user's name or
/// starts with `<user>:`. It grants subscribing only: publishing needs the publish token or a
/// token's publish claim. No header is 401; the header twice is 400 `invalid_user_header`; a
/// name containing `:` (it would own other users' sessions) or another user's session is 403.
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

impl SessionOwnerHeader {
    /// The user the proxy named; the answer otherwise (no header, twice, empty).
    fn user<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, Access> {
        let mut values = headers.get_all(&self.header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            if headers.contains_key(&self.header) {
                return Err(Access::BadRequest {
                    code: "invalid_user_header",
                    message: format!("the request carries `{}` more than once", self.header).into(),
                });
            }
            return Err(Access::unauthorized(format!(
                "sign in first: the request carries no `{}` header",
                self.header
            )));
        };
        value
            .to_str()
            .ok()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Access::unauthorized(format!(
                    "sign in first: the `{}` header is empty or not text",
                    self.header
                ))
            })
    }
}

impl Authorizer for SessionOwnerHeader {
    fn authorize(&self, request: &AccessRequest<'_>) -> Access {
        if request.capability == Capability::Publish {
            return Access::unauthorized(
                "publishing needs the publish token or a token with a publish claim",
            );
        }
        let user = match self.user(request.headers) {
            Ok(user) => user,
            Err(refused) => return refused,
        };
        if user.contains(':') {
            return Access::forbidden("a user name containing `:` owns no session");
        }
        let id = request.session.as_str();
        let owned = id == user
            || id
                .strip_prefix(user)
                .is_some_and(|rest| rest.starts_with(':'));
        if owned {
            Access::Granted(Identity::new(
                Some(Arc::from(user)),
                None,
                Vec::new(),
                Vec::new(),
            ))
        } else {
            Access::forbidden("this session belongs to another user")
        }
    }

    fn authenticate(&self, headers: &HeaderMap, _query: &str) -> Access {
        match self.user(headers) {
            Ok(_) => Access::Allow,
            Err(refused) => refused,
        }
    }
}

/// The bearer token of a request, if it sends one in `Authorization`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The application's access policy and the HTTP options every server applies the same way.
/// Cheap to clone. There is no `Default`: a service names its policy.
///
/// - [`Hooks::allow_all`]: every session to everyone (development; services behind their own
///   authentication); publishing too, unless a [publish token](Hooks::publish_token) is set.
/// - [`Hooks::jwt`] (feature `jwt`): signed tokens with session claims.
/// - [`Hooks::authorizer`]: the application's own [`Authorizer`].
///
/// A [publish token](Hooks::publish_token) (the backend's static secret, compared in
/// constant time) grants publishing to every session, whatever the authorizer says.
///
/// ```
/// use tether_core::http::{Access, AccessRequest, Capability, Hooks};
///
/// let hooks = Hooks::allow_all()
///     .publish_token("s3cret")
///     .authorizer(|req: &AccessRequest<'_>| {
///         match req.headers.get("x-user").and_then(|v| v.to_str().ok()) {
///             None => Access::unauthorized("sign in first"),
///             Some(user)
///                 if req.capability == Capability::Subscribe
///                     && req.session.as_str().starts_with(user) =>
///             {
///                 Access::Allow
///             }
///             Some(_) => Access::forbidden("not your session"),
///         }
///     });
/// # drop(hooks);
/// ```
#[derive(Clone)]
#[must_use]
pub struct Hooks {
    pub(crate) authorizer: Arc<dyn Authorizer>,
    /// Whether the authorizer is [`AllowAll`]: publishing then needs the publish token if one
    /// is set.
    open: bool,
    publish_token: Option<Arc<str>>,
    pub(crate) max_body_bytes: usize,
    pub(crate) accel_buffering_header: bool,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("open", &self.open)
            .field("publish_token", &self.publish_token.is_some())
            .field("max_body_bytes", &self.max_body_bytes)
            .field("accel_buffering_header", &self.accel_buffering_header)
            .finish_non_exhaustive()
    }
}

impl Hooks {
    /// Every session to everyone: subscribing, deciding and (unless a
    /// [publish token](Self::publish_token) is set) publishing. For development, and for
    /// services that authenticate in front of tether.
    pub fn allow_all() -> Self {
        Self {
            authorizer: Arc::new(AllowAll),
            open: true,
            publish_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            accel_buffering_header: true,
        }
    }

    /// Access by signed tokens checked with `keys` (see [`JwtAuthorizer`]).
    #[cfg(feature = "jwt")]
    pub fn jwt(keys: crate::auth::JwtKeys) -> Self {
        Self::allow_all().authorizer(JwtAuthorizer::new(keys))
    }

    /// Replaces the authorizer: it decides every capability on every session (a publish token
    /// still grants publishing).
    pub fn authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Arc::new(authorizer);
        self.open = false;
        self
    }

    /// The backend's static publish token (`Authorization: Bearer <token>`, compared in
    /// constant time before anything else): it grants publishing to every session. Under
    /// [`allow_all`](Self::allow_all) publishing then needs it.
    pub fn publish_token(mut self, token: impl Into<Arc<str>>) -> Self {
        self.publish_token = Some(token.into());
        self
    }

    /// Largest request body the routes accept (413 past it); servers stop reading there.
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

    /// Whether the request's credentials are present and valid, before its session is known
    /// (see [`Authorizer::authenticate`]).
    pub fn authenticate(&self, headers: &HeaderMap, query: &str) -> Access {
        self.authorizer.authenticate(headers, query)
    }

    /// The decision for `request`: the publish token first (for publishing), then the
    /// authorizer.
    pub fn check(&self, request: &AccessRequest<'_>) -> Access {
        if request.capability == Capability::Publish
            && let Some(token) = &self.publish_token
        {
            match bearer(request.headers) {
                Some(b) if constant_time_eq(b.as_bytes(), token.as_bytes()) => {
                    return Access::Granted(Identity::static_publisher());
                }
                Some(_) if self.open => {
                    return Access::InvalidToken {
                        message: "the bearer token is not valid for publishing".into(),
                    };
                }
                None if self.open => {
                    return Access::unauthorized(
                        "publishing needs `Authorization: Bearer <token>`",
                    );
                }
                _ => {}
            }
        }
        self.authorizer.authorize(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ask(hooks: &Hooks, session: &str, capability: Capability, h: &HeaderMap) -> Access {
        let session = SessionId::new(session).unwrap();
        hooks.check(&AccessRequest {
            session: &session,
            capability,
            headers: h,
            query: "",
        })
    }

    #[test]
    fn a_publish_token_closes_open_publishing_only() {
        let hooks = Hooks::allow_all().publish_token("tok");
        let none = HeaderMap::new();
        let good = headers(&[("authorization", "Bearer tok")]);
        let bad = headers(&[("authorization", "bearer tok2")]);
        assert!(ask(&hooks, "s", Capability::Publish, &good).is_allowed());
        assert!(matches!(
            ask(&hooks, "s", Capability::Publish, &none),
            Access::Unauthorized { .. }
        ));
        assert!(matches!(
            ask(&hooks, "s", Capability::Publish, &bad),
            Access::InvalidToken { .. }
        ));
        assert!(ask(&hooks, "s", Capability::Subscribe, &none).is_allowed());
    }

    #[test]
    fn owner_header_grants_subscribing_to_the_owner_only() {
        let hooks = Hooks::allow_all()
            .authorizer(SessionOwnerHeader::new(HeaderName::from_static("x-user")));
        let alice = headers(&[("x-user", "alice")]);
        let sub = Capability::Subscribe;
        assert!(ask(&hooks, "alice:chat", sub, &alice).is_allowed());
        assert!(ask(&hooks, "alice", sub, &alice).is_allowed());
        assert_eq!(
            ask(&hooks, "alice:chat", sub, &alice)
                .identity()
                .and_then(Identity::subject),
            Some("alice")
        );
        for (session, who) in [("alice:chat", "al"), ("alice:chat", "bob")] {
            let h = headers(&[("x-user", who)]);
            assert!(matches!(
                ask(&hooks, session, sub, &h),
                Access::Forbidden { .. }
            ));
        }
        let colon = headers(&[("x-user", "alice:")]);
        assert!(matches!(
            ask(&hooks, "alice:chat", sub, &colon),
            Access::Forbidden { .. }
        ));
        let twice = headers(&[("x-user", "alice"), ("x-user", "bob")]);
        assert!(matches!(
            ask(&hooks, "alice:chat", sub, &twice),
            Access::BadRequest {
                code: "invalid_user_header",
                ..
            }
        ));
        assert!(matches!(
            ask(&hooks, "alice:chat", sub, &HeaderMap::new()),
            Access::Unauthorized { .. }
        ));
        assert!(
            !ask(&hooks, "alice:chat", Capability::Publish, &alice).is_allowed(),
            "the user header never grants publishing"
        );
    }

    #[test]
    fn a_publish_token_beside_an_authorizer_grants_publishing_only() {
        let hooks = Hooks::allow_all()
            .publish_token("tok")
            .authorizer(SessionOwnerHeader::new(HeaderName::from_static("x-user")));
        let good = headers(&[("authorization", "Bearer tok")]);
        assert!(ask(&hooks, "s", Capability::Publish, &good).is_allowed());
        assert!(!ask(&hooks, "s", Capability::Subscribe, &good).is_allowed());
    }
}
