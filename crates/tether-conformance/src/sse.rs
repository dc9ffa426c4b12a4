//! An SSE parser that keeps everything a conformance check looks at: ids, event names, data,
//! `retry:` fields and comments (heartbeats), block by block.

use serde_json::Value;

/// One block of an SSE stream (the lines up to a blank line), as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// The `id:` field, if the block had one.
    pub id: Option<String>,
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines joined with LF, if there were any.
    pub data: Option<String>,
    /// The `retry:` field, if it was a number.
    pub retry: Option<u64>,
    /// Comment lines (`: text`), without the colon and one leading space.
    pub comments: Vec<String>,
}

impl Frame {
    /// Whether the block dispatches an event (it has data).
    pub fn is_event(&self) -> bool {
        self.data.is_some()
    }

    /// The data parsed as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(self.data.as_deref()?).ok()
    }

    /// The name of a `tether.*` control signal (a CUSTOM event), if this is one.
    pub fn signal(&self) -> Option<String> {
        let v = self.json()?;
        if v["type"] == "CUSTOM" {
            v["name"]
                .as_str()
                .filter(|n| n.starts_with("tether."))
                .map(str::to_owned)
        } else {
            None
        }
    }

    /// The `value` of a control signal.
    pub fn signal_value(&self) -> Option<Value> {
        self.signal()?;
        self.json().map(|v| v["value"].clone())
    }
}

/// Incremental parser: feed bytes as they arrive, take whole blocks out.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    after_cr: bool,
    current: Frame,
    touched: bool,
    data: Vec<String>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; every completed block is pushed to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Frame>) {
        if line.is_empty() {
            if self.touched {
                let mut frame = std::mem::take(&mut self.current);
                if !self.data.is_empty() {
                    frame.data = Some(std::mem::take(&mut self.data).join("\n"));
                }
                out.push(frame);
                self.touched = false;
            }
            return;
        }
        self.touched = true;
        let line = String::from_utf8_lossy(line);
        if let Some(comment) = line.strip_prefix(':') {
            let c = comment.strip_prefix(' ').unwrap_or(comment);
            self.current.comments.push(c.to_owned());
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "id" => self.current.id = Some(value.to_owned()),
            "event" => self.current.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            "retry" => self.current.retry = value.parse().ok(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Vec<Frame> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        // Byte by byte, so no block relies on arriving in one piece.
        for b in input {
            p.feed(std::slice::from_ref(b), &mut out);
        }
        out
    }

    #[test]
    fn blocks() {
        let f =
            parse(b"retry: 3000\n\nid: a-1\nevent: x\ndata: {\"a\":1}\ndata: 2\n\n: keepalive\n\n");
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].retry, Some(3000));
        assert_eq!(f[1].id.as_deref(), Some("a-1"));
        assert_eq!(f[1].event.as_deref(), Some("x"));
        assert_eq!(f[1].data.as_deref(), Some("{\"a\":1}\n2"));
        assert_eq!(f[2].comments, vec!["keepalive".to_owned()]);
        assert!(!f[2].is_event());
    }

    #[test]
    fn line_endings_and_signals() {
        let f = parse(b"data: {\"type\":\"CUSTOM\",\"name\":\"tether.resync\",\"value\":{\"reason\":\"epoch\"}}\r\n\r\ndata:x\r\r");
        assert_eq!(f[0].signal().as_deref(), Some("tether.resync"));
        assert_eq!(f[0].signal_value().unwrap()["reason"], "epoch");
        assert_eq!(f[1].data.as_deref(), Some("x"));
    }
}
