//! Sample agent runs (feature `sample-runs`): what an LLM agent streams through a session, for
//! load generators and benchmarks (`tether serve --self-publish-agui`, the load harness's
//! `agui` scenarios).
//!
//! A run is `RUN_STARTED`, `TEXT_MESSAGE_START`, 20 to 80 `TEXT_MESSAGE_CONTENT` deltas of 5
//! to 40 bytes in bursts of 1 to 8, `TEXT_MESSAGE_END`, a tool call attached to the message
//! (`TOOL_CALL_START`, 2 to 5 `TOOL_CALL_ARGS` deltas, one burst, that join into a JSON
//! object, `TOOL_CALL_END`) and `RUN_FINISHED`; the next run has fresh ids. Every event is
//! AG-UI 1.0 that the run tracker accepts and carries its publish time in unix microseconds
//! as `"rawEvent":{"ts":N}`: `rawEvent` takes any JSON, and both the tracker and the official
//! client keep it (an unknown top-level `ts` would be stripped by the client, and `timestamp`
//! is milliseconds).
//!
//! ```
//! use tether_agui::sample::AgentRuns;
//!
//! let mut agent = AgentRuns::new(1);
//! let mut event = Vec::new();
//! let more = agent.next_event("thread-1", 1_764_000_000_000_000, &mut event);
//! assert!(event.starts_with(br#"{"type":"RUN_STARTED","threadId":"thread-1""#));
//! assert!(!more, "RUN_STARTED is a burst of its own");
//!
//! let mut burst = Vec::new();
//! agent.next_burst("thread-1", 1_764_000_000_000_001, &mut burst);
//! assert!(burst[0].starts_with(r#"{"type":"TEXT_MESSAGE_START""#));
//! ```

use std::io::Write as _;

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
    let _ = write!(out, ",\"rawEvent\":{{\"ts\":{ts}}}}}");
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

    /// Appends the next burst of the run of thread `thread_id` to `out`, one JSON document
    /// per event, each carrying `ts`: a lone event, 1 to 8 text deltas, or the tool call's
    /// argument deltas.
    pub fn next_burst(&mut self, thread_id: &str, ts: u64, out: &mut Vec<String>) {
        let mut event = Vec::with_capacity(160);
        loop {
            let more = self.next_event(thread_id, ts, &mut event);
            out.push(String::from_utf8(std::mem::take(&mut event)).expect("events are UTF-8"));
            if !more {
                return;
            }
        }
    }
}
