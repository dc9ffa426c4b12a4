//! JSON bytes -> `Event::json` -> `frame::encode_event` -> an SSE parser gives back the same JSON.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_replay::fuzzing::publish_body(data));
