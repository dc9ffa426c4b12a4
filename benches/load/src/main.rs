//! Run with: cargo run --release -p tether-load -- --url http://127.0.0.1:8080 --server-pid PID throughput

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use tether_load::{
    client::{ServerKind, Target},
    evicted::{self, EvictedOptions, Repeat},
    flood::{self, FloodOptions},
    report,
    scenario::{
        self, Events, Publish, ReconnectOptions, RunConfig, ScenarioResult, StormOptions,
        StreamOptions,
    },
};

/// Load generator for SSE servers speaking tether's HTTP contract (loopback targets only).
///
/// Each scenario prints a human line and a JSON line on stdout; `--json-out` appends the JSON
/// line to a file, which `report` turns into tables and a chart.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Base URL of the server under test.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's process id, for RSS and CPU readings from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Publish to this base URL instead of `--url` (another node of the same deployment, so
    /// every event crosses the backplane between them).
    #[arg(long, global = true)]
    publish_url: Option<String>,
    /// A process whose CPU time counts as the server's (another node, Redis, nginx's worker);
    /// repeat it.
    #[arg(long = "cpu-pid", global = true)]
    cpu_pids: Vec<u32>,
    /// A process whose resident memory counts as the server's (nginx's worker); repeat it.
    #[arg(long = "rss-pid", global = true)]
    rss_pids: Vec<u32>,
    /// How the server answers its publish route: `contract` (202 `{"ids":[...]}`) or `nchan`
    /// (201 or 202 with channel info; every request body is one message, so only one event
    /// per request: `--batch 1`).
    #[arg(long, global = true, value_enum, default_value = "contract")]
    server_kind: Kind,
    /// Name of the server in the results.
    #[arg(long, global = true, default_value = "server")]
    label: String,
    /// Round number in the results.
    #[arg(long, global = true, default_value_t = 1)]
    round: u32,
    /// Append the JSON result line to this file.
    #[arg(long, global = true)]
    json_out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, global = true)]
    no_progress: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// tether's HTTP contract (tether, the baselines).
    Contract,
    /// nginx with nchan: a publisher and an EventSource subscriber location.
    Nchan,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PublishMode {
    /// The generator posts to the publish route: JSON-array batches, or one JSON object per
    /// request with `--batch 1`.
    Http,
    /// The server publishes in-process (start it with `--self-publish RATE`).
    #[value(name = "self")]
    InProcess,
}

#[derive(clap::Args)]
struct Common {
    /// Size of each event's JSON in bytes.
    #[arg(long, default_value_t = 200)]
    event_bytes: usize,
    /// Seconds before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

#[derive(Subcommand)]
enum Command {
    /// Fan-out throughput: one client per session, events as fast as the server takes them.
    Throughput {
        /// Sessions, one SSE client each.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Who publishes.
        #[arg(long, value_enum, default_value = "http")]
        publish: PublishMode,
        /// With `--publish http`: events/s to offer (unlimited when absent). With `--publish
        /// self`: the rate the server was started with, for the record.
        #[arg(long)]
        rate: Option<u64>,
        /// Events per publish request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Concurrent publishing connections.
        #[arg(long, default_value_t = 8)]
        publishers: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Publish-to-receive latency at a fixed rate.
    Latency {
        /// Sessions, one SSE client each.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Who publishes.
        #[arg(long, value_enum, default_value = "http")]
        publish: PublishMode,
        /// Events per second (with `--publish self`, the rate the server was started with).
        #[arg(long, default_value_t = 20_000)]
        rate: u64,
        /// Events per publish request.
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// Concurrent publishing connections.
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Publish cost as sessions grow: `--sessions` sessions each get `--history` events over
    /// HTTP (one request per session), `--clients` of them (spread evenly) hold an SSE client,
    /// and the server publishes in-process round-robin over every session: start it with
    /// `--self-publish RATE --self-publish-all`. Reports the server's CPU per event it
    /// published (counted by the events' `"n"`) and its RSS per session.
    PublishCost {
        /// Sessions, every one holding history.
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// SSE clients, spread evenly over the sessions.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Events posted to every session before the window.
        #[arg(long, default_value_t = 16)]
        history: usize,
        /// The rate the server was started with (`--self-publish RATE`), for the record.
        #[arg(long)]
        rate: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Idle connections: server memory per open SSE connection.
    Idle {
        /// Connections to open.
        #[arg(long, default_value_t = 15_000)]
        connections: usize,
        /// Seconds to wait with every connection open before reading the server's RSS.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
    },
    /// Idle flood: holds idle TCP connections that send nothing (reopened whenever the server
    /// closes one) and times legitimate requests meanwhile. Start the server with a
    /// `--max-connections` below `--connections`, so the flood overflows it.
    IdleFlood {
        /// Idle connections to hold.
        #[arg(long, default_value_t = 15_000)]
        connections: usize,
        /// Rounds of legitimate requests: each a `GET /health/sse`, then a subscribe to a
        /// fresh session and a publish of one event to it, each on a fresh connection.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        /// Seconds the rounds are spread over, with the flood held.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Seconds each legitimate request (or event) may take before it counts as timed out.
        #[arg(long, default_value_t = 5.0)]
        request_timeout: f64,
    },
    /// AG-UI token streams: agent runs (`RUN_STARTED`, a text message of 20 to 80 deltas in
    /// bursts, a tool call, `RUN_FINISHED`, then the next run) in every session, published
    /// over HTTP by the generator or in-process by `tether serve --self-publish-agui RATE`;
    /// latency from each event's `rawEvent.ts`. With `--reconnect-every`, a steady window and
    /// then a window in which clients reconnect with `?prelude=always`.
    Agui {
        /// Sessions, one SSE client each.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Who publishes.
        #[arg(long, value_enum, default_value = "self")]
        publish: PublishMode,
        /// With `--publish http`: events/s to offer (unlimited when absent). With `--publish
        /// self`: the rate the server was started with, for the record.
        #[arg(long)]
        rate: Option<u64>,
        /// With `--publish http`: post each burst of deltas as one JSON array (one event per
        /// request without it).
        #[arg(long)]
        batch_bursts: bool,
        /// Concurrent publishing connections.
        #[arg(long, default_value_t = 8)]
        publishers: usize,
        /// Seconds between a client's reconnects on average (each from half to one and a
        /// half times it), in a second window after the steady one.
        #[arg(long)]
        reconnect_every: Option<f64>,
        /// With `--reconnect-every`: check every response with the AG-UI client's rules and
        /// the open message's text across reconnects (costs generator CPU).
        #[arg(long, requires = "reconnect_every")]
        verify: bool,
        /// Seconds before the measured window.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Seconds of the measured window (of each window, with `--reconnect-every`).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Reconnect storm: every client drops and reconnects with Last-Event-ID at once.
    Storm {
        /// Sessions, one SSE client each.
        #[arg(long, default_value_t = 5000)]
        sessions: usize,
        /// Who publishes during the storm.
        #[arg(long, value_enum, default_value = "self")]
        publish: PublishMode,
        /// Events per second (with `--publish self`, the rate the server was started with).
        #[arg(long, default_value_t = 20_000)]
        rate: u64,
        /// Events per publish request.
        #[arg(long, default_value_t = 5)]
        batch: usize,
        /// Concurrent publishing connections.
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        /// Size of each event's JSON in bytes.
        #[arg(long, default_value_t = 200)]
        event_bytes: usize,
        /// Seconds to wait for every client to catch up.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// Drop the streams in waves of at most this many clients (0: all at once).
        #[arg(long, default_value_t = 0)]
        wave: usize,
        /// Seconds from the first wave to the last.
        #[arg(long, default_value_t = 0.0)]
        spread: f64,
    },
    /// Evicted id: a client resumes with `Last-Event-ID` from an event the server no longer
    /// keeps (after `--away` more events, published one per request) and the scenario records
    /// what it got: a resync signal, a silent gap, or a replay.
    Evicted {
        /// Events published while the client is away: more than the server's buffer.
        #[arg(long, default_value_t = 300)]
        away: u64,
        /// Size of each event's JSON in bytes.
        #[arg(long, default_value_t = 200)]
        event_bytes: usize,
        /// Seconds to wait for each awaited event.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// Resume cost: one session gets `--history` events (in batches), then a client resumes
    /// again and again with a `Last-Event-ID` `--behind` events before the head, each time on
    /// a new connection, until the head's event arrived. Reports the server's CPU per resume,
    /// the time to the last replayed event and whether every replay was exact. The server
    /// must keep the whole history (tether's `--ring-events`, baseline-bare's `--ring`).
    Resume {
        /// Events published to the session (after its first) before the resumes.
        #[arg(long, default_value_t = 10_000)]
        history: u64,
        /// Events each resume replays (at most the history and its two more events).
        #[arg(long, default_value_t = 100)]
        behind: u64,
        /// Most resumes.
        #[arg(long, default_value_t = 5_000)]
        resumes: usize,
        /// Most seconds spent resuming.
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
        /// Events per publish request of the history.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Size of each event's JSON in bytes.
        #[arg(long, default_value_t = 200)]
        event_bytes: usize,
        /// Seconds to wait for each awaited event.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// Markdown tables (stdout) and an SVG chart from JSON result lines.
    Report {
        /// File of JSON result lines.
        #[arg(long)]
        input: PathBuf,
        /// Write the chart here.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Title of the chart.
        #[arg(long, default_value = "tether load harness")]
        title: String,
        /// Scale curves instead: write one line chart per curve to `PREFIX-<curve>.svg` and
        /// the curves' tables (linking the charts by their file names) to stdout.
        #[arg(long, value_name = "PREFIX", conflicts_with = "svg")]
        curves: Option<PathBuf>,
    },
}

fn publish(mode: PublishMode, rate: Option<u64>, batch: usize, publishers: usize) -> Publish {
    match mode {
        PublishMode::Http => Publish::Http {
            rate,
            batch,
            connections: publishers,
        },
        PublishMode::InProcess => Publish::InProcess { rate },
    }
}

/// Why the command cannot run against nchan, if it cannot.
fn nchan_refusal(command: &Command) -> Option<&'static str> {
    let (mode, batch) = match command {
        Command::Throughput { publish, batch, .. }
        | Command::Latency { publish, batch, .. }
        | Command::Storm { publish, batch, .. } => (*publish, *batch),
        Command::IdleFlood { .. } => {
            return Some("idle-flood needs the hub's /health/sse and connection cap");
        }
        Command::PublishCost { .. } => {
            return Some("nchan cannot publish in-process (publish-cost needs it)");
        }
        Command::Resume { .. } => {
            return Some("resume names ids by their sequence, which nchan's ids do not carry");
        }
        Command::Agui { .. } => {
            return Some("agui judges loss and preludes by the hub's ids (<epoch>-<seq>)");
        }
        Command::Idle { .. } | Command::Evicted { .. } | Command::Report { .. } => return None,
    };
    match mode {
        PublishMode::InProcess => Some("nchan cannot publish in-process (--publish self)"),
        PublishMode::Http if batch != 1 => Some(
            "nchan stores a request body as one message, so a JSON array would arrive as one \
             event: give --batch 1",
        ),
        PublishMode::Http => None,
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn write_report(
    input: &PathBuf,
    svg: Option<&PathBuf>,
    curves: Option<&PathBuf>,
    title: &str,
) -> Result<(), String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut results = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let result: ScenarioResult = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: {e}", input.display(), n + 1))?;
        results.push(result);
    }
    if let Some(prefix) = curves {
        let name = prefix
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        print!("{}", report::curves_markdown(&results, &name));
        for (curve, chart) in report::curve_charts(&results, title) {
            let path = PathBuf::from(format!("{}-{curve}.svg", prefix.display()));
            std::fs::write(&path, chart).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        return Ok(());
    }
    print!("{}", report::markdown(&results));
    if let Some(path) = svg {
        std::fs::write(path, report::svg(&results, title))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Report {
        input,
        svg,
        title,
        curves,
    } = &cli.command
    {
        return match write_report(input, svg.as_ref(), curves.as_ref(), title) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tether-load: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.server_kind == Kind::Nchan
        && let Some(why) = nchan_refusal(&cli.command)
    {
        eprintln!("tether-load: --server-kind nchan: {why}");
        return ExitCode::FAILURE;
    }
    let target = match Target::parse(&cli.url) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("tether-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("tether-load: could not raise the open-files limit: {e}");
    }
    let publish_target = match cli.publish_url.as_deref().map(Target::parse) {
        None => None,
        Some(Ok(target)) => Some(target),
        Some(Err(e)) => {
            eprintln!("tether-load: --publish-url: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = RunConfig {
        target,
        server_pid: cli.server_pid,
        publish_target,
        cpu_pids: cli.cpu_pids.clone(),
        rss_pids: cli.rss_pids.clone(),
        server_kind: match cli.server_kind {
            Kind::Contract => ServerKind::Contract,
            Kind::Nchan => ServerKind::Nchan,
        },
        label: cli.label.clone(),
        round: cli.round,
        progress: !cli.no_progress,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tether-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Throughput {
                sessions,
                publish: mode,
                rate,
                batch,
                publishers,
                common,
            } => {
                let opts = StreamOptions {
                    sessions,
                    clients: None,
                    prefill: 0,
                    publish: publish(mode, rate, batch, publishers),
                    events: Events::Plain,
                    event_bytes: common.event_bytes,
                    warmup: secs(common.warmup),
                    duration: secs(common.duration),
                };
                scenario::run_stream(&cfg, "throughput", &opts).await
            }
            Command::Latency {
                sessions,
                publish: mode,
                rate,
                batch,
                publishers,
                common,
            } => {
                let opts = StreamOptions {
                    sessions,
                    clients: None,
                    prefill: 0,
                    publish: publish(mode, Some(rate), batch, publishers),
                    events: Events::Plain,
                    event_bytes: common.event_bytes,
                    warmup: secs(common.warmup),
                    duration: secs(common.duration),
                };
                scenario::run_stream(&cfg, "latency", &opts).await
            }
            Command::PublishCost {
                sessions,
                clients,
                history,
                rate,
                common,
            } => {
                let opts = StreamOptions {
                    sessions,
                    clients: Some(clients),
                    prefill: history,
                    publish: Publish::InProcess { rate },
                    events: Events::Plain,
                    event_bytes: common.event_bytes,
                    warmup: secs(common.warmup),
                    duration: secs(common.duration),
                };
                scenario::run_stream(&cfg, "publish-cost", &opts).await
            }
            Command::Idle {
                connections,
                settle,
            } => scenario::run_idle(&cfg, connections, secs(settle)).await,
            Command::IdleFlood {
                connections,
                rounds,
                duration,
                request_timeout,
            } => {
                let opts = FloodOptions {
                    connections,
                    rounds,
                    duration: secs(duration),
                    request_timeout: secs(request_timeout),
                };
                flood::run_idle_flood(&cfg, &opts).await
            }
            Command::Agui {
                sessions,
                publish: mode,
                rate,
                batch_bursts,
                publishers,
                reconnect_every,
                verify,
                warmup,
                duration,
            } => {
                // One event per request (`http1`), or each burst in one (`http`, up to 8).
                let batch = if batch_bursts { 8 } else { 1 };
                let opts = StreamOptions {
                    sessions,
                    clients: None,
                    prefill: 0,
                    publish: publish(mode, rate, batch, publishers),
                    events: Events::Agui { batch_bursts },
                    event_bytes: 0,
                    warmup: secs(warmup),
                    duration: secs(duration),
                };
                match reconnect_every {
                    Some(every) => {
                        let reconnect = ReconnectOptions {
                            every: secs(every),
                            verify,
                        };
                        scenario::run_agui_reconnect(&cfg, &opts, reconnect).await
                    }
                    None => scenario::run_stream(&cfg, "agui", &opts).await,
                }
            }
            Command::Storm {
                sessions,
                publish: mode,
                rate,
                batch,
                publishers,
                event_bytes,
                timeout,
                wave,
                spread,
            } => {
                let opts = StormOptions {
                    sessions,
                    publish: publish(mode, Some(rate), batch, publishers),
                    event_bytes,
                    timeout: secs(timeout),
                    wave,
                    spread: secs(spread),
                };
                scenario::run_storm(&cfg, &opts).await
            }
            Command::Evicted {
                away,
                event_bytes,
                timeout,
            } => {
                let opts = EvictedOptions {
                    away,
                    event_bytes,
                    timeout: secs(timeout),
                    batch: 1,
                    repeat: None,
                };
                evicted::run_evicted(&cfg, &opts).await
            }
            Command::Resume {
                history,
                behind,
                resumes,
                duration,
                batch,
                event_bytes,
                timeout,
            } => {
                let opts = EvictedOptions {
                    away: history,
                    event_bytes,
                    timeout: secs(timeout),
                    batch,
                    repeat: Some(Repeat {
                        behind,
                        resumes,
                        duration: secs(duration),
                    }),
                };
                evicted::run_evicted(&cfg, &opts).await
            }
            Command::Report { .. } => unreachable!("handled above"),
        }
    });
    // Connections still closing must not hold the process.
    runtime.shutdown_timeout(Duration::from_secs(1));

    let json = match serde_json::to_string(&result) {
        Ok(json) => json,
        Err(e) => {
            eprintln!("tether-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", result.human());
    println!("{json}");
    if let Some(path) = &cli.json_out {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{json}"));
        if let Err(e) = appended {
            eprintln!("tether-load: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
