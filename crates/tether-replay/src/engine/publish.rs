//! The `publish` step: sends events to a session and logs the ids the server gave them.
//!
//! The log of what was published under which id is what the checker compares every
//! received event with, so this step is the source of truth for content.

use serde_json::Value;

use super::Engine;
use crate::driver::Driver;
use crate::log::Published;
use crate::report::Rule;

impl<D: Driver> Engine<'_, D> {
    /// Publishes `events` (each with a `"pad"` field of `pad_bytes` characters, if given).
    pub(super) async fn publish(
        &mut self,
        i: usize,
        session: &str,
        events: &[Value],
        name: Option<&str>,
        pad_bytes: Option<usize>,
    ) -> String {
        let padded;
        let events = match pad_bytes {
            Some(n) => {
                padded = pad(events, n);
                &padded
            }
            None => events,
        };
        match self.driver.publish(session, events, name).await {
            Ok(ids) => {
                if ids.len() != events.len() {
                    self.violation(
                        Rule::Step,
                        i,
                        None,
                        format!("published {} events, got {} ids", events.len(), ids.len()),
                    );
                }
                let note = format!("{session}: {} event(s) -> {}", events.len(), ids.join(", "));
                self.shared.update(|log| {
                    for (id, data) in ids.into_iter().zip(events) {
                        log.publishes.push(Published {
                            step: i,
                            session: session.to_owned(),
                            id,
                            data: data.clone(),
                            name: name.map(Into::into),
                        });
                    }
                });
                note
            }
            Err(e) => {
                self.violation(Rule::Step, i, None, format!("the publish was refused: {e}"));
                format!("{session}: refused")
            }
        }
    }
}

/// The events with a `"pad"` field of `n` characters each (see `publish`'s `pad_bytes`).
fn pad(events: &[Value], n: usize) -> Vec<Value> {
    let text = "x".repeat(n);
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Value::Object(m) = &mut e {
                m.insert("pad".into(), Value::String(text.clone()));
            }
            e
        })
        .collect()
}
