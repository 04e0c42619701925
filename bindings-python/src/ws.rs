//! The sans-IO WebSocket connection classes.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use sync_wrapper::SyncWrapper;

use evsock::ws::{
    self, Accept, ClientRequest, CloseCode, Message, OpCode, Reject, Role, State, Text,
};
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};

use crate::config::{check_tokens, ws_config};
use crate::convert::{self, bytes_like, headers, now_ms, string, string_list, type_name};
use crate::errors::{invalid_arg, ws_error};
use crate::events;

/// Server messages at least this large are framed without copying the
/// payload (it is shared with the Python object until written out).
const ZERO_COPY_MIN: usize = 16 * 1024;

const STATE_NAMES: [&str; 4] = ["handshake", "open", "closing", "closed"];

/// One `bytes` holding `chunks` back to back, each copied once.
///
/// `PyBytes::new_with` would zero-fill the buffer before the copy: a second
/// pass over every byte, which made framing a 1 MiB server message ~1.4x
/// slower than websockets' sans-IO protocol (bench/bench.py, "large binary
/// send"). CPython's own idiom is to allocate the bytes uninitialised and fill
/// it before anyone else sees it, which is what this does.
fn concat_bytes<'py>(py: Python<'py>, chunks: &[bytes::Bytes]) -> PyResult<Bound<'py, PyBytes>> {
    let total = chunks
        .iter()
        .try_fold(0usize, |n, c| n.checked_add(c.len()));
    let len = total
        .and_then(|t| isize::try_from(t).ok())
        .ok_or_else(|| pyo3::exceptions::PyOverflowError::new_err("output too large for bytes"))?;
    // SAFETY: we hold the GIL (`py`). `PyBytes_FromStringAndSize(NULL, len)`
    // returns a new, uniquely owned bytes object of `len` uninitialised bytes,
    // or NULL with an exception set, which `from_owned_ptr_or_err` turns into
    // `Err`. `PyBytes_AsString` on a bytes object returns its buffer of
    // exactly `len` bytes (plus the trailing NUL CPython keeps), never NULL.
    // The chunks are Rust-owned memory, so they cannot overlap that fresh
    // buffer, and their lengths sum to `len`, so every write stays inside it
    // and every byte is written before the object reaches Python code.
    unsafe {
        let obj = Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len),
        )?;
        let dst = pyo3::ffi::PyBytes_AsString(obj.as_ptr()).cast::<u8>();
        let mut at = 0usize;
        for ch in chunks {
            std::ptr::copy_nonoverlapping(ch.as_ptr(), dst.add(at), ch.len());
            at += ch.len();
        }
        Ok(obj.cast_into_unchecked())
    }
}

/// One WebSocket connection, server or client role. It owns no socket and
/// reads no clock of its own: feed it bytes with `receive_data()`, write out
/// what `data_to_send()` returns, handle what `events()` yields, and call
/// `handle_timeout()` once `poll_timeout()` is due.
///
/// Every `now` argument is milliseconds on one monotonic clock; by default
/// it is read from `time.monotonic()` (the clock of asyncio's
/// `loop.time()`), so hosts that pass their own must use the same clock
/// throughout.
#[pyclass(subclass, module = "evsock")]
pub struct Connection {
    inner: SyncWrapper<ws::Connection>,
    /// A fragmented message we are sending is unfinished.
    fragmenting: bool,
}

impl Connection {
    pub fn new(c: ws::Connection) -> Self {
        Connection {
            inner: SyncWrapper::new(c),
            fragmenting: false,
        }
    }

    pub fn conn(&mut self) -> &mut ws::Connection {
        self.inner.get_mut()
    }

    /// Concatenates every pending transmit into one `bytes` (one copy).
    pub fn drain_output<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.conn();
        let Some(first) = c.poll_transmit() else {
            return Ok(PyBytes::new(py, b""));
        };
        let Some(second) = c.poll_transmit() else {
            return Ok(PyBytes::new(py, &first));
        };
        let mut chunks = vec![first, second];
        while let Some(more) = c.poll_transmit() {
            chunks.push(more);
        }
        concat_bytes(py, &chunks)
    }

    fn send_str(&mut self, py: Python<'_>, s: &Bound<'_, PyString>) -> PyResult<()> {
        let text = s.to_str().map_err(|_| {
            invalid_arg(
                py,
                "text is not valid Unicode (it contains a lone surrogate)",
            )
        })?;
        if text.len() >= ZERO_COPY_MIN && self.conn().role() == Role::Server {
            // Large server messages: share the str's UTF-8 buffer instead of
            // copying it; the frame header goes out in front of it.
            let backed = PyBackedStr::try_from(s.clone())?;
            let text = Text::from_bytes(bytes::Bytes::from_owner(backed))
                .map_err(|_| invalid_arg(py, "text is not valid UTF-8"))?;
            return self
                .conn()
                .send(Message::Text(text))
                .map_err(|e| ws_error(py, &e));
        }
        self.conn().send_text(text).map_err(|e| ws_error(py, &e))
    }

    fn send_bin(&mut self, py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(b) = v.cast::<PyBytes>() {
            let n = b.as_bytes().len();
            if n >= ZERO_COPY_MIN && self.conn().role() == Role::Server {
                // Large server messages: share the immutable bytes object.
                let data = bytes::Bytes::from_owner(PyBackedBytes::from(b.clone()));
                return self.conn().send_binary(data).map_err(|e| ws_error(py, &e));
            }
            return self.send_whole(py, OpCode::Binary, b.as_bytes());
        }
        let data = bytes_like(v, "data")?;
        self.send_whole(py, OpCode::Binary, &data)
    }

    /// Frames a whole message straight from a borrowed buffer (one pass:
    /// copied, and masked for a client, into the output queue).
    fn send_whole(&mut self, py: Python<'_>, op: OpCode, data: &[u8]) -> PyResult<()> {
        if self.fragmenting && self.conn().state() == State::Open {
            return Err(crate::errors::err(
                py,
                crate::errors::Exc::InvalidState,
                Some("invalid_state"),
                "invalid state: a fragmented message is in progress; finish it with fin=True",
            ));
        }
        self.conn()
            .send_fragment(op, data, true)
            .map_err(|e| ws_error(py, &e))
    }

    fn do_close(&mut self, py: Python<'_>, code: &Bound<'_, PyAny>, reason: &str) -> PyResult<()> {
        let code = convert::uint(code, "close code", 65535)? as u16;
        let code = CloseCode(code);
        if !code.is_sendable() {
            return Err(invalid_arg(
                py,
                format!(
                    "close code {} may not be sent: use 1000-1003, 1007-1014 or 3000-4999",
                    code.0
                ),
            ));
        }
        if reason.len() > 123 {
            return Err(invalid_arg(
                py,
                format!(
                    "close reason is {} bytes of UTF-8; at most 123 fit in a close frame",
                    reason.len()
                ),
            ));
        }
        self.conn()
            .close(code, reason)
            .map_err(|e| ws_error(py, &e))
    }

    fn control(
        &mut self,
        py: Python<'_>,
        payload: Option<&Bound<'_, PyAny>>,
        ping: bool,
    ) -> PyResult<()> {
        let data = match payload {
            Some(p) if !p.is_none() => bytes_like(p, "payload")?.into_owned(),
            _ => Vec::new(),
        };
        if data.len() > 125 {
            return Err(invalid_arg(
                py,
                format!(
                    "{} payload is {} bytes; control frames carry at most 125",
                    if ping { "ping" } else { "pong" },
                    data.len()
                ),
            ));
        }
        let r = if ping {
            self.conn().ping(&data)
        } else {
            self.conn().pong(&data)
        };
        r.map_err(|e| ws_error(py, &e))
    }

    pub fn do_accept(
        &mut self,
        py: Python<'_>,
        subprotocol: Option<&Bound<'_, PyAny>>,
        hdrs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if self.conn().role() != Role::Server {
            return Err(crate::errors::err(
                py,
                crate::errors::Exc::InvalidState,
                Some("invalid_state"),
                "invalid state: only a server connection accepts requests",
            ));
        }
        let subprotocol = match subprotocol {
            Some(s) if !s.is_none() => {
                let s = string(s, "subprotocol")?;
                if !s.is_empty() {
                    check_tokens(py, std::slice::from_ref(&s), "subprotocol")?;
                }
                Some(s)
            }
            _ => None,
        };
        let accept = Accept {
            subprotocol,
            headers: headers(hdrs)?,
        };
        self.conn().accept(accept).map_err(|e| ws_error(py, &e))
    }

    pub fn do_reject(
        &mut self,
        py: Python<'_>,
        status: Option<&Bound<'_, PyAny>>,
        body: Option<&Bound<'_, PyAny>>,
        hdrs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if self.conn().role() != Role::Server {
            return Err(crate::errors::err(
                py,
                crate::errors::Exc::InvalidState,
                Some("invalid_state"),
                "invalid state: only a server connection rejects requests",
            ));
        }
        let status = match status {
            Some(s) => events::check_status(s)?,
            None => 400,
        };
        let body = match body {
            Some(b) => events::body_bytes(b)?,
            None => Vec::new(),
        };
        if body.len() > 1 << 20 {
            return Err(invalid_arg(py, "reject body over 1 MiB"));
        }
        let mut r = Reject::new(status, body);
        r.headers = headers(hdrs)?;
        self.conn().reject(r).map_err(|e| ws_error(py, &e))
    }
}

#[pymethods]
impl Connection {
    /// Feeds bytes read from the transport. Any number of frames, or part of
    /// one, may arrive in one call. `None` or `b""` means the transport
    /// reached end of stream (like `receive_eof()`). Never raises for bad
    /// input from the peer: that ends the connection with a `Closed` event.
    #[pyo3(signature = (data, now=None))]
    fn receive_data(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let now = now_ms(py, now)?;
        if data.is_none() {
            self.conn().handle_eof(now);
            return Ok(());
        }
        let bytes = bytes_like(data, "data")?;
        if bytes.is_empty() {
            self.conn().handle_eof(now);
        } else {
            self.conn().handle_input(now, &bytes);
        }
        Ok(())
    }

    /// Tells the connection the transport reached end of stream.
    #[pyo3(signature = (now=None))]
    fn receive_eof(&mut self, py: Python<'_>, now: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let now = now_ms(py, now)?;
        self.conn().handle_eof(now);
        Ok(())
    }

    /// An iterator over the pending events. It is lazy: events that calls
    /// made during the iteration produce (for example the `Open` after
    /// `accept()`) are yielded by the same loop.
    fn events(slf: Bound<'_, Self>) -> EventIter {
        EventIter { conn: slf.unbind() }
    }

    /// The next pending event, or `None`.
    fn next_event(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.conn().poll_event() {
            Some(e) => events::to_py(py, e).map(Some),
            None => Ok(None),
        }
    }

    /// Every byte waiting to be written to the transport, concatenated
    /// (`b""` when there is nothing). Call it after every input and send
    /// call; once `closed` is true and this returns `b""`, close the socket.
    fn data_to_send<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.drain_output(py)
    }

    /// Queues a text message.
    fn send_text(&mut self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<()> {
        match text.cast::<PyString>() {
            Ok(s) => self.send_str(py, s),
            Err(_) => Err(PyTypeError::new_err(format!(
                "send_text() expects str, not {}",
                type_name(text)
            ))),
        }
    }

    /// Queues a binary message (`bytes`, `bytearray` or `memoryview`).
    fn send_binary(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.send_bin(py, data)
    }

    /// Queues many messages in one call: each `str` is sent as text, each
    /// bytes-like object as binary. Stops at the first failure, leaving the
    /// messages before it queued.
    fn send_messages(&mut self, py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<()> {
        for m in messages.try_iter()? {
            let m = m?;
            if let Ok(s) = m.cast::<PyString>() {
                self.send_str(py, s)?;
            } else {
                self.send_bin(py, &m)?;
            }
        }
        Ok(())
    }

    /// Queues one fragment of a streamed message. The first fragment's type
    /// (`str`: text, bytes-like: binary) decides the message type; `fin=True`
    /// ends it. Text fragments must each be valid UTF-8 on their own.
    #[pyo3(signature = (data, fin))]
    fn send_fragment(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        fin: bool,
    ) -> PyResult<()> {
        let (is_text, payload): (bool, Vec<u8>) = if data.is_instance_of::<PyString>() {
            (true, string(data, "data")?.into_bytes())
        } else {
            (false, bytes_like(data, "data")?.into_owned())
        };
        let op = match (self.fragmenting, is_text) {
            (true, _) => OpCode::Continuation,
            (false, true) => OpCode::Text,
            (false, false) => OpCode::Binary,
        };
        self.conn()
            .send_fragment(op, &payload, fin)
            .map_err(|e| ws_error(py, &e))?;
        self.fragmenting = !fin;
        Ok(())
    }

    /// Queues a ping (at most 125 bytes of payload).
    #[pyo3(signature = (payload=None))]
    fn ping(&mut self, py: Python<'_>, payload: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.control(py, payload, true)
    }

    /// Queues an unsolicited pong (a one-way heartbeat).
    #[pyo3(signature = (payload=None))]
    fn pong(&mut self, py: Python<'_>, payload: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.control(py, payload, false)
    }

    /// Starts the closing handshake. `code` must be sendable (1000-1003,
    /// 1007-1014, 3000-4999), `reason` at most 123 bytes of UTF-8. A server
    /// still deciding on a request rejects it with 503 instead.
    #[pyo3(signature = (code=None, reason=None))]
    fn close(
        &mut self,
        py: Python<'_>,
        code: Option<&Bound<'_, PyAny>>,
        reason: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let reason = match reason {
            Some(r) if !r.is_none() => string(r, "reason")?,
            _ => String::new(),
        };
        match code {
            Some(c) if !c.is_none() => self.do_close(py, c, &reason),
            _ => {
                let c = 1000u16.into_pyobject(py)?.into_any();
                self.do_close(py, &c, &reason)
            }
        }
    }

    /// wsproto-style convenience: performs the action `event` describes and
    /// returns `data_to_send()`. Accepts `TextMessage`, `BinaryMessage`,
    /// `Ping`, `Pong`, `Close`, `AcceptConnection`, `RejectConnection`, or a
    /// plain `str` / bytes-like message.
    fn send<'py>(
        &mut self,
        py: Python<'py>,
        event: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if let Ok(s) = event.cast::<PyString>() {
            self.send_str(py, s)?;
        } else if let Ok(t) = event.cast::<events::TextMessage>() {
            let data = t.get().data.bind(py).clone();
            let s = data
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("TextMessage.data must be a str"))?;
            self.send_str(py, s)?;
        } else if let Ok(b) = event.cast::<events::BinaryMessage>() {
            let data = b.get().data.bind(py).clone();
            self.send_bin(py, &data)?;
        } else if let Ok(p) = event.cast::<events::Ping>() {
            let data = p.get().payload.bind(py).clone();
            self.control(py, Some(&data), true)?;
        } else if let Ok(p) = event.cast::<events::Pong>() {
            let data = p.get().payload.bind(py).clone();
            self.control(py, Some(&data), false)?;
        } else if let Ok(c) = event.cast::<events::Close>() {
            let code = c.get().code.bind(py).clone();
            let reason = string(c.get().reason.bind(py), "reason")?;
            self.do_close(py, &code, &reason)?;
        } else if let Ok(a) = event.cast::<events::AcceptConnection>() {
            let sp = a.get().subprotocol.bind(py).clone();
            let h = a.get().headers.bind(py).clone();
            self.do_accept(py, Some(&sp), Some(&h))?;
        } else if let Ok(r) = event.cast::<events::RejectConnection>() {
            let s = r.get().status.bind(py).clone();
            let b = r.get().body.bind(py).clone();
            let h = r.get().headers.bind(py).clone();
            self.do_reject(py, Some(&s), Some(&b), Some(&h))?;
        } else if event.is_instance_of::<PyBytes>()
            || event.is_instance_of::<pyo3::types::PyByteArray>()
            || event.is_instance_of::<pyo3::types::PyMemoryView>()
        {
            self.send_bin(py, event)?;
        } else {
            return Err(PyTypeError::new_err(format!(
                "send() cannot send a {}: pass TextMessage, BinaryMessage, Ping, Pong, Close, \
                 AcceptConnection, RejectConnection, str or bytes",
                type_name(event)
            )));
        }
        self.drain_output(py)
    }

    /// The next time (ms) `handle_timeout()` must be called, or `None` when
    /// no timer is armed.
    fn poll_timeout(&mut self) -> Option<u64> {
        self.conn().poll_timeout()
    }

    /// Runs the timers due at `now` (keep-alive pings, pong, idle,
    /// handshake and close timeouts).
    #[pyo3(signature = (now=None))]
    fn handle_timeout(&mut self, py: Python<'_>, now: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let now = now_ms(py, now)?;
        self.conn().handle_timeout(now);
        Ok(())
    }

    /// `"handshake"`, `"open"`, `"closing"` or `"closed"`.
    #[getter]
    fn state(&mut self) -> &'static str {
        match self.conn().state() {
            State::Handshake => STATE_NAMES[0],
            State::Open => STATE_NAMES[1],
            State::Closing => STATE_NAMES[2],
            State::Closed => STATE_NAMES[3],
        }
    }

    /// True once the connection has ended (write out `data_to_send()`, then
    /// close the transport).
    #[getter]
    fn closed(&mut self) -> bool {
        self.conn().is_closed()
    }

    /// `"server"` or `"client"`.
    #[getter]
    fn role(&mut self) -> &'static str {
        match self.conn().role() {
            Role::Server => "server",
            Role::Client => "client",
        }
    }

    /// Bytes queued and not yet taken by `data_to_send()`; use it for
    /// backpressure.
    #[getter]
    fn buffered_amount(&mut self) -> usize {
        self.conn().buffered_amount()
    }

    /// The negotiated subprotocol, once open.
    #[getter]
    fn subprotocol(&mut self) -> Option<String> {
        self.conn().subprotocol().map(str::to_owned)
    }

    fn __repr__(&mut self) -> String {
        format!(
            "<evsock.{}Connection state={}>",
            if self.conn().role() == Role::Server {
                "Server"
            } else {
                "Client"
            },
            self.state()
        )
    }
}

/// The server role: answer the client's upgrade `Request` with `accept()` or
/// `reject()`.
///
/// Keyword arguments set limits and timers (see the package docs for the
/// list); `timers=False` starts from a configuration with every timer off.
#[pyclass(extends = Connection, module = "evsock")]
pub struct ServerConnection;

#[pymethods]
impl ServerConnection {
    #[new]
    #[pyo3(signature = (*, now=None, timers=true, **config))]
    fn new(
        py: Python<'_>,
        now: Option<&Bound<'_, PyAny>>,
        timers: bool,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<(Self, Connection)> {
        let cfg = ws_config(py, timers, config, &[])?;
        let now = now_ms(py, now)?;
        Ok((
            ServerConnection,
            Connection::new(ws::Connection::server(cfg, now)),
        ))
    }

    /// Accepts the pending `Request`. `subprotocol`: `None` keeps the
    /// configuration's choice, `""` selects none. `headers`: extra response
    /// headers (dict or list of pairs).
    #[pyo3(signature = (subprotocol=None, headers=None))]
    fn accept(
        mut slf: PyRefMut<'_, Self>,
        py: Python<'_>,
        subprotocol: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        slf.as_super().do_accept(py, subprotocol, headers)
    }

    /// Rejects the pending `Request` with an HTTP `status` (300-599) and a
    /// text body; the connection then closes.
    #[pyo3(signature = (status=None, body=None, headers=None))]
    fn reject(
        mut slf: PyRefMut<'_, Self>,
        py: Python<'_>,
        status: Option<&Bound<'_, PyAny>>,
        body: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        slf.as_super().do_reject(py, status, body, headers)
    }
}

/// The client role: the upgrade request for `url` (`ws://host[:port]/path`)
/// is queued in `data_to_send()` at once.
///
/// `seed` makes the handshake key and every masking key deterministic (for
/// tests only: RFC 6455 wants them unpredictable); by default they come from
/// the operating system.
#[pyclass(extends = Connection, module = "evsock")]
pub struct ClientConnection;

#[pymethods]
impl ClientConnection {
    #[new]
    #[pyo3(signature = (url, *, subprotocols=None, origin=None, headers=None, seed=None, now=None, timers=true, **config))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: &Bound<'_, PyAny>,
        subprotocols: Option<&Bound<'_, PyAny>>,
        origin: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
        timers: bool,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<(Self, Connection)> {
        let url = string(url, "url")?;
        let mut req = ClientRequest::from_url(&url)
            .map_err(|e| invalid_arg(py, format!("invalid URL {url:?}: {e}")))?;
        if let Some(sp) = subprotocols {
            req.subprotocols = string_list(sp, "subprotocols", 64)?;
            check_tokens(py, &req.subprotocols, "subprotocols")?;
        }
        if let Some(o) = origin {
            if !o.is_none() {
                let o = string(o, "origin")?;
                if o.contains(['\r', '\n', '\0']) {
                    return Err(invalid_arg(py, "origin contains CR, LF or NUL"));
                }
                req.origin = Some(o);
            }
        }
        req.headers = crate::convert::headers(headers)?;
        let seed = match seed {
            Some(s) if !s.is_none() => Some(convert::uint(s, "seed", u64::MAX)?),
            _ => None,
        };
        let cfg = ws_config(py, timers, config, &[])?;
        let now = now_ms(py, now)?;
        let conn = ws::Connection::try_client(cfg, req, crate::rng::make(seed), now)
            .map_err(|e| ws_error(py, &e))?;
        Ok((ClientConnection, Connection::new(conn)))
    }
}

/// A lazy iterator over a connection's pending events.
#[pyclass(module = "evsock")]
pub struct EventIter {
    conn: Py<Connection>,
}

#[pymethods]
impl EventIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let ev = self.conn.bind(py).try_borrow_mut()?.conn().poll_event();
        match ev {
            Some(e) => events::to_py(py, e).map(Some),
            None => Ok(None),
        }
    }
}

/// Registers the classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Connection>()?;
    m.add_class::<ServerConnection>()?;
    m.add_class::<ClientConnection>()?;
    m.add_class::<EventIter>()?;
    Ok(())
}
