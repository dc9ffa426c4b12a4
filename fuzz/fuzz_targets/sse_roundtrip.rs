//! Any data and name attempt survive `encode_event` and an independent WHATWG SSE parser, modulo CR/CRLF -> LF; names with CR, LF or NUL are refused.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_replay::fuzzing::sse_roundtrip(data));
