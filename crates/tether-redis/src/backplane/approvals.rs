//! Approvals for every node: created, decided and expired exactly once cluster-wide.
//!
//! An approval lives beside its session's log, under the session's hash tag: its record in
//! the `appr` hash, its deadline in the `apend` ZSET while it is pending. One script creates
//! it and appends its announcement; one script resolves it and appends the outcome, and only
//! the first resolution finds it pending, so the first decision on any node wins. Redis's
//! clock judges the deadline inside that script, so a decision and an expiry racing on two
//! nodes agree on which came first.
//!
//! Deadlines: each node sweeps the shared index `approvals:due` (every health interval, and
//! at the deadlines of the approvals it created), and settles what is due with the same
//! script; with N nodes sweeping, the script lets one of them win. A deadline that passes
//! while Redis is out of reach is settled by the first sweep after it returns, or by the first
//! decision or status read, whichever comes first.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redis::Value;
use tether_core::{
    ApprovalError, ApprovalInfo, ApprovalRequest, ApprovalStatus, BackplaneError, DecideError,
    Judged, SessionId, Signal, frame,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Shared;
use super::reply::{
    as_str, as_u64, bad_reply, parse_epoch, parse_record, record_created, redis_error, unavailable,
};
use super::tracking::{CAS_ROUNDS, contended, expected};

/// How often a long-poll on this node reads an approval that another node may resolve.
const POLL: Duration = Duration::from_millis(100);

/// Most due deadlines one sweep settles; the rest wait for the next one.
const SWEEP_BATCH: usize = 64;

/// What a resolution found.
enum Settled {
    /// This call resolved it.
    Resolved(ApprovalInfo),
    /// Its deadline had passed: this call settled it as timed out.
    TimedOut(ApprovalInfo),
    /// It was resolved before.
    Final(ApprovalInfo),
    /// An expiry before the deadline (ms since the Unix epoch, on Redis's clock).
    Early(u64),
    /// No such approval.
    Unknown,
}

/// This node's upcoming deadlines (of the approvals it created), so its sweeper wakes at
/// them instead of at its next tick.
#[derive(Default)]
pub(super) struct Deadlines {
    next: std::sync::Mutex<std::collections::BTreeSet<u64>>,
    changed: Arc<Notify>,
}

impl Deadlines {
    fn add(&self, at_ms: u64) {
        self.next
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(at_ms);
        self.changed.notify_one();
    }

    /// The earliest deadline still ahead, dropping those at or before `now_ms`.
    fn earliest_after(&self, now_ms: u64) -> Option<u64> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        *next = next.split_off(&(now_ms + 1));
        next.first().copied()
    }
}

fn ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn now_ms() -> u64 {
    ms(SystemTime::now())
}

/// A signal's frames as the session's tracker writes them, each without its `id:` line (the
/// script adds it), where they may land, and which of them is the notice itself.
struct Notice {
    judged: Judged,
    bodies: Vec<Bytes>,
    index: usize,
}

impl Notice {
    /// No frames: a silent request, or the outcome of one.
    fn silent() -> Self {
        Self {
            judged: Judged::Anywhere,
            bodies: Vec::new(),
            index: 0,
        }
    }

    /// The bodies concatenated, as the scripts take them ('' for none).
    fn joined(&self) -> Vec<u8> {
        self.bodies.concat()
    }
}

fn record(info: &ApprovalInfo) -> String {
    serde_json::to_string(info).unwrap_or_default()
}

impl Shared {
    /// Runs one command within the operation deadline.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BackplaneError> {
        let mut con = self.cmd.get();
        tokio::time::timeout(self.cfg.op_deadline, cmd.query_async(&mut con))
            .await
            .map_err(|_| unavailable("an approval call timed out"))?
            .map_err(redis_error)
    }

    /// Runs one script within the operation deadline.
    async fn invoke(
        &self,
        inv: &redis::ScriptInvocation<'_>,
        timed_out: &'static str,
    ) -> Result<Value, BackplaneError> {
        let mut con = self.cmd.get();
        tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con))
            .await
            .map_err(|_| unavailable(timed_out))?
            .map_err(redis_error)
    }

    pub(super) async fn request_approval(
        &self,
        session: &SessionId,
        req: ApprovalRequest,
    ) -> Result<ApprovalInfo, BackplaneError> {
        let prepared = req.prepare(self.broker.config())?;
        let info = prepared.info;
        let deadline = ms(prepared.deadline);
        let member = format!("{session} {}", info.id);
        // The index first: a node that dies between the two writes leaves an index entry
        // without an approval, which the next sweep drops, never an approval without one.
        // NX: an entry for a resolved approval of the same id keeps its place until swept.
        self.query::<Value>(
            redis::cmd("ZADD")
                .arg(self.due_key())
                .arg("NX")
                .arg(deadline)
                .arg(&member),
        )
        .await?;
        let keep_ms = deadline
            .saturating_sub(now_ms())
            .saturating_add(self.ttl_ms);
        let guard = self.lock(session).await;
        let mut rounds = 0;
        let (items, notice) = loop {
            rounds += 1;
            if rounds > CAS_ROUNDS {
                return Err(contended());
            }
            let notice = if prepared.announce {
                self.notice(session, &Signal::ApprovalRequested(&info))
                    .await?
            } else {
                Notice::silent()
            };
            let (epoch, head) = expected(&notice.judged);
            let mut inv = self.scripts.create_approval.prepare_invoke();
            self.approval_keys(&mut inv, session);
            self.log_args(&mut inv, session);
            inv.arg(&info.id)
                .arg(deadline)
                .arg(self.broker.config().max_pending_approvals())
                .arg(record(&info))
                .arg(notice.joined())
                .arg(keep_ms)
                .arg(epoch)
                .arg(head)
                .arg(notice.index);
            let reply = self.invoke(&inv, "creating the approval timed out").await?;
            let Value::Array(items) = reply else {
                return Err(bad_reply("create_approval"));
            };
            match items.first().and_then(as_str) {
                Some("ok") => break (items, notice),
                Some("behind") => self.catch_up(session).await?,
                Some("dup") => return Err(ApprovalError::Duplicate.into()),
                Some("full") => {
                    let max = self.broker.config().max_pending_approvals();
                    return Err(ApprovalError::TooManyPending { max }.into());
                }
                _ => return Err(bad_reply("create_approval")),
            }
        };
        if !notice.bodies.is_empty() {
            self.appended_from(session, &items, &notice.bodies).await?;
        }
        drop(guard);
        self.deadlines.add(deadline);
        metrics::counter!(tether_core::metrics::APPROVAL_REQUESTS_TOTAL).increment(1);
        Ok(info)
    }

    pub(super) async fn resolve_approval(
        &self,
        session: &SessionId,
        approval_id: &str,
        status: ApprovalStatus,
    ) -> Result<ApprovalInfo, BackplaneError> {
        match self
            .settle_approval(session, approval_id, Some(status))
            .await?
        {
            Settled::Resolved(info) => Ok(info),
            Settled::TimedOut(_) => Err(DecideError::Expired.into()),
            Settled::Final(info) if info.status == ApprovalStatus::TimedOut => {
                Err(DecideError::Expired.into())
            }
            Settled::Final(info) => Err(DecideError::AlreadyDecided(info.status).into()),
            Settled::Early(_) | Settled::Unknown => Err(DecideError::Unknown.into()),
        }
    }

    /// The approval as it stands, after waiting up to `wait` for a pending one to be resolved
    /// on any node. A pending approval past its deadline is settled here.
    pub(super) async fn approval(
        &self,
        session: &SessionId,
        approval_id: &str,
        wait: Duration,
    ) -> Result<Option<ApprovalInfo>, BackplaneError> {
        let until = Instant::now() + wait;
        loop {
            let (rec, deadline): (Option<String>, Option<u64>) = {
                let mut pipe = redis::pipe();
                pipe.hget(self.approvals_key(session), approval_id)
                    .zscore(self.pending_key(session), approval_id);
                let mut con = self.cmd.get();
                tokio::time::timeout(self.cfg.op_deadline, pipe.query_async(&mut con))
                    .await
                    .map_err(|_| unavailable("reading the approval timed out"))?
                    .map_err(redis_error)?
            };
            let Some((info, _)) = rec.as_deref().and_then(parse_record) else {
                return Ok(None);
            };
            if info.status.is_final() {
                return Ok(Some(info));
            }
            if deadline.is_some_and(|d| d <= now_ms()) {
                match self.settle_approval(session, approval_id, None).await? {
                    Settled::TimedOut(info) | Settled::Final(info) => return Ok(Some(info)),
                    Settled::Unknown => return Ok(None),
                    Settled::Resolved(_) | Settled::Early(_) => {}
                }
            }
            let now = Instant::now();
            if now >= until {
                return Ok(Some(info));
            }
            tokio::time::sleep(POLL.min(until - now)).await;
        }
    }

    /// Resolves an approval with `status`, or (`None`) expires it once its deadline passed.
    async fn settle_approval(
        &self,
        session: &SessionId,
        approval_id: &str,
        status: Option<ApprovalStatus>,
    ) -> Result<Settled, BackplaneError> {
        let rec: Option<String> = self
            .query(
                redis::cmd("HGET")
                    .arg(self.approvals_key(session))
                    .arg(approval_id),
            )
            .await?;
        let Some((info, at)) = rec.as_deref().and_then(parse_record) else {
            return Ok(Settled::Unknown);
        };
        if info.status.is_final() {
            return Ok(Settled::Final(info));
        }
        // A request announced in the stream has its outcome announced too.
        let announced = at.is_some();
        let timed_out = info.resolved(ApprovalStatus::TimedOut);
        let decided = status.as_ref().map(|s| info.resolved(s.clone()));
        let guard = self.lock(session).await;
        let mut rounds = 0;
        let (items, decided_notice, timed_out_notice) = loop {
            rounds += 1;
            if rounds > CAS_ROUNDS {
                return Err(contended());
            }
            let (decided_notice, timed_out_notice) = if announced {
                let decided = match &decided {
                    Some(d) => self.notice(session, &Signal::ApprovalResolved(d)).await?,
                    None => Notice::silent(),
                };
                let timed_out = self
                    .notice(session, &Signal::ApprovalResolved(&timed_out))
                    .await?;
                (decided, timed_out)
            } else {
                (Notice::silent(), Notice::silent())
            };
            // Both outcomes are written after the same head: nothing changes the ring while
            // the session's lock is held.
            let judged = if announced {
                &timed_out_notice.judged
            } else {
                &Judged::Anywhere
            };
            let (epoch, head) = expected(judged);
            let mut inv = self.scripts.resolve_approval.prepare_invoke();
            self.approval_keys(&mut inv, session);
            self.log_args(&mut inv, session);
            inv.arg(approval_id)
                .arg(if status.is_some() { "decide" } else { "expire" })
                .arg(decided.as_ref().map(record).unwrap_or_default())
                .arg(decided_notice.joined())
                .arg(record(&timed_out))
                .arg(timed_out_notice.joined())
                .arg(self.broker.config().decided_approvals_kept().max(1))
                .arg(epoch)
                .arg(head);
            let reply = self
                .invoke(&inv, "resolving the approval timed out")
                .await?;
            let Value::Array(items) = reply else {
                return Err(bad_reply("resolve_approval"));
            };
            if items.first().and_then(as_str) == Some("behind") {
                self.catch_up(session).await?;
                continue;
            }
            break (items, decided_notice, timed_out_notice);
        };
        let stored = |i: usize| {
            items
                .get(i)
                .and_then(as_str)
                .and_then(parse_record)
                .map(|(info, _)| info)
                .ok_or_else(|| bad_reply("resolve_approval"))
        };
        let settled = match items.first().and_then(as_str) {
            Some("unknown") => Settled::Unknown,
            Some("final") => Settled::Final(stored(1)?),
            Some("early") => Settled::Early(
                items
                    .get(1)
                    .and_then(as_str)
                    .and_then(|d| d.parse::<f64>().ok())
                    .map_or(0, |d| d as u64),
            ),
            Some(outcome @ ("ok" | "expired")) => {
                let timed_out = outcome == "expired";
                let resolved = stored(7)?;
                let notice = if timed_out {
                    timed_out_notice
                } else {
                    decided_notice
                };
                if !notice.bodies.is_empty() {
                    self.appended_from(session, &items, &notice.bodies).await?;
                }
                self.log_outcome(session, &resolved);
                // How long it waited, both ends by Redis's clock.
                let created = items.get(7).and_then(as_str).and_then(record_created);
                if let (Some(created), Some(now)) = (created, items.get(8).and_then(as_u64)) {
                    let waited = Duration::from_millis(now.saturating_sub(created));
                    metrics::histogram!(tether_core::metrics::APPROVAL_WAIT_SECONDS)
                        .record(waited.as_secs_f64());
                }
                if timed_out {
                    Settled::TimedOut(resolved)
                } else {
                    Settled::Resolved(resolved)
                }
            }
            _ => return Err(bad_reply("resolve_approval")),
        };
        drop(guard);
        if matches!(settled, Settled::Resolved(_) | Settled::TimedOut(_)) {
            // Best effort: a leftover index entry is dropped by the sweep that finds it.
            let _ = self
                .query::<Value>(
                    redis::cmd("ZREM")
                        .arg(self.due_key())
                        .arg(format!("{session} {approval_id}")),
                )
                .await;
        }
        Ok(settled)
    }

    fn log_outcome(&self, session: &SessionId, info: &ApprovalInfo) {
        if info.status == ApprovalStatus::TimedOut {
            tracing::warn!(session = %session, approval = %info.id, "approval timed out");
        }
        metrics::counter!(
            tether_core::metrics::APPROVAL_DECISIONS_TOTAL,
            "outcome" => info.status.as_str()
        )
        .increment(1);
    }

    /// The approval scripts' keys: meta, log, records, pending, resolved.
    fn approval_keys(&self, inv: &mut redis::ScriptInvocation<'_>, session: &SessionId) {
        inv.key(self.meta_key(session))
            .key(self.log_key(session))
            .key(self.approvals_key(session))
            .key(self.pending_key(session))
            .key(self.resolved_key(session));
    }

    /// The frames that announce `signal` in the session's stream, as its tracker writes them
    /// (the tracker rebuilt first when it lost history). Called under the session's lock.
    async fn notice(
        &self,
        session: &SessionId,
        signal: &Signal<'_>,
    ) -> Result<Notice, BackplaneError> {
        let (judged, frames) = self
            .judged(session, |b| b.signal_events(session, signal))
            .await?;
        let index = frames
            .iter()
            .position(|f| f.contains(r#""name":"tether.approval."#))
            .unwrap_or(0);
        Ok(Notice {
            judged,
            bodies: frames
                .iter()
                .map(|data| frame::encode_event(None, None, data))
                .collect(),
            index,
        })
    }

    /// Puts the frames an approval script appended into the local ring. `items` is the
    /// script's reply: `{outcome, epoch, first, ...}`.
    async fn appended_from(
        &self,
        session: &SessionId,
        items: &[Value],
        bodies: &[Bytes],
    ) -> Result<(), BackplaneError> {
        let epoch = parse_epoch(
            items
                .get(1)
                .and_then(as_str)
                .ok_or_else(|| bad_reply("approval"))?,
        )?;
        let first = items
            .get(2)
            .and_then(as_u64)
            .ok_or_else(|| bad_reply("approval"))?;
        self.count_epoch_change(items.get(5).and_then(as_str).unwrap_or_default());
        self.appended(session, epoch, first, bodies).await;
        Ok(())
    }

    /// Settles every approval whose deadline passed, as far as one batch goes.
    async fn sweep(&self) -> Result<(), BackplaneError> {
        let due: Vec<(String, f64)> = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.due_key())
                    .arg("-inf")
                    .arg(now_ms())
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(SWEEP_BATCH)
                    .arg("WITHSCORES"),
            )
            .await?;
        for (member, score) in due {
            let Some((sid, id)) = member.split_once(' ') else {
                self.unindex(&member, score).await?;
                continue;
            };
            let Ok(session) = SessionId::new(sid) else {
                self.unindex(&member, score).await?;
                continue;
            };
            match self.settle_approval(&session, id, None).await? {
                Settled::Early(deadline) => {
                    // A newer approval of the same id, or Redis's clock a little behind.
                    self.query::<Value>(
                        redis::cmd("ZADD")
                            .arg(self.due_key())
                            .arg("XX")
                            .arg(deadline.max(score as u64 + 1))
                            .arg(&member),
                    )
                    .await?;
                }
                _ => self.unindex(&member, score).await?,
            }
        }
        Ok(())
    }

    /// Drops an index entry, only if nobody moved it meanwhile.
    async fn unindex(&self, member: &str, score: f64) -> Result<(), BackplaneError> {
        let mut inv = self.scripts.unindex.prepare_invoke();
        inv.key(self.due_key()).arg(member).arg(score);
        self.invoke(&inv, "dropping a deadline timed out").await?;
        Ok(())
    }
}

/// The deadline sweeper: wakes at the next deadline this node knows of, or after one health
/// interval, and settles what is due. Errors (Redis out of reach) wait for the next round.
pub(super) async fn sweep_deadlines(shared: Weak<Shared>) {
    let (changed, tick) = match shared.upgrade() {
        Some(s) => (s.deadlines.changed.clone(), s.cfg.health_interval),
        None => return,
    };
    loop {
        let wait = match shared.upgrade() {
            Some(s) => {
                let now = now_ms();
                s.deadlines
                    .earliest_after(now)
                    .map_or(tick, |at| Duration::from_millis(at - now + 1).min(tick))
            }
            None => return,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = changed.notified() => continue,
        }
        let Some(s) = shared.upgrade() else {
            return;
        };
        if !s.status().up {
            continue;
        }
        if let Err(e) = s.sweep().await {
            tracing::warn!(error = %e, "SSE backplane: settling approval deadlines failed; retrying");
        }
    }
}
