//! C API for evsock: a sans-IO WebSocket engine behind opaque handles.
//!
//! The C header `include/evsock.h` is generated from this crate by cbindgen
//! (see `cbindgen.toml`); the doc comments here are the header's comments,
//! so they spell out the ownership and lifetime of every pointer.
//!
//! Every entry point:
//! - checks its pointer arguments for NULL and returns
//!   `EVSOCK_ERR_NULL_POINTER` instead of dereferencing them;
//! - runs behind `catch_unwind`, so a Rust panic comes back as
//!   `EVSOCK_ERR_PANIC` (and poisons the connection) instead of unwinding
//!   into C;
//! - records a human-readable message for `evsock_last_error` when it fails.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![allow(non_camel_case_types)]

mod config;
mod conn;
mod event;
mod handle;
mod hub;
mod rng;
mod session;
mod status;
mod util;

pub use config::*;
pub use conn::*;
pub use event::{evsock_event, evsock_event_type};
pub use hub::*;
pub use rng::evsock_fill_fn;
pub use session::*;
pub use status::evsock_status;

use std::ffi::c_char;

/// The library version ("MAJOR.MINOR.PATCH"), a static NUL-terminated
/// string owned by the library (never free it).
#[no_mangle]
pub extern "C" fn evsock_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A stable snake_case name for a status code (for example
/// "invalid_state"; engine errors use the names of the shared test
/// vectors), or "unknown" for a value that is not an `evsock_status`. The
/// string is static; never free it.
#[no_mangle]
pub extern "C" fn evsock_status_name(status: i32) -> *const c_char {
    let name = evsock_status::ALL
        .iter()
        .find(|s| **s as i32 == status)
        .map_or("unknown\0", |s| s.c_name());
    name.as_ptr().cast()
}

/// A description of the most recent failed call on the calling thread, as a
/// NUL-terminated UTF-8 string ("" if no call has failed yet). Successful
/// calls leave it unchanged. The string belongs to the library and stays
/// valid until the next evsock call on the same thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn evsock_last_error() -> *const c_char {
    status::last_error_ptr()
}

#[cfg(test)]
mod tests;
