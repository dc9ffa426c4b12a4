//! Runs a transcript's steps against a driver, with one reader task per connection.
//!
//! This module holds the engine's state, the loop over the steps and the dispatch of each
//! step to the module of its family: [`connect`] (opening streams), [`publish`],
//! [`expect`] (what clients receive), [`approvals`] and [`faults`] (stalls and drops);
//! [`reader`] is the task that reads one connection.

mod approvals;
mod connect;
mod expect;
mod faults;
mod publish;
mod reader;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::check;
use crate::driver::Driver;
use crate::log::{ClientLog, Connection, End, EndedBy, RunLog};
use crate::report::{Report, Rule, StepNote, Violation, location};
use crate::transcript::{Action, Transcript};

pub use expect::is_subset;
use reader::{Ctl, Live};

/// How transcript time maps onto the runtime's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Clock time per transcript time (1.0: as written).
    pub scale: f64,
    /// Added to every wait and to the silence tolerance.
    pub slack: Duration,
}

impl Timing {
    /// Transcript time as written, no slack: for the in-process driver's paused clock.
    pub fn exact() -> Self {
        Self {
            scale: 1.0,
            slack: Duration::ZERO,
        }
    }

    /// `ms` of transcript time on the clock.
    pub fn span(&self, ms: u64) -> Duration {
        Duration::from_secs_f64(ms as f64 * self.scale / 1000.0)
    }

    /// A wait of `ms` transcript time, with the slack.
    pub fn wait(&self, ms: u64) -> Duration {
        self.span(ms) + self.slack
    }

    /// Clock time as transcript milliseconds.
    pub fn to_ms(&self, d: Duration) -> u64 {
        (d.as_secs_f64() * 1000.0 / self.scale).round() as u64
    }
}

/// Default wait of `read` and the `expect_*` steps, in transcript milliseconds.
pub const DEFAULT_WITHIN_MS: u64 = 5000;

pub(crate) struct Shared {
    pub(crate) log: Mutex<RunLog>,
    changed: watch::Sender<u64>,
    step: AtomicUsize,
    start: Instant,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, RunLog> {
        // A reader that panicked mid-update leaves a log that is still worth reporting.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn update(&self, f: impl FnOnce(&mut RunLog)) {
        f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn conn<'a>(log: &'a mut RunLog, client: &str, conn: usize) -> &'a mut Connection {
        &mut log
            .clients
            .get_mut(client)
            .expect("reader of a known client")
            .connections[conn]
    }
}

struct Engine<'a, D> {
    driver: &'a mut D,
    t: &'a Transcript,
    timing: Timing,
    shared: Arc<Shared>,
    live: HashMap<String, Live>,
    /// Per client: stored events consumed by `read` / `expect_events`, resyncs matched.
    cursors: HashMap<String, (usize, usize)>,
    violations: Vec<Violation>,
    notes: Vec<StepNote>,
    clock_ms: u64,
    /// When each client's latest stall ends.
    stalls: HashMap<String, Instant>,
    /// Clients the server told to stop (a superseded instance reconnecting at once).
    stopped: HashSet<String>,
}

/// Replays `transcript` against `driver` and checks the invariants.
///
/// With [`Timing::exact`] on a paused clock (the in-process driver) the replay is
/// deterministic. Each connection is read by its own task, so the runtime must be able to run
/// spawned tasks (any tokio runtime can).
pub async fn run<D: Driver>(driver: &mut D, transcript: &Transcript, timing: Timing) -> Report {
    let (changed, _) = watch::channel(0u64);
    let shared = Arc::new(Shared {
        log: Mutex::new(RunLog::default()),
        changed,
        step: AtomicUsize::new(0),
        start: Instant::now(),
    });
    let mut engine = Engine {
        driver,
        t: transcript,
        timing,
        shared: shared.clone(),
        live: HashMap::new(),
        cursors: HashMap::new(),
        violations: Vec::new(),
        notes: Vec::new(),
        clock_ms: 0,
        stalls: HashMap::new(),
        stopped: Default::default(),
    };
    for (i, step) in transcript.steps.iter().enumerate() {
        shared.step.store(i, Ordering::Release);
        if let Some(at) = step.at_ms
            && at > engine.clock_ms
        {
            tokio::time::sleep_until(shared.start + timing.span(at)).await;
        }
        engine.clock_ms = engine
            .clock_ms
            .max(step.at_ms.unwrap_or(0))
            .max(timing.to_ms(shared.now()));
        let at_ms = engine.clock_ms;
        let note = engine.step(i, &step.action).await;
        engine.notes.push(StepNote {
            location: location(transcript, Some(i)),
            at_ms,
            note,
        });
        engine.settle().await;
    }
    engine.finish().await
}

impl<D: Driver> Engine<'_, D> {
    /// Whether `client`'s latest connection was taken over by another client.
    fn was_superseded(&self, client: &str) -> bool {
        let log = self.shared.lock();
        let Some(last) = log
            .clients
            .get(client)
            .and_then(|c| c.connections.len().checked_sub(1))
        else {
            return false;
        };
        log.supersedes
            .iter()
            .any(|r| r.client == client && r.connection == last)
    }

    fn violation(&mut self, rule: Rule, step: usize, client: Option<&str>, message: String) {
        self.violations.push(Violation {
            rule,
            step: Some(step),
            location: location(self.t, Some(step)),
            client: client.map(Into::into),
            event: None,
            message,
        });
    }

    /// Lets the readers take in what is already there.
    async fn settle(&self) {
        for _ in 0..64 {
            let before = *self.shared.changed.borrow();
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            if *self.shared.changed.borrow() == before {
                break;
            }
        }
    }

    /// Waits until `cond` holds or `within` passes; returns whether it held.
    async fn wait_for(&self, within: Duration, mut cond: impl FnMut(&RunLog) -> bool) -> bool {
        let deadline = Instant::now() + within;
        let mut rx = self.shared.changed.subscribe();
        loop {
            if cond(&self.shared.lock()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return cond(&self.shared.lock()),
            }
        }
    }

    async fn close(&mut self, client: &str, by: EndedBy) {
        if let Some(live) = self.live.remove(client) {
            let _ = live.ctl.send(Ctl::Close(by));
            let _ = live.task.await;
        }
    }

    fn session_of(&self, client: &str) -> Option<String> {
        let log = self.shared.lock();
        log.clients
            .get(client)
            .and_then(ClientLog::current)
            .map(|c| c.session.clone())
    }

    /// Runs step `i`; returns its note.
    async fn step(&mut self, i: usize, action: &Action) -> String {
        match action {
            Action::Publish {
                session,
                events,
                name,
                pad_bytes,
            } => {
                self.publish(i, session, events, name.as_deref(), *pad_bytes)
                    .await
            }
            Action::Connect {
                client,
                session,
                resume,
                last_event_id,
                client_id,
            } => {
                let (literal, client_id) = (last_event_id.clone(), client_id.clone());
                self.connect(i, client, session, *resume, literal, client_id)
                    .await
            }
            Action::Supersede { client, by, resume } => {
                self.supersede(i, client, by, *resume).await
            }
            Action::Read {
                client,
                events,
                within_ms,
            } => self.read(i, client, *events, *within_ms).await,
            Action::Stall { client, ms } => self.stall(i, client, *ms),
            Action::Drop { client } => self.drop_client(client).await,
            Action::Advance { ms } => self.advance(*ms).await,
            Action::ExpectEvents {
                client,
                events,
                mode,
                within_ms,
            } => {
                self.expect_events(i, client, events, *mode, *within_ms)
                    .await
            }
            Action::ExpectResync {
                client,
                reason,
                within_ms,
            } => {
                self.expect_resync(i, client, reason.as_deref(), *within_ms)
                    .await
            }
            Action::ExpectEnded {
                client,
                superseded,
                within_ms,
            } => self.expect_ended(i, client, *superseded, *within_ms).await,
            Action::RequestApproval { .. }
            | Action::Decide { .. }
            | Action::ExpectApproval { .. } => self.approval_step(i, action).await,
        }
    }

    /// Lets `ms` of transcript time pass.
    async fn advance(&mut self, ms: u64) -> String {
        let target = self.clock_ms + ms;
        tokio::time::sleep_until(self.shared.start + self.timing.span(target)).await;
        self.clock_ms = target;
        format!("{ms} ms pass")
    }

    /// Superseded streams must end; gives them the default wait to do so.
    async fn wait_for_superseded(&self) {
        let pending: Vec<(String, usize)> = self
            .shared
            .lock()
            .supersedes
            .iter()
            .map(|s| (s.client.clone(), s.connection))
            .collect();
        if !pending.is_empty() {
            // A displaced client that is not reading sees its stream end when it reads again.
            let now = Instant::now();
            let stalled = pending
                .iter()
                .filter_map(|(c, _)| self.stalls.get(c))
                .map(|until| until.saturating_duration_since(now))
                .max()
                .unwrap_or_default();
            let within = stalled + self.timing.wait(DEFAULT_WITHIN_MS);
            self.wait_for(within, |log| {
                pending
                    .iter()
                    .all(|(c, idx)| !log.clients[c.as_str()].connections[*idx].is_open())
            })
            .await;
        }
    }

    async fn finish(mut self) -> Report {
        let end_step = self.t.steps.len();
        self.shared.step.store(end_step, Ordering::Release);
        self.settle().await;
        self.wait_for_superseded().await;
        let clients: Vec<String> = self.live.keys().cloned().collect();
        for c in clients {
            self.close(&c, EndedBy::RunEnd).await;
        }
        let mut log = std::mem::take(&mut *self.shared.lock());
        log.ended_at = self.shared.now();
        // Connections whose reader is gone without an end (a panicked reader) end here.
        for c in log.clients.values_mut() {
            for conn in &mut c.connections {
                if conn.end.is_none() {
                    conn.end = Some(End {
                        at: log.ended_at,
                        step: end_step,
                        by: EndedBy::RunEnd,
                    });
                }
            }
        }
        let mut violations = self.violations;
        violations.extend(check::check(self.t, &log, self.timing));
        Report {
            steps: self.notes,
            violations,
            log,
        }
    }
}
