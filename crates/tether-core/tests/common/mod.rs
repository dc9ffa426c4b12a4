//! Helpers shared by the integration tests: a broker on the current runtime, the SSE
//! parser, and stream reading with bounded waits.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tether_core::{Broker, BrokerBuilder, EventStream, SessionId};

pub fn sid(s: &str) -> SessionId {
    SessionId::new(s).unwrap()
}

pub fn start(builder: BrokerBuilder) -> Broker {
    builder.start().expect("valid config")
}

pub use tether_core::sse_parse::Block as Frame;

/// Parses the complete frames of `text` with the crate's spec-following parser (an
/// unterminated last frame is dropped).
pub fn parse(text: &str) -> Vec<Frame> {
    tether_core::sse_parse::parse(text.as_bytes())
}

/// Reads the next chunk, or `None` if nothing arrives within `wait` (on a paused clock the
/// wait passes instantly once the runtime is idle).
pub async fn next_within(stream: &mut EventStream, wait: Duration) -> Option<Option<Bytes>> {
    tokio::time::timeout(wait, stream.next()).await.ok()
}

/// Reads chunks until nothing arrives for `quiet`, returning the parsed frames and whether the
/// stream ended.
pub async fn drain_frames(stream: &mut EventStream, quiet: Duration) -> (Vec<Frame>, bool) {
    let mut text = String::new();
    let mut ended = false;
    for _ in 0..10_000 {
        match next_within(stream, quiet).await {
            Some(Some(b)) => text.push_str(std::str::from_utf8(&b).unwrap()),
            Some(None) => {
                ended = true;
                break;
            }
            None => break,
        }
    }
    (parse(&text), ended)
}

/// The data frames with ids (stored events) among `frames`, as (seq, json).
pub fn stored(frames: &[Frame]) -> Vec<(u64, serde_json::Value)> {
    frames
        .iter()
        .filter(|f| f.data.is_some() && f.id.is_some())
        .map(|f| {
            let seq =
                f.id.as_ref()
                    .unwrap()
                    .rsplit('-')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
            (seq, f.json().unwrap())
        })
        .collect()
}

pub const QUIET: Duration = Duration::from_millis(10);
