//! Verifying keys and key sets (feature `jwt`): HS256 secrets, PEM and DER public keys,
//! JWKs, and the files they come from.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::DecodingKey;
use serde_json::Value;

use super::der::{self, PublicKey};
use super::error::KeyError;

/// Shortest HS256 secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

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

    pub(super) fn from_header(alg: &str) -> Option<Self> {
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

    pub(super) fn jwt(self) -> jsonwebtoken::Algorithm {
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
    pub(super) algorithm: KeyAlgorithm,
    pub(super) kid: Option<Arc<str>>,
    pub(super) key: DecodingKey,
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
/// [`JwtKeys::new`](super::JwtKeys::new) or [`JwtKeys::replace`](super::JwtKeys::replace).
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    pub(super) keys: Vec<VerifyingKey>,
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
