//! The fixture files under `tests/data/` are checked against the official
//! `@ag-ui/core` 1.0.0 schemas by `tests/conformance/validate-events.mjs`:
//! `events.jsonl` is all valid, `invalid-events.jsonl` all invalid, and
//! `legacy-events.jsonl` invalid for the bare schema but accepted by the
//! client's compatibility boundary. These tests hold the Rust types to the
//! same verdicts.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use tether_agui::{EVENT_TYPES, Event, EventError, RunAgentInput, is_agui_type};

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn lines(name: &str) -> Vec<(usize, Value)> {
    let text = std::fs::read_to_string(data_file(name)).expect("fixture file is readable");
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("{name}:{}: not JSON: {err}", index + 1));
            (index + 1, value)
        })
        .collect()
}

#[test]
fn every_valid_fixture_round_trips_unchanged() {
    for (line, raw) in lines("events.jsonl") {
        let event = Event::from_value(raw.clone())
            .unwrap_or_else(|err| panic!("events.jsonl:{line}: {err}"));
        assert_eq!(
            event.to_value(),
            raw,
            "events.jsonl:{line} changed in a round trip"
        );
        assert_eq!(
            Some(event.type_name()),
            raw["type"].as_str(),
            "events.jsonl:{line}: type_name disagrees with the JSON"
        );
        assert!(
            event.dropped_members(&raw).is_empty(),
            "events.jsonl:{line} lost members"
        );

        let text = serde_json::to_string(&event).expect("serializes");
        let again: Event = serde_json::from_str(&text).expect("reads back its own JSON");
        assert_eq!(
            again, event,
            "events.jsonl:{line} differs after text round trip"
        );
    }
}

#[test]
fn the_fixtures_hold_every_event_type() {
    let seen: BTreeSet<String> = lines("events.jsonl")
        .into_iter()
        .map(|(_, raw)| raw["type"].as_str().expect("a type").to_owned())
        .collect();
    let all: BTreeSet<String> = EVENT_TYPES.iter().map(|name| (*name).to_owned()).collect();
    assert_eq!(seen, all);
    assert_eq!(EVENT_TYPES.len(), 31, "AG-UI 1.0 has 31 event types");
    assert!(EVENT_TYPES.iter().all(|name| is_agui_type(name)));
}

#[test]
fn every_invalid_fixture_is_refused() {
    for (line, raw) in lines("invalid-events.jsonl") {
        let result = Event::from_value(raw.clone());
        assert!(
            result.is_err(),
            "invalid-events.jsonl:{line} was accepted: {raw} -> {:?}",
            result.map(|event| event.to_value())
        );
    }
}

#[test]
fn errors_tell_unknown_types_from_invalid_events() {
    for (line, raw) in lines("invalid-events.jsonl") {
        let err = Event::from_value(raw.clone()).expect_err("invalid");
        match raw.get("type").and_then(Value::as_str) {
            None => assert!(matches!(err, EventError::NotAnEvent), "line {line}: {err}"),
            Some(name) if !is_agui_type(name) => {
                assert!(
                    matches!(err, EventError::UnknownType(_)),
                    "line {line}: {err}"
                )
            }
            Some(name) => match err {
                EventError::Invalid { type_name, .. } => assert_eq!(type_name, name),
                other => panic!("line {line}: expected Invalid, got {other}"),
            },
        }
    }
}

#[test]
fn legacy_nulls_read_as_absent_and_are_reported_dropped() {
    for (line, raw) in lines("legacy-events.jsonl") {
        let event = Event::from_value(raw.clone())
            .unwrap_or_else(|err| panic!("legacy-events.jsonl:{line}: {err}"));
        let written = event.to_value();
        assert!(
            !contains_null(&written),
            "legacy-events.jsonl:{line} wrote a null: {written}"
        );
        let dropped = event.dropped_members(&raw);
        assert!(
            !dropped.is_empty(),
            "legacy-events.jsonl:{line}: nothing reported dropped"
        );
        for pointer in &dropped {
            assert_eq!(
                raw.pointer(pointer),
                Some(&Value::Null),
                "line {line}: {pointer}"
            );
        }
    }
}

#[test]
fn run_agent_input_round_trips() {
    for (line, raw) in lines("run-agent-input.jsonl") {
        let input: RunAgentInput = serde_json::from_value(raw.clone())
            .unwrap_or_else(|err| panic!("run-agent-input.jsonl:{line}: {err}"));
        let written = serde_json::to_value(&input).expect("serializes");
        assert_eq!(
            written, raw,
            "run-agent-input.jsonl:{line} changed in a round trip"
        );
    }
}

fn contains_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(members) => members.values().any(contains_null),
        _ => false,
    }
}
