//! Writing a transcript as JSON Lines, in the shape the parser reads and people write:
//! `at_ms` and `op` first, a one-event `publish` with `event`, a `config` line only for what
//! differs from the defaults or is stated.

use serde_json::{Map, Value};

use super::{Action, Settings, Transcript};

impl Transcript {
    /// Writes the transcript as JSON Lines: the `config` line (with the fields that are
    /// stated or not the defaults, if any), then one line per step, `at_ms` and `op` first.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        let Ok(Value::Object(all)) = serde_json::to_value(&self.settings) else {
            unreachable!("settings serialize to an object")
        };
        let Ok(Value::Object(defaults)) = serde_json::to_value(Settings::default()) else {
            unreachable!("settings serialize to an object")
        };
        let map: Map<String, Value> = all
            .into_iter()
            .filter(|(k, v)| self.stated.contains(k) || defaults.get(k) != Some(v))
            .collect();
        if !map.is_empty() {
            write_line(&mut out, None, "config", map);
        }
        for step in &self.steps {
            let Ok(Value::Object(mut map)) = serde_json::to_value(&step.action) else {
                unreachable!("actions serialize to objects")
            };
            map.remove("op");
            if let Action::Publish { events, .. } = &step.action
                && events.len() == 1
                && let Some(Value::Array(mut one)) = map.remove("events")
            {
                map.insert("event".into(), one.remove(0));
            }
            write_line(&mut out, step.at_ms, step.action.op(), map);
        }
        out
    }
}

fn write_line(out: &mut String, at_ms: Option<u64>, op: &str, map: Map<String, Value>) {
    out.push('{');
    if let Some(at) = at_ms {
        out.push_str(&format!("\"at_ms\":{at},"));
    }
    out.push_str("\"op\":");
    out.push_str(&Value::from(op).to_string());
    for (k, v) in map {
        out.push(',');
        out.push_str(&Value::from(k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push_str("}\n");
}
