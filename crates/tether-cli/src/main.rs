//! `tether`: the command-line tool of tether.
//!
//! `tether serve` runs the standalone hub: an in-memory broker behind every route of the HTTP
//! contract, with `/metrics` for Prometheus, graceful drain on SIGTERM or Ctrl-C, and the
//! socket settings long-lived streams need. `tether probe URL` validates a service from the
//! outside the way the runbook asks: it holds a stream and reports what the path did to it.
//! `tether replay` runs a transcript of the replay
//! harness against a service and reports every broken guarantee.
//!
//! ```text
//! tether serve --addr 127.0.0.1:8080 --jwt-secret-file /etc/tether/jwt.key --publish-token s3cret
//! tether probe http://127.0.0.1:8080 --duration 300 --publish-token s3cret
//! tether serve --config /etc/tether/sse.yml --log-file /var/log/tether/sse.log
//! tether health http://127.0.0.1:8080/health/live
//! ```

mod agent_proxy;
mod auth;
mod config;
mod health;
mod limits;
mod logging;
mod probe;
mod self_publish;
mod serve;

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// tether: streams live events to browsers over Server-Sent Events without losing one.
#[derive(Debug, Parser)]
#[command(name = "tether", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the standalone hub: publish over HTTP, subscribe with EventSource.
    Serve(Box<serve::ServeArgs>),
    /// Validate a service from the outside: hold a stream and report what the path did to it.
    ///
    /// Checks the headers, the `retry:` hint, heartbeats, buffering on the path, drops, an
    /// exact resume, a resync for an evicted id and `/health/sse`. Exit code 0 when no check
    /// failed, 1 when one did, 2 when the probe could not run.
    Probe(probe::ProbeArgs),
    /// Replay a transcript against a service (`--url URL`) or in process, and check every
    /// guarantee: order, no duplicates, no silent gap, heartbeats, approvals decided once.
    /// Usage: `tether replay FILE [--url URL | --spawn] [--token T] [--time-scale F] [--slack-ms MS]`;
    /// `--spawn` starts a hub with the settings the transcript states.
    Replay {
        /// The transcript file and the options above.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// GET a URL and exit 0 on a 2xx answer (1 otherwise, 2 when unreachable): the
    /// container's health check, since the image has no curl.
    Health(health::HealthArgs),
}

/// Parses the command line; for `serve --config FILE` (or `TETHER_CONFIG`), the file's
/// settings join it where neither a flag nor its environment variable gave one.
fn parse(argv: Vec<OsString>) -> Result<Cli, String> {
    let command = Cli::command();
    let matches = command
        .clone()
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| e.exit());
    let extra = match matches.subcommand() {
        Some(("serve", serve)) => match serve.get_one::<std::path::PathBuf>("config") {
            Some(path) => {
                let serve_command = command.find_subcommand("serve").ok_or("no serve command")?;
                config::file_args(serve_command, serve, path).map_err(|e| e.to_string())?
            }
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    let matches = if extra.is_empty() {
        matches
    } else {
        command
            .try_get_matches_from(argv.into_iter().chain(extra))
            .unwrap_or_else(|e| e.exit())
    };
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("tether: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Health(args) => health::main(args),
        Command::Serve(args) => serve::main(*args),
        Command::Probe(args) => probe::main(args),
        Command::Replay { args } => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(tether_replay::run_cli(&args)),
            Err(e) => {
                eprintln!("tether: cannot start the runtime: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
