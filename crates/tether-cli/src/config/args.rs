//! From the file's entries to command-line arguments: each key is matched to its flag, its
//! value checked by the flag's own parser, and turned into `--flag=value` unless the command
//! line or the environment already gave the flag.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::{
    ConfigError, Entry, MAX_CONNECTIONS_PER_SESSION, NOT_SETTINGS, RUNBOOK_KEYS, Value, keys,
};

/// An error at a line of the file, before it is given the file's name.
type LineError = (usize, String);

/// Canonical key -> (name as written, line), to find a setting named twice.
type Seen<'a> = Vec<(String, &'a str, usize)>;

pub(crate) fn args_for(
    command: &Command,
    matches: &ArgMatches,
    file: &str,
    entries: &[Entry],
) -> Result<Vec<OsString>, ConfigError> {
    let mut seen = Seen::new();
    let mut out = Vec::new();
    for entry in entries {
        entry_args(command, matches, entry, &mut seen, &mut out).map_err(|(line, message)| {
            ConfigError {
                file: file.to_owned(),
                line: Some(line),
                message,
            }
        })?;
    }
    Ok(out)
}

/// Adds to `out` the arguments of one entry.
fn entry_args<'a>(
    command: &Command,
    matches: &ArgMatches,
    entry: &'a Entry,
    seen: &mut Seen<'a>,
    out: &mut Vec<OsString>,
) -> Result<(), LineError> {
    let written = entry.key.as_str();
    if written == MAX_CONNECTIONS_PER_SESSION {
        return one_connection(entry);
    }
    let canonical = RUNBOOK_KEYS
        .iter()
        .find(|(runbook, _)| *runbook == written)
        .map_or(written, |(_, key)| *key);
    let Some(arg) = command.get_arguments().find(|a| {
        a.get_long()
            .is_some_and(|l| !NOT_SETTINGS.contains(&l) && l.replace('-', "_") == canonical)
    }) else {
        return Err(unknown_key(command, entry));
    };
    named_once(seen, canonical, entry)?;
    seen.push((canonical.to_owned(), written, entry.line));

    let long = arg.get_long().unwrap_or_default();
    let values = values_of(arg, entry)?;
    // Each value goes through the flag's own parser here, so its error names the line.
    let is_switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    if !is_switch {
        check_values(arg, written, &values)?;
    }
    let given_elsewhere = matches!(
        matches.value_source(arg.get_id().as_str()),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    );
    if given_elsewhere {
        return Ok(());
    }
    for (v, _) in values {
        out.push(if is_switch {
            OsString::from(format!("--{long}"))
        } else {
            OsString::from(format!("--{long}={v}"))
        });
    }
    Ok(())
}

/// The runbook's `max_connections_per_session`, whose only supported value is 1.
fn one_connection(entry: &Entry) -> Result<(), LineError> {
    if entry.value != Value::Int("1".to_owned()) {
        let written = &entry.key;
        let got = entry.value.scalar_text().unwrap_or(entry.value.kind());
        return Err((
            entry.line,
            format!(
                "{written}: only 1 is supported, not {got}: tether keeps one connection per session, and `policy` (replace or reject) says what a second one does"
            ),
        ));
    }
    Ok(())
}

/// The error for a key that names no setting, listing the keys.
fn unknown_key(command: &Command, entry: &Entry) -> LineError {
    let mut known = keys(command);
    known.extend(RUNBOOK_KEYS.iter().map(|(k, _)| (*k).to_owned()));
    known.push(MAX_CONNECTIONS_PER_SESSION.to_owned());
    known.sort();
    (
        entry.line,
        format!(
            "{}: unknown key; the keys are {}",
            entry.key,
            known.join(", ")
        ),
    )
}

/// Refuses a setting the file already gave, under this name or another.
fn named_once(seen: &Seen<'_>, canonical: &str, entry: &Entry) -> Result<(), LineError> {
    let written = entry.key.as_str();
    let Some((_, first, first_line)) = seen.iter().find(|(c, ..)| c == canonical) else {
        return Ok(());
    };
    let message = if *first == written {
        format!(
            "{written}: given twice (lines {first_line} and {})",
            entry.line
        )
    } else {
        format!(
            "{written}: two names of one setting: {first} (line {first_line}) and {written} (line {})",
            entry.line
        )
    };
    Err((entry.line, message))
}

/// The values an entry gives its flag, each with its line: none or one (empty) for a switch,
/// one per item for a flag that can be repeated, one otherwise.
fn values_of(arg: &Arg, entry: &Entry) -> Result<Vec<(String, usize)>, LineError> {
    let wrong = |line: usize, what: &str, got: &Value| {
        (
            line,
            format!("{}: expects {what}, not {}", entry.key, got.kind()),
        )
    };
    Ok(match (arg.get_action(), &entry.value) {
        (ArgAction::SetTrue | ArgAction::SetFalse, Value::Bool(b)) => {
            let on = *b == matches!(arg.get_action(), ArgAction::SetTrue);
            if on {
                // A switch is given by its presence.
                vec![(String::new(), entry.line)]
            } else {
                Vec::new()
            }
        }
        (ArgAction::SetTrue | ArgAction::SetFalse, v) => {
            return Err(wrong(entry.line, "true or false", v));
        }
        (ArgAction::Append, Value::List(items)) => {
            let mut v = Vec::new();
            for (item, line) in items {
                match item.scalar_text() {
                    Some(t) => v.push((t.to_owned(), *line)),
                    None => return Err(wrong(*line, "a list of values", item)),
                }
            }
            v
        }
        (_, v @ (Value::List(_) | Value::Table | Value::Null)) => {
            return Err(wrong(entry.line, "one value", v));
        }
        (_, v) => vec![(v.scalar_text().unwrap_or_default().to_owned(), entry.line)],
    })
}

/// Runs each value through the flag's parser; the error is the parser's first line.
fn check_values(arg: &Arg, written: &str, values: &[(String, usize)]) -> Result<(), LineError> {
    let long = arg.get_long().unwrap_or_default();
    // The flag alone, without its environment variable, so only this value is read.
    let check = Command::new("config")
        .no_binary_name(true)
        .arg(arg.clone().env(None::<&str>).required(false));
    for (v, line) in values {
        if let Err(e) = check
            .clone()
            .try_get_matches_from([format!("--{long}={v}")])
        {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            return Err((*line, format!("{written}: {first}")));
        }
    }
    Ok(())
}
