//! Run with: cargo run -p example-agui-agent
//!
//! A simulated AG-UI agent on axum with tether. It streams an assistant message token by
//! token, proposes a tool call that needs a human's approval (an AG-UI interrupt), waits for
//! the decision and finishes. Open the printed URL: the page is an AG-UI client
//! (`TetherAgent` of `tether-client/agui`) that starts the run on the run route, stays
//! attached to the thread, comes back after a lost connection or a reload without losing a
//! token, and approves or rejects the tool call through tether's decision route.
//!
//! ```text
//! $ cargo run -p example-agui-agent
//! development token: eyJ0eXAiOiJKV1Qi...
//! listening on http://127.0.0.1:3000
//! open http://127.0.0.1:3000/?token=eyJ0eXAiOiJKV1Qi... in a browser
//! ```
//!
//! Routes:
//!
//! | route | |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /page.js` | its script: `TetherAgent` of `tether-client/agui`, bundled |
//! | `POST /api/demo/start` | `{"threadId": ...}`: starts the agent on a thread |
//! | `POST /api/agui/run` | durable AG-UI runs (`HttpAgent` of `@ag-ui/client` posts here) |
//! | `GET /api/sse/session/{threadId}` | the thread's event stream (`lastEventId` query parameter for manual reconnects) |
//! | `POST /api/sessions/{threadId}/approvals/{id}/decision` | approve or reject (`{"approved": bool}`) |
//!
//! and the rest of tether's HTTP contract. Ctrl-C or SIGTERM drains the streams.
//!
//! Access (see `example_support::access`): the stream, decision and run routes take tokens signed
//! with `--jwt-secret` (a random secret when none is given); the page's URL carries the
//! development token printed at startup. `--dev` opens every route on loopback.
//! `/api/demo/start` is the demo's own route and stays open: it only starts the simulated
//! agent on the thread it is given (a thread with a run in progress answers 409).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use tether_agui::{AguiRuns, AguiTrackerFactory, RunAgentInput, RunPublisher};
use tether_axum::{Service, SocketOptions, SseListener};
use tether_core::{ApprovalStatus, Broker, SessionId};

const PAGE: &str = include_str!("page.html");
/// The page's script with tether-client's `TetherAgent` and `@ag-ui/client` bundled in, so the
/// page needs no CDN: built from `page.js` by `clients/js/scripts/bundle-example.mjs`, and
/// checked against its sources by the JS client's tests.
const SCRIPT: &str = include_str!("page.bundle.js");

/// A simulated AG-UI agent with approvals, on tether.
#[derive(Debug, Clone, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Milliseconds between two streamed tokens.
    #[arg(long, default_value_t = 150)]
    token_delay_ms: u64,
    /// Seconds a human has to approve the tool call.
    #[arg(long, default_value_t = 300)]
    approval_secs: u64,
    /// Seconds over which open streams are sent away on shutdown.
    #[arg(long, default_value_t = 2)]
    drain_secs: u64,
    #[command(flatten)]
    access: example_support::AccessArgs,
}

/// How the simulated agent paces itself.
#[derive(Debug, Clone, Copy)]
struct Pace {
    token: Duration,
    approval: Duration,
}

const INTRO: &str = "I looked at your workspace. The build cache in /tmp/build-cache takes 4.2 GB \
                     and has not been used for a month, so I would like to delete it.";

fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(' ')
}

async fn stream_text(run: &RunPublisher, id: &str, text: &str, pace: Pace) -> bool {
    if run.text_start(id).is_err() {
        return false;
    }
    for token in tokens(text) {
        tokio::time::sleep(pace.token).await;
        if run.text_content(id, token).is_err() {
            return false;
        }
    }
    run.text_end(id).is_ok()
}

/// The simulated agent: a message token by token, a tool call that needs approval, then the
/// outcome in the run that continues the thread.
async fn agent(pace: Pace, mut run: RunPublisher) {
    let run_id = run.run_id().to_owned();
    let message = format!("{run_id}-intro");
    if !stream_text(&run, &message, INTRO, pace).await {
        return;
    }
    let call = format!("{run_id}-delete");
    let _ = run.tool_call_start(&call, "delete_path", Some(&message));
    for part in [
        r#"{"path":"#,
        r#""/tmp/build-cache","#,
        r#""recursive":true}"#,
    ] {
        tokio::time::sleep(pace.token).await;
        let _ = run.tool_call_args(&call, part);
    }
    let _ = run.tool_call_end(&call);
    let payload = json!({"tool": "delete_path", "path": "/tmp/build-cache"});
    let Ok(approval) = run.request_tool_approval(&call, "approval", payload, pace.approval) else {
        tracing::warn!(thread = run.thread_id(), "could not ask for approval");
        return;
    };
    let outcome = approval.await;
    // Decided through the decision route, the agent goes on in a run of its own; answered by
    // a client's `resume`, it goes on in that client's run.
    if let Err(e) = run.next_run(Duration::ZERO).await {
        tracing::warn!(thread = run.thread_id(), error = %e, "could not continue the thread");
        return;
    }
    let (result, reply) = match outcome {
        ApprovalStatus::Approved { .. } => (
            "deleted /tmp/build-cache (4.2 GB freed)",
            "Done: the build cache is gone and 4.2 GB are free again.",
        ),
        ApprovalStatus::Rejected { .. } => (
            "not run: rejected",
            "Understood, I left the build cache where it is.",
        ),
        ApprovalStatus::TimedOut => (
            "not run: the approval timed out",
            "Nobody answered in time, so I left the build cache alone.",
        ),
        ApprovalStatus::Cancelled | ApprovalStatus::Pending => (
            "not run: cancelled",
            "The request was cancelled; nothing was deleted.",
        ),
    };
    let run_id = run.run_id().to_owned();
    let _ = run.tool_call_result(&format!("{run_id}-result"), &call, result);
    if stream_text(&run, &format!("{run_id}-reply"), reply, pace).await {
        let _ = run.finish(None);
    }
}

#[derive(Clone)]
struct App {
    runs: AguiRuns,
    pace: Pace,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Start {
    thread_id: String,
}

/// `POST /api/demo/start`: starts the agent on the page's thread.
async fn start(State(app): State<App>, Json(start): Json<Start>) -> impl IntoResponse {
    if SessionId::new(&start.thread_id).is_err() {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_thread_id", "message": "use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'"}),
            ),
        );
    }
    match app.runs.start_run(&start.thread_id, "run-1") {
        Ok(run) => {
            tokio::spawn(agent(app.pace, run));
            let events = format!("/api/sse/session/{}", start.thread_id);
            (
                StatusCode::ACCEPTED,
                Json(json!({"threadId": start.thread_id, "events": events})),
            )
        }
        Err(e) => (
            StatusCode::CONFLICT,
            Json(json!({"error": "run_in_progress", "message": e.to_string()})),
        ),
    }
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    example_support::init_tracing();

    let access = args.access.access(args.addr)?;
    access.announce();
    // Sessions that carry AG-UI events are tracked: every stream stays valid for AG-UI
    // clients across drops and resyncs.
    let broker = Broker::builder()
        .tracker_factory(Arc::new(AguiTrackerFactory::new()))
        .start()
        .expect("valid config");
    let runs = AguiRuns::new(broker.clone());
    let pace = Pace {
        token: Duration::from_millis(args.token_delay_ms),
        approval: Duration::from_secs(args.approval_secs),
    };
    let app = App {
        runs: runs.clone(),
        pace,
    };
    let run_agent = move |_input: RunAgentInput, run: RunPublisher| agent(pace, run);
    let router = axum::Router::new()
        .route("/", get(page))
        .route("/page.js", get(script))
        .route("/api/demo/start", post(start))
        .with_state(app)
        .merge(tether_axum::router(
            Service::new(broker.clone(), access.hooks)
                .extension(tether_axum::agui::RunRoute::new(runs, run_agent)),
        ));

    let options = SocketOptions::for_client_timeout(broker.config().client_timeout());
    let listener = SseListener::bind(args.addr, options)?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    match &access.dev_token {
        Some(token) => println!("open http://{addr}/?token={token} in a browser"),
        None => println!("open http://{addr}/ in a browser"),
    }
    tether_axum::serve(
        listener,
        router,
        broker,
        example_support::shutdown_signal(),
        Duration::from_secs(args.drain_secs),
    )
    .await
}
