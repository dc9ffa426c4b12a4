//! The outcome of a replay: what each step did, and every violation found.

use std::fmt;

use crate::log::RunLog;
use crate::transcript::Transcript;

/// Which rule a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// An `expect_*` step (or a `read`, or a `decide` with `expect`) was not met.
    Expectation,
    /// A step could not be carried out (the server refused a publish or a connect, or the
    /// transcript asked for something impossible).
    Step,
    /// A client received an event older than one it had already received.
    Order,
    /// A client received the same event twice.
    Duplicate,
    /// A client's history skipped events without a `tether.resync` before the gap.
    Gap,
    /// A resync announced one position and the stream continued from another.
    Resync,
    /// A received event is not the one published with its id.
    Content,
    /// A reading client got nothing (not even a heartbeat) for longer than the keepalive
    /// interval plus the tolerance.
    Silence,
    /// An approval was decided more than once, or its outcome contradicts its decision.
    Approval,
    /// A superseded stream did not end, or ended without a `tether.superseded` signal.
    Supersede,
}

impl Rule {
    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expectation => "expectation",
            Self::Step => "step",
            Self::Order => "order",
            Self::Duplicate => "duplicate",
            Self::Gap => "gap",
            Self::Resync => "resync",
            Self::Content => "content",
            Self::Silence => "silence",
            Self::Approval => "approval",
            Self::Supersede => "supersede",
        }
    }
}

/// One broken rule: which step, which client and event, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// The step (0-based index) at which it happened, if it belongs to one.
    pub step: Option<usize>,
    /// Where that step is: `step 7 (line 9: expect_events c1)`.
    pub location: String,
    /// The client, if one is concerned.
    pub client: Option<String>,
    /// The event's id, if one is concerned.
    pub event: Option<String>,
    /// What was expected and what happened.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.rule.as_str(), self.location)?;
        if let Some(c) = &self.client {
            write!(f, ", client {c}")?;
        }
        if let Some(e) = &self.event {
            write!(f, ", event {e}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Where step `index` of `t` is, for messages.
pub(crate) fn location(t: &Transcript, index: Option<usize>) -> String {
    let Some(i) = index else {
        return "end of the replay".into();
    };
    let Some(step) = t.steps.get(i) else {
        return "end of the replay".into();
    };
    let what = match step.action.client() {
        Some(c) => format!("{} {c}", step.action.op()),
        None => step.action.op().to_owned(),
    };
    if step.line > 0 {
        format!("step {} (line {}: {what})", i + 1, step.line)
    } else {
        format!("step {} ({what})", i + 1)
    }
}

/// What one step did, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepNote {
    /// Where the step is.
    pub location: String,
    /// When it ran, in transcript milliseconds.
    pub at_ms: u64,
    /// What it did.
    pub note: String,
}

/// The outcome of a replay. Call [`assert_finished`](Self::assert_finished) in a test.
#[derive(Debug, Clone)]
#[must_use = "a report says nothing unless checked: call assert_finished()"]
pub struct Report {
    /// What each step did.
    pub steps: Vec<StepNote>,
    /// Every violation, expectations first, then the invariants.
    pub violations: Vec<Violation>,
    /// What the replay observed.
    pub log: RunLog,
}

impl Report {
    /// Whether no rule was broken.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// Panics with every violation if any rule was broken.
    #[track_caller]
    pub fn assert_finished(&self) {
        if !self.violations.is_empty() {
            panic!("{}", self.violations_text());
        }
    }

    /// The violations, one per line, under a heading.
    pub fn violations_text(&self) -> String {
        let mut s = format!("{} violation(s):\n", self.violations.len());
        for v in &self.violations {
            s.push_str("  ");
            s.push_str(&v.to_string());
            s.push('\n');
        }
        s
    }

    /// Violations of a rule.
    pub fn of(&self, rule: Rule) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.rule == rule)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "steps ({}):", self.steps.len())?;
        for s in &self.steps {
            writeln!(f, "  {:>8} ms  {}: {}", s.at_ms, s.location, s.note)?;
        }
        let publishes = self.log.publishes.len();
        writeln!(f, "published: {publishes} event(s)")?;
        writeln!(f, "clients ({}):", self.log.clients.len())?;
        for (name, c) in &self.log.clients {
            let ended = c
                .connections
                .iter()
                .filter(|c| matches!(c.end, Some(e) if e.by == crate::log::EndedBy::Server))
                .count();
            writeln!(
                f,
                "  {name}: {} connection(s), {} event(s), {} resync(s), {} ended by the server",
                c.connections.len(),
                c.event_count(),
                c.signals("tether.resync").len(),
                ended,
            )?;
        }
        if self.violations.is_empty() {
            writeln!(f, "violations: none")
        } else {
            write!(f, "{}", self.violations_text())
        }
    }
}
