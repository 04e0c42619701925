#![no_main]
//! See `evsock_fuzz::targets::hub` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| evsock_fuzz::targets::hub::run(data));
