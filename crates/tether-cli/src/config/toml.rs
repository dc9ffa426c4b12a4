//! The TOML form of the file: its top-level keys, each with its line.

use super::{Entry, ParseError, Value};

/// The line (from 1) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

pub(crate) fn parse_toml(text: &str) -> Result<Vec<Entry>, ParseError> {
    use ::toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        (line, format!("not valid TOML: {}", e.message()))
    })?;
    fn value(v: &DeValue<'_>, text: &str, depth: usize) -> Value {
        match v {
            DeValue::String(s) => Value::Str(s.to_string()),
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                match i128::from_str_radix(&digits, i.radix()) {
                    Ok(n) => Value::Int(n.to_string()),
                    Err(_) => Value::Str(i.to_string()),
                }
            }
            DeValue::Float(f) => Value::Float(f.as_str().to_owned()),
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(d) => Value::Str(d.to_string()),
            DeValue::Array(items) if depth == 0 => Value::List(
                items
                    .iter()
                    .map(|item| {
                        (
                            value(item.get_ref(), text, depth + 1),
                            line_of(text, item.span().start),
                        )
                    })
                    .collect(),
            ),
            DeValue::Array(_) => Value::List(Vec::new()),
            DeValue::Table(_) => Value::Table,
        }
    }
    let mut entries: Vec<Entry> = root
        .get_ref()
        .iter()
        .map(|(k, v)| Entry {
            key: k.get_ref().to_string(),
            line: line_of(text, k.span().start),
            value: value(v.get_ref(), text, 0),
        })
        .collect();
    entries.sort_by_key(|e| e.line);
    Ok(entries)
}
