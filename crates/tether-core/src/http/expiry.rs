//! A stream that ends at its token's expiry, so an expired or revoked token does not read
//! forever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use crate::stream::EventStream;

/// The session's stream until `expires_at` (Unix seconds), then a `retry:` line and the end:
/// the client comes back with a fresh token.
pub(super) struct UntilExpiry {
    inner: EventStream,
    deadline: Pin<Box<Sleep>>,
    retry_ms: u64,
    ended: bool,
}

impl UntilExpiry {
    pub(super) fn new(inner: EventStream, expires_at: u64, retry_ms: u64) -> Self {
        let left = UNIX_EPOCH
            .checked_add(Duration::from_secs(expires_at))
            .and_then(|exp| exp.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + left)),
            retry_ms,
            ended: false,
        }
    }
}

impl Stream for UntilExpiry {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.ended = true;
            // Logged as "SSE disconnect" with the connection's fields when the stream ends.
            this.inner.token_expired();
            return Poll::Ready(Some(Bytes::from(format!("retry: {}\n\n", this.retry_ms))));
        }
        Pin::new(&mut this.inner).poll_next(cx)
    }
}
