//! The exact bytes every event serializes to.
//!
//! Each event of `tests/data/events.jsonl` and `tests/data/legacy-events.jsonl`
//! is read twice: as it stands, and with every field common to AG-UI events
//! (`subagentRunId`, `timestamp`, `rawEvent`, `metadata`) set. Each reading is
//! written back with `serde_json::to_string` and compared byte for byte, member
//! order included, with its line in `tests/data/events.serialized.jsonl`.
//! A type that does not carry one of the common fields drops it, and the file
//! records that too.
//!
//! `UPDATE_GOLDEN=1 cargo test -p tether-agui --test serialized_bytes`
//! rewrites the file after an intended change of the wire format.

use std::path::PathBuf;

use serde_json::{Value, json};
use tether_agui::Event;

const GOLDEN: &str = "events.serialized.jsonl";

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn events(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(data_file(name)).expect("fixture file is readable");
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("fixture line is JSON"))
        .collect()
}

fn with_common_fields(mut raw: Value) -> Value {
    let object = raw.as_object_mut().expect("an event is an object");
    object
        .entry("subagentRunId")
        .or_insert_with(|| json!("sub-1"));
    object.insert("timestamp".into(), json!(1_700_000_000_000_i64));
    object.insert("rawEvent".into(), json!({"provider": "p", "n": [1, 2]}));
    object.insert("metadata".into(), json!({"k": "v", "ag-ui": {"x": 1}}));
    raw
}

fn serialized() -> String {
    let mut out = String::new();
    for name in ["events.jsonl", "legacy-events.jsonl"] {
        for raw in events(name) {
            for raw in [raw.clone(), with_common_fields(raw)] {
                let event = Event::from_value(raw.clone())
                    .unwrap_or_else(|err| panic!("{name}: {raw}: {err}"));
                out.push_str(&serde_json::to_string(&event).expect("serializes"));
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn every_event_serializes_to_the_recorded_bytes() {
    let actual = serialized();
    let path = data_file(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("golden file is writable");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("golden file is readable");
    for (index, (actual, expected)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(actual, expected, "{GOLDEN}:{} differs", index + 1);
    }
    assert_eq!(
        actual.lines().count(),
        expected.lines().count(),
        "{GOLDEN} holds a different number of events"
    );
}
