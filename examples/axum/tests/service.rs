//! The example as a client sees it: a job's progress arrives in order and drains on SIGTERM;
//! closed streams free their connections at once.

use tether_conformance::examples;

const EXE: &str = env!("CARGO_BIN_EXE_example-axum");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reports_its_progress_in_order_then_finishes() {
    examples::job_reports_progress_then_drains(EXE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_streams_are_noticed_at_once() {
    examples::closed_streams_are_noticed_at_once(EXE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_need_the_printed_token() {
    examples::streams_need_the_printed_token(EXE).await;
}
