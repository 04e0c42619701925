#![no_main]
//! See `evsock_fuzz::targets::utf8` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| evsock_fuzz::targets::utf8::run(data));
