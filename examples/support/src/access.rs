//! The access flags every tether example takes, so that each example is secure by default
//! and still drivable from a shell:
//!
//! - `--jwt-secret S` (env `TETHER_JWT_SECRET`, at least 32 bytes): the stream, decision and
//!   run routes take HS256 tokens signed with `S`. Without it, the example makes a random
//!   secret for this run.
//! - `--publish-token T`: a static bearer token that publishes and manages approvals beside
//!   the tokens' publish claims.
//! - `--dev`: every route open, on loopback addresses only.
//!
//! Unless `--dev` is given, the example prints a development token before its
//! `listening on` line: one hour, subject `dev`, every session to subscribe and publish.
//! Pass it as `Authorization: Bearer …` or as the `token` query parameter.

use std::net::SocketAddr;
use std::time::Duration;

use rand::RngCore;
use tether_core::auth::{Claims, JwtKeys, mint_hs256};
use tether_core::http::Hooks;

/// How long the printed development token is valid.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The prefix of the line that carries the development token on stdout.
pub const DEV_TOKEN_LINE: &str = "development token: ";

/// The examples' access flags (flatten into the example's own `clap` arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct AccessArgs {
    /// HS256 secret (at least 32 bytes) that tokens are checked against; without it a random
    /// secret is made for this run. The development token printed at startup is signed with it.
    #[arg(long, env = "TETHER_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Static bearer token that may publish and manage approvals (beside publish claims).
    #[arg(long, hide_env_values = true)]
    pub publish_token: Option<String>,
    /// Open every route without a token (loopback addresses only); `--publish-token` still
    /// guards publishing when given.
    #[arg(long)]
    pub dev: bool,
}

/// Why the access flags cannot be used.
#[derive(Debug)]
pub struct AccessError(String);

impl std::fmt::Display for AccessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AccessError {}

impl From<AccessError> for std::io::Error {
    fn from(e: AccessError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.0)
    }
}

/// The hooks the flags ask for, and the development token to print (`None` under `--dev`).
#[derive(Debug)]
pub struct Access {
    /// The hooks to give the tether `Service`.
    pub hooks: Hooks,
    /// A token for every session, valid for [`DEV_TOKEN_TTL`].
    pub dev_token: Option<String>,
}

impl AccessArgs {
    /// Builds the hooks for a server on `addr`. `--dev` on a non-loopback address, an empty
    /// publish token, or a secret shorter than 32 bytes is an error.
    pub fn access(&self, addr: SocketAddr) -> Result<Access, AccessError> {
        if self.publish_token.as_deref() == Some("") {
            return Err(AccessError("--publish-token must not be empty".into()));
        }
        let publish = |hooks: Hooks| match &self.publish_token {
            Some(t) => hooks.publish_token(t.as_str()),
            None => hooks,
        };
        if self.dev {
            if !addr.ip().is_loopback() {
                return Err(AccessError(format!(
                    "--dev opens every route, so it listens on loopback addresses only, not {addr}"
                )));
            }
            return Ok(Access {
                hooks: publish(Hooks::allow_all()),
                dev_token: None,
            });
        }
        let secret = match &self.jwt_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => random_secret(),
        };
        let keys =
            JwtKeys::hs256(&secret).map_err(|e| AccessError(format!("--jwt-secret: {e}")))?;
        let claims = Claims::expiring_in(DEV_TOKEN_TTL)
            .subject("dev")
            .subscribe("*")
            .publish("*");
        Ok(Access {
            hooks: publish(Hooks::jwt(keys)),
            dev_token: Some(mint_hs256(&secret, &claims)),
        })
    }
}

impl Access {
    /// Prints the development token line (when there is one) to stdout, and says on stderr
    /// what the access policy is.
    pub fn announce(&self) {
        match &self.dev_token {
            Some(token) => println!("{DEV_TOKEN_LINE}{token}"),
            None => eprintln!("--dev: every route is open to anyone who can reach this address"),
        }
    }
}

fn random_secret() -> Vec<u8> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    secret.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(secret: Option<&str>, dev: bool) -> AccessArgs {
        AccessArgs {
            jwt_secret: secret.map(str::to_owned),
            publish_token: None,
            dev,
        }
    }

    #[test]
    fn dev_refuses_a_public_address() {
        let err = args(None, true)
            .access("0.0.0.0:3000".parse().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(
            args(None, true)
                .access("127.0.0.1:3000".parse().unwrap())
                .is_ok()
        );
    }

    #[test]
    fn a_short_secret_is_refused_and_a_missing_one_is_made_up() {
        let addr = "127.0.0.1:3000".parse().unwrap();
        assert!(args(Some("short"), false).access(addr).is_err());
        let made_up = args(None, false).access(addr).unwrap();
        assert!(made_up.dev_token.is_some());
    }

    #[test]
    fn the_development_token_opens_every_session() {
        let secret = "an-example-secret-of-more-than-32-bytes";
        let access = args(Some(secret), false)
            .access("127.0.0.1:3000".parse().unwrap())
            .unwrap();
        let keys = JwtKeys::hs256(secret.as_bytes()).unwrap();
        let identity = keys.verify(access.dev_token.as_deref().unwrap()).unwrap();
        assert_eq!(identity.subject(), Some("dev"));
    }
}
