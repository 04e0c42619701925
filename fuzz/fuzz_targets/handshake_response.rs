#![no_main]
//! See `evsock_fuzz::targets::handshake_response` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| evsock_fuzz::targets::handshake_response::run(data));
