//! Reading a transcript from JSON Lines.
//!
//! The wire format has a few shapes serde alone does not take (the `config` line, `at_ms`
//! beside the step's fields, `event` for a one-event `publish`); this module turns each line
//! into a [`Step`] and names the line of every error.

use std::fmt;

use serde_json::{Map, Value};

use super::{Action, SERVER_SETTINGS, Step, Transcript};

/// A transcript line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// One line read: the settings of the `config` line or a step.
enum Line {
    Config(Map<String, Value>),
    Step(Step),
}

impl Transcript {
    /// Reads a transcript from JSON Lines. Blank lines and lines starting with `#` are
    /// skipped; the first other line may be the `config` line.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut t = Self::default();
        let mut first = true;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |message: String| ParseError { line, message };
            match parse_line(trimmed, line).map_err(err)? {
                Line::Config(_) if !first => {
                    return Err(err("the config line must come first".into()));
                }
                Line::Config(map) => {
                    t.stated = map
                        .keys()
                        .filter(|k| SERVER_SETTINGS.contains(&k.as_str()))
                        .cloned()
                        .collect();
                    t.settings = serde_json::from_value(Value::Object(map))
                        .map_err(|e| err(format!("config: {e}")))?;
                }
                Line::Step(step) => t.steps.push(step),
            }
            first = false;
        }
        Ok(t)
    }
}

/// Reads one line (`line` is its number, for the step it becomes).
fn parse_line(text: &str, line: usize) -> Result<Line, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut map) = value else {
        return Err("each line must be a JSON object".into());
    };
    let op = map
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| "missing \"op\"".to_owned())?
        .to_owned();
    if op == "config" {
        map.remove("op");
        return Ok(Line::Config(map));
    }
    let at_ms = match map.remove("at_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| "at_ms must be a non-negative integer".to_owned())?,
        ),
    };
    if op == "publish" {
        one_event_as_a_batch(&mut map)?;
    }
    let action: Action =
        serde_json::from_value(Value::Object(map)).map_err(|e| format!("{op}: {e}"))?;
    check_publish(&action)?;
    Ok(Line::Step(Step {
        at_ms,
        action,
        line,
    }))
}

/// A `publish` line's `"event": {...}` as `"events": [{...}]`.
fn one_event_as_a_batch(map: &mut Map<String, Value>) -> Result<(), String> {
    match (map.remove("event"), map.contains_key("events")) {
        (Some(e), false) => {
            map.insert("events".into(), Value::Array(vec![e]));
            Ok(())
        }
        (None, true) => Ok(()),
        _ => Err("publish takes exactly one of \"event\" and \"events\"".into()),
    }
}

/// What serde cannot say of a `publish` step: it publishes something, and `pad_bytes` pads
/// objects.
fn check_publish(action: &Action) -> Result<(), String> {
    if let Action::Publish {
        events, pad_bytes, ..
    } = action
    {
        if events.is_empty() {
            return Err("publish: \"events\" is empty".into());
        }
        if pad_bytes.is_some() && !events.iter().all(Value::is_object) {
            return Err("publish: pad_bytes needs events that are objects".into());
        }
    }
    Ok(())
}
