//! `--self-publish RATE` and `--self-publish-agui RATE`: in-process publishers for load
//! tests, so the hub's delivery can be measured without HTTP publishing in the way: plain
//! ~200-byte events, or agent runs ([`AgentRuns`]) that the AG-UI tracker follows.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_agui::sample::AgentRuns;
use tether_core::{Broker, Event, SessionId};
use tokio::time::Instant;

const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// About 200 bytes of JSON whose `"ts"` is the publish time in unix microseconds (the load
/// harness reads it for latency without parsing the event).
pub(crate) fn bench_event(ts: u64, n: u64) -> String {
    format!(r#"{{"ts":{ts},"n":{n},"pad":"{PAD}"}}"#)
}

/// Which sessions an in-process publisher takes round-robin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Targets {
    /// The sessions that have a connection (the list refreshed every 100 ms).
    Connected,
    /// Every session alive, with or without a connection (the list taken again when the
    /// number of sessions changed, looked at every 100 ms): `--self-publish-all`.
    All,
}

/// Publishes `rate` events per second, round-robin over the sessions `targets` names, paced
/// by a 1 ms tick; at most 10 ms worth per tick, so a saturated hub does not burst later.
pub(crate) async fn run(broker: Broker, rate: u64, targets: Targets) {
    let mut n = 0u64;
    paced(&broker, rate, targets, |broker, session| {
        n += 1;
        if let Err(e) = broker.publish_event(session, Event::raw(bench_event(unix_micros(), n))) {
            tracing::debug!(%session, error = %e, "self-publish refused");
        }
        1
    })
    .await;
}

/// Plays agent runs ([`AgentRuns`]) at `rate` events per second in every session that
/// has a connection, a burst per turn, round-robin and paced as [`run`] is. A session keeps
/// its run while its client is away; a refused event ends the run with `RUN_ERROR` and starts
/// a fresh one.
pub(crate) async fn run_agui(broker: Broker, rate: u64) {
    let mut agents: HashMap<SessionId, AgentRuns> = HashMap::new();
    let mut burst = Vec::new();
    paced(&broker, rate, Targets::Connected, |broker, session| {
        if !agents.contains_key(session) {
            let seed = agents.len() as u64;
            agents.insert(session.clone(), AgentRuns::new(seed));
        }
        let Some(agent) = agents.get_mut(session) else {
            unreachable!("inserted above");
        };
        agent.next_burst(session.as_str(), unix_micros(), &mut burst);
        let mut published = 0;
        for data in burst.drain(..) {
            if let Err(e) = broker.publish_event(session, Event::raw(data)) {
                tracing::debug!(%session, error = %e, "self-publish refused; the run restarts");
                agent.restart();
                break;
            }
            published += 1;
        }
        published.max(1)
    })
    .await;
}

/// The pacing of both: `turn` publishes to one session and says how many events that was.
async fn paced(
    broker: &Broker,
    rate: u64,
    over: Targets,
    mut turn: impl FnMut(&Broker, &SessionId) -> u64,
) {
    let max_round = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut targets: Vec<SessionId> = Vec::new();
    let mut refreshed: Option<Instant> = None;
    let (mut sent, mut next) = (0u64, 0usize);
    loop {
        tick.tick().await;
        if refreshed.is_none_or(|at| at.elapsed() >= Duration::from_millis(100)) {
            refreshed = Some(Instant::now());
            match over {
                Targets::Connected => targets = broker.connected_sessions(),
                // Listing 100,000 sessions takes milliseconds: only when their number changed.
                Targets::All if broker.session_count() != targets.len() => {
                    targets = broker.session_ids();
                }
                Targets::All => {}
            }
        }
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if targets.is_empty() {
            sent = due;
            continue;
        }
        sent = sent.max(due.saturating_sub(rate));
        let round = due.saturating_sub(sent).min(max_round);
        let mut done = 0;
        let mut turns = 0u32;
        while done < round {
            let session = &targets[next % targets.len()];
            next = next.wrapping_add(1);
            done += turn(broker, session);
            turns += 1;
            if turns.is_multiple_of(256) {
                tokio::task::yield_now().await;
            }
        }
        sent += done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_200_bytes_with_ts() {
        let e = bench_event(unix_micros(), 1_234_567);
        assert!((190..=210).contains(&e.len()), "{}", e.len());
        assert!(e.starts_with("{\"ts\":1"));
    }
}
