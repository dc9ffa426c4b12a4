//! `tether serve --config FILE`: the hub's settings from a YAML or a TOML file.
//!
//! A key is a flag's long name with `_` for `-` (`keepalive_secs`, `cors_origin`,
//! `jwt_secret_file`, ...), read from the command's definition, so every flag of `serve` has
//! its key, flags added later included. The runbook's own keys are read as written:
//! `keepalive_interval` (= `keepalive_secs`), `client_timeout` (= `client_timeout_secs`),
//! `reconnect_backoff_max` (= `reconnect_backoff_max_secs`) and
//! `max_connections_per_session`, whose only supported value is 1.
//!
//! A value from the file applies only where neither the command line nor the flag's
//! environment variable gave one: flag > environment > file > default. It is handed to clap
//! as `--flag=value` after the command line's own arguments, so the file's values go through
//! the same parsers and checks as a flag's. An unknown key, a value of the wrong type, two
//! names of one setting, or a value the flag refuses is an error naming the file, the line and
//! the key.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// The runbook's names of settings whose flags say it differently (runbook key, key).
pub(crate) const RUNBOOK_KEYS: &[(&str, &str)] = &[
    ("keepalive_interval", "keepalive_secs"),
    ("client_timeout", "client_timeout_secs"),
    ("reconnect_backoff_max", "reconnect_backoff_max_secs"),
];

/// The runbook's `max_connections_per_session`: tether keeps one connection per session.
pub(crate) const MAX_CONNECTIONS_PER_SESSION: &str = "max_connections_per_session";

/// Keys that are not settings.
const NOT_SETTINGS: &[&str] = &["help", "version", "config"];

/// What a value in the file is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer, in decimal.
    Int(String),
    /// A float, as written.
    Float(String),
    /// A string.
    Str(String),
    /// An empty value (`key:` or `null` in YAML).
    Null,
    /// A list of scalars, each with its line.
    List(Vec<(Value, usize)>),
    /// A nested table or mapping.
    Table,
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Null => "an empty value",
            Value::List(_) => "a list",
            Value::Table => "a table",
        }
    }

    fn scalar_text(&self) -> Option<&str> {
        match self {
            Value::Int(s) | Value::Float(s) | Value::Str(s) => Some(s),
            Value::Bool(true) => Some("true"),
            Value::Bool(false) => Some("false"),
            _ => None,
        }
    }
}

/// One top-level key of the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) line: usize,
    pub(crate) value: Value,
}

/// A configuration error: the file, the line (when known) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub(crate) file: String,
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Reads the file's top-level keys, by its extension: `.yml`/`.yaml` or `.toml`.
pub(crate) fn read(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let file = path.display().to_string();
    let err = |line, message: String| ConfigError {
        file: file.clone(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let parsed = match ext.as_deref() {
        Some("yml" | "yaml") => parse_yaml(&text),
        Some("toml") => parse_toml(&text),
        _ => Err((
            None,
            "the file must end in .yml, .yaml or .toml (its format)".to_owned(),
        )),
    };
    parsed.map_err(|(line, message)| err(line, message))
}

type ParseError = (Option<usize>, String);

/// The line (from 1) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

pub(crate) fn parse_toml(text: &str) -> Result<Vec<Entry>, ParseError> {
    use toml::de::{DeTable, DeValue};
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

pub(crate) fn parse_yaml(text: &str) -> Result<Vec<Entry>, ParseError> {
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    use yaml_rust2::scanner::{Marker, TScalarStyle};

    #[derive(Default)]
    struct Events(Vec<(Event, usize)>);
    impl MarkedEventReceiver for Events {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            self.0.push((ev, mark.line()));
        }
    }
    let mut events = Events::default();
    Parser::new_from_str(text)
        .load(&mut events, true)
        .map_err(|e| {
            (
                Some(e.marker().line()),
                format!("not valid YAML: {}", e.info()),
            )
        })?;
    let scalar = |s: &str, style: TScalarStyle| -> Value {
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
    };
    let mut it = events.0.into_iter().peekable();
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
            Event::MappingStart(..) => loop {
                let (key_ev, key_line) = it
                    .next()
                    .ok_or((None, "the mapping is not closed".to_owned()))?;
                let key = match key_ev {
                    Event::MappingEnd => break,
                    Event::Scalar(k, ..) => k,
                    _ => return Err((Some(key_line), "keys must be plain names".to_owned())),
                };
                let (val_ev, val_line) = it
                    .next()
                    .ok_or((Some(key_line), format!("{key}: no value")))?;
                let value = match val_ev {
                    Event::Scalar(s, style, ..) => scalar(&s, style),
                    Event::SequenceStart(..) => {
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
                    Event::MappingStart(..) => {
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
            },
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

/// The keys of `command`'s settings: each flag's long name with `_`.
pub(crate) fn keys(command: &Command) -> Vec<String> {
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_SETTINGS.contains(l))
        .map(|l| l.replace('-', "_"))
        .collect()
}

/// The arguments the file adds to `command`'s command line: `--flag=value` for each key whose
/// flag `matches` has from neither the command line nor the environment.
pub(crate) fn file_args(
    command: &Command,
    matches: &ArgMatches,
    path: &Path,
) -> Result<Vec<OsString>, ConfigError> {
    let entries = read(path)?;
    args_for(command, matches, &path.display().to_string(), &entries)
}

pub(crate) fn args_for(
    command: &Command,
    matches: &ArgMatches,
    file: &str,
    entries: &[Entry],
) -> Result<Vec<OsString>, ConfigError> {
    let err = |line: usize, message: String| ConfigError {
        file: file.to_owned(),
        line: Some(line),
        message,
    };
    // Canonical key -> (name as written, line), to find a setting named twice.
    let mut seen: Vec<(String, &str, usize)> = Vec::new();
    let mut out = Vec::new();
    for entry in entries {
        let written = entry.key.as_str();
        if written == MAX_CONNECTIONS_PER_SESSION {
            if entry.value != Value::Int("1".to_owned()) {
                let got = entry.value.scalar_text().unwrap_or(entry.value.kind());
                return Err(err(
                    entry.line,
                    format!(
                        "{written}: only 1 is supported, not {got}: tether keeps one connection per session, and `policy` (replace or reject) says what a second one does"
                    ),
                ));
            }
            continue;
        }
        let canonical = RUNBOOK_KEYS
            .iter()
            .find(|(runbook, _)| *runbook == written)
            .map_or(written, |(_, key)| *key);
        let Some(arg) = command.get_arguments().find(|a| {
            a.get_long()
                .is_some_and(|l| !NOT_SETTINGS.contains(&l) && l.replace('-', "_") == canonical)
        }) else {
            let mut known = keys(command);
            known.extend(RUNBOOK_KEYS.iter().map(|(k, _)| (*k).to_owned()));
            known.push(MAX_CONNECTIONS_PER_SESSION.to_owned());
            known.sort();
            return Err(err(
                entry.line,
                format!("{written}: unknown key; the keys are {}", known.join(", ")),
            ));
        };
        if let Some((_, first, first_line)) = seen.iter().find(|(c, ..)| c == canonical) {
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
            return Err(err(entry.line, message));
        }
        seen.push((canonical.to_owned(), written, entry.line));

        let long = arg.get_long().unwrap_or_default();
        let wrong = |line: usize, what: &str, got: &Value| {
            err(
                line,
                format!("{written}: expects {what}, not {}", got.kind()),
            )
        };
        let values: Vec<(String, usize)> = match (arg.get_action(), &entry.value) {
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
        };
        // Each value goes through the flag's own parser here, so its error names the line.
        let is_switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        if !is_switch {
            // The flag alone, without its environment variable, so only this value is read.
            let check = Command::new("config")
                .no_binary_name(true)
                .arg(arg.clone().env(None::<&str>).required(false));
            for (v, line) in &values {
                if let Err(e) = check
                    .clone()
                    .try_get_matches_from([format!("--{long}={v}")])
                {
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or_default();
                    let first = first.strip_prefix("error: ").unwrap_or(first);
                    return Err(err(*line, format!("{written}: {first}")));
                }
            }
        }
        let given_elsewhere = matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if given_elsewhere {
            continue;
        }
        for (v, _) in values {
            out.push(if is_switch {
                OsString::from(format!("--{long}"))
            } else {
                OsString::from(format!("--{long}={v}"))
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn serve() -> Command {
        crate::Cli::command()
            .find_subcommand("serve")
            .cloned()
            .unwrap()
    }

    fn apply(ext: &str, text: &str, flags: &[&str]) -> Result<Vec<String>, ConfigError> {
        let entries = match ext {
            "toml" => parse_toml(text),
            _ => parse_yaml(text),
        }
        .map_err(|(line, message)| ConfigError {
            file: format!("sse.{ext}"),
            line,
            message,
        })?;
        let cmd = serve();
        let matches = cmd
            .clone()
            .try_get_matches_from(std::iter::once("serve").chain(flags.iter().copied()))
            .unwrap();
        args_for(&cmd, &matches, &format!("sse.{ext}"), &entries).map(|v| {
            v.into_iter()
                .map(|s| s.into_string().unwrap())
                .collect::<Vec<_>>()
        })
    }

    const RUNBOOK: &str = "keepalive_interval: 15\nclient_timeout: 60\nmax_connections_per_session: 1\nreconnect_backoff_max: 30\n";

    #[test]
    fn the_runbooks_file_maps_to_flags() {
        assert_eq!(
            apply("yml", RUNBOOK, &[]).unwrap(),
            [
                "--keepalive-secs=15",
                "--client-timeout-secs=60",
                "--reconnect-backoff-max-secs=30"
            ]
        );
        let toml = "keepalive_interval = 15\nclient_timeout = 60\nmax_connections_per_session = 1\nreconnect_backoff_max = 30\n";
        assert_eq!(apply("toml", toml, &[]), apply("yml", RUNBOOK, &[]));
    }

    #[test]
    fn the_agent_proxy_settings_have_keys() {
        let yml = "agent_url: http://127.0.0.1:8000/\nagent_header:\n  - 'Authorization: Bearer k'\n  - 'x-tenant: blue'\nagent_timeout_secs: 30\n";
        let args = apply("yml", yml, &[]).unwrap();
        for a in [
            "--agent-url=http://127.0.0.1:8000/",
            "--agent-header=Authorization: Bearer k",
            "--agent-header=x-tenant: blue",
            "--agent-timeout-secs=30",
        ] {
            assert!(args.iter().any(|x| x == a), "{a} in {args:?}");
        }
    }

    #[test]
    fn every_flag_has_a_key() {
        let keys = keys(&serve());
        for k in [
            "addr",
            "keepalive_secs",
            "cors_origin",
            "jwt_secret_file",
            "log_file",
            "log_format",
            "reconnect_backoff_max_secs",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
        }
        assert!(!keys.iter().any(|x| x == "config" || x == "help"));
        let args = apply(
            "yml",
            "dev: true\nno_agui: false\ncors_origin:\n  - https://a\n  - https://b\npolicy: reject\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            args,
            [
                "--dev",
                "--cors-origin=https://a",
                "--cors-origin=https://b",
                "--policy=reject"
            ]
        );
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let args = apply("yml", RUNBOOK, &["--keepalive-secs", "5"]).unwrap();
        assert!(
            !args.iter().any(|a| a.starts_with("--keepalive-secs")),
            "{args:?}"
        );
        assert!(args.iter().any(|a| a == "--client-timeout-secs=60"));
    }

    fn error(ext: &str, text: &str) -> String {
        apply(ext, text, &[]).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key_and_its_line() {
        let e = error("yml", "keepalive_interval: 15\nkeepalive_intervl: 15\n");
        assert!(
            e.starts_with("sse.yml:2: keepalive_intervl: unknown key"),
            "{e}"
        );
        let e = error("yml", "\nclient_timeout: soon\n");
        assert!(
            e.starts_with("sse.yml:2: client_timeout: invalid value 'soon'"),
            "{e}"
        );
        let e = error("yml", "dev: 1\n");
        assert!(
            e.starts_with("sse.yml:1: dev: expects true or false, not an integer"),
            "{e}"
        );
        let e = error("yml", "addr:\n  host: x\n");
        assert!(
            e.starts_with("sse.yml:1: addr: expects one value, not a table"),
            "{e}"
        );
        let e = error(
            "yml",
            "keepalive_interval: 15\nclient_timeout: 60\nkeepalive_secs: 20\n",
        );
        assert!(
            e.starts_with(
                "sse.yml:3: keepalive_secs: two names of one setting: keepalive_interval (line 1)"
            ),
            "{e}"
        );
        let e = error("yml", "max_connections_per_session: 2\n");
        assert!(
            e.starts_with("sse.yml:1: max_connections_per_session: only 1 is supported, not 2"),
            "{e}"
        );
        let e = error("yml", "client_timeout: 0\n");
        assert!(
            e.starts_with("sse.yml:1: client_timeout: invalid value '0'"),
            "{e}"
        );
        let e = error("yml", "ring_events: 8\nring_events: 9\n");
        assert!(
            e.starts_with("sse.yml:2: ring_events: given twice (lines 1 and 2)"),
            "{e}"
        );
        let e = error("toml", "a = 1\n\nkeepalive_interval = \"fast\"\n");
        assert!(e.starts_with("sse.toml:1: a: unknown key"), "{e}");
        let e = error("toml", "ring_bytes = 10\n\nkeepalive_interval = \"fast\"\n");
        assert!(
            e.starts_with("sse.toml:3: keepalive_interval: invalid value 'fast'"),
            "{e}"
        );
        let e = error("toml", "[limits]\nring_bytes = 10\n");
        assert!(e.starts_with("sse.toml:1: limits: unknown key"), "{e}");
        let e = error("toml", "ring_bytes = = 10\n");
        assert!(e.starts_with("sse.toml:1: not valid TOML"), "{e}");
        let e = error("yml", "ring_bytes: [1\n");
        assert!(e.contains("not valid YAML"), "{e}");
    }
}
