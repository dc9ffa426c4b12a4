//! What every tether example shares, so that each example's own file shows only how it
//! mounts tether in its framework:
//!
//! - [`access`]: the access flags (`--jwt-secret`, `--publish-token`, `--dev`) and the
//!   development token printed at startup;
//! - [`run_job`]: the simulated job of the job-service examples;
//! - [`init_tracing`] and [`shutdown_signal`].

pub mod access;

use std::time::Duration;

use serde_json::json;
use tether_core::{Broker, SessionId};

pub use access::{Access, AccessArgs, AccessError, DEV_TOKEN_LINE, DEV_TOKEN_TTL};

/// Logs to stderr at `RUST_LOG`'s level (`info` by default).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// The simulated job: one progress event every 100 ms, then `finished`. Publishing never
/// waits for the browser; whoever connects later gets the events from the session's ring.
pub async fn run_job(broker: Broker, session: SessionId, steps: u32) {
    let job = session.as_str().to_owned();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.tick().await;
    for step in 1..=steps {
        tick.tick().await;
        let progress = json!({ "type": "progress", "job": job, "step": step, "steps": steps });
        if let Err(e) = broker.publish(&session, &progress) {
            tracing::warn!(%job, error = %e, "job stopped: cannot publish");
            return;
        }
    }
    let finished = json!({ "type": "finished", "job": job, "steps": steps });
    if let Err(e) = broker.publish(&session, &finished) {
        tracing::warn!(%job, error = %e, "cannot publish the end of the job");
    }
}

/// Resolves at the first Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down: draining the streams");
}
