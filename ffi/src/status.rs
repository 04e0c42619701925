//! Status codes, the per-thread error message and the panic barrier that
//! every entry point runs behind.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The result of every fallible call, and the `error` of a closed event.
///
/// `EVSOCK_OK` (0) is success, `EVSOCK_EMPTY` (1) means "nothing to return"
/// from a poll or lookup, and every negative value is an error. After an
/// error, `evsock_last_error()` describes it in words.
///
/// In C this is an `int32_t`, so any value may be stored in it; pass it to
/// `evsock_status_name()` for a stable snake_case name.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_status {
    /// Success.
    EVSOCK_OK = 0,
    /// Nothing to return: no bytes to write, no event, no deadline, no such
    /// header. Not an error.
    EVSOCK_EMPTY = 1,
    /// A required pointer argument was NULL.
    EVSOCK_ERR_NULL_POINTER = -1,
    /// An argument was rejected: a bad option, close code, URL, header,
    /// non-UTF-8 text, or a handle of the wrong type.
    EVSOCK_ERR_INVALID_ARGUMENT = -2,
    /// The call is not valid in the connection's current state (for
    /// example sending before the handshake finished, or after closing).
    EVSOCK_ERR_INVALID_STATE = -3,
    /// Sending would queue more than `EVSOCK_OPT_MAX_OUTBOUND_BYTES`; write
    /// out what `evsock_conn_poll_transmit` returns first.
    EVSOCK_ERR_OUTBOUND_FULL = -4,
    /// The connection is already inside another call: a re-entrant call
    /// from a fill callback, or a concurrent call from another thread.
    EVSOCK_ERR_BUSY = -5,
    /// evsock hit an internal bug (a Rust panic). It was caught at the
    /// boundary; the connection involved is now poisoned.
    EVSOCK_ERR_PANIC = -6,
    /// An earlier call on this connection panicked; only
    /// `evsock_conn_free` is still allowed.
    EVSOCK_ERR_POISONED = -7,
    /// The upgrade handshake failed (closed events only).
    EVSOCK_ERR_HANDSHAKE = -20,
    /// The peer broke the framing rules; close code 1002 (closed events).
    EVSOCK_ERR_PROTOCOL = -21,
    /// A text message or close reason was not UTF-8; 1007 (closed events).
    EVSOCK_ERR_INVALID_UTF8 = -22,
    /// A frame over `EVSOCK_OPT_MAX_FRAME_SIZE`; 1009 (closed events).
    EVSOCK_ERR_FRAME_TOO_LARGE = -23,
    /// A message over `EVSOCK_OPT_MAX_MESSAGE_SIZE`; 1009 (closed events).
    EVSOCK_ERR_MESSAGE_TOO_LARGE = -24,
    /// Too many fragments in one message; 1008 (closed events).
    EVSOCK_ERR_TOO_MANY_FRAGMENTS = -25,
    /// A keep-alive ping went unanswered (closed events).
    EVSOCK_ERR_PONG_TIMEOUT = -26,
    /// Nothing arrived for `EVSOCK_OPT_IDLE_TIMEOUT_MS` (closed events).
    EVSOCK_ERR_IDLE_TIMEOUT = -27,
    /// The handshake took too long (closed events).
    EVSOCK_ERR_HANDSHAKE_TIMEOUT = -28,
    /// The peer did not finish the closing handshake in time (closed events).
    EVSOCK_ERR_CLOSE_TIMEOUT = -29,
    /// The transport ended without a closing handshake; 1006 (closed events).
    EVSOCK_ERR_UNEXPECTED_EOF = -30,
    /// A compressed (permessage-deflate) message could not be inflated;
    /// 1007 (closed events).
    EVSOCK_ERR_COMPRESSION = -31,
    /// Session call refused: the event id is not valid.
    EVSOCK_ERR_BAD_EVENT_ID = -40,
    /// Session call refused: the event id is in the reserved `evs/` space.
    EVSOCK_ERR_RESERVED_EVENT = -41,
    /// Session call refused: the data is not one well-formed value of the
    /// session's format (JSON text or MessagePack), nor empty.
    EVSOCK_ERR_INVALID_DATA = -42,
    /// Session call refused: the envelope would exceed the message limit.
    EVSOCK_ERR_TOO_LARGE = -43,
    /// Session call refused: fire-and-forget needs an established
    /// connection.
    EVSOCK_ERR_NOT_CONNECTED = -44,
    /// Session call refused: too many outgoing requests are pending.
    EVSOCK_ERR_TOO_MANY_PENDING = -45,
    /// Session call refused: the request timeout is 0 or above the limit.
    EVSOCK_ERR_BAD_TIMEOUT = -46,
    /// Session call refused: no incoming request with this id awaits a
    /// reply.
    EVSOCK_ERR_UNKNOWN_REQUEST = -47,
    /// Session call refused: the idempotency key is empty or too long.
    EVSOCK_ERR_BAD_IDEMPOTENCY_KEY = -48,
    /// Session call refused: the session is closed.
    EVSOCK_ERR_CLOSED = -49,
    /// Session call refused: a reliable send while the session handshakes
    /// would grow the resume buffer past its limit (nothing in it may be
    /// evicted until the welcome); retry once established.
    EVSOCK_ERR_BUFFER_FULL = -50,
    /// Hub: no such connection (never existed, or already closed: its
    /// `EVSOCK_HUB_OUTPUT_CLOSE` retired the id).
    EVSOCK_ERR_UNKNOWN_CONNECTION = -60,
    /// Hub: no such client (never existed, or its session ended).
    EVSOCK_ERR_UNKNOWN_CLIENT = -61,
    /// Hub: a user id must be 1 to 128 bytes of UTF-8 without control
    /// characters.
    EVSOCK_ERR_BAD_USER_ID = -62,
    /// Hub: a room name must be 1 to 128 bytes of printable ASCII without
    /// spaces.
    EVSOCK_ERR_BAD_ROOM = -63,
    /// Hub: the room policy refused the join.
    EVSOCK_ERR_FORBIDDEN = -64,
    /// Hub: the client is in `EVSOCK_OPT_HUB_MAX_ROOMS_PER_CLIENT` rooms
    /// already.
    EVSOCK_ERR_TOO_MANY_ROOMS = -65,
    /// Hub: the user already has `EVSOCK_OPT_HUB_MAX_CONNECTIONS_PER_USER`
    /// connections; this one was rejected with HTTP 429 (its bytes and
    /// CLOSE follow in the output).
    EVSOCK_ERR_TOO_MANY_CONNECTIONS = -66,
    /// Hub: a message from the pub/sub bus was malformed; nothing changed.
    EVSOCK_ERR_CLUSTER = -67,
    /// Hub: the new connection was refused (connection limit or admission
    /// rate); write the HTTP 503 response and close the socket.
    EVSOCK_ERR_REFUSED = -68,
    /// An engine error this version of the C API has no code for; the
    /// message still says what happened.
    EVSOCK_ERR_OTHER = -99,
}

use evsock_status::*;

impl evsock_status {
    /// The stable snake_case name with a NUL terminator, for C; engine
    /// errors use `Error::kind()`'s names.
    pub(crate) fn c_name(self) -> &'static str {
        match self {
            EVSOCK_OK => "ok\0",
            EVSOCK_EMPTY => "empty\0",
            EVSOCK_ERR_NULL_POINTER => "null_pointer\0",
            EVSOCK_ERR_INVALID_ARGUMENT => "invalid_argument\0",
            EVSOCK_ERR_INVALID_STATE => "invalid_state\0",
            EVSOCK_ERR_OUTBOUND_FULL => "outbound_full\0",
            EVSOCK_ERR_BUSY => "busy\0",
            EVSOCK_ERR_PANIC => "panic\0",
            EVSOCK_ERR_POISONED => "poisoned\0",
            EVSOCK_ERR_HANDSHAKE => "handshake\0",
            EVSOCK_ERR_PROTOCOL => "protocol\0",
            EVSOCK_ERR_INVALID_UTF8 => "invalid_utf8\0",
            EVSOCK_ERR_FRAME_TOO_LARGE => "frame_too_large\0",
            EVSOCK_ERR_MESSAGE_TOO_LARGE => "message_too_large\0",
            EVSOCK_ERR_TOO_MANY_FRAGMENTS => "too_many_fragments\0",
            EVSOCK_ERR_PONG_TIMEOUT => "pong_timeout\0",
            EVSOCK_ERR_IDLE_TIMEOUT => "idle_timeout\0",
            EVSOCK_ERR_HANDSHAKE_TIMEOUT => "handshake_timeout\0",
            EVSOCK_ERR_CLOSE_TIMEOUT => "close_timeout\0",
            EVSOCK_ERR_UNEXPECTED_EOF => "unexpected_eof\0",
            EVSOCK_ERR_COMPRESSION => "compression\0",
            EVSOCK_ERR_BAD_EVENT_ID => "bad_event_id\0",
            EVSOCK_ERR_RESERVED_EVENT => "reserved_event\0",
            EVSOCK_ERR_INVALID_DATA => "invalid_data\0",
            EVSOCK_ERR_TOO_LARGE => "too_large\0",
            EVSOCK_ERR_NOT_CONNECTED => "not_connected\0",
            EVSOCK_ERR_TOO_MANY_PENDING => "too_many_pending\0",
            EVSOCK_ERR_BAD_TIMEOUT => "bad_timeout\0",
            EVSOCK_ERR_UNKNOWN_REQUEST => "unknown_request\0",
            EVSOCK_ERR_BAD_IDEMPOTENCY_KEY => "bad_idempotency_key\0",
            EVSOCK_ERR_CLOSED => "closed\0",
            EVSOCK_ERR_BUFFER_FULL => "buffer_full\0",
            EVSOCK_ERR_UNKNOWN_CONNECTION => "unknown_connection\0",
            EVSOCK_ERR_UNKNOWN_CLIENT => "unknown_client\0",
            EVSOCK_ERR_BAD_USER_ID => "bad_user_id\0",
            EVSOCK_ERR_BAD_ROOM => "bad_room\0",
            EVSOCK_ERR_FORBIDDEN => "forbidden\0",
            EVSOCK_ERR_TOO_MANY_ROOMS => "too_many_rooms\0",
            EVSOCK_ERR_TOO_MANY_CONNECTIONS => "too_many_connections\0",
            EVSOCK_ERR_CLUSTER => "cluster\0",
            EVSOCK_ERR_REFUSED => "refused\0",
            EVSOCK_ERR_OTHER => "other\0",
        }
    }

    /// The stable snake_case name.
    pub(crate) fn name(self) -> &'static str {
        self.c_name().trim_end_matches('\0')
    }

    /// Every status, for lookups by number.
    pub(crate) const ALL: [evsock_status; 42] = [
        EVSOCK_OK,
        EVSOCK_EMPTY,
        EVSOCK_ERR_NULL_POINTER,
        EVSOCK_ERR_INVALID_ARGUMENT,
        EVSOCK_ERR_INVALID_STATE,
        EVSOCK_ERR_OUTBOUND_FULL,
        EVSOCK_ERR_BUSY,
        EVSOCK_ERR_PANIC,
        EVSOCK_ERR_POISONED,
        EVSOCK_ERR_HANDSHAKE,
        EVSOCK_ERR_PROTOCOL,
        EVSOCK_ERR_INVALID_UTF8,
        EVSOCK_ERR_FRAME_TOO_LARGE,
        EVSOCK_ERR_MESSAGE_TOO_LARGE,
        EVSOCK_ERR_TOO_MANY_FRAGMENTS,
        EVSOCK_ERR_PONG_TIMEOUT,
        EVSOCK_ERR_IDLE_TIMEOUT,
        EVSOCK_ERR_HANDSHAKE_TIMEOUT,
        EVSOCK_ERR_CLOSE_TIMEOUT,
        EVSOCK_ERR_UNEXPECTED_EOF,
        EVSOCK_ERR_COMPRESSION,
        EVSOCK_ERR_BAD_EVENT_ID,
        EVSOCK_ERR_RESERVED_EVENT,
        EVSOCK_ERR_INVALID_DATA,
        EVSOCK_ERR_TOO_LARGE,
        EVSOCK_ERR_NOT_CONNECTED,
        EVSOCK_ERR_TOO_MANY_PENDING,
        EVSOCK_ERR_BAD_TIMEOUT,
        EVSOCK_ERR_UNKNOWN_REQUEST,
        EVSOCK_ERR_BAD_IDEMPOTENCY_KEY,
        EVSOCK_ERR_CLOSED,
        EVSOCK_ERR_BUFFER_FULL,
        EVSOCK_ERR_UNKNOWN_CONNECTION,
        EVSOCK_ERR_UNKNOWN_CLIENT,
        EVSOCK_ERR_BAD_USER_ID,
        EVSOCK_ERR_BAD_ROOM,
        EVSOCK_ERR_FORBIDDEN,
        EVSOCK_ERR_TOO_MANY_ROOMS,
        EVSOCK_ERR_TOO_MANY_CONNECTIONS,
        EVSOCK_ERR_CLUSTER,
        EVSOCK_ERR_REFUSED,
        EVSOCK_ERR_OTHER,
    ];

    /// The error status with this stable name, or `EVSOCK_ERR_OTHER`.
    fn by_name(name: &str) -> evsock_status {
        Self::ALL
            .iter()
            .copied()
            .find(|s| (*s as i32) < 0 && s.name() == name)
            .unwrap_or(EVSOCK_ERR_OTHER)
    }

    /// The status for an engine error, by its stable kind name.
    pub(crate) fn from_engine(e: &evsock::ws::Error) -> evsock_status {
        Self::by_name(e.kind())
    }

    /// The status for a refused session call, by its stable code.
    pub(crate) fn from_send_error(e: &evsock::session::SendError) -> evsock_status {
        Self::by_name(e.code())
    }
}

/// A failed call: the status to return and the message to keep.
#[derive(Debug)]
pub(crate) struct Fail {
    pub status: evsock_status,
    pub message: String,
}

impl Fail {
    pub(crate) fn new(status: evsock_status, message: impl Display) -> Fail {
        Fail {
            status,
            message: message.to_string(),
        }
    }

    pub(crate) fn null(what: &str) -> Fail {
        Fail::new(EVSOCK_ERR_NULL_POINTER, format!("{what} is NULL"))
    }

    pub(crate) fn arg(message: impl Display) -> Fail {
        Fail::new(EVSOCK_ERR_INVALID_ARGUMENT, message)
    }
}

impl From<evsock::session::SendError> for Fail {
    fn from(e: evsock::session::SendError) -> Fail {
        Fail::new(evsock_status::from_send_error(&e), e)
    }
}

impl From<evsock::hub::HubError> for Fail {
    fn from(e: evsock::hub::HubError) -> Fail {
        use evsock::hub::HubError as H;
        let status = match &e {
            H::UnknownConnection => EVSOCK_ERR_UNKNOWN_CONNECTION,
            H::UnknownClient => EVSOCK_ERR_UNKNOWN_CLIENT,
            H::InvalidState(_) => EVSOCK_ERR_INVALID_STATE,
            H::BadUserId => EVSOCK_ERR_BAD_USER_ID,
            H::BadRoom => EVSOCK_ERR_BAD_ROOM,
            H::Forbidden => EVSOCK_ERR_FORBIDDEN,
            H::TooManyRooms => EVSOCK_ERR_TOO_MANY_ROOMS,
            H::TooManyConnections => EVSOCK_ERR_TOO_MANY_CONNECTIONS,
            H::InvalidData => EVSOCK_ERR_INVALID_DATA,
            H::Send(s) => evsock_status::from_send_error(s),
            H::Ws(w) => evsock_status::from_engine(w),
            H::Cluster(_) => EVSOCK_ERR_CLUSTER,
            H::BadConfig(_) => EVSOCK_ERR_INVALID_ARGUMENT,
            _ => EVSOCK_ERR_OTHER,
        };
        Fail::new(status, e)
    }
}

impl From<evsock::ws::Error> for Fail {
    fn from(e: evsock::ws::Error) -> Fail {
        Fail::new(evsock_status::from_engine(&e), e)
    }
}

pub(crate) type FfiResult = Result<evsock_status, Fail>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Makes a C string of `s`, replacing interior NULs (which C cannot carry).
pub(crate) fn c_string(s: &str) -> CString {
    match CString::new(s) {
        Ok(c) => c,
        Err(_) => CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default(),
    }
}

pub(crate) fn set_last_error(message: &str) {
    let c = c_string(message);
    // `try_with` fails only while the thread is being torn down; the
    // message is then simply not kept.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

pub(crate) fn last_error_ptr() -> *const c_char {
    static EMPTY: &[u8] = b"\0";
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(EMPTY.as_ptr().cast())
}

/// Turns a panic payload into words.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs one entry point: catches panics, records failures as the thread's
/// last error and returns the status code.
pub(crate) fn guard(f: impl FnOnce() -> FfiResult) -> evsock_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(status)) => status,
        Ok(Err(fail)) => {
            set_last_error(&fail.message);
            fail.status
        }
        Err(payload) => {
            set_last_error(&format!(
                "internal panic in evsock: {}",
                panic_message(&*payload)
            ));
            EVSOCK_ERR_PANIC
        }
    }
}
