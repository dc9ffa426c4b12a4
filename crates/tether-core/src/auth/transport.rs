//! Where a request carries its token, and the one call that turns a request into an
//! [`Identity`] (feature `http`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use super::constant_time_eq;
use super::error::TokenError;
use super::identity::Identity;
#[cfg(feature = "jwt")]
use super::verify::JwtKeys;
use crate::http::query_param;

/// The query parameter that may carry a token (for EventSource, which cannot set headers).
pub const TOKEN_QUERY_PARAM: &str = "token";

/// The cookie that may carry a token.
pub const TOKEN_COOKIE: &str = "tether_token";

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// The `token` query parameter.
    Query,
    /// The `tether_token` cookie.
    Cookie,
}

/// A token as a request carried it. Its `Debug` hides the token: never log
/// [`as_str`](Self::as_str).
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedToken<'a> {
    source: TokenSource,
    token: Cow<'a, str>,
}

impl<'a> PresentedToken<'a> {
    /// A token from `source`, for callers that found it themselves.
    pub fn new(source: TokenSource, token: impl Into<Cow<'a, str>>) -> Self {
        Self {
            source,
            token: token.into(),
        }
    }

    /// Where it came from.
    pub fn source(&self) -> TokenSource {
        self.source
    }

    /// The token itself. It is a credential: keep it out of logs and error messages.
    pub fn as_str(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for PresentedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedToken")
            .field("source", &self.source)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Finds a request's token, looking in this order and taking the first one found:
/// `Authorization: Bearer` (scheme case-insensitive), the query parameter `token`
/// (percent-decoded from the raw query string, `""` when there is none), the cookie
/// `tether_token`. Empty values count as absent, and so does an `Authorization` header of
/// another scheme (it may be meant for a proxy in front).
pub fn find_token<'a>(headers: &'a HeaderMap, query: &'a str) -> Option<PresentedToken<'a>> {
    let bearer = headers.get_all(AUTHORIZATION).iter().find_map(|v| {
        let (scheme, token) = v.to_str().ok()?.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    });
    if let Some(token) = bearer {
        return Some(PresentedToken::new(TokenSource::Bearer, token));
    }
    if let Some(token) = query_param(query, TOKEN_QUERY_PARAM).filter(|t| !t.is_empty()) {
        return Some(PresentedToken::new(TokenSource::Query, token));
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (name.trim() == TOKEN_COOKIE && !value.is_empty()).then_some(value)
        })
        .map(|token| PresentedToken::new(TokenSource::Cookie, token))
}

/// Turns a request into an [`Identity`]: finds its token ([`find_token`]), compares a bearer
/// token with the static publish token first (in constant time; the publish token is only
/// accepted in the `Authorization` header, never in a URL or a cookie), and otherwise
/// verifies it as a JWT. Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
/// use tether_core::SessionId;
/// use tether_core::auth::{Authenticator, Capability, Claims, JwtKeys, TokenError, mint_hs256};
///
/// let secret = b"0123456789abcdef0123456789abcdef";
/// let auth = Authenticator::new()
///     .publish_token("backend-token")
///     .jwt(JwtKeys::hs256(secret).unwrap());
///
/// let token = mint_hs256(secret, &Claims::expiring_in(Duration::from_secs(60)).subscribe("alice:*"));
/// let query = format!("token={token}");
/// let who = auth.authenticate(&HeaderMap::new(), &query).unwrap();
/// assert!(who.may(Capability::Subscribe, &SessionId::new("alice:chat").unwrap()));
///
/// let mut backend = HeaderMap::new();
/// backend.insert("authorization", "Bearer backend-token".parse().unwrap());
/// assert!(auth.authenticate(&backend, "").unwrap().is_static_publisher());
///
/// assert_eq!(auth.authenticate(&HeaderMap::new(), ""), Err(TokenError::Missing));
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct Authenticator {
    publish_token: Option<Arc<str>>,
    #[cfg(feature = "jwt")]
    keys: Option<JwtKeys>,
}

impl Authenticator {
    /// Accepts nothing until a publish token or JWT keys are set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A bearer token equal to `token` is the [static publisher](Identity::static_publisher).
    /// Default is none. An empty token matches nothing.
    pub fn publish_token(mut self, token: impl Into<Arc<str>>) -> Self {
        self.publish_token = Some(token.into());
        self
    }

    /// Verifies tokens as JWTs with `keys`. Default is none: only the publish token is
    /// accepted.
    #[cfg(feature = "jwt")]
    pub fn jwt(mut self, keys: JwtKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The JWT keys, if set (for reloading them).
    #[cfg(feature = "jwt")]
    pub fn jwt_keys(&self) -> Option<&JwtKeys> {
        self.keys.as_ref()
    }

    /// Who the request with `headers` and the raw `query` string is. [`TokenError::Missing`]
    /// when it carries no token.
    pub fn authenticate(&self, headers: &HeaderMap, query: &str) -> Result<Identity, TokenError> {
        match find_token(headers, query) {
            Some(token) => self.verify(&token),
            None => Err(TokenError::Missing),
        }
    }

    /// Who the holder of `token` is.
    pub fn verify(&self, token: &PresentedToken<'_>) -> Result<Identity, TokenError> {
        if token.source == TokenSource::Bearer
            && let Some(expected) = &self.publish_token
            && !expected.is_empty()
            && constant_time_eq(token.as_str().as_bytes(), expected.as_bytes())
        {
            return Ok(Identity::static_publisher());
        }
        #[cfg(feature = "jwt")]
        if let Some(keys) = &self.keys {
            return keys.verify(token.as_str());
        }
        Err(TokenError::Invalid("it is not a token this server accepts"))
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Authenticator");
        d.field("publish_token", &self.publish_token.as_ref().map(|_| ".."));
        #[cfg(feature = "jwt")]
        d.field("jwt", &self.keys);
        d.finish()
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

    fn found(h: &HeaderMap, q: &str) -> Option<(TokenSource, String)> {
        find_token(h, q).map(|t| (t.source(), t.as_str().to_owned()))
    }

    #[test]
    fn bearer_header_wins_over_query_and_cookie() {
        let h = headers(&[
            ("authorization", "Bearer from-header"),
            ("cookie", "tether_token=from-cookie"),
        ]);
        assert_eq!(
            found(&h, "token=from-query"),
            Some((TokenSource::Bearer, "from-header".into()))
        );
    }

    #[test]
    fn query_wins_over_cookie() {
        let h = headers(&[("cookie", "tether_token=from-cookie")]);
        assert_eq!(
            found(&h, "a=1&token=from%2Dquery"),
            Some((TokenSource::Query, "from-query".into()))
        );
        assert_eq!(
            found(&h, ""),
            Some((TokenSource::Cookie, "from-cookie".into()))
        );
    }

    #[test]
    fn cookie_is_found_among_others() {
        let h = headers(&[
            ("cookie", "a=b"),
            ("cookie", "theme=dark; tether_token=\"tok\"; x=y"),
        ]);
        assert_eq!(found(&h, ""), Some((TokenSource::Cookie, "tok".into())));
        let h = headers(&[("cookie", "not_tether_token=x; tether_tokenx=y")]);
        assert_eq!(found(&h, ""), None);
    }

    #[test]
    fn other_schemes_and_empty_values_count_as_absent() {
        let h = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(found(&h, "token=q"), Some((TokenSource::Query, "q".into())));
        let h = headers(&[("authorization", "Bearer "), ("cookie", "tether_token=")]);
        assert_eq!(found(&h, "token="), None);
        let h = headers(&[("authorization", "bearer   spaced  ")]);
        assert_eq!(found(&h, ""), Some((TokenSource::Bearer, "spaced".into())));
    }

    #[test]
    fn presented_token_debug_hides_the_token() {
        let t = PresentedToken::new(TokenSource::Query, "secret-value");
        assert!(!format!("{t:?}").contains("secret-value"));
    }

    #[test]
    fn publish_token_is_accepted_in_the_bearer_header_only() {
        let auth = Authenticator::new().publish_token("pub-token");
        let h = headers(&[("authorization", "Bearer pub-token")]);
        assert!(auth.authenticate(&h, "").unwrap().is_static_publisher());
        assert!(matches!(
            auth.authenticate(&HeaderMap::new(), "token=pub-token"),
            Err(TokenError::Invalid(_))
        ));
        let h = headers(&[("cookie", "tether_token=pub-token")]);
        assert!(matches!(
            auth.authenticate(&h, ""),
            Err(TokenError::Invalid(_))
        ));
        let h = headers(&[("authorization", "Bearer pub-tokeN")]);
        assert!(matches!(
            auth.authenticate(&h, ""),
            Err(TokenError::Invalid(_))
        ));
        assert_eq!(
            auth.authenticate(&HeaderMap::new(), ""),
            Err(TokenError::Missing)
        );
    }

    #[test]
    fn empty_publish_token_matches_nothing() {
        let auth = Authenticator::new().publish_token("");
        let t = PresentedToken::new(TokenSource::Bearer, "");
        assert!(auth.verify(&t).is_err());
    }
}
