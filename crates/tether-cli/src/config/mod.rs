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

mod args;
mod toml;
mod yaml;

use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use clap::{ArgMatches, Command};

use self::args::args_for;
use self::toml::parse_toml;
use self::yaml::parse_yaml;

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
