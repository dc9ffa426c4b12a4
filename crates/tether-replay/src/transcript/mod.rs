//! The transcript format: JSON Lines, one step per line.
//!
//! See the [crate docs](crate#the-transcript-format) and `TRANSCRIPTS.md` for the format.
//! The [`Transcript`] and its builder are here; the steps' types are in `action`, the
//! settings in `settings`, and reading and writing JSON Lines in `parse` and `write`.

mod action;
mod parse;
mod settings;
mod write;

use std::collections::BTreeSet;

use serde_json::Value;

pub use action::{Action, DecideExpect, Match, Outcome, Step};
pub use parse::ParseError;
pub use settings::{Policy, SERVER_SETTINGS, SettingMismatch, Settings};

/// A transcript: settings and steps. Build one in code (each method appends a step), parse
/// one with [`Transcript::parse`], write one with [`Transcript::to_jsonl`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    /// The settings (the `config` line).
    pub settings: Settings,
    /// The server settings (of [`SERVER_SETTINGS`]) the `config` line names: with those set
    /// to a value other than the default, the settings a server must have for this
    /// transcript ([`Transcript::server_needs`]).
    pub stated: BTreeSet<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Transcript {
    /// An empty transcript with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server settings this transcript needs: those its config line names and those
    /// set to a value other than the default, in the order of [`SERVER_SETTINGS`].
    pub fn server_needs(&self) -> Vec<&'static str> {
        let default = Settings::default();
        SERVER_SETTINGS
            .into_iter()
            .filter(|n| {
                self.stated.contains(*n)
                    || self.settings.server_value(n, 1.0) != default.server_value(n, 1.0)
            })
            .collect()
    }

    /// Compares the settings a server reports (the `"settings"` object of `/health/sse`)
    /// with those this transcript needs ([`Transcript::server_needs`]), its durations
    /// multiplied by `time_scale`. Returns every difference.
    pub fn compare_settings(&self, server: &Value, time_scale: f64) -> Vec<SettingMismatch> {
        self.server_needs()
            .into_iter()
            .filter_map(|name| {
                let needed = self.settings.server_value(name, time_scale)?;
                let has = server.get(name);
                (has != Some(&needed)).then(|| SettingMismatch {
                    name,
                    written: self.settings.server_value(name, 1.0).unwrap_or_default(),
                    needed,
                    server: has.cloned(),
                })
            })
            .collect()
    }

    /// Appends a step.
    pub fn push(&mut self, step: Step) -> &mut Self {
        self.steps.push(step);
        self
    }

    /// Appends a step that runs right after the previous one.
    #[must_use]
    pub fn then(mut self, action: Action) -> Self {
        self.steps.push(Step::new(action));
        self
    }

    /// Appends a step that runs at `ms` since the start.
    #[must_use]
    pub fn at(mut self, ms: u64, action: Action) -> Self {
        self.steps.push(Step::new(action).at(ms));
        self
    }

    /// Replaces the settings.
    #[must_use]
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Appends: publish one event.
    #[must_use]
    pub fn publish(self, session: &str, event: Value) -> Self {
        self.then(Action::Publish {
            session: session.into(),
            events: vec![event],
            name: None,
            pad_bytes: None,
        })
    }

    /// Appends: a fresh client connects.
    #[must_use]
    pub fn connect(self, client: &str, session: &str) -> Self {
        self.then(Action::Connect {
            client: client.into(),
            session: session.into(),
            resume: false,
            last_event_id: None,
            client_id: None,
        })
    }

    /// Appends: the client reconnects with the last id it saw.
    #[must_use]
    pub fn resume(self, client: &str, session: &str) -> Self {
        self.then(Action::Connect {
            client: client.into(),
            session: session.into(),
            resume: true,
            last_event_id: None,
            client_id: None,
        })
    }

    /// Appends: the client closes its connection.
    #[must_use]
    pub fn drop_client(self, client: &str) -> Self {
        self.then(Action::Drop {
            client: client.into(),
        })
    }

    /// Appends: the client stops reading for `ms`.
    #[must_use]
    pub fn stall(self, client: &str, ms: u64) -> Self {
        self.then(Action::Stall {
            client: client.into(),
            ms,
        })
    }

    /// Appends: time passes.
    #[must_use]
    pub fn advance(self, ms: u64) -> Self {
        self.then(Action::Advance { ms })
    }

    /// Appends: expect these events next, exactly.
    #[must_use]
    pub fn expect_events(self, client: &str, events: impl IntoIterator<Item = Value>) -> Self {
        self.then(Action::ExpectEvents {
            client: client.into(),
            events: events.into_iter().collect(),
            mode: Match::Exact,
            within_ms: None,
        })
    }

    /// Appends: expect a resync (with this reason, if given).
    #[must_use]
    pub fn expect_resync(self, client: &str, reason: Option<&str>) -> Self {
        self.then(Action::ExpectResync {
            client: client.into(),
            reason: reason.map(Into::into),
            within_ms: None,
        })
    }

    /// Appends: expect the client's stream to end.
    #[must_use]
    pub fn expect_ended(self, client: &str, superseded: Option<bool>) -> Self {
        self.then(Action::ExpectEnded {
            client: client.into(),
            superseded,
            within_ms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let text = r#"
# a comment
{"op":"config","ring_max_events":4}
{"at_ms":0,"op":"publish","session":"s","event":{"n":1}}
{"op":"publish","session":"s","events":[{"n":2},{"n":3}],"name":"progress"}
{"at_ms":10,"op":"connect","client":"c","session":"s","resume":true}
{"op":"expect_events","client":"c","events":[{"n":1}],"match":"subset"}
{"op":"decide","session":"s","approval":"a","approved":true,"expect":"already_decided"}
"#;
        let t = Transcript::parse(text).unwrap();
        assert_eq!(t.settings.ring_max_events, 4);
        assert_eq!(t.steps.len(), 5);
        assert_eq!(t.steps[0].line, 4);
        let again = Transcript::parse(&t.to_jsonl()).unwrap();
        let strip = |t: &Transcript| -> Vec<(Option<u64>, Action)> {
            t.steps
                .iter()
                .map(|s| (s.at_ms, s.action.clone()))
                .collect()
        };
        assert_eq!(strip(&t), strip(&again));
        assert_eq!(t.settings, again.settings);
        assert!(
            t.to_jsonl()
                .contains(r#"{"at_ms":0,"op":"publish","event":{"n":1},"session":"s"}"#)
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = Transcript::parse("{\"op\":\"publish\",\"session\":\"s\"}").unwrap_err();
        assert_eq!(e.line, 1);
        let e = Transcript::parse("\n{\"op\":\"drop\",\"client\":\"c\",\"typo\":1}").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("typo"), "{e}");
        let e = Transcript::parse("{\"op\":\"drop\",\"client\":\"c\"}\n{\"op\":\"config\"}")
            .unwrap_err();
        assert!(e.message.contains("first"));
        assert!(Transcript::parse("[1]").is_err());
        let e = Transcript::parse(r#"{"op":"publish","session":"s","event":1,"pad_bytes":9}"#)
            .unwrap_err();
        assert!(e.message.contains("objects"), "{e}");
        assert!(Transcript::parse("{\"op\":\"nope\"}").is_err());
    }

    #[test]
    fn the_config_line_states_the_server_settings_a_transcript_needs() {
        let t = Transcript::parse(
            r#"{"op":"config","ring_max_events":8,"keepalive_ms":15000,"silence_tolerance_ms":5}"#,
        )
        .unwrap();
        // Stated ones, even at their default (keepalive); the checker's own field is not one.
        assert_eq!(t.server_needs(), ["ring_max_events", "keepalive_ms"]);
        assert!(Transcript::new().server_needs().is_empty());
        let in_code = Transcript::new().with_settings(Settings {
            connection_policy: Policy::Reject,
            ..Settings::default()
        });
        assert_eq!(in_code.server_needs(), ["connection_policy"]);

        let server = json!({"ring_max_events": 1024, "keepalive_ms": 15000});
        let diff = t.compare_settings(&server, 1.0);
        assert_eq!(diff.len(), 1);
        assert_eq!(
            diff[0].to_string(),
            "ring_max_events: transcript needs 8, server has 1024"
        );
        let server = json!({"ring_max_events": 8, "keepalive_ms": null});
        let diff = t.compare_settings(&server, 0.1);
        assert_eq!(
            diff[0].to_string(),
            "keepalive_ms: transcript needs 1500 (15000 in transcript time), server has null"
        );
        assert!(
            t.compare_settings(&json!({"ring_max_events": 8, "keepalive_ms": 1500}), 0.1)
                .is_empty()
        );
        assert_eq!(
            t.compare_settings(&json!({}), 1.0)[0].to_string(),
            "ring_max_events: transcript needs 8, server does not report it"
        );
        // What is stated survives the writer, defaults included.
        let again = Transcript::parse(&t.to_jsonl()).unwrap();
        assert_eq!(again.stated, t.stated);
    }

    #[test]
    fn builder() {
        let t = Transcript::new()
            .publish("s", json!({"n": 1}))
            .connect("c", "s")
            .expect_events("c", [json!({"n": 1})]);
        assert_eq!(t.steps.len(), 3);
        assert_eq!(t.steps[2].action.op(), "expect_events");
    }
}
