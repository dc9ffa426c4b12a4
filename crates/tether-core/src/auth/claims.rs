//! Minting tokens for tests, examples and development (feature `jwt`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The claims of a token as tether reads them, for [`mint_hs256`]:
/// `{"exp": …, "sub": "alice", "tether": {"subscribe": ["alice:*"], "publish": []}}`, plus
/// `aud` and `iss` when set.
///
/// Patterns are kept as written, unchecked, so tests can mint tokens with malformed ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[must_use]
pub struct Claims {
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    tether: Grants,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Grants {
    subscribe: Vec<String>,
    publish: Vec<String>,
}

impl Claims {
    /// Claims expiring at `exp` (seconds since the Unix epoch), with no subject and no
    /// grants.
    pub fn new(exp: u64) -> Self {
        Self {
            exp,
            sub: None,
            aud: None,
            iss: None,
            tether: Grants {
                subscribe: Vec::new(),
                publish: Vec::new(),
            },
        }
    }

    /// Claims expiring `ttl` from now.
    pub fn expiring_in(ttl: Duration) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::new(now.saturating_add(ttl).as_secs())
    }

    /// Sets `sub`, the subject.
    pub fn subject(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    /// Sets `aud`.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.aud = Some(aud.into());
        self
    }

    /// Sets `iss`.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.iss = Some(iss.into());
        self
    }

    /// Adds a pattern to `tether.subscribe`.
    pub fn subscribe(mut self, pattern: impl Into<String>) -> Self {
        self.tether.subscribe.push(pattern.into());
        self
    }

    /// Adds a pattern to `tether.publish`.
    pub fn publish(mut self, pattern: impl Into<String>) -> Self {
        self.tether.publish.push(pattern.into());
        self
    }

    /// The `exp` claim.
    pub fn exp(&self) -> u64 {
        self.exp
    }
}

/// Signs `claims` as an HS256 token with `secret`. For tests, examples and development
/// tokens: production tokens come from the application's login or an identity provider.
/// It signs with any secret, even one [`JwtKeys`](super::JwtKeys) would refuse, so tests can
/// make tokens that must fail.
///
/// ```
/// use std::time::Duration;
/// use tether_core::auth::{Claims, mint_hs256};
///
/// let token = mint_hs256(
///     b"0123456789abcdef0123456789abcdef",
///     &Claims::expiring_in(Duration::from_secs(600)).subject("alice").subscribe("alice:*"),
/// );
/// assert_eq!(token.split('.').count(), 3);
/// ```
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    // HMAC takes a key of any length and the claims always serialize: nothing can fail here.
    .expect("HS256 signing cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_serialize_in_tethers_shape() {
        let c = Claims::new(42).subject("alice").subscribe("alice:*");
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"exp": 42, "sub": "alice", "tether": {"subscribe": ["alice:*"], "publish": []}})
        );
        let c = Claims::new(1).audience("a").issuer("i");
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["aud"], "a");
        assert_eq!(v["iss"], "i");
    }
}
