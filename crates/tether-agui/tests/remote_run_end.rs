//! A run ended with another agent's own `RUN_FINISHED` (a proxy forwarding a remote
//! agent): the ids become the run's, and interrupts become approvals with their ids.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tether_agui::{AguiRuns, Interrupt, RunFinished, RunFinishedOutcome};
use tether_core::{ApprovalStatus, Broker, ConnectOptions, Decision};

async fn whole_stream(broker: &Broker, thread: &str) -> Vec<u8> {
    let mut stream = broker
        .connect(&sid(thread), ConnectOptions::default())
        .unwrap();
    capture(&mut stream, QUIET).await.0
}

#[tokio::test(start_paused = true)]
async fn the_remote_agents_ids_give_way_to_the_runs() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let mut run = runs.start_run("t-remote", "run-1").unwrap();
    run.text("m1", "done").unwrap();
    run.finish_with(RunFinished {
        thread_id: "elsewhere".into(),
        run_id: "the-agents-own-id".into(),
        result: Some(json!({"ok": true})),
        ..Default::default()
    })
    .unwrap();
    assert!(!runs.is_busy("t-remote"));
    let body = whole_stream(&broker, "t-remote").await;
    assert_valid(&body);
    let last = data(&body).pop().unwrap();
    assert_eq!(
        (&last["threadId"], &last["runId"], &last["result"]),
        (&json!("t-remote"), &json!("run-1"), &json!({"ok": true}))
    );
}

#[tokio::test(start_paused = true)]
async fn remote_interrupts_become_approvals_with_their_ids() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let mut run = runs.start_run("t-int", "run-1").unwrap();
    let interrupts = vec![
        Interrupt {
            id: "approve-1".into(),
            reason: "tool_approval".into(),
            tool_call_id: None,
            ..Default::default()
        },
        Interrupt {
            // Not an approval id tether can use: passed on as it is.
            id: "has spaces".into(),
            reason: "input".into(),
            ..Default::default()
        },
    ];
    let created = run
        .finish_interrupted(
            RunFinished {
                outcome: Some(RunFinishedOutcome::Interrupt { interrupts }),
                ..Default::default()
            },
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(created, ["approve-1"]);
    let info = broker.approval(&sid("t-int"), "approve-1").unwrap();
    assert_eq!(info.status, ApprovalStatus::Pending);
    let body = whole_stream(&broker, "t-int").await;
    assert_valid(&body);
    let last = data(&body).pop().unwrap();
    let listed = &last["outcome"]["interrupts"];
    assert_eq!(listed[0]["id"], "approve-1");
    assert_eq!(listed[0]["expiresAt"], info.expires_at.as_str());
    assert_eq!(listed[1]["id"], "has spaces");
    assert!(listed[1].get("expiresAt").is_none());
    // The decision route answers it like any approval.
    broker
        .decide(&sid("t-int"), "approve-1", Decision::approve())
        .unwrap();
    let info = broker.approval(&sid("t-int"), "approve-1").unwrap();
    assert_ne!(info.status, ApprovalStatus::Pending);
}
