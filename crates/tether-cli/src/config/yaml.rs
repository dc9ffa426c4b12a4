//! The YAML form of the file: one document, a mapping whose top-level keys are read with their
//! lines; nested tables are skipped whole and lists keep their scalars.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{Entry, ParseError, Value};

/// The parser's events, each with its line.
#[derive(Default)]
struct Events(Vec<(Event, usize)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark.line()));
    }
}

pub(crate) fn parse_yaml(text: &str) -> Result<Vec<Entry>, ParseError> {
    let mut events = Events::default();
    Parser::new_from_str(text)
        .load(&mut events, true)
        .map_err(|e| {
            (
                Some(e.marker().line()),
                format!("not valid YAML: {}", e.info()),
            )
        })?;
    let mut it = events.0.into_iter();
    let mut entries = Vec::new();
    let mut documents = 0;
    while let Some((ev, line)) = it.next() {
        match ev {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err((Some(line), "one YAML document only".to_owned()));
                }
            }
            Event::MappingStart(..) => mapping(&mut it, &mut entries)?,
            Event::Scalar(s, ..) if s.is_empty() => {}
            _ => {
                return Err((
                    Some(line),
                    "the file must be a mapping of `key: value` lines".to_owned(),
                ));
            }
        }
    }
    Ok(entries)
}

/// The entries of a top-level mapping, up to its end.
fn mapping(
    it: &mut impl Iterator<Item = (Event, usize)>,
    entries: &mut Vec<Entry>,
) -> Result<(), ParseError> {
    loop {
        let (key_ev, key_line) = it
            .next()
            .ok_or((None, "the mapping is not closed".to_owned()))?;
        let key = match key_ev {
            Event::MappingEnd => return Ok(()),
            Event::Scalar(k, ..) => k,
            _ => return Err((Some(key_line), "keys must be plain names".to_owned())),
        };
        let (val_ev, val_line) = it
            .next()
            .ok_or((Some(key_line), format!("{key}: no value")))?;
        let value = match val_ev {
            Event::Scalar(s, style, ..) => scalar(&s, style),
            Event::SequenceStart(..) => sequence(it),
            Event::MappingStart(..) => skip_table(it),
            Event::Alias(_) => {
                return Err((
                    Some(val_line),
                    format!("{key}: aliases are not supported; write the value"),
                ));
            }
            _ => return Err((Some(val_line), format!("{key}: no value"))),
        };
        entries.push(Entry {
            key,
            line: key_line,
            value,
        });
    }
}

/// A list, up to its end: its scalars with their lines, and a table for each nested list or
/// mapping.
fn sequence(it: &mut impl Iterator<Item = (Event, usize)>) -> Value {
    let mut items = Vec::new();
    let mut depth = 0usize;
    for (ev, l) in it.by_ref() {
        match ev {
            Event::SequenceEnd if depth == 0 => break,
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                items.push((Value::Table, l));
            }
            Event::SequenceEnd | Event::MappingEnd => depth -= 1,
            Event::Scalar(s, style, ..) if depth == 0 => {
                items.push((scalar(&s, style), l));
            }
            _ => {}
        }
    }
    Value::List(items)
}

/// A nested table, skipped up to its end.
fn skip_table(it: &mut impl Iterator<Item = (Event, usize)>) -> Value {
    let mut depth = 0usize;
    for (ev, _) in it.by_ref() {
        match ev {
            Event::MappingEnd | Event::SequenceEnd if depth == 0 => break,
            Event::MappingEnd | Event::SequenceEnd => depth -= 1,
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            _ => {}
        }
    }
    Value::Table
}

/// A scalar's value: a plain one is a boolean, an empty value, an integer or a number when it
/// reads as one; a quoted one is a string.
fn scalar(s: &str, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::Str(s.to_owned());
    }
    match s {
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        _ if s.parse::<i128>().is_ok() => Value::Int(s.to_owned()),
        _ if s.parse::<f64>().is_ok() => Value::Float(s.to_owned()),
        _ => Value::Str(s.to_owned()),
    }
}
