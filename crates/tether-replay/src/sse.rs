//! The `text/event-stream` parser the replay engine reads streams with: the spec-following
//! parser of [`tether_core::sse_parse`], whose blocks become this crate's [`Block`] so that the
//! checks can give them tether's meaning ([`Block::frame`]).

use tether_core::sse_parse;

pub use tether_core::sse_parse::Dispatched;

/// One block of fields that ended with a blank line, as they were written (the fields of
/// [`sse_parse::Block`]).
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

impl From<sse_parse::Block> for Block {
    fn from(b: sse_parse::Block) -> Self {
        let sse_parse::Block {
            id,
            event,
            data,
            retry,
            comment,
            comments,
            dispatched,
        } = b;
        Self {
            id,
            event,
            data,
            retry,
            comment,
            comments,
            dispatched,
        }
    }
}

/// The incremental parser. Feed it bytes as they arrive.
#[derive(Debug, Default)]
pub struct Parser(sse_parse::Parser);

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `lastEventId` an `EventSource` would send when it reconnects now.
    pub fn last_event_id(&self) -> &str {
        self.0.last_event_id()
    }

    /// The reconnection time the stream last set, in milliseconds.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.0.reconnection_time()
    }

    /// Parses `bytes` and returns the blocks they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Block> {
        self.0.feed(bytes).into_iter().map(Block::from).collect()
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
    fn blocks_keep_every_field() {
        let b = parse(b": hi\nretry: 5\n\nid: e-1\nevent: x\ndata: 1\ndata: 2\n\n");
        assert_eq!(b[0].comments, ["hi"]);
        assert!(b[0].comment && b[0].dispatched.is_none());
        assert_eq!(b[0].retry, Some(5));
        assert_eq!(b[1].id.as_deref(), Some("e-1"));
        assert_eq!(b[1].event.as_deref(), Some("x"));
        assert_eq!(b[1].data.as_deref(), Some("1\n2"));
        assert_eq!(b[1].dispatched.as_ref().unwrap().last_event_id, "e-1");
    }
}
