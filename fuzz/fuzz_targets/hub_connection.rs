//! The hub's HTTP/1.1 connection loop: any bytes in, no panic, only well-framed responses
//! out, and a refused request's body never read.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_replay::fuzzing::hub_connection(data));
