//! The SSE parser the checks read streams with: the spec-following parser of
//! [`tether_core::sse_parse`], which keeps everything a check looks at (ids, event names,
//! data, `retry:` fields and comments, block by block).

pub use tether_core::sse_parse::{Block, Dispatched, Parser, parse};
