//! AG-UI in the `agui` scenarios: the agent runs the generator publishes over HTTP
//! ([`AgentRuns`], from `tether_agui::sample`, the runs `tether serve --self-publish-agui`
//! plays in-process), where a received event's publish time is (`"rawEvent":{"ts":N}`), and
//! the checks a reconnecting client makes of what it receives.
//!
//! ```
//! use tether_load::agui::{AgentRuns, raw_event_ts_of};
//!
//! let mut agent = AgentRuns::new(1);
//! let mut event = Vec::new();
//! let more = agent.next_event("thread-1", 1_764_000_000_000_000, &mut event);
//! assert!(event.starts_with(br#"{"type":"RUN_STARTED","threadId":"thread-1""#));
//! assert_eq!(raw_event_ts_of(&event), Some(1_764_000_000_000_000));
//! assert!(!more, "RUN_STARTED is a burst of its own");
//! ```

pub use tether_agui::sample::{AgentRuns, Rng};
use tether_agui::{Event, Message, Verifier};

/// The `ts` inside an event's `"rawEvent":{"ts":N}` (publish time, unix microseconds), found
/// without parsing the whole event.
pub fn raw_event_ts_of(data: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(data, b"\"rawEvent\":")? + 11;
    let rest = data[at..].trim_ascii_start().strip_prefix(b"{")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"ts\"")?;
    let rest = rest.trim_ascii_start().strip_prefix(b":")?;
    crate::sse::leading_unsigned(rest)
}

/// What a client checks of the AG-UI events it receives, one response at a time: each
/// response passes the official client's `verifyEvents` rules on its own (the port in
/// `tether-agui`), and across a reconnect the text of the open message goes on where it
/// stood: the prelude's text of it (or the completed message in its `MESSAGES_SNAPSHOT`)
/// starts with every delta received before, and the live deltas continue it.
#[derive(Debug, Default)]
pub struct AguiCheck {
    verifier: Verifier,
    failed: bool,
    /// The open text message as received: its id and text so far.
    open: Option<(String, String)>,
    /// Responses checked.
    pub responses: u64,
    /// Responses that broke a rule (each counted once).
    pub invalid_responses: u64,
    /// Places where the text received did not continue what was received before.
    pub content_mismatches: u64,
    /// The first rule broken, for the log.
    pub first_error: Option<String>,
}

impl AguiCheck {
    /// A new response begins.
    pub fn new_response(&mut self) {
        self.verifier = Verifier::new();
        self.failed = false;
        self.responses += 1;
    }

    fn fail(&mut self, why: String) {
        if !self.failed {
            self.failed = true;
            self.invalid_responses += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(why);
        }
    }

    fn mismatch(&mut self, why: String) {
        self.content_mismatches += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why);
        }
    }

    /// One data frame; `live` when it has an id (a stored event), not when it is part of a
    /// prelude.
    pub fn on_data(&mut self, data: &[u8], live: bool) {
        let event = match Event::from_slice(data) {
            Ok(event) => event,
            Err(tether_agui::EventError::UnknownType(_)) => return,
            Err(e) => return self.fail(format!("not an AG-UI event: {e}")),
        };
        if !self.failed
            && let Err(e) = self.verifier.feed(&event)
        {
            self.fail(e.to_string());
        }
        match (&event, live) {
            (Event::TextMessageStart(start), true) => {
                self.open = Some((start.message_id.clone(), String::new()));
            }
            (Event::TextMessageStart(start), false) => match &self.open {
                Some((id, _)) if *id == start.message_id => {}
                Some((id, _)) => {
                    let why = format!(
                        "the prelude reopens {} while {id} is open",
                        start.message_id
                    );
                    self.mismatch(why);
                    self.open = Some((start.message_id.clone(), String::new()));
                }
                None => self.open = Some((start.message_id.clone(), String::new())),
            },
            (Event::TextMessageContent(content), live) => {
                let why = match &mut self.open {
                    Some((id, text)) if *id == content.message_id => {
                        let continues = live || content.delta.starts_with(text.as_str());
                        if live {
                            text.push_str(&content.delta);
                        } else {
                            // The prelude carries the whole text so far.
                            text.clone_from(&content.delta);
                        }
                        (!continues).then(|| {
                            format!(
                                "the prelude's text of {id} does not continue what was received"
                            )
                        })
                    }
                    _ => Some(format!(
                        "a delta for {} outside its message",
                        content.message_id
                    )),
                };
                if let Some(why) = why {
                    self.mismatch(why);
                }
            }
            (Event::TextMessageEnd(_), _) => self.open = None,
            (Event::MessagesSnapshot(snapshot), false) => {
                // The open message may have ended while the client was away.
                let Some((id, text)) = &self.open else {
                    return;
                };
                let done = snapshot.messages.iter().find_map(|m| match m {
                    Message::Assistant(a) if a.id == *id => {
                        Some(a.content.as_deref().unwrap_or(""))
                    }
                    _ => None,
                });
                if let Some(content) = done {
                    if !content.starts_with(text.as_str()) {
                        let why = format!(
                            "the snapshot's text of {id} does not continue what was received"
                        );
                        self.mismatch(why);
                    }
                    self.open = None;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_event_timestamps() {
        assert_eq!(
            raw_event_ts_of(br#"{"type":"X","rawEvent": { "ts" : 17 }}"#),
            Some(17)
        );
        assert_eq!(raw_event_ts_of(br#"{"ts":5}"#), None);
        assert_eq!(raw_event_ts_of(br#"{"rawEvent":{"n":5}}"#), None);
    }

    fn data(e: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(e).unwrap()
    }

    #[test]
    fn the_check_follows_text_across_a_prelude() {
        use serde_json::json;
        let mut check = AguiCheck::default();
        check.new_response();
        let start = json!({"type":"RUN_STARTED","threadId":"t","runId":"r"});
        check.on_data(&data(&start), true);
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_START","messageId":"m","role":"assistant"})),
            true,
        );
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"Hel"})),
            true,
        );
        // A reconnect: the prelude carries the text so far, then live deltas go on.
        check.new_response();
        check.on_data(&data(&start), false);
        check.on_data(
            &data(&json!({"type":"MESSAGES_SNAPSHOT","messages":[]})),
            false,
        );
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_START","messageId":"m","role":"assistant"})),
            false,
        );
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"Hello"})),
            false,
        );
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":", you"})),
            true,
        );
        assert_eq!(
            (check.invalid_responses, check.content_mismatches),
            (0, 0),
            "{check:?}"
        );
        // A prelude whose text drops what was received is a mismatch; a response that
        // starts mid-run breaks the client's rules.
        check.new_response();
        check.on_data(&data(&start), false);
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_START","messageId":"m","role":"assistant"})),
            false,
        );
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"Help"})),
            false,
        );
        assert_eq!(check.content_mismatches, 1);
        check.new_response();
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"!"})),
            true,
        );
        assert_eq!((check.responses, check.invalid_responses), (4, 1));
        // The message ended while away: the snapshot holds it whole.
        let mut check = AguiCheck::default();
        check.new_response();
        check.on_data(&data(&start), true);
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_START","messageId":"m","role":"assistant"})),
            true,
        );
        check.on_data(
            &data(&json!({"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"Hi"})),
            true,
        );
        check.new_response();
        check.on_data(
            &data(&json!({"type":"RUN_STARTED","threadId":"t","runId":"r2"})),
            false,
        );
        let snapshot = json!({"type":"MESSAGES_SNAPSHOT","messages":[{"role":"assistant","id":"m","content":"Hi there"}]});
        check.on_data(&data(&snapshot), false);
        check.on_data(
            &data(&json!({"type":"RUN_FINISHED","threadId":"t","runId":"r2"})),
            false,
        );
        assert_eq!(
            (check.invalid_responses, check.content_mismatches),
            (0, 0),
            "{check:?}"
        );
    }
}
