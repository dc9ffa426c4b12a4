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

/// `Event::from_slice` (and `str::parse`) reads a document straight into its event's struct when it can; the
/// answer must be the tree's (`Event::from_value`), event or error, for every fixture and for
/// the variants of each that take the other path: a member removed or set to `null`, the
/// `type` repeated, unknown, escaped or not a string, the object inside an array, an array of
/// the fields' values, leading
/// whitespace, trailing bytes.
#[test]
fn parsing_from_bytes_agrees_with_parsing_the_tree() {
    fn through_tree(json: &[u8]) -> String {
        let answer = match serde_json::from_slice::<Value>(json) {
            Ok(value) => Event::from_value(value),
            Err(e) => Err(EventError::Json(e)),
        };
        format!("{answer:?}")
    }
    let mut documents: Vec<String> = Vec::new();
    for file in [
        "events.jsonl",
        "invalid-events.jsonl",
        "legacy-events.jsonl",
    ] {
        for (_, raw) in lines(file) {
            let text = raw.to_string();
            documents.push(format!("[{text}]"));
            documents.push(format!(" \n\t{text}"));
            documents.push(format!("{text} x"));
            if let Some(object) = raw.as_object() {
                let body = text.strip_prefix('{').expect("an object");
                documents.push(format!(r#"{{"type":"RUN_ERROR","message":"m",{body}"#));
                let ty = object.get("type").and_then(Value::as_str).unwrap_or("");
                documents.push(text.replacen(
                    &format!(r#""type":"{ty}""#),
                    &format!(r#""type":"{}""#, ty.replace('_', "\\u005f")),
                    1,
                ));
                // A second `type`, spelled with an escape, and a nested one.
                documents.push(format!(
                    r#"{},"typ\u0065":"RUN_ERROR","message":"m"}}"#,
                    &text[..text.len() - 1]
                ));
                documents.push(format!(
                    r#"{},"rawEvent":{{"type":"RUN_STARTED"}}}}"#,
                    &text[..text.len() - 1]
                ));
                documents.push(format!(
                    r#"{},"type":"RUN_ERROR","message":"m"}}"#,
                    &text[..text.len() - 1]
                ));
                for key in object.keys() {
                    let mut without = object.clone();
                    without.remove(key);
                    documents.push(Value::Object(without).to_string());
                    let mut nulled = object.clone();
                    nulled.insert(key.clone(), Value::Null);
                    documents.push(Value::Object(nulled).to_string());
                }
                for ty in [json_str("NOT_A_TYPE"), json_str(""), "7".into()] {
                    let mut retyped = object.clone();
                    retyped.insert("type".into(), serde_json::from_str(&ty).expect("JSON"));
                    documents.push(Value::Object(retyped).to_string());
                }
            }
            documents.push(text);
        }
    }
    // Arrays a struct would read by position.
    for ty in EVENT_TYPES {
        documents.push(format!(r#"["{ty}"]"#));
        documents.push(format!(r#"["{ty}","t","r"]"#));
    }
    for doc in &documents {
        let tree = through_tree(doc.as_bytes());
        assert_eq!(
            format!("{:?}", Event::from_slice(doc.as_bytes())),
            tree,
            "{doc}"
        );
        assert_eq!(format!("{:?}", doc.parse::<Event>()), tree, "{doc}");
    }
    assert!(documents.len() > 500, "{} documents", documents.len());
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}
