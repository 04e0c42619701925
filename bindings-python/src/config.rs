//! Keyword arguments to engine configurations.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use evsock::ws::{Config, OriginPolicy};

use crate::convert::{boolean, opt_ms, string_list, usize_value};
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
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "unexpected keyword argument {other:?}; WebSocket settings are: {}",
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
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    for n in names {
        if n.is_empty() || !n.chars().all(token) {
            return Err(invalid_arg(
                py,
                format!("{what}: {n:?} is not a valid subprotocol name (an HTTP token)"),
            ));
        }
    }
    Ok(())
}
