//! `LastEventId::parse` never panics, refuses exactly what breaks the id grammar, and valid ids round-trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_replay::fuzzing::last_event_id(data));
