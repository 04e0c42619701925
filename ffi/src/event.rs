//! `evsock_event`: engine events as a tagged C struct whose pointers borrow
//! from a copy the connection keeps until the next poll.

use std::ffi::{c_char, CString};

use evsock::ws::{Event, Message};

use crate::status::{c_string, evsock_status};

/// What an `evsock_event` carries.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_event_type {
    /// No event (`evsock_conn_poll_event` returned `EVSOCK_EMPTY`).
    EVSOCK_EVENT_NONE = 0,
    /// Server: an upgrade request waits for `evsock_conn_accept` or
    /// `evsock_conn_reject`. `data`/`len`: the request path (for example
    /// `/chat?room=1`). `subprotocol`: the one the config would select, or
    /// NULL. More through `evsock_conn_request_header` and
    /// `evsock_conn_request_subprotocol`.
    EVSOCK_EVENT_REQUEST = 1,
    /// The handshake finished. `subprotocol`: the negotiated one, or NULL.
    EVSOCK_EVENT_OPEN = 2,
    /// A complete text message; `data`/`len` is valid UTF-8 (not
    /// NUL-terminated, and it may contain NUL bytes).
    EVSOCK_EVENT_TEXT = 3,
    /// A complete binary message in `data`/`len`.
    EVSOCK_EVENT_BINARY = 4,
    /// The peer pinged, with this payload (already answered when
    /// `EVSOCK_OPT_AUTO_PONG` is on).
    EVSOCK_EVENT_PING = 5,
    /// The peer sent a pong with this payload.
    EVSOCK_EVENT_PONG = 6,
    /// The connection is over; always the last event. `close_code`,
    /// `data`/`len` (the UTF-8 reason), `by_peer`, `clean`, and `error` /
    /// `error_message` when something went wrong.
    EVSOCK_EVENT_CLOSED = 7,
}

/// One event, filled in by `evsock_conn_poll_event`.
///
/// Every pointer in it borrows from the connection and stays valid until
/// the next `evsock_conn_poll_event` call on that connection or until the
/// connection is freed, whichever comes first. Copy what you need to keep.
/// Fields that do not apply to the event type are 0 / NULL.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evsock_event {
    /// The kind of event; see `evsock_event_type` for which fields apply.
    pub kind: evsock_event_type,
    /// Payload bytes (message, ping/pong payload, close reason, request
    /// path). Never NULL, even when `len` is 0. Not NUL-terminated.
    pub data: *const u8,
    /// Number of bytes at `data`.
    pub len: usize,
    /// OPEN and REQUEST: a NUL-terminated subprotocol name, or NULL.
    pub subprotocol: *const c_char,
    /// CLOSED: the close code (1006 if no close frame was received, 1005 if
    /// the peer's close frame had no code).
    pub close_code: u16,
    /// CLOSED: true if the peer sent the first close frame.
    pub by_peer: bool,
    /// CLOSED: true if close frames were exchanged both ways.
    pub clean: bool,
    /// CLOSED: `EVSOCK_OK`, or the error that ended the connection.
    pub error: evsock_status,
    /// CLOSED: a NUL-terminated description of `error`, or NULL.
    pub error_message: *const c_char,
}

static EMPTY: [u8; 1] = [0];

impl evsock_event {
    pub(crate) fn none() -> evsock_event {
        evsock_event {
            kind: evsock_event_type::EVSOCK_EVENT_NONE,
            data: EMPTY.as_ptr(),
            len: 0,
            subprotocol: std::ptr::null(),
            close_code: 0,
            by_peer: false,
            clean: false,
            error: evsock_status::EVSOCK_OK,
            error_message: std::ptr::null(),
        }
    }
}

/// Points at `b`, or at a static empty buffer so `data` is never NULL.
pub(crate) fn data_ptr(b: &[u8]) -> *const u8 {
    if b.is_empty() {
        EMPTY.as_ptr()
    } else {
        b.as_ptr()
    }
}

fn opt_ptr(c: &Option<CString>) -> *const c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// An event the connection holds on behalf of C, with the C strings its
/// view points into.
pub(crate) struct Held {
    pub(crate) event: Event,
    subprotocol: Option<CString>,
    error_message: Option<CString>,
    /// REQUEST: the offered subprotocols, for `evsock_conn_request_subprotocol`.
    pub(crate) offered: Vec<CString>,
}

impl Held {
    pub(crate) fn new(event: Event) -> Held {
        let (subprotocol, error_message, offered) = match &event {
            Event::Request(r) => (
                r.selected_subprotocol.as_deref().map(c_string),
                None,
                r.subprotocols.iter().map(|s| c_string(s)).collect(),
            ),
            Event::Open { subprotocol } => (subprotocol.as_deref().map(c_string), None, vec![]),
            Event::Closed(c) => (
                None,
                c.error.as_ref().map(|e| c_string(&e.to_string())),
                vec![],
            ),
            _ => (None, None, vec![]),
        };
        Held {
            event,
            subprotocol,
            error_message,
            offered,
        }
    }

    /// The C view; its pointers borrow from `self`.
    pub(crate) fn view(&self) -> evsock_event {
        use evsock_event_type::*;
        let mut v = evsock_event::none();
        let (kind, data): (_, &[u8]) = match &self.event {
            Event::Request(r) => (EVSOCK_EVENT_REQUEST, r.path.as_bytes()),
            Event::Open { .. } => (EVSOCK_EVENT_OPEN, &[]),
            Event::Message(Message::Text(t)) => (EVSOCK_EVENT_TEXT, t.as_bytes()),
            Event::Message(Message::Binary(b)) => (EVSOCK_EVENT_BINARY, b),
            Event::Ping(p) => (EVSOCK_EVENT_PING, p),
            Event::Pong(p) => (EVSOCK_EVENT_PONG, p),
            Event::Closed(c) => {
                v.close_code = c.code.0;
                v.by_peer = c.by_peer;
                v.clean = c.clean;
                v.error = c
                    .error
                    .as_ref()
                    .map_or(evsock_status::EVSOCK_OK, evsock_status::from_engine);
                (EVSOCK_EVENT_CLOSED, c.reason.as_bytes())
            }
        };
        v.kind = kind;
        v.data = data_ptr(data);
        v.len = data.len();
        v.subprotocol = opt_ptr(&self.subprotocol);
        v.error_message = opt_ptr(&self.error_message);
        v
    }
}
