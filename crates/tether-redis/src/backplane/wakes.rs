//! This node's channel: wakes and supersede notices.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use redis::{PushInfo, PushKind};
use tether_core::{Epoch, EventId, Placed, SessionId};
use tokio::sync::mpsc;

use super::Shared;
use super::reply::{as_bytes, parse_epoch};
use super::sync::{Claim, Why};

impl Shared {
    /// Handles one message on this node's channel: a wake (`w <sid> <epoch> <first> <last>
    /// <lens>` then the inline frames), a supersede notice (`sup <sid> <token>`) or the
    /// supervisor's liveness probe (`p <nonce>`).
    pub(super) async fn on_message(self: &Arc<Self>, payload: &[u8]) {
        let (header, rest) = match memchr_nl(payload) {
            Some(i) => (&payload[..i], &payload[i + 1..]),
            None => (payload, &payload[payload.len()..]),
        };
        let Ok(header) = std::str::from_utf8(header) else {
            return;
        };
        let mut parts = header.split(' ');
        match parts.next() {
            Some("w") => {
                self.metrics.wakes.increment(1);
                if self
                    .drop_wakes
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return;
                }
                if let Some(wake) = Wake::parse(parts, rest) {
                    self.deliver(wake);
                }
            }
            Some("sup") => {
                if self
                    .drop_supersedes
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return;
                }
                let (Some(sid), Some(token)) = (
                    parts.next().and_then(|s| SessionId::new(s).ok()),
                    parts.next().and_then(|s| s.parse::<u64>().ok()),
                ) else {
                    return;
                };
                if self.owned.remove_if(&sid, |_, t| *t == token).is_some() {
                    self.broker.supersede_local(&sid);
                }
            }
            Some("p") => {
                if let Some(nonce) = parts.next().and_then(|n| n.parse::<u64>().ok()) {
                    self.probe_returned(nonce);
                }
            }
            _ => {}
        }
    }

    /// Appends a wake's frames right here when nobody else works on the session (the usual
    /// case); otherwise hands it to a task, so one busy session does not stall the others'.
    fn deliver(self: &Arc<Self>, wake: Wake) {
        if let Some(guard) = self.try_lock(&wake.session) {
            if self.apply_wake(&wake.session, wake.epoch, wake.first, &wake.frames) {
                return;
            }
            drop(guard);
        }
        // The session's lock is held across a Redis call by a publish or connect on this
        // node, or the wake revealed a gap.
        let this = self.clone();
        tokio::spawn(async move {
            this.on_wake(&wake.session, wake.epoch, wake.first, wake.frames)
                .await;
        });
    }

    /// Appends a wake's frames in order; `false` when they do not follow the ring's head (or
    /// came by reference), so the log must be read.
    pub(super) fn apply_wake(
        &self,
        session: &SessionId,
        epoch: Epoch,
        first: u64,
        frames: &[Bytes],
    ) -> bool {
        if frames.is_empty() {
            return false;
        }
        for (i, f) in frames.iter().enumerate() {
            let id = EventId {
                epoch,
                seq: first + i as u64,
            };
            match self.broker.append_next(session, id, f.clone()) {
                Ok(Placed::Stored | Placed::Duplicate) => {}
                Ok(Placed::Gap { .. }) | Err(_) => return false,
            }
        }
        true
    }

    pub(super) async fn on_wake(
        &self,
        session: &SessionId,
        epoch: Epoch,
        first: u64,
        frames: Vec<Bytes>,
    ) {
        let _guard = self.lock(session).await;
        let complete = self.apply_wake(session, epoch, first, &frames);
        if !complete && let Err(e) = self.sync_locked(session, Claim::None, Why::Gap).await {
            tracing::warn!(session = %session, error = %e, "SSE backplane: filling a gap failed; the head check retries");
        }
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// The pub/sub ingest task: wakes and supersede notices for this node.
pub(super) async fn ingest(
    shared: Weak<Shared>,
    mut rx: mpsc::Receiver<PushInfo>,
    overflow: Arc<AtomicBool>,
) {
    let mut resubscribe_pending = false;
    while let Some(info) = rx.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if overflow.swap(false, Ordering::AcqRel) {
            shared.catch_up.store(true, Ordering::Release);
        }
        match info.kind {
            PushKind::Message => {
                if let Some(payload) = info.data.get(1).and_then(as_bytes) {
                    shared.on_message(payload).await;
                }
            }
            PushKind::Disconnection => {
                resubscribe_pending = true;
                shared.set_up(false);
            }
            PushKind::Subscribe if resubscribe_pending => {
                // Messages published while the link was down are lost: catch up from the log.
                resubscribe_pending = false;
                shared.catch_up.store(true, Ordering::Release);
            }
            _ => {}
        }
    }
}

/// A wake: the session's new events, inline (empty when they came by reference, or the
/// lengths did not add up: the log is read then).
struct Wake {
    session: SessionId,
    epoch: Epoch,
    first: u64,
    frames: Vec<Bytes>,
}

impl Wake {
    /// Parses the fields after `w` and the frames after the header line; `None` when the
    /// header is malformed.
    fn parse<'a>(mut parts: impl Iterator<Item = &'a str>, rest: &[u8]) -> Option<Self> {
        let session = SessionId::new(parts.next()?).ok()?;
        let epoch = parse_epoch(parts.next()?).ok()?;
        let first = parts.next()?.parse::<u64>().ok()?;
        let _last = parts.next()?.parse::<u64>().ok()?;
        let lens = parts.next()?;
        let mut frames = Vec::new();
        if lens != "-" {
            let mut at = 0usize;
            for len in lens.split(',') {
                let Some(len) = len.parse::<usize>().ok().filter(|l| at + l <= rest.len()) else {
                    frames.clear();
                    break;
                };
                frames.push(Bytes::copy_from_slice(&rest[at..at + len]));
                at += len;
            }
        }
        Some(Self {
            session,
            epoch,
            first,
            frames,
        })
    }
}
