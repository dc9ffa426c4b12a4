//! Every shipped transcript replays cleanly against the in-process broker: all its
//! expectations and every invariant hold.

use std::path::PathBuf;

use tether_replay::{Transcript, replay_in_process};

fn shipped() -> Vec<(String, Transcript)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("transcripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the transcripts directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("a readable transcript");
            let t = Transcript::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, t)
        })
        .collect()
}

#[test]
fn every_shipped_transcript_passes_in_process() {
    let all = shipped();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "agui_text_streaming.jsonl",
            "flapping_network.jsonl",
            "reconnect_storm.jsonl",
            "slow_reader.jsonl",
            "tool_call_approval.jsonl"
        ]
    );
    for (name, t) in &all {
        let report = replay_in_process(t);
        assert!(report.is_ok(), "{name}:\n{report}");
    }
}

#[test]
fn the_storm_has_a_hundred_clients_that_each_reconnect() {
    let (_, t) = shipped()
        .into_iter()
        .find(|(n, _)| n == "reconnect_storm.jsonl")
        .unwrap();
    let report = replay_in_process(&t);
    report.assert_finished();
    assert_eq!(report.log.clients.len(), 100);
    for c in report.log.clients.values() {
        assert_eq!(c.connections.len(), 2);
        assert_eq!(c.event_count(), 5);
    }
}

#[test]
fn the_slow_reader_gets_a_resync_then_a_timeout() {
    let (_, t) = shipped()
        .into_iter()
        .find(|(n, _)| n == "slow_reader.jsonl")
        .unwrap();
    let report = replay_in_process(&t);
    report.assert_finished();
    let reader = &report.log.clients["reader"];
    assert_eq!(reader.signals("tether.resync").len(), 1);
    let first = &reader.connections[0];
    assert_eq!(
        first.end.map(|e| e.by),
        Some(tether_replay::log::EndedBy::Server)
    );
}

#[test]
fn shipped_transcripts_round_trip_through_the_writer() {
    for (name, t) in shipped() {
        let again = Transcript::parse(&t.to_jsonl()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(again.settings, t.settings, "{name}");
        let actions = |t: &Transcript| {
            t.steps
                .iter()
                .map(|s| (s.at_ms, s.action.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(actions(&again), actions(&t), "{name}");
    }
}
