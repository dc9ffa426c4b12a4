//! The reader task of one connection: takes in its bytes, parses them into blocks and logs
//! them, and obeys the engine's stall and close orders.
//!
//! It runs beside the steps (a stalled client stops reading while the transcript goes on),
//! so it is a task of its own that shares only the log with the engine.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Shared;
use crate::driver::SseBody;
use crate::log::{End, EndedBy, Entry, EntryKind};
use crate::sse::Parser;

/// An order from the engine to a reader.
pub(super) enum Ctl {
    /// Stop reading for this long (from now, or longer if already stalled).
    Stall(Duration),
    /// Close the connection.
    Close(EndedBy),
}

/// A connection being read: how to order its reader about, and the reader itself.
pub(super) struct Live {
    pub(super) ctl: mpsc::UnboundedSender<Ctl>,
    pub(super) task: JoinHandle<()>,
}

impl Live {
    /// Starts the reader of connection `conn` of `client`.
    pub(super) fn spawn(shared: Arc<Shared>, client: String, conn: usize, body: SseBody) -> Self {
        let (ctl, rx) = mpsc::unbounded_channel();
        let reader = Reader {
            shared,
            client,
            conn,
        };
        let task = tokio::spawn(reader.run(body, rx));
        Self { ctl, task }
    }
}

/// What a reader writes to: the log, at its connection's place in it.
struct Reader {
    shared: Arc<Shared>,
    client: String,
    conn: usize,
}

impl Reader {
    async fn run(self, mut body: SseBody, mut ctl: mpsc::UnboundedReceiver<Ctl>) {
        let mut parser = Parser::new();
        let mut stall_until: Option<Instant> = None;
        loop {
            if let Some(until) = stall_until {
                tokio::select! {
                    biased;
                    c = ctl.recv() => match c {
                        Some(Ctl::Stall(d)) => stall_until = Some(until.max(Instant::now() + d)),
                        Some(Ctl::Close(by)) => return self.close(by),
                        None => return self.close(EndedBy::RunEnd),
                    },
                    () = tokio::time::sleep_until(until) => {
                        stall_until = None;
                        self.set_stalled(EntryKind::StallEnd, false);
                    }
                }
                continue;
            }
            tokio::select! {
                biased;
                c = ctl.recv() => match c {
                    Some(Ctl::Stall(d)) => {
                        stall_until = Some(Instant::now() + d);
                        self.set_stalled(EntryKind::StallStart, true);
                    }
                    Some(Ctl::Close(by)) => return self.close(by),
                    None => return self.close(EndedBy::RunEnd),
                },
                item = body.next() => match item {
                    Some(bytes) => self.take_in(&mut parser, &bytes),
                    None => return self.close(EndedBy::Server),
                },
            }
        }
    }

    fn step(&self) -> usize {
        self.shared.step.load(Ordering::Acquire)
    }

    fn entry(&self, kind: EntryKind) -> Entry {
        Entry {
            at: self.shared.now(),
            step: self.step(),
            kind,
        }
    }

    fn close(&self, by: EndedBy) {
        let end = End {
            at: self.shared.now(),
            step: self.step(),
            by,
        };
        self.shared
            .update(|log| Shared::conn(log, &self.client, self.conn).end = Some(end));
    }

    /// Logs the start or the end of a stall.
    fn set_stalled(&self, kind: EntryKind, stalled: bool) {
        let e = self.entry(kind);
        self.shared.update(|log| {
            let c = Shared::conn(log, &self.client, self.conn);
            c.entries.push(e);
            c.stalled = stalled;
        });
    }

    /// Logs a chunk of bytes and the blocks it completes, and moves the client's last id.
    fn take_in(&self, parser: &mut Parser, bytes: &[u8]) {
        let blocks = parser.feed(bytes);
        let moved = blocks.iter().any(|b| b.id.is_some());
        let last = parser.last_event_id().to_owned();
        let first = self.entry(EntryKind::Bytes(bytes.len()));
        let (at, step) = (first.at, first.step);
        self.shared.update(|log| {
            let cl = log
                .clients
                .get_mut(&self.client)
                .expect("reader of a known client");
            if moved {
                cl.last_event_id = last;
            }
            let c = &mut cl.connections[self.conn];
            c.entries.push(first);
            c.entries.extend(blocks.into_iter().map(|b| Entry {
                at,
                step,
                kind: EntryKind::Block(b),
            }));
        });
    }
}
