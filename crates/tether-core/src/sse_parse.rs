//! An incremental `text/event-stream` parser written from the WHATWG HTML specification
//! ("9.2.6 Interpreting an event stream"), independent of the encoder in [`crate::frame`], for
//! clients and tests that read what a server sent.
//!
//! It reports every block of lines that ends with a blank line as a [`Block`] (so a reader can
//! see id-only frames, comments (heartbeats) and `retry:` fields, which the browser API never
//! shows), and tracks what an `EventSource` would dispatch ([`Dispatched`]).
//!
//! ```
//! use tether_core::sse_parse::Parser;
//!
//! let mut parser = Parser::new();
//! let mut blocks = parser.feed(b"retry: 3000\n\nid: a-1\ndata: {\"n\":");
//! blocks.extend(parser.feed(b"1}\n\n: keepalive\n\n"));
//! assert_eq!(blocks[0].retry, Some(3000));
//! assert_eq!(blocks[1].json().unwrap()["n"], 1);
//! assert_eq!(parser.last_event_id(), "a-1");
//! assert_eq!(blocks[2].comments, ["keepalive"]);
//! ```
//!
//! What the specification says, and this parser does:
//! - the stream is UTF-8 (invalid sequences become U+FFFD); one leading BOM is dropped;
//! - lines end with CRLF, LF or a lone CR, also when a CRLF is split across two chunks;
//! - a line starting with `:` is a comment; otherwise the field name runs to the first `:`,
//!   and one space after the colon is dropped from the value; a line without a colon is a
//!   field name with an empty value;
//! - `data` appends the value and an LF to the data buffer; `event` sets the type; `id` sets
//!   the last event id unless the value contains NUL; `retry` is used only when it is all
//!   ASCII digits; other fields are ignored;
//! - a blank line dispatches: the last event id is committed, and if the data buffer is not
//!   empty, its final LF is removed and an event is dispatched (type `message` if none was
//!   given);
//! - an unterminated block at the end of the stream is discarded.

/// One block of fields that ended with a blank line, as they were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    /// The last `id` field of the block, if any (ignored by the spec when it holds NUL; such
    /// a value is not recorded here either).
    pub id: Option<String>,
    /// The last `event` field of the block, if any.
    pub event: Option<String>,
    /// The data lines joined with LF, if the block had any `data` field.
    pub data: Option<String>,
    /// A valid `retry` field, if any.
    pub retry: Option<u64>,
    /// Whether the block had a comment line.
    pub comment: bool,
    /// The text of its comment lines (after the `:` and one optional space), in order.
    pub comments: Vec<String>,
    /// What an `EventSource` dispatched for this block, if anything.
    pub dispatched: Option<Dispatched>,
}

impl Block {
    /// Whether the block dispatches an event (it has a `data` field).
    pub fn is_event(&self) -> bool {
        self.data.is_some()
    }

    /// The data parsed as JSON, if there is data and it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.data.as_deref()?).ok()
    }

    /// The name of a `tether.*` control signal (an AG-UI `CUSTOM` event such as
    /// `tether.resync`), if the block carries one.
    pub fn signal(&self) -> Option<String> {
        let v = self.json()?;
        if v["type"] != "CUSTOM" {
            return None;
        }
        v["name"]
            .as_str()
            .filter(|n| n.starts_with("tether."))
            .map(str::to_owned)
    }

    /// The `value` of a control signal, if the block carries one.
    pub fn signal_value(&self) -> Option<serde_json::Value> {
        self.signal()?;
        self.json().map(|v| v["value"].clone())
    }
}

/// An event as `EventSource` dispatches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    /// The event type (`message` unless an `event` field named one).
    pub event_type: String,
    /// The data.
    pub data: String,
    /// `lastEventId` at dispatch time.
    pub last_event_id: String,
}

/// The incremental parser. Feed it bytes as they arrive.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Vec<u8>,
    after_cr: bool,
    started: bool,
    block: Block,
    any_field: bool,
    data: String,
    has_data_field: bool,
    event_type: String,
    last_event_id_buffer: String,
    last_event_id: String,
    reconnection_time: Option<u64>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `lastEventId` an `EventSource` would send when it reconnects now.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time the stream last set, in milliseconds.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.reconnection_time
    }

    /// Parses `bytes` and returns the blocks they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Block> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'\n' if self.after_cr => {
                    // The LF of a CRLF whose CR ended the previous line.
                    self.after_cr = false;
                    start = i + 1;
                }
                b'\n' | b'\r' => {
                    self.pending.extend_from_slice(&bytes[start..i]);
                    let line = std::mem::take(&mut self.pending);
                    self.line(&line, &mut out);
                    self.after_cr = b == b'\r';
                    start = i + 1;
                }
                _ => self.after_cr = false,
            }
        }
        self.pending.extend_from_slice(&bytes[start..]);
        out
    }

    fn line(&mut self, raw: &[u8], out: &mut Vec<Block>) {
        let mut raw = raw;
        if !self.started {
            self.started = true;
            if let Some(rest) = raw.strip_prefix(b"\xEF\xBB\xBF") {
                raw = rest;
            }
        }
        let line = String::from_utf8_lossy(raw);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        self.any_field = true;
        if let Some(text) = line.strip_prefix(':') {
            self.block.comment = true;
            let text = text.strip_prefix(' ').unwrap_or(text);
            self.block.comments.push(text.to_owned());
            return;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&*line, ""),
        };
        match field {
            "event" => {
                self.event_type = value.to_owned();
                self.block.event = Some(value.to_owned());
            }
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data_field = true;
            }
            "id" if !value.contains('\0') => {
                self.last_event_id_buffer = value.to_owned();
                self.block.id = Some(value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Larger than u64 is "a very long time".
                let v = value.parse().unwrap_or(u64::MAX);
                self.reconnection_time = Some(v);
                self.block.retry = Some(v);
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Block>) {
        self.last_event_id = self.last_event_id_buffer.clone();
        let mut block = std::mem::take(&mut self.block);
        let had_fields = std::mem::take(&mut self.any_field);
        let mut data = std::mem::take(&mut self.data);
        let event_type = std::mem::take(&mut self.event_type);
        if std::mem::take(&mut self.has_data_field) {
            data.pop();
            block.data = Some(data.clone());
            // `data` held at least the LF of one data line, so the buffer was not empty.
            block.dispatched = Some(Dispatched {
                event_type: if event_type.is_empty() {
                    "message".to_owned()
                } else {
                    event_type
                },
                data,
                last_event_id: self.last_event_id.clone(),
            });
        }
        if had_fields {
            out.push(block);
        }
    }
}

/// Parses a whole stream at once.
pub fn parse(bytes: &[u8]) -> Vec<Block> {
    Parser::new().feed(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_examples() {
        // "data:" lines with and without the space, a comment, an id-only block.
        let b = parse(b": hi\n\ndata: YHOO\ndata: +2\ndata: 10\n\nid: 1\n\ndata:x\n\n");
        assert!(b[0].comment && b[0].dispatched.is_none());
        assert_eq!(b[0].comments, ["hi"]);
        assert_eq!(b[1].data.as_deref(), Some("YHOO\n+2\n10"));
        assert_eq!(b[2].id.as_deref(), Some("1"));
        assert!(b[2].dispatched.is_none());
        let d = b[3].dispatched.as_ref().unwrap();
        assert_eq!((d.data.as_str(), d.last_event_id.as_str()), ("x", "1"));
        assert_eq!(d.event_type, "message");
    }

    #[test]
    fn line_endings_split_across_chunks() {
        let mut p = Parser::new();
        let mut blocks = p.feed(b"\xEF\xBB\xBFevent: a\r");
        blocks.extend(p.feed(b"\ndata: 1\r\r"));
        blocks.extend(p.feed(b"data\n\n"));
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].dispatched.as_ref().unwrap().event_type, "a");
        assert_eq!(blocks[1].data.as_deref(), Some(""));
    }

    #[test]
    fn ids_with_nul_and_bad_retries_are_ignored() {
        let b = parse(b"id: a\0b\nretry: 12x\ndata: d\n\n");
        assert_eq!(b[0].id, None);
        assert_eq!(b[0].retry, None);
        let b = parse(b"retry: 3000\n\n");
        assert_eq!(b[0].retry, Some(3000));
    }

    #[test]
    fn signals_and_json() {
        let b = parse(
            b"data: {\"type\":\"CUSTOM\",\"name\":\"tether.resync\",\"value\":{\"reason\":\"epoch\"}}\n\n\
              data: {\"type\":\"CUSTOM\",\"name\":\"app.x\"}\n\ndata: not json\n\n",
        );
        assert_eq!(b[0].signal().as_deref(), Some("tether.resync"));
        assert_eq!(b[0].signal_value().unwrap()["reason"], "epoch");
        assert_eq!(b[1].signal(), None);
        assert!(b[1].json().is_some());
        assert!(b[2].is_event() && b[2].json().is_none());
    }

    #[test]
    fn unterminated_block_is_discarded() {
        assert!(parse(b"data: x\n").is_empty());
    }
}
