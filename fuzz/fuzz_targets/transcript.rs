//! The replay transcript parser never panics, and what it accepts writes back to the same transcript.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_replay::fuzzing::transcript(data));
