//! The `text/event-stream` parser the replay engine reads streams with: the spec-following
//! parser of [`tether_core::sse_parse`], re-exported; the checks give its blocks tether's
//! meaning through [`TetherFrame`](crate::log::TetherFrame).

pub use tether_core::sse_parse::{Block, Dispatched, Parser, parse};

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
