//! Socket settings for the servers the adapters start.
//!
//! A peer that vanishes without a FIN (a pulled cable, a NAT that forgot the flow) leaves
//! writes queued in the kernel for many minutes. TCP keepalive probes find idle dead peers,
//! and `TCP_USER_TIMEOUT` (Linux) bounds how long written data may stay unacknowledged, so the
//! kernel gives up within the client timeout and the session slot is freed.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Listen backlog of [`bind`]: a reconnect storm overflows the usual 1024, and the kernel
/// retries a dropped SYN only after a second.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Socket settings for accepted SSE connections.
///
/// Start from [`SocketOptions::default`] or [`for_client_timeout`](SocketOptions::for_client_timeout)
/// and change what differs with the setters; fields may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketOptions {
    /// Idle time before the first keepalive probe. Default is 15 seconds.
    pub keepalive_time: Duration,
    /// Time between probes. Default is 5 seconds.
    pub keepalive_interval: Duration,
    /// Unanswered probes before the connection is dropped. Default is 4.
    pub keepalive_retries: u32,
    /// Longest time written data may stay unacknowledged (`TCP_USER_TIMEOUT`, Linux only).
    /// Default is 60 seconds, the runbook's client timeout.
    pub user_timeout: Duration,
    /// Disables Nagle's algorithm, so small events leave at once. Default is true.
    pub nodelay: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            keepalive_time: Duration::from_secs(15),
            keepalive_interval: Duration::from_secs(5),
            keepalive_retries: 4,
            user_timeout: Duration::from_secs(60),
            nodelay: true,
        }
    }
}

impl SocketOptions {
    /// Sets the idle time before the first keepalive probe. Default is 15 seconds.
    #[must_use]
    pub fn keepalive_time(mut self, time: Duration) -> Self {
        self.keepalive_time = time;
        self
    }
    /// Sets the time between probes. Default is 5 seconds.
    #[must_use]
    pub fn keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive_interval = interval;
        self
    }
    /// Sets the unanswered probes before the connection is dropped. Default is 4.
    #[must_use]
    pub fn keepalive_retries(mut self, retries: u32) -> Self {
        self.keepalive_retries = retries;
        self
    }
    /// Sets the longest time written data may stay unacknowledged (`TCP_USER_TIMEOUT`,
    /// Linux only). Default is 60 seconds.
    #[must_use]
    pub fn user_timeout(mut self, timeout: Duration) -> Self {
        self.user_timeout = timeout;
        self
    }
    /// Sets whether Nagle's algorithm is off. Default is true (off).
    #[must_use]
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }
    /// Options whose user timeout is the broker's client timeout.
    pub fn for_client_timeout(timeout: Duration) -> Self {
        Self {
            user_timeout: timeout,
            ..Self::default()
        }
    }

    /// Applies the options to an accepted connection.
    pub fn apply(&self, stream: &TcpStream) -> io::Result<()> {
        let sock = SockRef::from(stream);
        let keepalive = TcpKeepalive::new()
            .with_time(self.keepalive_time)
            .with_interval(self.keepalive_interval)
            .with_retries(self.keepalive_retries);
        sock.set_tcp_keepalive(&keepalive)?;
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
        sock.set_tcp_user_timeout(Some(self.user_timeout))?;
        sock.set_tcp_nodelay(self.nodelay)?;
        Ok(())
    }
}

/// Binds a listener with SO_REUSEADDR and a backlog of [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds a std listener (for frameworks that take one) with the same settings as [`bind`].
pub fn bind_std(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG as i32)?;
    Ok(socket.into())
}
