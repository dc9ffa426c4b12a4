//! Run with: cargo run -p example-warp
//!
//! A small job service that embeds tether in a warp application. `POST /jobs` starts a
//! simulated job that reports its progress into a session of its own every 100 ms, then
//! finishes; a browser follows it on the session's event stream and, should its connection
//! drop, resumes exactly where it left off.
//!
//! ```text
//! $ cargo run -p example-warp -- --jwt-secret "$(openssl rand -hex 32)"
//! development token: eyJ0eXAiOiJKV1Qi...
//! listening on http://127.0.0.1:3000
//! $ TOKEN=eyJ0eXAiOiJKV1Qi...
//! $ curl -s -X POST 'localhost:3000/jobs?steps=5'
//! {"events":"/api/sse/session/job-1","job":"job-1"}
//! $ curl -sN -H "Authorization: Bearer $TOKEN" localhost:3000/api/sse/session/job-1
//! retry: 2817
//!
//! id: 5e1c0a2f9b31-1
//! data: {"job":"job-1","step":1,"steps":5,"type":"progress"}
//! ...
//! id: 5e1c0a2f9b31-6
//! data: {"job":"job-1","steps":5,"type":"finished"}
//! ```
//!
//! Every route of tether's HTTP contract is mounted too (`/api/sse/session/{id}`,
//! `/api/sessions/{id}/events`, approvals, `/health/sse`), and `/metrics` serves the
//! runbook's metrics to Prometheus. Ctrl-C or SIGTERM drains the streams before exiting.
//!
//! Access (see `example_support::access`): tokens signed with `--jwt-secret` (a random secret when
//! none is given), the development token printed at startup, or `--dev` to open every route
//! on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use tether_core::{Broker, SessionId};
use tether_warp::{Service, SocketOptions, SseListener};
use warp::Filter;
use warp::http::StatusCode;

/// A job service on warp with tether's event streams.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Seconds over which open streams are sent away on shutdown.
    #[arg(long, default_value_t = 5)]
    drain_secs: u64,
    #[command(flatten)]
    access: example_support::AccessArgs,
}

struct Jobs {
    broker: Broker,
    next_job: AtomicU64,
}

#[derive(Debug, Deserialize)]
struct JobQuery {
    steps: Option<u32>,
}

/// `POST /jobs?steps=N`: starts a job of `N` steps (default 10, at most 100) and answers with
/// the stream to follow it on.
fn start_job(jobs: &Jobs, q: JobQuery) -> impl warp::Reply + use<> {
    let steps = q.steps.unwrap_or(10).clamp(1, 100);
    let job = format!("job-{}", jobs.next_job.fetch_add(1, Ordering::Relaxed) + 1);
    let session = SessionId::new(&job).expect("job ids are valid session ids");
    tokio::spawn(example_support::run_job(
        jobs.broker.clone(),
        session,
        steps,
    ));
    let events = format!("/api/sse/session/{job}");
    warp::reply::with_status(
        warp::reply::json(&json!({ "job": job, "events": events })),
        StatusCode::ACCEPTED,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    example_support::init_tracing();
    let metrics =
        tether_core::metrics::install_prometheus().expect("no other metrics recorder is installed");

    let access = args.access.access(args.addr)?;
    access.announce();
    let broker = Broker::builder().start().expect("valid config");
    let jobs = Arc::new(Jobs {
        broker: broker.clone(),
        next_job: AtomicU64::new(0),
    });
    let start = warp::post()
        .and(warp::path!("jobs"))
        .and(warp::query::<JobQuery>())
        .map(move |q: JobQuery| start_job(&jobs, q));
    // The lines that mount tether: every route of its HTTP contract, and /metrics.
    let service = Service::new(broker.clone(), access.hooks).metrics(move || metrics.render());
    let app = start.or(tether_warp::router(service));

    let options = SocketOptions::for_client_timeout(broker.config().client_timeout());
    let listener = SseListener::bind(args.addr, options)?;
    println!("listening on http://{}", listener.local_addr()?);
    tether_warp::serve(
        listener,
        app,
        broker,
        example_support::shutdown_signal(),
        Duration::from_secs(args.drain_secs),
    )
    .await
}
