//! The future that drives the broker's timers.
//!
//! One task serves the whole broker: approval deadlines sit in one ordered map (the next
//! deadline is one `sleep_until`), and a periodic sweep drops stalled connections and expires
//! idle sessions. There is no task or timer per approval or per session.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use crate::broker::{DriverSignal, Inner};

/// Drives approval deadlines, client timeouts and session expiry. Spawn it on a tokio
/// runtime; it ends when the last [`Broker`](crate::Broker) handle is dropped.
#[must_use = "the broker's timers run only while the driver is polled: spawn it"]
pub struct BrokerDriver {
    fut: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for BrokerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerDriver")
    }
}

impl BrokerDriver {
    pub(crate) fn new(inner: Weak<Inner>, signal: Arc<DriverSignal>) -> Self {
        Self {
            fut: Box::pin(run(inner, signal)),
        }
    }
}

impl Future for BrokerDriver {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.fut.as_mut().poll(cx)
    }
}

async fn run(inner: Weak<Inner>, signal: Arc<DriverSignal>) {
    let sweep_every = match inner.upgrade() {
        Some(i) => i.config.sweep_interval(),
        None => return,
    };
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if signal.shutdown.load(Ordering::Acquire) {
            return;
        }
        let next = match inner.upgrade() {
            Some(i) => i.fire_deadlines(),
            None => return,
        };
        let deadline = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = deadline => {}
            _ = signal.changed.notified() => {}
            _ = sweep.tick() => {
                match inner.upgrade() {
                    Some(i) => i.sweep(),
                    None => return,
                }
            }
        }
    }
}
