//! Events built with the Rust types serialize to JSON that
//! `tests/data/events.jsonl` (checked against the official 1.0 schemas) proves
//! valid, and leave unset optional fields out rather than writing `null`.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;
use tether_agui::{EVENT_TYPES, Event};

fn fixture_values() -> Vec<Value> {
    let text = std::fs::read_to_string(common::data_dir().join("events.jsonl"))
        .expect("events.jsonl is readable");
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("fixture line is JSON"))
        .collect()
}

fn types_of(events: &[Event]) -> BTreeSet<&'static str> {
    events.iter().map(Event::type_name).collect()
}

#[test]
fn every_built_event_equals_a_valid_fixture() {
    let fixtures = fixture_values();
    for event in common::built_events() {
        let json = event.to_value();
        assert!(
            fixtures.contains(&json),
            "{} built in Rust matches no line of events.jsonl:\n{json}",
            event.type_name()
        );
    }
}

#[test]
fn the_built_events_cover_every_type() {
    let all: BTreeSet<&str> = EVENT_TYPES.iter().copied().collect();
    assert_eq!(types_of(&common::built_events()), all);
    assert_eq!(types_of(&common::minimal_events()), all);
}

#[test]
fn unset_optional_fields_are_absent_not_null() {
    let planted =
        serde_json::json!({"type": "CUSTOM", "name": "n", "value": null, "subagentRunId": null});
    assert_eq!(
        common::protocol_null(&planted).as_deref(),
        Some("/subagentRunId")
    );
    for event in common::built_events()
        .into_iter()
        .chain(common::minimal_events())
    {
        let json = event.to_value();
        let text = serde_json::to_string(&event).expect("serializes");
        assert_eq!(serde_json::from_str::<Value>(&text).expect("JSON"), json);
        assert_eq!(common::protocol_null(&json), None, "null written: {json}");
    }
}

/// The members each type requires in @ag-ui/core 1.0.0's schemas.
const REQUIRED: &[(&str, &[&str])] = &[
    ("TEXT_MESSAGE_START", &["messageId"]),
    ("TEXT_MESSAGE_CONTENT", &["messageId", "delta"]),
    ("TEXT_MESSAGE_END", &["messageId"]),
    ("TEXT_MESSAGE_CHUNK", &[]),
    ("TOOL_CALL_START", &["toolCallId", "toolCallName"]),
    ("TOOL_CALL_ARGS", &["toolCallId", "delta"]),
    ("TOOL_CALL_END", &["toolCallId"]),
    ("TOOL_CALL_CHUNK", &[]),
    ("TOOL_CALL_RESULT", &["messageId", "toolCallId", "content"]),
    ("STATE_SNAPSHOT", &["snapshot"]),
    ("STATE_DELTA", &["delta"]),
    ("MESSAGES_SNAPSHOT", &["messages"]),
    (
        "ACTIVITY_SNAPSHOT",
        &["messageId", "activityType", "content"],
    ),
    ("ACTIVITY_DELTA", &["messageId", "activityType", "patch"]),
    ("RAW", &["event"]),
    ("CUSTOM", &["name", "value"]),
    ("RUN_STARTED", &["threadId", "runId"]),
    ("RUN_FINISHED", &["threadId", "runId"]),
    ("RUN_ERROR", &["message"]),
    ("STEP_STARTED", &["stepName"]),
    ("STEP_FINISHED", &["stepName"]),
    ("REASONING_START", &["messageId"]),
    ("REASONING_MESSAGE_START", &["messageId", "role"]),
    ("REASONING_MESSAGE_CONTENT", &["messageId", "delta"]),
    ("REASONING_MESSAGE_END", &["messageId"]),
    ("REASONING_MESSAGE_CHUNK", &[]),
    ("REASONING_END", &["messageId"]),
    (
        "REASONING_ENCRYPTED_VALUE",
        &["subtype", "entityId", "encryptedValue"],
    ),
    ("SUBAGENT_STARTED", &["subagentRunId", "name"]),
    ("SUBAGENT_FINISHED", &["subagentRunId"]),
    ("SUBAGENT_ERROR", &["subagentRunId", "message"]),
];

#[test]
fn a_minimal_event_writes_only_its_required_members() {
    assert_eq!(REQUIRED.len(), EVENT_TYPES.len());
    for event in common::minimal_events() {
        let json = event.to_value();
        let written: BTreeSet<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .filter(|key| *key != "type")
            .collect();
        let (_, required) = REQUIRED
            .iter()
            .find(|(name, _)| *name == event.type_name())
            .expect("every type is listed");
        let required: BTreeSet<&str> = required.iter().copied().collect();
        assert_eq!(written, required, "{}", event.type_name());
    }
}

#[test]
fn a_required_member_missing_is_refused() {
    for event in common::minimal_events() {
        let json = event.to_value();
        for key in json.as_object().expect("an object").keys() {
            if key == "type" {
                continue;
            }
            let mut without = json.clone();
            without.as_object_mut().expect("an object").remove(key);
            assert!(
                Event::from_value(without).is_err(),
                "{} accepted without `{key}`",
                event.type_name()
            );
        }
    }
}
