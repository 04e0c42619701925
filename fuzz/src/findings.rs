//! How a target reports a broken property.
//!
//! A violation panics, which libFuzzer records as a crash. Violations that
//! are already known, have a reproducer in `fuzz/regressions/` and wait for
//! an engine fix are listed in [`OPEN`]: while fuzzing, an input that hits
//! one of them is abandoned quietly (so a long campaign keeps looking for
//! new bugs instead of rediscovering the old one), but the regression
//! replay runs in strict mode, where they panic like any other.

use std::cell::Cell;

/// Known, reported violations awaiting an engine fix, by finding id.
/// Remove an id once the engine is fixed; the regression test then demands
/// that its reproducer passes.
pub const OPEN: &[&str] = &[];

thread_local! {
    static STRICT: Cell<bool> = const { Cell::new(false) };
}

/// Makes known open findings panic on this thread (regression replay).
pub fn set_strict(on: bool) {
    STRICT.with(|s| s.set(on));
}

/// Returned when an input hit a known open finding and was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop;

/// Reports a broken property. Panics unless `id` is a known open finding
/// and we are fuzzing; then returns [`Stop`] for the caller to bail out.
#[track_caller]
pub fn violation(id: &'static str, msg: impl std::fmt::Display) -> Stop {
    if OPEN.contains(&id) && !STRICT.with(|s| s.get()) {
        return Stop;
    }
    panic!("[{id}] {msg}");
}

/// `ensure!(cond, "id", "format", args..)`: a violation unless `cond`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $id:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::findings::violation($id, format!($($fmt)+)));
        }
    };
}
