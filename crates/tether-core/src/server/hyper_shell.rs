//! The server shell around a hyper service (feature `hyper`): the axum and warp adapters
//! serve through it, so they share the hub's connection limits, socket options and drain.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::task::JoinSet;

use super::SseListener;
use super::limits::{Connections, Slot};
use crate::http::PeerAddr;
use crate::{Broker, SHUTDOWN_GRACE};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Serves `service` over HTTP/1.1 on `listener` until `shutdown` resolves, then drains:
///
/// 1. [`Broker::shutdown`] with `drain_window`: every stream ends with a `retry:` spread over
///    the window while the server keeps answering with the draining answers (so the load
///    balancer can take the node out);
/// 2. it stops accepting, asks every connection to close once its request in flight is done,
///    waits up to [`SHUTDOWN_GRACE`] for them, and returns.
///
/// The listener's [`ConnectionLimits`](super::ConnectionLimits) apply: connections beyond
/// `max_connections` first close the oldest idle keep-alive connection, else are answered
/// and closed (see [`limits`](super::limits)); a request head must arrive within
/// `head_timeout`. In hyper the head timeout also bounds how long a kept-alive connection
/// may wait for its next request, so `idle_timeout` is not applied separately here. Each
/// request carries its socket's peer address as a [`PeerAddr`] extension.
pub async fn serve_hyper<S, B>(
    mut listener: SseListener,
    service: S,
    broker: Broker,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_window: Duration,
) -> io::Result<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let limits = listener.limits();
    let connections = Connections::new(limits, broker.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = JoinSet::new();
    let stop_accepting = async {
        shutdown.await;
        broker.shutdown(drain_window).await;
    };
    let mut stop_accepting = std::pin::pin!(stop_accepting);
    loop {
        tokio::select! {
            (stream, peer, mut slot) = listener.accept_kept(&connections, &broker) => {
                while tasks.try_join_next().is_some() {}
                let close = slot.idle();
                let slot = Arc::new(Mutex::new(slot));
                let tracked = Tracked { inner: service.clone(), slot, peer: PeerAddr(peer) };
                let mut stop = stop_rx.clone();
                tasks.spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.head_timeout)
                        .serve_connection(TokioIo::new(stream), tracked);
                    let mut conn = std::pin::pin!(conn);
                    let mut closing = false;
                    loop {
                        tokio::select! {
                            done = conn.as_mut() => {
                                if let Err(e) = done {
                                    tracing::debug!(error = %e, "connection ended with an error");
                                }
                                return;
                            }
                            () = close.notified(), if !closing => {
                                closing = true;
                                conn.as_mut().graceful_shutdown();
                            }
                            _ = stop.changed(), if !closing => {
                                closing = true;
                                conn.as_mut().graceful_shutdown();
                            }
                        }
                    }
                });
            }
            () = &mut stop_accepting => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!("requests still in flight after the shutdown grace; leaving them");
        tasks.detach_all();
    }
    Ok(())
}

/// The service of one connection: marks the connection's slot busy while a request is
/// served, and idle again once a response that is not an event stream has been sent.
struct Tracked<S> {
    inner: S,
    slot: Arc<Mutex<Slot>>,
    peer: PeerAddr,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        self.slot.lock().busy();
        req.extensions_mut().insert(self.peer);
        let fut = self.inner.call(req);
        let slot = self.slot.clone();
        Box::pin(async move {
            let res = fut.await?;
            let stream = res
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
                && res.status().is_success();
            // Built only for a response that is not a stream: dropping it marks the slot idle.
            let guard = (!stream).then(|| IdleOnDrop(slot));
            Ok(res.map(|inner| TrackedBody {
                inner,
                _guard: guard,
            }))
        })
    }
}

/// Marks the slot idle when the response body is done with.
struct IdleOnDrop(Arc<Mutex<Slot>>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.lock().idle();
    }
}

pin_project_lite::pin_project! {
    /// A response body that marks its connection idle when it has been sent.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        _guard: Option<IdleOnDrop>,
    }
}

impl<B: HttpBody> HttpBody for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
