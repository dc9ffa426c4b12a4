//! The steps by which a client misbehaves or goes away: `stall` (it stops reading) and
//! `drop` (it closes its connection).
//!
//! They act on a connection's reader rather than on the server, which is what sets them
//! apart from the steps that send requests.

use tokio::time::Instant;

use super::Engine;
use super::reader::Ctl;
use crate::driver::Driver;
use crate::log::EndedBy;
use crate::report::Rule;

impl<D: Driver> Engine<'_, D> {
    /// The client stops reading for `ms` of transcript time.
    pub(super) fn stall(&mut self, i: usize, client: &str, ms: u64) -> String {
        match self.live.get(client) {
            Some(live) => {
                let d = self.timing.span(ms);
                let _ = live.ctl.send(Ctl::Stall(d));
                let until = self
                    .stalls
                    .entry(client.to_owned())
                    .or_insert_with(Instant::now);
                *until = (*until).max(Instant::now() + d);
                format!("{client} stops reading for {ms} ms")
            }
            None if self.stopped.contains(client) => "stopped".into(),
            None => {
                self.violation(
                    Rule::Step,
                    i,
                    Some(client),
                    format!("{client} is not connected"),
                );
                "not connected".into()
            }
        }
    }

    /// The client closes its connection.
    pub(super) async fn drop_client(&mut self, client: &str) -> String {
        if self.live.contains_key(client) {
            self.close(client, EndedBy::Client).await;
            format!("{client} closes its connection")
        } else {
            "not connected".into()
        }
    }
}
