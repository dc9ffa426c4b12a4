//! The invariant checker: what must hold for any transcript, whatever its expectations say.
//!
//! - **order**: within a client's history (its connections, each resuming with the last id
//!   it saw), event ids of one epoch only go up;
//! - **no duplicates**: a history never receives the same event twice;
//! - **no silent gap**: an event that does not directly follow the previous one (or, on a
//!   fresh connection, is not the session's first) comes after a `tether.resync` signal or a
//!   snapshot prelude; after a resync the stream continues where the signal said;
//! - **content**: an event received under an id is the event published with that id;
//! - **no silence**: a reading client receives something (a heartbeat at least) at least once
//!   per keepalive interval plus the tolerance;
//! - **approvals**: at most one decision per approval is accepted, its resolution notice is
//!   published once, and what the status route says agrees with the decision;
//! - **supersede**: a superseded stream ends, after a `tether.superseded` signal, with no
//!   event after the signal.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::engine::Timing;
use crate::log::{
    ClientLog, Connection, EndedBy, EntryKind, Frame, History, RunLog, SupersedeRecord,
    TetherFrame, data_value,
};
use crate::report::{Rule, Violation, location};
use crate::transcript::Transcript;

struct Out<'a> {
    t: &'a Transcript,
    v: Vec<Violation>,
}

impl Out<'_> {
    fn push(
        &mut self,
        rule: Rule,
        step: usize,
        client: Option<&str>,
        event: Option<&str>,
        message: String,
    ) {
        self.v.push(Violation {
            rule,
            step: (step < self.t.steps.len()).then_some(step),
            location: location(self.t, Some(step)),
            client: client.map(Into::into),
            event: event.map(Into::into),
            message,
        });
    }
}

/// Checks every invariant over what a replay observed. `timing` maps the transcript's
/// keepalive interval and tolerance onto the clock the log was taken with.
pub fn check(t: &Transcript, log: &RunLog, timing: Timing) -> Vec<Violation> {
    let mut out = Out { t, v: Vec::new() };
    let published: HashMap<(&str, &str), &crate::log::Published> = log
        .publishes
        .iter()
        .map(|p| ((p.session.as_str(), p.id.as_str()), p))
        .collect();
    for (name, client) in &log.clients {
        histories(&mut out, name, client, &published);
        silence(&mut out, name, client, t, timing);
    }
    approvals(&mut out, log);
    supersedes(&mut out, log);
    out.v
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    tether_core::EventId::parse(id).map(|e| (e.epoch.get(), e.seq))
}

fn show(data: &str) -> String {
    let mut s: String = data.chars().take(120).collect();
    if s.len() < data.len() {
        s.push_str("...");
    }
    s
}

fn histories(
    out: &mut Out<'_>,
    name: &str,
    client: &ClientLog,
    published: &HashMap<(&str, &str), &crate::log::Published>,
) {
    let mut walk = Walk::default();
    for conn in &client.connections {
        walk.connection(&conn.history);
        for (entry, block) in conn.blocks() {
            let step = entry.step;
            match block.frame() {
                Frame::Signal { name: sig, value } if sig == "tether.resync" => {
                    walk.resync(&value, step);
                }
                Frame::Signal { .. } | Frame::Control => {}
                Frame::Unstored(_) => walk.prelude = true,
                Frame::IdOnly(id) => walk.id_only(out, name, step, id),
                Frame::Stored {
                    id,
                    data,
                    name: ev_name,
                } => {
                    if let Some(p) = published.get(&(conn.session.as_str(), id)) {
                        content(out, name, step, id, (data, ev_name), p);
                    }
                    walk.stored(out, name, step, id, data);
                }
            }
        }
    }
}

/// Where a client's history stands while [`histories`] walks it.
#[derive(Default)]
struct Walk {
    /// The last (epoch, seq) the history holds.
    prev: Option<(u64, u64)>,
    /// Every (epoch, seq) the history received.
    seen: HashSet<(u64, u64)>,
    /// Whether a resync came since the last stored event (of this connection).
    resynced: bool,
    /// Whether a snapshot prelude came since the last stored event (of this connection).
    prelude: bool,
    /// Where the last resync said the stream continues, and the step it arrived in.
    resume_from: Option<(String, usize)>,
}

impl Walk {
    /// A connection opens: the history goes on, starts afresh, or starts from an id.
    fn connection(&mut self, history: &History) {
        match history {
            History::Fresh => {
                self.prev = None;
                self.seen.clear();
            }
            History::From(id) => {
                self.prev = parse_id(id);
                self.seen.clear();
            }
            History::Resume(id) => {
                // The client resumes from the id it holds; that is where the history stands.
                if let Some(p) = parse_id(id) {
                    self.prev = Some(p);
                }
            }
        }
        self.resynced = false;
        self.prelude = false;
        self.resume_from = None;
    }

    /// A `tether.resync` signal with `value` arrives during `step`.
    fn resync(&mut self, value: &serde_json::Value, step: usize) {
        self.resynced = true;
        let reason = value["reason"].as_str().unwrap_or_default();
        if matches!(reason, "epoch" | "ahead" | "unknown") {
            // History is gone: what follows is a new history.
            self.seen.clear();
        }
        self.resume_from = value["resumeFrom"].as_str().map(|s| (s.to_owned(), step));
    }

    /// An id without data moves the history to `id`.
    fn id_only(&mut self, out: &mut Out<'_>, name: &str, step: usize, id: &str) {
        let Some(pos) = parse_id(id) else { return };
        if !(self.resynced || self.prelude) && self.prev != Some(pos) {
            let from = self
                .prev
                .map_or("the start".to_owned(), |(e, s)| format!("{e:x}-{s}"));
            out.push(
                Rule::Gap,
                step,
                Some(name),
                Some(id),
                format!("an id-only frame moved the client from {from} to {id} without a tether.resync or a snapshot before it"),
            );
        }
        self.prev = Some(pos);
    }

    /// A stored event `id` arrives: it must continue where a resync said, must not be a
    /// duplicate, must not go back, and must not skip without a resync or a prelude.
    fn stored(&mut self, out: &mut Out<'_>, name: &str, step: usize, id: &str, data: &str) {
        if let Some((want, during)) = self.resume_from.take()
            && want != id
        {
            out.push(
                Rule::Resync,
                step,
                Some(name),
                Some(id),
                format!(
                    "the resync received during {} said the stream continues from {want}, but the next event is {id}",
                    location(out.t, Some(during))
                ),
            );
        }
        if let Some(pos) = parse_id(id) {
            self.position(out, name, step, id, data, pos);
            self.prev = Some(pos);
        }
        self.resynced = false;
        self.prelude = false;
    }

    /// Checks the stored event `id` at `pos` against the history's position.
    fn position(
        &mut self,
        out: &mut Out<'_>,
        name: &str,
        step: usize,
        id: &str,
        data: &str,
        pos: (u64, u64),
    ) {
        if !self.seen.insert(pos) {
            out.push(
                Rule::Duplicate,
                step,
                Some(name),
                Some(id),
                format!("received {id} a second time: {}", show(data)),
            );
            return;
        }
        if let Some((e, s)) = self.prev
            && e == pos.0
            && pos.1 <= s
        {
            out.push(
                Rule::Order,
                step,
                Some(name),
                Some(id),
                format!("received {id} after {e:x}-{s}: out of order"),
            );
            return;
        }
        let follows = match self.prev {
            Some((e, s)) => e == pos.0 && pos.1 == s + 1,
            None => pos.1 == 1,
        };
        if follows || self.resynced || self.prelude {
            return;
        }
        let msg = match self.prev {
            Some((e, s)) if e == pos.0 => format!(
                "received {id} right after {e:x}-{s}: {} event(s) skipped without a tether.resync",
                pos.1 - s - 1
            ),
            Some((e, s)) => format!(
                "received {id} after {e:x}-{s}, from another epoch, without a tether.resync"
            ),
            None => format!(
                "the history starts at {id}, not at the session's first event, without a tether.resync"
            ),
        };
        out.push(Rule::Gap, step, Some(name), Some(id), msg);
    }
}

/// The event received under `id` (its data and SSE name) must be the one published as `p`.
fn content(
    out: &mut Out<'_>,
    name: &str,
    step: usize,
    id: &str,
    (data, ev_name): (&str, Option<&str>),
    p: &crate::log::Published,
) {
    let got = data_value(data);
    if got != p.data || ev_name != p.name.as_deref() {
        out.push(
            Rule::Content,
            step,
            Some(name),
            Some(id),
            format!(
                "received {} (name {:?}), but {} (name {:?}) was published with this id at {}",
                show(data),
                ev_name,
                p.data,
                p.name,
                location(out.t, Some(p.step))
            ),
        );
    }
}

fn silence(out: &mut Out<'_>, name: &str, client: &ClientLog, t: &Transcript, timing: Timing) {
    let Some(keepalive) = t.settings.keepalive_ms else {
        return;
    };
    let limit = timing.span(keepalive + t.settings.silence_tolerance_ms) + timing.slack;
    let ms = |d: Duration| timing.to_ms(d);
    for conn in &client.connections {
        let mut last = conn.opened;
        let mut stalled = false;
        let check = |out: &mut Out<'_>, last: Duration, at: Duration, step: usize| {
            let gap = at.saturating_sub(last);
            if gap > limit {
                out.push(
                    Rule::Silence,
                    step,
                    Some(name),
                    None,
                    format!(
                        "nothing arrived for {} ms (from {} ms to {} ms), more than the keepalive interval of {keepalive} ms plus {} ms",
                        ms(gap),
                        ms(last),
                        ms(at),
                        t.settings.silence_tolerance_ms
                    ),
                );
            }
        };
        for e in &conn.entries {
            match e.kind {
                EntryKind::Bytes(_) => {
                    if !stalled {
                        check(out, last, e.at, e.step);
                    }
                    last = e.at;
                }
                EntryKind::StallStart => {
                    check(out, last, e.at, e.step);
                    stalled = true;
                }
                EntryKind::StallEnd => {
                    stalled = false;
                    last = e.at;
                }
                EntryKind::Block(_) => {}
            }
        }
        if let Some(end) = conn.end
            && !stalled
        {
            check(out, last, end.at, end.step);
        }
    }
}

/// The first accepted decision of each approval: its step and whether it approved.
type Accepted<'a> = HashMap<(&'a str, &'a str), (usize, bool)>;

fn approvals(out: &mut Out<'_>, log: &RunLog) {
    let accepted = accepted_decisions(out, log);
    notices(out, log, &accepted);
    statuses(out, log, &accepted);
}

/// The first accepted decision per approval; a second accepted one is a violation.
fn accepted_decisions<'a>(out: &mut Out<'_>, log: &'a RunLog) -> Accepted<'a> {
    let mut accepted = Accepted::new();
    for d in &log.decisions {
        if d.result != "ok" {
            continue;
        }
        let key = (d.session.as_str(), d.approval.as_str());
        match accepted.get(&key) {
            Some((first, _)) => out.push(
                Rule::Approval,
                d.step,
                None,
                None,
                format!(
                    "approval {} was decided a second time and the server accepted it (the first decision was accepted at {})",
                    d.approval,
                    location(out.t, Some(*first))
                ),
            ),
            None => {
                accepted.insert(key, (d.step, d.approved));
            }
        }
    }
    accepted
}

/// The approval id and outcome a stored event announces, if it is a resolution notice.
fn notice(data: &str) -> Option<(String, String)> {
    let v = data_value(data);
    if v["type"] != "CUSTOM" || v["name"] != "tether.approval.resolved" {
        return None;
    }
    let aid = v["value"]["id"].as_str()?.to_owned();
    let outcome = v["value"]["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Some((aid, outcome))
}

/// Resolution notices: one stored event per approval, agreeing with the decision.
fn notices(out: &mut Out<'_>, log: &RunLog, accepted: &Accepted<'_>) {
    let mut first: HashMap<(String, String), String> = HashMap::new();
    for (name, client) in &log.clients {
        for conn in &client.connections {
            for (entry, block) in conn.blocks() {
                let Frame::Stored { id, data, .. } = block.frame() else {
                    continue;
                };
                let Some((aid, outcome)) = notice(data) else {
                    continue;
                };
                let key = (conn.session.clone(), aid.clone());
                match first.get(&key) {
                    Some(first_id) if first_id != id => out.push(
                        Rule::Approval,
                        entry.step,
                        Some(name),
                        Some(id),
                        format!(
                            "approval {aid} was resolved twice: {first_id} and {id} both announce its outcome"
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        first.insert(key, id.to_owned());
                    }
                }
                if let Some((_, approved)) = accepted.get(&(conn.session.as_str(), aid.as_str())) {
                    let want = if *approved { "approved" } else { "rejected" };
                    if outcome != want {
                        out.push(
                            Rule::Approval,
                            entry.step,
                            Some(name),
                            Some(id),
                            format!("approval {aid} was {want} but its notice says {outcome:?}"),
                        );
                    }
                }
            }
        }
    }
}

/// Observed statuses: final once final, and agreeing with the accepted decision.
fn statuses(out: &mut Out<'_>, log: &RunLog, accepted: &Accepted<'_>) {
    let mut finals: HashMap<(&str, &str), (&str, usize)> = HashMap::new();
    for s in &log.statuses {
        let key = (s.session.as_str(), s.approval.as_str());
        let Some(status) = s.status.as_deref() else {
            continue;
        };
        if let Some((first, step)) = finals.get(&key)
            && *first != status
        {
            out.push(
                Rule::Approval,
                s.step,
                None,
                None,
                format!(
                    "approval {} was {first} at {} and is {status} now: an outcome never changes",
                    s.approval,
                    location(out.t, Some(*step))
                ),
            );
        }
        if status != "pending" {
            finals.entry(key).or_insert((status, s.step));
        }
        if let Some((step, approved)) = accepted.get(&key)
            && *step < s.step
        {
            let want = if *approved { "approved" } else { "rejected" };
            if status != want {
                out.push(
                    Rule::Approval,
                    s.step,
                    None,
                    None,
                    format!(
                        "approval {} was {want} at {}, but its status is {status}",
                        s.approval,
                        location(out.t, Some(*step))
                    ),
                );
            }
        }
    }
}

fn supersedes(out: &mut Out<'_>, log: &RunLog) {
    for s in &log.supersedes {
        let Some(conn) = log
            .clients
            .get(&s.client)
            .and_then(|c| c.connections.get(s.connection))
        else {
            continue;
        };
        let Some(end) = conn.end else { continue };
        if end.by == EndedBy::Client && end.step == s.step {
            // The client closed it in the same step (it reconnected itself).
            continue;
        }
        let (sig_at, after) = superseded_signal(conn);
        if let Some((id, step)) = after {
            out.push(
                Rule::Supersede,
                step,
                Some(&s.client),
                Some(&id),
                format!("received {id} after its tether.superseded signal"),
            );
        }
        superseded_end(out, s, end.by, sig_at.is_some());
    }
}

/// The step of a connection's first `tether.superseded` signal, and the first stored event
/// after it (its id and step).
fn superseded_signal(conn: &Connection) -> (Option<usize>, Option<(String, usize)>) {
    let mut sig_at = None;
    let mut after: Option<(String, usize)> = None;
    for (entry, block) in conn.blocks() {
        match block.frame() {
            Frame::Signal { name, .. } if name == "tether.superseded" => {
                sig_at.get_or_insert(entry.step);
            }
            Frame::Stored { id, .. } if sig_at.is_some() && after.is_none() => {
                after = Some((id.to_owned(), entry.step));
            }
            _ => {}
        }
    }
    (sig_at, after)
}

/// A superseded stream must have been ended by the server after a `tether.superseded` signal.
fn superseded_end(out: &mut Out<'_>, s: &SupersedeRecord, by: EndedBy, signalled: bool) {
    match (by, signalled) {
        (EndedBy::Server, true) => {}
        (EndedBy::Server, false) if s.was_stalled => {
            // Not reading when superseded: the server may have dropped it for the client
            // timeout first, which ends the stream without a signal.
        }
        (EndedBy::Server, false) => out.push(
            Rule::Supersede,
            s.step,
            Some(&s.client),
            None,
            format!(
                "superseded by {}, its stream ended without a tether.superseded signal",
                s.by
            ),
        ),
        (EndedBy::Client, _) => {
            // The client closed it first; whether a signal was still on its way is
            // unknown.
        }
        (EndedBy::RunEnd, _) => out.push(
            Rule::Supersede,
            s.step,
            Some(&s.client),
            None,
            format!(
                "superseded by {}, its stream was still open {} when the replay ended",
                s.by,
                if signalled {
                    "after the tether.superseded signal"
                } else {
                    "and no tether.superseded signal arrived"
                }
            ),
        ),
    }
}
