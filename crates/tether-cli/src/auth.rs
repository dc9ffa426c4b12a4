//! Flags for signed access tokens (JWT) and the SIGHUP reload of their key files.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tether_core::auth::{JwtKeys, KeySet};

/// Flags that make `tether serve` accept signed access tokens; each has an environment
/// variable. Tokens are verified with every key given; the algorithm follows each key's type.
#[derive(Args)]
pub(crate) struct AuthArgs {
    /// HS256 secret tokens are signed with, at least 32 bytes. Prefer the environment
    /// variable or `--jwt-secret-file`: a command line is visible to every local user.
    #[arg(
        long,
        env = "TETHER_JWT_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        conflicts_with = "jwt_secret_file"
    )]
    pub(crate) jwt_secret: Option<String>,
    /// File holding the HS256 secret (one trailing line break is ignored); re-read on SIGHUP.
    #[arg(long, env = "TETHER_JWT_SECRET_FILE", value_name = "FILE")]
    pub(crate) jwt_secret_file: Option<PathBuf>,
    /// Public key file tokens may be signed with: PEM (RSA → RS256, P-256 → ES256,
    /// P-384 → ES384, Ed25519 → EdDSA) or a JWKS JSON file whose keys carry a `kid`. Repeat
    /// it, or comma-separate in the environment variable; re-read on SIGHUP.
    #[arg(
        long = "jwt-public-key",
        env = "TETHER_JWT_PUBLIC_KEY",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub(crate) jwt_public_keys: Vec<PathBuf>,
    /// Audience tokens must name in `aud` (repeat it for several). Without it, a token's
    /// `aud` is ignored.
    #[arg(
        long = "jwt-audience",
        env = "TETHER_JWT_AUDIENCE",
        value_delimiter = ',',
        value_name = "AUD"
    )]
    pub(crate) jwt_audiences: Vec<String>,
    /// Issuer tokens must name in `iss` (repeat it for several). Without it, a token's `iss`
    /// is ignored.
    #[arg(
        long = "jwt-issuer",
        env = "TETHER_JWT_ISSUER",
        value_delimiter = ',',
        value_name = "ISS"
    )]
    pub(crate) jwt_issuers: Vec<String>,
    /// Seconds a token is still accepted after its `exp`, for clocks that disagree.
    #[arg(
        long,
        env = "TETHER_JWT_LEEWAY_SECS",
        default_value_t = 5,
        value_name = "SECS"
    )]
    pub(crate) jwt_leeway_secs: u64,
}

impl fmt::Debug for AuthArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthArgs")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| ".."))
            .field("jwt_secret_file", &self.jwt_secret_file)
            .field("jwt_public_keys", &self.jwt_public_keys)
            .field("jwt_audiences", &self.jwt_audiences)
            .field("jwt_issuers", &self.jwt_issuers)
            .field("jwt_leeway_secs", &self.jwt_leeway_secs)
            .finish()
    }
}

impl AuthArgs {
    /// Where the keys come from, for [`reload_on_sighup`].
    pub(crate) fn sources(&self) -> KeySources {
        KeySources {
            secret: self.jwt_secret.clone(),
            secret_file: self.jwt_secret_file.clone(),
            public_keys: self.jwt_public_keys.clone(),
        }
    }

    /// The token verifier the flags describe; `None` when no key flag is set. Every file is
    /// read now, so a broken one stops the start with an error naming its flag.
    pub(crate) fn jwt_keys(&self) -> Result<Option<JwtKeys>, String> {
        let sources = self.sources();
        if !sources.any() {
            if !self.jwt_audiences.is_empty() || !self.jwt_issuers.is_empty() {
                return Err("--jwt-audience and --jwt-issuer check tokens: give the keys too (--jwt-secret, --jwt-secret-file or --jwt-public-key)".into());
            }
            return Ok(None);
        }
        let mut keys =
            JwtKeys::new(sources.load()?).leeway(Duration::from_secs(self.jwt_leeway_secs));
        for aud in &self.jwt_audiences {
            keys = keys.audience(aud.as_str());
        }
        for iss in &self.jwt_issuers {
            keys = keys.issuer(iss.as_str());
        }
        Ok(Some(keys))
    }
}

/// The secret and the key files the flags name. Loading them again after SIGHUP rotates keys.
#[derive(Clone)]
pub(crate) struct KeySources {
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    public_keys: Vec<PathBuf>,
}

impl fmt::Debug for KeySources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySources")
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .field("secret_file", &self.secret_file)
            .field("public_keys", &self.public_keys)
            .finish()
    }
}

impl KeySources {
    /// Whether any key is named.
    pub(crate) fn any(&self) -> bool {
        self.secret.is_some() || self.secret_file.is_some() || !self.public_keys.is_empty()
    }

    /// Whether any key comes from a file, so that SIGHUP has something to re-read.
    pub(crate) fn has_files(&self) -> bool {
        self.secret_file.is_some() || !self.public_keys.is_empty()
    }

    /// Reads every key; errors name the flag (and the file) and never contain key material.
    pub(crate) fn load(&self) -> Result<KeySet, String> {
        let mut set = KeySet::new();
        if let Some(secret) = &self.secret {
            set.add_hs256_secret(secret.as_bytes())
                .map_err(|e| format!("--jwt-secret (TETHER_JWT_SECRET): {e}"))?;
        }
        if let Some(path) = &self.secret_file {
            set.add_hs256_secret_file(path)
                .map_err(|e| format!("--jwt-secret-file: {e}"))?;
        }
        for path in &self.public_keys {
            set.add_public_key_file(path)
                .map_err(|e| format!("--jwt-public-key: {e}"))?;
        }
        Ok(set)
    }
}

/// Loads the keys again and swaps them in; on error the keys in use stay. Returns how many
/// keys are in use now.
pub(crate) fn reload(sources: &KeySources, keys: &JwtKeys) -> Result<usize, String> {
    let set = sources.load()?;
    let n = set.len();
    keys.replace(set);
    Ok(n)
}

/// Listens for SIGHUP and reloads the keys on each, logging success or failure (never a key).
/// Registers the handler before returning, so a SIGHUP sent after this call is not missed
/// (and no longer ends the process); spawn the returned future on the runtime.
#[cfg(unix)]
pub(crate) fn reload_on_sighup(
    sources: KeySources,
    keys: JwtKeys,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangup.recv().await.is_some() {
            match reload(&sources, &keys) {
                Ok(n) => tracing::info!(keys = n, "SIGHUP: JWT keys reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: JWT key reload failed; the keys in use stay")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use tether_core::auth::{Claims, TokenError, mint_hs256};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        auth: AuthArgs,
    }

    const SECRET: &str = "a test secret of at least 32 bytes";

    fn parse(args: &[&str]) -> Result<AuthArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("tether").chain(args.iter().copied())).map(|c| c.auth)
    }

    fn fixture(name: &str) -> String {
        format!(
            "{}/../tether-core/tests/fixtures/jwt/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    fn keys_error(args: &[&str]) -> String {
        parse(args).unwrap().jwt_keys().unwrap_err()
    }

    fn token(ttl: u64) -> String {
        mint_hs256(
            SECRET.as_bytes(),
            &Claims::expiring_in(Duration::from_secs(ttl)).subscribe("*"),
        )
    }

    #[test]
    fn jwt_flags_parse() {
        let a = parse(&[
            "--jwt-secret-file",
            "/run/secret",
            "--jwt-public-key",
            "a.pem",
            "--jwt-public-key",
            "jwks.json",
            "--jwt-audience",
            "tether",
            "--jwt-issuer",
            "https://idp",
            "--jwt-leeway-secs",
            "30",
        ])
        .unwrap();
        assert_eq!(a.jwt_secret_file, Some(PathBuf::from("/run/secret")));
        assert_eq!(
            a.jwt_public_keys,
            vec![PathBuf::from("a.pem"), PathBuf::from("jwks.json")]
        );
        assert_eq!(a.jwt_audiences, vec!["tether"]);
        assert_eq!(a.jwt_issuers, vec!["https://idp"]);
        assert_eq!(a.jwt_leeway_secs, 30);
    }

    #[test]
    fn no_jwt_flags_means_no_keys_and_leeway_5() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.jwt_leeway_secs, 5);
        assert!(a.jwt_keys().unwrap().is_none());
    }

    #[test]
    fn secret_and_secret_file_conflict() {
        assert!(parse(&["--jwt-secret", SECRET, "--jwt-secret-file", "f"]).is_err());
    }

    #[test]
    fn empty_secret_is_refused_naming_the_flag() {
        let e = keys_error(&["--jwt-secret", ""]);
        assert!(e.starts_with("--jwt-secret"), "{e}");
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let e = keys_error(&["--jwt-secret", "hunter2-is-short"]);
        assert!(e.starts_with("--jwt-secret"), "{e}");
        assert!(e.contains("at least 32"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn unreadable_files_are_refused_naming_flag_and_file() {
        let e = keys_error(&["--jwt-public-key", "/nonexistent/key.pem"]);
        assert!(e.starts_with("--jwt-public-key"), "{e}");
        assert!(e.contains("/nonexistent/key.pem"), "{e}");
        let e = keys_error(&["--jwt-secret-file", "/nonexistent/secret"]);
        assert!(e.starts_with("--jwt-secret-file"), "{e}");
        assert!(e.contains("cannot read /nonexistent/secret"), "{e}");
    }

    #[test]
    fn unsupported_key_type_is_refused_naming_the_flag() {
        let e = keys_error(&["--jwt-public-key", &fixture("ed448.pub.pem")]);
        assert!(e.starts_with("--jwt-public-key"), "{e}");
        assert!(
            e.contains("ed448.pub.pem") && e.contains("unsupported key type Ed448"),
            "{e}"
        );
        let e = keys_error(&["--jwt-public-key", &fixture("rsa.key.pem")]);
        assert!(e.contains("private key"), "{e}");
    }

    #[test]
    fn audience_without_keys_is_refused() {
        let e = keys_error(&["--jwt-audience", "tether"]);
        assert!(e.contains("--jwt-audience"), "{e}");
    }

    #[test]
    fn flags_build_keys_that_verify_tokens() {
        let a = parse(&[
            "--jwt-secret",
            SECRET,
            "--jwt-public-key",
            &fixture("rsa.pub.pem"),
            "--jwt-public-key",
            &fixture("jwks.json"),
            "--jwt-leeway-secs",
            "0",
        ])
        .unwrap();
        let keys = a.jwt_keys().unwrap().unwrap();
        assert_eq!(keys.key_set().len(), 1 + 1 + 3);
        assert!(keys.verify(&token(60)).is_ok());
    }

    #[test]
    fn audience_flag_is_enforced() {
        let keys = parse(&["--jwt-secret", SECRET, "--jwt-audience", "tether"])
            .unwrap()
            .jwt_keys()
            .unwrap()
            .unwrap();
        assert!(matches!(
            keys.verify(&token(60)),
            Err(TokenError::Invalid(_))
        ));
        let aud = mint_hs256(
            SECRET.as_bytes(),
            &Claims::expiring_in(Duration::from_secs(60)).audience("tether"),
        );
        assert!(keys.verify(&aud).is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let a = parse(&["--jwt-secret", SECRET]).unwrap();
        assert!(!format!("{a:?} {:?}", a.sources()).contains(SECRET));
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, content: &[u8]) -> Self {
            let path =
                std::env::temp_dir().join(format!("tether-cli-{}-{name}", std::process::id()));
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
    fn reload_rereads_files_and_keeps_keys_on_failure() {
        let file = TempFile::new("secret", format!("{SECRET}\n").as_bytes());
        let a = parse(&["--jwt-secret-file", file.0.to_str().unwrap()]).unwrap();
        let sources = a.sources();
        assert!(sources.has_files());
        let keys = a.jwt_keys().unwrap().unwrap();
        let old = token(60);
        assert!(keys.verify(&old).is_ok());

        let next = "the next secret, also 32 bytes or more";
        std::fs::write(&file.0, next).unwrap();
        assert_eq!(reload(&sources, &keys), Ok(1));
        assert!(keys.verify(&old).is_err());
        let new = mint_hs256(
            next.as_bytes(),
            &Claims::expiring_in(Duration::from_secs(60)),
        );
        assert!(keys.verify(&new).is_ok());

        std::fs::write(&file.0, "short").unwrap();
        let e = reload(&sources, &keys).unwrap_err();
        assert!(
            e.starts_with("--jwt-secret-file") && !e.contains("short"),
            "{e}"
        );
        assert!(
            keys.verify(&new).is_ok(),
            "a failed reload keeps the keys in use"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sighup_reloads_the_keys() {
        let file = TempFile::new(
            "sighup.pem",
            &std::fs::read(fixture("rsa.pub.pem")).unwrap(),
        );
        let a = parse(&["--jwt-public-key", file.0.to_str().unwrap()]).unwrap();
        let keys = a.jwt_keys().unwrap().unwrap();
        let task = tokio::spawn(reload_on_sighup(a.sources(), keys.clone()).unwrap());
        let before = keys.key_set();

        std::fs::write(&file.0, std::fs::read(fixture("p256.pub.pem")).unwrap()).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while std::sync::Arc::ptr_eq(&before, &keys.key_set()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reload after SIGHUP"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            keys.key_set().keys()[0].algorithm(),
            tether_core::auth::KeyAlgorithm::ES256
        );
        task.abort();
    }
}
