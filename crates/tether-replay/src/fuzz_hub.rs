//! The fuzz check of the hub's HTTP/1.1 connection loop: arbitrary bytes in, and what comes
//! out must be HTTP that a client can frame.

use std::time::Duration;

use tether_core::Broker;
use tether_core::http::{Hooks, Service};
use tether_core::server::{ConnectionLimits, serve_io};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The hub's connection loop never panics on `data`, always ends (on a paused clock), and
/// writes only well-framed responses: a valid status line and headers, a body framed by its
/// `content-length` or by chunks, nothing after a response that says `connection: close`,
/// and no more responses than request heads in the input. Requests are checked against
/// signed tokens, so most are refused: a refused request's body is never read, and a refused
/// request that announced one closes the connection after the answer.
pub fn hub_connection(data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let out = rt.block_on(async {
        let broker = Broker::builder().start().expect("valid config");
        let keys = tether_core::auth::JwtKeys::hs256(b"a fuzzing secret of at least 32 bytes")
            .expect("a long enough secret");
        let service = Service::new(broker, Hooks::jwt(keys).publish_token("fuzz-publisher"));
        let (client, server) = tokio::io::duplex(64 * 1024);
        let limits = ConnectionLimits {
            head_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        };
        let served = tokio::spawn(serve_io(server, service, limits));
        let (mut rd, mut wr) = tokio::io::split(client);
        let input = data.to_vec();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&input).await;
            let _ = wr.shutdown().await;
        });
        let mut out = Vec::new();
        // Bounded on the paused clock: a stream the input opened ends with the bound.
        let _ = tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut out)).await;
        served.abort();
        writer.abort();
        out
    });
    check_responses(data, &out);
}

/// Whether `out` is a sequence of well-framed responses (see [`hub_connection`]).
fn check_responses(input: &[u8], out: &[u8]) {
    let heads = input.windows(4).filter(|w| w == b"\r\n\r\n").count();
    let mut rest = out;
    let mut responses = 0;
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        let len = match res.parse(rest) {
            Ok(httparse::Status::Complete(len)) => len,
            // A stream cut by the bound may end anywhere in a later response's body, never
            // in a head.
            other => panic!(
                "not a response head ({other:?}): {:?}",
                String::from_utf8_lossy(rest)
            ),
        };
        let code = res.code.expect("a status code");
        assert!((100..600).contains(&code), "status {code}");
        let header = |name: &str| {
            res.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
        };
        let closes = header("connection").is_some_and(|v| v == "close");
        let chunked = header("transfer-encoding").is_some_and(|v| v == "chunked");
        let length =
            header("content-length").map(|v| v.parse::<usize>().expect("a numeric content-length"));
        rest = &rest[len..];
        if code == 100 {
            continue;
        }
        responses += 1;
        match (length, chunked) {
            (Some(n), false) => {
                assert!(
                    rest.len() >= n || closes,
                    "a body shorter than its content-length"
                );
                rest = &rest[n.min(rest.len())..];
            }
            (None, true) => {
                // A stream: chunks until the end or until the bound cut it.
                rest = skip_chunks(rest);
            }
            (None, false) if code == 204 || code == 304 => {}
            (None, false) => {
                // Close-delimited (an HTTP/1.0 stream): the rest is its body.
                rest = &[];
            }
            (Some(_), true) => panic!("both content-length and chunked"),
        }
        if closes {
            assert!(rest.is_empty(), "bytes after a connection: close response");
        }
    }
    assert!(
        responses <= heads.max(1),
        "{responses} responses to {heads} request heads"
    );
}

/// Skips a chunked body; returns what follows it (empty when it was cut).
fn skip_chunks(mut rest: &[u8]) -> &[u8] {
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return &[];
        };
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .expect("a chunk size line");
        rest = &rest[line_end + 2..];
        if rest.len() < size + 2 {
            return &[];
        }
        assert_eq!(&rest[size..size + 2], b"\r\n", "a chunk ends with CRLF");
        rest = &rest[size + 2..];
        if size == 0 {
            return rest;
        }
    }
}
