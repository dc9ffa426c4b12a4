//! Run with: cargo run -p example-axum
//!
//! A small job service that embeds tether in an axum application. `POST /jobs` starts a
//! simulated job that reports its progress into a session of its own every 100 ms, then
//! finishes; a browser follows it on the session's event stream and, should its connection
//! drop, resumes exactly where it left off.
//!
//! ```text
//! $ cargo run -p example-axum -- --jwt-secret "$(openssl rand -hex 32)"
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use tether_axum::{Service, SocketOptions, SseListener};
use tether_core::{Broker, SessionId};

/// A job service on axum with tether's event streams.
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

#[derive(Clone)]
struct App {
    broker: Broker,
    next_job: std::sync::Arc<AtomicU64>,
}

#[derive(Debug, Deserialize)]
struct JobQuery {
    steps: Option<u32>,
}

/// `POST /jobs?steps=N`: starts a job of `N` steps (default 10, at most 100) and answers with
/// the stream to follow it on.
async fn start_job(State(app): State<App>, Query(q): Query<JobQuery>) -> impl IntoResponse {
    let steps = q.steps.unwrap_or(10).clamp(1, 100);
    let job = format!("job-{}", app.next_job.fetch_add(1, Ordering::Relaxed) + 1);
    let session = SessionId::new(&job).expect("job ids are valid session ids");
    tokio::spawn(example_support::run_job(app.broker, session, steps));
    let events = format!("/api/sse/session/{job}");
    (
        StatusCode::ACCEPTED,
        Json(json!({ "job": job, "events": events })),
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
    let app = App {
        broker: broker.clone(),
        next_job: Default::default(),
    };
    let router = axum::Router::new()
        .route("/jobs", post(start_job))
        .with_state(app)
        // The lines that mount tether: every route of its HTTP contract, and /metrics.
        .merge(tether_axum::router(
            Service::new(broker.clone(), access.hooks).metrics(move || metrics.render()),
        ));

    let options = SocketOptions::for_client_timeout(broker.config().client_timeout());
    let listener = SseListener::bind(args.addr, options)?;
    println!("listening on http://{}", listener.local_addr()?);
    tether_axum::serve(
        listener,
        router,
        broker,
        example_support::shutdown_signal(),
        Duration::from_secs(args.drain_secs),
    )
    .await
}
