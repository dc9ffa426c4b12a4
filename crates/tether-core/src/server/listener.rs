//! Accepting connections: the backlog, the socket options and what an accept error means.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::limits::{Admission, ConnectionLimits, Connections, Slot};
use crate::net::SocketOptions;

/// First pause after an accept error that means the process is out of a resource.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between accept attempts.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one error line per this interval, carrying the count since the last one.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What to do after an accept error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterError {
    /// The error concerned one connection that is already gone: accept again at once.
    Retry,
    /// Out of file descriptors, buffers or memory: pause, so connections can close.
    Pause {
        /// How long.
        pause: Duration,
        /// Log one line now, with how many errors happened since the last line.
        log: Option<u64>,
    },
}

/// The accept-error policy: per-connection errors (`ECONNABORTED`: the client left before it
/// was accepted) are ignored; anything else (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) pauses
/// from 100 ms, doubling to 1 s, with one ERROR line per 10 s that says how many there were.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    pause: Option<Duration>,
    unlogged: u64,
    last_log: Option<Instant>,
}

impl AcceptBackoff {
    pub(crate) fn on_error(&mut self, error: &io::Error, now: Instant) -> AfterError {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::Interrupted
        ) {
            return AfterError::Retry;
        }
        let pause = match self.pause {
            None => FIRST_PAUSE,
            Some(p) => (p * 2).min(MAX_PAUSE),
        };
        self.pause = Some(pause);
        self.unlogged += 1;
        let due = self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        let log = due.then(|| {
            self.last_log = Some(now);
            std::mem::take(&mut self.unlogged)
        });
        AfterError::Pause { pause, log }
    }

    pub(crate) fn on_success(&mut self) {
        self.pause = None;
    }
}

/// A TCP listener for SSE servers: bound with a backlog of
/// [`LISTEN_BACKLOG`](crate::net::LISTEN_BACKLOG) (a reconnect storm overflows the usual 1024,
/// and the kernel retries a dropped SYN only after a second), applying [`SocketOptions`]
/// (TCP keepalive, `TCP_USER_TIMEOUT`) to every accepted socket so the kernel gives up on a
/// vanished peer within the client timeout, and with one accept-error policy: a connection
/// that vanished before it was accepted is skipped; running out of file descriptors pauses
/// accepting from 100 ms, doubling to 1 s, logging one line per 10 s with a count.
#[derive(Debug)]
pub struct SseListener {
    inner: TcpListener,
    options: SocketOptions,
    limits: ConnectionLimits,
    backoff: AcceptBackoff,
}

impl SseListener {
    /// Binds `addr` (port 0 picks a free port) with a backlog of 4096.
    pub fn bind(addr: SocketAddr, options: SocketOptions) -> io::Result<Self> {
        Ok(Self::from_listener(crate::net::bind(addr)?, options))
    }

    /// Wraps a listener bound elsewhere.
    pub fn from_listener(inner: TcpListener, options: SocketOptions) -> Self {
        Self {
            inner,
            options,
            limits: ConnectionLimits::default(),
            backoff: AcceptBackoff::default(),
        }
    }

    /// Sets the connection limits the servers of the core apply ([`serve`](super::serve) and
    /// [`serve_hyper`](super::serve_hyper)); the defaults are [`ConnectionLimits::default`].
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The connection limits.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The socket options applied to accepted connections.
    pub fn options(&self) -> SocketOptions {
        self.options
    }

    /// The std listener, for servers with an accept loop of their own (actix-web); they apply
    /// [`options`](Self::options) themselves.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.inner.into_std()
    }

    /// The next connection, with the socket options applied. Accept errors are handled by the
    /// policy above and never returned.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    self.backoff.on_success();
                    if let Err(e) = self.options.apply(&stream) {
                        tracing::debug!(%addr, error = %e, "could not apply socket options");
                    }
                    return (stream, addr);
                }
                Err(e) => match self.backoff.on_error(&e, Instant::now()) {
                    AfterError::Retry => {}
                    AfterError::Pause { pause, log } => {
                        if let Some(count) = log {
                            tracing::error!(
                                error = %e,
                                errors = count,
                                pause_ms = pause.as_millis() as u64,
                                "SSE error: accept failed; pausing accepts"
                            );
                        }
                        tokio::time::sleep(pause).await;
                    }
                },
            }
        }
    }
}

impl SseListener {
    /// The next connection the server keeps, with its slot in `connections`. A connection
    /// the server cannot keep is answered and closed by a task of its own (see
    /// [`limits`](super::limits)).
    pub(crate) async fn accept_kept(
        &mut self,
        connections: &Connections,
        broker: &crate::Broker,
    ) -> (TcpStream, SocketAddr, Slot) {
        loop {
            let (stream, peer) = self.accept().await;
            match connections.admit(peer.ip()) {
                Admission::Keep(slot) => return (stream, peer, slot),
                Admission::Shed(slot) => {
                    let broker = broker.clone();
                    let head_timeout = self.limits.head_timeout;
                    tokio::spawn(super::shed::shed(stream, broker, head_timeout, slot));
                }
                Admission::Drop => drop(stream),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(24)
    }

    #[test]
    fn a_vanished_connection_is_skipped_at_once() {
        let mut b = AcceptBackoff::default();
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(b.on_error(&aborted, Instant::now()), AfterError::Retry);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_files_pauses_doubling_to_a_second_and_logs_once_per_ten_seconds() {
        let mut b = AcceptBackoff::default();
        let mut pauses = Vec::new();
        let mut logs = Vec::new();
        for _ in 0..40 {
            let AfterError::Pause { pause, log } = b.on_error(&emfile(), Instant::now()) else {
                panic!("EMFILE must pause");
            };
            pauses.push(pause.as_millis() as u64);
            logs.extend(log);
            tokio::time::advance(pause).await;
        }
        assert_eq!(&pauses[..5], &[100, 200, 400, 800, 1000]);
        assert!(pauses.iter().all(|&p| p <= 1000));
        // 40 errors over about 36 s: a line at once, then one every 10 s with the count.
        assert_eq!(logs[0], 1);
        assert!(logs.len() <= 5, "{logs:?}");
        assert_eq!(logs.iter().sum::<u64>() + b.unlogged, 40);
        b.on_success();
        let AfterError::Pause { pause, .. } = b.on_error(&emfile(), Instant::now()) else {
            panic!("EMFILE must pause");
        };
        assert_eq!(pause, FIRST_PAUSE, "a success resets the pause");
    }
}
