//! Reading what a request says: ids, `Last-Event-ID`, query parameters.

use std::borrow::Cow;
use std::time::Duration;

use http::HeaderMap;
use http::header::ACCEPT;

use super::HttpError;
use crate::broker::ConnectOptions;
use crate::id::{InvalidId, LastEventId, SessionId, is_valid_id};

/// The first value of query parameter `name`, percent-decoded (`+` is a space, as in forms).
/// `query` is the raw query string without the `?`.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

/// Percent-decodes a path segment or query component, for routers that hand over path
/// parameters still encoded (warp). `+` becomes a space as in forms; no id contains either.
/// Invalid UTF-8 is replaced, which then fails any id grammar check.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    decode(s)
}

fn decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    // Invalid UTF-8 is replaced, which then fails any id grammar check.
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Validates a session id from the path (400 `invalid_session_id` outside the grammar).
pub fn session_id(raw: &str) -> Result<SessionId, HttpError> {
    SessionId::new(raw).map_err(HttpError::from)
}

/// The client's `Last-Event-ID`: the header, or the `lastEventId` query parameter for
/// polyfills that cannot set headers. An empty value counts as none. A value outside the id
/// grammar is a 400; a well-formed id that is not ours passes (it gets a resync, since
/// EventSource would give up after an error).
pub fn last_event_id(headers: &HeaderMap, query: &str) -> Result<Option<String>, HttpError> {
    let invalid = || HttpError::from(InvalidId::new(crate::id::IdKind::LastEventId));
    let from_header = match headers.get("last-event-id") {
        Some(v) => v.to_str().map_err(|_| invalid())?.trim().to_owned(),
        None => String::new(),
    };
    let raw = if from_header.is_empty() {
        query_param(query, "lastEventId")
            .map(Cow::into_owned)
            .unwrap_or_default()
    } else {
        from_header
    };
    match LastEventId::parse(&raw) {
        Ok(None) => Ok(None),
        Ok(Some(_)) => Ok(Some(raw)),
        Err(e) => Err(e.into()),
    }
}

/// The connect options a request asks for: `Last-Event-ID` (see [`last_event_id`]),
/// `clientId` (the client instance's name, same grammar as ids) and `prelude=always`.
pub fn connect_options(headers: &HeaderMap, query: &str) -> Result<ConnectOptions, HttpError> {
    let last_event_id = last_event_id(headers, query)?;
    let client_id = match query_param(query, "clientId") {
        Some(c) if c.is_empty() => None,
        Some(c) if is_valid_id(&c) => Some(c.into_owned()),
        Some(_) => return Err(InvalidId::new(crate::id::IdKind::ClientId).into()),
        None => None,
    };
    let prelude_always = query_param(query, "prelude").is_some_and(|p| p == "always");
    Ok(ConnectOptions {
        last_event_id,
        client_id,
        prelude_always,
        ..ConnectOptions::default()
    })
}

/// The client of a request for log lines: the socket peer (the [`PeerAddr`](super::PeerAddr)
/// a server put in the request's extensions), or, when `trust_forwarded`, the rightmost
/// address of `X-Forwarded-For` (the one the proxy in front added; the ones left of it are
/// whatever the client sent); and the `User-Agent`.
pub fn client_info(parts: &http::request::Parts, trust_forwarded: bool) -> crate::ClientInfo {
    let peer = parts.extensions.get::<super::PeerAddr>().map(|p| p.0.ip());
    let forwarded = trust_forwarded
        .then(|| {
            let last = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()?;
            let hop = last.to_str().ok()?.rsplit(',').next()?.trim();
            hop.parse::<std::net::IpAddr>().ok()
        })
        .flatten();
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    crate::ClientInfo::new(forwarded.or(peer), user_agent)
}

/// Whether the request accepts `text/event-stream` (every EventSource says so).
pub fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|part| {
                part.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
            })
        })
    })
}

/// The long-poll of the approval status route: `waitMs`, default [`DEFAULT_WAIT`](super::DEFAULT_WAIT),
/// at most [`MAX_WAIT`](super::MAX_WAIT) (longer asks are shortened). Not a number is a 400.
pub fn wait_duration(query: &str) -> Result<Duration, HttpError> {
    match query_param(query, "waitMs") {
        None => Ok(super::DEFAULT_WAIT),
        Some(v) if v.is_empty() => Ok(super::DEFAULT_WAIT),
        Some(v) => v
            .parse::<u64>()
            .map(|ms| Duration::from_millis(ms).min(super::MAX_WAIT))
            .map_err(|_| {
                HttpError::bad_request(
                    "invalid_query",
                    "waitMs must be a whole number of milliseconds (at most 60000)",
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(query_param("a=1&b=x%3Ay", "b").as_deref(), Some("x:y"));
        assert_eq!(query_param("a=1&b=x+y", "b").as_deref(), Some("x y"));
        assert_eq!(query_param("a&b=2", "a").as_deref(), Some(""));
        assert_eq!(query_param("", "a"), None);
        assert_eq!(query_param("a=%zz", "a").as_deref(), Some("%zz"));
        assert_eq!(query_param("a=%4", "a").as_deref(), Some("%4"));
        assert_eq!(query_param("a=%41", "a").as_deref(), Some("A"));
        assert_eq!(percent_decode("user%3A1"), "user:1");
        assert!(matches!(percent_decode("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn last_event_id_header_wins_over_query() {
        let q = "lastEventId=b-2";
        assert_eq!(
            last_event_id(&h(&[("last-event-id", "a-1")]), q)
                .unwrap()
                .as_deref(),
            Some("a-1")
        );
        assert_eq!(
            last_event_id(&HeaderMap::new(), q).unwrap().as_deref(),
            Some("b-2")
        );
        assert_eq!(
            last_event_id(&h(&[("last-event-id", "")]), q)
                .unwrap()
                .as_deref(),
            Some("b-2")
        );
        assert_eq!(last_event_id(&HeaderMap::new(), "").unwrap(), None);
        // Foreign but well-formed: passes, to be resynced.
        assert_eq!(
            last_event_id(&HeaderMap::new(), "lastEventId=msg_17")
                .unwrap()
                .as_deref(),
            Some("msg_17")
        );
    }

    #[test]
    fn last_event_id_outside_grammar_is_400() {
        let long = "1".repeat(129);
        let e = last_event_id(&h(&[("last-event-id", &long)]), "").unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert_eq!(e.code(), "invalid_last_event_id");
        assert!(last_event_id(&HeaderMap::new(), "lastEventId=a%0Ab").is_err());
        assert!(last_event_id(&h(&[("last-event-id", "a b")]), "").is_err());
    }

    #[test]
    fn connect_options_from_query() {
        let o = connect_options(&HeaderMap::new(), "clientId=tab-1&prelude=always").unwrap();
        assert_eq!(o.client_id.as_deref(), Some("tab-1"));
        assert!(o.prelude_always);
        let e = connect_options(&HeaderMap::new(), "clientId=a%20b").unwrap_err();
        assert_eq!(e.code(), "invalid_client_id");
    }

    #[test]
    fn session_ids() {
        assert!(session_id("user-1:chat").is_ok());
        assert_eq!(session_id("a b").unwrap_err().code(), "invalid_session_id");
        assert!(session_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn accept() {
        assert!(wants_event_stream(&h(&[("accept", "text/event-stream")])));
        assert!(wants_event_stream(&h(&[(
            "accept",
            "application/json, Text/Event-Stream;q=0.9"
        )])));
        assert!(!wants_event_stream(&h(&[("accept", "*/*")])));
        assert!(!wants_event_stream(&HeaderMap::new()));
    }

    #[test]
    fn wait() {
        assert_eq!(wait_duration("").unwrap(), Duration::from_secs(25));
        assert_eq!(
            wait_duration("waitMs=10").unwrap(),
            Duration::from_millis(10)
        );
        assert_eq!(
            wait_duration("waitMs=999999").unwrap(),
            Duration::from_secs(60)
        );
        assert!(wait_duration("waitMs=x").is_err());
    }
}
