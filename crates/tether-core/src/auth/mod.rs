//! Access tokens: who a request is and which sessions it may subscribe to or publish to
//! (features `jwt` and `http`).
//!
//! A token is a signed JWT whose claims name the sessions it grants:
//!
//! ```json
//! {"exp": 1767225600, "sub": "alice", "tether": {"subscribe": ["alice:*"], "publish": []}}
//! ```
//!
//! Each entry is a [`SessionPattern`]: an exact session id, a prefix ending in `*`, or `*`
//! for all. `exp` is required. The backend that publishes may instead hold the static
//! publish token, which makes it the [static publisher](Identity::static_publisher).
//!
//! A request handler asks the [`Authenticator`] who the request is, then the [`Identity`]
//! whether it may do what the route does:
//!
//! | outcome | answer |
//! |---|---|
//! | [`TokenError::Missing`] | 401 `unauthorized`, `WWW-Authenticate: Bearer` |
//! | [`TokenError::Invalid`], [`TokenError::Expired`] | 401 `invalid_token`, `WWW-Authenticate: Bearer error="invalid_token"` |
//! | `identity.may(capability, &session) == false` | 403 |
//!
//! [`TokenError::code`] and [`TokenError::challenge`] give the code and the header.
//!
//! | item | feature |
//! |---|---|
//! | [`SessionPattern`], [`Identity`], [`Capability`], [`TokenError`] | `jwt` or `http` |
//! | [`find_token`], [`Authenticator`], [`TokenSource`] | `http` |
//! | [`JwtKeys`], [`KeySet`], [`VerifyingKey`], [`Claims`], [`mint_hs256`] | `jwt` |
//!
//! Keys: HS256 from a secret of at least 32 bytes; public keys from PEM or JWKS, where the
//! algorithm follows the key type (RSA → RS256, P-256 → ES256, P-384 → ES384, Ed25519 →
//! EdDSA), never the token's header. [`JwtKeys`] documents which key checks which token.
//! The key set can be swapped while the server runs ([`JwtKeys::replace`]).
//!
//! Cryptography is jsonwebtoken's pure-Rust backend (RustCrypto), so no C toolchain is needed.

mod error;
mod identity;
mod pattern;

#[cfg(feature = "jwt")]
mod claims;
#[cfg(feature = "jwt")]
mod der;
#[cfg(feature = "jwt")]
mod keys;
#[cfg(feature = "http")]
mod transport;
#[cfg(feature = "jwt")]
mod verify;

#[cfg(feature = "jwt")]
pub use claims::{Claims, mint_hs256};
#[cfg(feature = "jwt")]
pub use error::KeyError;
pub use error::TokenError;
pub use identity::{Capability, Identity};
#[cfg(feature = "jwt")]
pub use keys::{KeyAlgorithm, KeySet, MIN_SECRET_LEN, VerifyingKey};
pub use pattern::{MalformedPattern, SessionPattern};
#[cfg(feature = "http")]
pub use transport::{
    Authenticator, PresentedToken, TOKEN_COOKIE, TOKEN_QUERY_PARAM, TokenSource, find_token,
};
#[cfg(feature = "jwt")]
pub use verify::{DEFAULT_LEEWAY, JwtKeys};

/// Compares two byte strings in time that depends on their lengths only, not on where they
/// differ, so a caller cannot guess a token byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_compares_whole_strings() {
        use super::constant_time_eq;
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
