//! The Rust port of the client's checks gives the stream fixtures the
//! verdicts the official client gave them (`tests/data/streams/`, named
//! `pass-*` and `fail-*` after the official verdict).

use std::path::PathBuf;

#[test]
fn the_port_agrees_with_the_official_client_on_every_fixture() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/streams");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("streams directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".sse") {
            continue;
        }
        let body = std::fs::read(&path).expect("reads the fixture");
        let verdict = tether_agui::verify_sse(&body);
        if name.starts_with("pass-") {
            assert!(verdict.is_ok(), "{name}: {verdict:?}");
        } else {
            assert!(verdict.is_err(), "{name} should fail");
        }
        checked += 1;
    }
    assert!(checked >= 20, "{checked} fixtures");
}

#[test]
fn the_port_reports_the_clients_reasons() {
    let body = b"data: {\"type\":\"RUN_STARTED\",\"threadId\":\"t\",\"runId\":\"r\"}\n\n\
data: {\"type\":\"RUN_STARTED\",\"threadId\":\"t\",\"runId\":\"r\"}\n\n";
    let err = tether_agui::verify_sse(body).unwrap_err().to_string();
    assert!(err.contains("while a run is still active"), "{err}");
    let body = b"data: {\"ts\":1}\n\n";
    let err = tether_agui::verify_sse(body).unwrap_err().to_string();
    assert!(err.contains("carries no event type"), "{err}");
}
