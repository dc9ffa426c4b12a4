//! CORS, for servers configured to allow one browser origin: preflights are answered, the
//! allowed origin is named (with credentials), and other origins are not.

use std::time::Duration;

use crate::client::{Target, send};

const LIMIT: Duration = Duration::from_secs(10);

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Checks a server at `base_url` that allows `origin` and no other; panics with a precise
/// message when it does not behave so.
pub async fn assert_allows_only(base_url: &str, origin: &str) {
    let target = Target::parse(base_url).expect("a loopback URL");
    let pre = send(
        &target,
        "OPTIONS",
        "/api/sessions/s/events",
        &headers(&[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ]),
        b"",
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(pre.status, 204, "preflight: {}", pre.text());
    assert_eq!(pre.header("access-control-allow-origin"), Some(origin));
    assert!(
        pre.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST")),
        "preflight names POST"
    );

    let allowed = send(
        &target,
        "GET",
        "/health/sse",
        &headers(&[("Origin", origin)]),
        b"",
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );

    let other = send(
        &target,
        "GET",
        "/health/sse",
        &headers(&[("Origin", "https://elsewhere.example")]),
        b"",
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
}
