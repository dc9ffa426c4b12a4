//! Approvals as AG-UI interrupts: the run ends with an interrupt outcome, the
//! decision comes through the decision route or a `resume` entry, and the agent
//! continues.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tether_agui::{
    AguiError, AguiRuns, ClientRun, ResumeEntry, ResumeStatus, RunAgentInput, RunPublisher,
};
use tether_core::{ApprovalStatus, Broker, ConnectOptions, Decision};

fn input(
    thread: &str,
    run: &str,
    resume: Vec<(String, ResumeStatus, Option<serde_json::Value>)>,
) -> RunAgentInput {
    RunAgentInput {
        thread_id: thread.into(),
        run_id: run.into(),
        resume: (!resume.is_empty()).then(|| {
            resume
                .into_iter()
                .map(|(id, status, payload)| ResumeEntry {
                    interrupt_id: id,
                    status,
                    payload,
                    metadata: None,
                })
                .collect()
        }),
        ..Default::default()
    }
}

/// An agent that streams a message, proposes a tool call and asks for approval.
fn propose(
    runs: &AguiRuns,
    thread: &str,
    timeout: Duration,
) -> (RunPublisher, tether_core::ApprovalHandle) {
    let mut run = runs.start_run(thread, "run-1").unwrap();
    run.text("m1", "I can delete the file.").unwrap();
    run.tool_call_start("tc1", "delete_file", Some("m1"))
        .unwrap();
    run.tool_call_args("tc1", "{\"path\":\"/tmp/x\"}").unwrap();
    run.tool_call_end("tc1").unwrap();
    let handle = run
        .request_tool_approval("tc1", "approval", json!({"path": "/tmp/x"}), timeout)
        .unwrap();
    (run, handle)
}

async fn whole_stream(broker: &Broker, thread: &str) -> Vec<u8> {
    let mut stream = broker
        .connect(&sid(thread), ConnectOptions::default())
        .unwrap();
    capture(&mut stream, QUIET).await.0
}

#[tokio::test(start_paused = true)]
async fn the_run_ends_with_an_interrupt_naming_the_approval() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let (run, handle) = propose(&runs, "t-outcome", Duration::from_secs(60));
    assert!(!run.is_open());
    assert!(!runs.is_busy("t-outcome"));

    let body = whole_stream(&broker, "t-outcome").await;
    assert_valid(&body);
    let docs = data(&body);
    let last = docs.last().unwrap();
    assert_eq!(last["type"], "RUN_FINISHED");
    let interrupt = &last["outcome"]["interrupts"][0];
    let info = broker.approval(&sid("t-outcome"), handle.id()).unwrap();
    assert_eq!(last["outcome"]["type"], "interrupt");
    assert_eq!(interrupt["id"], handle.id());
    assert_eq!(interrupt["reason"], "approval");
    assert_eq!(interrupt["toolCallId"], "tc1");
    assert_eq!(interrupt["expiresAt"], info.expires_at.as_str());
    assert_eq!(interrupt["metadata"]["payload"], json!({"path": "/tmp/x"}));
    // tether wrote no approval notice of its own.
    assert!(!types(&body).iter().any(|t| t.starts_with("CUSTOM")));
}

#[tokio::test(start_paused = true)]
async fn a_decision_through_the_route_lets_the_agent_continue_in_its_own_run() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let (mut run, handle) = propose(&runs, "t-route", Duration::from_secs(60));
    broker
        .decide(&sid("t-route"), handle.id(), Decision::approve())
        .unwrap();
    assert_eq!(handle.await, ApprovalStatus::Approved { reason: None });
    assert!(run.next_run(Duration::ZERO).await.unwrap().is_none());
    assert_ne!(run.run_id(), "run-1");
    run.tool_call_result("r1", "tc1", "deleted").unwrap();
    run.text("m2", "Done.").unwrap();
    run.finish(None).unwrap();

    let body = whole_stream(&broker, "t-route").await;
    assert_valid(&body);
    let docs = data(&body);
    let second_start = docs
        .iter()
        .filter(|d| d["type"] == "RUN_STARTED")
        .nth(1)
        .unwrap();
    assert_eq!(second_start["parentRunId"], "run-1");
}

#[tokio::test(start_paused = true)]
async fn a_resume_entry_decides_once_and_the_waiting_agent_continues_in_that_run() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let (mut run, handle) = propose(&runs, "t-resume", Duration::from_secs(60));
    let approval_id = handle.id().to_owned();
    let agent = tokio::spawn(async move {
        let outcome = handle.await;
        let input = run.next_run(Duration::from_secs(30)).await?;
        run.text("m2", &format!("{outcome:?}"))?;
        run.finish(None)?;
        Ok::<_, AguiError>((outcome, input))
    });
    tokio::task::yield_now().await;

    let answer = input(
        "t-resume",
        "run-2",
        vec![(
            approval_id.clone(),
            ResumeStatus::Resolved,
            Some(json!({"approved": false, "reason": "keep it"})),
        )],
    );
    let started = runs.reserve(&answer).unwrap().start(answer).unwrap();
    assert!(matches!(started, ClientRun::Resumed { .. }), "{started:?}");
    let (outcome, input) = agent.await.unwrap().unwrap();
    assert_eq!(
        outcome,
        ApprovalStatus::Rejected {
            reason: Some("keep it".into())
        }
    );
    assert_eq!(input.unwrap().run_id, "run-2");
    assert!(started.end().get().is_some());

    // The same answer again is accepted as it stands (already decided).
    let again = input_again(&approval_id);
    let started = runs.reserve(&again).unwrap().start(again).unwrap();
    let ClientRun::New { mut publisher, .. } = started else {
        panic!("no agent waits any more: {started:?}");
    };
    publisher.finish(None).unwrap();
    let body = whole_stream(&broker, "t-resume").await;
    assert_valid(&body);
}

fn input_again(approval_id: &str) -> RunAgentInput {
    input(
        "t-resume",
        "run-3",
        vec![(approval_id.to_owned(), ResumeStatus::Resolved, None)],
    )
}

#[tokio::test(start_paused = true)]
async fn a_resume_for_an_approval_decided_through_the_route_is_accepted() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let (mut run, handle) = propose(&runs, "t-both", Duration::from_secs(60));
    let approval_id = handle.id().to_owned();
    broker
        .decide(&sid("t-both"), &approval_id, Decision::approve())
        .unwrap();
    let agent = tokio::spawn(async move {
        let outcome = handle.await;
        let input = run.next_run(Duration::from_secs(30)).await?;
        run.finish(None)?;
        Ok::<_, AguiError>((outcome, input.is_some()))
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answer = input(
        "t-both",
        "run-2",
        vec![(approval_id, ResumeStatus::Resolved, Some(json!(false)))],
    );
    let started = runs.reserve(&answer).unwrap().start(answer).unwrap();
    assert!(matches!(started, ClientRun::Resumed { .. }));
    // The route's decision stands.
    assert_eq!(
        agent.await.unwrap().unwrap(),
        (ApprovalStatus::Approved { reason: None }, true)
    );
}

#[tokio::test(start_paused = true)]
async fn after_the_deadline_resolved_fails_the_run_and_cancelled_continues_the_thread() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let (mut run, handle) = propose(&runs, "t-late", Duration::from_secs(5));
    let approval_id = handle.id().to_owned();
    let agent = tokio::spawn(async move {
        let outcome = handle.await;
        let input = run.next_run(Duration::from_secs(600)).await?;
        run.text("m2", "The approval timed out; nothing was deleted.")?;
        run.finish(None)?;
        Ok::<_, AguiError>((outcome, input.map(|i| i.run_id)))
    });
    tokio::time::sleep(Duration::from_secs(6)).await;

    let late = input(
        "t-late",
        "run-2",
        vec![(
            approval_id.clone(),
            ResumeStatus::Resolved,
            Some(json!(true)),
        )],
    );
    let mut stream = broker
        .connect(
            &sid("t-late"),
            ConnectOptions::resume(broker.head(&sid("t-late")).unwrap().to_string()),
        )
        .unwrap();
    let started = runs.reserve(&late).unwrap().start(late).unwrap();
    assert!(matches!(started, ClientRun::Failed { .. }), "{started:?}");
    let (body, _) = capture(&mut stream, QUIET).await;
    assert_valid(&body);
    let docs = data(&body);
    assert_eq!(types(&body), ["RUN_STARTED", "RUN_ERROR"]);
    assert_eq!(docs[1]["code"], "interrupt_expired");
    assert!(docs[1]["message"].as_str().unwrap().contains(&approval_id));
    assert!(!runs.is_busy("t-late"));

    let cancel = input(
        "t-late",
        "run-3",
        vec![(approval_id, ResumeStatus::Cancelled, None)],
    );
    let started = runs.reserve(&cancel).unwrap().start(cancel).unwrap();
    assert!(matches!(started, ClientRun::Resumed { .. }), "{started:?}");
    let (outcome, run_id) = agent.await.unwrap().unwrap();
    assert_eq!(outcome, ApprovalStatus::TimedOut);
    assert_eq!(run_id.as_deref(), Some("run-3"));
    assert_valid(&whole_stream(&broker, "t-late").await);
}

#[tokio::test(start_paused = true)]
async fn a_second_concurrent_run_on_a_thread_is_refused() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let _run = runs.start_run("t-busy", "run-1").unwrap();
    let second = input("t-busy", "run-2", vec![]);
    assert!(matches!(runs.reserve(&second), Err(AguiError::Busy(_))));
    assert!(matches!(
        runs.start_run("t-busy", "run-3"),
        Err(AguiError::Busy(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_stops_mid_run_leaves_a_run_error_and_a_free_thread() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let run = runs.start_run("t-drop", "run-1").unwrap();
    run.text_start("m1").unwrap();
    run.text_content("m1", "half").unwrap();
    drop(run);
    assert!(!runs.is_busy("t-drop"));
    let body = whole_stream(&broker, "t-drop").await;
    assert_valid(&body);
    let docs = data(&body);
    assert_eq!(docs.last().unwrap()["code"], "agent_stopped");
    let mut next = runs.start_run("t-drop", "run-2").unwrap();
    next.finish(None).unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_approval_while_a_tool_call_is_open_is_refused_and_withdrawn() {
    let broker = tracked(Broker::builder());
    let runs = AguiRuns::new(broker.clone());
    let mut run = runs.start_run("t-open", "run-1").unwrap();
    run.tool_call_start("tc1", "f", None).unwrap();
    let err = run
        .request_tool_approval("tc1", "approval", json!({}), Duration::from_secs(60))
        .unwrap_err();
    assert!(
        err.to_string().contains("tool calls are still active"),
        "{err}"
    );
    assert!(run.is_open());
    run.tool_call_end("tc1").unwrap();
    run.finish(None).unwrap();
    assert_valid(&whole_stream(&broker, "t-open").await);
}
