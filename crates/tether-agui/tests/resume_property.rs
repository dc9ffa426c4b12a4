//! Property: whatever valid AG-UI sequence is published into a small ring, a
//! client that comes back with any id (still in the ring, evicted, foreign, or
//! none) gets a stream that passes the client's checks: an exact resume
//! continues its stream, anything else gets a response that passes on its
//! own. Checked with the Rust port of `verifyEvents` for every case, and a
//! sample of the responses with the official client.

mod support;

use std::sync::Mutex;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};
use support::*;
use tether_core::{Broker, ConnectOptions};

/// Builds a valid event sequence from a list of choices.
#[derive(Default)]
struct Script {
    events: Vec<Value>,
    runs: usize,
    run_open: bool,
    texts: Vec<String>,
    tools: Vec<String>,
    unanswered: Vec<String>,
    done_messages: Vec<String>,
    steps: Vec<String>,
    state_keys: Vec<String>,
    state_known: bool,
    next: usize,
    /// The subagent that owns a message or tool call (`None`: the parent agent).
    owner: std::collections::HashMap<String, Option<String>>,
    /// Entities opened with an explicit `subagentRunId`.
    tagged: std::collections::HashSet<String>,
    /// The parent message of each tool call.
    parent: std::collections::HashMap<String, String>,
}

fn tag(mut event: Value, owner: Option<&str>) -> Value {
    if let Some(o) = owner {
        event["subagentRunId"] = o.into();
    }
    event
}

impl Script {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn pick(list: &[String], c: u8) -> Option<String> {
        (!list.is_empty()).then(|| list[c as usize % list.len()].clone())
    }

    /// A continuation repeats its opener's explicit tag, or carries none.
    fn continuation_tag(&self, id: &str, d: u8) -> Option<String> {
        if self.tagged.contains(id) && d.is_multiple_of(2) {
            self.owner.get(id).cloned().flatten()
        } else {
            None
        }
    }

    fn start_run(&mut self, c: u8) {
        self.runs += 1;
        let run = format!("r{}", self.runs);
        let mut event = run_started("t", &run);
        if c.is_multiple_of(3) {
            let user = self.id("u");
            event["input"] = json!({
                "threadId": "t", "runId": run,
                "messages": [{"id": user, "role": "user", "content": format!("question {c}")}],
                "state": {"k0": c}
            });
            self.state_known = true;
            self.state_keys = vec!["k0".into()];
        }
        self.events.push(event);
        self.run_open = true;
    }

    fn close_all(&mut self) {
        for id in std::mem::take(&mut self.tools) {
            self.events.push(tool_end(&id));
            self.unanswered.push(id);
        }
        for id in std::mem::take(&mut self.texts) {
            self.events.push(text_end(&id));
            self.done_messages.push(id);
        }
        for name in std::mem::take(&mut self.steps) {
            self.events.push(step(&name, false));
        }
    }

    fn finish(&mut self, error: bool) {
        if error {
            self.events.push(run_error("failed"));
            self.texts.clear();
            self.tools.clear();
            self.steps.clear();
        } else {
            self.close_all();
            self.events
                .push(run_finished("t", &format!("r{}", self.runs)));
        }
        self.run_open = false;
    }

    fn step(&mut self, c: u8, d: u8) {
        if !self.run_open {
            self.start_run(c);
            return;
        }
        match c % 13 {
            0 if self.texts.len() < 3 && d % 7 == 6 && !self.done_messages.is_empty() => {
                // A message id used again: the client appends to the message.
                let id = Self::pick(&self.done_messages, d).unwrap();
                if !self.texts.contains(&id) {
                    // Reopened under its owner, so every view agrees on it.
                    let owner = self.owner.get(&id).cloned().flatten();
                    self.events.push(tag(text_start(&id), owner.as_deref()));
                    self.done_messages.retain(|m| m != &id);
                    self.tagged.remove(&id);
                    if owner.is_some() {
                        self.tagged.insert(id.clone());
                    }
                    self.texts.push(id);
                }
            }
            0 if self.texts.len() < 3 => {
                let id = self.id("m");
                let owner = match d % 4 {
                    0 => Some("sa1".to_owned()),
                    1 => Some("sa2".to_owned()),
                    _ => None,
                };
                self.events.push(tag(text_start(&id), owner.as_deref()));
                if owner.is_some() {
                    self.tagged.insert(id.clone());
                }
                self.owner.insert(id.clone(), owner);
                self.texts.push(id);
            }
            1 | 2 => {
                if let Some(id) = Self::pick(&self.texts, d) {
                    let owner = self.continuation_tag(&id, d);
                    self.events
                        .push(tag(text(&id, &format!("w{d} ")), owner.as_deref()));
                }
            }
            3 => {
                if let Some(id) = Self::pick(&self.texts, d) {
                    self.texts.retain(|t| t != &id);
                    let owner = self.continuation_tag(&id, d);
                    self.events.push(tag(text_end(&id), owner.as_deref()));
                    self.done_messages.push(id);
                }
            }
            4 if self.tools.len() < 3 => {
                let id = self.id("tc");
                let parent = if d.is_multiple_of(2) {
                    Self::pick(&self.texts, d).or_else(|| Self::pick(&self.done_messages, d))
                } else {
                    None
                };
                // A call carries its parent message's owner, or no tag.
                let owner = match &parent {
                    Some(p) => self
                        .owner
                        .get(p)
                        .cloned()
                        .flatten()
                        .filter(|_| !d.is_multiple_of(3)),
                    None => d.is_multiple_of(3).then(|| "sa3".to_owned()),
                };
                self.events.push(tag(
                    tool_start(&id, &format!("tool{}", d % 4), parent.as_deref()),
                    owner.as_deref(),
                ));
                if owner.is_some() {
                    self.tagged.insert(id.clone());
                }
                self.owner.insert(id.clone(), owner);
                if let Some(p) = parent {
                    self.parent.insert(id.clone(), p);
                }
                self.tools.push(id);
            }
            5 | 6 => {
                if let Some(id) = Self::pick(&self.tools, d) {
                    let owner = self.continuation_tag(&id, d);
                    self.events.push(tag(
                        tool_args(&id, &format!("{{\"a\":{d}}}")),
                        owner.as_deref(),
                    ));
                }
            }
            7 => {
                if let Some(id) = Self::pick(&self.tools, d) {
                    self.tools.retain(|t| t != &id);
                    let owner = self.continuation_tag(&id, d);
                    self.events.push(tag(tool_end(&id), owner.as_deref()));
                    self.unanswered.push(id);
                }
            }
            8 => {
                if let Some(call) = Self::pick(&self.unanswered, d) {
                    self.unanswered.retain(|t| t != &call);
                    let id = self.id("res");
                    let owner = d.is_multiple_of(2).then(|| "sa4".to_owned());
                    self.owner.insert(id.clone(), owner.clone());
                    self.events.push(tag(
                        tool_result(&id, &call, &format!("result {d}")),
                        owner.as_deref(),
                    ));
                }
            }
            9 => {
                if !self.state_known || d.is_multiple_of(4) {
                    self.events.push(state(json!({"k0": d, "list": []})));
                    self.state_known = true;
                    self.state_keys = vec!["k0".into()];
                } else {
                    let key = format!("k{}", d % 5);
                    let op = match d % 3 {
                        0 if self.state_keys.contains(&key) => {
                            self.state_keys.retain(|k| k != &key);
                            json!({"op": "remove", "path": format!("/{key}")})
                        }
                        1 => json!({"op": "add", "path": "/list/-", "value": d}),
                        _ => {
                            if !self.state_keys.contains(&key) {
                                self.state_keys.push(key.clone());
                            }
                            json!({"op": "add", "path": format!("/{key}"), "value": d})
                        }
                    };
                    self.events.push(delta(json!([op])));
                }
            }
            10 => {
                if let Some(name) = self.steps.pop() {
                    self.events.push(step(&name, false));
                } else {
                    let name = format!("step{d}");
                    self.events.push(step(&name, true));
                    self.steps.push(name);
                }
            }
            11 if d % 3 == 2 => {
                // A snapshot restating some of the conversation; it decides
                // the owners of the messages it names.
                let mut messages =
                    vec![json!({"id": self.id("s"), "role": "user", "content": "hi"})];
                // (Not the parent of an open tool call: its owner must stay.)
                let carrying: Vec<String> = self
                    .tools
                    .iter()
                    .filter_map(|t| self.parent.get(t).cloned())
                    .collect();
                let named: Vec<String> = self
                    .done_messages
                    .iter()
                    .chain(&self.texts)
                    .filter(|m| !carrying.contains(m))
                    .take(3)
                    .cloned()
                    .collect();
                for id in named {
                    let owner = d.is_multiple_of(2).then(|| "sa5".to_owned());
                    let mut m = json!({"id": id, "role": "assistant", "content": "restated"});
                    if let Some(o) = &owner {
                        m["subagentRunId"] = o.clone().into();
                    }
                    self.owner.insert(id.clone(), owner);
                    self.tagged.remove(&id);
                    messages.push(m);
                }
                self.events
                    .push(json!({"type": "MESSAGES_SNAPSHOT", "messages": messages}));
            }
            11 => self.events.push(if d.is_multiple_of(2) {
                json!({"type": "CUSTOM", "name": "app.progress", "value": d})
            } else {
                json!({"type": "app.unknown", "n": d})
            }),
            12 if d.is_multiple_of(3) => self.finish(d.is_multiple_of(5)),
            _ => {}
        }
    }

    fn build(choices: &[(u8, u8)]) -> Vec<Value> {
        let mut s = Script::default();
        for &(c, d) in choices {
            s.step(c, d);
        }
        if s.run_open {
            s.finish(false);
        }
        s.events
    }
}

/// A body in the broker's stored form for `events`, numbered from 1.
fn stored_body(epoch: &str, events: &[Value]) -> Vec<u8> {
    let mut body = String::new();
    for (i, e) in events.iter().enumerate() {
        body.push_str(&format!("id: {epoch}-{}\ndata: {e}\n\n", i + 1));
    }
    body.into_bytes()
}

/// Responses kept for the official client, at most a few per case.
static SAMPLE: Mutex<Vec<(String, Vec<u8>)>> = Mutex::new(Vec::new());

fn fail(
    what: &str,
    ring: usize,
    events: usize,
    e: impl std::fmt::Display,
    body: &[u8],
) -> TestCaseError {
    TestCaseError::fail(format!(
        "{what} (ring {ring}, {events} events): {e}\n{}",
        String::from_utf8_lossy(body)
    ))
}

fn check_case(
    events: &[Value],
    ring: usize,
    cuts: &[(u16, u8)],
    case: u64,
) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let broker = tracked(Broker::builder().ring_max_events(ring));
        let n = events.len();

        // A client connected from the start reads the whole sequence live.
        let s = sid("prop");
        let mut live = broker.connect(&s, ConnectOptions::default()).unwrap();
        let mut live_body = Vec::new();
        let mut ids = Vec::new();
        for e in events {
            match broker.publish(&s, e) {
                Ok(id) => ids.push(id),
                Err(err) => {
                    return Err(TestCaseError::fail(format!("{e} refused: {err}")));
                }
            }
            live_body.extend(capture(&mut live, QUIET).await.0);
        }
        if let Err(e) = tether_agui::verify_sse(&live_body) {
            return Err(fail("live stream", ring, n, e, &live_body));
        }
        drop(live);

        // Clients that come back in the middle of the sequence, then read on
        // to its end.
        let mut kept = 0;
        for (i, &(pos, kind)) in cuts.iter().enumerate() {
            let k = 1 + pos as usize % n;
            let s = sid(&format!("cut{i}"));
            let cut_ids: Vec<_> = events[..k]
                .iter()
                .map(|e| broker.publish(&s, e).unwrap())
                .collect();
            let oldest = k.saturating_sub(ring) + 1;
            let last = cut_ids[k - 1].to_string();
            let pick = kind as usize / 5 % k;
            let (name, opts, exact_after) = match kind % 5 {
                0 => ("no id", ConnectOptions::default(), None),
                1 => ("foreign id", ConnectOptions::resume("0f0f0f0f-7"), None),
                2 => (
                    "earlier id",
                    ConnectOptions::resume(cut_ids[pick].to_string()),
                    (pick + 2 >= oldest).then_some(pick + 1),
                ),
                3 => (
                    "prelude=always",
                    ConnectOptions::resume(last).with_prelude(),
                    None,
                ),
                _ => (
                    "prelude=always, no id",
                    ConnectOptions::default().with_prelude(),
                    None,
                ),
            };
            let mut stream = broker.connect(&s, opts).unwrap();
            let mut body = capture(&mut stream, QUIET).await.0;
            for e in &events[k..] {
                broker.publish(&s, e).unwrap();
                body.extend(capture(&mut stream, QUIET).await.0);
            }
            let epoch = cut_ids[0].epoch.to_string();
            let seen = match exact_after {
                // An exact resume continues the client's own stream.
                Some(m) => [stored_body(&epoch, &events[..m]), body.clone()].concat(),
                None => body.clone(),
            };
            if let Err(e) = tether_agui::verify_sse(&seen) {
                let what = format!("{name} after event {k} (pick {pick})");
                return Err(fail(&what, ring, n, e, &seen));
            }
            if exact_after.is_none() && kept < 2 && (case + i as u64).is_multiple_of(5) {
                kept += 1;
                SAMPLE
                    .lock()
                    .unwrap()
                    .push((format!("prop-{case}-cut{i}"), body));
            }
        }

        // Every id, and none, once the sequence is complete.
        let epoch = ids[0].epoch.to_string();
        let oldest = n.saturating_sub(ring) + 1;
        let mut tries: Vec<(String, ConnectOptions, Option<usize>)> = vec![
            ("none".into(), ConnectOptions::default(), None),
            ("foreign".into(), ConnectOptions::resume("0f0f0f0f-7"), None),
        ];
        for (i, id) in ids.iter().enumerate() {
            tries.push((
                format!("id{}", i + 1),
                ConnectOptions::resume(id.to_string()),
                (i + 2 >= oldest).then_some(i + 1),
            ));
            tries.push((
                format!("id{}-always", i + 1),
                ConnectOptions::resume(id.to_string()).with_prelude(),
                None,
            ));
        }
        for (name, opts, exact_after) in tries {
            let mut stream = broker.connect(&s, opts).unwrap();
            let (body, _) = capture(&mut stream, QUIET).await;
            drop(stream);
            let seen = match exact_after {
                Some(m) => [stored_body(&epoch, &events[..m]), body.clone()].concat(),
                None => body.clone(),
            };
            if let Err(e) = tether_agui::verify_sse(&seen) {
                return Err(fail(
                    &format!("resume {name} at the end"),
                    ring,
                    n,
                    e,
                    &seen,
                ));
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/resume_property.txt"),
            ),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_resume_point_gets_a_valid_stream(
        choices in prop::collection::vec((any::<u8>(), any::<u8>()), 10..90),
        ring in 3usize..16,
        cuts in prop::collection::vec((any::<u16>(), any::<u8>()), 6..12),
        case in any::<u64>(),
    ) {
        let events = Script::build(&choices);
        prop_assume!(!events.is_empty());
        if std::env::var_os("SHOW_SCRIPTS").is_some() {
            let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap_or("?")).collect();
            eprintln!("ring {ring}: {} events: {}", events.len(), kinds.join(" "));
            if std::env::var_os("SHOW_JSON").is_some() { for e in &events { eprintln!("  {e}"); } }
        }
        check_case(&events, ring, &cuts, case)?;
    }
}

#[test]
fn a_sample_of_the_property_streams_passes_the_official_client() {
    // Runs after (or alongside) the property; gathers its own sample when run alone.
    if SAMPLE.lock().unwrap().is_empty() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for case in 0..12u64 {
            let choices = prop::collection::vec((any::<u8>(), any::<u8>()), 40..90)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let events = Script::build(&choices);
            let cuts: Vec<(u16, u8)> = (0..10u16)
                .map(|i| (i * 37 + case as u16, (i * 13) as u8))
                .collect();
            check_case(&events, 3 + (case as usize % 8), &cuts, case * 5).unwrap();
        }
    }
    let sample: Vec<(String, Vec<u8>)> = SAMPLE.lock().unwrap().drain(..).take(60).collect();
    assert!(!sample.is_empty());
    if node_missing() {
        return;
    }
    install();
    let files: Vec<_> = sample
        .iter()
        .map(|(name, body)| write_capture("agui-property", name, body))
        .collect();
    let verdicts = check_streams(&files);
    for verdict in verdicts.values() {
        assert!(verdict.starts_with("PASS"), "{verdict}");
    }
    eprintln!(
        "official client: {} property responses PASS",
        verdicts.len()
    );
}
