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
                    let value = f.json().unwrap().as_u64().unwrap();
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
        let broker = Broker::builder()
            .ring_max_events(ring)
            .start()
            .expect("valid config");
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
                    let opts = client
                        .last_id
                        .clone()
                        .map_or_else(ConnectOptions::new, ConnectOptions::resume);
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
                                let opts = client
                                    .last_id
                                    .clone()
                                    .map_or_else(ConnectOptions::new, ConnectOptions::resume);
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
        let opts = client
            .last_id
            .clone()
            .map_or_else(ConnectOptions::new, ConnectOptions::resume);
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

// ---------------------------------------------------------------------------------------------
// The extended model: several sessions under byte limits and the broker-wide budget, TTL
// expiry (a new epoch), removal, appends at explicit ids with gaps, history declared lost,
// resumes from random earlier ids, readers parked between publishes, and a checker that
// verifies what each resync says against what follows.

mod extended {
    use std::collections::{BTreeMap, HashMap};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    use futures_util::Stream;
    use proptest::prelude::*;
    use tether_core::{
        Broker, ConnectError, ConnectOptions, Epoch, EventId, EventStream, SessionId, frame,
    };

    use super::common::{Frame, parse, sid};

    pub(super) const SESSIONS: usize = 3;
    const CLIENTS: usize = 3;
    const TTL: Duration = Duration::from_secs(30);

    #[derive(Debug, Clone)]
    pub(super) enum Op {
        Publish { s: usize, n: u8, pad: u8 },
        AppendAt { s: usize, gap: u8, new_epoch: bool },
        MarkLost { s: usize, ahead: u8 },
        Connect { c: usize, s: usize, from: From },
        Read { c: usize },
        Drop { c: usize },
        Supersede { s: usize },
        Remove { s: usize },
        Expire,
    }

    #[derive(Debug, Clone)]
    pub(super) enum From {
        Last,
        Earlier(u8),
        Nothing,
        Foreign,
    }

    pub(super) fn op() -> impl Strategy<Value = Op> {
        let s = 0..SESSIONS;
        let c = 0..CLIENTS;
        prop_oneof![
            6 => (s.clone(), 1u8..5, 0u8..4).prop_map(|(s, n, pad)| Op::Publish { s, n, pad }),
            2 => (s.clone(), 0u8..3, proptest::bool::weighted(0.15))
                .prop_map(|(s, gap, new_epoch)| Op::AppendAt { s, gap, new_epoch }),
            1 => (s.clone(), 0u8..3).prop_map(|(s, ahead)| Op::MarkLost { s, ahead }),
            3 => (c.clone(), s.clone(), prop_oneof![
                    3 => Just(From::Last),
                    2 => any::<u8>().prop_map(From::Earlier),
                    1 => Just(From::Nothing),
                    1 => Just(From::Foreign),
                ]).prop_map(|(c, s, from)| Op::Connect { c, s, from }),
            6 => c.clone().prop_map(|c| Op::Read { c }),
            1 => c.prop_map(|c| Op::Drop { c }),
            1 => s.clone().prop_map(|s| Op::Supersede { s }),
            1 => s.prop_map(|s| Op::Remove { s }),
            1 => Just(Op::Expire),
        ]
    }

    /// What the model knows of one session incarnation: every sequence number that held an
    /// event (with its value) or was declared lost (`None`).
    #[derive(Default)]
    struct Incarnation {
        seqs: BTreeMap<u64, Option<u64>>,
        head: u64,
    }

    impl Incarnation {
        /// Whether any event existed strictly between `a` and `b`.
        fn any_between(&self, a: u64, b: u64) -> bool {
            b > a + 1 && self.seqs.range(a + 1..b).next().is_some()
        }
        /// Whether every number in `a+1..=b` existed.
        fn all_in(&self, a: u64, b: u64) -> bool {
            (a + 1..=b).all(|q| self.seqs.contains_key(&q))
        }
    }

    #[derive(Default)]
    struct ModelSession {
        current: Option<Epoch>,
    }

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[derive(Default)]
    struct Client {
        s: usize,
        stream: Option<EventStream>,
        /// The last id the SSE parser holds (sent back as Last-Event-ID).
        last_id: Option<String>,
        /// Every id it held, for resumes from earlier ids.
        history: Vec<String>,
        /// Its position: the epoch and sequence number of `last_id` when it is one of ours.
        pos: Option<(u64, u64)>,
        /// A resync arrived; the id-only frame that places the client follows.
        resync: Option<serde_json::Value>,
        buffer: String,
        wakes: Arc<Count>,
        /// Wake count when the stream last returned Pending, if it did since the last read.
        parked: Option<usize>,
        /// Something happened since it parked that must wake it.
        dirty: bool,
    }

    fn parse_id(id: &str) -> Option<(u64, u64)> {
        let e = EventId::parse(id)?;
        Some((e.epoch.get(), e.seq))
    }

    struct World {
        broker: Broker,
        sids: Vec<SessionId>,
        sessions: Vec<ModelSession>,
        incarnations: HashMap<u64, Incarnation>,
        clients: Vec<Client>,
        next_value: u64,
        next_epoch: u64,
    }

    impl World {
        fn inc(&mut self, epoch: Epoch) -> &mut Incarnation {
            self.incarnations.entry(epoch.get()).or_default()
        }

        /// Records a stored id; a new epoch means the session was recreated.
        fn stored(&mut self, s: usize, id: EventId, value: u64) -> Result<(), TestCaseError> {
            if self.sessions[s].current != Some(id.epoch) {
                prop_assert!(
                    !self.incarnations.contains_key(&id.epoch.get()) || id.seq > 0,
                    "epochs are never reused"
                );
                self.sessions[s].current = Some(id.epoch);
            }
            let inc = self.inc(id.epoch);
            prop_assert!(
                id.seq > inc.head,
                "ids count up: {} after {}",
                id.seq,
                inc.head
            );
            inc.seqs.insert(id.seq, Some(value));
            inc.head = id.seq;
            Ok(())
        }

        fn touch(&mut self, s: usize) {
            for c in &mut self.clients {
                if c.s == s && c.stream.is_some() {
                    c.dirty = true;
                }
            }
        }

        fn connect(
            &mut self,
            c: usize,
            s: usize,
            last: Option<String>,
        ) -> Result<(), TestCaseError> {
            let opts = last
                .clone()
                .map_or_else(ConnectOptions::new, ConnectOptions::resume);
            // The client's old stream (if any) goes away first, as a browser's would.
            self.clients[c].stream = None;
            let other_on_s = self
                .clients
                .iter()
                .enumerate()
                .any(|(i, o)| i != c && o.s == s && o.stream.is_some());
            match self.broker.connect(&self.sids[s], opts) {
                Ok(stream) => {
                    self.touch(s);
                    let cl = &mut self.clients[c];
                    cl.s = s;
                    cl.stream = Some(stream);
                    cl.buffer.clear();
                    cl.parked = None;
                    cl.dirty = false;
                    cl.resync = None;
                    cl.last_id = last.clone();
                    cl.pos = last.as_deref().and_then(parse_id);
                    Ok(())
                }
                Err(ConnectError::SupersededRecently) => {
                    prop_assert!(
                        other_on_s,
                        "204 only while another stream holds the session"
                    );
                    self.clients[c].s = s;
                    Ok(())
                }
                Err(e) => Err(TestCaseError::fail(format!("connect: {e}"))),
            }
        }

        /// Polls a client's stream until it is pending or ended, checking every frame.
        fn read(&mut self, c: usize) -> Result<(), TestCaseError> {
            let cl = &mut self.clients[c];
            let Some(stream) = cl.stream.as_mut() else {
                return Ok(());
            };
            if let (Some(at), true) = (cl.parked, cl.dirty) {
                prop_assert!(
                    cl.wakes.0.load(Ordering::SeqCst) > at,
                    "a parked reader was not woken"
                );
            }
            let waker = Waker::from(cl.wakes.clone());
            let mut cx = Context::from_waker(&waker);
            let mut text = String::new();
            let mut ended = false;
            for polls in 0.. {
                // Every read ends pending: a stream that is always ready (a resync loop)
                // is a bug, not a slow test.
                prop_assert!(polls < 1_000, "the stream never parks");
                match Pin::new(&mut *stream).poll_next(&mut cx) {
                    Poll::Ready(Some(b)) => text.push_str(std::str::from_utf8(&b).unwrap()),
                    Poll::Ready(None) => {
                        ended = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            cl.parked = (!ended).then(|| cl.wakes.0.load(Ordering::SeqCst));
            cl.dirty = false;
            cl.buffer.push_str(&text);
            let complete = match cl.buffer.rfind("\n\n") {
                Some(end) => cl.buffer.drain(..end + 2).collect::<String>(),
                None => String::new(),
            };
            for f in parse(&complete) {
                self.check(c, &f)?;
            }
            if ended {
                let cl = &mut self.clients[c];
                cl.stream = None;
                cl.parked = None;
                // EventSource comes back with its last id.
                let (s, last) = (cl.s, cl.last_id.clone());
                self.connect(c, s, last)?;
            }
            Ok(())
        }

        fn check(&mut self, c: usize, f: &Frame) -> Result<(), TestCaseError> {
            let signal = f.signal();
            if signal.as_deref() == Some("tether.resync") {
                let v = f.json().unwrap()["value"].clone();
                let cl = &self.clients[c];
                prop_assert!(cl.resync.is_none(), "two resyncs without an id-only frame");
                // It names the id the client holds.
                let named = v["lastEventId"].as_str().map(str::to_owned);
                prop_assert_eq!(&named, &cl.last_id, "lastEventId is the client's id");
                self.clients[c].resync = Some(v);
                return Ok(());
            }
            if let Some(name) = &signal {
                prop_assert!(name == "tether.superseded", "unexpected signal {}", name);
                return Ok(());
            }
            let Some(id) = f.id.clone() else {
                return Ok(());
            };
            let (epoch, seq) = parse_id(&id).expect("our ids");
            let inc = self.incarnations.get(&epoch);
            let cl = &self.clients[c];
            if f.data.is_none() {
                // An id-only frame: it follows a resync and places the client.
                let Some(v) = cl.resync.clone() else {
                    prop_assert_eq!(
                        Some((epoch, seq)),
                        cl.pos,
                        "an id-only frame moved the client silently"
                    );
                    return Ok(());
                };
                let resume = parse_id(v["resumeFrom"].as_str().unwrap()).unwrap();
                prop_assert_eq!(
                    resume.0,
                    epoch,
                    "resumeFrom is in the id-only frame's epoch"
                );
                prop_assert!(seq < resume.1, "resumeFrom follows the new position");
                // An incarnation created by a connect has no events the model saw.
                let empty = Incarnation::default();
                let inc = inc.unwrap_or(&empty);
                prop_assert!(
                    !inc.any_between(seq, resume.1),
                    "resumeFrom is the next event after the new position"
                );
                let reason = v["reason"].as_str().unwrap().to_owned();
                let from = cl.last_id.as_deref().map(|l| (l, parse_id(l)));
                match (reason.as_str(), from) {
                    ("unknown", Some((_, None))) => {}
                    ("epoch", Some((_, Some((e, _))))) => {
                        prop_assert_ne!(e, epoch, "an epoch resync changes the epoch")
                    }
                    // A stream that had no position yet meets a new epoch.
                    ("epoch", None) => {}
                    ("ahead", Some((_, Some((e, q))))) => {
                        let head = self.incarnations.get(&e).map_or(0, |i| i.head);
                        prop_assert!(e == epoch && q > head, "ahead of the head");
                    }
                    ("evicted", from) => {
                        let c0 = match from {
                            Some((_, Some((e, q)))) => {
                                prop_assert_eq!(e, epoch, "an eviction keeps the epoch");
                                q
                            }
                            None => 0,
                            Some((l, None)) => {
                                return Err(TestCaseError::fail(format!("evicted after {l}")));
                            }
                        };
                        prop_assert!(seq > c0, "the position moves forward");
                        prop_assert!(
                            inc.seqs.range(c0 + 1..=seq).next().is_some(),
                            "an eviction resync lost something (after {}, to {})",
                            c0,
                            seq
                        );
                        if let Some(k) = v["skipped"].as_u64() {
                            prop_assert_eq!(k, seq - c0, "skipped counts what was lost");
                            prop_assert!(inc.all_in(c0, seq), "a count only without gaps");
                        }
                    }
                    (r, from) => {
                        return Err(TestCaseError::fail(format!("resync {r} after {from:?}")));
                    }
                }
                let cl = &mut self.clients[c];
                cl.resync = None;
                cl.pos = Some((epoch, seq));
                cl.last_id = Some(id.clone());
                cl.history.push(id);
                return Ok(());
            }
            // A stored event.
            let value: u64 = serde_json::from_value(f.json().unwrap()["v"].clone()).unwrap();
            let inc = inc.expect("a known epoch");
            prop_assert_eq!(
                inc.seqs.get(&seq).copied().flatten(),
                Some(value),
                "event {} is the model's",
                id
            );
            prop_assert!(
                cl.resync.is_none(),
                "a resync is followed by an id-only frame first"
            );
            let after = match cl.pos {
                Some((e, q)) if e == epoch => q,
                Some(_) => {
                    return Err(TestCaseError::fail(format!(
                        "{id} in another epoch without a resync"
                    )));
                }
                None => 0,
            };
            prop_assert!(
                seq > after,
                "duplicate or out of order: {} after {}",
                seq,
                after
            );
            prop_assert!(
                !inc.any_between(after, seq),
                "silent gap: {} after {}",
                seq,
                after
            );
            let cl = &mut self.clients[c];
            cl.pos = Some((epoch, seq));
            cl.last_id = Some(id.clone());
            cl.history.push(id);
            Ok(())
        }
    }

    pub(super) fn run(
        ops: Vec<Op>,
        ring_events: usize,
        ring_bytes: usize,
    ) -> Result<(), TestCaseError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let broker = Broker::builder()
                .ring_max_events(ring_events)
                .ring_max_bytes(ring_bytes)
                .total_ring_bytes(ring_bytes * 2)
                .without_heartbeats()
                .session_ttl(TTL)
                .start()
                .expect("valid config");
            let mut w = World {
                broker,
                sids: (0..SESSIONS).map(|i| sid(&format!("m{i}"))).collect(),
                sessions: (0..SESSIONS).map(|_| ModelSession::default()).collect(),
                incarnations: HashMap::new(),
                clients: (0..CLIENTS).map(|_| Client::default()).collect(),
                next_value: 1,
                next_epoch: 0xe000,
            };
            for op in ops {
                match op {
                    Op::Publish { s, n, pad } => {
                        for _ in 0..n {
                            let v = w.next_value;
                            w.next_value += 1;
                            let body =
                                serde_json::json!({"v": v, "pad": "x".repeat(pad as usize * 40)});
                            let id = w.broker.publish(&w.sids[s], &body).unwrap();
                            w.stored(s, id, v)?;
                        }
                        w.touch(s);
                    }
                    Op::AppendAt { s, gap, new_epoch } => {
                        let current = w.sessions[s]
                            .current
                            .filter(|_| w.broker.has_session(&w.sids[s]));
                        let (epoch, after) = match current {
                            Some(e) if !new_epoch => (e, w.incarnations[&e.get()].head),
                            _ => {
                                w.next_epoch += 1;
                                (Epoch::from_u64(w.next_epoch), 0)
                            }
                        };
                        let id = EventId {
                            epoch,
                            seq: after + 1 + u64::from(gap),
                        };
                        let v = w.next_value;
                        w.next_value += 1;
                        let data = serde_json::json!({"v": v}).to_string();
                        w.broker
                            .append_at(&w.sids[s], id, frame::encode_event(Some(id), None, &data))
                            .unwrap();
                        w.stored(s, id, v)?;
                        w.touch(s);
                    }
                    Op::MarkLost { s, ahead } => {
                        let Some(epoch) = w.sessions[s]
                            .current
                            .filter(|_| w.broker.has_session(&w.sids[s]))
                        else {
                            continue;
                        };
                        let inc = w.inc(epoch);
                        let through = inc.head + u64::from(ahead);
                        w.broker
                            .mark_lost(
                                &w.sids[s],
                                EventId {
                                    epoch,
                                    seq: through,
                                },
                            )
                            .unwrap();
                        // Numbers after the head are declared lost; numbers in gaps below
                        // it never held an event and stay that way.
                        let inc = w.inc(epoch);
                        for q in inc.head + 1..=through {
                            inc.seqs.insert(q, None);
                        }
                        inc.head = inc.head.max(through);
                        w.touch(s);
                    }
                    Op::Connect { c, s, from } => {
                        let last = match from {
                            From::Last => w.clients[c].last_id.clone(),
                            From::Earlier(i) => {
                                let h = &w.clients[c].history;
                                (!h.is_empty()).then(|| h[i as usize % h.len()].clone())
                            }
                            From::Nothing => None,
                            From::Foreign => Some("msg_17".to_owned()),
                        };
                        if matches!(from, From::Nothing) {
                            let wakes = w.clients[c].wakes.clone();
                            w.clients[c] = Client {
                                wakes,
                                ..Client::default()
                            };
                        }
                        w.connect(c, s, last)?;
                    }
                    Op::Read { c } => w.read(c)?,
                    Op::Drop { c } => {
                        w.clients[c].stream = None;
                        w.clients[c].parked = None;
                    }
                    Op::Supersede { s } => {
                        if let Ok(intruder) =
                            w.broker.connect(&w.sids[s], ConnectOptions::default())
                        {
                            w.touch(s);
                            drop(intruder);
                        }
                    }
                    Op::Remove { s } => {
                        w.broker.remove_session(&w.sids[s]);
                        w.touch(s);
                        w.sessions[s].current = None;
                    }
                    Op::Expire => {
                        tokio::time::advance(TTL + Duration::from_secs(6)).await;
                        for _ in 0..4 {
                            tokio::task::yield_now().await;
                        }
                        for s in 0..SESSIONS {
                            if !w.broker.has_session(&w.sids[s]) {
                                w.sessions[s].current = None;
                            }
                        }
                        // A connected reader that did not poll for the client timeout with
                        // events pending is dropped; its end wakes it.
                    }
                }
            }
            // Every client comes back with its last id and reads what is left: it ends at the
            // head of its session, every gap announced.
            for c in 0..CLIENTS {
                if w.clients[c].last_id.is_none() && w.clients[c].stream.is_none() {
                    continue;
                }
                for i in 0..CLIENTS {
                    w.clients[i].stream = None;
                }
                let (s, last) = (w.clients[c].s, w.clients[c].last_id.clone());
                w.connect(c, s, last)?;
                w.read(c)?;
                let Some(epoch) = w.sessions[s]
                    .current
                    .filter(|_| w.broker.has_session(&w.sids[s]))
                else {
                    continue;
                };
                let head = w.incarnations[&epoch.get()].head;
                if head > 0 {
                    prop_assert_eq!(
                        w.clients[c].pos,
                        Some((epoch.get(), head)),
                        "client {} caught up to the head",
                        c
                    );
                }
            }
            Ok(())
        })
    }
}

fn ext_cases() -> u32 {
    cases()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: ext_cases(),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/model_extended.txt"),
            ),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn several_sessions_budgets_epochs_and_gaps_keep_every_client_exact(
        ops in proptest::collection::vec(extended::op(), 1..60),
        ring_events in 1usize..8,
        ring_bytes in 150usize..1200,
    ) {
        extended::run(ops, ring_events, ring_bytes)?;
    }
}
