//! Bringing a local ring up to the session's log.

use redis::Value;
use tether_core::{BackplaneError, ConnectOptions, Epoch, EventId, Placed, SessionId};

use super::Shared;
use super::reply::{SyncReply, epoch_hex, parse_sync, redis_error, unavailable};

/// How a sync claims the session's connection.
#[derive(Clone, Copy)]
pub(super) enum Claim<'a> {
    /// No claim: only read.
    None,
    /// Take the session over (a connect), with this connection token, unless the connecting
    /// client comes back to the connection that superseded it.
    Force(u64, &'a Arrival),
    /// Take it unless another node's connection holds its lease for another client (a
    /// connect under the Reject policy).
    Lease(u64, &'a Arrival),
    /// Take it only if nobody holds it (after Redis lost the meta).
    IfNone(u64),
}

/// Who a connect is, as the claim records it in the session's meta.
pub(super) struct Arrival {
    /// The instance key the two-tab rule compares: `<clientId>\n<identity>`, either empty.
    pub(super) instance: String,
    /// The client id, empty without one.
    pub(super) client_id: String,
    /// Whether the client can be told apart when it comes back after being superseded: it has
    /// a client id. (One node also tells a resuming EventSource without one from a reload, by
    /// whether the stream that superseded it is still alive; across nodes that stream's end
    /// reaches Redis later than the client's reconnect, so such a client is let in.)
    pub(super) returning: bool,
}

impl Arrival {
    pub(super) fn of(opts: &ConnectOptions) -> Self {
        let identity = opts.identity.as_deref().unwrap_or("");
        let client_id = opts.client_id.clone().unwrap_or_default();
        let instance = format!("{client_id}\n{identity}");
        Self {
            instance,
            returning: !client_id.is_empty(),
            client_id,
        }
    }
}

impl Arrival {
    /// The lease's holder key: the instance key, empty without a client id (such a client
    /// cannot be told apart from another, and matches no lease).
    fn lease(&self) -> &str {
        if self.client_id.is_empty() {
            ""
        } else {
            &self.instance
        }
    }
}

const NOBODY: &Arrival = &Arrival {
    instance: String::new(),
    client_id: String::new(),
    returning: false,
};

/// Why a sync runs: to read (connect, publish) or to fill a gap (counted).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    Read,
    Gap,
}

impl Shared {
    /// Brings the local ring up to the session's log, under the session's lock. Reads in
    /// batches until the ring holds the log's head; when the log lacks what the ring misses,
    /// records the loss (cursors behind it resync) instead of leaving a hole.
    pub(super) async fn sync_locked(
        &self,
        session: &SessionId,
        claim: Claim<'_>,
        why: Why,
    ) -> Result<SyncReply, BackplaneError> {
        let mut claim = claim;
        // Each round reads up to read_batch entries; the log holds at most max_events, so
        // this bounds the rounds even while publishes keep coming.
        let rounds = self.max_events / self.cfg.read_batch + 3;
        let mut last = None;
        for _ in 0..rounds {
            let (seen_epoch, seen_head) = self.seen(session);
            let from = seen_head;
            let (mode, token, who) = match claim {
                Claim::None => ("", 0, NOBODY),
                Claim::Force(t, who) => ("force", t, who),
                Claim::Lease(t, who) => ("lease", t, who),
                Claim::IfNone(t) => ("ifnone", t, NOBODY),
            };
            // A connect reads the pending approvals with the log, for its prelude.
            let with_approvals = matches!(claim, Claim::Force(..) | Claim::Lease(..));
            let mut inv = self.scripts.sync.prepare_invoke();
            inv.key(self.meta_key(session))
                .key(self.log_key(session))
                .key(self.lease_key(session))
                .key(self.pending_key(session))
                .key(self.approvals_key(session))
                .arg(epoch_hex(Epoch::random()))
                .arg(&seen_epoch)
                .arg(seen_head)
                .arg(mode)
                .arg(&self.cfg.node_id)
                .arg(token.to_string())
                .arg(self.ttl_ms)
                .arg(&self.channel_prefix)
                .arg(session.as_str())
                .arg(from)
                .arg(self.cfg.read_batch)
                .arg(self.lease_ms())
                .arg(who.lease())
                .arg(if who.returning { "1" } else { "" })
                .arg(&who.client_id)
                .arg(self.grace_ms())
                .arg(now_ms())
                .arg(&who.instance)
                .arg(if with_approvals { "1" } else { "" });
            let mut con = self.cmd.get();
            let reply: Value =
                tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con))
                    .await
                    .map_err(|_| unavailable("reading the log timed out"))?
                    .map_err(redis_error)?;
            let reply = parse_sync(reply)?;
            if let Some(refused) = reply.refused.clone() {
                return Err(BackplaneError::Connect(refused));
            }
            self.count_epoch_change(&reply.cause);
            claim = Claim::None;
            let complete = self.apply(session, &reply, why)?;
            if with_approvals {
                self.broker
                    .mirror_approvals(session, reply.pending.clone())
                    .map_err(BackplaneError::Publish)?;
            }
            last = Some(reply);
            if complete {
                break;
            }
        }
        last.ok_or_else(|| unavailable("no reply"))
    }

    /// Applies a sync reply to the local ring; `true` when the ring now holds the log's head.
    pub(super) fn apply(
        &self,
        session: &SessionId,
        r: &SyncReply,
        why: Why,
    ) -> Result<bool, BackplaneError> {
        let (le, lh) = self
            .broker
            .position(session)
            .unwrap_or((Epoch::from_u64(0), 0));
        let first = r.entries.first().map_or(r.head + 1, |(seq, _)| *seq);
        if le != r.epoch || lh + 1 < first {
            // What lies between the ring's head and the log's oldest entry is gone.
            self.broker
                .rebase(
                    session,
                    EventId {
                        epoch: r.epoch,
                        seq: first - 1,
                    },
                )
                .map_err(BackplaneError::Publish)?;
        }
        let mut filled = 0u64;
        for (seq, f) in &r.entries {
            let id = EventId {
                epoch: r.epoch,
                seq: *seq,
            };
            match self
                .broker
                .append_next(session, id, f.clone())
                .map_err(BackplaneError::Publish)?
            {
                Placed::Stored => filled += 1,
                Placed::Duplicate => {}
                Placed::Gap { .. } => return Ok(false),
            }
        }
        if why == Why::Gap && filled > 0 {
            self.metrics.gaps_filled.increment(filled);
        }
        Ok(self
            .broker
            .position(session)
            .is_some_and(|(e, h)| e == r.epoch && h >= r.head))
    }
}

/// The wall clock in ms since the Unix epoch (what the supersede grace is measured on across
/// nodes).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
