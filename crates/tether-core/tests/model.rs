//! Model test: random interleavings of publish, connect, read, drop, reconnect with the last
//! id seen, supersede and eviction, checked against a plain `Vec` of everything published.
//!
//! A client never sees a duplicate or an out-of-order event, every event it sees is the one
//! the model holds at that position, and every gap is preceded by a resync signal.
//! The number of cases defaults to 1,000; `PROPTEST_CASES` raises it.
mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use tether_core::{Broker, ConnectOptions, EventStream};

#[derive(Debug, Clone)]
enum Op {
    Publish(u8),
    Connect { resume: bool },
    Read(u8),
    Drop,
    Supersede,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..6).prop_map(Op::Publish),
        2 => any::<bool>().prop_map(|resume| Op::Connect { resume }),
        4 => (1u8..8).prop_map(Op::Read),
        1 => Just(Op::Drop),
        1 => Just(Op::Supersede),
    ]
}

/// What the client has seen: the last stored seq on its history, the last id the SSE parser
/// would send back, and whether a resync arrived since the last event.
#[derive(Default)]
struct Client {
    stream: Option<EventStream>,
    last_seq: Option<u64>,
    last_id: Option<String>,
    resync_pending: bool,
    buffer: String,
}

impl Client {
    /// Feeds received bytes through the parser and checks each complete frame.
    fn receive(&mut self, bytes: &[u8], model: &[u64]) -> Result<(), TestCaseError> {
        self.buffer.push_str(std::str::from_utf8(bytes).unwrap());
        let Some(end) = self.buffer.rfind("\n\n") else {
            return Ok(());
        };
        let complete: String = self.buffer.drain(..end + 2).collect();
        for f in parse(&complete) {
            if let Some(id) = &f.id {
                self.last_id = Some(id.clone());
            }
            match (&f.data, &f.id) {
                (Some(_), None) if f.signal().as_deref() == Some("tether.resync") => {
                    self.resync_pending = true;
                }
                (Some(_), Some(id)) => {
                    let seq: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
                    let value = f.json().as_u64().unwrap();
                    prop_assert_eq!(
                        value,
                        model[(seq - 1) as usize],
                        "event {} is the model's",
                        seq
                    );
                    if let Some(prev) = self.last_seq {
                        prop_assert!(
                            seq > prev,
                            "duplicate or out of order: {} after {}",
                            seq,
                            prev
                        );
                        if seq != prev + 1 {
                            prop_assert!(self.resync_pending, "silent gap: {} after {}", seq, prev);
                        }
                    } else if seq != 1 {
                        prop_assert!(
                            self.resync_pending,
                            "fresh client started at {} silently",
                            seq
                        );
                    }
                    self.last_seq = Some(seq);
                    self.resync_pending = false;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn run(ops: Vec<Op>, ring: usize) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let broker = Broker::builder().ring_max_events(ring).start();
        let s = sid("model");
        let mut model: Vec<u64> = Vec::new();
        let mut client = Client::default();
        for op in ops {
            match op {
                Op::Publish(n) => {
                    for _ in 0..n {
                        let v = model.len() as u64 * 7 + 3;
                        let id = broker.publish(&s, &v).unwrap();
                        model.push(v);
                        prop_assert_eq!(id.seq, model.len() as u64);
                    }
                }
                Op::Connect { resume } => {
                    client.stream = None;
                    if !resume {
                        // A new client with no history.
                        client = Client::default();
                    }
                    let opts = ConnectOptions {
                        last_event_id: client.last_id.clone(),
                        ..ConnectOptions::default()
                    };
                    client.buffer.clear();
                    client.stream = Some(broker.connect(&s, opts).unwrap());
                }
                Op::Read(k) => {
                    for _ in 0..k {
                        let Some(stream) = client.stream.as_mut() else {
                            break;
                        };
                        match next_within(stream, Duration::from_millis(1)).await {
                            Some(Some(bytes)) => client.receive(&bytes, &model)?,
                            Some(None) => {
                                // Ended (superseded): reconnect with the last id, as EventSource does.
                                let opts = ConnectOptions {
                                    last_event_id: client.last_id.clone(),
                                    ..ConnectOptions::default()
                                };
                                client.buffer.clear();
                                client.stream = Some(broker.connect(&s, opts).unwrap());
                            }
                            None => break,
                        }
                    }
                }
                Op::Drop => {
                    client.stream = None;
                }
                Op::Supersede => {
                    // Another connection takes the session and goes away again.
                    let intruder = broker.connect(&s, ConnectOptions::default()).unwrap();
                    drop(intruder);
                }
            }
        }
        // Finally the client reconnects with its last id and reads everything that is left:
        // it must end at the head, with every gap announced.
        client.stream = None;
        let opts = ConnectOptions {
            last_event_id: client.last_id.clone(),
            ..ConnectOptions::default()
        };
        client.buffer.clear();
        let mut stream = broker.connect(&s, opts).unwrap();
        while let Some(Some(bytes)) = next_within(&mut stream, Duration::from_millis(1)).await {
            client.receive(&bytes, &model)?;
        }
        if !model.is_empty() {
            prop_assert_eq!(
                client.last_seq,
                Some(model.len() as u64),
                "caught up to the head"
            );
        }
        Ok(())
    })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/model.txt"),
            ),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn clients_never_see_duplicates_reordering_or_silent_gaps(
        ops in proptest::collection::vec(op(), 1..80),
        ring in 1usize..10,
    ) {
        run(ops, ring)?;
    }
}
