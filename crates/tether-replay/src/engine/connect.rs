//! The `connect` and `supersede` steps: opening a client's stream, fresh or resuming, and
//! noting which other clients it displaces.
//!
//! Opening a stream is where the engine decides a connection's history (what the checker
//! compares its events with) and starts its reader, which is more than the other steps do.

use super::Engine;
use super::reader::Live;
use crate::driver::{ConnectRequest, Driver, SUPERSEDED_REFUSAL, SseBody};
use crate::log::{Connection, EndedBy, History, RunLog, SupersedeRecord};
use crate::report::Rule;

/// A client's connection that another client's connect to its session takes over: the
/// client, the connection's index, and whether it was stalled.
type Displaced = (String, usize, bool);

/// What a connect sends and what the log will say of it, decided before it is sent.
struct Plan {
    last: Option<String>,
    history: History,
    displaced: Vec<Displaced>,
}

impl<D: Driver> Engine<'_, D> {
    /// A client connects (or reconnects: its open connection is closed first).
    pub(super) async fn connect(
        &mut self,
        i: usize,
        client: &str,
        session: &str,
        resume: bool,
        literal: Option<String>,
        client_id: Option<String>,
    ) -> String {
        self.close(client, EndedBy::Client).await;
        let plan = plan(&self.shared.lock(), client, session, resume, literal);
        let request = ConnectRequest {
            last_event_id: plan.last.clone(),
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
                let last = plan.last.clone();
                self.opened(i, client, session, plan, body);
                match last {
                    Some(l) => format!("{client} -> {session} (Last-Event-ID {l})"),
                    None => format!("{client} -> {session}"),
                }
            }
        }
    }

    /// Client `by` connects to the session `client` is connected to.
    pub(super) async fn supersede(
        &mut self,
        i: usize,
        client: &str,
        by: &str,
        resume: bool,
    ) -> String {
        let live = self.live.contains_key(client)
            && self.shared.lock().clients[client]
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
        self.connect(i, by, &session, resume, None, None).await
    }

    /// Logs an accepted connect (and the connections it displaces) and starts its reader.
    fn opened(&mut self, i: usize, client: &str, session: &str, plan: Plan, body: SseBody) {
        self.stopped.remove(client);
        let opened = self.shared.now();
        let mut conn_idx = 0;
        self.shared.update(|log| {
            for (name, idx, stalled) in plan.displaced {
                log.supersedes.push(SupersedeRecord {
                    step: i,
                    client: name,
                    connection: idx,
                    by: client.to_owned(),
                    was_stalled: stalled,
                });
            }
            let cl = log.clients.entry(client.to_owned()).or_default();
            if matches!(plan.history, History::Fresh | History::From(_)) {
                cl.last_event_id = String::new();
            }
            cl.connections.push(Connection {
                step: i,
                session: session.to_owned(),
                history: plan.history,
                opened,
                entries: Vec::new(),
                stalled: false,
                end: None,
            });
            conn_idx = cl.connections.len() - 1;
        });
        let live = Live::spawn(self.shared.clone(), client.to_owned(), conn_idx, body);
        self.live.insert(client.to_owned(), live);
    }
}

/// The `Last-Event-ID` a connect sends (a literal one, or with `resume` the client's own) and
/// the open connections to `session` of other clients.
fn plan(log: &RunLog, client: &str, session: &str, resume: bool, literal: Option<String>) -> Plan {
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
    let displaced = log
        .clients
        .iter()
        .filter(|(name, _)| name.as_str() != client)
        .filter_map(|(name, c)| {
            let idx = c.connections.len().checked_sub(1)?;
            let conn = &c.connections[idx];
            (conn.is_open() && conn.session == session).then(|| (name.clone(), idx, conn.stalled))
        })
        .collect();
    Plan {
        last,
        history,
        displaced,
    }
}
