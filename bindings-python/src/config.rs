//! Keyword arguments to engine configurations.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use evsock::ws::{Config, DeflateConfig, OriginPolicy};

use crate::convert::{boolean, opt_ms, string_list, uint, usize_value};
use crate::errors::invalid_arg;

/// The WebSocket settings accepted as keyword arguments, for messages.
pub const WS_KEYS: &[&str] = &[
    "max_frame_size",
    "max_message_size",
    "max_fragments",
    "max_handshake_bytes",
    "max_headers",
    "max_outbound_bytes",
    "ping_interval_ms",
    "pong_timeout_ms",
    "idle_timeout_ms",
    "handshake_timeout_ms",
    "close_timeout_ms",
    "auto_pong",
    "subprotocols",
    "origins",
    "allow_missing_origin",
    "buffer_retain",
    "deflate",
];

/// Most header fields one may allow: the parser reserves a slot for each.
const MAX_HEADERS_LIMIT: usize = 4096;
/// Largest buffer the connection may keep between messages.
const MAX_RETAIN: usize = 64 << 20;

/// Builds a WebSocket [`Config`]: `Config::default()` (or
/// `Config::without_timers()` when `timers` is false) with `kwargs` applied.
/// Unknown keys are a `TypeError`, like any unexpected keyword argument.
pub fn ws_config(
    py: Python<'_>,
    timers: bool,
    kwargs: Option<&Bound<'_, PyDict>>,
    skip: &[&str],
) -> PyResult<Config> {
    let mut c = if timers {
        Config::default()
    } else {
        Config::without_timers()
    };
    let mut origins: Option<Vec<String>> = None;
    let mut allow_missing = false;
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            let key: String = k.cast::<PyString>()?.to_str()?.to_owned();
            if skip.contains(&key.as_str()) {
                continue;
            }
            let k = key.as_str();
            match k {
                "max_frame_size" => c.max_frame_size = usize_value(&v, k, usize::MAX)?,
                "max_message_size" => c.max_message_size = usize_value(&v, k, usize::MAX)?,
                "max_fragments" => c.max_fragments = usize_value(&v, k, usize::MAX)?,
                "max_handshake_bytes" => {
                    c.max_handshake_bytes = usize_value(&v, k, usize::MAX)?;
                    if c.max_handshake_bytes < 64 {
                        return Err(invalid_arg(py, "max_handshake_bytes must be at least 64"));
                    }
                }
                "max_headers" => {
                    c.max_headers = usize_value(&v, k, MAX_HEADERS_LIMIT)?;
                    if c.max_headers < 4 {
                        return Err(invalid_arg(py, "max_headers must be at least 4"));
                    }
                }
                "max_outbound_bytes" => c.max_outbound_bytes = usize_value(&v, k, usize::MAX)?,
                "ping_interval_ms" => c.ping_interval_ms = opt_ms(&v, k)?,
                "pong_timeout_ms" => c.pong_timeout_ms = opt_ms(&v, k)?,
                "idle_timeout_ms" => c.idle_timeout_ms = opt_ms(&v, k)?,
                "handshake_timeout_ms" => c.handshake_timeout_ms = opt_ms(&v, k)?,
                "close_timeout_ms" => c.close_timeout_ms = opt_ms(&v, k)?,
                "auto_pong" => c.auto_pong = boolean(&v, k)?,
                "subprotocols" => {
                    c.subprotocols = string_list(&v, k, 64)?;
                    check_tokens(py, &c.subprotocols, k)?;
                }
                "origins" => {
                    origins = if v.is_none() {
                        None
                    } else {
                        Some(string_list(&v, k, 1024)?)
                    }
                }
                "allow_missing_origin" => allow_missing = boolean(&v, k)?,
                "buffer_retain" => c.buffer_retain = usize_value(&v, k, MAX_RETAIN)?,
                "deflate" => c.deflate = deflate(&v)?,
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "unexpected keyword argument '{other}'; WebSocket settings are: {}",
                        WS_KEYS.join(", ")
                    )))
                }
            }
        }
    }
    if let Some(origins) = origins {
        c.origin_policy = OriginPolicy::AllowList {
            origins,
            allow_missing,
        };
    } else if allow_missing {
        return Err(invalid_arg(
            py,
            "allow_missing_origin only makes sense together with origins=[...]",
        ));
    }
    Ok(c)
}

/// Subprotocol names must be HTTP tokens (they travel in a header list).
pub fn check_tokens(py: Python<'_>, names: &[String], what: &str) -> PyResult<()> {
    for n in names {
        if !evsock::ws::handshake::is_token(n) {
            return Err(invalid_arg(
                py,
                format!("{what}: {n:?} is not a valid subprotocol name (an HTTP token)"),
            ));
        }
    }
    Ok(())
}

/// `deflate=`: `False`/`None` turns permessage-deflate off, `True` keeps
/// the defaults, a dict overrides any of `threshold`, `level` (0-9),
/// `server_max_window_bits` / `client_max_window_bits` (9-15),
/// `server_no_context_takeover`, `client_no_context_takeover`.
fn deflate(v: &Bound<'_, PyAny>) -> PyResult<Option<DeflateConfig>> {
    let py = v.py();
    if v.is_none() {
        return Ok(None);
    }
    if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        return Ok(b.is_true().then(DeflateConfig::default));
    }
    let Ok(d) = v.cast::<PyDict>() else {
        return Err(PyTypeError::new_err(format!(
            "deflate must be a bool or a dict of settings, not {}",
            crate::convert::type_name(v)
        )));
    };
    let mut c = DeflateConfig::default();
    for (k, val) in d.iter() {
        let key: String = k.cast::<PyString>()?.to_str()?.to_owned();
        let what = format!("deflate[{key:?}]");
        let bits = |val: &Bound<'_, PyAny>| -> PyResult<u8> {
            let n = uint(val, &what, 255)?;
            if !(9..=15).contains(&n) {
                return Err(invalid_arg(
                    py,
                    format!("{what} must be a window size from 9 to 15, got {n}"),
                ));
            }
            Ok(n as u8)
        };
        match key.as_str() {
            "threshold" => c.threshold = usize_value(&val, &what, usize::MAX)?,
            "level" => c.level = uint(&val, &what, 9)? as u32,
            "server_max_window_bits" => c.server_max_window_bits = bits(&val)?,
            "client_max_window_bits" => c.client_max_window_bits = bits(&val)?,
            "server_no_context_takeover" => c.server_no_context_takeover = boolean(&val, &what)?,
            "client_no_context_takeover" => c.client_no_context_takeover = boolean(&val, &what)?,
            other => {
                return Err(PyTypeError::new_err(format!(
                    "unknown deflate setting {other:?}; use threshold, level, \
                     server_max_window_bits, client_max_window_bits, \
                     server_no_context_takeover or client_no_context_takeover"
                )))
            }
        }
    }
    Ok(Some(c))
}
