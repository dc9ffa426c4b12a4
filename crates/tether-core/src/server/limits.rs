//! How many connections a server keeps, and what happens to the one past the limit.
//!
//! Every accepted connection takes a slot in the server's registry of connections. A slot is
//! *idle* while the connection waits for a request head (just accepted, or kept alive between
//! requests), *busy* while a request is served, and a *stream* once its response is an event
//! stream. When the server is full, a new connection is still accepted (a refused or
//! backlogged connection tells a browser nothing), and:
//!
//! 1. the oldest idle connection is closed to make room, if there is one (an idle
//!    connection is the cheapest to lose: its client has asked for nothing);
//! 2. otherwise the new connection is *shed*: its head is read (briefly) and answered, an
//!    event-stream request with `200` and a jittered `retry:` (EventSource never comes back
//!    after a non-200 answer), anything else with `503` and `Retry-After`, and it closes.
//!
//! Streams are never closed to make room. Connections from one peer address beyond
//! [`ConnectionLimits::max_per_ip`] are shed the same way.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::Broker;

/// Connections beyond the limit that may be answered at the same time; past them a new
/// connection is closed at once, so a flood cannot use the descriptors kept in reserve.
const SHED_RESERVE: usize = 256;

/// How many connections a server keeps and how long it waits for requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections kept open at once (streams, requests in flight, idle keep-alives).
    /// Default: 10,000.
    pub max_connections: usize,
    /// Connections from one peer address; 0 = no limit (the default). Behind a proxy every
    /// connection has the proxy's address: leave it off there.
    pub max_per_ip: usize,
    /// How long a request head may take to arrive in full, from the connection's accept or
    /// from its first byte after a keep-alive pause. Default: 10 s.
    pub head_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request. Default: 60 s.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_per_ip: 0,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl ConnectionLimits {
    /// The default limit on connections for a process allowed `open_files` descriptors: all
    /// of them but 512, kept for shed answers, the log, the listener and outgoing
    /// connections (at least 64).
    pub fn max_connections_for(open_files: u64) -> usize {
        usize::try_from(open_files.saturating_sub(512))
            .unwrap_or(usize::MAX)
            .max(64)
    }
}

/// What happens to a newly accepted connection.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Served, holding this slot.
    Keep(Slot),
    /// Answered and closed (the server is full, or its peer holds too many).
    Shed(ShedSlot),
    /// Closed at once: too many are being shed already.
    Drop,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    shedding: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Idle connections by when they became idle; the first is the oldest.
    idle: BTreeMap<u64, Arc<Notify>>,
    next_idle: u64,
}

/// The registry of a server's connections.
#[derive(Debug, Clone)]
pub(crate) struct Connections {
    limits: ConnectionLimits,
    state: Arc<Mutex<State>>,
    broker: Broker,
}

impl Connections {
    /// A registry for a server around `broker`, which reports the limits in `/health/sse`.
    pub(crate) fn new(limits: ConnectionLimits, broker: Broker) -> Self {
        broker.declare_limit("connections", limits.max_connections as u64);
        if limits.max_per_ip > 0 {
            broker.declare_limit("connections_per_ip", limits.max_per_ip as u64);
        }
        Self {
            limits,
            state: Arc::default(),
            broker,
        }
    }

    /// Decides about a connection from `ip`, closing the oldest idle one if that makes room.
    pub(crate) fn admit(&self, ip: IpAddr) -> Admission {
        let mut st = self.state.lock();
        let from_ip = st.per_ip.get(&ip).copied().unwrap_or(0);
        let ip_full = self.limits.max_per_ip > 0 && from_ip >= self.limits.max_per_ip;
        let keep = if ip_full {
            false
        } else if st.open < self.limits.max_connections {
            true
        } else if let Some((_, close)) = st.idle.pop_first() {
            // The oldest idle connection closes and this one takes its place; until its task
            // has ended, the server holds one more than the limit.
            close.notify_one();
            tracing::debug!("server full: closing the oldest idle connection");
            true
        } else {
            false
        };
        if keep {
            st.open += 1;
            *st.per_ip.entry(ip).or_default() += 1;
            // A new connection is idle from the start (it has asked for nothing yet), before
            // its task first runs: a flood accepted faster than its tasks start is still
            // closed to make room.
            let close = Arc::new(Notify::new());
            let key = st.next_idle;
            st.next_idle += 1;
            st.idle.insert(key, close.clone());
            drop(st);
            return Admission::Keep(Slot {
                connections: self.clone(),
                ip,
                idle_key: Some(key),
                close,
            });
        }
        self.broker.refuse_by_limit(if ip_full {
            "connections_per_ip"
        } else {
            "connections"
        });
        if st.shedding >= SHED_RESERVE {
            return Admission::Drop;
        }
        st.shedding += 1;
        Admission::Shed(ShedSlot {
            connections: self.clone(),
        })
    }

    /// Connections open now (kept ones; shed ones are not counted).
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.state.lock().open
    }
}

/// A kept connection's place in the registry; freed on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Connections,
    ip: IpAddr,
    idle_key: Option<u64>,
    close: Arc<Notify>,
}

impl Slot {
    /// The connection waits for a request head: the first to close when room is needed.
    /// Resolves when it is chosen to close.
    pub(crate) fn idle(&mut self) -> Arc<Notify> {
        if self.idle_key.is_none() {
            let mut st = self.connections.state.lock();
            let key = st.next_idle;
            st.next_idle += 1;
            st.idle.insert(key, self.close.clone());
            self.idle_key = Some(key);
        }
        self.close.clone()
    }

    /// The connection serves a request (or a stream): never closed to make room.
    pub(crate) fn busy(&mut self) {
        if let Some(key) = self.idle_key.take() {
            self.connections.state.lock().idle.remove(&key);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.connections.state.lock();
        if let Some(key) = self.idle_key.take() {
            st.idle.remove(&key);
        }
        st.open = st.open.saturating_sub(1);
        if let Some(n) = st.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                st.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A shed connection's place in the reserve; freed on drop.
#[derive(Debug)]
pub(crate) struct ShedSlot {
    connections: Connections,
}

impl Drop for ShedSlot {
    fn drop(&mut self) {
        let mut st = self.connections.state.lock();
        st.shedding = st.shedding.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize) -> Connections {
        let broker = Broker::builder().start().expect("valid config");
        Connections::new(
            ConnectionLimits {
                max_connections: max,
                max_per_ip: per_ip,
                ..ConnectionLimits::default()
            },
            broker,
        )
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn keep(a: Admission) -> Slot {
        match a {
            Admission::Keep(slot) => slot,
            other => panic!("expected a kept connection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_full_server_closes_its_oldest_idle_connection_first() {
        let conns = limits(3, 0);
        let mut oldest = keep(conns.admit(ip(1)));
        let mut younger = keep(conns.admit(ip(1)));
        let mut busy = keep(conns.admit(ip(1)));
        // Kept connections are idle from the start; `idle` again changes nothing.
        let oldest_close = oldest.idle();
        let younger_close = younger.idle();
        busy.busy();
        let _new = keep(conns.admit(ip(2)));
        // The oldest idle one was told to close (a permit waits for it), the younger not.
        tokio::time::timeout(Duration::from_millis(50), oldest_close.notified())
            .await
            .expect("the oldest idle connection is closed");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), younger_close.notified())
                .await
                .is_err()
        );
        drop(oldest);
        assert_eq!(conns.open(), 3);
    }

    #[tokio::test]
    async fn a_connection_whose_task_has_not_run_yet_is_already_idle() {
        let conns = limits(1, 0);
        let first = keep(conns.admit(ip(1)));
        let _second = keep(conns.admit(ip(1)));
        tokio::time::timeout(Duration::from_millis(50), first.close.notified())
            .await
            .expect("the first connection, never polled, was closed to make room");
    }

    #[tokio::test]
    async fn streams_are_never_closed_to_make_room_and_the_next_one_is_shed() {
        let conns = limits(2, 0);
        let mut a = keep(conns.admit(ip(1)));
        let mut b = keep(conns.admit(ip(1)));
        a.busy();
        b.busy();
        assert!(matches!(conns.admit(ip(2)), Admission::Shed(_)));
        drop(a);
        let _c = keep(conns.admit(ip(2)));
    }

    #[tokio::test]
    async fn one_address_cannot_take_more_than_its_share() {
        let conns = limits(100, 2);
        let _a = keep(conns.admit(ip(1)));
        let _b = keep(conns.admit(ip(1)));
        assert!(matches!(conns.admit(ip(1)), Admission::Shed(_)));
        let _other = keep(conns.admit(ip(2)));
    }

    #[tokio::test]
    async fn shedding_is_bounded_by_the_reserve() {
        let conns = limits(1, 0);
        let mut only = keep(conns.admit(ip(1)));
        only.busy();
        let shed: Vec<_> = (0..SHED_RESERVE).map(|_| conns.admit(ip(2))).collect();
        assert!(shed.iter().all(|a| matches!(a, Admission::Shed(_))));
        assert!(matches!(conns.admit(ip(2)), Admission::Drop));
        drop(shed);
        assert!(matches!(conns.admit(ip(2)), Admission::Shed(_)));
    }
}
