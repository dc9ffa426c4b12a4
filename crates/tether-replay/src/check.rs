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
use crate::log::{ClientLog, EndedBy, EntryKind, Frame, History, RunLog, data_value};
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
    // The position of the history: the last (epoch, seq) it holds, whether a resync or a
    // snapshot prelude came since, and where a resync said the stream continues.
    let mut prev: Option<(u64, u64)> = None;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    for conn in &client.connections {
        match &conn.history {
            History::Fresh => {
                prev = None;
                seen.clear();
            }
            History::From(id) => {
                prev = parse_id(id);
                seen.clear();
            }
            History::Resume(id) => {
                // The client resumes from the id it holds; that is where the history stands.
                if let Some(p) = parse_id(id) {
                    prev = Some(p);
                }
            }
        }
        let mut resynced = false;
        let mut prelude = false;
        let mut resume_from: Option<(String, usize)> = None;
        for (entry, block) in conn.blocks() {
            match block.frame() {
                Frame::Signal { name: sig, value } if sig == "tether.resync" => {
                    resynced = true;
                    let reason = value["reason"].as_str().unwrap_or_default();
                    if matches!(reason, "epoch" | "ahead" | "unknown") {
                        // History is gone: what follows is a new history.
                        seen.clear();
                    }
                    resume_from = value["resumeFrom"]
                        .as_str()
                        .map(|s| (s.to_owned(), entry.step));
                }
                Frame::Signal { .. } | Frame::Control => {}
                Frame::Unstored(_) => prelude = true,
                Frame::IdOnly(id) => {
                    let Some(pos) = parse_id(id) else { continue };
                    if !(resynced || prelude) && prev != Some(pos) {
                        let from =
                            prev.map_or("the start".to_owned(), |(e, s)| format!("{e:x}-{s}"));
                        out.push(
                            Rule::Gap,
                            entry.step,
                            Some(name),
                            Some(id),
                            format!("an id-only frame moved the client from {from} to {id} without a tether.resync or a snapshot before it"),
                        );
                    }
                    prev = Some(pos);
                }
                Frame::Stored {
                    id,
                    data,
                    name: ev_name,
                } => {
                    if let Some(p) = published.get(&(conn.session.as_str(), id)) {
                        let got = data_value(data);
                        if got != p.data || ev_name != p.name.as_deref() {
                            out.push(
                                Rule::Content,
                                entry.step,
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
                    if let Some((want, step)) = resume_from.take()
                        && want != id
                    {
                        out.push(
                            Rule::Resync,
                            entry.step,
                            Some(name),
                            Some(id),
                            format!(
                                "the resync received during {} said the stream continues from {want}, but the next event is {id}",
                                location(out.t, Some(step))
                            ),
                        );
                    }
                    let Some(pos) = parse_id(id) else {
                        resynced = false;
                        prelude = false;
                        continue;
                    };
                    if !seen.insert(pos) {
                        out.push(
                            Rule::Duplicate,
                            entry.step,
                            Some(name),
                            Some(id),
                            format!("received {id} a second time: {}", show(data)),
                        );
                    } else if let Some((e, s)) = prev
                        && e == pos.0
                        && pos.1 <= s
                    {
                        out.push(
                            Rule::Order,
                            entry.step,
                            Some(name),
                            Some(id),
                            format!("received {id} after {e:x}-{s}: out of order"),
                        );
                    } else {
                        let follows = match prev {
                            Some((e, s)) => e == pos.0 && pos.1 == s + 1,
                            None => pos.1 == 1,
                        };
                        if !(follows || resynced || prelude) {
                            let msg = match prev {
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
                            out.push(Rule::Gap, entry.step, Some(name), Some(id), msg);
                        }
                    }
                    prev = Some(pos);
                    resynced = false;
                    prelude = false;
                }
            }
        }
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

fn approvals(out: &mut Out<'_>, log: &RunLog) {
    // First accepted decision per approval.
    let mut accepted: HashMap<(&str, &str), (usize, bool)> = HashMap::new();
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
    // Resolution notices: one stored event per approval, agreeing with the decision.
    let mut notices: HashMap<(String, String), (String, String, usize)> = HashMap::new();
    for (name, client) in &log.clients {
        for conn in &client.connections {
            for (entry, block) in conn.blocks() {
                let Frame::Stored { id, data, .. } = block.frame() else {
                    continue;
                };
                let v = data_value(data);
                if v["type"] != "CUSTOM" || v["name"] != "tether.approval.resolved" {
                    continue;
                }
                let Some(aid) = v["value"]["id"].as_str() else {
                    continue;
                };
                let outcome = v["value"]["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let key = (conn.session.clone(), aid.to_owned());
                match notices.get(&key) {
                    Some((first_id, _, _)) if first_id != id => out.push(
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
                        notices.insert(key, (id.to_owned(), outcome.clone(), entry.step));
                    }
                }
                if let Some((_, approved)) = accepted.get(&(conn.session.as_str(), aid)) {
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
    // Observed statuses: final once final, and agreeing with the accepted decision.
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
        if let Some((id, step)) = after {
            out.push(
                Rule::Supersede,
                step,
                Some(&s.client),
                Some(&id),
                format!("received {id} after its tether.superseded signal"),
            );
        }
        match (end.by, sig_at) {
            (EndedBy::Server, Some(_)) => {}
            (EndedBy::Server, None) if s.was_stalled => {
                // Not reading when superseded: the server may have dropped it for the client
                // timeout first, which ends the stream without a signal.
            }
            (EndedBy::Server, None) => out.push(
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
                    if sig_at.is_some() {
                        "after the tether.superseded signal"
                    } else {
                        "and no tether.superseded signal arrived"
                    }
                ),
            ),
        }
    }
}
