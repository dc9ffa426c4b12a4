//! `tether`: the command-line tool of tether.
//!
//! `tether serve` runs the standalone hub: an in-memory broker behind every route of the HTTP
//! contract, with `/metrics` for Prometheus, graceful drain on SIGTERM or Ctrl-C, and the
//! socket settings long-lived streams need.
//!
//! ```text
//! tether serve --addr 127.0.0.1:8080 --publish-token s3cret
//! ```

mod self_publish;
mod serve;

use clap::{Parser, Subcommand};

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
    Serve(serve::ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::main(args),
    }
}
