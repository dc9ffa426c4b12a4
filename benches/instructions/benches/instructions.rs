//! Instruction counts (callgrind's `Ir`) of the broker's hot paths, a regression figure that
//! does not move with the machine's load as wall time does. Run it with
//! `bash benches/instructions.sh`, which installs the matching `iai-callgrind-runner` and
//! compares the counts with the committed baseline (see `benches/README.md`).
//!
//! | benchmark | measured call |
//! |---|---|
//! | `publish` | one `Broker::publish_event` of a 200-byte AG-UI-like event into a session whose ring of 1024 events is full |
//! | `read_coalesced_chunk` | one poll of a connected `EventStream` after 20 events were published: the chunk that coalesces them |
//! | `resume` | `Broker::connect` with a `Last-Event-ID` from the middle of a full ring of 1024 events, then the polls that give the opening `retry:` line and the first chunk of the replay |
//! | `tracker_publish` | one publish of a `TEXT_MESSAGE_CONTENT` delta through the AG-UI run tracker, into a run opened with `RUN_STARTED` and `TEXT_MESSAGE_START` and 20 deltas in |
//! | `tracker_run_start` | one `RUN_STARTED` through the AG-UI run tracker, in a session whose history holds 200 finished runs, each with one completed message |
//!
//! Each benchmark's state is built by its `setup` function (the fixtures of this crate's
//! library, tested by `cargo test`); callgrind counts only the benchmark function, and what
//! it returns (the broker, the stream, the chunk) is dropped after the count stops.
//!
//! Why this crate and not `crates/tether-core/benches`: `tracker_publish` needs
//! tether-agui, which depends on tether-core, so a tether-core bench cannot use it; and a
//! publishable library (tether-core or tether-agui) would carry a dev-dependency and a bench
//! of another crate's paths. This harness crate, beside the load harness in `benches/`,
//! depends on both, keeps iai-callgrind out of every library's manifest, and gives all five
//! counts one binary, one run of valgrind's runner and one baseline.
//!
//! The bench compiles without the runner; only running it needs `iai-callgrind-runner` (the
//! same version as the `iai-callgrind` library) and valgrind.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use iai_callgrind::{library_benchmark, library_benchmark_group, main};
use tether_core::{EventId, EventStream};
use tether_instructions::{
    Harness, PublishFixture, ReadFixture, ResumeFixture, TrackerFixture, poll_once, publish_setup,
    read_setup, ready, resume_setup, run_start_setup, tracker_setup,
};

#[library_benchmark]
#[bench::ring_full(args = (), setup = publish_setup)]
fn publish(f: PublishFixture) -> (Harness, EventId) {
    let PublishFixture { harness, event } = f;
    let id = harness
        .broker
        .publish_event(&harness.session, event)
        .expect("publish");
    (harness, id)
}

#[library_benchmark]
#[bench::events_20(args = (20), setup = read_setup)]
fn read_coalesced_chunk(mut f: ReadFixture) -> (ReadFixture, Bytes) {
    let chunk = ready(poll_once(&mut f.stream));
    (f, chunk)
}

#[library_benchmark]
#[bench::from_512_of_1024(args = (512), setup = resume_setup)]
fn resume(f: ResumeFixture) -> (ResumeFixture, (EventStream, Bytes, Bytes)) {
    let read = tether_instructions::resume(black_box(&f));
    (f, read)
}

#[library_benchmark]
#[bench::after_20_deltas(args = (20), setup = tracker_setup)]
fn tracker_publish(f: TrackerFixture) -> (Harness, EventId) {
    publish_tracked(f)
}

#[library_benchmark]
#[bench::after_200_runs(args = (200), setup = run_start_setup)]
fn tracker_run_start(f: TrackerFixture) -> (Harness, EventId) {
    publish_tracked(f)
}

/// Publishes the fixture's event into its tracked session, which must accept it.
fn publish_tracked(f: TrackerFixture) -> (Harness, EventId) {
    let TrackerFixture { harness, event } = f;
    let id = harness
        .broker
        .publish_event(&harness.session, event)
        .expect("the tracker accepts the event");
    (harness, id)
}

library_benchmark_group!(
    name = hot_paths;
    benchmarks = publish, read_coalesced_chunk, resume, tracker_publish, tracker_run_start
);

main!(library_benchmark_groups = hot_paths);
