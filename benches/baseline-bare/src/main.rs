//! Run with: cargo run --release -p baseline-bare -- --addr 127.0.0.1:0 --self-publish 20000

use std::{io::Write, net::SocketAddr};

use clap::Parser;

/// Bare tokio SSE writer of pre-encoded frames (load-test baseline, the practical limit).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Publish this many events per second in-process, spread over every session with a subscriber.
    #[arg(long, value_name = "RATE")]
    self_publish: Option<u64>,
    /// With --self-publish: spread the events over every session, with or without a
    /// subscriber (sessions come into being by a publish or a subscribe).
    #[arg(long, requires = "self_publish")]
    self_publish_all: bool,
    /// Frames each session keeps for `Last-Event-ID` resume.
    #[arg(long, default_value_t = 256)]
    ring: usize,
    /// Frames queued per subscriber before it loses new ones.
    #[arg(long, default_value_t = 1024)]
    queue: usize,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    if let Err(e) = baseline_bare::raise_nofile_limit() {
        eprintln!("could not raise the open-files limit: {e}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = baseline_bare::bind(args.addr)?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
            stdout.flush()?;
            let hub = baseline_bare::Hub::new(baseline_bare::Config {
                ring_capacity: args.ring.max(1),
                queue_capacity: args.queue.max(1),
                ..baseline_bare::Config::default()
            });
            if let Some(rate) = args.self_publish.filter(|rate| *rate > 0) {
                let targets = if args.self_publish_all {
                    baseline_bare::Targets::All
                } else {
                    baseline_bare::Targets::Subscribed
                };
                baseline_bare::spawn_self_publisher(hub.clone(), rate, targets);
            }
            baseline_bare::serve(listener, hub).await
        })
}
