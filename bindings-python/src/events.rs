//! Small, immutable event classes, in the style of wsproto and h11.
//!
//! The classes a connection hands out are `Request`, `Open`, `TextMessage`,
//! `BinaryMessage`, `Ping`, `Pong` and `Closed`. `TextMessage`,
//! `BinaryMessage`, `Ping`, `Pong`, `Close`, `AcceptConnection` and
//! `RejectConnection` can also be built by the application and passed to
//! `Connection.send()`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use evsock::ws::{Closed as WsClosed, Event, Message};

use crate::convert::{bytes_like, string, type_name};

/// The tuple of field values, for equality.
fn equal(a: &[&Py<PyAny>], b: &[&Py<PyAny>], py: Python<'_>) -> PyResult<bool> {
    for (x, y) in a.iter().zip(b.iter()) {
        if !x.bind(py).eq(y.bind(py))? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn repr(py: Python<'_>, name: &str, names: &[&str], vals: &[&Py<PyAny>]) -> PyResult<String> {
    let mut s = String::with_capacity(64);
    s.push_str(name);
    s.push('(');
    for (i, (n, v)) in names.iter().zip(vals.iter()).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(n);
        s.push('=');
        let r = v.bind(py).repr()?;
        let r = r.to_str()?;
        // Keep the repr of a 16 MiB message readable.
        if r.chars().count() > 80 {
            s.extend(r.chars().take(77));
            s.push_str("...");
        } else {
            s.push_str(r);
        }
    }
    s.push(')');
    Ok(s)
}

fn match_args(py: Python<'_>, names: &[&'static str]) -> PyResult<Py<PyTuple>> {
    Ok(PyTuple::new(py, names)?.unbind())
}

/// Defines the shared dunder methods of an event class whose fields are all
/// `Py<PyAny>`.
macro_rules! dunders {
    ($name:ident, [$($f:ident),*]) => {
        impl $name {
            const NAMES: &'static [&'static str] = &[$(stringify!($f)),*];
            fn vals(&self) -> Vec<&Py<PyAny>> {
                vec![$(&self.$f),*]
            }
            fn repr_impl(&self, py: Python<'_>) -> PyResult<String> {
                repr(py, stringify!($name), Self::NAMES, &self.vals())
            }
            fn eq_impl(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                let py = other.py();
                match other.cast::<$name>() {
                    Ok(o) => {
                        let same = equal(&self.vals(), &o.get().vals(), py)?;
                        Ok(pyo3::types::PyBool::new(py, same).to_owned().into_any().unbind())
                    }
                    Err(_) => Ok(py.NotImplemented()),
                }
            }
        }
    };
}

fn none(py: Python<'_>) -> Py<PyAny> {
    py.None()
}

fn opt_str(py: Python<'_>, v: Option<&str>) -> Py<PyAny> {
    match v {
        Some(s) => PyString::new(py, s).into_any().unbind(),
        None => none(py),
    }
}

fn str_list(py: Python<'_>, v: &[String]) -> PyResult<Py<PyAny>> {
    Ok(PyList::new(py, v)?.into_any().unbind())
}

fn check_opt_str(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Py<PyAny>> {
    if v.is_none() {
        Ok(v.clone().unbind())
    } else {
        string(v, what)?;
        Ok(v.clone().unbind())
    }
}

fn to_bytes_obj(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Py<PyAny>> {
    if v.is_instance_of::<PyBytes>() {
        return Ok(v.clone().unbind());
    }
    let b = bytes_like(v, what)?;
    Ok(PyBytes::new(v.py(), &b).into_any().unbind())
}

// ------------------------------------------------------------ Request ---

/// Server: a client asks to upgrade. Call `conn.accept()` or
/// `conn.reject(status)` before anything else happens.
///
/// `headers` is a list of `(name, value)` pairs as sent (values decoded as
/// Latin-1, which is lossless); `subprotocols` what the client offered;
/// `selected_subprotocol` what the server configuration would pick.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct Request {
    pub path: Py<PyAny>,
    pub headers: Py<PyAny>,
    pub origin: Py<PyAny>,
    pub subprotocols: Py<PyAny>,
    pub extensions: Py<PyAny>,
    pub selected_subprotocol: Py<PyAny>,
}
dunders!(
    Request,
    [
        path,
        headers,
        origin,
        subprotocols,
        extensions,
        selected_subprotocol
    ]
);

#[pymethods]
impl Request {
    #[new]
    #[pyo3(signature = (path="/", headers=None, origin=None, subprotocols=None, extensions=None, selected_subprotocol=None))]
    fn new(
        py: Python<'_>,
        path: &str,
        headers: Option<Bound<'_, PyAny>>,
        origin: Option<Bound<'_, PyAny>>,
        subprotocols: Option<Bound<'_, PyAny>>,
        extensions: Option<Bound<'_, PyAny>>,
        selected_subprotocol: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let list = |v: Option<Bound<'_, PyAny>>| -> PyResult<Py<PyAny>> {
            match v {
                Some(v) if !v.is_none() => Ok(PyList::new(
                    py,
                    v.try_iter()?.collect::<PyResult<Vec<_>>>()?,
                )?
                .into_any()
                .unbind()),
                _ => Ok(PyList::empty(py).into_any().unbind()),
            }
        };
        let opt = |v: Option<Bound<'_, PyAny>>, what: &str| -> PyResult<Py<PyAny>> {
            match v {
                Some(v) => check_opt_str(&v, what),
                None => Ok(none(py)),
            }
        };
        Ok(Request {
            path: PyString::new(py, path).into_any().unbind(),
            headers: list(headers)?,
            origin: opt(origin, "origin")?,
            subprotocols: list(subprotocols)?,
            extensions: list(extensions)?,
            selected_subprotocol: opt(selected_subprotocol, "selected_subprotocol")?,
        })
    }
    /// The first header with this name (ASCII case-insensitive), or `default`.
    #[pyo3(signature = (name, default=None))]
    fn header(
        &self,
        py: Python<'_>,
        name: &str,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        for item in self.headers.bind(py).try_iter()? {
            let (n, v): (String, Py<PyAny>) = item?.extract()?;
            if n.eq_ignore_ascii_case(name) {
                return Ok(Some(v));
            }
        }
        Ok(default)
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

// --------------------------------------------------------------- Open ---

/// The handshake finished; messages may flow. `subprotocol` is the
/// negotiated subprotocol or `None`.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct Open {
    pub subprotocol: Py<PyAny>,
}
dunders!(Open, [subprotocol]);

#[pymethods]
impl Open {
    #[new]
    #[pyo3(signature = (subprotocol=None))]
    fn new(py: Python<'_>, subprotocol: Option<Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(Open {
            subprotocol: match subprotocol {
                Some(v) => check_opt_str(&v, "subprotocol")?,
                None => none(py),
            },
        })
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

// -------------------------------------------------------- TextMessage ---

/// A complete text message; `data` is a `str`.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct TextMessage {
    pub data: Py<PyAny>,
}
dunders!(TextMessage, [data]);

#[pymethods]
impl TextMessage {
    #[new]
    fn new(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        string(data, "TextMessage data")?;
        Ok(TextMessage {
            data: data.clone().unbind(),
        })
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

// ------------------------------------------------------ BinaryMessage ---

/// A complete binary message; `data` is `bytes`.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct BinaryMessage {
    pub data: Py<PyAny>,
}
dunders!(BinaryMessage, [data]);

#[pymethods]
impl BinaryMessage {
    #[new]
    fn new(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(BinaryMessage {
            data: to_bytes_obj(data, "BinaryMessage data")?,
        })
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

// --------------------------------------------------------- Ping, Pong ---

/// The peer sent a ping (already answered when `auto_pong` is on, the
/// default). As an argument to `send()`, sends a ping.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct Ping {
    pub payload: Py<PyAny>,
}
dunders!(Ping, [payload]);

#[pymethods]
impl Ping {
    #[new]
    #[pyo3(signature = (payload=None))]
    fn new(py: Python<'_>, payload: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(Ping {
            payload: match payload {
                Some(p) => to_bytes_obj(p, "Ping payload")?,
                None => PyBytes::new(py, b"").into_any().unbind(),
            },
        })
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

/// The peer sent a pong. As an argument to `send()`, sends an unsolicited
/// pong.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct Pong {
    pub payload: Py<PyAny>,
}
dunders!(Pong, [payload]);

#[pymethods]
impl Pong {
    #[new]
    #[pyo3(signature = (payload=None))]
    fn new(py: Python<'_>, payload: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(Pong {
            payload: match payload {
                Some(p) => to_bytes_obj(p, "Pong payload")?,
                None => PyBytes::new(py, b"").into_any().unbind(),
            },
        })
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

// ------------------------------------------------------------- Closed ---

/// The connection is over; always the last event.
///
/// `code` is the peer's close code if it closed first, ours if we did, 1006
/// if no close frame arrived, 1005 if the peer's had no code. `by_peer`:
/// the peer sent the first close frame. `clean`: close frames went both
/// ways. `error`: the stable kind of what went wrong (`"protocol"`,
/// `"pong_timeout"`, `"unexpected_eof"`, ...) or `None`; `error_message`
/// describes it.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct Closed {
    pub code: Py<PyAny>,
    pub reason: Py<PyAny>,
    pub by_peer: Py<PyAny>,
    pub clean: Py<PyAny>,
    pub error: Py<PyAny>,
    pub error_message: Py<PyAny>,
}
dunders!(Closed, [code, reason, by_peer, clean, error, error_message]);

#[pymethods]
impl Closed {
    #[new]
    #[pyo3(signature = (code=1006, reason="", by_peer=false, clean=false, error=None, error_message=None))]
    fn new(
        py: Python<'_>,
        code: u16,
        reason: &str,
        by_peer: bool,
        clean: bool,
        error: Option<String>,
        error_message: Option<String>,
    ) -> PyResult<Self> {
        Ok(Closed {
            code: code.into_pyobject(py)?.into_any().unbind(),
            reason: PyString::new(py, reason).into_any().unbind(),
            by_peer: pyo3::types::PyBool::new(py, by_peer)
                .to_owned()
                .into_any()
                .unbind(),
            clean: pyo3::types::PyBool::new(py, clean)
                .to_owned()
                .into_any()
                .unbind(),
            error: opt_str(py, error.as_deref()),
            error_message: opt_str(py, error_message.as_deref()),
        })
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

// --------------------------------------------------- send-only events ---

/// For `send()`: start the closing handshake with `code` and `reason`.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct Close {
    pub code: Py<PyAny>,
    pub reason: Py<PyAny>,
}
dunders!(Close, [code, reason]);

#[pymethods]
impl Close {
    #[new]
    #[pyo3(signature = (code=None, reason=None))]
    fn new(
        py: Python<'_>,
        code: Option<&Bound<'_, PyAny>>,
        reason: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let code = match code {
            Some(c) => {
                crate::convert::uint(c, "close code", 65535)?;
                c.clone().unbind()
            }
            None => 1000u16.into_pyobject(py)?.into_any().unbind(),
        };
        let reason = match reason {
            Some(r) => {
                string(r, "close reason")?;
                r.clone().unbind()
            }
            None => PyString::new(py, "").into_any().unbind(),
        };
        Ok(Close { code, reason })
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

/// For `send()` on a server: accept the pending `Request`. `subprotocol`:
/// `None` keeps the configuration's choice, `""` selects none.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct AcceptConnection {
    pub subprotocol: Py<PyAny>,
    pub headers: Py<PyAny>,
}
dunders!(AcceptConnection, [subprotocol, headers]);

#[pymethods]
impl AcceptConnection {
    #[new]
    #[pyo3(signature = (subprotocol=None, headers=None))]
    fn new(
        py: Python<'_>,
        subprotocol: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        crate::convert::headers(headers)?;
        Ok(AcceptConnection {
            subprotocol: match subprotocol {
                Some(v) => check_opt_str(v, "subprotocol")?,
                None => none(py),
            },
            headers: headers
                .map(|h| h.clone().unbind())
                .unwrap_or_else(|| none(py)),
        })
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

/// For `send()` on a server: refuse the pending `Request` with an HTTP
/// `status` (300-599) and a text `body`.
#[pyclass(frozen, module = "evsock", get_all)]
pub struct RejectConnection {
    pub status: Py<PyAny>,
    pub body: Py<PyAny>,
    pub headers: Py<PyAny>,
}
dunders!(RejectConnection, [status, body, headers]);

#[pymethods]
impl RejectConnection {
    #[new]
    #[pyo3(signature = (status=None, body=None, headers=None))]
    fn new(
        py: Python<'_>,
        status: Option<&Bound<'_, PyAny>>,
        body: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        crate::convert::headers(headers)?;
        let status = match status {
            Some(s) => {
                check_status(s)?;
                s.clone().unbind()
            }
            None => 400u16.into_pyobject(py)?.into_any().unbind(),
        };
        let body = match body {
            Some(b) => {
                body_bytes(b)?;
                b.clone().unbind()
            }
            None => PyBytes::new(py, b"").into_any().unbind(),
        };
        Ok(RejectConnection {
            status,
            body,
            headers: headers
                .map(|h| h.clone().unbind())
                .unwrap_or_else(|| none(py)),
        })
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match_args(py, Self::NAMES)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_impl(py)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.eq_impl(other)
    }
}

/// An HTTP status a server may reject an upgrade with.
pub fn check_status(v: &Bound<'_, PyAny>) -> PyResult<u16> {
    let n = crate::convert::uint(v, "status", 65535)?;
    if !(300..=599).contains(&n) {
        return Err(crate::errors::invalid_arg(
            v.py(),
            format!("status must be an HTTP status from 300 to 599, got {n}"),
        ));
    }
    Ok(n as u16)
}

/// A rejection body: `str` (sent as UTF-8) or bytes-like.
pub fn body_bytes(v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if v.is_none() {
        return Ok(Vec::new());
    }
    if v.is_instance_of::<PyString>() {
        return Ok(string(v, "body")?.into_bytes());
    }
    let b = bytes_like(v, "body").map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "body must be str or bytes, not {}",
            type_name(v)
        ))
    })?;
    Ok(b.into_owned())
}

// ------------------------------------------------- engine -> Python ---

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// Converts one engine event into its Python class.
pub fn to_py(py: Python<'_>, ev: Event) -> PyResult<Py<PyAny>> {
    Ok(match ev {
        Event::Message(Message::Text(t)) => Py::new(
            py,
            TextMessage {
                data: PyString::new(py, t.as_str()).into_any().unbind(),
            },
        )?
        .into_any(),
        Event::Message(Message::Binary(b)) => Py::new(
            py,
            BinaryMessage {
                data: PyBytes::new(py, &b).into_any().unbind(),
            },
        )?
        .into_any(),
        Event::Ping(p) => Py::new(
            py,
            Ping {
                payload: PyBytes::new(py, &p).into_any().unbind(),
            },
        )?
        .into_any(),
        Event::Pong(p) => Py::new(
            py,
            Pong {
                payload: PyBytes::new(py, &p).into_any().unbind(),
            },
        )?
        .into_any(),
        Event::Open { subprotocol } => Py::new(
            py,
            Open {
                subprotocol: opt_str(py, subprotocol.as_deref()),
            },
        )?
        .into_any(),
        Event::Request(r) => {
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), latin1(v)))
                .collect();
            Py::new(
                py,
                Request {
                    path: PyString::new(py, &r.path).into_any().unbind(),
                    headers: PyList::new(py, headers)?.into_any().unbind(),
                    origin: opt_str(py, r.origin.as_deref()),
                    subprotocols: str_list(py, &r.subprotocols)?,
                    extensions: str_list(py, &r.extensions)?,
                    selected_subprotocol: opt_str(py, r.selected_subprotocol.as_deref()),
                },
            )?
            .into_any()
        }
        Event::Closed(c) => closed_to_py(py, &c)?,
    })
}

fn closed_to_py(py: Python<'_>, c: &WsClosed) -> PyResult<Py<PyAny>> {
    let bool_obj = |b: bool| {
        pyo3::types::PyBool::new(py, b)
            .to_owned()
            .into_any()
            .unbind()
    };
    Ok(Py::new(
        py,
        Closed {
            code: c.code.0.into_pyobject(py)?.into_any().unbind(),
            reason: PyString::new(py, &c.reason).into_any().unbind(),
            by_peer: bool_obj(c.by_peer),
            clean: bool_obj(c.clean),
            error: opt_str(py, c.error.as_ref().map(|e| e.kind())),
            error_message: match &c.error {
                Some(e) => PyString::new(py, &e.to_string()).into_any().unbind(),
                None => none(py),
            },
        },
    )?
    .into_any())
}

/// Registers the classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Request>()?;
    m.add_class::<Open>()?;
    m.add_class::<TextMessage>()?;
    m.add_class::<BinaryMessage>()?;
    m.add_class::<Ping>()?;
    m.add_class::<Pong>()?;
    m.add_class::<Closed>()?;
    m.add_class::<Close>()?;
    m.add_class::<AcceptConnection>()?;
    m.add_class::<RejectConnection>()?;
    Ok(())
}
