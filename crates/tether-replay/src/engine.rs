//! Runs a transcript's steps against a driver, with one reader task per connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::check;
use crate::driver::{ApprovalRequest, ConnectRequest, Driver, SUPERSEDED_REFUSAL, SseBody};
use crate::log::{
    ClientLog, Connection, DecisionRecord, End, EndedBy, Entry, EntryKind, History, Published,
    RunLog, StatusRecord, SupersedeRecord,
};
use crate::report::{Report, Rule, StepNote, Violation, location};
use crate::sse::Parser;
use crate::transcript::{Action, Match, Transcript};

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

enum Ctl {
    Stall(Duration),
    Close(EndedBy),
}

struct Live {
    ctl: mpsc::UnboundedSender<Ctl>,
    task: JoinHandle<()>,
}

async fn reader(
    shared: Arc<Shared>,
    client: String,
    conn: usize,
    mut body: SseBody,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
) {
    let mut parser = Parser::new();
    let mut stall_until: Option<Instant> = None;
    let entry = |kind: EntryKind| Entry {
        at: shared.now(),
        step: shared.step.load(Ordering::Acquire),
        kind,
    };
    let close = |by: EndedBy| {
        let end = End {
            at: shared.now(),
            step: shared.step.load(Ordering::Acquire),
            by,
        };
        shared.update(|log| Shared::conn(log, &client, conn).end = Some(end));
    };
    loop {
        if let Some(until) = stall_until {
            tokio::select! {
                biased;
                c = ctl.recv() => match c {
                    Some(Ctl::Stall(d)) => stall_until = Some(until.max(Instant::now() + d)),
                    Some(Ctl::Close(by)) => return close(by),
                    None => return close(EndedBy::RunEnd),
                },
                () = tokio::time::sleep_until(until) => {
                    stall_until = None;
                    let e = entry(EntryKind::StallEnd);
                    shared.update(|log| {
                        let c = Shared::conn(log, &client, conn);
                        c.entries.push(e);
                        c.stalled = false;
                    });
                }
            }
            continue;
        }
        tokio::select! {
            biased;
            c = ctl.recv() => match c {
                Some(Ctl::Stall(d)) => {
                    stall_until = Some(Instant::now() + d);
                    let e = entry(EntryKind::StallStart);
                    shared.update(|log| {
                        let c = Shared::conn(log, &client, conn);
                        c.entries.push(e);
                        c.stalled = true;
                    });
                }
                Some(Ctl::Close(by)) => return close(by),
                None => return close(EndedBy::RunEnd),
            },
            item = body.next() => match item {
                Some(bytes) => {
                    let blocks = parser.feed(&bytes);
                    let moved = blocks.iter().any(|b| b.id.is_some());
                    let last = parser.last_event_id().to_owned();
                    let first = entry(EntryKind::Bytes(bytes.len()));
                    let (at, step) = (first.at, first.step);
                    shared.update(|log| {
                        let cl = log.clients.get_mut(&client).expect("reader of a known client");
                        if moved {
                            cl.last_event_id = last;
                        }
                        let c = &mut cl.connections[conn];
                        c.entries.push(first);
                        c.entries.extend(blocks.into_iter().map(|b| Entry {
                            at,
                            step,
                            kind: EntryKind::Block(b),
                        }));
                    });
                }
                None => return close(EndedBy::Server),
            },
        }
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
    stopped: std::collections::HashSet<String>,
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

    async fn step(&mut self, i: usize, action: &Action) -> String {
        match action {
            Action::Publish {
                session,
                events,
                name,
                pad_bytes,
            } => {
                let padded;
                let events = match pad_bytes {
                    Some(n) => {
                        padded = pad(events, *n);
                        &padded
                    }
                    None => events,
                };
                match self.driver.publish(session, events, name.as_deref()).await {
                    Ok(ids) => {
                        if ids.len() != events.len() {
                            self.violation(
                                Rule::Step,
                                i,
                                None,
                                format!("published {} events, got {} ids", events.len(), ids.len()),
                            );
                        }
                        let note =
                            format!("{session}: {} event(s) -> {}", events.len(), ids.join(", "));
                        self.shared.update(|log| {
                            for (id, data) in ids.into_iter().zip(events) {
                                log.publishes.push(Published {
                                    step: i,
                                    session: session.clone(),
                                    id,
                                    data: data.clone(),
                                    name: name.clone(),
                                });
                            }
                        });
                        note
                    }
                    Err(e) => {
                        self.violation(
                            Rule::Step,
                            i,
                            None,
                            format!("the publish was refused: {e}"),
                        );
                        format!("{session}: refused")
                    }
                }
            }
            Action::Connect {
                client,
                session,
                resume,
                last_event_id,
                client_id,
            } => {
                self.connect(
                    i,
                    client,
                    session,
                    *resume,
                    last_event_id.clone(),
                    client_id.clone(),
                )
                .await
            }
            Action::Supersede { client, by, resume } => {
                let live = self.live.contains_key(client.as_str())
                    && self.shared.lock().clients[client.as_str()]
                        .current()
                        .is_some_and(Connection::is_open);
                let Some(session) = self.session_of(client).filter(|_| live) else {
                    self.violation(
                        Rule::Step,
                        i,
                        Some(client),
                        format!("{client} is not connected, so {by} cannot supersede it"),
                    );
                    return "nothing to supersede".into();
                };
                self.connect(i, by, &session, *resume, None, None).await
            }
            Action::Read {
                client,
                events,
                within_ms,
            } => self.read(i, client, *events, *within_ms).await,
            Action::Stall { client, ms } => match self.live.get(client.as_str()) {
                Some(live) => {
                    let d = self.timing.span(*ms);
                    let _ = live.ctl.send(Ctl::Stall(d));
                    let until = self
                        .stalls
                        .entry(client.clone())
                        .or_insert_with(Instant::now);
                    *until = (*until).max(Instant::now() + d);
                    format!("{client} stops reading for {ms} ms")
                }
                None if self.stopped.contains(client.as_str()) => "stopped".into(),
                None => {
                    self.violation(
                        Rule::Step,
                        i,
                        Some(client),
                        format!("{client} is not connected"),
                    );
                    "not connected".into()
                }
            },
            Action::Drop { client } => {
                if self.live.contains_key(client.as_str()) {
                    self.close(client, EndedBy::Client).await;
                    format!("{client} closes its connection")
                } else {
                    "not connected".into()
                }
            }
            Action::Advance { ms } => {
                let target = self.clock_ms + ms;
                tokio::time::sleep_until(self.shared.start + self.timing.span(target)).await;
                self.clock_ms = target;
                format!("{ms} ms pass")
            }
            Action::RequestApproval {
                session,
                approval,
                title,
                payload,
                timeout_ms,
            } => {
                let req = ApprovalRequest {
                    id: approval.clone(),
                    title: title.clone(),
                    payload: payload.clone(),
                    timeout: timeout_ms.map(|ms| self.timing.span(ms)),
                };
                match self.driver.request_approval(session, &req).await {
                    Ok(id) => format!("{session}: approval {id} requested"),
                    Err(e) => {
                        self.violation(
                            Rule::Step,
                            i,
                            None,
                            format!("the approval request was refused: {e}"),
                        );
                        "refused".into()
                    }
                }
            }
            Action::Decide {
                session,
                approval,
                approved,
                reason,
                expect,
            } => {
                let result = self
                    .driver
                    .decide(session, approval, *approved, reason.as_deref())
                    .await;
                let name = result.name().to_owned();
                self.shared.update(|log| {
                    log.decisions.push(DecisionRecord {
                        step: i,
                        session: session.clone(),
                        approval: approval.clone(),
                        approved: *approved,
                        result: name.clone(),
                    })
                });
                if let Some(e) = expect
                    && e.as_str() != name
                {
                    self.violation(
                        Rule::Expectation,
                        i,
                        None,
                        format!(
                            "deciding {approval} was expected to answer {}, it answered {result:?}",
                            e.as_str()
                        ),
                    );
                }
                let verb = if *approved { "approve" } else { "reject" };
                format!("{session}: {verb} {approval} -> {name}")
            }
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
                let from = self.cursors.get(client.as_str()).map_or(0, |c| c.1);
                let within = self.timing.wait(within_ms.unwrap_or(DEFAULT_WITHIN_MS));
                let name = client.clone();
                self.wait_for(within, |log| {
                    log.clients
                        .get(&name)
                        .is_some_and(|c| c.signals("tether.resync").len() > from)
                })
                .await;
                let got = self
                    .shared
                    .lock()
                    .clients
                    .get(client.as_str())
                    .and_then(|c| c.signals("tether.resync").into_iter().nth(from));
                match got {
                    None => {
                        self.violation(
                            Rule::Expectation,
                            i,
                            Some(client),
                            format!(
                                "expected a tether.resync signal within {} ms; none arrived",
                                within_ms.unwrap_or(DEFAULT_WITHIN_MS)
                            ),
                        );
                        "no resync".into()
                    }
                    Some(sig) => {
                        self.cursors.entry(client.clone()).or_default().1 = from + 1;
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
                }
            }
            Action::ExpectEnded {
                client,
                superseded,
                within_ms,
            } => {
                let within = self.timing.wait(within_ms.unwrap_or(DEFAULT_WITHIN_MS));
                let name = client.clone();
                self.wait_for(within, |log| {
                    log.clients
                        .get(&name)
                        .and_then(ClientLog::current)
                        .is_some_and(|c| !c.is_open())
                })
                .await;
                let state = self
                    .shared
                    .lock()
                    .clients
                    .get(client.as_str())
                    .and_then(ClientLog::current)
                    .map(|c| (c.end, c.got_superseded()));
                match state {
                    None => {
                        self.violation(
                            Rule::Expectation,
                            i,
                            Some(client),
                            format!("{client} never connected"),
                        );
                        "never connected".into()
                    }
                    Some((None, _)) => {
                        self.violation(
                            Rule::Expectation,
                            i,
                            Some(client),
                            format!(
                                "expected the server to end the stream within {} ms; it is still open",
                                within_ms.unwrap_or(DEFAULT_WITHIN_MS)
                            ),
                        );
                        "still open".into()
                    }
                    Some((Some(end), sup)) => {
                        if end.by != EndedBy::Server {
                            self.violation(
                                Rule::Expectation,
                                i,
                                Some(client),
                                "expected the server to end the stream; the client closed it"
                                    .into(),
                            );
                        }
                        if let Some(want) = superseded
                            && *want != sup
                        {
                            let msg = if *want {
                                "expected the stream to end with a tether.superseded signal; it ended without one"
                            } else {
                                "expected the stream to end without a tether.superseded signal; it was superseded"
                            };
                            self.violation(Rule::Expectation, i, Some(client), msg.into());
                        }
                        if let Some(live) = self.live.remove(client.as_str()) {
                            let _ = live.task.await;
                        }
                        format!("ended{}", if sup { " (superseded)" } else { "" })
                    }
                }
            }
            Action::ExpectApproval {
                session,
                approval,
                outcome,
                within_ms,
            } => {
                let ms = within_ms.unwrap_or(DEFAULT_WITHIN_MS);
                let wait = if *outcome == crate::transcript::Outcome::Pending {
                    Duration::ZERO
                } else {
                    self.timing.wait(ms)
                };
                let got = self.driver.approval_status(session, approval, wait).await;
                match got {
                    Err(e) => {
                        self.violation(Rule::Step, i, None, format!("approval status: {e}"));
                        "status unavailable".into()
                    }
                    Ok(status) => {
                        self.shared.update(|log| {
                            log.statuses.push(StatusRecord {
                                step: i,
                                session: session.clone(),
                                approval: approval.clone(),
                                status: status.clone(),
                            })
                        });
                        if status.as_deref() != Some(outcome.as_str()) {
                            self.violation(
                                Rule::Expectation,
                                i,
                                None,
                                format!(
                                    "expected approval {approval} to be {} within {ms} ms, it is {}",
                                    outcome.as_str(),
                                    status.as_deref().unwrap_or("unknown to the server")
                                ),
                            );
                        }
                        format!("{approval}: {}", status.as_deref().unwrap_or("unknown"))
                    }
                }
            }
        }
    }

    async fn connect(
        &mut self,
        i: usize,
        client: &str,
        session: &str,
        resume: bool,
        literal: Option<String>,
        client_id: Option<String>,
    ) -> String {
        self.close(client, EndedBy::Client).await;
        let (last, history, displaced) = {
            let log = self.shared.lock();
            let own = log
                .clients
                .get(client)
                .map(|c| c.last_event_id.clone())
                .filter(|s| !s.is_empty());
            let (last, history) = match (literal, resume, own) {
                (Some(l), _, _) => (Some(l.clone()), History::From(l)),
                (None, true, Some(own)) => (Some(own.clone()), History::Resume(own)),
                _ => (None, History::Fresh),
            };
            let displaced: Vec<(String, usize, bool)> = log
                .clients
                .iter()
                .filter(|(name, _)| name.as_str() != client)
                .filter_map(|(name, c)| {
                    let idx = c.connections.len().checked_sub(1)?;
                    let conn = &c.connections[idx];
                    (conn.is_open() && conn.session == session)
                        .then(|| (name.clone(), idx, conn.stalled))
                })
                .collect();
            (last, history, displaced)
        };
        let request = ConnectRequest {
            last_event_id: last.clone(),
            client_id,
        };
        match self.driver.connect(session, &request).await {
            // A client whose stream another connection took moments ago is told to stop
            // rather than take the session back: two tabs must not take turns forever.
            Err(e) if e == SUPERSEDED_REFUSAL && self.was_superseded(client) => {
                self.stopped.insert(client.to_owned());
                format!("{client} -> {session}: stopped (superseded)")
            }
            Err(e) => {
                self.violation(
                    Rule::Step,
                    i,
                    Some(client),
                    format!("the connect was refused: {e}"),
                );
                format!("{client} -> {session}: refused")
            }
            Ok(body) => {
                self.stopped.remove(client);
                let opened = self.shared.now();
                let mut conn_idx = 0;
                self.shared.update(|log| {
                    for (name, idx, stalled) in displaced {
                        log.supersedes.push(SupersedeRecord {
                            step: i,
                            client: name,
                            connection: idx,
                            by: client.to_owned(),
                            was_stalled: stalled,
                        });
                    }
                    let cl = log.clients.entry(client.to_owned()).or_default();
                    if matches!(history, History::Fresh | History::From(_)) {
                        cl.last_event_id = String::new();
                    }
                    cl.connections.push(Connection {
                        step: i,
                        session: session.to_owned(),
                        history,
                        opened,
                        entries: Vec::new(),
                        stalled: false,
                        end: None,
                    });
                    conn_idx = cl.connections.len() - 1;
                });
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(reader(
                    self.shared.clone(),
                    client.to_owned(),
                    conn_idx,
                    body,
                    rx,
                ));
                self.live.insert(client.to_owned(), Live { ctl: tx, task });
                match last {
                    Some(l) => format!("{client} -> {session} (Last-Event-ID {l})"),
                    None => format!("{client} -> {session}"),
                }
            }
        }
    }

    async fn read(
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

    async fn expect_events(
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
        for (k, (exp, rec)) in expected.iter().zip(got).enumerate() {
            let ok = match mode {
                Match::Exact => *exp == rec.data,
                Match::Subset => is_subset(exp, &rec.data),
            };
            if !ok {
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
                return format!("{client}: mismatch at event {}", k + 1);
            }
        }
        if got.len() < expected.len() {
            let missing: Vec<String> = expected[got.len()..]
                .iter()
                .take(3)
                .map(Value::to_string)
                .collect();
            self.violation(
                Rule::Expectation,
                i,
                Some(client),
                format!(
                    "expected {} event(s) within {ms} ms, {} arrived; missing from event {}: {}{}",
                    expected.len(),
                    got.len(),
                    got.len() + 1,
                    missing.join(", "),
                    if expected.len() - got.len() > 3 {
                        ", ..."
                    } else {
                        ""
                    }
                ),
            );
        }
        format!(
            "{client}: {} of {} event(s) as expected",
            got.len(),
            expected.len()
        )
    }

    async fn finish(mut self) -> Report {
        let end_step = self.t.steps.len();
        self.shared.step.store(end_step, Ordering::Release);
        self.settle().await;
        // Superseded streams must end; give them the default wait to do so.
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

/// The events with a `"pad"` field of `n` characters each (see `publish`'s `pad_bytes`).
fn pad(events: &[Value], n: usize) -> Vec<Value> {
    let text = "x".repeat(n);
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Value::Object(m) = &mut e {
                m.insert("pad".into(), Value::String(text.clone()));
            }
            e
        })
        .collect()
}
