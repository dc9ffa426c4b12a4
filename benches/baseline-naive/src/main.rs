//! Run with: cargo run --release -p baseline-naive -- --addr 127.0.0.1:0 --self-publish 20000

use std::{io::Write, net::SocketAddr};

use clap::Parser;

/// Hand-written axum + tokio broadcast SSE server (load-test baseline).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Publish this many events per second in-process, spread over every session with a subscriber.
    #[arg(long, value_name = "RATE")]
    self_publish: Option<u64>,
    /// Messages each session's broadcast channel holds before a slow subscriber lags.
    #[arg(long, default_value_t = baseline_naive::CHANNEL_CAPACITY)]
    capacity: usize,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    if let Err(e) = baseline_naive::raise_nofile_limit() {
        eprintln!("could not raise the open-files limit: {e}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = baseline_naive::bind(args.addr)?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
            stdout.flush()?;
            let state = baseline_naive::AppState::with_capacity(args.capacity);
            if let Some(rate) = args.self_publish.filter(|rate| *rate > 0) {
                baseline_naive::spawn_self_publisher(state.clone(), rate);
            }
            baseline_naive::serve(listener, state).await
        })
}
