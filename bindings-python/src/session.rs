//! The event-vector session (`evsock.session`): acknowledged delivery,
//! request/reply, de-duplication and resume over any message transport.

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString};
use sync_wrapper::SyncWrapper;

use evsock::session::{
    self, CloseReason, Config, Format, MessageKind, Output, RequestError, Role, SendError,
    SessionError, SessionEvent,
};
use evsock::Rng;

use crate::convert::{bytes_like, now_ms, opt_ms, string, type_name, uint, usize_value};
use crate::errors::{err, invalid_arg, Exc};
use crate::value;

// ------------------------------------------------------------ helpers ---

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Json => "json",
        Format::MsgPack => "msgpack",
    }
}

fn parse_format(py: Python<'_>, v: &str) -> PyResult<Format> {
    match v {
        "json" => Ok(Format::Json),
        "msgpack" => Ok(Format::MsgPack),
        other => Err(invalid_arg(
            py,
            format!("format must be \"json\" or \"msgpack\", not {other:?}"),
        )),
    }
}

/// A raw wire payload as Python sees it: `str` for JSON (text messages),
/// `bytes` for MessagePack (binary messages).
fn wire_obj(py: Python<'_>, kind: MessageKind, b: &[u8]) -> Py<PyAny> {
    match kind {
        MessageKind::Text => PyString::new(py, &String::from_utf8_lossy(b))
            .into_any()
            .unbind(),
        MessageKind::Binary => PyBytes::new(py, b).into_any().unbind(),
    }
}

fn send_error(py: Python<'_>, e: &SendError) -> PyErr {
    let msg = match e {
        SendError::InvalidData(inner) => format!("{e}: {inner}"),
        SendError::TooLarge => format!("{e}: the envelope would exceed max_message_bytes"),
        SendError::NotConnected => {
            format!("{e}: fire-and-forget messages need an established connection (send_reliable() waits for one)")
        }
        _ => e.to_string(),
    };
    err(py, Exc::Session, Some(e.code()), msg)
}

/// Returns scripted numbers from `next_u64`, in a cycle (test vectors).
struct ScriptedRng {
    values: Vec<u64>,
    at: usize,
}

impl Rng for ScriptedRng {
    fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(&v[..n]);
        }
    }

    fn next_u64(&mut self) -> u64 {
        if self.values.is_empty() {
            return 0;
        }
        let v = self.values[self.at % self.values.len()];
        self.at = self.at.wrapping_add(1);
        v
    }
}

fn make_rng(
    seed: Option<&Bound<'_, PyAny>>,
    rng_values: Option<&Bound<'_, PyAny>>,
) -> PyResult<Box<dyn Rng + Send>> {
    if let Some(vals) = rng_values.filter(|v| !v.is_none()) {
        let mut values = Vec::new();
        for v in vals.try_iter()? {
            if values.len() == 4096 {
                return Err(invalid_arg(
                    vals.py(),
                    "rng_values holds more than 4096 numbers",
                ));
            }
            values.push(uint(&v?, "each rng_values item", u64::MAX)?);
        }
        return Ok(Box::new(ScriptedRng { values, at: 0 }));
    }
    let seed = match seed.filter(|s| !s.is_none()) {
        Some(s) => Some(uint(s, "seed", u64::MAX)?),
        None => None,
    };
    Ok(crate::rng::make(seed))
}

/// The session settings accepted as keyword arguments.
const SESSION_KEYS: &[&str] = &[
    "max_message_bytes",
    "max_batch_envelopes",
    "resume_window_ms",
    "resume_buffer_bytes",
    "resume_buffer_age_ms",
    "max_pending_requests",
    "max_incoming_requests",
    "max_request_timeout_ms",
    "ack_delay_ms",
    "ack_every",
    "ping_interval_ms",
    "idle_timeout_ms",
    "handshake_timeout_ms",
    "batch_window_ms",
    "batch_max_bytes",
    "backoff_base_ms",
    "backoff_max_ms",
];

/// Builds a session [`Config`] from keyword arguments.
pub fn session_config(
    py: Python<'_>,
    format: &str,
    kwargs: Option<&Bound<'_, PyDict>>,
    skip: &[&str],
) -> PyResult<Config> {
    let mut c = Config {
        format: parse_format(py, format)?,
        ..Config::default()
    };
    let ms = |v: &Bound<'_, PyAny>, k: &str| crate::convert::ms_value(v, k);
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            let key: String = k.cast::<PyString>()?.to_str()?.to_owned();
            if skip.contains(&key.as_str()) {
                continue;
            }
            let k = key.as_str();
            match k {
                "max_message_bytes" => c.max_message_bytes = usize_value(&v, k, usize::MAX)?,
                "max_batch_envelopes" => {
                    c.max_batch_envelopes = usize_value(&v, k, 1 << 20)?;
                    if c.max_batch_envelopes == 0 {
                        return Err(invalid_arg(py, "max_batch_envelopes must be at least 1"));
                    }
                }
                "resume_window_ms" => c.resume_window_ms = ms(&v, k)?,
                "resume_buffer_bytes" => c.resume_buffer_bytes = usize_value(&v, k, usize::MAX)?,
                "resume_buffer_age_ms" => c.resume_buffer_age_ms = ms(&v, k)?,
                "max_pending_requests" => c.max_pending_requests = usize_value(&v, k, usize::MAX)?,
                "max_incoming_requests" => {
                    c.max_incoming_requests = usize_value(&v, k, usize::MAX)?
                }
                "max_request_timeout_ms" => c.max_request_timeout_ms = ms(&v, k)?,
                "ack_delay_ms" => c.ack_delay_ms = ms(&v, k)?,
                "ack_every" => c.ack_every = uint(&v, k, u64::MAX)?,
                "ping_interval_ms" => c.ping_interval_ms = opt_ms(&v, k)?,
                "idle_timeout_ms" => c.idle_timeout_ms = opt_ms(&v, k)?,
                "handshake_timeout_ms" => c.handshake_timeout_ms = ms(&v, k)?,
                "batch_window_ms" => c.batch_window_ms = ms(&v, k)?,
                "batch_max_bytes" => c.batch_max_bytes = usize_value(&v, k, usize::MAX)?,
                "backoff_base_ms" => c.backoff_base_ms = ms(&v, k)?,
                "backoff_max_ms" => c.backoff_max_ms = ms(&v, k)?,
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "unexpected keyword argument '{other}'; session settings are: {}",
                        SESSION_KEYS.join(", ")
                    )))
                }
            }
        }
    }
    Ok(c)
}

/// Names of the session settings, for hosts that split keyword arguments.
#[pyfunction]
pub fn session_settings() -> Vec<&'static str> {
    SESSION_KEYS.to_vec()
}

/// Names of the WebSocket settings, for hosts that split keyword arguments.
#[pyfunction]
pub fn websocket_settings() -> Vec<&'static str> {
    crate::config::WS_KEYS.to_vec()
}

// -------------------------------------------------------- data fields ---

/// An encoded data element with its decoded form computed on first use.
struct Data {
    raw: Bytes,
    format: Format,
    decoded: PyOnceLock<Py<PyAny>>,
}

impl Data {
    fn new(raw: Bytes, format: Format) -> Self {
        Data {
            raw,
            format,
            decoded: PyOnceLock::new(),
        }
    }

    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.decoded
            .get_or_try_init(py, || {
                value::decode(py, &self.raw, self.format).map(Bound::unbind)
            })
            .map(|v| v.clone_ref(py))
    }

    fn raw(&self, py: Python<'_>) -> Py<PyAny> {
        wire_obj(py, self.format.kind(), &self.raw)
    }
}

// ------------------------------------------------------ output classes ---

/// Send `message` on the current transport connection: a `str` goes out
/// as a text message, `bytes` as a binary one.
#[pyclass(frozen, module = "evsock.session", name = "Send")]
pub struct SendOut {
    #[pyo3(get)]
    message: Py<PyAny>,
}

#[pymethods]
impl SendOut {
    #[classattr]
    fn __match_args__() -> (&'static str,) {
        ("message",)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Send({})", self.message.bind(py).repr()?))
    }
}

/// The session handshake completed on a new connection. `resumed` is false
/// for a fresh session.
#[pyclass(frozen, module = "evsock.session", get_all)]
pub struct Established {
    session_id: String,
    resumed: bool,
}

#[pymethods]
impl Established {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("session_id", "resumed")
    }
    fn __repr__(&self) -> String {
        format!(
            "Established(session_id={:?}, resumed={})",
            self.session_id,
            py_bool(self.resumed)
        )
    }
}

/// Client: the server could not resume the session; a fresh one follows and
/// pending requests failed. `unconfirmed` is the range `(first, last)` of our
/// reliable ids never confirmed as received, or `None`.
#[pyclass(frozen, module = "evsock.session", get_all)]
pub struct Reset {
    unconfirmed: Option<(u64, u64)>,
}

#[pymethods]
impl Reset {
    #[classattr]
    fn __match_args__() -> (&'static str,) {
        ("unconfirmed",)
    }
    fn __repr__(&self) -> String {
        match self.unconfirmed {
            Some((a, b)) => format!("Reset(unconfirmed=({a}, {b}))"),
            None => "Reset(unconfirmed=None)".into(),
        }
    }
}

/// Incoming reliable ids `first..=last` were evicted by the peer and will
/// never arrive.
#[pyclass(frozen, module = "evsock.session", get_all)]
pub struct Gap {
    first: u64,
    last: u64,
}

#[pymethods]
impl Gap {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("first", "last")
    }
    fn __repr__(&self) -> String {
        format!("Gap(first={}, last={})", self.first, self.last)
    }
}

/// An application event. `id` is its reliable sequence number, or `None`
/// for fire-and-forget. `data` is decoded on first access; `raw` is the
/// encoded element (`str` JSON or `bytes` MessagePack).
#[pyclass(frozen, module = "evsock.session", name = "Message")]
pub struct MessageEv {
    #[pyo3(get)]
    event: String,
    #[pyo3(get)]
    id: Option<u64>,
    data: Data,
}

#[pymethods]
impl MessageEv {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str) {
        ("event", "data", "id")
    }
    #[getter]
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.data.data(py)
    }
    #[getter]
    fn raw(&self, py: Python<'_>) -> Py<PyAny> {
        self.data.raw(py)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Message(event={:?}, id={}, raw={})",
            self.event,
            opt_num(self.id),
            short_repr(py, &self.data.raw(py))?
        ))
    }
}

/// An incoming request: answer with `reply(req, data)` or
/// `reply_error(req, data)` within `timeout_ms`.
#[pyclass(frozen, module = "evsock.session", name = "Request")]
pub struct RequestEv {
    #[pyo3(get)]
    req: u64,
    #[pyo3(get)]
    event: String,
    #[pyo3(get)]
    timeout_ms: u64,
    #[pyo3(get)]
    idempotency_key: Option<String>,
    data: Data,
}

#[pymethods]
impl RequestEv {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str) {
        ("req", "event", "data")
    }
    #[getter]
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.data.data(py)
    }
    #[getter]
    fn raw(&self, py: Python<'_>) -> Py<PyAny> {
        self.data.raw(py)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Request(req={}, event={:?}, timeout_ms={}, idempotency_key={:?}, raw={})",
            self.req,
            self.event,
            self.timeout_ms,
            self.idempotency_key,
            short_repr(py, &self.data.raw(py))?
        ))
    }
}

/// The reply to our request `req`.
#[pyclass(frozen, module = "evsock.session", name = "Reply")]
pub struct ReplyEv {
    #[pyo3(get)]
    req: u64,
    data: Data,
}

#[pymethods]
impl ReplyEv {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("req", "data")
    }
    #[getter]
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.data.data(py)
    }
    #[getter]
    fn raw(&self, py: Python<'_>) -> Py<PyAny> {
        self.data.raw(py)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Reply(req={}, raw={})",
            self.req,
            short_repr(py, &self.data.raw(py))?
        ))
    }
}

/// Our request `req` ended without a reply. `error` is `"timeout"`,
/// `"session_closed"`, `"resume_failed"` or `"remote"` (the peer answered
/// with an error; then `data` / `raw` hold its error data).
#[pyclass(frozen, module = "evsock.session", name = "RequestFailed")]
pub struct RequestFailedEv {
    #[pyo3(get)]
    req: u64,
    #[pyo3(get)]
    error: &'static str,
    data: Option<Data>,
}

#[pymethods]
impl RequestFailedEv {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str) {
        ("req", "error", "data")
    }
    #[getter]
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.data {
            Some(d) => d.data(py),
            None => Ok(py.None()),
        }
    }
    #[getter]
    fn raw(&self, py: Python<'_>) -> Py<PyAny> {
        match &self.data {
            Some(d) => d.raw(py),
            None => py.None(),
        }
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let raw = self.raw(py);
        Ok(format!(
            "RequestFailed(req={}, error={:?}, raw={})",
            self.req,
            self.error,
            short_repr(py, &raw)?
        ))
    }
}

/// Client: the reconnect delay has passed; open a new transport connection
/// now and call `handle_connected()` (or `handle_disconnected()` if it
/// fails).
#[pyclass(frozen, module = "evsock.session")]
pub struct Reconnect;

#[pymethods]
impl Reconnect {
    fn __repr__(&self) -> &'static str {
        "Reconnect()"
    }
}

/// Close the current transport connection (the session already treats it as
/// gone). `reason`: `"idle_timeout"`, `"handshake_timeout"`,
/// `"protocol_error"`, `"go_away"` or `"session_closed"`.
#[pyclass(frozen, module = "evsock.session", get_all)]
pub struct CloseTransport {
    reason: &'static str,
}

#[pymethods]
impl CloseTransport {
    #[classattr]
    fn __match_args__() -> (&'static str,) {
        ("reason",)
    }
    fn __repr__(&self) -> String {
        format!("CloseTransport(reason={:?})", self.reason)
    }
}

/// Server: the resume window passed without a reconnect; drop the session.
#[pyclass(frozen, module = "evsock.session")]
pub struct Expired;

#[pymethods]
impl Expired {
    fn __repr__(&self) -> &'static str {
        "Expired()"
    }
}

/// The session ended for good.
#[pyclass(frozen, module = "evsock.session", name = "Closed", get_all)]
pub struct ClosedEv {
    by_peer: bool,
}

#[pymethods]
impl ClosedEv {
    #[classattr]
    fn __match_args__() -> (&'static str,) {
        ("by_peer",)
    }
    fn __repr__(&self) -> String {
        format!("Closed(by_peer={})", py_bool(self.by_peer))
    }
}

/// The session ignored a bad input. `code` is a stable name (`"envelope"`,
/// `"out_of_order"`, `"wrong_kind"`, ...), `message` describes it.
#[pyclass(frozen, module = "evsock.session", name = "Error", get_all)]
pub struct ErrorEv {
    code: &'static str,
    message: String,
}

#[pymethods]
impl ErrorEv {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("code", "message")
    }
    fn __repr__(&self) -> String {
        format!("Error(code={:?}, message={:?})", self.code, self.message)
    }
}

/// What `peek_hello()` read from the first message of a connection.
#[pyclass(frozen, module = "evsock.session", get_all)]
pub struct Hello {
    format: &'static str,
    session_id: Option<String>,
    rx: u64,
    lo: u64,
    version: u64,
}

#[pymethods]
impl Hello {
    fn __repr__(&self) -> String {
        format!(
            "Hello(format={:?}, session_id={:?}, rx={}, lo={}, version={})",
            self.format, self.session_id, self.rx, self.lo, self.version
        )
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn opt_num(v: Option<u64>) -> String {
    v.map_or_else(|| "None".into(), |n| n.to_string())
}

fn short_repr(py: Python<'_>, v: &Py<PyAny>) -> PyResult<String> {
    let r = v.bind(py).repr()?.to_string();
    if r.chars().count() > 80 {
        Ok(r.chars().take(77).collect::<String>() + "...")
    } else {
        Ok(r)
    }
}

fn output_to_py(py: Python<'_>, o: Output, format: Format) -> PyResult<Py<PyAny>> {
    let obj = match o {
        Output::Send { kind, payload } => Py::new(
            py,
            SendOut {
                message: wire_obj(py, kind, &payload),
            },
        )?
        .into_any(),
        Output::Event(e) => match e {
            SessionEvent::Established {
                session_id,
                resumed,
            } => Py::new(
                py,
                Established {
                    session_id,
                    resumed,
                },
            )?
            .into_any(),
            SessionEvent::Reset { unconfirmed } => Py::new(py, Reset { unconfirmed })?.into_any(),
            SessionEvent::Gap { from, to } => Py::new(
                py,
                Gap {
                    first: from,
                    last: to,
                },
            )?
            .into_any(),
            SessionEvent::Message { event, data, id } => Py::new(
                py,
                MessageEv {
                    event: event.as_str().to_owned(),
                    id,
                    data: Data::new(data, format),
                },
            )?
            .into_any(),
            SessionEvent::Request {
                req,
                event,
                data,
                timeout_ms,
                idempotency_key,
            } => Py::new(
                py,
                RequestEv {
                    req,
                    event: event.as_str().to_owned(),
                    timeout_ms,
                    idempotency_key: idempotency_key.map(String::from),
                    data: Data::new(data, format),
                },
            )?
            .into_any(),
            SessionEvent::Reply { req, data } => Py::new(
                py,
                ReplyEv {
                    req,
                    data: Data::new(data, format),
                },
            )?
            .into_any(),
            SessionEvent::RequestFailed { req, error } => {
                let code = error.code();
                let data = match error {
                    RequestError::Remote(d) => Some(Data::new(d, format)),
                    _ => None,
                };
                Py::new(
                    py,
                    RequestFailedEv {
                        req,
                        error: code,
                        data,
                    },
                )?
                .into_any()
            }
            SessionEvent::Reconnect => Py::new(py, Reconnect)?.into_any(),
            SessionEvent::CloseTransport { reason } => Py::new(
                py,
                CloseTransport {
                    reason: close_reason(reason),
                },
            )?
            .into_any(),
            SessionEvent::Expired => Py::new(py, Expired)?.into_any(),
            SessionEvent::Closed { by_peer } => Py::new(py, ClosedEv { by_peer })?.into_any(),
            SessionEvent::Error(e) => Py::new(
                py,
                ErrorEv {
                    code: e.code(),
                    message: session_error_message(&e),
                },
            )?
            .into_any(),
        },
    };
    Ok(obj)
}

fn close_reason(r: CloseReason) -> &'static str {
    r.code()
}

fn session_error_message(e: &SessionError) -> String {
    e.to_string()
}

// ------------------------------------------------------------ Session ---

/// One end of an evsock session: a sans-IO state machine over whole
/// transport messages (normally WebSocket messages).
///
/// Feed it `handle_connected()`, `handle_message()`, `handle_disconnected()`
/// and `handle_timeout()`; drain `outputs()` after every call: `Send`
/// outputs go on the transport, the rest are events. Data arguments are
/// Python values (encoded in the session's format) unless `raw=True`, in
/// which case they are already-encoded JSON text (`str`) or MessagePack
/// (`bytes`).
#[pyclass(module = "evsock.session", name = "Session")]
pub struct PySession {
    inner: SyncWrapper<session::Session>,
}

impl PySession {
    fn s(&mut self) -> &mut session::Session {
        self.inner.get_mut()
    }

    fn data_arg(
        &mut self,
        py: Python<'_>,
        data: Option<&Bound<'_, PyAny>>,
        raw: bool,
    ) -> PyResult<Bytes> {
        let Some(d) = data else {
            return Ok(Bytes::new());
        };
        if d.is_none() {
            return Ok(Bytes::new());
        }
        let format = self.s().format();
        if raw {
            if let Ok(s) = d.cast::<PyString>() {
                return Ok(Bytes::from(string(s.as_any(), "raw data")?.into_bytes()));
            }
            return Ok(Bytes::from(
                bytes_like(d, "raw data")
                    .map_err(|_| {
                        PyTypeError::new_err(format!(
                            "raw data must be str (JSON) or bytes (MessagePack), not {}",
                            type_name(d)
                        ))
                    })?
                    .into_owned(),
            ));
        }
        let _ = py;
        value::encode(d, format)
    }
}

#[pymethods]
impl PySession {
    /// A client session. Open a transport, then call `handle_connected()`;
    /// the session sends its hello. `format` is `"json"` (text messages) or
    /// `"msgpack"` (binary). `seed` makes reconnect jitter deterministic;
    /// `rng_values` scripts the random numbers outright (test vectors).
    #[staticmethod]
    #[pyo3(signature = (*, format="json", seed=None, rng_values=None, **config))]
    fn client(
        py: Python<'_>,
        format: &str,
        seed: Option<&Bound<'_, PyAny>>,
        rng_values: Option<&Bound<'_, PyAny>>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let cfg = session_config(py, format, config, &[])?;
        Ok(PySession {
            inner: SyncWrapper::new(session::Session::client(cfg, make_rng(seed, rng_values)?)),
        })
    }

    /// A server session with the given id (see `new_session_id()`). Call
    /// `handle_connected()`, then hand it the hello message. A server
    /// answers in the format of the hello it receives.
    #[staticmethod]
    #[pyo3(signature = (session_id, *, format="json", seed=None, rng_values=None, **config))]
    fn server(
        py: Python<'_>,
        session_id: &Bound<'_, PyAny>,
        format: &str,
        seed: Option<&Bound<'_, PyAny>>,
        rng_values: Option<&Bound<'_, PyAny>>,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let sid = string(session_id, "session_id")?;
        let cfg = session_config(py, format, config, &[])?;
        let s = session::Session::server(cfg, &sid, make_rng(seed, rng_values)?).map_err(|_| {
            invalid_arg(
                py,
                format!(
                    "invalid session id {sid:?}: use 1 to 64 printable ASCII characters without \
                     space, '\"' or '\\\\'"
                ),
            )
        })?;
        Ok(PySession {
            inner: SyncWrapper::new(s),
        })
    }

    /// A transport connection opened (a client sends its hello now).
    #[pyo3(signature = (now=None))]
    fn handle_connected(&mut self, py: Python<'_>, now: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let now = now_ms(py, now)?;
        self.s().handle_connected(now);
        Ok(())
    }

    /// The transport connection closed or failed (also a failed connection
    /// attempt). A client schedules a reconnect; a server starts its resume
    /// window.
    #[pyo3(signature = (now=None))]
    fn handle_disconnected(
        &mut self,
        py: Python<'_>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let now = now_ms(py, now)?;
        self.s().handle_disconnected(now);
        Ok(())
    }

    /// A whole transport message arrived: `str` for a text message, bytes
    /// for a binary one. Bad input never raises; it yields an `Error` event.
    #[pyo3(signature = (message, now=None))]
    fn handle_message(
        &mut self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let now = now_ms(py, now)?;
        if let Ok(s) = message.cast::<PyString>() {
            let text = string(s.as_any(), "message")?;
            self.s()
                .handle_message_bytes(now, MessageKind::Text, Bytes::from(text.into_bytes()));
        } else {
            let b = bytes_like(message, "message").map_err(|_| {
                PyTypeError::new_err(format!(
                    "message must be str (a text message) or bytes (a binary one), not {}",
                    type_name(message)
                ))
            })?;
            self.s().handle_message(now, MessageKind::Binary, &b);
        }
        Ok(())
    }

    /// Runs the timers due at `now` (acks, pings, request timeouts, idle and
    /// handshake timeouts, reconnects, resume-window expiry).
    #[pyo3(signature = (now=None))]
    fn handle_timeout(&mut self, py: Python<'_>, now: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let now = now_ms(py, now)?;
        self.s().handle_timeout(now);
        Ok(())
    }

    /// Sends a fire-and-forget event (only while established; not
    /// acknowledged).
    #[pyo3(signature = (event, data=None, *, raw=false, now=None))]
    fn send(
        &mut self,
        py: Python<'_>,
        event: &str,
        data: Option<&Bound<'_, PyAny>>,
        raw: bool,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let data = self.data_arg(py, data, raw)?;
        let now = now_ms(py, now)?;
        self.s()
            .send(now, event, data)
            .map_err(|e| send_error(py, &e))
    }

    /// Sends a reliable event: numbered, acknowledged, retransmitted after a
    /// reconnect, delivered once and in order. Accepted while disconnected;
    /// while the session handshakes, refused (`buffer_full`) once the resume
    /// buffer is full. Returns its id.
    #[pyo3(signature = (event, data=None, *, raw=false, now=None))]
    fn send_reliable(
        &mut self,
        py: Python<'_>,
        event: &str,
        data: Option<&Bound<'_, PyAny>>,
        raw: bool,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let data = self.data_arg(py, data, raw)?;
        let now = now_ms(py, now)?;
        self.s()
            .send_reliable(now, event, data)
            .map_err(|e| send_error(py, &e))
    }

    /// Sends a reliable request; it ends in exactly one `Reply` or
    /// `RequestFailed` with the returned id, at the latest `timeout_ms` from
    /// now. `idempotency_key` lets a server answer a retry from its cache.
    #[pyo3(signature = (event, data=None, *, timeout_ms, idempotency_key=None, raw=false, now=None))]
    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        py: Python<'_>,
        event: &str,
        data: Option<&Bound<'_, PyAny>>,
        timeout_ms: &Bound<'_, PyAny>,
        idempotency_key: Option<&str>,
        raw: bool,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let data = self.data_arg(py, data, raw)?;
        let timeout = crate::convert::ms_value(timeout_ms, "timeout_ms")?;
        let now = now_ms(py, now)?;
        let r = match idempotency_key {
            Some(k) => self.s().request_idempotent(now, event, data, timeout, k),
            None => self.s().request(now, event, data, timeout),
        };
        r.map_err(|e| send_error(py, &e))
    }

    /// Answers incoming request `req`.
    #[pyo3(signature = (req, data=None, *, raw=false, now=None))]
    fn reply(
        &mut self,
        py: Python<'_>,
        req: &Bound<'_, PyAny>,
        data: Option<&Bound<'_, PyAny>>,
        raw: bool,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let req = uint(req, "req", u64::MAX)?;
        let data = self.data_arg(py, data, raw)?;
        let now = now_ms(py, now)?;
        self.s()
            .reply(now, req, data)
            .map_err(|e| send_error(py, &e))
    }

    /// Answers incoming request `req` with an error; the requester sees
    /// `RequestFailed(error="remote")` with this data.
    #[pyo3(signature = (req, data=None, *, raw=false, now=None))]
    fn reply_error(
        &mut self,
        py: Python<'_>,
        req: &Bound<'_, PyAny>,
        data: Option<&Bound<'_, PyAny>>,
        raw: bool,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let req = uint(req, "req", u64::MAX)?;
        let data = self.data_arg(py, data, raw)?;
        let now = now_ms(py, now)?;
        self.s()
            .reply_error(now, req, data)
            .map_err(|e| send_error(py, &e))
    }

    /// Ends the session for good (tells the peer when connected).
    #[pyo3(signature = (now=None))]
    fn close(&mut self, py: Python<'_>, now: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let now = now_ms(py, now)?;
        self.s().close(now);
        Ok(())
    }

    /// Server: asks the client to disconnect and stay away for
    /// `retry_after_ms`; the session stays resumable.
    #[pyo3(signature = (retry_after_ms, now=None))]
    fn go_away(
        &mut self,
        py: Python<'_>,
        retry_after_ms: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let ra = crate::convert::ms_value(retry_after_ms, "retry_after_ms")?;
        let now = now_ms(py, now)?;
        self.s().go_away(now, ra);
        Ok(())
    }

    /// An iterator over pending outputs (`Send` and events), lazily drained.
    fn outputs(slf: Bound<'_, Self>) -> OutputIter {
        OutputIter { s: slf.unbind() }
    }

    /// The next pending output, or `None`.
    fn next_output(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let format = self.s().format();
        match self.s().poll_output() {
            Some(o) => output_to_py(py, o, format).map(Some),
            None => Ok(None),
        }
    }

    /// When (ms) `handle_timeout()` must be called next, or `None`.
    fn poll_timeout(&mut self) -> Option<u64> {
        self.s().poll_timeout()
    }

    /// Encodes `value` in this session's format (`str` JSON or `bytes`
    /// MessagePack), for `raw=True` calls.
    fn encode(&mut self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let f = self.s().format();
        let b = value::encode(value, f)?;
        Ok(wire_obj(py, f.kind(), &b))
    }

    /// `"client"` or `"server"`.
    #[getter]
    fn role(&mut self) -> &'static str {
        match self.s().role() {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    /// The session id (a client learns it from its first welcome).
    #[getter]
    fn session_id(&mut self) -> Option<String> {
        self.s().session_id().map(str::to_owned)
    }

    /// `"json"` or `"msgpack"`.
    #[getter]
    fn format(&mut self) -> &'static str {
        format_name(self.s().format())
    }

    /// A connection is open and its handshake done.
    #[getter]
    fn established(&mut self) -> bool {
        self.s().is_established()
    }

    /// The session ended for good (closed or expired).
    #[getter]
    fn closed(&mut self) -> bool {
        self.s().is_closed()
    }

    /// Outgoing requests still waiting for a reply.
    #[getter]
    fn pending_requests(&mut self) -> usize {
        self.s().pending_requests()
    }

    /// Reliable messages not yet acknowledged by the peer.
    #[getter]
    fn unacked_messages(&mut self) -> usize {
        self.s().unacked_messages()
    }

    /// Encoded bytes of the unacknowledged reliable messages.
    #[getter]
    fn unacked_bytes(&mut self) -> usize {
        self.s().unacked_bytes()
    }

    /// Highest peer id received in order.
    #[getter]
    fn last_received_id(&mut self) -> u64 {
        self.s().last_received_id()
    }

    fn __repr__(&mut self) -> String {
        let role = self.role();
        let established = py_bool(self.s().is_established());
        let id = self.s().session_id().unwrap_or("").to_owned();
        format!("<evsock.session.Session role={role} id={id:?} established={established}>")
    }
}

/// A lazy iterator over a session's pending outputs.
#[pyclass(module = "evsock.session")]
pub struct OutputIter {
    s: Py<PySession>,
}

#[pymethods]
impl OutputIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut s = self.s.bind(py).try_borrow_mut()?;
        let format = s.s().format();
        let o = s.s().poll_output();
        drop(s);
        match o {
            Some(o) => output_to_py(py, o, format).map(Some),
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------- module functions ---

/// A fresh random session id (22 characters, base64url).
#[pyfunction]
#[pyo3(signature = (seed=None))]
fn new_session_id(seed: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let mut rng = make_rng(seed, None)?;
    Ok(session::new_session_id(&mut *rng))
}

/// Reads the hello from the first message of a new connection (`str` or
/// `bytes`), to find the session to resume. Raises `SessionError` (kind
/// `"envelope"`) if the message is not a valid hello.
#[pyfunction]
fn peek_hello(py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Hello> {
    let (kind, bytes): (MessageKind, Vec<u8>) = if let Ok(s) = message.cast::<PyString>() {
        (
            MessageKind::Text,
            string(s.as_any(), "message")?.into_bytes(),
        )
    } else {
        (
            MessageKind::Binary,
            bytes_like(message, "message")?.into_owned(),
        )
    };
    let h = session::peek_hello(kind, &bytes).map_err(|e| {
        err(
            py,
            Exc::Session,
            Some("envelope"),
            format!("not a session hello: {e}"),
        )
    })?;
    Ok(Hello {
        format: format_name(h.format),
        session_id: h.session_id,
        rx: h.rx,
        lo: h.lo,
        version: h.version,
    })
}

/// A session-less `evs/bye` asking a client to go away and retry after
/// `retry_after_ms` (for refusing a connection before creating a session).
#[pyfunction]
#[pyo3(signature = (retry_after_ms, format="json"))]
fn encode_go_away(
    py: Python<'_>,
    retry_after_ms: &Bound<'_, PyAny>,
    format: &str,
) -> PyResult<Py<PyAny>> {
    let f = parse_format(py, format)?;
    let ra = crate::convert::ms_value(retry_after_ms, "retry_after_ms")?;
    let b = session::encode_go_away(f, ra);
    Ok(wire_obj(py, f.kind(), &b))
}

/// Encodes a Python value as session data: `str` JSON or `bytes`
/// MessagePack.
#[pyfunction]
#[pyo3(signature = (value, format="json"))]
fn encode(py: Python<'_>, value: &Bound<'_, PyAny>, format: &str) -> PyResult<Py<PyAny>> {
    let f = parse_format(py, format)?;
    let b = value::encode(value, f)?;
    Ok(wire_obj(py, f.kind(), &b))
}

/// Decodes session data: a `str` as JSON, bytes as MessagePack.
#[pyfunction]
fn decode<'py>(py: Python<'py>, raw: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(s) = raw.cast::<PyString>() {
        let t = string(s.as_any(), "raw")?;
        value::decode(py, t.as_bytes(), Format::Json)
    } else {
        let b = bytes_like(raw, "raw")?;
        value::decode(py, &b, Format::MsgPack)
    }
}

/// Registers the session classes and functions under their own names in
/// `_evsock` (the Python package `evsock.session` re-exports them).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Session", py.get_type::<PySession>())?;
    m.add("SessionSend", py.get_type::<SendOut>())?;
    m.add("SessionEstablished", py.get_type::<Established>())?;
    m.add("SessionReset", py.get_type::<Reset>())?;
    m.add("SessionGap", py.get_type::<Gap>())?;
    m.add("SessionMessage", py.get_type::<MessageEv>())?;
    m.add("SessionRequest", py.get_type::<RequestEv>())?;
    m.add("SessionReply", py.get_type::<ReplyEv>())?;
    m.add("SessionRequestFailed", py.get_type::<RequestFailedEv>())?;
    m.add("SessionReconnect", py.get_type::<Reconnect>())?;
    m.add("SessionCloseTransport", py.get_type::<CloseTransport>())?;
    m.add("SessionExpired", py.get_type::<Expired>())?;
    m.add("SessionClosed", py.get_type::<ClosedEv>())?;
    m.add("SessionErrorEvent", py.get_type::<ErrorEv>())?;
    m.add("SessionHello", py.get_type::<Hello>())?;
    m.add("SessionOutputIter", py.get_type::<OutputIter>())?;
    m.add_function(wrap_pyfunction!(new_session_id, m)?)?;
    m.add_function(wrap_pyfunction!(peek_hello, m)?)?;
    m.add_function(wrap_pyfunction!(encode_go_away, m)?)?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(session_settings, m)?)?;
    m.add_function(wrap_pyfunction!(websocket_settings, m)?)?;
    Ok(())
}
