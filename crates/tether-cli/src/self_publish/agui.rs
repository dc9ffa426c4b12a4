//! Agent runs for `--self-publish-agui RATE`: what an LLM agent streams through a session,
//! one burst at a time.
//!
//! A run is `RUN_STARTED`, `TEXT_MESSAGE_START`, 20 to 80 `TEXT_MESSAGE_CONTENT` deltas of 5
//! to 40 bytes in bursts of 1 to 8, `TEXT_MESSAGE_END`, a tool call (`TOOL_CALL_START`, 2 to 5
//! `TOOL_CALL_ARGS` deltas that join into a JSON object, `TOOL_CALL_END`) attached to the
//! message, and `RUN_FINISHED`; the next run has fresh ids. Every event is AG-UI 1.0 that the
//! run tracker accepts and carries its publish time in unix microseconds as
//! `"rawEvent":{"ts":N}` (`rawEvent` is any JSON, kept by the tracker and by the official
//! client; `timestamp` is milliseconds), which the load harness reads for latency.

use std::fmt::Write as _;

/// A small, fast pseudo-random sequence (splitmix64): runs differ per session, with nothing
/// to seed from the system.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
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
const DELTAS: (u32, u32) = (20, 80);
/// Shortest and longest text delta, in bytes.
const DELTA_BYTES: (u32, u32) = (5, 40);
/// Fewest and most deltas per burst.
const BURST: (u32, u32) = (1, 8);
/// Fewest and most tool-call argument deltas.
const ARGS_DELTAS: (u32, u32) = (2, 5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before a run; `recover`: end whatever run the session may have open first.
    Start {
        recover: bool,
    },
    TextStart,
    Text {
        left: u32,
    },
    TextEnd,
    ToolStart,
    ToolArgs,
    ToolEnd,
    Finish,
}

/// One session's agent: the run it is in and what comes next.
#[derive(Debug, Clone)]
pub(crate) struct AgentRuns {
    rng: Rng,
    stage: Stage,
    run_id: String,
    message_id: String,
    tool_call_id: String,
    tool: &'static str,
    /// The tool call's arguments, cut into the deltas still to send.
    args: Vec<String>,
    /// The message's text past the last delta (the rest of a word).
    text: String,
    runs: u64,
}

/// Appends `s` as a JSON string.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"type":"TY"` and the fields, then `,"rawEvent":{"ts":TS}}`.
fn event(ty: &str, fields: &[(&str, &str)], ts: u64) -> String {
    let mut e = String::with_capacity(160);
    e.push_str("{\"type\":\"");
    e.push_str(ty);
    e.push('"');
    for (name, value) in fields {
        e.push_str(",\"");
        e.push_str(name);
        e.push_str("\":");
        push_str(&mut e, value);
    }
    let _ = write!(e, ",\"rawEvent\":{{\"ts\":{ts}}}}}");
    e
}

impl AgentRuns {
    /// An agent whose runs follow from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed ^ 0x005e_ed0f_a9e7),
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
    #[cfg(test)]
    pub(crate) fn runs(&self) -> u64 {
        self.runs
    }

    /// After a refused publish: the next burst ends whatever run the session has open with
    /// `RUN_ERROR` and starts a fresh one.
    pub(crate) fn restart(&mut self) {
        self.stage = Stage::Start { recover: true };
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        format!("{prefix}_{:016x}", self.rng.next())
    }

    /// Whole words (ASCII), at least `bytes` bytes of them.
    fn word_run(&mut self, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes + 12);
        while s.len() < bytes {
            if !s.is_empty() {
                // A line break now and then, as a model writes them.
                s.push(if self.rng.next().is_multiple_of(24) {
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
        let mut args = String::from("{\"query\":");
        push_str(&mut args, &query);
        let _ = write!(args, ",\"limit\":{}}}", self.rng.range(1, 20));
        let pieces = self.rng.range(ARGS_DELTAS.0, ARGS_DELTAS.1) as usize;
        let mut cuts: Vec<usize> = Vec::with_capacity(pieces);
        while cuts.len() < pieces - 1 {
            // The arguments are ASCII: every place is a character boundary.
            let at = 1 + (self.rng.next() % (args.len() as u64 - 1)) as usize;
            if !cuts.contains(&at) {
                cuts.push(at);
            }
        }
        cuts.sort_unstable();
        cuts.push(args.len());
        let mut from = 0;
        cuts.into_iter()
            .map(|to| {
                let piece = args[from..to].to_owned();
                from = to;
                piece
            })
            .collect()
    }

    /// Appends the next burst of the run of thread `thread_id` to `out`, each event's JSON
    /// carrying `ts` (unix microseconds): one event, 1 to 8 text deltas, or the tool call's
    /// argument deltas.
    pub(crate) fn next_burst(&mut self, thread_id: &str, ts: u64, out: &mut Vec<String>) {
        match self.stage {
            Stage::Start { recover } => {
                if recover {
                    let message = "the load generator restarted the run";
                    out.push(event("RUN_ERROR", &[("message", message)], ts));
                }
                self.runs += 1;
                self.run_id = self.fresh_id("run");
                self.message_id = self.fresh_id("msg");
                self.tool_call_id = self.fresh_id("call");
                self.tool = self.rng.pick(TOOLS);
                let fields = [("threadId", thread_id), ("runId", self.run_id.as_str())];
                out.push(event("RUN_STARTED", &fields, ts));
                self.stage = Stage::TextStart;
            }
            Stage::TextStart => {
                let fields = [("messageId", &*self.message_id), ("role", "assistant")];
                out.push(event("TEXT_MESSAGE_START", &fields, ts));
                self.text.clear();
                let left = self.rng.range(DELTAS.0, DELTAS.1);
                self.stage = Stage::Text { left };
            }
            Stage::Text { left } => {
                let burst = self.rng.range(BURST.0, BURST.1).min(left);
                for _ in 0..burst {
                    let len = self.rng.range(DELTA_BYTES.0, DELTA_BYTES.1) as usize;
                    let delta = self.take_text(len);
                    let fields = [("messageId", &*self.message_id), ("delta", delta.as_str())];
                    out.push(event("TEXT_MESSAGE_CONTENT", &fields, ts));
                }
                self.stage = match left - burst {
                    0 => Stage::TextEnd,
                    left => Stage::Text { left },
                };
            }
            Stage::TextEnd => {
                let fields = [("messageId", &*self.message_id)];
                out.push(event("TEXT_MESSAGE_END", &fields, ts));
                self.stage = Stage::ToolStart;
            }
            Stage::ToolStart => {
                let fields = [
                    ("toolCallId", &*self.tool_call_id),
                    ("toolCallName", self.tool),
                    ("parentMessageId", self.message_id.as_str()),
                ];
                out.push(event("TOOL_CALL_START", &fields, ts));
                self.args = self.cut_args();
                self.stage = Stage::ToolArgs;
            }
            Stage::ToolArgs => {
                for delta in std::mem::take(&mut self.args) {
                    let fields = [
                        ("toolCallId", &*self.tool_call_id),
                        ("delta", delta.as_str()),
                    ];
                    out.push(event("TOOL_CALL_ARGS", &fields, ts));
                }
                self.stage = Stage::ToolEnd;
            }
            Stage::ToolEnd => {
                let fields = [("toolCallId", &*self.tool_call_id)];
                out.push(event("TOOL_CALL_END", &fields, ts));
                self.stage = Stage::Finish;
            }
            Stage::Finish => {
                let fields = [("threadId", thread_id), ("runId", self.run_id.as_str())];
                out.push(event("RUN_FINISHED", &fields, ts));
                self.stage = Stage::Start { recover: false };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures_util::StreamExt;
    use serde_json::Value;
    use tether_agui::{AguiTrackerFactory, RunTracker, TrackerLimits};
    use tether_core::{Broker, ConnectOptions, Event, EventStream, SessionId, SessionTracker};

    use super::*;

    const TS: u64 = 1_764_000_000_000_000;

    /// One whole run, burst by burst.
    fn one_run(agent: &mut AgentRuns, thread: &str) -> Vec<Vec<String>> {
        let mut bursts = Vec::new();
        loop {
            let mut burst = Vec::new();
            agent.next_burst(thread, TS + bursts.len() as u64, &mut burst);
            let last = burst
                .last()
                .is_some_and(|e| e.starts_with("{\"type\":\"RUN_FINISHED\""));
            bursts.push(burst);
            if last {
                return bursts;
            }
        }
    }

    fn ty(e: &Value) -> &str {
        e["type"].as_str().unwrap()
    }

    #[test]
    fn a_run_has_the_shape_of_an_agent_stream() {
        for seed in 0..50 {
            let mut agent = AgentRuns::new(seed);
            let bursts = one_run(&mut agent, "thread-1");
            let events: Vec<Value> = bursts
                .iter()
                .flatten()
                .map(|e| serde_json::from_str(e).unwrap())
                .collect();
            let types: Vec<&str> = events.iter().map(ty).collect();
            let deltas = types
                .iter()
                .filter(|t| **t == "TEXT_MESSAGE_CONTENT")
                .count();
            let args = types.iter().filter(|t| **t == "TOOL_CALL_ARGS").count();
            assert!((20..=80).contains(&deltas), "{deltas}");
            assert!((2..=5).contains(&args), "{args}");
            assert_eq!(types[..2], ["RUN_STARTED", "TEXT_MESSAGE_START"]);
            let tail = [
                &["TEXT_MESSAGE_END", "TOOL_CALL_START"][..],
                &vec!["TOOL_CALL_ARGS"; args],
                &["TOOL_CALL_END", "RUN_FINISHED"],
            ]
            .concat();
            assert_eq!(types[2 + deltas..], tail[..]);
            for e in &events[2..2 + deltas] {
                let len = e["delta"].as_str().unwrap().len();
                assert!((5..=40).contains(&len), "{e}");
            }
            // Deltas come in bursts of 1 to 8 (the arguments in one), the rest alone.
            for burst in &bursts {
                assert!((1..=8).contains(&burst.len()), "{}", burst.len());
            }
            assert!(bursts.iter().any(|b| b.len() > 1), "some bursts");
            let joined: String = events
                .iter()
                .filter(|e| ty(e) == "TOOL_CALL_ARGS")
                .map(|e| e["delta"].as_str().unwrap())
                .collect();
            let parsed: Value = serde_json::from_str(&joined).unwrap();
            assert!(
                parsed["query"].is_string() && parsed["limit"].is_u64(),
                "{joined}"
            );
            // Every event carries its publish time in microseconds in `rawEvent`.
            for e in &events {
                assert!(e["rawEvent"]["ts"].as_u64().unwrap() >= TS, "{e}");
            }
        }
    }

    #[test]
    fn the_next_run_has_fresh_ids() {
        let mut agent = AgentRuns::new(7);
        let ids = |bursts: &[Vec<String>]| {
            let run: Value = serde_json::from_str(&bursts[0][0]).unwrap();
            let message: Value = serde_json::from_str(&bursts[1][0]).unwrap();
            (run["runId"].clone(), message["messageId"].clone())
        };
        let first = ids(&one_run(&mut agent, "t"));
        let second = ids(&one_run(&mut agent, "t"));
        assert_ne!(first.0, second.0);
        assert_ne!(first.1, second.1);
        assert_eq!(agent.runs(), 2);
    }

    #[test]
    fn the_tracker_accepts_every_event_of_many_runs() {
        let mut tracker = RunTracker::new(TrackerLimits::default());
        let mut agent = AgentRuns::new(42);
        for _ in 0..20 {
            for e in one_run(&mut agent, "thread-1").iter().flatten() {
                tracker
                    .on_publish(None, e)
                    .unwrap_or_else(|r| panic!("refused {e}: {r}"));
            }
        }
        assert!(!tracker.run_open());
        assert_eq!(
            tracker.messages().len(),
            20,
            "one assistant message per run"
        );
    }

    #[test]
    fn a_restart_ends_the_open_run_and_starts_a_valid_one() {
        let mut tracker = RunTracker::new(TrackerLimits::default());
        let mut agent = AgentRuns::new(3);
        let mut events = Vec::new();
        for _ in 0..4 {
            agent.next_burst("t", TS, &mut events);
        }
        agent.restart();
        for _ in 0..100 {
            agent.next_burst("t", TS, &mut events);
        }
        for e in &events {
            tracker
                .on_publish(None, e)
                .unwrap_or_else(|r| panic!("refused {e}: {r}"));
        }
        assert!(events.iter().any(|e| e.contains("RUN_ERROR")));
    }

    /// Reads until the body holds `count` data documents.
    async fn read_until(stream: &mut EventStream, count: usize) -> Vec<u8> {
        let mut body = Vec::new();
        while tether_agui::sse_data(&body).len() < count {
            let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("the events arrive")
                .expect("the stream stays open");
            body.extend_from_slice(&chunk);
        }
        body
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_tracked_broker_stores_runs_that_pass_the_clients_checks() {
        let broker = Broker::builder()
            .tracker_factory(Arc::new(AguiTrackerFactory::new()))
            .without_heartbeats()
            .start()
            .unwrap();
        let session = SessionId::new("agui-load").unwrap();
        let mut agent = AgentRuns::new(11);
        let events: Vec<String> = (0..3)
            .flat_map(|_| one_run(&mut agent, session.as_str()))
            .flatten()
            .collect();
        for e in &events {
            broker
                .publish_event(&session, Event::raw(e.as_str()))
                .unwrap_or_else(|err| panic!("refused {e}: {err}"));
        }
        // The stored stream, read from the start.
        let mut stream = broker.connect(&session, ConnectOptions::new()).unwrap();
        let body = read_until(&mut stream, events.len()).await;
        assert_eq!(tether_agui::verify_sse(&body).unwrap(), events.len());
        drop(stream);

        // Mid-run, a client that joins without an id and one that resumes exactly but asks
        // for the prelude (`prelude=always`) get RUN_STARTED, MESSAGES_SNAPSHOT and the open
        // message with its text so far.
        let mut last = None;
        for e in one_run(&mut agent, session.as_str())
            .into_iter()
            .flatten()
            .take(10)
        {
            last = Some(broker.publish_event(&session, Event::raw(e)).unwrap());
        }
        let last = last.unwrap().to_string();
        for opts in [
            ConnectOptions::new(),
            ConnectOptions::resume(last).with_prelude(),
        ] {
            let mut stream = broker.connect(&session, opts).unwrap();
            let body = read_until(&mut stream, 4).await;
            assert_eq!(tether_agui::verify_sse(&body).unwrap(), 4);
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains("\"MESSAGES_SNAPSHOT\""), "{text}");
        }
    }
}
