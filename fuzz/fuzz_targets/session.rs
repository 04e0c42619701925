#![no_main]
//! See `evsock_fuzz::targets::session` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| evsock_fuzz::targets::session::run(data));
