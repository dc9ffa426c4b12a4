//! Token verification (feature `jwt`): which key checks a token, the claim rules, and the
//! identity a valid token grants.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use parking_lot::RwLock;
use serde_json::{Map, Value};

use super::error::{KeyError, TokenError};
use super::identity::Identity;
use super::keys::{KeyAlgorithm, KeySet, VerifyingKey};
use super::pattern::SessionPattern;

/// Default of [`JwtKeys::leeway`]: 5 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
struct Rules {
    audience: Vec<String>,
    issuer: Vec<String>,
    leeway: u64,
}

/// What checks tokens: the current [`KeySet`], swappable while the server runs (key rotation
/// on SIGHUP), and the claim rules (audience, issuer, leeway), fixed at build. Clones share
/// the same key set, so a [`replace`](Self::replace) on one is seen by all.
///
/// # Which key checks a token
///
/// The header's `alg` must name an algorithm tether accepts (`none` is always refused). If the
/// header has a `kid` that a key in the set carries, only the keys with that `kid` are tried,
/// and the token is invalid unless their algorithm is the header's. Otherwise every key
/// whose algorithm, derived from its key type, equals the header's `alg` is tried. So a token
/// can never make a key verify with another algorithm than its own: an HS256 token is never
/// checked against an RSA public key used as a secret.
///
/// # Claims
///
/// `exp` is required (with [`leeway`](Self::leeway)), `nbf` is checked when present. `aud` is
/// checked only when an [`audience`](Self::audience) is set, and is then required; otherwise
/// a token's `aud` is ignored (identity providers always send one). Likewise `iss` with
/// [`issuer`](Self::issuer). `tether.subscribe` and `tether.publish` are arrays of
/// [`SessionPattern`]s; one malformed pattern makes the token invalid.
///
/// ```
/// use std::time::Duration;
/// use tether_core::SessionId;
/// use tether_core::auth::{Capability, Claims, JwtKeys, mint_hs256};
///
/// let secret = b"0123456789abcdef0123456789abcdef";
/// let keys = JwtKeys::hs256(secret).unwrap().leeway(Duration::from_secs(5));
/// let token = mint_hs256(
///     secret,
///     &Claims::expiring_in(Duration::from_secs(60)).subject("alice").subscribe("alice:*"),
/// );
/// let alice = keys.verify(&token).unwrap();
/// assert!(alice.may(Capability::Subscribe, &SessionId::new("alice:chat").unwrap()));
/// assert!(!alice.may(Capability::Publish, &SessionId::new("alice:chat").unwrap()));
/// ```
#[derive(Clone)]
#[must_use]
pub struct JwtKeys {
    set: Arc<RwLock<Arc<KeySet>>>,
    rules: Arc<Rules>,
}

impl JwtKeys {
    /// Checks tokens against `set`, with a leeway of 5 seconds and no audience or issuer
    /// check.
    pub fn new(set: KeySet) -> Self {
        Self {
            set: Arc::new(RwLock::new(Arc::new(set))),
            rules: Arc::new(Rules {
                audience: Vec::new(),
                issuer: Vec::new(),
                leeway: DEFAULT_LEEWAY.as_secs(),
            }),
        }
    }

    /// Checks HS256 tokens signed with `secret` (at least 32 bytes).
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        Ok(Self::new(KeySet::new().with(VerifyingKey::hs256(secret)?)))
    }

    /// Accepts tokens whose `aud` is (or contains) `audience`; call again to accept several.
    /// Once one is set, tokens without `aud` are refused. Default is none: `aud` is ignored.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.rules)
            .audience
            .push(audience.into());
        self
    }

    /// Accepts tokens whose `iss` is `issuer`; call again to accept several. Once one is set,
    /// tokens without `iss` are refused. Default is none: `iss` is ignored.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.rules).issuer.push(issuer.into());
        self
    }

    /// How long after its `exp` (and before its `nbf`) a token is still accepted, for clocks
    /// that disagree; whole seconds. Default is 5 seconds.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        Arc::make_mut(&mut self.rules).leeway = leeway.as_secs();
        self
    }

    /// Swaps in a new key set for every clone of this handle at once: tokens checked from
    /// now on use `set` only. Tokens already accepted stay accepted.
    pub fn replace(&self, set: KeySet) {
        *self.set.write() = Arc::new(set);
    }

    /// The key set in use now.
    pub fn key_set(&self) -> Arc<KeySet> {
        Arc::clone(&self.set.read())
    }

    /// Verifies `token` (a compact JWT) and returns who it is and what it grants.
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let header = Header::parse(token)?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(TokenError::Invalid(
                "unsigned tokens (`alg: none`) are refused",
            ));
        }
        let Some(alg) = KeyAlgorithm::from_header(&header.alg) else {
            return Err(TokenError::Invalid(
                "its `alg` is not one tether accepts (HS256, RS256, ES256, ES384, EdDSA)",
            ));
        };
        let set = self.key_set();
        let named: Vec<&VerifyingKey> = match &header.kid {
            Some(kid) => set
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect(),
            None => Vec::new(),
        };
        let by_kid = !named.is_empty();
        let candidates: Vec<&VerifyingKey> = if by_kid {
            named.into_iter().filter(|k| k.algorithm == alg).collect()
        } else {
            set.keys.iter().filter(|k| k.algorithm == alg).collect()
        };
        if candidates.is_empty() {
            return Err(TokenError::Invalid(if by_kid {
                "its `alg` does not match the algorithm of the key its `kid` names"
            } else {
                "no key of its algorithm is configured"
            }));
        }
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &self.validation(alg))
            {
                Ok(data) => return identity(&data.claims),
                Err(e) => match e.into_kind() {
                    // The next key may be the one; a broken key is no reason to stop either.
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidAlgorithm
                    | ErrorKind::InvalidEcdsaKey
                    | ErrorKind::InvalidEddsaKey
                    | ErrorKind::InvalidRsaKey(_)
                    | ErrorKind::InvalidKeyFormat => continue,
                    kind => return Err(claim_error(kind)),
                },
            }
        }
        Err(TokenError::Invalid("its signature does not verify"))
    }

    fn validation(&self, alg: KeyAlgorithm) -> Validation {
        let rules = &self.rules;
        let mut v = Validation::new(alg.jwt());
        v.leeway = rules.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        if rules.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&rules.audience);
            required.push("aud");
        }
        if !rules.issuer.is_empty() {
            v.set_issuer(&rules.issuer);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("keys", &self.key_set().keys)
            .field("audience", &self.rules.audience)
            .field("issuer", &self.rules.issuer)
            .field("leeway_secs", &self.rules.leeway)
            .finish()
    }
}

/// The two header fields that pick the key.
struct Header {
    alg: String,
    kid: Option<String>,
}

impl Header {
    fn parse(token: &str) -> Result<Self, TokenError> {
        const NOT_A_JWT: TokenError =
            TokenError::Invalid("it is not a JWT (three base64url parts, a JSON header)");
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(NOT_A_JWT);
        };
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| NOT_A_JWT)?;
        let header: Map<String, Value> = serde_json::from_slice(&json).map_err(|_| NOT_A_JWT)?;
        let Some(alg) = header.get("alg").and_then(Value::as_str) else {
            return Err(TokenError::Invalid("its header has no `alg`"));
        };
        // RFC 7515: a header extension listed in `crit` must be understood, and none is.
        if header.contains_key("crit") {
            return Err(TokenError::Invalid(
                "its header lists `crit` extensions tether does not understand",
            ));
        }
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(TokenError::Invalid("its header's `kid` is not a string")),
        };
        Ok(Self {
            alg: alg.to_owned(),
            kid,
        })
    }
}

/// A claim check that failed after the signature verified.
fn claim_error(kind: ErrorKind) -> TokenError {
    TokenError::Invalid(match kind {
        ErrorKind::ExpiredSignature => return TokenError::Expired,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "it has no `exp` claim",
            "aud" => "it has no `aud` claim, and an audience is required",
            "iss" => "it has no `iss` claim, and an issuer is required",
            _ => "a required claim is missing",
        },
        ErrorKind::InvalidClaimFormat(_) => "its `exp` or `nbf` is not a number of seconds",
        ErrorKind::InvalidAudience => "it is meant for another audience (`aud`)",
        ErrorKind::InvalidIssuer => "it comes from another issuer (`iss`)",
        ErrorKind::ImmatureSignature => "it is not valid yet (`nbf`)",
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "it is not a JWT (three base64url parts, JSON header and claims)",
        _ => "it cannot be verified",
    })
}

/// The identity a verified token's claims describe.
fn identity(claims: &Map<String, Value>) -> Result<Identity, TokenError> {
    // `exp` was required and checked as a number by the validation.
    let exp = match claims.get("exp") {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f as u64))
            .ok_or(TokenError::Invalid("its `exp` is not a number of seconds"))?,
        _ => return Err(TokenError::Invalid("it has no `exp` claim")),
    };
    let sub = match claims.get("sub") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Arc::from(s.as_str())),
        Some(_) => return Err(TokenError::Invalid("its `sub` is not a string")),
    };
    const MALFORMED_GRANTS: TokenError = TokenError::Invalid(
        "its `tether` claim must be an object with `subscribe` and `publish` arrays of session patterns",
    );
    let (subscribe, publish) = match claims.get("tether") {
        None | Some(Value::Null) => (Vec::new(), Vec::new()),
        Some(Value::Object(grants)) => (
            patterns(grants.get("subscribe")).ok_or(MALFORMED_GRANTS)?,
            patterns(grants.get("publish")).ok_or(MALFORMED_GRANTS)?,
        ),
        Some(_) => return Err(MALFORMED_GRANTS),
    };
    Ok(Identity::new(sub, Some(exp), subscribe, publish))
}

fn patterns(list: Option<&Value>) -> Option<Vec<SessionPattern>> {
    match list {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().and_then(SessionPattern::parse))
            .collect(),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionId;
    use crate::auth::{Capability, Claims, mint_hs256};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> JwtKeys {
        JwtKeys::hs256(SECRET).unwrap()
    }

    fn hour() -> Claims {
        Claims::expiring_in(Duration::from_secs(3600))
    }

    fn sid(s: &str) -> SessionId {
        SessionId::new(s).unwrap()
    }

    #[test]
    fn secrets_shorter_than_32_bytes_are_refused() {
        assert!(matches!(
            VerifyingKey::hs256(b""),
            Err(KeyError::EmptySecret)
        ));
        assert!(matches!(
            VerifyingKey::hs256(&[b'x'; 31]),
            Err(KeyError::ShortSecret { len: 31 })
        ));
        assert!(VerifyingKey::hs256(&[b'x'; 32]).is_ok());
    }

    #[test]
    fn valid_hs256_token_grants_its_patterns() {
        let token = mint_hs256(
            SECRET,
            &hour()
                .subject("alice")
                .subscribe("alice:*")
                .publish("alice:out"),
        );
        let who = keys().verify(&token).unwrap();
        assert_eq!(who.subject(), Some("alice"));
        assert!(who.may(Capability::Subscribe, &sid("alice:chat")));
        assert!(who.may(Capability::Publish, &sid("alice:out")));
        assert!(!who.may(Capability::Publish, &sid("alice:chat")));
    }

    #[test]
    fn malformed_pattern_makes_the_token_invalid() {
        let token = mint_hs256(SECRET, &hour().subscribe("alice:*").subscribe("a*b"));
        assert!(matches!(keys().verify(&token), Err(TokenError::Invalid(_))));
        let token = mint_hs256(SECRET, &hour().publish(""));
        assert!(matches!(keys().verify(&token), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn tether_claim_of_the_wrong_shape_is_invalid() {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
        let exp = jsonwebtoken::get_current_timestamp() + 60;
        for tether in [
            serde_json::json!("alice:*"),
            serde_json::json!({"subscribe": "alice:*"}),
            serde_json::json!({"subscribe": [1]}),
        ] {
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &serde_json::json!({"exp": exp, "tether": tether}),
                &key,
            )
            .unwrap();
            assert!(
                matches!(keys().verify(&token), Err(TokenError::Invalid(_))),
                "{tether}"
            );
        }
    }

    #[test]
    fn token_without_tether_claim_grants_nothing() {
        let who = keys().verify(&mint_hs256(SECRET, &hour())).unwrap();
        assert!(!who.may(Capability::Subscribe, &sid("s")));
        assert!(!who.may(Capability::Publish, &sid("s")));
    }

    #[test]
    fn garbage_is_invalid_without_echoing_it() {
        for bad in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.x", "e30.e30.x"] {
            let e = keys().verify(bad).unwrap_err();
            assert!(matches!(e, TokenError::Invalid(_)), "{bad:?}");
        }
        let token = mint_hs256(b"another secret, 32 bytes or more!", &hour());
        let e = keys().verify(&token).unwrap_err();
        let shown = e.to_string();
        for part in token.split('.') {
            assert!(!shown.contains(part), "{shown}");
        }
    }

    #[test]
    fn header_with_crit_extensions_is_refused() {
        let token = mint_hs256(SECRET, &hour());
        let (_, rest) = token.split_once('.').unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#);
        assert!(matches!(
            keys().verify(&format!("{header}.{rest}")),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn jwk_with_a_point_of_the_wrong_size_is_malformed() {
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"});
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk),
            Err(KeyError::Malformed(_))
        ));
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"});
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let shown = format!("{:?}", keys());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}
