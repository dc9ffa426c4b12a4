//! The resume row: drop the held stream on purpose, publish while away, come back with
//! `Last-Event-ID` and check that exactly the missed events and then live ones arrive.

use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::conn::{Conn, Kind, Obs, classify, next_obs};
use super::hold::Hold;
use super::http::End;
use super::judge::{self, Check, Status};
use super::{Probe, skip_unpublished};

/// Events published while the probe is away, before it resumes.
const AWAY: u64 = 3;

/// What the resumed stream carried.
struct Resumed {
    /// The probe's events, in order.
    got: Vec<u64>,
    /// The reason of a `tether.resync`, if one came.
    resync: Option<String>,
    /// How the resumed stream ended, if it did.
    ended: Option<End>,
}

impl Probe {
    /// Drops the stream on purpose, publishes while away, resumes with `Last-Event-ID` and
    /// publishes once more: the resumed stream must carry exactly those events.
    pub(super) async fn resume(&mut self, hold: &mut Hold) -> Check {
        let expected =
            format!("the {AWAY} events published while away, then live: no gap, no duplicate");
        if self.publish_token.is_none() {
            return skip_unpublished("resume", expected);
        }
        if let Err(why) = &hold.head {
            return Check::new("resume", Status::Skip, why.clone(), expected);
        }
        match self.drop_and_resume(hold).await {
            Ok(check) => check,
            Err(why) => Check::new("resume", Status::Fail, why, expected),
        }
    }

    /// The resume itself, once the hold left a stream to drop; an error is the failed row's
    /// value.
    async fn drop_and_resume(&mut self, hold: &mut Hold) -> Result<Check, String> {
        let last = self.resume_point(hold).await?;
        // The deliberate drop.
        drop(hold.conn.take());
        let mut want = Vec::new();
        for _ in 0..AWAY {
            let (ns, _) = self.publish(1).await.map_err(publish_failed)?;
            want.extend(ns);
        }
        let conn = self
            .open_ready(Some(&last))
            .await
            .map_err(|e| format!("resuming: {e}"))?;
        let (ns, _) = self.publish(1).await.map_err(publish_failed)?;
        let live = ns[0];
        want.push(live);
        let resumed = self.read_resumed(conn, live, hold).await;
        let mut check = judge::resume(&want, &hold.seen, &resumed.got, resumed.resync.as_deref());
        if let (Some(how), Status::Fail) = (resumed.ended, check.status) {
            check
                .value
                .push_str(&format!("; the resumed stream ended ({how})"));
        }
        Ok(check)
    }

    /// The id to resume from: the last one the hold saw, or that of one event published now
    /// when the hold was too short to publish.
    async fn resume_point(&mut self, hold: &mut Hold) -> Result<String, String> {
        if hold.last_id.is_none() {
            // The hold was too short to publish: give the stream one event to carry an id.
            self.first_id(hold).await.map_err(publish_failed)?;
        }
        hold.last_id
            .clone()
            .ok_or_else(|| "no event id arrived on the stream: a client cannot resume".to_owned())
    }

    /// Reads the resumed stream until the `live` event has arrived (and a little longer), for
    /// at most 5 s.
    async fn read_resumed(&self, conn: Conn, live: u64, hold: &mut Hold) -> Resumed {
        let mut conn = Some(conn);
        let mut got = Vec::new();
        let mut resync = None;
        let mut deadline = Instant::now() + Duration::from_secs(5);
        let mut ended = None;
        while let Ok(obs) = timeout_at(deadline, next_obs(&mut conn)).await {
            match obs {
                Some(Obs::Block { block, .. }) => match classify(&block, &self.nonce) {
                    Kind::Probe(n) => {
                        got.push(n);
                        if let Some(id) = &block.id {
                            hold.anchor = Some((id.clone(), n));
                        }
                        if n == live {
                            // A little longer, for anything that follows it by mistake.
                            deadline = deadline.min(Instant::now() + Duration::from_millis(300));
                        }
                    }
                    Kind::Resync(reason) => resync = Some(reason),
                    _ => {}
                },
                Some(Obs::End { how, .. }) => {
                    ended = Some(how);
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        Resumed { got, resync, ended }
    }

    /// Publishes one event and waits (up to 3 s) for the held stream to deliver it.
    async fn first_id(&mut self, hold: &mut Hold) -> Result<(), String> {
        let (ns, _) = self.publish(1).await?;
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Ok(Some(obs)) = timeout_at(deadline, next_obs(&mut hold.conn)).await {
            match obs {
                Obs::Block { block, .. } => {
                    if let Some(id) = &block.id {
                        hold.last_id = Some(id.clone());
                    }
                    if let Kind::Probe(n) = classify(&block, &self.nonce) {
                        hold.seen.push(n);
                        if let Some(id) = &block.id {
                            hold.anchor = Some((id.clone(), n));
                        }
                        if ns.contains(&n) {
                            break;
                        }
                    }
                }
                Obs::End { .. } => break,
                _ => {}
            }
        }
        Ok(())
    }
}

fn publish_failed(e: String) -> String {
    format!("publish failed: {e}")
}
