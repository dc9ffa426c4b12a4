//! proptest strategies that generate transcripts, and a check that writes the shrunk failure
//! out as a transcript file that replays it.
//!
//! ```no_run
//! use tether_replay::strategy::{self, Shape};
//!
//! // In a #[test]: 64 random sessions against the in-process broker.
//! strategy::check("broker_model", 64, strategy::transcript(Shape::default()), |t| {
//!     tether_replay::replay_in_process(t)
//! })
//! .unwrap();
//! ```

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::json;

use crate::report::Report;
use crate::transcript::{Action, Settings, Step, Transcript};

/// What generated transcripts look like.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Most steps. Default is 40.
    pub max_steps: usize,
    /// Client names (all on one session). Default is two.
    pub clients: Vec<String>,
    /// The session. Default is `"s"`.
    pub session: String,
    /// Ring sizes to draw from (small rings provoke resyncs). Default is 1 to 8.
    pub ring: std::ops::RangeInclusive<usize>,
    /// Longest stall in milliseconds (past the 60 s client timeout, the server drops the
    /// reader). Default is 90000.
    pub max_stall_ms: u64,
    /// Longest `advance` in milliseconds. Default is 40000.
    pub max_advance_ms: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            max_steps: 40,
            clients: vec!["c0".into(), "c1".into()],
            session: "s".into(),
            ring: 1..=8,
            max_stall_ms: 90_000,
            max_advance_ms: 40_000,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Publish(u8),
    Connect { client: usize, resume: bool },
    Read(usize),
    Stall(usize, u64),
    Drop(usize),
    Advance(u64),
    Request,
    Decide { nth: usize, approved: bool },
}

fn op(shape: &Shape) -> impl Strategy<Value = Op> + use<> {
    let n = shape.clients.len().max(1);
    let stall = shape.max_stall_ms;
    let adv = shape.max_advance_ms;
    prop_oneof![
        4 => (1u8..4).prop_map(Op::Publish),
        3 => (0..n, any::<bool>()).prop_map(|(client, resume)| Op::Connect { client, resume }),
        3 => (0..n).prop_map(Op::Read),
        1 => (0..n, 0..=stall).prop_map(|(c, ms)| Op::Stall(c, ms)),
        1 => (0..n).prop_map(Op::Drop),
        2 => (0..=adv).prop_map(Op::Advance),
        1 => Just(Op::Request),
        1 => (0usize..4, any::<bool>()).prop_map(|(nth, approved)| Op::Decide { nth, approved }),
    ]
}

/// Transcripts of random publishes, connects (fresh or resuming), reads, stalls, drops,
/// clock advances, approval requests and decisions, on one session with a small ring. Their
/// only expectations are `read` steps that wait for a client to catch up; the checker's
/// invariants do the rest. Events are `{"n": k}` with k counting up from 0.
pub fn transcript(shape: Shape) -> impl Strategy<Value = Transcript> {
    let ops = proptest::collection::vec(op(&shape), 1..=shape.max_steps.max(1));
    (ops, shape.ring.clone()).prop_map(move |(ops, ring)| build(&shape, ops, ring))
}

fn build(shape: &Shape, ops: Vec<Op>, ring: usize) -> Transcript {
    let mut t = Transcript {
        settings: Settings {
            ring_max_events: ring,
            ..Settings::default()
        },
        steps: Vec::new(),
        ..Transcript::default()
    };
    let mut actions = Actions {
        shape,
        published: 0,
        approvals: 0,
    };
    let mut connected = std::collections::HashSet::new();
    for op in ops {
        let action = actions.of(op);
        // Stalling a client that never connected (or closed its connection) is a mistake in
        // a transcript; a connection the server ended may still be stalled.
        match &action {
            Action::Connect { client, .. } => {
                connected.insert(client.clone());
            }
            Action::Drop { client } if !connected.remove(client) => continue,
            Action::Stall { client, .. } if !connected.contains(client) => continue,
            _ => {}
        }
        t.steps.push(Step::new(action));
    }
    t
}

/// Turns generated ops into steps, counting the events published and the approvals
/// requested so far.
struct Actions<'a> {
    shape: &'a Shape,
    published: u64,
    approvals: usize,
}

impl Actions<'_> {
    fn client(&self, i: usize) -> String {
        self.shape
            .clients
            .get(i)
            .cloned()
            .unwrap_or_else(|| "c0".into())
    }

    fn of(&mut self, op: Op) -> Action {
        let session = self.shape.session.clone();
        match op {
            Op::Publish(k) => Action::Publish {
                session,
                events: self.events(k),
                name: None,
                pad_bytes: None,
            },
            Op::Connect { client: c, resume } => Action::Connect {
                client: self.client(c),
                session,
                resume,
                last_event_id: None,
                client_id: None,
            },
            Op::Read(c) => Action::Read {
                client: self.client(c),
                events: None,
                within_ms: Some(self.shape.max_stall_ms + 30_000),
            },
            Op::Stall(c, ms) => Action::Stall {
                client: self.client(c),
                ms,
            },
            Op::Drop(c) => Action::Drop {
                client: self.client(c),
            },
            Op::Advance(ms) => Action::Advance { ms },
            Op::Request => {
                self.approvals += 1;
                Action::RequestApproval {
                    session,
                    approval: format!("a{}", self.approvals - 1),
                    title: None,
                    payload: json!({ "tool": "t" }),
                    timeout_ms: Some(120_000),
                }
            }
            Op::Decide { nth, approved } => Action::Decide {
                session,
                approval: format!("a{}", nth % self.approvals.max(1)),
                approved,
                reason: None,
                expect: None,
            },
        }
    }

    /// The next `k` events: `{"n": k}` with k counting up from 0.
    fn events(&mut self, k: u8) -> Vec<serde_json::Value> {
        (0..k)
            .map(|_| {
                self.published += 1;
                json!({ "n": self.published - 1 })
            })
            .collect()
    }
}

/// A property failed; the shrunk transcript that replays it was written to `file`.
#[derive(Debug)]
pub struct Failure {
    /// Where the minimal transcript was written.
    pub file: PathBuf,
    /// The minimal transcript.
    pub transcript: Transcript,
    /// Its report's violations.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}minimal transcript ({} steps) written to {}",
            self.message,
            self.transcript.steps.len(),
            self.file.display()
        )
    }
}

impl std::error::Error for Failure {}

/// The directory failures are written to: `$TETHER_REPLAY_FAILURES`, else
/// `$CARGO_TARGET_DIR/replay-failures`, else `target/replay-failures` next to the nearest
/// `Cargo.lock` above the current directory.
pub fn failure_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TETHER_REPLAY_FAILURES") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d).join("replay-failures");
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let root = cwd
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(&cwd);
    root.join("target").join("replay-failures")
}

/// Runs `cases` transcripts from `strategy` through `replay`; a transcript fails when its
/// report has a violation. proptest then shrinks it, and the minimal failing transcript is
/// written to `<failure_dir>/<name>.jsonl`, where replaying it shows the bug again.
// The failure carries the whole minimal transcript; it is returned once, at the end of a test.
#[allow(clippy::result_large_err)]
pub fn check<S, F>(name: &str, cases: u32, strategy: S, replay: F) -> Result<(), Failure>
where
    S: Strategy<Value = Transcript>,
    F: Fn(&Transcript) -> Report,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |t| {
        let report = replay(&t);
        if report.is_ok() {
            Ok(())
        } else {
            Err(TestCaseError::fail(report.violations_text()))
        }
    });
    let file = failure_dir().join(format!("{name}.jsonl"));
    match result {
        Ok(()) => {
            // A failure written by an earlier run is fixed now.
            let _ = std::fs::remove_file(&file);
            Ok(())
        }
        Err(TestError::Fail(reason, transcript)) => {
            let dir = failure_dir();
            let mut text = format!(
                "# Minimal transcript for the failing property {name:?}; replay it to see:\n"
            );
            for line in reason.message().lines() {
                text.push_str("# ");
                text.push_str(line);
                text.push('\n');
            }
            text.push_str(&transcript.to_jsonl());
            let _ = std::fs::create_dir_all(&dir);
            if let Err(e) = std::fs::write(&file, text) {
                panic!("could not write {}: {e}", file.display());
            }
            Err(Failure {
                file,
                transcript,
                message: reason.message().to_owned(),
            })
        }
        Err(TestError::Abort(reason)) => panic!("proptest aborted: {reason}"),
    }
}
