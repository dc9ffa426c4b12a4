//! Access tokens end to end: keys from secrets, PEM and JWKS fixtures, the checks a token must
//! pass, rotation, and where a request carries its token.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header, get_current_timestamp};
use serde_json::{Value, json};
use tether_core::SessionId;
use tether_core::auth::{
    Authenticator, Capability, Claims, Identity, JwtKeys, KeyAlgorithm, KeyError, KeySet,
    TokenError, TokenSource, find_token, mint_hs256,
};

const SECRET: &[u8] = b"an HS256 secret of at least 32 bytes";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn sid(s: &str) -> SessionId {
    SessionId::new(s).unwrap()
}

fn in_an_hour() -> u64 {
    get_current_timestamp() + 3600
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"exp": in_an_hour(), "sub": "alice", "tether": {"subscribe": ["alice:*"]}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Signs `claims` with the private key fixture `key` (or a secret for HS256).
fn sign(alg: Algorithm, key: &str, kid: Option<&str>, claims: &Value) -> String {
    let encoding = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(key.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&read(key)).unwrap(),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&read(key)).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&read(key)).unwrap(),
        other => panic!("no fixture for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn secret_keys() -> JwtKeys {
    JwtKeys::hs256(SECRET).unwrap()
}

/// Keys from a fixture file, PEM or JWKS.
fn file_keys(file: &str) -> JwtKeys {
    let mut set = KeySet::new();
    set.add_public_key_file(fixture(file)).unwrap();
    JwtKeys::new(set)
}

fn jwks_keys() -> JwtKeys {
    file_keys("jwks.json")
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn invalid(result: Result<Identity, TokenError>) -> bool {
    matches!(result, Err(TokenError::Invalid(_)))
}

// --- HS256 and the claims every token must pass ---

#[test]
fn valid_hs256_token_is_accepted_with_its_grants() {
    let who = secret_keys().verify(&hs256(&claims(json!({})))).unwrap();
    assert_eq!(who.subject(), Some("alice"));
    assert!(who.may(Capability::Subscribe, &sid("alice:chat")));
    assert!(!who.may(Capability::Subscribe, &sid("bob:chat")));
    assert!(!who.may(Capability::Publish, &sid("alice:chat")));
}

#[test]
fn minted_token_is_accepted() {
    let token = mint_hs256(
        SECRET,
        &Claims::expiring_in(Duration::from_secs(60))
            .subject("alice")
            .subscribe("alice:*")
            .publish("alice:outbox"),
    );
    let who = secret_keys().verify(&token).unwrap();
    assert!(who.may(Capability::Publish, &sid("alice:outbox")));
    assert!(who.expires_at().is_some());
}

#[test]
fn token_signed_with_another_secret_is_refused() {
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(b"another secret, also 32 bytes long"),
    )
    .unwrap();
    assert_eq!(
        secret_keys().verify(&token),
        Err(TokenError::Invalid("its signature does not verify"))
    );
}

#[test]
fn tampered_claims_are_refused() {
    let token = hs256(&claims(json!({})));
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged =
        b64(&serde_json::to_vec(&claims(json!({"tether": {"subscribe": ["*"]}}))).unwrap());
    parts[1] = &forged;
    assert!(invalid(secret_keys().verify(&parts.join("."))));
}

#[test]
fn expired_token_is_refused_as_expired() {
    let token = hs256(&claims(json!({"exp": get_current_timestamp() - 60})));
    assert_eq!(secret_keys().verify(&token), Err(TokenError::Expired));
}

#[test]
fn token_expired_within_the_leeway_is_accepted() {
    let token = hs256(&claims(json!({"exp": get_current_timestamp() - 2})));
    assert!(
        secret_keys().verify(&token).is_ok(),
        "default leeway is 5 s"
    );
    let strict = secret_keys().leeway(Duration::ZERO);
    assert_eq!(strict.verify(&token), Err(TokenError::Expired));
    let token = hs256(&claims(json!({"exp": get_current_timestamp() - 50})));
    let lenient = secret_keys().leeway(Duration::from_secs(120));
    assert!(lenient.verify(&token).is_ok());
}

#[test]
fn token_without_exp_is_refused() {
    let mut c = claims(json!({}));
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        secret_keys().verify(&hs256(&c)),
        Err(TokenError::Invalid("it has no `exp` claim"))
    );
}

#[test]
fn token_with_a_non_numeric_exp_is_refused() {
    let token = hs256(&claims(json!({"exp": "tomorrow"})));
    assert!(invalid(secret_keys().verify(&token)));
}

#[test]
fn token_not_valid_before_a_future_nbf_is_refused() {
    let token = hs256(&claims(json!({"nbf": get_current_timestamp() + 600})));
    assert!(invalid(secret_keys().verify(&token)));
}

#[test]
fn unsigned_alg_none_token_is_refused() {
    let body = b64(&serde_json::to_vec(&claims(json!({}))).unwrap());
    for alg in ["none", "None", "NONE"] {
        let header = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        for token in [format!("{header}.{body}."), format!("{header}.{body}.c2ln")] {
            for keys in [secret_keys(), file_keys("rsa.pub.pem"), jwks_keys()] {
                assert_eq!(
                    keys.verify(&token),
                    Err(TokenError::Invalid(
                        "unsigned tokens (`alg: none`) are refused"
                    ))
                );
            }
        }
    }
}

#[test]
fn hs256_token_signed_with_the_rsa_public_key_as_secret_is_refused() {
    // The classic algorithm confusion: a verifier that took `alg` from the header would check
    // this HMAC with the public key's bytes, which everyone has.
    let public_pem = read("rsa.pub.pem");
    let forge = |kid: Option<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            &claims(json!({"tether": {"subscribe": ["*"], "publish": ["*"]}})),
            &EncodingKey::from_secret(&public_pem),
        )
        .unwrap()
    };
    assert!(invalid(file_keys("rsa.pub.pem").verify(&forge(None))));
    assert!(invalid(jwks_keys().verify(&forge(None))));
    assert_eq!(
        jwks_keys().verify(&forge(Some("rsa-a"))),
        Err(TokenError::Invalid(
            "its `alg` does not match the algorithm of the key its `kid` names"
        ))
    );
}

#[test]
fn token_whose_alg_is_not_its_keys_is_refused() {
    // A genuine RS256 token against a P-256 key, and an ES256 token against an RSA key.
    let rs = sign(Algorithm::RS256, "rsa.key.pem", None, &claims(json!({})));
    assert!(invalid(file_keys("p256.pub.pem").verify(&rs)));
    let es = sign(Algorithm::ES256, "p256.key.pem", None, &claims(json!({})));
    assert!(invalid(file_keys("rsa.pub.pem").verify(&es)));
    // A P-256 key verifies ES256 only, even when the header claims ES384.
    let es384 = sign(Algorithm::ES384, "p384.key.pem", None, &claims(json!({})));
    assert!(invalid(file_keys("p256.pub.pem").verify(&es384)));
}

#[test]
fn header_alg_outside_the_accepted_list_is_refused() {
    let token = sign(Algorithm::HS256, "x", None, &claims(json!({})));
    let (_, rest) = token.split_once('.').unwrap();
    for alg in ["HS512", "PS256", "RS512", "hs256"] {
        let header = b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
        assert!(
            invalid(secret_keys().verify(&format!("{header}.{rest}"))),
            "{alg}"
        );
    }
}

// --- public keys from PEM fixtures ---

#[test]
fn rs256_token_verifies_with_an_rsa_pem() {
    let keys = file_keys("rsa.pub.pem");
    assert_eq!(keys.key_set().keys()[0].algorithm(), KeyAlgorithm::RS256);
    let token = sign(Algorithm::RS256, "rsa.key.pem", None, &claims(json!({})));
    assert!(keys.verify(&token).is_ok());
    let other = sign(Algorithm::RS256, "rsa2.key.pem", None, &claims(json!({})));
    assert!(invalid(keys.verify(&other)));
}

#[test]
fn es256_token_verifies_with_a_p256_pem() {
    let keys = file_keys("p256.pub.pem");
    assert_eq!(keys.key_set().keys()[0].algorithm(), KeyAlgorithm::ES256);
    let token = sign(Algorithm::ES256, "p256.key.pem", None, &claims(json!({})));
    assert!(keys.verify(&token).is_ok());
}

#[test]
fn es384_token_verifies_with_a_p384_pem() {
    let keys = file_keys("p384.pub.pem");
    assert_eq!(keys.key_set().keys()[0].algorithm(), KeyAlgorithm::ES384);
    let token = sign(Algorithm::ES384, "p384.key.pem", None, &claims(json!({})));
    assert!(keys.verify(&token).is_ok());
}

#[test]
fn eddsa_token_verifies_with_an_ed25519_pem() {
    let keys = file_keys("ed25519.pub.pem");
    assert_eq!(keys.key_set().keys()[0].algorithm(), KeyAlgorithm::EdDSA);
    let token = sign(
        Algorithm::EdDSA,
        "ed25519.key.pem",
        None,
        &claims(json!({})),
    );
    assert!(keys.verify(&token).is_ok());
}

#[test]
fn several_pem_keys_and_a_secret_work_side_by_side() {
    let mut set = KeySet::new();
    set.add_hs256_secret(SECRET).unwrap();
    for file in ["rsa.pub.pem", "p256.pub.pem", "ed25519.pub.pem"] {
        set.add_public_key_file(fixture(file)).unwrap();
    }
    let keys = JwtKeys::new(set);
    for token in [
        hs256(&claims(json!({}))),
        sign(Algorithm::RS256, "rsa.key.pem", None, &claims(json!({}))),
        sign(Algorithm::ES256, "p256.key.pem", None, &claims(json!({}))),
        sign(
            Algorithm::EdDSA,
            "ed25519.key.pem",
            None,
            &claims(json!({})),
        ),
    ] {
        assert!(keys.verify(&token).is_ok());
    }
}

#[test]
fn pem_file_with_two_keys_loads_both() {
    let mut both = read("rsa.pub.pem");
    both.extend(read("p256.pub.pem"));
    let mut set = KeySet::new();
    assert_eq!(set.add_pem(&both).unwrap(), 2);
}

#[test]
fn unsupported_and_unsafe_key_files_are_refused() {
    let load = |file: &str| {
        KeySet::new()
            .add_public_key_file(fixture(file))
            .unwrap_err()
    };
    let source = |e: KeyError| match e {
        KeyError::File { source, .. } => *source,
        other => panic!("not named after its file: {other}"),
    };
    assert!(matches!(
        source(load("ed448.pub.pem")),
        KeyError::Unsupported(_)
    ));
    assert!(matches!(
        source(load("rsa1024.pub.pem")),
        KeyError::WeakRsaKey { bits: 1024 }
    ));
    assert!(matches!(source(load("rsa.key.pem")), KeyError::PrivateKey));
    assert!(matches!(source(load("README.md")), KeyError::NotAKey));
    assert!(matches!(load("no-such-file.pem"), KeyError::Io { .. }));
    let shown = load("ed448.pub.pem").to_string();
    assert!(
        shown.contains("ed448.pub.pem") && shown.contains("Ed448"),
        "{shown}"
    );
}

// --- JWKS ---

#[test]
fn jwks_picks_the_key_by_kid() {
    let keys = jwks_keys();
    assert_eq!(keys.key_set().len(), 3);
    let b = sign(
        Algorithm::RS256,
        "rsa2.key.pem",
        Some("rsa-b"),
        &claims(json!({})),
    );
    assert!(keys.verify(&b).is_ok());
    let a = sign(
        Algorithm::RS256,
        "rsa.key.pem",
        Some("rsa-a"),
        &claims(json!({})),
    );
    assert!(keys.verify(&a).is_ok());
    let ec = sign(
        Algorithm::ES256,
        "p256.key.pem",
        Some("ec-a"),
        &claims(json!({})),
    );
    assert!(keys.verify(&ec).is_ok());
    // Signed by key a but naming key b: only key b is tried.
    let wrong = sign(
        Algorithm::RS256,
        "rsa.key.pem",
        Some("rsa-b"),
        &claims(json!({})),
    );
    assert!(invalid(keys.verify(&wrong)));
}

#[test]
fn jwks_token_without_kid_is_tried_against_keys_of_its_alg() {
    let keys = jwks_keys();
    let no_kid = sign(Algorithm::RS256, "rsa2.key.pem", None, &claims(json!({})));
    assert!(keys.verify(&no_kid).is_ok());
    // An unknown kid falls back the same way: the signature still decides.
    let unknown = sign(
        Algorithm::RS256,
        "rsa2.key.pem",
        Some("gone"),
        &claims(json!({})),
    );
    assert!(keys.verify(&unknown).is_ok());
    let stranger = sign(
        Algorithm::EdDSA,
        "ed25519.key.pem",
        None,
        &claims(json!({})),
    );
    assert_eq!(
        keys.verify(&stranger),
        Err(TokenError::Invalid("no key of its algorithm is configured"))
    );
}

#[test]
fn jwks_skips_keys_tether_cannot_use() {
    let doc: Value = serde_json::from_slice(&read("jwks.json")).unwrap();
    let rsa = doc["keys"][0].clone();
    let mut enc = rsa.clone();
    enc["use"] = json!("enc");
    enc["alg"] = json!("RSA-OAEP");
    enc["kid"] = json!("enc-1");
    let mut pss = rsa.clone();
    pss["alg"] = json!("PS256");
    let mixed = json!({"keys": [
        enc,
        pss,
        {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
        {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": "AA"},
        rsa,
    ]});
    let mut set = KeySet::new();
    assert_eq!(set.add_jwks(mixed.to_string().as_bytes()).unwrap(), 1);
    assert_eq!(set.keys()[0].kid(), Some("rsa-a"));

    let useless = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
    assert!(matches!(
        KeySet::new().add_jwks(useless.to_string().as_bytes()),
        Err(KeyError::NoUsableKey)
    ));
    assert!(matches!(
        KeySet::new().add_jwks(br#"{"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}"#),
        Err(KeyError::Malformed(_))
    ));
    assert!(matches!(
        KeySet::new().add_jwks(br#"{"no": "keys"}"#),
        Err(KeyError::NotAKey)
    ));
}

// --- rotation ---

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, content: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("tether-jwt-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn reload_swaps_keys_for_every_clone() {
    let file = TempFile::new("rotate.pem", &read("rsa.pub.pem"));
    let load = |path: &PathBuf| {
        let mut set = KeySet::new();
        set.add_public_key_file(path).unwrap();
        set
    };
    let keys = JwtKeys::new(load(&file.0));
    let in_use = keys.clone();
    let old = sign(Algorithm::RS256, "rsa.key.pem", None, &claims(json!({})));
    let new = sign(Algorithm::RS256, "rsa2.key.pem", None, &claims(json!({})));
    assert!(in_use.verify(&old).is_ok());
    assert!(invalid(in_use.verify(&new)));

    std::fs::write(&file.0, read("rsa2.pub.pem")).unwrap();
    keys.replace(load(&file.0));

    assert!(invalid(in_use.verify(&old)), "the old key is gone");
    assert!(in_use.verify(&new).is_ok(), "the new key is in use");
}

#[test]
fn secret_file_rotation_and_trailing_newline() {
    let file = TempFile::new("secret", b"first secret of at least 32 bytes!\n");
    let mut set = KeySet::new();
    set.add_hs256_secret_file(&file.0).unwrap();
    let keys = JwtKeys::new(set);
    let sign_with = |secret: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(json!({})),
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let first = sign_with(b"first secret of at least 32 bytes!");
    assert!(
        keys.verify(&first).is_ok(),
        "the newline is not part of the secret"
    );

    std::fs::write(&file.0, b"second secret of at least 32 bytes\r\n").unwrap();
    let mut set = KeySet::new();
    set.add_hs256_secret_file(&file.0).unwrap();
    keys.replace(set);
    assert!(invalid(keys.verify(&first)));
    assert!(
        keys.verify(&sign_with(b"second secret of at least 32 bytes"))
            .is_ok()
    );

    std::fs::write(&file.0, b"short\n").unwrap();
    let err = KeySet::new().add_hs256_secret_file(&file.0).unwrap_err();
    assert!(matches!(
        err,
        KeyError::File { ref source, .. } if matches!(**source, KeyError::ShortSecret { len: 5 })
    ));
    assert!(!err.to_string().contains("short"), "{err}");
}

// --- patterns ---

fn granting(subscribe: Value) -> Result<Identity, TokenError> {
    secret_keys().verify(&hs256(&claims(json!({"tether": {"subscribe": subscribe}}))))
}

#[test]
fn exact_pattern_grants_that_session_only() {
    let who = granting(json!(["alice:chat"])).unwrap();
    assert!(who.may(Capability::Subscribe, &sid("alice:chat")));
    assert!(!who.may(Capability::Subscribe, &sid("alice:chat2")));
    assert!(!who.may(Capability::Subscribe, &sid("alice:")));
}

#[test]
fn prefix_pattern_grants_sessions_starting_with_it() {
    let who = granting(json!(["alice:*"])).unwrap();
    assert!(who.may(Capability::Subscribe, &sid("alice:chat")));
    assert!(who.may(Capability::Subscribe, &sid("alice:x:y")));
    assert!(!who.may(Capability::Subscribe, &sid("alice")));
    assert!(!who.may(Capability::Subscribe, &sid("alicea:chat")));
}

#[test]
fn pattern_without_star_is_not_a_prefix() {
    let who = granting(json!(["alice"])).unwrap();
    assert!(who.may(Capability::Subscribe, &sid("alice")));
    assert!(!who.may(Capability::Subscribe, &sid("alice:chat")));
    assert!(!who.may(Capability::Subscribe, &sid("alicexyz")));
}

#[test]
fn star_pattern_grants_every_session() {
    let who = granting(json!(["*"])).unwrap();
    assert!(who.may(Capability::Subscribe, &sid("anything")));
    assert!(!who.may(Capability::Publish, &sid("anything")));
}

#[test]
fn malformed_pattern_makes_the_whole_token_invalid() {
    for bad in [
        json!(["alice:*", "a*b"]),
        json!(["*alice"]),
        json!([""]),
        json!(["alice chat"]),
        json!([format!("{}x", "a".repeat(128))]),
        json!("alice:*"),
        json!([42]),
    ] {
        assert!(invalid(granting(bad.clone())), "{bad}");
    }
    let token = hs256(&claims(
        json!({"tether": {"subscribe": [], "publish": ["a**"]}}),
    ));
    assert!(invalid(secret_keys().verify(&token)));
}

// --- audience and issuer ---

#[test]
fn audience_is_checked_when_set() {
    let keys = secret_keys().audience("tether");
    assert!(
        keys.verify(&hs256(&claims(json!({"aud": "tether"}))))
            .is_ok()
    );
    assert!(
        keys.verify(&hs256(&claims(json!({"aud": ["other", "tether"]}))))
            .is_ok()
    );
    assert_eq!(
        keys.verify(&hs256(&claims(json!({"aud": "other"})))),
        Err(TokenError::Invalid(
            "it is meant for another audience (`aud`)"
        ))
    );
    assert_eq!(
        keys.verify(&hs256(&claims(json!({})))),
        Err(TokenError::Invalid(
            "it has no `aud` claim, and an audience is required"
        ))
    );
    let two = secret_keys().audience("a").audience("b");
    assert!(two.verify(&hs256(&claims(json!({"aud": "b"})))).is_ok());
}

#[test]
fn audience_is_ignored_when_not_set() {
    let keys = secret_keys();
    assert!(
        keys.verify(&hs256(&claims(json!({"aud": "some-idp-client"}))))
            .is_ok()
    );
    assert!(
        keys.verify(&hs256(&claims(json!({"aud": ["x", "y"]}))))
            .is_ok()
    );
}

#[test]
fn issuer_is_checked_when_set() {
    let keys = secret_keys().issuer("https://idp.example");
    assert!(
        keys.verify(&hs256(&claims(json!({"iss": "https://idp.example"}))))
            .is_ok()
    );
    assert_eq!(
        keys.verify(&hs256(&claims(json!({"iss": "https://evil.example"})))),
        Err(TokenError::Invalid("it comes from another issuer (`iss`)"))
    );
    assert!(invalid(keys.verify(&hs256(&claims(json!({}))))));
}

#[test]
fn issuer_is_ignored_when_not_set() {
    assert!(
        secret_keys()
            .verify(&hs256(&claims(json!({"iss": "anyone"}))))
            .is_ok()
    );
}

// --- where the token comes from ---

fn request(bearer: Option<&str>, cookie: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(b) = bearer {
        h.insert("authorization", format!("Bearer {b}").parse().unwrap());
    }
    if let Some(c) = cookie {
        h.insert(
            "cookie",
            format!("lang=en; tether_token={c}").parse().unwrap(),
        );
    }
    h
}

#[test]
fn token_is_taken_from_header_then_query_then_cookie() {
    let auth = Authenticator::new().jwt(secret_keys());
    let good = hs256(&claims(json!({})));
    let bad = hs256(&claims(json!({"exp": get_current_timestamp() - 600})));
    let query = |t: &str| format!("lastEventId=x&token={t}");

    // Each source on its own.
    let h = request(Some(&good), None);
    assert_eq!(find_token(&h, "").unwrap().source(), TokenSource::Bearer);
    assert!(auth.authenticate(&h, "").is_ok());
    assert!(auth.authenticate(&HeaderMap::new(), &query(&good)).is_ok());
    assert!(auth.authenticate(&request(None, Some(&good)), "").is_ok());

    // The first source found decides, even when a later one would pass.
    assert_eq!(
        auth.authenticate(&request(Some(&bad), Some(&good)), &query(&good)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        auth.authenticate(&request(None, Some(&good)), &query(&bad)),
        Err(TokenError::Expired)
    );
    assert!(
        auth.authenticate(&request(Some(&good), Some(&bad)), &query(&bad))
            .is_ok()
    );
    assert!(
        auth.authenticate(&request(None, Some(&bad)), &query(&good))
            .is_ok()
    );
    assert_eq!(
        auth.authenticate(&HeaderMap::new(), "token="),
        Err(TokenError::Missing)
    );
}

#[test]
fn percent_encoded_query_token_is_decoded() {
    let auth = Authenticator::new().jwt(secret_keys());
    let token = hs256(&claims(json!({})));
    let encoded = token.replace('.', "%2E");
    assert!(
        auth.authenticate(&HeaderMap::new(), &format!("token={encoded}"))
            .is_ok()
    );
}

#[test]
fn static_publish_token_is_compared_before_decoding() {
    let auth = Authenticator::new()
        .publish_token("backend-publish-token")
        .jwt(secret_keys());
    let who = auth
        .authenticate(&request(Some("backend-publish-token"), None), "")
        .unwrap();
    assert!(who.is_static_publisher());
    assert!(who.may(Capability::Publish, &sid("anyone:chat")));
    assert!(!who.may(Capability::Subscribe, &sid("anyone:chat")));

    // A JWT in the same header is still decoded.
    let jwt = auth.authenticate(&request(Some(&hs256(&claims(json!({})))), None), "");
    assert!(!jwt.unwrap().is_static_publisher());

    // Outside the Authorization header the publish token is just an invalid JWT.
    assert!(invalid(
        auth.authenticate(&HeaderMap::new(), "token=backend-publish-token")
    ));
    assert!(invalid(auth.authenticate(
        &request(None, Some("backend-publish-token")),
        ""
    )));
}

#[test]
fn a_jwt_equal_to_the_publish_token_is_the_static_publisher() {
    // When the publish token happens to be a JWT too, the constant-time comparison comes
    // first: the holder publishes everywhere rather than with the token's grants.
    let jwt = hs256(&claims(json!({})));
    let auth = Authenticator::new()
        .publish_token(jwt.as_str())
        .jwt(secret_keys());
    assert!(
        auth.authenticate(&request(Some(&jwt), None), "")
            .unwrap()
            .is_static_publisher()
    );
}

#[test]
fn error_messages_never_contain_the_token() {
    let auth = Authenticator::new().publish_token("p").jwt(jwks_keys());
    let tokens = [
        hs256(&claims(json!({}))),
        hs256(&claims(json!({"exp": 1}))),
        sign(
            Algorithm::RS256,
            "rsa.key.pem",
            Some("rsa-b"),
            &claims(json!({})),
        ),
        "not-a-jwt-at-all".to_owned(),
    ];
    for token in tokens {
        let err = auth
            .authenticate(&request(Some(&token), None), "")
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        for part in token.split('.').filter(|p| p.len() > 3) {
            assert!(!shown.contains(part), "{shown}");
        }
    }
}

/// Routes that learn their session from the body (the AG-UI run route) check the head with
/// `Hooks::authenticate`: no token is 401, a bad token 401 `invalid_token`, and a valid
/// token passes whatever its claims, which `check` decides once the session is known.
#[test]
fn authenticate_judges_the_token_without_a_session() {
    use tether_core::http::{Access, AccessRequest, Hooks};
    let hooks = Hooks::jwt(secret_keys());
    assert!(matches!(
        hooks.authenticate(&HeaderMap::new(), ""),
        Access::Unauthorized { .. }
    ));
    let forged = mint_hs256(
        b"another secret that is at least 32 bytes",
        &Claims::expiring_in(Duration::from_secs(60)),
    );
    assert!(matches!(
        hooks.authenticate(&request(Some(&forged), None), ""),
        Access::InvalidToken { .. }
    ));
    let bob = hs256(&claims(json!({"tether": {"subscribe": ["bob:*"]}})));
    assert!(matches!(
        hooks.authenticate(&request(Some(&bob), None), ""),
        Access::Allow
    ));
    let refused = hooks.check(&AccessRequest {
        session: &sid("alice:chat"),
        capability: Capability::Subscribe,
        headers: &request(Some(&bob), None),
        query: "",
    });
    assert!(matches!(refused, Access::Forbidden { .. }));
}
