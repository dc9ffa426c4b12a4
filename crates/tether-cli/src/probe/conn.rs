//! One stream connection: a task of its own reads it and stamps every arrival as it happens,
//! and [`classify`] tells the probe what each block of the stream is.

use std::time::Duration;

use serde_json::Value;
use tether_replay::sse::{Block, Parser};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::http::{self, Base, End, HttpError, Read, Stream};

/// What one stream connection reported, each stamped when it happened.
#[derive(Debug)]
pub(super) enum Obs {
    /// No response: the connection or the request failed.
    OpenFailed(HttpError),
    /// A response other than 200, with (the start of) its body.
    Refused { status: u16, body: String },
    /// The 200 response head.
    Head {
        at: Instant,
        headers: Vec<(String, String)>,
    },
    /// Bytes arrived.
    Bytes { at: Instant },
    /// A block of the event stream was complete.
    Block { at: Instant, block: Block },
    /// The body ended.
    End { at: Instant, how: End },
}

/// One stream connection, read by its own task so that every arrival is stamped as it
/// happens, whatever the probe is doing meanwhile. Dropping it closes the connection.
pub(super) struct Conn {
    rx: mpsc::UnboundedReceiver<Obs>,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Conn {
    pub(super) fn open(base: Base, path: String, headers: Vec<(&'static str, String)>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut s =
                match Stream::open(&base, &path, &headers, Duration::from_secs(86_400)).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Obs::OpenFailed(e));
                        return;
                    }
                };
            if s.status != 200 {
                let mut body = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(2);
                while body.len() < 1024 {
                    match timeout_at(deadline, s.read()).await {
                        Ok(Read::Bytes { decoded, .. }) => body.extend(decoded),
                        _ => break,
                    }
                }
                let _ = tx.send(Obs::Refused {
                    status: s.status,
                    body: http::snippet(&String::from_utf8_lossy(&body), 160),
                });
                return;
            }
            let _ = tx.send(Obs::Head {
                at: s.head_at,
                headers: s.headers.clone(),
            });
            let mut parser = Parser::new();
            loop {
                match s.read().await {
                    Read::Bytes { at, decoded } => {
                        if tx.send(Obs::Bytes { at }).is_err() {
                            return;
                        }
                        for block in parser.feed(&decoded) {
                            let _ = tx.send(Obs::Block { at, block });
                        }
                    }
                    Read::End { at, how } => {
                        let _ = tx.send(Obs::End { at, how });
                        return;
                    }
                }
            }
        });
        Self { rx, task }
    }

    /// An observation the reader has already made, without waiting for one.
    pub(super) fn try_next(&mut self) -> Option<Obs> {
        self.rx.try_recv().ok()
    }
}

/// Waits for the next observation of `conn`; never resolves without a connection.
pub(super) async fn next_obs(conn: &mut Option<Conn>) -> Option<Obs> {
    match conn {
        Some(c) => c.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What a block of the stream is to the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// One of the probe's own events, by number.
    Probe(u64),
    /// A `tether.resync`, with its reason.
    Resync(String),
    /// Another `tether.*` signal.
    Signal(String),
    /// A comment or an event without an id that is not a signal: a heartbeat.
    Heartbeat,
    /// A block with only a `retry:` field.
    Retry,
    /// Anything else (someone else's event, an id-only block).
    Other(String),
}

pub(super) fn classify(block: &Block, nonce: &str) -> Kind {
    let Some(data) = &block.data else {
        return if block.comment {
            Kind::Heartbeat
        } else if block.retry.is_some() && block.id.is_none() {
            Kind::Retry
        } else {
            Kind::Other("an id-only block".to_owned())
        };
    };
    let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    if v["probe"] == nonce
        && let Some(n) = v["n"].as_u64()
    {
        return Kind::Probe(n);
    }
    if v["type"] == "CUSTOM"
        && let Some(name) = v["name"].as_str().filter(|n| n.starts_with("tether."))
    {
        if name == "tether.resync" {
            return Kind::Resync(v["value"]["reason"].as_str().unwrap_or("?").to_owned());
        }
        return Kind::Signal(name.to_owned());
    }
    if block.id.is_none() {
        return Kind::Heartbeat;
    }
    Kind::Other(format!("event {}", http::snippet(data, 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(id: Option<&str>, data: Option<&str>, comment: bool, retry: Option<u64>) -> Block {
        Block {
            id: id.map(str::to_owned),
            data: data.map(str::to_owned),
            comment,
            retry,
            ..Block::default()
        }
    }

    #[test]
    fn blocks_are_told_apart() {
        let n = "abc";
        let probe = r#"{"type":"tether.probe","probe":"abc","n":7}"#;
        assert_eq!(
            classify(&block(Some("e-7"), Some(probe), false, None), n),
            Kind::Probe(7)
        );
        let other = r#"{"type":"tether.probe","probe":"xyz","n":7}"#;
        assert!(matches!(
            classify(&block(Some("e-7"), Some(other), false, None), n),
            Kind::Other(_)
        ));
        let resync = r#"{"type":"CUSTOM","name":"tether.resync","value":{"reason":"evicted"}}"#;
        assert_eq!(
            classify(&block(None, Some(resync), false, None), n),
            Kind::Resync("evicted".into())
        );
        assert_eq!(classify(&block(None, None, true, None), n), Kind::Heartbeat);
        assert_eq!(
            classify(&block(None, Some("{}"), false, None), n),
            Kind::Heartbeat
        );
        assert_eq!(
            classify(&block(None, None, false, Some(3000)), n),
            Kind::Retry
        );
    }
}
