//! The agent's `text/event-stream` answer, turned into the data of each event it dispatches.
//!
//! Parsing is `tether_replay::sse`, written from the WHATWG specification: CRLF, LF or a
//! lone CR end lines (also split across chunks), comments are skipped, `data:` lines join
//! with LF, `event:` names are read (AG-UI events are data-only, so the name is not kept),
//! one leading BOM is dropped. What this module adds is a bound: an agent that streams one
//! endless line or block would otherwise grow the parser's buffers without limit.

use tether_replay::sse::Parser;

/// The agent sent more than the bound without finishing an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the agent sent {0} bytes without finishing an event (past tether's largest event)")]
pub(crate) struct TooLarge(pub(crate) usize);

/// Feeds the agent's bytes in, takes each dispatched event's data out.
#[derive(Debug)]
pub(crate) struct EventReader {
    parser: Parser,
    max_block_bytes: usize,
    /// Bytes fed since the last block ended.
    open: usize,
}

impl EventReader {
    /// A reader that refuses blocks longer than `max_block_bytes` (the SSE text of one event,
    /// field names and line ends included).
    pub(crate) fn new(max_block_bytes: usize) -> Self {
        Self {
            parser: Parser::new(),
            max_block_bytes,
            open: 0,
        }
    }

    /// The data of the events `chunk` completed, in order.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, TooLarge> {
        let mut out = Vec::new();
        // Fed in slices no larger than the bound, so no single call buffers past it.
        for piece in chunk.chunks(self.max_block_bytes.max(1)) {
            let blocks = self.parser.feed(piece);
            if blocks.is_empty() {
                self.open += piece.len();
            } else {
                // The bytes after the last block's blank line are what is open now.
                let tail = piece
                    .iter()
                    .rposition(|b| *b == b'\n' || *b == b'\r')
                    .map_or(piece.len(), |i| piece.len() - i - 1);
                self.open = tail;
            }
            if self.open > self.max_block_bytes {
                return Err(TooLarge(self.open));
            }
            out.extend(
                blocks
                    .into_iter()
                    .filter_map(|b| b.dispatched)
                    .map(|d| d.data),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn all(input: &[u8], cuts: &[usize]) -> Vec<String> {
        let mut r = EventReader::new(1 << 16);
        let mut out = Vec::new();
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.min(input.len()).max(at);
            out.extend(r.feed(&input[at..cut]).unwrap());
            at = cut;
        }
        out.extend(r.feed(&input[at..]).unwrap());
        out
    }

    #[test]
    fn line_endings_comments_names_and_multiline_data() {
        let body = b"\xEF\xBB\xBF: hello\r\n\r\nevent: agui\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata: b\rdata: c\r\rdata:d\n\nid: 7\n\n";
        assert_eq!(all(body, &[]), ["{\"a\":\n1}", "b\nc", "d"]);
        // A CRLF split between chunks is one line end, not two.
        assert_eq!(all(b"data: x\r\n\r\n", &[8]), ["x"]);
        // An unfinished block at the end dispatches nothing.
        assert!(all(b"data: cut off", &[]).is_empty());
    }

    #[test]
    fn an_endless_block_is_refused() {
        let mut r = EventReader::new(64);
        assert!(r.feed(&[b'a'; 40]).is_ok());
        assert_eq!(r.feed(&[b'a'; 40]), Err(TooLarge(80)));
        let mut r = EventReader::new(64);
        let mut long = b"data: ".to_vec();
        long.extend([b'x'; 200]);
        assert!(r.feed(&long).is_err());
        // Many short events in one chunk are fine.
        let mut r = EventReader::new(64);
        let many = b"data: {}\n\n".repeat(100);
        assert_eq!(r.feed(&many).unwrap().len(), 100);
    }

    /// An event stream as an encoder with the given line end writes it.
    fn encode(events: &[String], eol: &str) -> Vec<u8> {
        let mut out = String::new();
        for (i, e) in events.iter().enumerate() {
            if i % 3 == 0 {
                out.push_str(&format!(": keepalive{eol}{eol}"));
            }
            for line in e.split('\n') {
                out.push_str(&format!("data: {line}{eol}"));
            }
            out.push_str(eol);
        }
        out.into_bytes()
    }

    proptest! {
        /// Whatever the line ends and however the stream is cut into chunks, the events come
        /// out whole and in order.
        #[test]
        fn any_line_end_any_chunking(
            events in prop::collection::vec("[a-z{}\":, ]{0,12}(\n[a-z0-9]{1,6}){0,2}", 1..8),
            eol in prop::sample::select(vec!["\n", "\r\n", "\r"]),
            cuts in prop::collection::vec(0usize..400, 0..6),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let body = encode(&events, eol);
            prop_assert_eq!(all(&body, &cuts), events);
        }
    }
}
