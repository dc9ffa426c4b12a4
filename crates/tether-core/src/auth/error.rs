//! Why a request's token was not accepted, and why a key could not be loaded.

/// Why a request carries no usable token. Every variant is a 401; [`code`](Self::code) and
/// [`challenge`](Self::challenge) give the JSON error code and the `WWW-Authenticate` value.
///
/// Messages say what is wrong without repeating any part of the token, so they are safe to
/// send back and to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The request carries no token at all.
    #[error(
        "sign in first: send a token as `Authorization: Bearer <token>`, the `token` query parameter or the `tether_token` cookie"
    )]
    Missing,
    /// A token is there but cannot be accepted; the reason says why.
    #[error("the token is not valid: {0}")]
    Invalid(&'static str),
    /// The token was valid but its `exp` has passed (beyond the leeway).
    #[error("the token has expired: get a new one")]
    Expired,
}

impl TokenError {
    /// The JSON `error` code: `unauthorized` when no token came, `invalid_token` otherwise.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "unauthorized",
            Self::Invalid(_) | Self::Expired => "invalid_token",
        }
    }

    /// The `WWW-Authenticate` header of the 401 answer (RFC 6750): `Bearer` when no token
    /// came, `Bearer error="invalid_token"` otherwise.
    pub fn challenge(&self) -> &'static str {
        match self {
            Self::Missing => "Bearer",
            Self::Invalid(_) | Self::Expired => r#"Bearer error="invalid_token""#,
        }
    }
}

/// Why a key, a key file or a secret was refused. Messages never contain key material.
#[cfg(feature = "jwt")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The HS256 secret is empty.
    #[error(
        "the HS256 secret is empty: use at least 32 random bytes (e.g. `openssl rand -base64 32`)"
    )]
    EmptySecret,
    /// The HS256 secret is shorter than 32 bytes.
    #[error(
        "the HS256 secret has {len} bytes; it needs at least 32 (e.g. `openssl rand -base64 32`)"
    )]
    ShortSecret {
        /// The secret's length in bytes.
        len: usize,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file's content was refused; `source` says why.
    #[error("{path}: {source}", path = path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why its content was refused.
        source: Box<KeyError>,
    },
    /// The text is neither PEM nor a JWKS document.
    #[error("not a PEM public key nor a JWKS (JSON with a `keys` array)")]
    NotAKey,
    /// A PEM block holds a private key, where a public key belongs.
    #[error("this is a private key; pass the public key instead (`openssl pkey -in KEY -pubout`)")]
    PrivateKey,
    /// A PEM block or JWK holds a key type tether does not verify with.
    #[error(
        "unsupported key type {0}: use RSA (RS256), P-256 (ES256), P-384 (ES384) or Ed25519 (EdDSA)"
    )]
    Unsupported(&'static str),
    /// An RSA key is shorter than 2048 bits.
    #[error("the RSA key has {bits} bits; at least 2048 are needed")]
    WeakRsaKey {
        /// The modulus length in bits.
        bits: usize,
    },
    /// The key's encoding is broken.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    /// A JWKS document without one key tether can verify with.
    #[error(
        "the JWKS has no usable signing key (RSA, P-256, P-384 or Ed25519; keys marked `use: enc` are skipped)"
    )]
    NoUsableKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_token_challenges_plain_bearer() {
        assert_eq!(TokenError::Missing.challenge(), "Bearer");
        assert_eq!(TokenError::Missing.code(), "unauthorized");
    }

    #[test]
    fn bad_tokens_challenge_invalid_token() {
        for e in [TokenError::Expired, TokenError::Invalid("x")] {
            assert_eq!(e.challenge(), r#"Bearer error="invalid_token""#);
            assert_eq!(e.code(), "invalid_token");
        }
    }
}
