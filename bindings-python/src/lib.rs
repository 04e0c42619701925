//! Python binding for evsock: the sans-IO WebSocket connection and the
//! event-vector session, as the `evsock._evsock` extension module. The
//! pure-Python package `evsock` (python/evsock) re-exports it and adds the
//! asyncio host.
//!
//! Nothing here may panic on bad input: every argument is checked and every
//! failure becomes a Python exception with a message.

use pyo3::prelude::*;

mod config;
mod convert;
mod errors;
mod events;
mod rng;
mod session;
mod value;
mod ws;

/// Milliseconds on the clock every `now` argument defaults to
/// (`time.monotonic()`, which asyncio's `loop.time()` also reads).
#[pyfunction]
fn now_ms(py: Python<'_>) -> PyResult<u64> {
    convert::clock_ms(py)
}

/// The `evsock._evsock` extension module.
#[pymodule]
fn _evsock(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    events::register(m)?;
    ws::register(m)?;
    session::register(m)?;
    m.add_function(wrap_pyfunction!(now_ms, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
