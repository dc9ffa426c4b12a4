//! Verifying keys, key sets that can be swapped while the server runs, and token
//! verification (feature `jwt`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use parking_lot::RwLock;
use serde_json::{Map, Value};

use super::der::{self, PublicKey};
use super::error::{KeyError, TokenError};
use super::identity::Identity;
use super::pattern::SessionPattern;

/// Shortest HS256 secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Default of [`JwtKeys::leeway`]: 5 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// The algorithm a key verifies. It follows from the key's type (a secret, or the type and
/// curve of a public key), never from a token's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// HMAC with SHA-256, from a shared secret.
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, from an RSA key.
    RS256,
    /// ECDSA with SHA-256, from a P-256 key.
    ES256,
    /// ECDSA with SHA-384, from a P-384 key.
    ES384,
    /// Ed25519 signatures, from an Ed25519 key.
    EdDSA,
}

impl KeyAlgorithm {
    /// The algorithm's name as in a JWT header's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    fn from_header(alg: &str) -> Option<Self> {
        [
            Self::HS256,
            Self::RS256,
            Self::ES256,
            Self::ES384,
            Self::EdDSA,
        ]
        .into_iter()
        .find(|a| a.as_str() == alg)
    }

    fn jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::HS256 => A::HS256,
            Self::RS256 => A::RS256,
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::EdDSA => A::EdDSA,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key tokens may be signed with: its algorithm, its `kid` if it has one, and the key.
/// `Debug` shows no key material.
#[derive(Clone)]
pub struct VerifyingKey {
    algorithm: KeyAlgorithm,
    kid: Option<Arc<str>>,
    key: DecodingKey,
}

impl VerifyingKey {
    /// An HS256 key from a shared secret of at least 32 bytes.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        match secret.len() {
            0 => Err(KeyError::EmptySecret),
            len if len < MIN_SECRET_LEN => Err(KeyError::ShortSecret { len }),
            _ => Ok(Self {
                algorithm: KeyAlgorithm::HS256,
                kid: None,
                key: DecodingKey::from_secret(secret),
            }),
        }
    }

    /// Every public key in a PEM document (`PUBLIC KEY` or `RSA PUBLIC KEY` blocks). The
    /// algorithm follows the key type: RSA (2048 bits or more) → RS256, P-256 → ES256,
    /// P-384 → ES384, Ed25519 → EdDSA. Private keys, certificates and other key types are
    /// refused.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Self>, KeyError> {
        let blocks = pem::parse_many(pem).map_err(|_| KeyError::Malformed("broken PEM"))?;
        if blocks.is_empty() {
            return Err(KeyError::NotAKey);
        }
        blocks
            .iter()
            .map(|block| match block.tag() {
                "PUBLIC KEY" => Self::from_spki_der(block.contents()),
                "RSA PUBLIC KEY" => Self::rsa_pkcs1(block.contents()),
                tag if tag.ends_with("PRIVATE KEY") => Err(KeyError::PrivateKey),
                "CERTIFICATE" => Err(KeyError::Unsupported(
                    "certificate (extract its key: `openssl x509 -in CERT -pubkey -noout`)",
                )),
                _ => Err(KeyError::NotAKey),
            })
            .collect()
    }

    /// A public key from a DER SubjectPublicKeyInfo, with the algorithm its type implies.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (algorithm, key) = match der::public_key(der)? {
            PublicKey::Rsa(pkcs1) => return Self::rsa_pkcs1(pkcs1),
            PublicKey::P256(point) => {
                check_point(point, 32)?;
                (KeyAlgorithm::ES256, DecodingKey::from_ec_der(point))
            }
            PublicKey::P384(point) => {
                check_point(point, 48)?;
                (KeyAlgorithm::ES384, DecodingKey::from_ec_der(point))
            }
            PublicKey::Ed25519(raw) => {
                if raw.len() != 32 {
                    return Err(KeyError::Malformed("an Ed25519 key has 32 bytes"));
                }
                (KeyAlgorithm::EdDSA, DecodingKey::from_ed_der(raw))
            }
        };
        Ok(Self {
            algorithm,
            kid: None,
            key,
        })
    }

    fn rsa_pkcs1(pkcs1: &[u8]) -> Result<Self, KeyError> {
        let bits = der::rsa_modulus_bits(pkcs1)?;
        if bits < 2048 {
            return Err(KeyError::WeakRsaKey { bits });
        }
        Ok(Self {
            algorithm: KeyAlgorithm::RS256,
            kid: None,
            key: DecodingKey::from_rsa_der(pkcs1),
        })
    }

    /// A public key from one JWK (a member of a JWKS `keys` array). The algorithm follows
    /// `kty` and `crv` as for PEM keys; a JWK whose `alg` names another algorithm, a
    /// symmetric (`oct`) key or an encryption key (`use: enc`) is refused.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("use").is_some_and(|u| u != "sig") {
            return Err(KeyError::Unsupported(
                "an encryption key (`use` is not `sig`)",
            ));
        }
        let algorithm = match (field("kty"), field("crv")) {
            (Some("RSA"), _) => KeyAlgorithm::RS256,
            (Some("EC"), Some("P-256")) => KeyAlgorithm::ES256,
            (Some("EC"), Some("P-384")) => KeyAlgorithm::ES384,
            (Some("OKP"), Some("Ed25519")) => KeyAlgorithm::EdDSA,
            (Some("oct"), _) => {
                return Err(KeyError::Unsupported(
                    "a symmetric key in a JWKS (give HS256 secrets with the secret option)",
                ));
            }
            (Some("EC" | "OKP"), _) => return Err(KeyError::Unsupported("curve")),
            _ => return Err(KeyError::Unsupported("kty")),
        };
        if field("alg").is_some_and(|a| a != algorithm.as_str()) {
            return Err(KeyError::Unsupported(
                "a JWK whose `alg` differs from the algorithm of its key type",
            ));
        }
        let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())
            .map_err(|_| KeyError::Malformed("a JWK's fields"))?;
        let key = DecodingKey::from_jwk(&parsed)
            .map_err(|_| KeyError::Malformed("a JWK's key parameters"))?;
        match (algorithm, key.kind()) {
            (KeyAlgorithm::RS256, jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, .. }) => {
                let bits = match n.iter().position(|&b| b != 0) {
                    Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
                    None => 0,
                };
                if bits < 2048 {
                    return Err(KeyError::WeakRsaKey { bits });
                }
            }
            (KeyAlgorithm::ES256, _) => check_point(key.as_bytes(), 32)?,
            (KeyAlgorithm::ES384, _) => check_point(key.as_bytes(), 48)?,
            (KeyAlgorithm::EdDSA, _) if key.as_bytes().len() != 32 => {
                return Err(KeyError::Malformed("an Ed25519 key has 32 bytes"));
            }
            _ => {}
        }
        Ok(Self {
            algorithm,
            kid: field("kid").map(Arc::from),
            key,
        })
    }

    /// The same key with a `kid`: tokens naming it in their header are checked with this
    /// key only.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<Arc<str>>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The key's id, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

fn check_point(point: &[u8], coordinate: usize) -> Result<(), KeyError> {
    let ok = match point.first() {
        Some(0x04) => point.len() == 1 + 2 * coordinate,
        Some(0x02 | 0x03) => point.len() == 1 + coordinate,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(KeyError::Malformed("an EC point of the wrong size"))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The keys tokens may be signed with. Build one from secrets and files, then hand it to
/// [`JwtKeys::new`] or [`JwtKeys::replace`].
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// An empty set: it accepts no token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key`.
    pub fn push(&mut self, key: VerifyingKey) {
        self.keys.push(key);
    }

    /// Adds `key`, builder style.
    #[must_use]
    pub fn with(mut self, key: VerifyingKey) -> Self {
        self.push(key);
        self
    }

    /// Adds an HS256 key from a secret of at least 32 bytes.
    pub fn add_hs256_secret(&mut self, secret: &[u8]) -> Result<(), KeyError> {
        self.push(VerifyingKey::hs256(secret)?);
        Ok(())
    }

    /// Adds an HS256 key from the content of a file; one trailing line break (`\n` or
    /// `\r\n`) is not part of the secret, as editors and `echo` add one.
    pub fn add_hs256_secret_file(&mut self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        let path = path.as_ref();
        let bytes = read(path)?;
        let secret = bytes
            .strip_suffix(b"\r\n")
            .or_else(|| bytes.strip_suffix(b"\n"))
            .unwrap_or(&bytes);
        self.add_hs256_secret(secret).map_err(|e| in_file(path, e))
    }

    /// Adds every public key of a PEM document; see [`VerifyingKey::from_pem`]. Returns how
    /// many keys were added.
    pub fn add_pem(&mut self, pem: &[u8]) -> Result<usize, KeyError> {
        let keys = VerifyingKey::from_pem(pem)?;
        let n = keys.len();
        self.keys.extend(keys);
        Ok(n)
    }

    /// Adds the signing keys of a JWKS document (`{"keys": [...]}`). Keys tether cannot verify
    /// with (encryption keys, symmetric keys, other key types, RSA keys under 2048 bits; see
    /// [`VerifyingKey::from_jwk`]) are skipped, as an identity provider's set may hold
    /// some; a key whose parameters are broken makes the whole document an error, and so
    /// does a document with no usable key. Returns how many keys were added.
    pub fn add_jwks(&mut self, json: &[u8]) -> Result<usize, KeyError> {
        let doc: Value = serde_json::from_slice(json).map_err(|_| KeyError::NotAKey)?;
        let Some(members) = doc.get("keys").and_then(Value::as_array) else {
            return Err(KeyError::NotAKey);
        };
        let before = self.keys.len();
        for member in members {
            match VerifyingKey::from_jwk(member) {
                Ok(key) => self.keys.push(key),
                // Malformed key parameters are a broken file, not a key of another kind.
                Err(e @ KeyError::Malformed(_)) => {
                    self.keys.truncate(before);
                    return Err(e);
                }
                Err(_) => {}
            }
        }
        match self.keys.len() - before {
            0 => Err(KeyError::NoUsableKey),
            n => Ok(n),
        }
    }

    /// Adds the keys of a public key file: a JWKS when its first non-blank character is
    /// `{`, PEM otherwise. Errors name the file. Returns how many keys were added.
    pub fn add_public_key_file(&mut self, path: impl AsRef<Path>) -> Result<usize, KeyError> {
        let path = path.as_ref();
        let bytes = read(path)?;
        let json = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        let added = if json {
            self.add_jwks(&bytes)
        } else {
            self.add_pem(&bytes)
        };
        added.map_err(|e| in_file(path, e))
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key (and so accepts no token).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })
}

fn in_file(path: &Path, e: KeyError) -> KeyError {
    KeyError::File {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

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
