//! `evsock_session`: the event-vector session layer (acknowledged delivery,
//! request/reply, resume) over any message transport, usually an
//! `evsock_conn`.

use std::ffi::{c_char, c_void, CString};

use bytes::Bytes;
use evsock::session::{
    new_session_id, peek_hello, Format, MessageKind, Output, RequestError, Session, SessionEvent,
};

use crate::config::{config_ref, evsock_config, ConfigHandle};
use crate::event::data_ptr;
use crate::handle::{free_handle, with_handle, Handle};
use crate::rng::{evsock_fill_fn, rng_from};
use crate::status::{c_string, evsock_status, guard, Fail, FfiResult};
use crate::util::{bytes_arg, c_str_arg, opt_c_str_arg};

use evsock_status::{EVSOCK_EMPTY, EVSOCK_OK};

/// An opaque event-vector session (client or server role). Create with
/// `evsock_session_new_client` / `evsock_session_new_server`, free with
/// `evsock_session_free`. Same threading rules as `evsock_conn`.
///
/// A session outlives transport connections: the host tells it when one
/// opens (`evsock_session_handle_connected`), hands it every whole message
/// that arrives (`evsock_session_handle_message`), and sends every
/// `EVSOCK_SESSION_OUTPUT_SEND` it produces as one message. The wire format
/// is `docs/protocol.md`.
pub struct evsock_session {
    _opaque: [u8; 0],
}

const SESSION_MAGIC: u64 = 0x6576_736f_636b_5353; // "evsockSS"

/// Session wire formats (`EVSOCK_OPT_SESSION_FORMAT`, `evsock_hello`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_format {
    /// JSON in text messages.
    EVSOCK_FORMAT_JSON = 0,
    /// MessagePack in binary messages.
    EVSOCK_FORMAT_MSGPACK = 1,
}

/// The kind of a transport message a session sends or receives.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_message_kind {
    /// A text message (JSON sessions).
    EVSOCK_MESSAGE_TEXT = 1,
    /// A binary message (MessagePack sessions).
    EVSOCK_MESSAGE_BINARY = 2,
}

/// What `evsock_session_poll_output` returned.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_session_output_kind {
    /// Nothing (the poll returned `EVSOCK_EMPTY`).
    EVSOCK_SESSION_OUTPUT_NONE = 0,
    /// Send `data`/`len` as one transport message of `message_kind`.
    EVSOCK_SESSION_OUTPUT_SEND = 1,
    /// Handle the session event `event`.
    EVSOCK_SESSION_OUTPUT_EVENT = 2,
}

/// Session events; the fields of `evsock_session_output` each one uses are
/// listed with it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_session_event_type {
    /// Not an event.
    EVSOCK_SESSION_EVENT_NONE = 0,
    /// The handshake completed on a new connection: `session_id`, `resumed`.
    EVSOCK_SESSION_EVENT_ESTABLISHED = 1,
    /// Client: the server could not resume the session; a fresh one follows.
    /// `has_range`, `from`..`to`: this side's reliable ids never confirmed.
    EVSOCK_SESSION_EVENT_RESET = 2,
    /// Incoming reliable ids `from`..`to` were evicted and will not arrive.
    EVSOCK_SESSION_EVENT_GAP = 3,
    /// An application event: `name`, `data`/`len`, and `has_id`/`id` when
    /// it was sent reliably.
    EVSOCK_SESSION_EVENT_MESSAGE = 4,
    /// An incoming request: `req` (pass it to `evsock_session_reply`),
    /// `name`, `data`/`len`, `timeout_ms`, `idempotency_key` (or NULL).
    EVSOCK_SESSION_EVENT_REQUEST = 5,
    /// The reply to outgoing request `req`: `data`/`len`.
    EVSOCK_SESSION_EVENT_REPLY = 6,
    /// Outgoing request `req` ended without a reply: `code` is "timeout",
    /// "session_closed", "resume_failed" or "remote" (then `data`/`len` is
    /// the peer's error data).
    EVSOCK_SESSION_EVENT_REQUEST_FAILED = 7,
    /// Client: the reconnect delay passed; open a new transport connection.
    EVSOCK_SESSION_EVENT_RECONNECT = 8,
    /// Close the current transport connection: `code` is the reason
    /// ("idle_timeout", "handshake_timeout", "protocol_error", "go_away",
    /// "session_closed").
    EVSOCK_SESSION_EVENT_CLOSE_TRANSPORT = 9,
    /// Server: the resume window passed; free the session.
    EVSOCK_SESSION_EVENT_EXPIRED = 10,
    /// The session ended for good: `by_peer`.
    EVSOCK_SESSION_EVENT_CLOSED = 11,
    /// A bad input was ignored: `code` (for example "envelope",
    /// "out_of_order") and `message`.
    EVSOCK_SESSION_EVENT_ERROR = 12,
}

/// One output of a session, filled in by `evsock_session_poll_output`.
/// Fields that do not apply are 0 / NULL / false.
///
/// Every pointer in it borrows from the session and stays valid until the
/// next `evsock_session_poll_output` on that session or its free. Strings
/// are NUL-terminated; `data` is not (and is never NULL).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evsock_session_output {
    /// SEND or EVENT.
    pub kind: evsock_session_output_kind,
    /// EVENT: which event.
    pub event: evsock_session_event_type,
    /// SEND: send as a text or binary transport message.
    pub message_kind: evsock_message_kind,
    /// SEND: the message; MESSAGE / REQUEST / REPLY / REQUEST_FAILED: the
    /// encoded data (JSON text or MessagePack, possibly empty).
    pub data: *const u8,
    /// Bytes at `data`.
    pub len: usize,
    /// MESSAGE / REQUEST: the event id, for example "chat/msg".
    pub name: *const c_char,
    /// ESTABLISHED: the session id.
    pub session_id: *const c_char,
    /// REQUEST: the requester's idempotency key, or NULL.
    pub idempotency_key: *const c_char,
    /// REQUEST_FAILED / CLOSE_TRANSPORT / ERROR: a stable snake_case code.
    pub code: *const c_char,
    /// ERROR: a description.
    pub message: *const c_char,
    /// MESSAGE: the reliable id (when `has_id`).
    pub id: u64,
    /// REQUEST / REPLY / REQUEST_FAILED: the request id.
    pub req: u64,
    /// REQUEST: how long the requester waits, in ms.
    pub timeout_ms: u64,
    /// GAP, and RESET when `has_range`: the first id of the range.
    pub from: u64,
    /// GAP, and RESET when `has_range`: the last id (inclusive).
    pub to: u64,
    /// MESSAGE: `id` is set (the message was sent reliably).
    pub has_id: bool,
    /// RESET: `from`..`to` is set.
    pub has_range: bool,
    /// ESTABLISHED: an earlier session was continued.
    pub resumed: bool,
    /// CLOSED: the peer ended the session.
    pub by_peer: bool,
}

/// Counters of a session, filled in by `evsock_session_get_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evsock_session_info {
    /// A connection is open and its handshake done.
    pub established: bool,
    /// The session has ended (closed or expired) for good.
    pub closed: bool,
    /// The wire format in use.
    pub format: evsock_format,
    /// Outgoing requests still waiting for a reply.
    pub pending_requests: usize,
    /// Reliable messages not yet acknowledged by the peer.
    pub unacked_messages: usize,
    /// Encoded size of those messages.
    pub unacked_bytes: usize,
    /// Highest peer id received in order.
    pub last_received_id: u64,
}

/// What the first message of a new connection says, from
/// `evsock_peek_hello`. Self-contained: no pointers.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evsock_hello {
    /// The wire format of the connection.
    pub format: evsock_format,
    /// The client wants to resume `session_id`.
    pub has_session_id: bool,
    /// The session to resume, NUL-terminated (empty when
    /// `has_session_id` is false). Session ids are at most 64 characters.
    pub session_id: [c_char; 65],
    /// Highest server id the client has received in order.
    pub rx: u64,
    /// Lowest client id the client can still retransmit.
    pub lo: u64,
    /// The protocol version the client speaks.
    pub version: u64,
}

/// The object behind an `evsock_session *`.
struct SessionInner {
    s: Session,
    /// What the last poll pointed C at.
    held: Option<HeldOutput>,
    /// The session id as C last saw it.
    sid: Option<CString>,
}

/// An output kept alive for the pointers C holds into it.
struct HeldOutput {
    _payload: Bytes,
    _strings: Vec<CString>,
}

fn kind_arg(kind: u32) -> Result<MessageKind, Fail> {
    match kind {
        1 => Ok(MessageKind::Text),
        2 => Ok(MessageKind::Binary),
        other => Err(Fail::arg(format!(
            "message kind {other} is not EVSOCK_MESSAGE_TEXT or _BINARY"
        ))),
    }
}

pub(crate) fn format_c(f: Format) -> evsock_format {
    match f {
        Format::Json => evsock_format::EVSOCK_FORMAT_JSON,
        Format::MsgPack => evsock_format::EVSOCK_FORMAT_MSGPACK,
    }
}

/// The session settings of `cfg`, or the defaults for NULL.
///
/// # Safety
/// `cfg` is NULL or a live config handle.
unsafe fn session_config(cfg: *const evsock_config) -> Result<evsock::session::Config, Fail> {
    if cfg.is_null() {
        return Ok(Default::default());
    }
    // SAFETY: forwarded from the caller's contract.
    let h: &ConfigHandle = unsafe { config_ref(cfg)? };
    Ok(h.session.clone())
}

fn make(s: Session, out: *mut *mut evsock_session) -> FfiResult {
    let h = Handle::into_raw(
        SESSION_MAGIC,
        SessionInner {
            s,
            held: None,
            sid: None,
        },
    );
    // SAFETY: callers check `out` for NULL first; writable per the contract.
    unsafe { out.write(h.cast()) };
    Ok(EVSOCK_OK)
}

/// # Safety
/// `ptr` is NULL or a live session handle.
unsafe fn with_session(
    ptr: *const evsock_session,
    f: impl FnOnce(&mut SessionInner) -> FfiResult,
) -> evsock_status {
    // SAFETY: forwarded from the caller's contract.
    unsafe { with_handle(ptr, SESSION_MAGIC, "session", f) }
}

/// Creates a client session; it sends its hello once a transport
/// connection opens (`evsock_session_handle_connected`).
///
/// The session settings come from `cfg` (NULL: defaults; the config may be
/// freed afterwards). `fill` supplies randomness for reconnect jitter: NULL
/// uses the OS generator; with a callback, `fill_user` must stay valid until
/// the session is freed (see `evsock_fill_fn`). On success `*out` receives a
/// handle the caller owns and frees with `evsock_session_free`.
///
/// # Safety
/// `cfg` NULL or live; `out` NULL (an error) or writable; `fill` follows
/// the `evsock_fill_fn` contract.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_new_client(
    cfg: *const evsock_config,
    fill: evsock_fill_fn,
    fill_user: *mut c_void,
    out: *mut *mut evsock_session,
) -> evsock_status {
    guard(|| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        // SAFETY: `cfg` is NULL or live (contract).
        let cfg = unsafe { session_config(cfg)? };
        make(Session::client(cfg, rng_from(fill, fill_user)), out)
    })
}

/// Creates a server session. `session_id` (1-64 printable ASCII characters
/// without space, `"` or `\`) names it; NULL makes a fresh random one
/// (read it back with `evsock_session_id`). Keep a map from id to session:
/// route each new connection's first message with `evsock_peek_hello`, and
/// free a session once it reports EXPIRED or CLOSED. Other arguments as for
/// `evsock_session_new_client`.
///
/// # Safety
/// As for `evsock_session_new_client`; `session_id` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_new_server(
    cfg: *const evsock_config,
    session_id: *const c_char,
    fill: evsock_fill_fn,
    fill_user: *mut c_void,
    out: *mut *mut evsock_session,
) -> evsock_status {
    guard(|| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        // SAFETY: `cfg` is NULL or live (contract).
        let cfg = unsafe { session_config(cfg)? };
        // SAFETY: `session_id` is NULL or NUL-terminated (contract).
        let sid = unsafe { opt_c_str_arg(session_id, "session_id")? };
        let mut rng = rng_from(fill, fill_user);
        let sid = match sid {
            Some(s) => s.to_string(),
            None => new_session_id(&mut *rng),
        };
        let s = Session::server(cfg, &sid, rng)
            .map_err(|_| Fail::arg(format!("session id {sid:?} is not valid")))?;
        make(s, out)
    })
}

/// Frees a session. NULL is ignored.
///
/// # Safety
/// `session` NULL or live, not in use by another thread, not used after.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_free(session: *mut evsock_session) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_handle::<SessionInner, _>(session, SESSION_MAGIC, "session") }
}

/// The session id: `EVSOCK_OK` with `*id` set, or `EVSOCK_EMPTY` (NULL) for
/// a client before its first ESTABLISHED. The string is valid until the next
/// `evsock_session_id` call on this session or its free.
///
/// # Safety
/// `session` NULL or live; `id` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_id(
    session: *mut evsock_session,
    id: *mut *const c_char,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        if id.is_null() {
            return Err(Fail::null("id"));
        }
        c.sid = c.s.session_id().map(c_string);
        let (p, status) = match &c.sid {
            Some(s) => (s.as_ptr(), EVSOCK_OK),
            None => (std::ptr::null(), EVSOCK_EMPTY),
        };
        // SAFETY: checked non-NULL; writable per the contract. `p` points
        // into `c.sid`, kept until the next call of this function.
        unsafe { id.write(p) };
        Ok(status)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// Fills `*info` with the session's state and counters.
///
/// # Safety
/// `session` NULL or live; `info` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_get_info(
    session: *mut evsock_session,
    info: *mut evsock_session_info,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        if info.is_null() {
            return Err(Fail::null("info"));
        }
        let s = &c.s;
        let v = evsock_session_info {
            established: s.is_established(),
            closed: s.is_closed(),
            format: format_c(s.format()),
            pending_requests: s.pending_requests(),
            unacked_messages: s.unacked_messages(),
            unacked_bytes: s.unacked_bytes(),
            last_received_id: s.last_received_id(),
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { info.write(v) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

// ----- transport input -----------------------------------------------------

/// A transport connection opened (for a WebSocket: its OPEN event). A
/// client sends its hello now.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_handle_connected(
    session: *mut evsock_session,
    now_ms: u64,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        c.s.handle_connected(now_ms);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// The transport connection ended (for a WebSocket: its CLOSED event).
/// A client schedules a reconnect; a server starts its resume window.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_handle_disconnected(
    session: *mut evsock_session,
    now_ms: u64,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        c.s.handle_disconnected(now_ms);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// Runs the timers due at `now_ms` (acks, pings, request timeouts,
/// reconnects, expiry).
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_handle_timeout(
    session: *mut evsock_session,
    now_ms: u64,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        c.s.handle_timeout(now_ms);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// Hands the session one whole transport message of `kind`
/// (`EVSOCK_MESSAGE_TEXT` / `_BINARY`): for a WebSocket, the data of a TEXT
/// or BINARY event. The bytes are copied. Bad messages are not call errors:
/// they come out as ERROR events.
///
/// # Safety
/// `session` NULL or live; `data` NULL (only with `len` 0) or `len`
/// readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_handle_message(
    session: *mut evsock_session,
    now_ms: u64,
    kind: u32,
    data: *const u8,
    len: usize,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        let kind = kind_arg(kind)?;
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = unsafe { bytes_arg(data, len, "data")? };
        c.s.handle_message(now_ms, kind, data);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

// ----- application calls ----------------------------------------------------

/// Borrows an event name and copies a data element.
///
/// # Safety
/// `name` NULL or NUL-terminated; `data` NULL or `len` readable bytes.
unsafe fn name_and_data<'a>(
    name: *const c_char,
    data: *const u8,
    len: usize,
) -> Result<(&'a str, Bytes), Fail> {
    // SAFETY: forwarded from the caller's contract.
    let name = unsafe { c_str_arg(name, "name")? };
    // SAFETY: forwarded from the caller's contract.
    let data = unsafe { bytes_arg(data, len, "data")? };
    Ok((name, Bytes::copy_from_slice(data)))
}

/// Sends a fire-and-forget event: at most once, only while established.
/// `name` is the event id (for example "chat/typing"); `data` is one
/// encoded value in the session's format (JSON text or MessagePack) of
/// `len` bytes, or empty for none. Both are copied. Refusals:
/// `EVSOCK_ERR_BAD_EVENT_ID`, `_RESERVED_EVENT`, `_INVALID_DATA`,
/// `_TOO_LARGE`, `_NOT_CONNECTED`, `_CLOSED`.
///
/// # Safety
/// `session` NULL or live; `name` NULL (an error) or NUL-terminated; `data`
/// NULL (only with `len` 0) or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_send(
    session: *mut evsock_session,
    now_ms: u64,
    name: *const c_char,
    data: *const u8,
    len: usize,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        // SAFETY: forwarded from this function's contract.
        let (name, data) = unsafe { name_and_data(name, data, len)? };
        c.s.send(now_ms, name, data)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// Sends a reliable event: numbered, acknowledged, retransmitted after a
/// reconnect, delivered once and in order while the session can resume.
/// Accepted while disconnected. `*id` (if `id` is not NULL) receives its
/// reliable id. Arguments and refusals as for `evsock_session_send`, except
/// that it does not need a connection; while the session handshakes it is
/// refused with `EVSOCK_ERR_BUFFER_FULL` once the resume buffer is full.
///
/// # Safety
/// As for `evsock_session_send`; `id` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_send_reliable(
    session: *mut evsock_session,
    now_ms: u64,
    name: *const c_char,
    data: *const u8,
    len: usize,
    id: *mut u64,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        // SAFETY: forwarded from this function's contract.
        let (name, data) = unsafe { name_and_data(name, data, len)? };
        let n = c.s.send_reliable(now_ms, name, data)?;
        if !id.is_null() {
            // SAFETY: non-NULL; writable per the contract.
            unsafe { id.write(n) };
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// Sends a reliable request; it ends in exactly one REPLY or REQUEST_FAILED
/// event carrying the request id written to `*req` (if not NULL), at the
/// latest `timeout_ms` from now. `idempotency_key` (NULL for none) lets a
/// server answer a retry from its cache. Refusals as for
/// `evsock_session_send_reliable`, plus `EVSOCK_ERR_BAD_TIMEOUT`,
/// `_TOO_MANY_PENDING` and `_BAD_IDEMPOTENCY_KEY`.
///
/// # Safety
/// As for `evsock_session_send_reliable`; `idempotency_key` NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_request(
    session: *mut evsock_session,
    now_ms: u64,
    name: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
    idempotency_key: *const c_char,
    req: *mut u64,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        // SAFETY: forwarded from this function's contract.
        let (name, data) = unsafe { name_and_data(name, data, len)? };
        // SAFETY: `idempotency_key` is NULL or NUL-terminated (contract).
        let key = unsafe { opt_c_str_arg(idempotency_key, "idempotency_key")? };
        let n = match key {
            Some(k) => c.s.request_idempotent(now_ms, name, data, timeout_ms, k)?,
            None => c.s.request(now_ms, name, data, timeout_ms)?,
        };
        if !req.is_null() {
            // SAFETY: non-NULL; writable per the contract.
            unsafe { req.write(n) };
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// # Safety
/// `session` NULL or live; `data` NULL (only with `len` 0) or readable.
unsafe fn reply_impl(
    session: *mut evsock_session,
    now_ms: u64,
    req: u64,
    data: *const u8,
    len: usize,
    error: bool,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = Bytes::copy_from_slice(unsafe { bytes_arg(data, len, "data")? });
        if error {
            c.s.reply_error(now_ms, req, data)?;
        } else {
            c.s.reply(now_ms, req, data)?;
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// Answers incoming request `req` (from a REQUEST event) with `data`
/// (copied). `EVSOCK_ERR_UNKNOWN_REQUEST` if it was already answered, never
/// existed, or its requester stopped waiting.
///
/// # Safety
/// `session` NULL or live; `data` NULL (only with `len` 0) or `len`
/// readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_reply(
    session: *mut evsock_session,
    now_ms: u64,
    req: u64,
    data: *const u8,
    len: usize,
) -> evsock_status {
    // SAFETY: forwarded from this function's contract.
    unsafe { reply_impl(session, now_ms, req, data, len, false) }
}

/// Answers incoming request `req` with an error; the requester gets
/// REQUEST_FAILED with code "remote" and this data. As `evsock_session_reply`.
///
/// # Safety
/// As for `evsock_session_reply`.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_reply_error(
    session: *mut evsock_session,
    now_ms: u64,
    req: u64,
    data: *const u8,
    len: usize,
) -> evsock_status {
    // SAFETY: forwarded from this function's contract.
    unsafe { reply_impl(session, now_ms, req, data, len, true) }
}

/// Ends the session for good: tells the peer (if connected), fails pending
/// requests, and asks the host to close the transport.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_close(
    session: *mut evsock_session,
    now_ms: u64,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        c.s.close(now_ms);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// Server: asks the client to disconnect and not reconnect for
/// `retry_after_ms`; the session stays resumable.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_go_away(
    session: *mut evsock_session,
    now_ms: u64,
    retry_after_ms: u64,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        c.s.go_away(now_ms, retry_after_ms);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

// ----- output ------------------------------------------------------------------

/// An output with nothing in it.
fn blank() -> evsock_session_output {
    evsock_session_output {
        kind: evsock_session_output_kind::EVSOCK_SESSION_OUTPUT_NONE,
        event: evsock_session_event_type::EVSOCK_SESSION_EVENT_NONE,
        message_kind: evsock_message_kind::EVSOCK_MESSAGE_TEXT,
        data: data_ptr(&[]),
        len: 0,
        name: std::ptr::null(),
        session_id: std::ptr::null(),
        idempotency_key: std::ptr::null(),
        code: std::ptr::null(),
        message: std::ptr::null(),
        id: 0,
        req: 0,
        timeout_ms: 0,
        from: 0,
        to: 0,
        has_id: false,
        has_range: false,
        resumed: false,
        by_peer: false,
    }
}

/// Builds the C view of one output, keeping what it points into.
fn view(o: Output) -> (evsock_session_output, HeldOutput) {
    use evsock_session_event_type::*;
    let mut v = blank();
    v.kind = evsock_session_output_kind::EVSOCK_SESSION_OUTPUT_EVENT;
    let mut strings = Vec::new();
    // Keeps a C string alive in `strings` and returns its pointer (the
    // CString's heap buffer does not move when the Vec grows).
    let mut keep = |s: &str| {
        let c = c_string(s);
        let p = c.as_ptr();
        strings.push(c);
        p
    };
    let mut payload = Bytes::new();
    match o {
        Output::Send { kind, payload: p } => {
            v.kind = evsock_session_output_kind::EVSOCK_SESSION_OUTPUT_SEND;
            v.message_kind = match kind {
                MessageKind::Text => evsock_message_kind::EVSOCK_MESSAGE_TEXT,
                MessageKind::Binary => evsock_message_kind::EVSOCK_MESSAGE_BINARY,
            };
            payload = p;
        }
        Output::Event(e) => match e {
            SessionEvent::Established {
                session_id,
                resumed,
            } => {
                v.event = EVSOCK_SESSION_EVENT_ESTABLISHED;
                v.session_id = keep(&session_id);
                v.resumed = resumed;
            }
            SessionEvent::Reset { unconfirmed } => {
                v.event = EVSOCK_SESSION_EVENT_RESET;
                if let Some((a, b)) = unconfirmed {
                    (v.has_range, v.from, v.to) = (true, a, b);
                }
            }
            SessionEvent::Gap { from, to } => {
                v.event = EVSOCK_SESSION_EVENT_GAP;
                (v.from, v.to) = (from, to);
            }
            SessionEvent::Message { event, data, id } => {
                v.event = EVSOCK_SESSION_EVENT_MESSAGE;
                v.name = keep(event.as_str());
                payload = data;
                if let Some(id) = id {
                    (v.has_id, v.id) = (true, id);
                }
            }
            SessionEvent::Request {
                req,
                event,
                data,
                timeout_ms,
                idempotency_key,
            } => {
                v.event = EVSOCK_SESSION_EVENT_REQUEST;
                v.req = req;
                v.name = keep(event.as_str());
                payload = data;
                v.timeout_ms = timeout_ms;
                if let Some(k) = idempotency_key {
                    v.idempotency_key = keep(&k);
                }
            }
            SessionEvent::Reply { req, data } => {
                v.event = EVSOCK_SESSION_EVENT_REPLY;
                v.req = req;
                payload = data;
            }
            SessionEvent::RequestFailed { req, error } => {
                v.event = EVSOCK_SESSION_EVENT_REQUEST_FAILED;
                v.req = req;
                v.code = keep(error.code());
                if let RequestError::Remote(d) = error {
                    payload = d;
                }
            }
            SessionEvent::Reconnect => v.event = EVSOCK_SESSION_EVENT_RECONNECT,
            SessionEvent::CloseTransport { reason } => {
                v.event = EVSOCK_SESSION_EVENT_CLOSE_TRANSPORT;
                v.code = keep(reason.code());
            }
            SessionEvent::Expired => v.event = EVSOCK_SESSION_EVENT_EXPIRED,
            SessionEvent::Closed { by_peer } => {
                v.event = EVSOCK_SESSION_EVENT_CLOSED;
                v.by_peer = by_peer;
            }
            SessionEvent::Error(err) => {
                v.event = EVSOCK_SESSION_EVENT_ERROR;
                v.code = keep(err.code());
                v.message = keep(&err.to_string());
            }
        },
    }
    v.data = data_ptr(&payload);
    v.len = payload.len();
    (
        v,
        HeldOutput {
            _payload: payload,
            _strings: strings,
        },
    )
}

/// Takes the next output: `EVSOCK_OK` with `*out` filled, or `EVSOCK_EMPTY`
/// (`out->kind == EVSOCK_SESSION_OUTPUT_NONE`). Drain it after every input,
/// call and timeout. The pointers in `*out` stay valid until the next
/// `evsock_session_poll_output` on this session or its free.
///
/// # Safety
/// `session` NULL or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_poll_output(
    session: *mut evsock_session,
    out: *mut evsock_session_output,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        c.held = None;
        let (v, status) = match c.s.poll_output() {
            Some(o) => {
                let (v, held) = view(o);
                c.held = Some(held);
                (v, EVSOCK_OK)
            }
            None => (blank(), EVSOCK_EMPTY),
        };
        // SAFETY: checked non-NULL, writable per the contract (`write` does
        // not read the old contents); the pointers in `v` borrow from
        // `c.held`, kept until the next poll or free.
        unsafe { out.write(v) };
        Ok(status)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// When `evsock_session_handle_timeout` must next be called: `EVSOCK_OK`
/// with `*deadline_ms`, or `EVSOCK_EMPTY` when no timer is armed.
///
/// # Safety
/// `session` NULL or live; `deadline_ms` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_session_poll_timeout(
    session: *mut evsock_session,
    deadline_ms: *mut u64,
) -> evsock_status {
    let run = |c: &mut SessionInner| {
        if deadline_ms.is_null() {
            return Err(Fail::null("deadline_ms"));
        }
        let Some(d) = c.s.poll_timeout() else {
            return Ok(EVSOCK_EMPTY);
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { deadline_ms.write(d) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `session` is NULL or live (contract).
    unsafe { with_session(session, run) }
}

/// Server hosts: reads the hello in the first message of a new connection,
/// to find the session it resumes (or see that it wants a fresh one) before
/// handing the message to that session. `EVSOCK_ERR_INVALID_ARGUMENT` if
/// the message is not a valid hello. `*hello` is self-contained.
///
/// # Safety
/// `data` NULL (only with `len` 0) or `len` readable bytes; `hello` NULL
/// (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_peek_hello(
    kind: u32,
    data: *const u8,
    len: usize,
    hello: *mut evsock_hello,
) -> evsock_status {
    guard(|| {
        if hello.is_null() {
            return Err(Fail::null("hello"));
        }
        let kind = kind_arg(kind)?;
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = unsafe { bytes_arg(data, len, "data")? };
        let h = peek_hello(kind, data).map_err(|e| Fail::arg(format!("not a hello: {e}")))?;
        let mut v = evsock_hello {
            format: format_c(h.format),
            has_session_id: false,
            session_id: [0; 65],
            rx: h.rx,
            lo: h.lo,
            version: h.version,
        };
        if let Some(sid) = &h.session_id {
            if sid.len() > 64 || sid.as_bytes().contains(&0) {
                return Err(Fail::arg("hello: session id longer than 64 bytes"));
            }
            v.has_session_id = true;
            for (d, s) in v.session_id.iter_mut().zip(sid.bytes()) {
                *d = s as c_char;
            }
        }
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { hello.write(v) };
        Ok(EVSOCK_OK)
    })
}
