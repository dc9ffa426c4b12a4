//! `tether health URL`: a health check for images without curl (the Dockerfile's
//! `HEALTHCHECK`): GET the URL, exit 0 on a 2xx answer, 1 on any other, 2 when the server
//! cannot be reached.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Flags of `tether health`.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The URL to GET (`http://` only).
    #[arg(default_value = "http://127.0.0.1:8080/health/live")]
    url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

/// `http://host[:port][/path]` split into the address to dial, the `Host` header and the path.
fn split(url: &str) -> Result<(String, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are checked"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url}: name a host, without credentials"));
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    let dial = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((dial, authority.to_owned(), path.to_owned()))
}

/// The status code of the answer to `GET url`.
fn status(url: &str, timeout: Duration) -> Result<u16, String> {
    let (dial, host, path) = split(url)?;
    let addr = dial
        .to_socket_addrs()
        .map_err(|e| format!("{dial}: {e}"))?
        .next()
        .ok_or_else(|| format!("{dial}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tether-health\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match stream.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("{addr}: {e}")),
        }
    }
    let line = std::str::from_utf8(&head[..n]).unwrap_or_default();
    line.strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{addr}: not an HTTP answer"))
}

pub(crate) fn main(args: HealthArgs) -> ExitCode {
    match status(&args.url, Duration::from_secs(args.timeout_secs.max(1))) {
        Ok(code) if (200..300).contains(&code) => {
            println!("{} {code}", args.url);
            ExitCode::SUCCESS
        }
        Ok(code) => {
            eprintln!("tether health: {} answered {code}", args.url);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tether health: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(
            split("http://127.0.0.1:8080/health/live").unwrap(),
            (
                "127.0.0.1:8080".into(),
                "127.0.0.1:8080".into(),
                "/health/live".into()
            )
        );
        assert_eq!(
            split("http://[::1]/x").unwrap(),
            ("[::1]:80".into(), "[::1]".into(), "/x".into())
        );
        assert!(split("https://a/").is_err());
        assert!(split("http://u:p@a/").is_err());
    }
}
