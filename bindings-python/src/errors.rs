//! The exception hierarchy of the `evsock` module.
//!
//! Every error the module raises on purpose is an `evsock.EvsockError` with a
//! stable `kind` string (the same snake_case names the Rust engine, the test
//! vectors and the other bindings use). Some also derive from the matching
//! builtin (`ValueError`, `BufferError`, `TimeoutError`) so that ordinary
//! `except ValueError:` code keeps working.

use pyo3::exceptions::{PyBufferError, PyException, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The exception classes, created once when the module is initialised.
pub struct Classes {
    base: Py<PyType>,
    invalid_state: Py<PyType>,
    invalid_argument: Py<PyType>,
    outbound_full: Py<PyType>,
    session: Py<PyType>,
    request: Py<PyType>,
    request_timeout: Py<PyType>,
    connection_closed: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

/// Which exception to raise.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // Request, RequestTimeout and ConnectionClosed are raised by the asyncio host.
pub enum Exc {
    /// `EvsockError`: anything without a more specific class.
    Base,
    /// `InvalidStateError`: the call is not valid in the current state.
    InvalidState,
    /// `InvalidArgumentError` (also a `ValueError`).
    InvalidArgument,
    /// `OutboundFullError` (also a `BufferError`).
    OutboundFull,
    /// `SessionError`: a session call was refused.
    Session,
    /// `RequestError`: a request ended without a reply.
    Request,
    /// `RequestTimeout` (also a `RequestError` and a `TimeoutError`).
    RequestTimeout,
    /// `ConnectionClosed`: the connection or session is over.
    ConnectionClosed,
}

fn make(
    py: Python<'_>,
    name: &str,
    doc: &str,
    kind: &str,
    bases: Vec<Bound<'_, PyType>>,
) -> PyResult<Py<PyType>> {
    let dict = PyDict::new(py);
    dict.set_item("__module__", "evsock")?;
    dict.set_item("__doc__", doc)?;
    dict.set_item("kind", kind)?;
    let bases = PyTuple::new(py, bases)?;
    let cls = py.get_type::<PyType>().call1((name, bases, dict))?;
    Ok(cls.cast_into::<PyType>()?.unbind())
}

/// Creates the classes (once) and adds them to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let classes = CLASSES.get_or_try_init(py, || -> PyResult<Classes> {
        let exc = py.get_type::<PyException>();
        let base = make(
            py,
            "EvsockError",
            "Base class of every error evsock raises. `kind` is a stable snake_case name.",
            "error",
            vec![exc],
        )?;
        let b = base.bind(py).clone();
        let invalid_state = make(
            py,
            "InvalidStateError",
            "The call is not valid in the connection's current state (for example, sending \
             before the handshake finished or after close).",
            "invalid_state",
            vec![b.clone()],
        )?;
        let invalid_argument = make(
            py,
            "InvalidArgumentError",
            "An argument was rejected (an illegal close code, an oversized ping payload, \
             a malformed URL, ...).",
            "invalid_argument",
            vec![b.clone(), py.get_type::<PyValueError>()],
        )?;
        let outbound_full = make(
            py,
            "OutboundFullError",
            "Sending would queue more than `max_outbound_bytes`; write out `data_to_send()` \
             first.",
            "outbound_full",
            vec![b.clone(), py.get_type::<PyBufferError>()],
        )?;
        let session = make(
            py,
            "SessionError",
            "A session call was refused (bad event id, data not encodable, not connected, \
             too many pending requests, ...). `kind` says which.",
            "session",
            vec![b.clone()],
        )?;
        let request = make(
            py,
            "RequestError",
            "A request ended without a reply. `kind` is `timeout`, `session_closed`, \
             `resume_failed` or `remote` (then `data` holds the peer's error data).",
            "request",
            vec![b.clone()],
        )?;
        let request_timeout = make(
            py,
            "RequestTimeout",
            "No reply arrived within the request's timeout.",
            "timeout",
            vec![request.bind(py).clone(), py.get_type::<PyTimeoutError>()],
        )?;
        let connection_closed = make(
            py,
            "ConnectionClosed",
            "The connection (or session) is closed. `code` and `reason` tell how it ended \
             when known.",
            "connection_closed",
            vec![b],
        )?;
        Ok(Classes {
            base,
            invalid_state,
            invalid_argument,
            outbound_full,
            session,
            request,
            request_timeout,
            connection_closed,
        })
    })?;
    m.add("EvsockError", classes.base.bind(py))?;
    m.add("InvalidStateError", classes.invalid_state.bind(py))?;
    m.add("InvalidArgumentError", classes.invalid_argument.bind(py))?;
    m.add("OutboundFullError", classes.outbound_full.bind(py))?;
    m.add("SessionError", classes.session.bind(py))?;
    m.add("RequestError", classes.request.bind(py))?;
    m.add("RequestTimeout", classes.request_timeout.bind(py))?;
    m.add("ConnectionClosed", classes.connection_closed.bind(py))?;
    Ok(())
}

/// Builds an exception of class `which` with `message`, setting its `kind`
/// attribute when given (otherwise the class default applies).
pub fn err(py: Python<'_>, which: Exc, kind: Option<&str>, message: impl Into<String>) -> PyErr {
    let message = message.into();
    let Some(c) = CLASSES.get(py) else {
        // Only reachable if the module failed to initialise.
        return pyo3::exceptions::PyRuntimeError::new_err(message);
    };
    let cls = match which {
        Exc::Base => &c.base,
        Exc::InvalidState => &c.invalid_state,
        Exc::InvalidArgument => &c.invalid_argument,
        Exc::OutboundFull => &c.outbound_full,
        Exc::Session => &c.session,
        Exc::Request => &c.request,
        Exc::RequestTimeout => &c.request_timeout,
        Exc::ConnectionClosed => &c.connection_closed,
    };
    let build = || -> PyResult<PyErr> {
        let inst = cls.bind(py).call1((message.as_str(),))?;
        if let Some(k) = kind {
            inst.setattr("kind", k)?;
        }
        Ok(PyErr::from_value(inst))
    };
    build().unwrap_or_else(|e| e)
}

/// Shorthand for an `InvalidArgumentError`.
pub fn invalid_arg(py: Python<'_>, message: impl Into<String>) -> PyErr {
    err(py, Exc::InvalidArgument, None, message)
}

/// Maps an engine WebSocket error to the matching Python exception.
pub fn ws_error(py: Python<'_>, e: &evsock::ws::Error) -> PyErr {
    use evsock::ws::Error as E;
    let which = match e {
        E::InvalidState(_) => Exc::InvalidState,
        E::InvalidArgument(_) => Exc::InvalidArgument,
        E::OutboundFull { .. } => Exc::OutboundFull,
        _ => Exc::Base,
    };
    err(py, which, Some(e.kind()), e.to_string())
}
