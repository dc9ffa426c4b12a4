//! Generated transcripts: the broker holds every invariant over random sessions, and a bug
//! planted in the client side is found, shrunk to a minimal transcript, written out, and that
//! file replays the bug.
mod common;

use common::*;
use tether_replay::log::EndedBy;
use tether_replay::strategy::{self, Shape};
use tether_replay::{Rule, Transcript, replay_in_process};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
        .min(1000)
}

#[derive(Debug, Default)]
struct Seen {
    events: usize,
    resyncs: usize,
    supersedes: usize,
    server_ends: usize,
    decisions: usize,
}

#[test]
fn generated_sessions_hold_every_invariant() {
    let seen = std::sync::Mutex::new(Seen::default());
    let result = strategy::check(
        "broker_invariants",
        cases(),
        strategy::transcript(Shape::default()),
        |t| {
            let report = replay_in_process(t);
            let mut s = seen.lock().unwrap();
            for c in report.log.clients.values() {
                s.events += c.event_count();
                s.resyncs += c.signals("tether.resync").len();
                s.server_ends += c
                    .connections
                    .iter()
                    .filter(|c| c.end.is_some_and(|e| e.by == EndedBy::Server))
                    .count();
            }
            s.supersedes += report.log.supersedes.len();
            s.decisions += report
                .log
                .decisions
                .iter()
                .filter(|d| d.result == "ok")
                .count();
            report
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // The generated sessions exercise what the invariants are about.
    let s = seen.into_inner().unwrap();
    assert!(
        s.events > 0 && s.resyncs > 0 && s.supersedes > 0 && s.server_ends > 0 && s.decisions > 0,
        "{s:?}"
    );
    println!("{s:?}");
}

#[test]
fn a_planted_bug_is_shrunk_to_a_minimal_transcript_that_replays_it() {
    // The bug: a client-side filter that swallows the third event ({"n":2}).
    let buggy = |t: &Transcript| replay_with(t, drop_frames_with(r#"{"n":2}"#));
    let failure = strategy::check(
        "planted_bug",
        1000,
        strategy::transcript(Shape::default()),
        buggy,
    )
    .expect_err("the checker finds the planted bug");
    assert!(failure.file.ends_with("replay-failures/planted_bug.jsonl"));
    // Depending on where the lost event sat, it shows as a silent gap, as a resync whose
    // `resumeFrom` the stream did not keep, or as a read that never saw the session's last
    // event.
    assert!(
        ["[gap]", "[resync]", "[expectation]"]
            .iter()
            .any(|rule| failure.message.contains(rule)),
        "{failure}"
    );

    // The written file is a transcript, a small one, and it replays the failure.
    let text = std::fs::read_to_string(&failure.file).expect("the minimal transcript");
    assert!(text.starts_with("# Minimal transcript"), "{text}");
    let minimal = Transcript::parse(&text).expect("a valid transcript");
    let actions = |t: &Transcript| {
        t.steps
            .iter()
            .map(|s| (s.at_ms, s.action.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(actions(&minimal), actions(&failure.transcript));
    assert_eq!(minimal.settings, failure.transcript.settings);
    assert!(minimal.steps.len() <= 8, "not shrunk:\n{text}");
    let replayed = buggy(&minimal);
    assert!(!replayed.is_ok());
    assert!(
        replayed
            .violations
            .iter()
            .all(|v| matches!(v.rule, Rule::Gap | Rule::Resync | Rule::Expectation)),
        "{replayed}"
    );
    // Without the bug, the same transcript passes: the broker is not to blame.
    replay_in_process(&minimal).assert_finished();
}
