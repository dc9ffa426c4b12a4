//! The steps that wait for what a client receives and compare it with what the transcript
//! says: `read`, `expect_events`, `expect_resync` and `expect_ended`.
//!
//! They share the per-client cursors (what earlier steps consumed) and the wait on the log,
//! and they are the only steps that report [`Rule::Expectation`] about a stream.

use serde_json::Value;

use super::{DEFAULT_WITHIN_MS, Engine};
use crate::driver::Driver;
use crate::log::{ClientLog, Connection, EndedBy, Received, RunLog};
use crate::report::{Rule, Violation, location};
use crate::transcript::Match;

impl<D: Driver> Engine<'_, D> {
    /// Waits for `events` more stored events, or until the client has caught up with the
    /// last event published to its session.
    pub(super) async fn read(
        &mut self,
        i: usize,
        client: &str,
        events: Option<usize>,
        within_ms: Option<u64>,
    ) -> String {
        let consumed = self.cursors.get(client).map_or(0, |c| c.0);
        let ms = within_ms.unwrap_or(DEFAULT_WITHIN_MS);
        let within = self.timing.wait(ms);
        let Some(session) = self.session_of(client) else {
            return "not connected".into();
        };
        let target = {
            let log = self.shared.lock();
            log.publishes
                .iter()
                .rev()
                .find(|p| p.session == session)
                .map(|p| p.id.clone())
        };
        let name = client.to_owned();
        let done = |log: &RunLog| {
            let Some(c) = log.clients.get(&name) else {
                return true;
            };
            if c.current().is_none_or(|c| !c.is_open()) {
                return true;
            }
            match events {
                Some(n) => c.event_count() >= consumed + n,
                None => target
                    .as_deref()
                    .is_none_or(|t| caught_up(&c.last_event_id, t)),
            }
        };
        let ok = self.wait_for(within, done).await;
        let (count, open) = {
            let log = self.shared.lock();
            let c = &log.clients[client];
            (
                c.event_count(),
                c.current().is_some_and(Connection::is_open),
            )
        };
        let got = count.saturating_sub(consumed);
        let cursor = &mut self.cursors.entry(client.to_owned()).or_default().0;
        *cursor = match events {
            Some(n) => consumed + got.min(n),
            None => count,
        };
        if !ok && open {
            let what = match events {
                Some(n) => format!("{n} event(s)"),
                None => format!("the last event published to {session}"),
            };
            self.violation(
                Rule::Expectation,
                i,
                Some(client),
                format!("waited {ms} ms for {what}; {got} arrived"),
            );
        }
        format!("{client} read {got} event(s)")
    }

    /// Waits for the next `expected.len()` stored events and compares them with `expected`.
    pub(super) async fn expect_events(
        &mut self,
        i: usize,
        client: &str,
        expected: &[Value],
        mode: Match,
        within_ms: Option<u64>,
    ) -> String {
        let consumed = self.cursors.get(client).map_or(0, |c| c.0);
        let ms = within_ms.unwrap_or(DEFAULT_WITHIN_MS);
        let within = self.timing.wait(ms);
        let name = client.to_owned();
        let want = consumed + expected.len();
        self.wait_for(within, |log| {
            log.clients
                .get(&name)
                .is_none_or(|c| c.event_count() >= want)
        })
        .await;
        let received = self
            .shared
            .lock()
            .clients
            .get(client)
            .map(ClientLog::events)
            .unwrap_or_default();
        let got = &received[consumed.min(received.len())..received.len().min(want)];
        self.cursors.entry(client.to_owned()).or_default().0 = consumed + got.len();
        if let Some(k) = self.first_mismatch(i, client, expected, got, mode) {
            return format!("{client}: mismatch at event {}", k + 1);
        }
        if got.len() < expected.len() {
            let message = missing(expected, got.len(), ms);
            self.violation(Rule::Expectation, i, Some(client), message);
        }
        format!(
            "{client}: {} of {} event(s) as expected",
            got.len(),
            expected.len()
        )
    }

    /// Reports the first received event that does not match the expected one; returns its
    /// index.
    fn first_mismatch(
        &mut self,
        i: usize,
        client: &str,
        expected: &[Value],
        got: &[Received],
        mode: Match,
    ) -> Option<usize> {
        let k = expected.iter().zip(got).position(|(exp, rec)| {
            let ok = match mode {
                Match::Exact => *exp == rec.data,
                Match::Subset => is_subset(exp, &rec.data),
            };
            !ok
        })?;
        let (exp, rec) = (&expected[k], &got[k]);
        self.violations.push(Violation {
            rule: Rule::Expectation,
            step: Some(i),
            location: location(self.t, Some(i)),
            client: Some(client.to_owned()),
            event: Some(rec.id.clone()),
            message: format!(
                "event {} of {}: expected {}{exp}, got {}",
                k + 1,
                expected.len(),
                if mode == Match::Subset {
                    "a superset of "
                } else {
                    ""
                },
                rec.data
            ),
        });
        Some(k)
    }

    /// Waits for the client's next `tether.resync` signal (with this reason, if given).
    pub(super) async fn expect_resync(
        &mut self,
        i: usize,
        client: &str,
        reason: Option<&str>,
        within_ms: Option<u64>,
    ) -> String {
        let from = self.cursors.get(client).map_or(0, |c| c.1);
        let within = self.timing.wait(within_ms.unwrap_or(DEFAULT_WITHIN_MS));
        self.wait_for(within, |log| {
            log.clients
                .get(client)
                .is_some_and(|c| c.signals("tether.resync").len() > from)
        })
        .await;
        let got = self
            .shared
            .lock()
            .clients
            .get(client)
            .and_then(|c| c.signals("tether.resync").into_iter().nth(from));
        let Some(sig) = got else {
            self.violation(
                Rule::Expectation,
                i,
                Some(client),
                format!(
                    "expected a tether.resync signal within {} ms; none arrived",
                    within_ms.unwrap_or(DEFAULT_WITHIN_MS)
                ),
            );
            return "no resync".into();
        };
        self.cursors.entry(client.to_owned()).or_default().1 = from + 1;
        let got_reason = sig.value["reason"].as_str().unwrap_or_default();
        if let Some(r) = reason
            && r != got_reason
        {
            self.violation(
                Rule::Expectation,
                i,
                Some(client),
                format!("expected a resync for reason {r:?}, got {}", sig.value),
            );
        }
        format!("resync {}", sig.value)
    }

    /// Waits for the server to end the client's current stream (with or without a
    /// `tether.superseded` signal, if given).
    pub(super) async fn expect_ended(
        &mut self,
        i: usize,
        client: &str,
        superseded: Option<bool>,
        within_ms: Option<u64>,
    ) -> String {
        let within = self.timing.wait(within_ms.unwrap_or(DEFAULT_WITHIN_MS));
        self.wait_for(within, |log| {
            log.clients
                .get(client)
                .and_then(ClientLog::current)
                .is_some_and(|c| !c.is_open())
        })
        .await;
        let state = self
            .shared
            .lock()
            .clients
            .get(client)
            .and_then(ClientLog::current)
            .map(|c| (c.end, c.got_superseded()));
        let (by, sup) = match state {
            None => {
                let message = format!("{client} never connected");
                self.violation(Rule::Expectation, i, Some(client), message);
                return "never connected".into();
            }
            Some((None, _)) => {
                let message = format!(
                    "expected the server to end the stream within {} ms; it is still open",
                    within_ms.unwrap_or(DEFAULT_WITHIN_MS)
                );
                self.violation(Rule::Expectation, i, Some(client), message);
                return "still open".into();
            }
            Some((Some(end), sup)) => (end.by, sup),
        };
        if by != EndedBy::Server {
            self.violation(
                Rule::Expectation,
                i,
                Some(client),
                "expected the server to end the stream; the client closed it".into(),
            );
        }
        if let Some(want) = superseded
            && want != sup
        {
            let msg = if want {
                "expected the stream to end with a tether.superseded signal; it ended without one"
            } else {
                "expected the stream to end without a tether.superseded signal; it was superseded"
            };
            self.violation(Rule::Expectation, i, Some(client), msg.into());
        }
        if let Some(live) = self.live.remove(client) {
            let _ = live.task.await;
        }
        format!("ended{}", if sup { " (superseded)" } else { "" })
    }
}

/// The violation message of an `expect_events` step that received only `got` of `expected`.
fn missing(expected: &[Value], got: usize, ms: u64) -> String {
    let shown: Vec<String> = expected[got..]
        .iter()
        .take(3)
        .map(Value::to_string)
        .collect();
    format!(
        "expected {} event(s) within {ms} ms, {} arrived; missing from event {}: {}{}",
        expected.len(),
        got,
        got + 1,
        shown.join(", "),
        if expected.len() - got > 3 {
            ", ..."
        } else {
            ""
        }
    )
}

/// Whether a client whose last id is `last` has seen the event `target`.
fn caught_up(last: &str, target: &str) -> bool {
    if last == target {
        return true;
    }
    match (
        tether_core::EventId::parse(last),
        tether_core::EventId::parse(target),
    ) {
        (Some(l), Some(t)) => l.epoch == t.epoch && l.seq >= t.seq,
        _ => false,
    }
}

/// Whether every field of `expected` is in `actual` with an equal value (recursively for
/// objects; arrays and scalars compare whole).
pub fn is_subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| is_subset(v, av))),
        _ => expected == actual,
    }
}
