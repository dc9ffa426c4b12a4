//! SSE frame encoding.
//!
//! Every stored event is encoded once, at publish time, into the exact bytes a client
//! receives; delivery and replay only clone the resulting [`Bytes`]. Lines end in LF only
//! (the AG-UI client fails on CRLF). Data containing line breaks (LF, CRLF or a lone CR) is
//! split into several `data:` lines, which a conforming parser joins back with LF, so no
//! event can smuggle a field or a frame boundary into the stream. Event names are validated
//! instead of escaped: a name is a single line without control characters.

use bytes::{BufMut, Bytes, BytesMut};

use crate::id::EventId;

/// Longest SSE event name accepted, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 128;

/// An SSE event name (`event:` field) that cannot break the framing: 1 to 128 bytes, no
/// control characters (so no CR, LF or NUL), no leading space (the parser would strip it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventName(Box<str>);

/// An event name that would break the SSE framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event names must be 1 to 128 bytes without control characters (CR, LF, NUL) or a leading space"
)]
pub struct InvalidEventName;

impl EventName {
    /// Validates an event name.
    pub fn new(name: &str) -> Result<Self, InvalidEventName> {
        let ok = !name.is_empty()
            && name.len() <= MAX_EVENT_NAME_LEN
            && !name.starts_with(' ')
            && !name.chars().any(char::is_control);
        if ok {
            Ok(Self(name.into()))
        } else {
            Err(InvalidEventName)
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Splits `data` on LF, CRLF and lone CR, the three line endings an SSE parser honours.
pub fn data_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let s = rest?;
        match memchr::memchr2(b'\r', b'\n', s.as_bytes()) {
            None => {
                rest = None;
                Some(s)
            }
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
        }
    })
}

/// Encodes one SSE frame: optional `id:`, optional `event:`, the data as `data:` lines, and
/// the blank line that dispatches it.
pub fn encode_event(id: Option<EventId>, name: Option<&EventName>, data: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(data.len() + 48);
    if let Some(id) = id {
        put_id(&mut buf, id);
    }
    if let Some(name) = name {
        buf.put_slice(b"event: ");
        buf.put_slice(name.as_str().as_bytes());
        buf.put_u8(b'\n');
    }
    for line in data_lines(data) {
        buf.put_slice(b"data: ");
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// The name and data of a frame [`encode_event`] wrote (its `id:` line skipped), with the
/// data's lines joined by LF (borrowed when it has one line); `None` for a frame without data
/// or that is not UTF-8.
pub(crate) fn decode_event(frame: &[u8]) -> Option<(Option<&str>, std::borrow::Cow<'_, str>)> {
    let text = std::str::from_utf8(frame).ok()?;
    let mut name = None;
    let mut data: Option<std::borrow::Cow<'_, str>> = None;
    for line in text.split('\n') {
        if let Some(n) = line.strip_prefix("event: ") {
            name = Some(n);
        } else if let Some(d) = line.strip_prefix("data: ") {
            match data.as_mut() {
                Some(all) => {
                    let all = all.to_mut();
                    all.push('\n');
                    all.push_str(d);
                }
                None => data = Some(std::borrow::Cow::Borrowed(d)),
            }
        }
    }
    data.map(|d| (name, d))
}

/// An id-only frame: moves the client's last event id forward without dispatching an event
/// (EventSource and the AG-UI client ignore frames without data).
pub fn encode_id_only(id: EventId) -> Bytes {
    let mut buf = BytesMut::with_capacity(32);
    put_id(&mut buf, id);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// A `retry:` field in its own frame: the client's reconnection delay, in milliseconds.
pub fn encode_retry(millis: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(32);
    put_retry(&mut buf, millis);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// An SSE comment (`: text`), invisible to parsers. Line breaks in `text` are replaced by
/// spaces.
pub fn encode_comment(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(text.len() + 4);
    buf.put_slice(b": ");
    for line in data_lines(text).enumerate() {
        if line.0 > 0 {
            buf.put_u8(b' ');
        }
        buf.put_slice(line.1.as_bytes());
    }
    buf.put_slice(b"\n\n");
    buf.freeze()
}

pub(crate) fn put_retry(buf: &mut BytesMut, millis: u64) {
    buf.put_slice(b"retry: ");
    buf.put_slice(itoa::Buffer::new().format(millis).as_bytes());
    buf.put_u8(b'\n');
}

/// The `id:` line, digits written by hand: `format!` costs about a fifth of a publish.
fn put_id(buf: &mut BytesMut, id: EventId) {
    buf.put_slice(b"id: ");
    put_hex(buf, id.epoch.get());
    buf.put_u8(b'-');
    put_decimal(buf, id.seq);
    buf.put_u8(b'\n');
}

/// `v` in lowercase hex without leading zeros, as [`EventId`]'s `Display`.
fn put_hex(buf: &mut BytesMut, mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = DIGITS[(v & 0xf) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    buf.put_slice(&digits[at..]);
}

/// `v` in decimal.
fn put_decimal(buf: &mut BytesMut, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.put_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Epoch;

    #[test]
    fn the_id_line_is_the_ids_display() {
        let values = [0, 1, 9, 10, 15, 16, 255, 1 << 32, u64::MAX - 1, u64::MAX];
        for epoch in values {
            for seq in values {
                let id = EventId {
                    epoch: Epoch::from_u64(epoch),
                    seq,
                };
                let mut buf = BytesMut::new();
                put_id(&mut buf, id);
                assert_eq!(&buf[..], format!("id: {id}\n").as_bytes());
            }
        }
    }

    #[test]
    fn decode_event_reads_back_what_encode_event_wrote() {
        let id = EventId {
            epoch: Epoch::from_u64(0xabc),
            seq: 7,
        };
        let name = EventName::new("delta").unwrap();
        for (name, data) in [(None, "{}"), (Some(&name), "a\nb\n"), (None, "")] {
            let frame = encode_event(Some(id), name, data);
            let (got_name, got_data) = decode_event(&frame).expect("data");
            assert_eq!(got_name, name.map(EventName::as_str));
            assert_eq!(got_data, data);
        }
        assert_eq!(decode_event(&encode_id_only(id)), None);
    }

    #[test]
    fn frame_layout() {
        let id = EventId {
            epoch: Epoch::from_u64(0xabc),
            seq: 7,
        };
        let name = EventName::new("progress").unwrap();
        let f = encode_event(Some(id), Some(&name), "{\"a\":1}");
        assert_eq!(&f[..], b"id: abc-7\nevent: progress\ndata: {\"a\":1}\n\n");
    }

    #[test]
    fn line_breaks_become_data_lines() {
        let f = encode_event(None, None, "a\nb\r\nc\rd");
        assert_eq!(&f[..], b"data: a\ndata: b\ndata: c\ndata: d\n\n");
        let f = encode_event(None, None, "");
        assert_eq!(&f[..], b"data: \n\n");
        let f = encode_event(None, None, "x\n");
        assert_eq!(&f[..], b"data: x\ndata: \n\n");
        assert!(!encode_event(None, None, "\r\r\n\n").contains(&b'\r'));
    }

    #[test]
    fn names_are_single_lines() {
        for bad in ["", "a\nb", "a\rb", "a\0", " lead", &"n".repeat(129)] {
            assert!(EventName::new(bad).is_err(), "{bad:?}");
        }
        assert!(EventName::new("tether.approval.requested").is_ok());
    }

    #[test]
    fn comment_and_retry() {
        assert_eq!(&encode_comment("keep\nalive")[..], b": keep alive\n\n");
        assert_eq!(&encode_retry(3000)[..], b"retry: 3000\n\n");
    }
}
