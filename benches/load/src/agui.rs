//! AG-UI agent runs: the events the generator publishes over HTTP in the `agui` scenarios
//! (the runs `tether serve --self-publish-agui` plays in-process), and the checks a
//! reconnecting client makes of what it receives.
//!
//! A run is `RUN_STARTED`, `TEXT_MESSAGE_START`, 20 to 80 `TEXT_MESSAGE_CONTENT` deltas of 5
//! to 40 bytes in bursts of 1 to 8, `TEXT_MESSAGE_END`, a tool call attached to the message
//! (`TOOL_CALL_START`, 2 to 5 `TOOL_CALL_ARGS` deltas, one burst, that join into a JSON
//! object, `TOOL_CALL_END`) and `RUN_FINISHED`; the next run has fresh ids. Every event
//! carries its publish time in unix microseconds as `"rawEvent":{"ts":N}`: `rawEvent` takes
//! any JSON, and both the AG-UI tracker and the official client keep it (an unknown top-level
//! `ts` would be stripped by the client, and `timestamp` is milliseconds).
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

use std::io::Write as _;

use tether_agui::{Event, Message, Verifier};

/// A small, fast pseudo-random sequence (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A sequence that follows from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x005e_ed0f_a9e7)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }

    /// A number in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "the",
    "stream",
    "agent",
    "returns",
    "a",
    "summary",
    "of",
    "three",
    "documents",
    "and",
    "cites",
    "each",
    "source",
    "before",
    "calling",
    "search",
    "tool",
    "with",
    "query",
    "results",
    "show",
    "that",
    "latency",
    "stays",
    "low",
    "under",
    "load,",
    "so",
    "we",
    "can",
    "continue.",
    "Next,",
    "it",
    "checks",
    "weather",
    "for",
    "Lisbon",
    "tomorrow",
    "morning.",
];

const TOOLS: &[&str] = &["search_docs", "get_weather", "run_sql", "read_file"];

/// Fewest and most text deltas per run.
pub const DELTAS: (u32, u32) = (20, 80);
/// Shortest and longest text delta, in bytes.
pub const DELTA_BYTES: (u32, u32) = (5, 40);
/// Fewest and most deltas per burst.
pub const BURST: (u32, u32) = (1, 8);
/// Fewest and most tool-call argument deltas.
pub const ARGS_DELTAS: (u32, u32) = (2, 5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before a run; `recover`: end whatever run the session may have open first.
    Start {
        recover: bool,
    },
    TextStart,
    /// `left` deltas in the message, `burst` of them in this burst.
    Text {
        left: u32,
        burst: u32,
    },
    TextEnd,
    ToolStart,
    ToolArgs,
    ToolEnd,
    Finish,
}

/// One session's agent: the run it is in and what comes next, one event at a time.
#[derive(Debug, Clone)]
pub struct AgentRuns {
    rng: Rng,
    stage: Stage,
    run_id: String,
    message_id: String,
    tool_call_id: String,
    tool: &'static str,
    /// The tool call's arguments still to send, in order.
    args: Vec<String>,
    /// The message's text past the last delta (the rest of a word).
    text: String,
    runs: u64,
}

/// Appends `s` as a JSON string.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.bytes() {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            c if c < b' ' => {
                let _ = write!(out, "\\u{c:04x}");
            }
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// `{"type":"TY"`, the fields, then `,"rawEvent":{"ts":TS}}`.
fn event(out: &mut Vec<u8>, ty: &str, fields: &[(&str, &str)], ts: u64) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(ty.as_bytes());
    out.push(b'"');
    for (name, value) in fields {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        push_str(out, value);
    }
    out.extend_from_slice(b",\"rawEvent\":{\"ts\":");
    out.extend_from_slice(itoa::Buffer::new().format(ts).as_bytes());
    out.extend_from_slice(b"}}");
}

impl AgentRuns {
    /// An agent whose runs follow from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            stage: Stage::Start { recover: false },
            run_id: String::new(),
            message_id: String::new(),
            tool_call_id: String::new(),
            tool: TOOLS[0],
            args: Vec::new(),
            text: String::new(),
            runs: 0,
        }
    }

    /// Runs started so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// After a failed publish: the next event ends whatever run the session may have open
    /// with `RUN_ERROR`, then a fresh run starts.
    pub fn restart(&mut self) {
        self.stage = Stage::Start { recover: true };
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        format!("{prefix}_{:016x}", self.rng.next_u64())
    }

    /// Whole words (ASCII), at least `bytes` bytes of them.
    fn word_run(&mut self, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes + 12);
        while s.len() < bytes {
            if !s.is_empty() {
                // A line break now and then, as a model writes them.
                s.push(if self.rng.next_u64().is_multiple_of(24) {
                    '\n'
                } else {
                    ' '
                });
            }
            s.push_str(self.rng.pick(WORDS));
        }
        s
    }

    /// Words cut to exactly `bytes` bytes.
    fn words(&mut self, bytes: usize) -> String {
        let mut s = self.word_run(bytes);
        s.truncate(bytes);
        s
    }

    /// The next `bytes` bytes of the message's text: words, one after the other across
    /// deltas, as a model streams them.
    fn take_text(&mut self, bytes: usize) -> String {
        while self.text.len() < bytes {
            let more = self.word_run(bytes);
            if !self.text.is_empty() {
                self.text.push(' ');
            }
            self.text.push_str(&more);
        }
        let rest = self.text.split_off(bytes);
        std::mem::replace(&mut self.text, rest)
    }

    /// The tool call's arguments, a JSON object, cut into 2 to 5 pieces.
    fn cut_args(&mut self) -> Vec<String> {
        let len = self.rng.range(8, 30) as usize;
        let query = self.words(len);
        let mut args = Vec::from(&b"{\"query\":"[..]);
        push_str(&mut args, &query);
        let _ = write!(args, ",\"limit\":{}}}", self.rng.range(1, 20));
        let args = String::from_utf8(args).expect("ASCII");
        let pieces = self.rng.range(ARGS_DELTAS.0, ARGS_DELTAS.1) as usize;
        let mut cuts: Vec<usize> = Vec::with_capacity(pieces);
        while cuts.len() < pieces - 1 {
            // The arguments are ASCII: every place is a character boundary.
            let at = 1 + (self.rng.next_u64() % (args.len() as u64 - 1)) as usize;
            if !cuts.contains(&at) {
                cuts.push(at);
            }
        }
        cuts.sort_unstable();
        cuts.push(args.len());
        let mut from = 0;
        let mut out: Vec<String> = cuts
            .into_iter()
            .map(|to| {
                let piece = args[from..to].to_owned();
                from = to;
                piece
            })
            .collect();
        out.reverse();
        out
    }

    /// Appends the next event of the run of thread `thread_id` to `out`, carrying `ts`
    /// (unix microseconds); true when the next event belongs to the same burst (text deltas
    /// come in bursts of 1 to 8, the tool call's arguments in one, everything else alone).
    pub fn next_event(&mut self, thread_id: &str, ts: u64, out: &mut Vec<u8>) -> bool {
        match self.stage {
            Stage::Start { recover: true } => {
                let message = "the load generator restarted the run";
                event(out, "RUN_ERROR", &[("message", message)], ts);
                self.stage = Stage::Start { recover: false };
            }
            Stage::Start { recover: false } => {
                self.runs += 1;
                self.run_id = self.fresh_id("run");
                self.message_id = self.fresh_id("msg");
                self.tool_call_id = self.fresh_id("call");
                self.tool = self.rng.pick(TOOLS);
                let fields = [("threadId", thread_id), ("runId", self.run_id.as_str())];
                event(out, "RUN_STARTED", &fields, ts);
                self.stage = Stage::TextStart;
            }
            Stage::TextStart => {
                let fields = [("messageId", &*self.message_id), ("role", "assistant")];
                event(out, "TEXT_MESSAGE_START", &fields, ts);
                self.text.clear();
                let left = self.rng.range(DELTAS.0, DELTAS.1);
                let burst = self.rng.range(BURST.0, BURST.1).min(left);
                self.stage = Stage::Text { left, burst };
            }
            Stage::Text { left, burst } => {
                let len = self.rng.range(DELTA_BYTES.0, DELTA_BYTES.1) as usize;
                let delta = self.take_text(len);
                let fields = [("messageId", &*self.message_id), ("delta", delta.as_str())];
                event(out, "TEXT_MESSAGE_CONTENT", &fields, ts);
                let (left, burst) = (left - 1, burst - 1);
                if left == 0 {
                    self.stage = Stage::TextEnd;
                } else if burst == 0 {
                    let burst = self.rng.range(BURST.0, BURST.1).min(left);
                    self.stage = Stage::Text { left, burst };
                } else {
                    self.stage = Stage::Text { left, burst };
                    return true;
                }
            }
            Stage::TextEnd => {
                event(
                    out,
                    "TEXT_MESSAGE_END",
                    &[("messageId", &self.message_id)],
                    ts,
                );
                self.stage = Stage::ToolStart;
            }
            Stage::ToolStart => {
                let fields = [
                    ("toolCallId", &*self.tool_call_id),
                    ("toolCallName", self.tool),
                    ("parentMessageId", self.message_id.as_str()),
                ];
                event(out, "TOOL_CALL_START", &fields, ts);
                self.args = self.cut_args();
                self.stage = Stage::ToolArgs;
            }
            Stage::ToolArgs => {
                let delta = self.args.pop().unwrap_or_default();
                let fields = [
                    ("toolCallId", &*self.tool_call_id),
                    ("delta", delta.as_str()),
                ];
                event(out, "TOOL_CALL_ARGS", &fields, ts);
                if !self.args.is_empty() {
                    return true;
                }
                self.stage = Stage::ToolEnd;
            }
            Stage::ToolEnd => {
                event(
                    out,
                    "TOOL_CALL_END",
                    &[("toolCallId", &self.tool_call_id)],
                    ts,
                );
                self.stage = Stage::Finish;
            }
            Stage::Finish => {
                let fields = [("threadId", thread_id), ("runId", self.run_id.as_str())];
                event(out, "RUN_FINISHED", &fields, ts);
                self.stage = Stage::Start { recover: false };
            }
        }
        false
    }
}

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

    const TS: u64 = 1_764_000_000_000_000;

    /// One whole run, burst by burst.
    fn one_run(agent: &mut AgentRuns, thread: &str) -> Vec<Vec<Vec<u8>>> {
        let mut bursts = Vec::new();
        let mut burst = Vec::new();
        loop {
            let mut e = Vec::new();
            let more = agent.next_event(thread, TS, &mut e);
            let last = e.starts_with(b"{\"type\":\"RUN_FINISHED\"");
            burst.push(e);
            if !more {
                bursts.push(std::mem::take(&mut burst));
            }
            if last {
                assert!(!more);
                return bursts;
            }
        }
    }

    #[test]
    fn a_run_has_the_shape_of_an_agent_stream() {
        for seed in 0..50 {
            let mut agent = AgentRuns::new(seed);
            let bursts = one_run(&mut agent, "thread-1");
            let events: Vec<serde_json::Value> = bursts
                .iter()
                .flatten()
                .map(|e| serde_json::from_slice(e).unwrap())
                .collect();
            let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
            let deltas = types
                .iter()
                .filter(|t| **t == "TEXT_MESSAGE_CONTENT")
                .count();
            let args = types.iter().filter(|t| **t == "TOOL_CALL_ARGS").count();
            assert!((20..=80).contains(&deltas) && (2..=5).contains(&args));
            assert_eq!(types[..2], ["RUN_STARTED", "TEXT_MESSAGE_START"]);
            let tail = [
                &["TEXT_MESSAGE_END", "TOOL_CALL_START"][..],
                &vec!["TOOL_CALL_ARGS"; args],
                &["TOOL_CALL_END", "RUN_FINISHED"],
            ]
            .concat();
            assert_eq!(types[2 + deltas..], tail[..]);
            for e in &events[2..2 + deltas] {
                assert!(
                    (5..=40).contains(&e["delta"].as_str().unwrap().len()),
                    "{e}"
                );
            }
            for burst in &bursts {
                assert!((1..=8).contains(&burst.len()), "{}", burst.len());
            }
            assert!(bursts.iter().any(|b| b.len() > 1));
            let joined: String = events
                .iter()
                .filter(|e| e["type"] == "TOOL_CALL_ARGS")
                .map(|e| e["delta"].as_str().unwrap())
                .collect();
            let parsed: serde_json::Value = serde_json::from_str(&joined).unwrap();
            assert!(parsed["query"].is_string(), "{joined}");
            for (e, raw) in events.iter().zip(bursts.iter().flatten()) {
                assert_eq!(e["rawEvent"]["ts"], TS);
                assert_eq!(raw_event_ts_of(raw), Some(TS));
            }
        }
    }

    #[test]
    fn the_tracker_accepts_every_event_and_the_stream_verifies() {
        use tether_core::SessionTracker;
        let mut tracker = tether_agui::RunTracker::new(tether_agui::TrackerLimits::default());
        let mut agent = AgentRuns::new(9);
        let mut body = Vec::new();
        for _ in 0..10 {
            for e in one_run(&mut agent, "thread-9").iter().flatten() {
                let e = std::str::from_utf8(e).unwrap();
                tracker
                    .on_publish(None, e)
                    .unwrap_or_else(|r| panic!("refused {e}: {r}"));
                body.extend_from_slice(b"data: ");
                body.extend_from_slice(e.as_bytes());
                body.extend_from_slice(b"\n\n");
            }
        }
        assert_eq!(agent.runs(), 10);
        assert!(tether_agui::verify_sse(&body).is_ok());
        // A restart mid-run ends the run with RUN_ERROR and goes on validly.
        let mut e = Vec::new();
        for _ in 0..5 {
            agent.next_event("thread-9", TS, &mut e);
            tracker
                .on_publish(None, std::str::from_utf8(&e).unwrap())
                .unwrap();
            e.clear();
        }
        agent.restart();
        for _ in 0..200 {
            agent.next_event("thread-9", TS, &mut e);
            let text = std::str::from_utf8(&e).unwrap();
            tracker
                .on_publish(None, text)
                .unwrap_or_else(|r| panic!("refused {text}: {r}"));
            e.clear();
        }
    }

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
