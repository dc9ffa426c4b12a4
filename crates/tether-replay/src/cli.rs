//! `tether replay`: replays a transcript file and prints a report.

use std::process::ExitCode;
use std::time::Duration;

use crate::Report;
use crate::driver::{Http, HttpOptions};
use crate::spawn::Hub;
use crate::transcript::Transcript;

const USAGE: &str = "\
usage: tether replay FILE [--url URL | --spawn] [--token TOKEN] [--time-scale F] [--slack-ms MS]

Replays the transcript FILE (JSON Lines, see TRANSCRIPTS.md) and checks the invariants.
  --url URL         the service (http://host:port[/prefix]) exposing tether's HTTP routes.
                    The settings the transcript needs (its config line) are compared with
                    those the service reports on /health/sse first: any difference is named
                    and nothing runs. Without --url or --spawn, the transcript runs against an
                    in-process broker built from its config line, on a paused clock
  --spawn           start `tether serve --dev --addr 127.0.0.1:0` (this executable) with the
                    transcript's settings, scaled by --time-scale, replay against it, stop it.
                    The hub's flags take whole seconds: a keepalive or client timeout the
                    transcript states must come out whole at the time scale
  --token TOKEN     sent as `Authorization: Bearer TOKEN`
  --time-scale F    real time per transcript time over HTTP (0.1: ten times faster; the
                    server's keepalive, client timeout and deadlines must be scaled alike);
                    default 1
  --slack-ms MS     added to every wait and to the silence tolerance over HTTP; default 1000

Exit status: 0 when every expectation and invariant holds, 1 on a violation, 2 when the
command line or the transcript cannot be read or the hub cannot start, 3 when the server's
settings differ from those the transcript needs.";

#[derive(Debug, Default, PartialEq)]
struct Args {
    file: String,
    url: Option<String>,
    spawn: bool,
    options: HttpOptions,
}

fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut it = args.iter().map(String::as_str).peekable();
    if it.peek() == Some(&"replay") {
        it.next();
    }
    let mut out = Args::default();
    let mut file = None;
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .map(str::to_owned)
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a {
            "-h" | "--help" => return Ok(None),
            "--url" => out.url = Some(value(a)?),
            "--spawn" => out.spawn = true,
            "--token" => out.options.token = Some(value(a)?),
            "--time-scale" => {
                let v = value(a)?;
                out.options.time_scale = v
                    .parse()
                    .ok()
                    .filter(|f: &f64| *f > 0.0 && f.is_finite())
                    .ok_or_else(|| format!("--time-scale {v}: not a positive number"))?;
            }
            "--slack-ms" => {
                let v = value(a)?;
                out.options.slack = Duration::from_millis(
                    v.parse()
                        .map_err(|_| format!("--slack-ms {v}: not a number of milliseconds"))?,
                );
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            f if file.is_none() => file = Some(f.to_owned()),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    out.file = file.ok_or("no transcript FILE given")?;
    if out.spawn && out.url.is_some() {
        return Err("--url and --spawn exclude each other".into());
    }
    Ok(Some(out))
}

/// The `tether replay` command: `replay FILE [--url URL | --spawn] [--token T]
/// [--time-scale F] [--slack-ms MS]` (the leading `replay` is optional). Prints the report
/// (steps, clients, events, violations) to stdout; returns exit status 1 when a rule was
/// broken, 2 when the arguments or the transcript cannot be read (or the hub cannot start),
/// 3 when the server's settings differ from those the transcript needs.
///
/// Without `--url` or `--spawn` the transcript runs in process on a thread of its own, so
/// this may be awaited on any runtime. `--spawn` runs `serve` of the current executable,
/// which is the `tether` binary when called from it.
pub async fn run_cli(args: &[String]) -> ExitCode {
    let args = match parse(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tether replay: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match replay(&args).await {
        Ok(report) => verdict(&report),
        Err(code) => code,
    }
}

/// Reads the transcript and replays it where the arguments say.
async fn replay(args: &Args) -> Result<Report, ExitCode> {
    let transcript = read_transcript(&args.file)?;
    let hub = if args.spawn {
        Some(start_hub(args, &transcript).await?)
    } else {
        None
    };
    let url = hub
        .as_ref()
        .map(|h| h.url().to_owned())
        .or(args.url.clone());
    match &url {
        Some(url) => {
            let report = against(args, &transcript, url).await;
            if let Some(h) = hub {
                h.stop().await;
            }
            report
        }
        None => in_process(args, &transcript),
    }
}

/// Reads and parses the transcript `file`.
fn read_transcript(file: &str) -> Result<Transcript, ExitCode> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        eprintln!("tether replay: {file}: {e}");
        ExitCode::from(2)
    })?;
    Transcript::parse(&text).map_err(|e| {
        eprintln!("tether replay: {file}:{}: {}", e.line, e.message);
        ExitCode::from(2)
    })
}

/// Starts a hub with the settings the transcript needs (`--spawn`).
async fn start_hub(args: &Args, transcript: &Transcript) -> Result<Hub, ExitCode> {
    let serve = crate::spawn::serve_args(transcript, args.options.time_scale).map_err(|e| {
        eprintln!("tether replay: {}: {e}", args.file);
        ExitCode::from(2)
    })?;
    let hub = Hub::start(&serve).await.map_err(|e| {
        eprintln!("tether replay: {e}");
        ExitCode::from(2)
    })?;
    println!("started a hub at {}: tether {}", hub.url(), serve.join(" "));
    Ok(hub)
}

/// Replays in process, on a thread of its own (so that any runtime may await the CLI).
fn in_process(args: &Args, transcript: &Transcript) -> Result<Report, ExitCode> {
    println!(
        "replaying {} ({} steps) in process",
        args.file,
        transcript.steps.len()
    );
    let t = transcript.clone();
    std::thread::spawn(move || crate::replay_in_process(&t))
        .join()
        .map_err(|_| {
            eprintln!("tether replay: the in-process replay panicked");
            ExitCode::from(2)
        })
}

/// Prints the report and its verdict; exit status 1 when a rule was broken.
fn verdict(report: &Report) -> ExitCode {
    print!("{report}");
    if report.is_ok() {
        println!("OK");
        ExitCode::SUCCESS
    } else {
        println!("FAILED");
        ExitCode::from(1)
    }
}

/// Checks the server's settings, then replays over HTTP.
async fn against(args: &Args, transcript: &Transcript, url: &str) -> Result<Report, ExitCode> {
    let mut driver = Http::new(url, args.options.clone()).map_err(|e| {
        eprintln!("tether replay: {e}");
        ExitCode::from(2)
    })?;
    let needs = transcript.server_needs();
    match driver.server_settings().await {
        Ok(Some(server)) => {
            let diff = transcript.compare_settings(&server, args.options.time_scale);
            if !diff.is_empty() {
                eprintln!(
                    "tether replay: {} needs server settings that {url} does not have (time scale {}):",
                    args.file, args.options.time_scale
                );
                for d in &diff {
                    eprintln!("  {d}");
                }
                eprintln!(
                    "Start the server with these settings, or let `tether replay --spawn` start a hub with them."
                );
                return Err(ExitCode::from(3));
            }
        }
        Ok(None) if !needs.is_empty() => eprintln!(
            "tether replay: warning: {url} does not report its settings on /health/sse; cannot check {}",
            needs.join(", ")
        ),
        Ok(None) => {}
        Err(e) if !needs.is_empty() => eprintln!(
            "tether replay: warning: cannot read the server's settings ({e}); cannot check {}",
            needs.join(", ")
        ),
        Err(_) => {}
    }
    println!(
        "replaying {} ({} steps) against {url}",
        args.file,
        transcript.steps.len()
    );
    Ok(driver.run(transcript).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn arguments() {
        let a = parse(&args(
            "replay f.jsonl --url http://127.0.0.1:1 --token t --time-scale 0.5",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(a.file, "f.jsonl");
        assert_eq!(a.url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(a.options.token.as_deref(), Some("t"));
        assert_eq!(a.options.time_scale, 0.5);
        assert!(parse(&args("f.jsonl")).unwrap().is_some());
        assert!(parse(&args("--help")).unwrap().is_none());
        assert!(parse(&args("replay")).is_err());
        assert!(parse(&args("f --url")).is_err());
        assert!(parse(&args("f --time-scale 0")).is_err());
        assert!(parse(&args("f --bogus")).is_err());
        assert!(parse(&args("f g")).is_err());
        assert!(parse(&args("f --spawn")).unwrap().unwrap().spawn);
        assert!(parse(&args("f --spawn --url http://x")).is_err());
    }
}
