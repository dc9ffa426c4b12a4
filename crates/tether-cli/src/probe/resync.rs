//! The resync row: resume from an id the ring has evicted, publishing ring + 1 events first
//! (or doubling until the id is evicted when the ring size is not given).

use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::conn::{Kind, Obs, classify, next_obs};
use super::judge::{self, Check, FirstEvent, Status};
use super::{Probe, skip_unpublished};

/// Most events the resync search publishes when the ring size is not given.
const RESYNC_CAP: u64 = 10_000;
/// Most events in one publish request (the contract's limit).
const BATCH: u64 = 1000;

impl Probe {
    /// Resumes from an id that has been evicted: the stream must say so with a
    /// `tether.resync` (reason `evicted`) instead of continuing silently.
    pub(super) async fn provoke(&mut self, anchor: Option<(String, u64)>) -> Check {
        const EXPECTED: &str = "tether.resync (reason evicted) for an evicted id";
        if !self.provoke {
            return Check::new(
                "resync",
                Status::Skip,
                "pass --provoke-resync (publishes ring + 1 events)",
                EXPECTED,
            );
        }
        if self.publish_token.is_none() {
            return skip_unpublished("resync", EXPECTED.to_owned());
        }
        let Some((id, n)) = anchor else {
            return Check::new(
                "resync",
                Status::Skip,
                "none of the probe's events arrived with an id to resume from",
                EXPECTED,
            );
        };
        let next = n + 1;
        let mut published = self.next_n - next;
        // The ring keeps `ring` events, so ring + 1 after the anchor evict it; without a hint,
        // double until it is evicted.
        let mut target = self.ring_hint.map_or(1, |r| r + 1).max(published + 1);
        loop {
            while published < target {
                let k = (target - published).min(BATCH);
                if let Err(e) = self.publish(k).await {
                    return Check::new(
                        "resync",
                        Status::Fail,
                        format!("publish failed: {e}"),
                        EXPECTED,
                    );
                }
                published += k;
            }
            self.bar
                .set_message(format!("resync: {published} events published"));
            let first = match self.first_event(&id).await {
                Ok(f) => f,
                Err(e) => {
                    return Check::new("resync", Status::Fail, format!("resuming: {e}"), EXPECTED);
                }
            };
            let cap = RESYNC_CAP.max(self.ring_hint.map_or(0, |r| r + 1));
            if first == FirstEvent::Probe(next) && target < cap {
                target = (target * 2).min(cap);
                continue;
            }
            return judge::resync(&first, published, next);
        }
    }

    /// The first event of a stream resumed from `id`.
    async fn first_event(&self, id: &str) -> Result<FirstEvent, String> {
        let mut conn = Some(self.open_ready(Some(id)).await?);
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Ok(obs) = timeout_at(deadline, next_obs(&mut conn)).await {
            match obs {
                Some(Obs::Block { block, .. }) => match classify(&block, &self.nonce) {
                    Kind::Probe(n) => return Ok(FirstEvent::Probe(n)),
                    Kind::Resync(r) => return Ok(FirstEvent::Resync(r)),
                    Kind::Signal(s) => return Ok(FirstEvent::Other(s)),
                    Kind::Other(o) if block.data.is_some() => return Ok(FirstEvent::Other(o)),
                    _ => {}
                },
                Some(Obs::End { .. }) | None => break,
                Some(_) => {}
            }
        }
        Ok(FirstEvent::Nothing)
    }
}
