//! `evsock_conn`: one WebSocket connection, driven by bytes and time in,
//! bytes, events and a deadline out.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use bytes::Bytes;
use evsock::ws::{
    Accept, ClientRequest, CloseCode, Config, Connection, Event, OpCode, Output, Reject, State,
};
use evsock::{Rng, SeededRng};

use crate::config::{config_ref, evsock_config};
use crate::event::{data_ptr, evsock_event, Held};
use crate::handle::{free_handle, with_handle, Handle};
use crate::rng::{evsock_fill_fn, os_rng, CallbackRng};
use crate::status::{evsock_status, guard, Fail, FfiResult};
use crate::util::{array_arg, bytes_arg, c_str_arg, headers_arg, is_token, opt_c_str_arg};

use evsock_status::{EVSOCK_EMPTY, EVSOCK_OK};

/// An opaque WebSocket connection (server or client role).
///
/// Create with `evsock_conn_new_server` or `evsock_conn_new_client*`, free
/// with `evsock_conn_free`. A connection may move between threads but must
/// not be used by two threads at once (a concurrent call fails with
/// `EVSOCK_ERR_BUSY` rather than corrupting it).
pub struct evsock_conn {
    _opaque: [u8; 0],
}

const CONN_MAGIC: u64 = 0x6576_736f_636b_434e; // "evsockCN"

/// The object behind an `evsock_conn *`.
struct ConnInner {
    conn: Connection,
    /// The bytes the last transmit poll pointed C at.
    transmit: Option<Bytes>,
    /// The event the last event poll pointed C at.
    event: Option<Held>,
}

/// The WebSocket state of a connection.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_state {
    /// The upgrade handshake is in progress.
    EVSOCK_STATE_HANDSHAKE = 0,
    /// Messages flow both ways.
    EVSOCK_STATE_OPEN = 1,
    /// A close frame was sent or received.
    EVSOCK_STATE_CLOSING = 2,
    /// Finished: write out what is left, then close the socket.
    EVSOCK_STATE_CLOSED = 3,
}

/// Frame opcodes for `evsock_conn_send_fragment`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_opcode {
    /// Continues the message started by a TEXT or BINARY fragment.
    EVSOCK_OPCODE_CONTINUATION = 0,
    /// Starts a text message.
    EVSOCK_OPCODE_TEXT = 1,
    /// Starts a binary message.
    EVSOCK_OPCODE_BINARY = 2,
}

/// An extra HTTP header for a handshake. Both strings are NUL-terminated,
/// borrowed only for the duration of the call, and copied.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evsock_header {
    /// The field name, an HTTP token (for example `Authorization`).
    pub name: *const c_char,
    /// The field value, without CR, LF or other control characters.
    pub value: *const c_char,
}

/// What a client connects to. Every pointer is borrowed only for the
/// duration of the constructor call; the strings are copied.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evsock_client_options {
    /// Required: `ws://host[:port]/path` (or `wss://`; TLS is the host's
    /// business). Gives the Host header and the request path.
    pub url: *const c_char,
    /// The Origin header to send, or NULL for none.
    pub origin: *const c_char,
    /// Subprotocols to offer, most preferred first: an array of
    /// `subprotocols_len` NUL-terminated tokens (NULL when the length is 0).
    pub subprotocols: *const *const c_char,
    /// Number of entries in `subprotocols`.
    pub subprotocols_len: usize,
    /// Extra request headers (for example Authorization or Cookie): an
    /// array of `headers_len` entries (NULL when the length is 0).
    pub headers: *const evsock_header,
    /// Number of entries in `headers`.
    pub headers_len: usize,
}

/// Runs `f` with exclusive access to the connection behind `ptr`.
///
/// # Safety
/// `ptr` is NULL or a live connection handle.
unsafe fn with_conn(
    ptr: *const evsock_conn,
    f: impl FnOnce(&mut ConnInner) -> FfiResult,
) -> evsock_status {
    // SAFETY: forwarded from the caller's contract.
    unsafe { with_handle(ptr, CONN_MAGIC, "conn", f) }
}

/// Writes a new handle for `conn` to `*out` (checked non-NULL by callers).
fn make(conn: Connection, out: *mut *mut evsock_conn) -> FfiResult {
    let h = Handle::into_raw(
        CONN_MAGIC,
        ConnInner {
            conn,
            transmit: None,
            event: None,
        },
    );
    // SAFETY: callers check `out` for NULL first; the caller of the C entry
    // point promises it is writable.
    unsafe { out.write(h.cast()) };
    Ok(EVSOCK_OK)
}

/// The config to use: the handle's, or the defaults for NULL.
///
/// # Safety
/// `cfg` is NULL or a live config handle.
unsafe fn config_arg(cfg: *const evsock_config) -> Result<Arc<Config>, Fail> {
    if cfg.is_null() {
        return Ok(Arc::new(Config::default()));
    }
    // SAFETY: forwarded from the caller's contract.
    Ok(unsafe { config_ref(cfg)? }.cfg.clone())
}

/// Creates a server connection waiting for a client's upgrade request.
///
/// `cfg` may be NULL for the defaults; the connection copies what it needs,
/// so the config may be changed or freed afterwards. `now_ms` is the host's
/// clock in milliseconds (any monotonic origin; it starts the handshake
/// timer). On success `*out` receives a handle the caller owns and must
/// release with `evsock_conn_free`; on failure `*out` is untouched.
///
/// # Safety
/// `cfg` must be NULL or a live config handle; `out` must be NULL (an error)
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_new_server(
    cfg: *const evsock_config,
    now_ms: u64,
    out: *mut *mut evsock_conn,
) -> evsock_status {
    guard(|| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        // SAFETY: forwarded from this function's contract.
        let cfg = unsafe { config_arg(cfg)? };
        make(Connection::server(cfg, now_ms), out)
    })
}

/// # Safety
/// `opts` is a valid options struct (see `evsock_conn_new_client`).
unsafe fn client_request(opts: *const evsock_client_options) -> Result<ClientRequest, Fail> {
    if opts.is_null() {
        return Err(Fail::null("opts"));
    }
    // SAFETY: non-NULL; the caller promises it points at a readable struct.
    let o = unsafe { &*opts };
    // SAFETY: the struct's contract (documented on its fields).
    let url = unsafe { c_str_arg(o.url, "url")? };
    let mut req = ClientRequest::from_url(url).map_err(|e| Fail::arg(format!("url: {e}")))?;
    // SAFETY: as above.
    if let Some(origin) = unsafe { opt_c_str_arg(o.origin, "origin")? } {
        if origin.chars().any(char::is_control) {
            return Err(Fail::arg("origin has a control character"));
        }
        req.origin = Some(origin.to_string());
    }
    // SAFETY: as above.
    let protos = unsafe { array_arg(o.subprotocols, o.subprotocols_len, "subprotocols")? };
    for &p in protos {
        // SAFETY: as above: each entry is a NUL-terminated string.
        let p = unsafe { c_str_arg(p, "subprotocol")? };
        if !is_token(p) {
            return Err(Fail::arg(format!("subprotocol {p:?} is not an HTTP token")));
        }
        req.subprotocols.push(p.to_string());
    }
    // SAFETY: as above.
    req.headers = unsafe { headers_arg(o.headers, o.headers_len)? };
    Ok(req)
}

/// # Safety
/// As for `evsock_conn_new_client`.
unsafe fn new_client(
    cfg: *const evsock_config,
    opts: *const evsock_client_options,
    rng: impl FnOnce() -> Box<dyn Rng + Send>,
    now_ms: u64,
    out: *mut *mut evsock_conn,
) -> FfiResult {
    if out.is_null() {
        return Err(Fail::null("out"));
    }
    // SAFETY: forwarded from the caller's contract.
    let cfg = unsafe { config_arg(cfg)? };
    // SAFETY: forwarded from the caller's contract.
    let req = unsafe { client_request(opts)? };
    make(Connection::try_client(cfg, req, rng(), now_ms)?, out)
}

/// Creates a client connection; the upgrade request is queued at once, so
/// the first `evsock_conn_poll_transmit` returns it.
///
/// `fill` supplies randomness for the handshake key and mask keys: NULL uses
/// the operating system's generator (getrandom), which is what production
/// hosts want. With a callback, `fill_user` is passed back to it and must
/// stay valid until the connection is freed (see `evsock_fill_fn`).
/// `cfg`, `now_ms`, `out` and ownership as for `evsock_conn_new_server`;
/// `opts` is read during the call only.
///
/// # Safety
/// `cfg` NULL or live; `opts` NULL (an error) or a readable struct whose
/// pointers follow its field documentation; `out` NULL (an error) or
/// writable; `fill`, if given, follows the `evsock_fill_fn` contract.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_new_client(
    cfg: *const evsock_config,
    opts: *const evsock_client_options,
    fill: evsock_fill_fn,
    fill_user: *mut c_void,
    now_ms: u64,
    out: *mut *mut evsock_conn,
) -> evsock_status {
    guard(|| {
        let rng = || -> Box<dyn Rng + Send> {
            match fill {
                Some(fill) => Box::new(CallbackRng {
                    fill,
                    user: fill_user,
                }),
                None => os_rng(),
            }
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { new_client(cfg, opts, rng, now_ms, out) }
    })
}

/// FOR TESTS ONLY: a client whose handshake key and mask keys come from a
/// deterministic generator seeded with `seed`, so a conversation replays
/// byte for byte (the shared test vectors use it). Its masks are
/// predictable, which RFC 6455 forbids on real networks: use
/// `evsock_conn_new_client` there. Otherwise as `evsock_conn_new_client`.
///
/// # Safety
/// As for `evsock_conn_new_client`.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_new_client_seeded(
    cfg: *const evsock_config,
    opts: *const evsock_client_options,
    seed: u64,
    now_ms: u64,
    out: *mut *mut evsock_conn,
) -> evsock_status {
    guard(|| {
        let rng = || -> Box<dyn Rng + Send> { Box::new(SeededRng::new(seed)) };
        // SAFETY: forwarded from this function's contract.
        unsafe { new_client(cfg, opts, rng, now_ms, out) }
    })
}

/// Frees a connection and everything it holds, including the memory behind
/// pointers handed out by its polls. NULL is ignored. Freeing a connection
/// from inside its own fill callback is refused (the handle stays valid and
/// `evsock_last_error` says why).
///
/// # Safety
/// `conn` must be NULL or a live handle, not in use by another thread, and
/// must not be used after this call.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_free(conn: *mut evsock_conn) {
    // SAFETY: `conn` is NULL or a live connection handle (contract).
    unsafe { free_handle::<ConnInner, _>(conn, CONN_MAGIC, "conn") }
}

// ----- input -------------------------------------------------------------
//
// Every entry point below builds its body as a closure first, with its own
// `unsafe` blocks for the argument pointers, and then runs it through
// `with_conn`, whose only unsafe requirement is a NULL-or-live handle.

/// Feeds `len` bytes read from the transport at time `now_ms`. The bytes are
/// copied; `data` is borrowed for the call only and may be NULL when `len`
/// is 0. Frames are decoded as output is polled, so drain output (best with
/// `evsock_conn_poll_output`) after every call: input that is never polled
/// stays buffered, and a host that stops polling should stop reading too.
///
/// # Safety
/// `conn` NULL or live; `data` NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_handle_input(
    conn: *mut evsock_conn,
    now_ms: u64,
    data: *const u8,
    len: usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = unsafe { bytes_arg(data, len, "data")? };
        c.conn.handle_input(now_ms, data);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Room to read into, straight into the connection's buffer: sets `*data`
/// and `*len` to writable memory. Read from the transport into it (`recv(fd,
/// *data, *len, 0)`) and pass the count to `evsock_conn_commit_input`;
/// the bytes then cross memory once on their way to the application, where
/// `evsock_conn_handle_input` copies them out of the host's own buffer a
/// second time. The room belongs to the connection and is valid until the
/// next call on it (of any kind): read, then commit, before anything else.
///
/// Its size fits what is arriving: the rest of a large frame whose header
/// came (so reads stop where it ends), otherwise 4 to 64 KiB, growing while
/// reads fill it. `*len` is never 0 while the connection is open, and 0
/// (with `*data` NULL) once it is closed: stop reading.
///
/// # Safety
/// `conn` NULL or live; `data` and `len` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_input_buffer(
    conn: *mut evsock_conn,
    data: *mut *mut u8,
    len: *mut usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        if data.is_null() || len.is_null() {
            return Err(Fail::null("data/len"));
        }
        let room = c.conn.input_buffer();
        let (p, n) = match room.len() {
            0 => (std::ptr::null_mut(), 0),
            n => (room.as_mut_ptr(), n),
        };
        // SAFETY: both checked non-NULL; writable per the contract. `p`
        // points into the connection's read buffer, which stays where it is
        // until the next call on the connection, as documented.
        unsafe {
            data.write(p);
            len.write(n);
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Takes the first `n` bytes of the room `evsock_conn_input_buffer` handed
/// out as received at time `now_ms` (what `recv` returned; more than the
/// room's length cannot have been written and is cut to it). `n` 0 is no
/// input: end of stream is `evsock_conn_handle_eof`. Without a room handed
/// out just before (or after another call took it back), nothing is taken.
/// Drain output afterwards, as after `evsock_conn_handle_input`.
///
/// # Safety
/// `conn` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_commit_input(
    conn: *mut evsock_conn,
    now_ms: u64,
    n: usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        c.conn.commit_input(now_ms, n);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Tells the connection the transport reached end of stream (read returned
/// 0, or the socket failed). Input is decoded as output is polled, and the
/// end of stream ends the connection at once: drain the output of the last
/// `evsock_conn_handle_input` before calling this, or what those bytes
/// carried (final messages, the peer's close frame) is lost.
///
/// # Safety
/// `conn` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_handle_eof(
    conn: *mut evsock_conn,
    now_ms: u64,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        c.conn.handle_eof(now_ms);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Runs the timers due at `now_ms` (keep-alive pings, timeouts). Call it
/// when the deadline from `evsock_conn_poll_timeout` passes; calling it
/// early or often is harmless.
///
/// # Safety
/// `conn` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_handle_timeout(
    conn: *mut evsock_conn,
    now_ms: u64,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        c.conn.handle_timeout(now_ms);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

// ----- output ------------------------------------------------------------

/// What `evsock_conn_poll_output` returned.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_output_kind {
    /// Write `data`/`len` to the transport, in order.
    EVSOCK_OUTPUT_TRANSMIT = 1,
    /// Handle `event`.
    EVSOCK_OUTPUT_EVENT = 2,
    /// Nothing more until new input or the deadline: arm a timer for
    /// `deadline_ms` if `has_deadline`, then wait.
    EVSOCK_OUTPUT_WAIT = 3,
}

/// One step of output, filled in by `evsock_conn_poll_output`. Only the
/// fields of its `kind` are set; the others are 0 / NULL.
///
/// The pointers in it (`data`, and those inside `event`) borrow from the
/// connection and stay valid until the next `evsock_conn_poll_output`,
/// `evsock_conn_poll_transmit` or `evsock_conn_poll_event` call on that
/// connection, or its free, whichever comes first.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evsock_output {
    /// Which of the fields below apply.
    pub kind: evsock_output_kind,
    /// TRANSMIT: the bytes to write (never NULL for TRANSMIT).
    pub data: *const u8,
    /// TRANSMIT: the number of bytes at `data`.
    pub len: usize,
    /// EVENT: the event (`event.kind` is `EVSOCK_EVENT_NONE` otherwise).
    pub event: evsock_event,
    /// WAIT: whether a timer is armed.
    pub has_deadline: bool,
    /// WAIT: when to call `evsock_conn_handle_timeout` (if `has_deadline`).
    pub deadline_ms: u64,
}

/// The whole output side in one call, in the order the engine wants it:
/// bytes to write, events, and finally `EVSOCK_OUTPUT_WAIT` with the next
/// deadline. Call it in a loop after every input, timeout or send until it
/// returns WAIT. Always returns `EVSOCK_OK` on a valid connection.
///
/// Prefer this to the separate polls: frames are decoded lazily as output
/// is polled, so a reply sent while handling one event leaves before the
/// close frame a later bad frame in the same read causes. (With separate
/// polls, take events first, then transmits.) Lifetimes: see
/// `evsock_output`.
///
/// # Safety
/// `conn` NULL or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_poll_output(
    conn: *mut evsock_conn,
    out: *mut evsock_output,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        c.transmit = None;
        c.event = None;
        let mut o = evsock_output {
            kind: evsock_output_kind::EVSOCK_OUTPUT_WAIT,
            data: std::ptr::null(),
            len: 0,
            event: evsock_event::none(),
            has_deadline: false,
            deadline_ms: 0,
        };
        match c.conn.poll_output() {
            Output::Transmit(b) => {
                o.kind = evsock_output_kind::EVSOCK_OUTPUT_TRANSMIT;
                o.data = data_ptr(&b);
                o.len = b.len();
                c.transmit = Some(b);
            }
            Output::Event(e) => {
                let held = c.event.insert(Held::new(e));
                o.kind = evsock_output_kind::EVSOCK_OUTPUT_EVENT;
                o.event = held.view();
            }
            Output::Wait(d) => {
                o.has_deadline = d.is_some();
                o.deadline_ms = d.unwrap_or(0);
            }
        }
        // SAFETY: checked non-NULL, writable per the contract; `write` does
        // not read the old contents. The pointers in `o` borrow from
        // `c.transmit` / `c.event`, kept until the next poll or free.
        unsafe { out.write(o) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Takes the next chunk of bytes to write to the transport, in order.
/// (Hosts that drain with the separate polls should take events first,
/// then transmits; `evsock_conn_poll_output` does this for them.)
///
/// Returns `EVSOCK_OK` with `*data`/`*len` set, or `EVSOCK_EMPTY` (with
/// `*data` NULL and `*len` 0) when nothing is queued. The bytes belong to
/// the connection: they stay valid and unchanged until the next
/// `evsock_conn_poll_transmit` on this connection or `evsock_conn_free`,
/// whichever comes first. Other calls (input, sends, events) do not
/// invalidate them, so a host with a non-blocking socket can write part,
/// wait for POLLOUT, and continue from an offset before polling again.
///
/// # Safety
/// `conn` NULL or live; `data` and `len` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_poll_transmit(
    conn: *mut evsock_conn,
    data: *mut *const u8,
    len: *mut usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        if data.is_null() || len.is_null() {
            return Err(Fail::null("data/len"));
        }
        c.transmit = c.conn.poll_transmit();
        let (p, n, status) = match &c.transmit {
            Some(b) => (data_ptr(b), b.len(), EVSOCK_OK),
            None => (std::ptr::null(), 0, EVSOCK_EMPTY),
        };
        // SAFETY: both checked non-NULL; writable per the contract. `p`
        // points into `c.transmit`, which the connection keeps until the
        // next poll_transmit or free, as documented.
        unsafe {
            data.write(p);
            len.write(n);
        }
        Ok(status)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Takes the next event into `*event`, decoding buffered input as needed
/// (so a reply sent while handling it is queued before anything later
/// input causes).
///
/// Returns `EVSOCK_OK`, or `EVSOCK_EMPTY` with `event->kind ==
/// EVSOCK_EVENT_NONE` when there is none. The pointers inside `*event` stay
/// valid until the next `evsock_conn_poll_event` on this connection or
/// `evsock_conn_free`, whichever comes first. `EVSOCK_EVENT_CLOSED` is
/// always the last event.
///
/// # Safety
/// `conn` NULL or live; `event` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_poll_event(
    conn: *mut evsock_conn,
    event: *mut evsock_event,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        if event.is_null() {
            return Err(Fail::null("event"));
        }
        c.event = c.conn.poll_event().map(Held::new);
        let (view, status) = match &c.event {
            Some(h) => (h.view(), EVSOCK_OK),
            None => (evsock_event::none(), EVSOCK_EMPTY),
        };
        // SAFETY: checked non-NULL, writable per the contract (`write` does
        // not read the old, possibly uninitialized, contents). The view
        // borrows from `c.event`, kept until the next poll_event or free.
        unsafe { event.write(view) };
        Ok(status)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// The time (same clock as `now_ms`) at which `evsock_conn_handle_timeout`
/// must next be called: `EVSOCK_OK` with `*deadline_ms` set, or
/// `EVSOCK_EMPTY` when no timer is armed (wait for input only).
///
/// # Safety
/// `conn` NULL or live; `deadline_ms` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_poll_timeout(
    conn: *mut evsock_conn,
    deadline_ms: *mut u64,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        if deadline_ms.is_null() {
            return Err(Fail::null("deadline_ms"));
        }
        let Some(d) = c.conn.poll_timeout() else {
            return Ok(EVSOCK_EMPTY);
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { deadline_ms.write(d) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// The connection's state. Once it is `EVSOCK_STATE_CLOSED`, write out what
/// `evsock_conn_poll_transmit` still returns, then close the socket.
///
/// # Safety
/// `conn` NULL or live; `state` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_state(
    conn: *mut evsock_conn,
    state: *mut evsock_state,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        if state.is_null() {
            return Err(Fail::null("state"));
        }
        let s = match c.conn.state() {
            State::Handshake => evsock_state::EVSOCK_STATE_HANDSHAKE,
            State::Open => evsock_state::EVSOCK_STATE_OPEN,
            State::Closing => evsock_state::EVSOCK_STATE_CLOSING,
            State::Closed => evsock_state::EVSOCK_STATE_CLOSED,
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { state.write(s) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Bytes queued for writing (like a browser's `bufferedAmount`); stop
/// sending while it is large, for backpressure.
///
/// # Safety
/// `conn` NULL or live; `amount` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_buffered_amount(
    conn: *mut evsock_conn,
    amount: *mut usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        if amount.is_null() {
            return Err(Fail::null("amount"));
        }
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { amount.write(c.conn.buffered_amount()) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

// ----- the pending upgrade request ---------------------------------------

/// The pending request of the last event polled, which must be a REQUEST.
fn held_request(c: &ConnInner) -> Result<(&evsock::ws::Request, &Held), Fail> {
    match &c.event {
        Some(h) => match &h.event {
            Event::Request(r) => Ok((r, h)),
            _ => Err(no_request()),
        },
        None => Err(no_request()),
    }
}

fn no_request() -> Fail {
    Fail::new(
        evsock_status::EVSOCK_ERR_INVALID_STATE,
        "the last event polled is not EVSOCK_EVENT_REQUEST",
    )
}

/// Looks up a header of the upgrade request from the last event polled
/// (by `evsock_conn_poll_event` or `evsock_conn_poll_output`), which must
/// be `EVSOCK_EVENT_REQUEST` (else `EVSOCK_ERR_INVALID_STATE`).
/// `name` is matched ASCII case-insensitively; the first match wins.
/// Returns `EVSOCK_OK` with `*value`/`*len` (raw bytes, not
/// NUL-terminated), or `EVSOCK_EMPTY` (NULL, 0) if absent. The value lives
/// as long as the event's own pointers.
///
/// # Safety
/// `conn` NULL or live; `name` NULL (an error) or NUL-terminated; `value`
/// and `len` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_request_header(
    conn: *mut evsock_conn,
    name: *const c_char,
    value: *mut *const u8,
    len: *mut usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        // SAFETY: `name` is NULL or NUL-terminated (contract).
        let name = unsafe { c_str_arg(name, "name")? };
        if value.is_null() || len.is_null() {
            return Err(Fail::null("value/len"));
        }
        let (req, _) = held_request(c)?;
        let found = req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        let (p, n, status) = match found {
            Some((_, v)) => (data_ptr(v), v.len(), EVSOCK_OK),
            None => (std::ptr::null(), 0, EVSOCK_EMPTY),
        };
        // SAFETY: both checked non-NULL; writable per the contract. `p`
        // points into the held REQUEST event.
        unsafe {
            value.write(p);
            len.write(n);
        }
        Ok(status)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// The `index`-th subprotocol the client offered in the pending request
/// (same rules as `evsock_conn_request_header`): `EVSOCK_OK` with a
/// NUL-terminated `*name`, or `EVSOCK_EMPTY` (NULL) past the end.
///
/// # Safety
/// `conn` NULL or live; `name` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_request_subprotocol(
    conn: *mut evsock_conn,
    index: usize,
    name: *mut *const c_char,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        if name.is_null() {
            return Err(Fail::null("name"));
        }
        let (_, held) = held_request(c)?;
        let (p, status) = match held.offered.get(index) {
            Some(s) => (s.as_ptr(), EVSOCK_OK),
            None => (std::ptr::null(), EVSOCK_EMPTY),
        };
        // SAFETY: checked non-NULL; writable per the contract. `p` points
        // into the held REQUEST event.
        unsafe { name.write(p) };
        Ok(status)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Server: accepts the pending upgrade request; the 101 response is queued
/// and an OPEN event follows. `subprotocol`: NULL keeps the config's choice
/// (the REQUEST event's `subprotocol`), "" selects none, anything else is
/// sent as given and should be one the client offered. `headers` (NULL when
/// `headers_len` is 0) are extra response headers such as Set-Cookie; all
/// strings are copied. `EVSOCK_ERR_INVALID_STATE` if no request is pending.
///
/// # Safety
/// `conn` NULL or live; `subprotocol` NULL or NUL-terminated; `headers`
/// NULL or `headers_len` readable entries with NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_accept(
    conn: *mut evsock_conn,
    subprotocol: *const c_char,
    headers: *const evsock_header,
    headers_len: usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        // SAFETY: `subprotocol` is NULL or NUL-terminated (contract).
        let subprotocol = unsafe { opt_c_str_arg(subprotocol, "subprotocol")? };
        if let Some(p) = subprotocol {
            if !p.is_empty() && !is_token(p) {
                return Err(Fail::arg(format!("subprotocol {p:?} is not an HTTP token")));
            }
        }
        // SAFETY: `headers` is NULL or `headers_len` entries (contract).
        let headers = unsafe { headers_arg(headers, headers_len)? };
        c.conn.accept(Accept {
            subprotocol: subprotocol.map(String::from),
            headers,
        })?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Server: refuses the pending upgrade request with an HTTP response of
/// `status` (200-599, except 101) and a text/plain `body` of `body_len`
/// bytes (NULL when 0), plus optional extra `headers`. All are copied. A
/// CLOSED event with `EVSOCK_ERR_HANDSHAKE` follows; write out the response
/// and close the socket.
///
/// # Safety
/// `conn` NULL or live; `headers` NULL or `headers_len` readable entries;
/// `body` NULL or `body_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_reject(
    conn: *mut evsock_conn,
    status: u16,
    headers: *const evsock_header,
    headers_len: usize,
    body: *const u8,
    body_len: usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        if !(200..=599).contains(&status) {
            return Err(Fail::arg(format!(
                "HTTP status {status} cannot reject an upgrade (use 200-599)"
            )));
        }
        // SAFETY: `headers` is NULL or `headers_len` entries (contract).
        let headers = unsafe { headers_arg(headers, headers_len)? };
        // SAFETY: `body` is NULL or `body_len` readable bytes (contract).
        let body = unsafe { bytes_arg(body, body_len, "body")? };
        let mut r = Reject::new(status, body);
        r.headers = headers;
        c.conn.reject(r)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

// ----- sending -----------------------------------------------------------

/// Sends a text message of `len` bytes, which must be valid UTF-8
/// (`EVSOCK_ERR_INVALID_ARGUMENT` otherwise). The bytes are copied.
/// `EVSOCK_ERR_INVALID_STATE` unless the connection is open;
/// `EVSOCK_ERR_OUTBOUND_FULL` when the queue limit would be passed.
///
/// # Safety
/// `conn` NULL or live; `text` NULL (only with `len` 0) or `len` readable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_send_text(
    conn: *mut evsock_conn,
    text: *const c_char,
    len: usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        // SAFETY: `text` is NULL or `len` readable bytes (contract).
        let bytes = unsafe { bytes_arg(text.cast(), len, "text")? };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Fail::arg(format!("text is not valid UTF-8: {e}")))?;
        c.conn.send_text(text)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Sends a binary message of `len` bytes, copied straight into the
/// connection's output (masked on the way for a client). Errors as for
/// `evsock_conn_send_text`.
///
/// # Safety
/// `conn` NULL or live; `data` NULL (only with `len` 0) or `len` readable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_send_binary(
    conn: *mut evsock_conn,
    data: *const u8,
    len: usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = unsafe { bytes_arg(data, len, "data")? };
        c.conn.send_binary_slice(data)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Sends one fragment of a streamed message: the first call passes
/// `EVSOCK_OPCODE_TEXT` or `EVSOCK_OPCODE_BINARY`, later ones
/// `EVSOCK_OPCODE_CONTINUATION`; `fin` ends the message. Text fragments must
/// each be valid UTF-8. Other sends fail with `EVSOCK_ERR_INVALID_STATE`
/// until the message is finished (pings and close still work).
///
/// # Safety
/// As for `evsock_conn_send_binary`.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_send_fragment(
    conn: *mut evsock_conn,
    opcode: u8,
    data: *const u8,
    len: usize,
    fin: bool,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        let op = match opcode {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            2 => OpCode::Binary,
            other => {
                return Err(Fail::arg(format!(
                    "opcode {other} is not EVSOCK_OPCODE_CONTINUATION, _TEXT or _BINARY"
                )))
            }
        };
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = unsafe { bytes_arg(data, len, "data")? };
        c.conn.send_fragment(op, data, fin)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Sends a ping with up to 125 bytes of payload (copied); the peer's pong
/// arrives as an `EVSOCK_EVENT_PONG`.
///
/// # Safety
/// As for `evsock_conn_send_binary`.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_ping(
    conn: *mut evsock_conn,
    data: *const u8,
    len: usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = unsafe { bytes_arg(data, len, "data")? };
        c.conn.ping(data)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Sends an unsolicited pong (a one-way heartbeat), up to 125 bytes.
///
/// # Safety
/// As for `evsock_conn_send_binary`.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_pong(
    conn: *mut evsock_conn,
    data: *const u8,
    len: usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = unsafe { bytes_arg(data, len, "data")? };
        c.conn.pong(data)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// Starts the closing handshake with `code` (1000-1003, 1007-1014 or
/// 3000-4999) and a UTF-8 `reason` of at most 123 bytes (NULL when
/// `reason_len` is 0; copied). Messages that arrive until the peer answers
/// are still delivered; a CLOSED event ends it. During the handshake a
/// server rejects the pending request with 503 instead.
///
/// # Safety
/// `conn` NULL or live; `reason` NULL (only with `reason_len` 0) or
/// `reason_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_conn_close(
    conn: *mut evsock_conn,
    code: u16,
    reason: *const c_char,
    reason_len: usize,
) -> evsock_status {
    let run = |c: &mut ConnInner| {
        // SAFETY: `reason` is NULL or `reason_len` readable bytes (contract).
        let bytes = unsafe { bytes_arg(reason.cast(), reason_len, "reason")? };
        let reason =
            std::str::from_utf8(bytes).map_err(|_| Fail::arg("close reason is not valid UTF-8"))?;
        c.conn.close(CloseCode(code), reason)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, run) }
}

/// TESTING BUILDS ONLY (cargo feature `testing`): panics inside a call on
/// `conn`, to prove that panics are caught at the boundary. Returns
/// `EVSOCK_ERR_PANIC` and leaves the connection poisoned.
///
/// # Safety
/// `conn` NULL or live.
#[cfg(feature = "testing")]
#[no_mangle]
pub unsafe extern "C" fn evsock_testing_panic(conn: *mut evsock_conn) -> evsock_status {
    // SAFETY: `conn` is NULL or a live handle (contract).
    unsafe { with_conn(conn, |_| panic!("deliberate panic for tests")) }
}
