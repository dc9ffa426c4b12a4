//! The connection limits for a server with an accept loop of its own (actix-web): the
//! same registry, shed answers and idle-first closing as the core's servers, applied to
//! each connection that loop hands over.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::futures::OwnedNotified;

use super::ConnectionLimits;
use super::limits::{Admission, Connections, Slot};
use crate::Broker;

/// Decides about every connection a server accepts, by the [`ConnectionLimits`]: it is kept
/// (a [`KeptConnection`]), or answered and closed (see [`limits`](super::limits)). One gate
/// serves every worker of a server; clones share it.
#[derive(Debug, Clone)]
pub struct ConnectionGate {
    connections: Connections,
    limits: ConnectionLimits,
    broker: Broker,
}

impl ConnectionGate {
    /// A gate with `limits`, reported in `broker`'s `/health/sse` under `"limits"`.
    pub fn new(limits: ConnectionLimits, broker: Broker) -> Self {
        Self {
            connections: Connections::new(limits, broker.clone()),
            limits,
            broker,
        }
    }

    /// The limits the gate applies.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// The connection `stream` from `peer`, if the server keeps it. If it does not, this
    /// answers it (reading its head for at most two seconds: an event-stream request gets
    /// `200` and a jittered `retry:`, anything else `503` and `Retry-After`), closes it and
    /// returns `None`. Keeping it may close the oldest idle connection to make room.
    pub async fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Option<KeptConnection> {
        match self.connections.admit(peer.ip()) {
            Admission::Keep(mut slot) => {
                let close = slot.idle().notified_owned();
                Some(KeptConnection {
                    stream,
                    activity: ConnectionActivity(Arc::new(Mutex::new(slot))),
                    close: Box::pin(close),
                    closing: false,
                })
            }
            Admission::Shed(slot) => {
                super::shed::shed(stream, self.broker.clone(), self.limits.head_timeout, slot)
                    .await;
                None
            }
            Admission::Drop => None,
        }
    }
}

/// Whether a kept connection is serving a request; the server reports it so that only
/// connections waiting for a request are closed to make room.
#[derive(Debug, Clone)]
pub struct ConnectionActivity(Arc<Mutex<Slot>>);

impl ConnectionActivity {
    /// A request arrived: the connection is not closed to make room until it is done.
    pub fn request_started(&self) {
        self.0.lock().busy();
    }

    /// The response has been sent and the connection waits for its next request. Not
    /// called for an event stream: a stream is never closed to make room.
    pub fn request_finished(&self) {
        self.0.lock().idle();
    }
}

/// A connection the [`ConnectionGate`] keeps: the socket, and its place among the server's
/// connections, freed when it is dropped. When the server needs its place while it waits for
/// a request, its reads end as if the client had closed it, so the server closes it.
#[derive(Debug)]
pub struct KeptConnection {
    stream: TcpStream,
    activity: ConnectionActivity,
    close: Pin<Box<OwnedNotified>>,
    closing: bool,
}

impl KeptConnection {
    /// The handle the server marks requests with.
    pub fn activity(&self) -> ConnectionActivity {
        self.activity.clone()
    }

    /// The socket.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }
}

impl AsyncRead for KeptConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing && this.close.as_mut().poll(cx).is_ready() {
            this.closing = true;
        }
        if this.closing {
            // End of input: the server ends the connection as if its client had closed it.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KeptConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
