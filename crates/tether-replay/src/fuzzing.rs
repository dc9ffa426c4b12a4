//! The checks behind the fuzz targets in `fuzz/`, shared with the test that replays their
//! corpora. Each takes arbitrary bytes and panics when tether gets them wrong.

use serde_json::Value;
use tether_core::frame::{EventName, encode_event};
use tether_core::{Epoch, Event, EventId, LastEventId, SessionId, is_valid_id};

use crate::sse;
use crate::transcript::Transcript;

pub use crate::fuzz_hub::hub_connection;

/// A check: panics when tether gets the input wrong.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name, with their checks.
pub const TARGETS: &[(&str, Check)] = &[
    ("last_event_id", last_event_id),
    ("session_id", session_id),
    ("publish_body", publish_body),
    ("transcript", transcript),
    ("sse_roundtrip", sse_roundtrip),
    ("hub_connection", hub_connection),
];

/// The id grammar, written out plainly: 1 to 128 bytes, each `A-Z`, `a-z`, `0-9`, `.`,
/// `_`, `:` or `-`.
pub fn reference_id_grammar(s: &str) -> bool {
    const ALLOWED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
    let n = s.len();
    (1..=128).contains(&n) && s.chars().all(|c| ALLOWED.contains(c))
}

/// `LastEventId::parse` never panics, refuses exactly what breaks the id grammar, and what it
/// accepts prints back to a value that parses to the same thing.
pub fn last_event_id(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    match LastEventId::parse(&raw) {
        Ok(None) => assert!(raw.is_empty(), "only an empty value means no id: {raw:?}"),
        Err(_) => assert!(
            !raw.is_empty() && !reference_id_grammar(&raw),
            "a valid id was refused: {raw:?}"
        ),
        Ok(Some(id)) => {
            assert!(
                reference_id_grammar(&raw),
                "an invalid id was accepted: {raw:?}"
            );
            let printed = id.to_string();
            assert_eq!(
                LastEventId::parse(&printed),
                Ok(Some(id.clone())),
                "{raw:?} does not round-trip through {printed:?}"
            );
            match id {
                LastEventId::Foreign(s) => assert_eq!(s, raw, "a foreign id is kept as sent"),
                LastEventId::Known(e) => {
                    assert_eq!(EventId::parse(&printed), Some(e));
                    assert_ne!(e.epoch.get(), 0, "epoch 0 is never issued");
                }
            }
        }
    }
    // Any id tether issues parses back to itself.
    if data.len() >= 16 {
        let epoch = u64::from_le_bytes(data[..8].try_into().unwrap_or_default()) & 0xffff_ffff_ffff;
        let seq = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
        if epoch != 0 {
            let id = EventId {
                epoch: Epoch::from_u64(epoch),
                seq,
            };
            assert_eq!(
                LastEventId::parse(&id.to_string()),
                Ok(Some(LastEventId::Known(id)))
            );
        }
    }
}

/// `SessionId::new` accepts exactly what the reference grammar accepts, and keeps it as is.
pub fn session_id(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let want = reference_id_grammar(&raw);
    assert_eq!(is_valid_id(&raw), want, "is_valid_id({raw:?})");
    match SessionId::new(&raw) {
        Ok(s) => {
            assert!(want, "an invalid session id was accepted: {raw:?}");
            assert_eq!(s.as_str(), raw);
        }
        Err(_) => assert!(!want, "a valid session id was refused: {raw:?}"),
    }
}

/// Numbers compare as numbers: serde_json's default float parsing may be one unit in the last
/// place off after a print and re-parse, which is serde_json's business, not tether's.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                return true;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => p == q || ((p - q).abs() <= p.abs().max(q.abs()) * 1e-15),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// A JSON publish body goes through `Event::json` and `encode_event` and comes back out of
/// an SSE parser as the same JSON, in one event carrying the id.
pub fn publish_body(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let event = Event::json(&value).expect("a JSON value serializes");
    let id = EventId {
        epoch: Epoch::from_u64(0x7f3a9c),
        seq: 42,
    };
    let frame = encode_event(Some(id), None, event.data());
    let blocks = sse::parse(&frame);
    assert_eq!(blocks.len(), 1, "one frame: {frame:?}");
    let d = blocks[0]
        .dispatched
        .as_ref()
        .expect("an event is dispatched");
    assert_eq!(d.event_type, "message");
    assert_eq!(d.last_event_id, "7f3a9c-42");
    assert_eq!(d.data, event.data(), "the data comes back as published");
    let back: Value = serde_json::from_str(&d.data).expect("the data is JSON");
    assert!(same_json(&back, &value), "{value} came back as {back}");
}

/// The transcript parser never panics, and what it accepts it writes back into text that
/// parses to the same transcript.
pub fn transcript(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(t) = Transcript::parse(&text) else {
        return;
    };
    let written = t.to_jsonl();
    let again = Transcript::parse(&written)
        .unwrap_or_else(|e| panic!("the written transcript does not parse ({e}):\n{written}"));
    assert_eq!(again.settings, t.settings);
    assert_eq!(again.steps.len(), t.steps.len());
    for (a, b) in t.steps.iter().zip(&again.steps) {
        assert_eq!(a.at_ms, b.at_ms);
        assert!(
            same_action(&a.action, &b.action),
            "{:?} was written back as {:?}",
            a.action,
            b.action
        );
    }
}

fn same_action(a: &crate::transcript::Action, b: &crate::transcript::Action) -> bool {
    // Events are JSON; compare them as JSON (numbers as numbers).
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(x), Ok(y)) => same_json(&x, &y),
        _ => false,
    }
}

/// Any data and name attempt, CR, LF and NUL included: a name with a control character (or
/// a leading space, or empty, or too long) is refused; otherwise an independent SSE parser
/// reads back exactly the id, the name and the data, with CR and CRLF turned into LF.
pub fn sse_roundtrip(data: &[u8]) {
    // The first byte says how long the name attempt is; the rest is the data.
    let (name, body) = match data.split_first() {
        Some((&n, rest)) => {
            let n = (n as usize).min(rest.len());
            (&rest[..n], &rest[n..])
        }
        None => (&[][..], &[][..]),
    };
    let name = String::from_utf8_lossy(name);
    let body = String::from_utf8_lossy(body);
    let has_control = name.chars().any(char::is_control);
    let event_name = match EventName::new(&name) {
        Ok(n) => {
            assert!(
                !has_control && !name.is_empty() && !name.starts_with(' ') && name.len() <= 128,
                "a name that could break the framing was accepted: {name:?}"
            );
            Some(n)
        }
        Err(_) => {
            assert!(
                has_control || name.is_empty() || name.starts_with(' ') || name.len() > 128,
                "a harmless name was refused: {name:?}"
            );
            None
        }
    };
    let id = EventId {
        epoch: Epoch::from_u64(0xabc),
        seq: body.len() as u64 + 1,
    };
    let frame = encode_event(Some(id), event_name.as_ref(), &body);
    assert!(!frame.contains(&b'\r'), "frames use LF only");
    let blocks = sse::parse(&frame);
    assert_eq!(blocks.len(), 1, "exactly one frame: {frame:?}");
    let d = blocks[0]
        .dispatched
        .as_ref()
        .expect("an event is dispatched");
    let want = body.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(d.data, want, "data, with CR and CRLF as LF");
    assert_eq!(d.last_event_id, id.to_string());
    let want_type = event_name.as_ref().map_or("message", EventName::as_str);
    assert_eq!(d.event_type, want_type);
    // Chunked delivery parses the same: split the frame at every third byte.
    let mut p = sse::Parser::new();
    let mut again = Vec::new();
    for piece in frame.chunks(3) {
        again.extend(p.feed(piece));
    }
    assert_eq!(again, blocks, "parsing in pieces");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_accept_plain_inputs() {
        last_event_id(b"7f3a9c-42");
        last_event_id(b"msg_17");
        last_event_id(b"a b");
        last_event_id(b"");
        session_id(b"user-42");
        session_id(b"\xff");
        publish_body(br#"{"type":"TEXT_MESSAGE_CONTENT","delta":"a\nb\r\nc"}"#);
        publish_body(b"1e308");
        transcript(b"{\"op\":\"advance\",\"ms\":1}");
        sse_roundtrip(b"\x05event\x00a\r\nb\rc\n");
        sse_roundtrip(b"\x03a\nbdata");
        sse_roundtrip(b"");
    }
}
