//! Checked conversions from Python arguments, each failing with a clear
//! exception instead of a generic overflow or type error.

use std::borrow::Cow;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyString};

use crate::errors::invalid_arg;

static MONOTONIC_NS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Milliseconds of Python's `time.monotonic()` clock, the clock asyncio's
/// `loop.time()` also reads.
pub fn clock_ms(py: Python<'_>) -> PyResult<u64> {
    let f = MONOTONIC_NS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("time")?.getattr("monotonic_ns")?.unbind())
    })?;
    let ns: u64 = f.bind(py).call0()?.extract()?;
    Ok(ns / 1_000_000)
}

/// The `now` argument: `None` reads the clock; otherwise a non-negative int
/// or float of milliseconds.
pub fn now_ms(py: Python<'_>, now: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    match now {
        None => clock_ms(py),
        Some(v) if v.is_none() => clock_ms(py),
        Some(v) => ms_value(v, "now"),
    }
}

/// A duration or instant in milliseconds: a non-negative int, or a finite
/// non-negative float (rounded down).
pub fn ms_value(v: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    let py = v.py();
    if v.is_instance_of::<PyFloat>() {
        let f: f64 = v.extract()?;
        if !f.is_finite() || f < 0.0 {
            return Err(invalid_arg(
                py,
                format!("{what} must be a finite, non-negative number of milliseconds, got {f}"),
            ));
        }
        if f >= 18_446_744_073_709_551_615.0 {
            return Err(invalid_arg(py, format!("{what} is too large: {f}")));
        }
        return Ok(f as u64);
    }
    if v.is_instance_of::<PyInt>() && v.lt(0).unwrap_or(false) {
        return Err(invalid_arg(
            py,
            format!("{what} must be a non-negative number of milliseconds, got {v}"),
        ));
    }
    uint(v, what, u64::MAX)
}

/// A non-negative integer no larger than `max`.
pub fn uint(v: &Bound<'_, PyAny>, what: &str, max: u64) -> PyResult<u64> {
    let py = v.py();
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be an int, not {}",
            type_name(v)
        )));
    }
    match v.extract::<i128>() {
        Ok(n) if n >= 0 && n as u128 <= max as u128 => Ok(n as u64),
        Ok(n) => Err(invalid_arg(
            py,
            format!("{what} must be between 0 and {max}, got {n}"),
        )),
        Err(_) => Err(invalid_arg(
            py,
            format!("{what} must be between 0 and {max}, got a huge number"),
        )),
    }
}

/// The same as [`uint`] for a `usize` limit.
pub fn usize_value(v: &Bound<'_, PyAny>, what: &str, max: usize) -> PyResult<usize> {
    uint(v, what, max as u64).map(|n| n as usize)
}

/// An optional duration: `None` turns the timer off.
pub fn opt_ms(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<u64>> {
    if v.is_none() {
        Ok(None)
    } else {
        ms_value(v, what).map(Some)
    }
}

/// A boolean (only `True` or `False`, not any truthy value).
pub fn boolean(v: &Bound<'_, PyAny>, what: &str) -> PyResult<bool> {
    if let Ok(b) = v.cast::<PyBool>() {
        Ok(b.is_true())
    } else {
        Err(PyTypeError::new_err(format!(
            "{what} must be a bool, not {}",
            type_name(v)
        )))
    }
}

/// A `str`.
pub fn string(v: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if let Ok(s) = v.cast::<PyString>() {
        // Lone surrogates cannot be encoded as UTF-8; say so plainly.
        s.to_str().map(str::to_owned).map_err(|_| {
            invalid_arg(
                v.py(),
                format!("{what} is not valid Unicode (it contains a lone surrogate)"),
            )
        })
    } else {
        Err(PyTypeError::new_err(format!(
            "{what} must be a str, not {}",
            type_name(v)
        )))
    }
}

/// A list (or other iterable, but not a bare string) of `str`.
pub fn string_list(v: &Bound<'_, PyAny>, what: &str, max_items: usize) -> PyResult<Vec<String>> {
    if v.is_none() {
        return Ok(Vec::new());
    }
    if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a list of str, not a single {}",
            type_name(v)
        )));
    }
    let mut out = Vec::new();
    for item in v.try_iter()? {
        if out.len() == max_items {
            return Err(invalid_arg(
                v.py(),
                format!("{what} has more than {max_items} items"),
            ));
        }
        out.push(string(&item?, &format!("each item of {what}"))?);
    }
    Ok(out)
}

/// Bytes from `bytes`, `bytearray`, `memoryview` or any other contiguous
/// buffer; borrowed without a copy for `bytes`.
pub fn bytes_like<'a>(v: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    if v.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be bytes-like, not str (encode it, or send it as text)"
        )));
    }
    match PyBuffer::<u8>::get(v) {
        Ok(buf) => Ok(Cow::Owned(buf.to_vec(v.py())?)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what} must be bytes, bytearray or memoryview, not {}",
            type_name(v)
        ))),
    }
}

/// HTTP header fields for a handshake: a dict or an iterable of
/// `(name, value)` pairs of `str`. Names must be HTTP tokens; values may not
/// contain CR, LF or NUL (which would let a value inject headers).
pub fn headers(v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, String)>> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    if v.is_none() {
        return Ok(Vec::new());
    }
    let py = v.py();
    let pairs: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = if let Ok(d) = v.cast::<PyDict>() {
        d.iter().collect()
    } else {
        let mut out = Vec::new();
        for item in v.try_iter()? {
            if out.len() > 256 {
                break;
            }
            let item = item?;
            let pair: (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract().map_err(|_| {
                PyTypeError::new_err("headers must be a dict or a list of (name, value) pairs")
            })?;
            out.push(pair);
        }
        out
    };
    if pairs.len() > 256 {
        return Err(invalid_arg(py, "more than 256 extra header fields"));
    }
    let mut out = Vec::with_capacity(pairs.len());
    for (n, val) in pairs {
        let name = string(&n, "a header name")?;
        let value = string(&val, "a header value")?;
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(invalid_arg(
                py,
                format!("invalid header name {name:?}: use letters, digits and !#$%&'*+-.^_`|~"),
            ));
        }
        if value.contains(['\r', '\n', '\0']) {
            return Err(invalid_arg(
                py,
                format!("header {name} has a value with CR, LF or NUL in it"),
            ));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// The Python type name of `v`, for messages.
pub fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_string())
}
