//! A whole response body through the official client's pipeline: its SSE
//! framing, its event check and the sequence rules of [`Verifier`].

use serde_json::Value;

use super::{Verifier, VerifyError};
use crate::events::{Event, is_agui_type};

/// Why a response body fails the client's pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A `data:` document is not JSON, not an object, or has no string `type`
    /// (the transport stage).
    #[error("frame {frame}: {message}")]
    Transport {
        /// The position of the frame among the body's frames.
        frame: usize,
        /// What is wrong.
        message: String,
    },
    /// An event of a known type does not match its schema (`enforceEvents`).
    #[error("frame {frame}: {message}")]
    Schema {
        /// The position of the frame.
        frame: usize,
        /// What is wrong.
        message: String,
    },
    /// An event breaks the sequence rules (`verifyEvents`).
    #[error("frame {frame}: {error}")]
    Sequence {
        /// The position of the frame.
        frame: usize,
        /// The rule broken.
        error: VerifyError,
    },
}

/// Splits an SSE body into the `data` documents the client parses: frames are
/// cut at `\n\n`, lines starting with `data:` are kept (one following space
/// dropped) and joined with `\n`; a frame without a `data:` line yields
/// nothing. The unterminated tail counts as a last frame.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::new();
    for frame in text.split("\n\n") {
        let mut data: Option<String> = None;
        for line in frame.split('\n') {
            if let Some(rest) = line.strip_prefix("data:") {
                let rest = rest.strip_prefix(' ').unwrap_or(rest);
                match data.as_mut() {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(rest);
                    }
                    None => data = Some(rest.to_owned()),
                }
            }
        }
        out.extend(data);
    }
    out
}

/// Runs a response body through the client's SSE framing, its event check and
/// the sequence rules; returns how many events reached the verifier. Frames
/// whose `type` is not a 1.0 type are dropped, as the client drops them.
pub fn verify_sse(body: &[u8]) -> Result<usize, StreamError> {
    let mut verifier = Verifier::new();
    let mut count = 0;
    for (frame, data) in sse_data(body).into_iter().enumerate() {
        let value: Value = serde_json::from_str(&data).map_err(|e| StreamError::Transport {
            frame,
            message: format!("not JSON: {e}"),
        })?;
        let type_name = match value.as_object().map(|o| o.get("type")) {
            Some(Some(Value::String(t))) if !t.is_empty() => t.clone(),
            Some(_) => {
                return Err(StreamError::Transport {
                    frame,
                    message: "Invalid event: the frame carries no event type.".into(),
                });
            }
            None => {
                return Err(StreamError::Transport {
                    frame,
                    message: "Invalid event: the frame is not a JSON object.".into(),
                });
            }
        };
        if !is_agui_type(&type_name) {
            continue;
        }
        let event = Event::from_value(value).map_err(|e| StreamError::Schema {
            frame,
            message: e.to_string(),
        })?;
        verifier
            .feed(&event)
            .map_err(|error| StreamError::Sequence { frame, error })?;
        count += 1;
    }
    Ok(count)
}
