//! Helpers shared by the integration tests: a broker on the current runtime, a small SSE
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

/// One parsed SSE frame (fields as a conforming parser would see them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<u64>,
    pub comment: bool,
}

impl Frame {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.data.as_deref().expect("a data frame")).expect("JSON data")
    }
    /// The `name` of a CUSTOM signal frame, if this is one.
    pub fn signal(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(self.data.as_deref()?).ok()?;
        (v["type"] == "CUSTOM").then(|| v["name"].as_str().unwrap_or_default().to_owned())
    }
}

/// Parses complete frames out of `buf` (LF line endings, as tether writes them).
pub fn parse(text: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut cur = Frame::default();
    let mut any = false;
    for line in text.split('\n') {
        if line.is_empty() {
            if any {
                if let Some(d) = cur.data.as_mut() {
                    d.pop();
                }
                frames.push(std::mem::take(&mut cur));
            }
            any = false;
            continue;
        }
        any = true;
        if line.starts_with(':') {
            cur.comment = true;
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => cur.id = Some(value.to_owned()),
            "event" => cur.event = Some(value.to_owned()),
            "retry" => cur.retry = value.parse().ok(),
            "data" => {
                let d = cur.data.get_or_insert_with(String::new);
                d.push_str(value);
                d.push('\n');
            }
            _ => {}
        }
    }
    frames
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
            (seq, f.json())
        })
        .collect()
}

pub const QUIET: Duration = Duration::from_millis(10);
