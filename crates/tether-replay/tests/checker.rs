//! The checker fails, with a precise message, for each rule a broken server or client could
//! break; and stays quiet for the real broker.
mod common;

use std::sync::Arc;

use common::*;
use tether_replay::{InProcess, Rule, Timing, Transcript, replay_in_process};

fn parse(text: &str) -> Transcript {
    Transcript::parse(text).expect("a valid transcript")
}

const THREE: &str = r#"
{"at_ms":0,"op":"connect","client":"c","session":"s"}
{"at_ms":10,"op":"publish","session":"s","event":{"n":1}}
{"at_ms":20,"op":"publish","session":"s","event":{"n":2}}
{"at_ms":30,"op":"publish","session":"s","event":{"n":3}}
{"op":"read","client":"c"}
"#;

#[test]
fn the_real_broker_breaks_no_rule() {
    replay_in_process(&parse(THREE)).assert_finished();
    replay_with(&parse(THREE), faithful()).assert_finished();
}

#[test]
fn a_lost_event_is_a_silent_gap_at_the_step_that_showed_it() {
    let report = replay_with(&parse(THREE), drop_frames_with(r#""n":2"#));
    let gaps: Vec<_> = report.of(Rule::Gap).collect();
    assert_eq!(gaps.len(), 1, "{report}");
    let v = gaps[0];
    assert_eq!(v.client.as_deref(), Some("c"));
    assert!(v.event.as_deref().unwrap().ends_with("-3"), "{v}");
    assert!(
        v.message
            .contains("1 event(s) skipped without a tether.resync"),
        "{v}"
    );
    assert_eq!(v.location, "step 4 (line 5: publish)", "{v}");
}

#[test]
fn a_duplicate_is_reported() {
    let dup = Arc::new(|frames: Vec<String>| {
        frames
            .into_iter()
            .flat_map(|f| {
                if f.contains(r#""n":2"#) {
                    vec![f.clone(), f]
                } else {
                    vec![f]
                }
            })
            .collect()
    });
    let report = replay_with(&parse(THREE), dup);
    let v: Vec<_> = report.of(Rule::Duplicate).collect();
    assert_eq!(v.len(), 1, "{report}");
    assert!(v[0].message.contains("a second time"), "{}", v[0]);
}

#[test]
fn reordering_is_reported() {
    // Publish in one batch so the frames arrive in one chunk, then swap two.
    let t = parse(
        r#"
{"op":"publish","session":"s","events":[{"n":1},{"n":2},{"n":3}]}
{"op":"connect","client":"c","session":"s"}
{"op":"read","client":"c"}
"#,
    );
    let swap = Arc::new(|mut frames: Vec<String>| {
        if let (Some(a), Some(b)) = (
            frames.iter().position(|f| f.contains(r#""n":2"#)),
            frames.iter().position(|f| f.contains(r#""n":3"#)),
        ) {
            frames.swap(a, b);
        }
        frames
    });
    let report = replay_with(&t, swap);
    let v: Vec<_> = report.of(Rule::Order).collect();
    assert_eq!(v.len(), 1, "{report}");
    assert!(v[0].message.contains("out of order"), "{}", v[0]);
}

const SLOW: &str = r#"
{"op":"config","ring_max_events":2}
{"at_ms":0,"op":"connect","client":"c","session":"s"}
{"at_ms":0,"op":"stall","client":"c","ms":1000}
{"at_ms":10,"op":"publish","session":"s","events":[{"n":1},{"n":2},{"n":3},{"n":4},{"n":5}]}
{"at_ms":2000,"op":"expect_resync","client":"c","reason":"evicted"}
{"op":"expect_events","client":"c","events":[{"n":4},{"n":5}]}
"#;

#[test]
fn a_gap_after_a_resync_is_fine_but_not_without_it() {
    replay_in_process(&parse(SLOW)).assert_finished();
    let report = replay_with(&parse(SLOW), drop_frames_with("tether.resync"));
    let gaps: Vec<_> = report.of(Rule::Gap).collect();
    assert_eq!(gaps.len(), 1, "{report}");
    assert!(
        gaps[0]
            .message
            .contains("an id-only frame moved the client from the start to"),
        "{}",
        gaps[0]
    );
    let exp: Vec<_> = report.of(Rule::Expectation).collect();
    assert_eq!(exp.len(), 1, "{report}");
    assert!(
        exp[0]
            .message
            .contains("expected a tether.resync signal within 5000 ms"),
        "{}",
        exp[0]
    );
}

#[test]
fn a_resync_that_lies_about_where_it_resumes_is_reported() {
    let lie = Arc::new(|frames: Vec<String>| {
        frames
            .into_iter()
            .map(|f| {
                if let Some(i) = f.find("\"resumeFrom\":\"") {
                    let start = i + "\"resumeFrom\":\"".len();
                    let end = start + f[start..].find('"').unwrap();
                    let id = &f[start..end];
                    let (epoch, seq) = id.rsplit_once('-').unwrap();
                    let other = format!("{epoch}-{}", seq.parse::<u64>().unwrap() + 1);
                    format!("{}{other}{}", &f[..start], &f[end..])
                } else {
                    f
                }
            })
            .collect()
    });
    let report = replay_with(&parse(SLOW), lie);
    let v: Vec<_> = report.of(Rule::Resync).collect();
    assert_eq!(v.len(), 1, "{report}");
    assert!(
        v[0].message.contains("said the stream continues from"),
        "{}",
        v[0]
    );
}

#[test]
fn changed_content_is_reported_with_the_publishing_step() {
    let change = Arc::new(|frames: Vec<String>| {
        frames
            .into_iter()
            .map(|f| f.replace(r#""n":2"#, r#""n":22"#))
            .collect()
    });
    let report = replay_with(&parse(THREE), change);
    let v: Vec<_> = report.of(Rule::Content).collect();
    assert_eq!(v.len(), 1, "{report}");
    assert!(
        v[0].message.contains(r#"received {"n":22}"#)
            && v[0].message.contains("step 3 (line 4: publish)"),
        "{}",
        v[0]
    );
}

#[test]
fn silence_longer_than_the_keepalive_is_reported() {
    let t = parse(
        r#"
{"op":"config","keepalive_ms":15000}
{"at_ms":0,"op":"connect","client":"c","session":"s"}
{"at_ms":40000,"op":"drop","client":"c"}
"#,
    );
    replay_in_process(&t).assert_finished();
    // A broker without heartbeats, checked against a transcript that expects them.
    let report = tether_replay::block_on_paused(async {
        let broker = tether_core::Broker::builder()
            .without_heartbeats()
            .start()
            .expect("valid config");
        tether_replay::run(&mut InProcess::new(broker), &t, Timing::exact()).await
    });
    let v: Vec<_> = report.of(Rule::Silence).collect();
    assert_eq!(v.len(), 1, "{report}");
    assert!(
        v[0].message.contains("nothing arrived for 40000 ms")
            && v[0]
                .message
                .contains("keepalive interval of 15000 ms plus 1000 ms"),
        "{}",
        v[0]
    );
    // A stall is not silence.
    let stalled = parse(
        r#"
{"at_ms":0,"op":"connect","client":"c","session":"s"}
{"at_ms":1000,"op":"stall","client":"c","ms":50000}
{"at_ms":52000,"op":"drop","client":"c"}
"#,
    );
    replay_in_process(&stalled).assert_finished();
}

const APPROVAL: &str = r#"
{"op":"connect","client":"ui","session":"s"}
{"op":"request_approval","session":"s","approval":"a1","payload":{"tool":"rm"}}
{"op":"decide","session":"s","approval":"a1","approved":true}
{"op":"decide","session":"s","approval":"a1","approved":false}
{"op":"expect_approval","session":"s","approval":"a1","outcome":"approved"}
"#;

#[test]
fn an_approval_accepted_twice_is_reported() {
    replay_in_process(&parse(APPROVAL)).assert_finished();
    let t = parse(APPROVAL);
    let report = tether_replay::block_on_paused(async {
        let mut d = Faulty {
            inner: InProcess::from_settings(&t.settings),
            fault: faithful(),
            always_accept: true,
        };
        tether_replay::run(&mut d, &t, Timing::exact()).await
    });
    let v: Vec<_> = report.of(Rule::Approval).collect();
    assert_eq!(v.len(), 1, "{report}");
    assert!(
        v[0].message
            .contains("decided a second time and the server accepted it"),
        "{}",
        v[0]
    );
    assert_eq!(v[0].location, "step 4 (line 5: decide)");
}

#[test]
fn a_superseded_stream_must_say_so_and_end() {
    let t = parse(
        r#"
{"op":"connect","client":"a","session":"s"}
{"op":"supersede","client":"a","by":"b"}
{"op":"publish","session":"s","event":{"n":1}}
{"op":"expect_events","client":"b","events":[{"n":1}]}
"#,
    );
    replay_in_process(&t).assert_finished();
    let report = replay_with(&t, drop_frames_with("tether.superseded"));
    let v: Vec<_> = report.of(Rule::Supersede).collect();
    assert_eq!(v.len(), 1, "{report}");
    assert!(
        v[0].message
            .contains("ended without a tether.superseded signal"),
        "{}",
        v[0]
    );
}

/// Rewrites a `tether.*` CUSTOM data frame without an id into the comment form an AG-UI
/// session ends a stream with between runs: `: tether.superseded {}` (then the `retry:`).
fn as_comment(frames: Vec<String>) -> Vec<String> {
    frames
        .into_iter()
        .map(|f| {
            let blocks = tether_core::sse_parse::parse(f.as_bytes());
            let [block] = blocks.as_slice() else {
                return f;
            };
            match (block.id.as_deref(), block.signal().as_deref()) {
                (None, Some(name @ ("tether.superseded" | "tether.drain"))) => {
                    let value = block.signal_value().unwrap_or_default();
                    format!(": {name} {value}\nretry: 30000\n\n")
                }
                _ => f,
            }
        })
        .collect()
}

#[test]
fn the_agui_comment_form_of_superseded_ends_a_stream_too() {
    let t = parse(
        r#"
{"op":"connect","client":"a","session":"s"}
{"op":"publish","session":"s","event":{"n":1}}
{"op":"read","client":"a"}
{"op":"supersede","client":"a","by":"b"}
{"op":"expect_ended","client":"a","superseded":true}
{"op":"expect_events","client":"b","events":[{"n":1}]}
"#,
    );
    let report = replay_with(&t, Arc::new(as_comment));
    report.assert_finished();
    let a = &report.log.clients["a"];
    assert_eq!(a.signals("tether.superseded").len(), 1, "{report}");
    // The rewrite did happen: no superseded data frame reached the client.
    assert!(
        a.connections[0]
            .blocks()
            .all(|(_, b)| b.data.as_deref().is_none_or(|d| !d.contains("superseded"))),
        "{report}"
    );

    // Nothing at all where the signal should be: still a violation, in both rules.
    let report = replay_with(&t, drop_frames_with("tether.superseded"));
    let text = report.violations_text();
    assert_eq!(report.of(Rule::Supersede).count(), 1, "{report}");
    assert!(
        text.contains(
            "expected the stream to end with a tether.superseded signal; it ended without one"
        ),
        "{text}"
    );
}

#[test]
fn a_comment_that_merely_mentions_a_signal_is_not_one() {
    let t = parse(
        r#"
{"op":"connect","client":"a","session":"s"}
{"op":"supersede","client":"a","by":"b"}
{"op":"expect_ended","client":"a","superseded":true}
"#,
    );
    let report = replay_with(
        &t,
        Arc::new(|frames: Vec<String>| {
            frames
                .into_iter()
                .map(|f| {
                    if f.contains("tether.superseded") {
                        ": keepalive, not tether.superseded {}\n\n".to_owned()
                    } else {
                        f
                    }
                })
                .collect()
        }),
    );
    assert_eq!(report.of(Rule::Supersede).count(), 1, "{report}");
}

#[test]
fn expectations_say_what_was_expected_and_what_came() {
    let t = parse(
        r#"
{"op":"publish","session":"s","events":[{"n":1},{"n":2},{"n":3}]}
{"op":"connect","client":"c","session":"s"}
{"op":"expect_events","client":"c","events":[{"n":1},{"n":3},{"n":2}]}
{"op":"expect_events","client":"c","events":[{"n":4}],"within_ms":100}
{"op":"expect_ended","client":"c","within_ms":100}
{"op":"request_approval","session":"s","approval":"a1"}
{"op":"decide","session":"s","approval":"a1","approved":true,"expect":"expired"}
{"op":"expect_approval","session":"s","approval":"a1","outcome":"rejected","within_ms":100}
{"op":"supersede","client":"nobody","by":"c"}
"#,
    );
    let report = replay_in_process(&t);
    let msgs: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
    let want = [
        r#"[expectation] step 3 (line 4: expect_events c), client c, event "#,
        r#"event 2 of 3: expected {"n":3}, got {"n":2}"#,
        r#"[expectation] step 4 (line 5: expect_events c), client c: expected 1 event(s) within 100 ms, 0 arrived; missing from event 1: {"n":4}"#,
        "[expectation] step 5 (line 6: expect_ended c), client c: expected the server to end the stream within 100 ms; it is still open",
        "[expectation] step 7 (line 8: decide): deciding a1 was expected to answer expired, it answered Ok",
        "[expectation] step 8 (line 9: expect_approval): expected approval a1 to be rejected within 100 ms, it is approved",
        "[step] step 9 (line 10: supersede nobody), client nobody: nobody is not connected, so c cannot supersede it",
    ];
    let all = msgs.join("\n");
    for w in want {
        assert!(all.contains(w), "missing {w:?} in:\n{all}");
    }
    assert_eq!(report.violations.len(), 6, "{all}");
}

#[test]
fn a_fresh_client_after_eviction_gets_a_resync_first() {
    let t = parse(
        r#"
{"op":"config","ring_max_events":2}
{"op":"publish","session":"s","events":[{"n":1},{"n":2},{"n":3}]}
{"op":"connect","client":"late","session":"s"}
{"op":"expect_resync","client":"late","reason":"evicted"}
{"op":"expect_events","client":"late","events":[{"n":2},{"n":3}]}
{"op":"connect","client":"odd","session":"s","last_event_id":"msg_17"}
{"op":"expect_resync","client":"odd","reason":"unknown"}
{"op":"expect_events","client":"odd","events":[{"n":2},{"n":3}]}
"#,
    );
    replay_in_process(&t).assert_finished();
}
