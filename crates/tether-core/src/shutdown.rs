//! Graceful shutdown: the drain every server runs the same way.

use std::time::Duration;

use crate::broker::Broker;

/// How long [`Broker::shutdown`] waits, after the drain window, for streams whose clients are
/// not reading, before it gives up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Broker {
    /// Drains for a rolling restart and resolves when the server may stop:
    ///
    /// 1. [`Broker::drain`]: every stream ends now with a `retry:` spread uniformly over
    ///    `drain_window`, so clients come back through the load balancer at different moments;
    /// 2. for `drain_window` the server keeps answering, with the draining answers (200 +
    ///    `retry:` for event-stream requests, 503 + `Retry-After` otherwise), while the load
    ///    balancer takes the node out;
    /// 3. it waits up to [`SHUTDOWN_GRACE`] more for the last streams to end.
    ///
    /// Returns how many streams were still open at the end (0 after a clean drain). Servers
    /// stop accepting once it resolves.
    pub async fn shutdown(&self, drain_window: Duration) -> usize {
        self.drain(drain_window);
        tokio::time::sleep(drain_window).await;
        if tokio::time::timeout(SHUTDOWN_GRACE, self.idle())
            .await
            .is_ok()
        {
            return 0;
        }
        let left = self.connection_count();
        if left > 0 {
            tracing::warn!(
                connections = left,
                "streams still open after the drain window; closing them"
            );
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::SHUTDOWN_GRACE;
    use crate::{Broker, ConnectOptions, SessionId};

    #[tokio::test(start_paused = true)]
    async fn resolves_after_the_window_once_streams_ended() {
        let broker = Broker::builder().start().expect("valid config");
        let start = tokio::time::Instant::now();
        assert_eq!(broker.shutdown(Duration::from_secs(3)).await, 0);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert!(broker.is_draining());
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_on_streams_nobody_reads_after_the_grace() {
        let broker = Broker::builder().start().expect("valid config");
        let s = SessionId::new("s").unwrap();
        let _held = broker.connect(&s, ConnectOptions::default()).unwrap();
        let start = tokio::time::Instant::now();
        assert_eq!(broker.shutdown(Duration::from_secs(3)).await, 1);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(3) + SHUTDOWN_GRACE,
            "window + grace, not longer"
        );
    }
}
