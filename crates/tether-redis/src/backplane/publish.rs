//! Publishing: one atomic append to the session's log, then into the local ring.

use bytes::Bytes;
use redis::{ScriptInvocation, Value};
use tether_core::idempotency::{self, IdempotencyKey, Published};
use tether_core::{
    BackplaneError, Epoch, Event, EventId, Judged, Placed, PublishError, SessionId, frame,
};
use tokio::time::Instant;

use super::Shared;
use super::reply::{
    as_str, as_u64, bad_reply, epoch_hex, frame_with_id, parse_epoch, redis_error, replay,
    unavailable,
};
use super::sync::{Claim, Why};
use super::tracking::{CAS_ROUNDS, contended, expected};

impl Shared {
    pub(super) async fn publish(
        &self,
        session: &SessionId,
        events: &[Event],
        key: Option<&IdempotencyKey>,
    ) -> Result<Published, BackplaneError> {
        if events.is_empty() {
            return Ok(Published {
                ids: Vec::new(),
                replayed: false,
            });
        }
        let fingerprint = key.map(|_| format!("{:016x}", idempotency::fingerprint(events)));
        let bodies = self.encode(events)?;
        let _guard = self.lock(session).await;
        // Whether the ring was brought up to the log since the events were last judged: only
        // then is a refusal the tracker's last word.
        let mut caught_up = false;
        for _ in 0..CAS_ROUNDS {
            let judged = self
                .judged(session, |b| b.judge(session, events).map(|j| (j, ())))
                .await;
            let judged = match (judged, key, &fingerprint) {
                (Ok((judged, ())), _, _) => judged,
                // The ring may lack what other nodes appended (their wakes are on the way),
                // and the events may follow those: judge again on the log's head.
                (Err(BackplaneError::Publish(e)), _, _) if !caught_up && e.is_refusal() => {
                    self.catch_up(session).await?;
                    caught_up = true;
                    continue;
                }
                // A retry of a publish that was stored: its events follow themselves now, so
                // the tracker refuses them; the key's record answers as it does untracked.
                (Err(refused), Some(key), Some(fp)) => {
                    return match self.idempotency_record(session, key).await? {
                        Some(record) => replay(key, fp, &record),
                        None => Err(refused),
                    };
                }
                (Err(refused), _, _) => return Err(refused),
            };
            let reply = self
                .append(session, key, fingerprint.as_deref(), &judged, &bodies)
                .await?;
            let Value::Array(items) = reply else {
                return Err(bad_reply("append"));
            };
            match &items[..] {
                [again, record] if as_str(again) == Some("again") => {
                    let (Some(key), Some(fp)) = (key, &fingerprint) else {
                        return Err(bad_reply("append"));
                    };
                    return replay(key, fp, as_str(record).ok_or_else(|| bad_reply("append"))?);
                }
                [behind] if as_str(behind) == Some("behind") => {
                    self.catch_up(session).await?;
                    caught_up = true;
                    continue;
                }
                _ if items.len() < 7 => return Err(bad_reply("append")),
                _ => {}
            }
            let epoch = parse_epoch(as_str(&items[0]).ok_or_else(|| bad_reply("append"))?)?;
            let first = as_u64(&items[1]).ok_or_else(|| bad_reply("append"))?;
            self.count_epoch_change(as_str(&items[4]).unwrap_or_default());
            let ids = self.appended(session, epoch, first, &bodies).await;
            if as_u64(&items[6]) == Some(1) {
                self.checkpoint(session).await;
            }
            return Ok(Published {
                ids,
                replayed: false,
            });
        }
        Err(contended())
    }

    /// The record of an idempotency key, if the key was used.
    async fn idempotency_record(
        &self,
        session: &SessionId,
        key: &IdempotencyKey,
    ) -> Result<Option<String>, BackplaneError> {
        let mut con = self.cmd.get();
        tokio::time::timeout(
            self.cfg.op_deadline,
            redis::cmd("GET")
                .arg(self.idempotency_key(session, Some(key)))
                .query_async(&mut con),
        )
        .await
        .map_err(|_| unavailable("reading the idempotency key timed out"))?
        .map_err(redis_error)
    }

    /// The frames to append, without their `id:` lines (the script adds them); refuses an
    /// event the broker would refuse.
    fn encode(&self, events: &[Event]) -> Result<Vec<Bytes>, BackplaneError> {
        let max = self.broker.config().max_event_bytes();
        events
            .iter()
            .map(|e| {
                let body = frame::encode_event(None, e.name(), e.data());
                // The id line adds at most 4 + 16 + 1 + 20 + 1 bytes.
                let size = body.len() + 42;
                if size > max {
                    return Err(PublishError::TooLarge { size, max }.into());
                }
                Ok(body)
            })
            .collect()
    }

    /// Puts frames a script appended (from seq `first` in `epoch`) into the local ring, and
    /// catches up from the log when this node was behind; returns their ids. Called under the
    /// session's lock.
    pub(super) async fn appended(
        &self,
        session: &SessionId,
        epoch: Epoch,
        first: u64,
        bodies: &[Bytes],
    ) -> Vec<EventId> {
        let ids: Vec<EventId> = (0..bodies.len() as u64)
            .map(|i| EventId {
                epoch,
                seq: first + i,
            })
            .collect();
        let behind = self.store_locally(session, &ids, bodies);
        if behind && let Err(e) = self.sync_locked(session, Claim::None, Why::Read).await {
            // The events are stored in Redis; the next wake, connect or head check fills.
            tracing::warn!(session = %session, error = %e, "SSE backplane: catching up after a publish failed");
        }
        ids
    }

    /// The fence's and `append`'s arguments (ARGV[1..10] of every script that writes to the
    /// log), after the script's keys.
    pub(super) fn log_args(&self, inv: &mut ScriptInvocation<'_>, session: &SessionId) {
        let (seen_epoch, seen_head) = self.seen(session);
        inv.arg(epoch_hex(Epoch::random()))
            .arg(seen_epoch)
            .arg(seen_head)
            .arg(self.max_events)
            .arg(self.max_bytes)
            .arg(self.ttl_ms)
            .arg(&self.cfg.node_id)
            .arg(self.cfg.inline_max)
            .arg(&self.channel_prefix)
            .arg(session.as_str());
    }

    /// Runs the append script, under the session's lock, within the operation deadline.
    async fn append(
        &self,
        session: &SessionId,
        key: Option<&IdempotencyKey>,
        fingerprint: Option<&str>,
        judged: &Judged,
        bodies: &[Bytes],
    ) -> Result<Value, BackplaneError> {
        let mut inv = self.scripts.append.prepare_invoke();
        inv.key(self.meta_key(session))
            .key(self.log_key(session))
            .key(self.idempotency_key(session, key));
        self.log_args(&mut inv, session);
        let (epoch, head) = expected(judged);
        inv.arg(fingerprint.unwrap_or_default())
            .arg(epoch)
            .arg(head);
        for b in bodies {
            inv.arg(&b[..]);
        }
        let mut con = self.cmd.get();
        let started = Instant::now();
        let reply = tokio::time::timeout(self.cfg.op_deadline, inv.invoke_async(&mut con))
            .await
            .map_err(|_| unavailable("the append timed out"))?
            .map_err(redis_error)?;
        self.metrics
            .append_seconds
            .record(started.elapsed().as_secs_f64());
        Ok(reply)
    }

    /// Puts what Redis stored into the local ring, so this node's cursors see it; `true`
    /// when this node was behind (the session got events through another node) and must
    /// fill from the log instead.
    fn store_locally(&self, session: &SessionId, ids: &[EventId], bodies: &[Bytes]) -> bool {
        for (id, body) in ids.iter().zip(bodies) {
            match self
                .broker
                .append_next(session, *id, frame_with_id(*id, body))
            {
                Ok(Placed::Stored | Placed::Duplicate) => {}
                Ok(Placed::Gap { .. }) => return true,
                Err(e) => {
                    tracing::warn!(session = %session, error = %e, "SSE backplane: local ring refused an event stored in Redis");
                    return false;
                }
            }
        }
        false
    }
}
