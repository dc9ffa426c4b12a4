//! `SessionId::new` agrees with a plain reference grammar.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_replay::fuzzing::session_id(data));
