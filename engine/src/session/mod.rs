//! The session layer: event vectors with acknowledged delivery,
//! request/reply, de-duplication and resume, over any message transport.
//!
//! A [`Session`] is a sans-IO state machine. The host feeds it whole
//! transport messages and the current time, and drains what it produces:
//!
//! * inputs: [`Session::handle_connected`], [`Session::handle_message`],
//!   [`Session::handle_disconnected`], [`Session::handle_timeout`], and the
//!   application calls [`Session::send`], [`Session::send_reliable`],
//!   [`Session::request`], [`Session::reply`], [`Session::close`];
//! * outputs: [`Session::poll_output`] (messages to send on the transport and
//!   [`SessionEvent`]s for the application) and [`Session::poll_timeout`]
//!   (when to call `handle_timeout` next).
//!
//! The wire format is specified in `docs/protocol.md`. In short, each
//! transport message carries one envelope `["chat/send", data, meta]` or a
//! batch `[[...],[...]]`, as JSON in text messages or MessagePack in binary
//! messages; ids starting with `evs/` are reserved for the protocol.
//!
//! A server-side [`Session`] outlives its connections: the host keeps a map
//! from session id to `Session`, uses [`peek_hello`] on the first message of
//! a new connection to find the right one (or creates one with
//! [`new_session_id`]), and drops a session once it reports
//! [`SessionEvent::Expired`] or [`SessionEvent::Closed`].

mod backoff;
mod cache;
mod codec;
mod envelope;
mod machine;
mod proto;

pub use backoff::Backoff;
pub use cache::ReplyCache;
pub use codec::{Codec, DataError, Format, JsonCodec, MsgPackCodec};
pub use envelope::{is_valid_event_id, Envelope, EnvelopeError, EventId, Meta};
pub use envelope::{
    MAX_DEPTH, MAX_EVENT_ID_LEN, MAX_IDEMPOTENCY_KEY_LEN, MAX_SAFE_INT, PROTOCOL_PREFIX,
};
pub use machine::Session;
pub use proto::{encode_go_away, new_session_id, peek_hello, Hello, PROTOCOL_VERSION};

use bytes::Bytes;
use std::fmt;

/// The kind of a transport message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A text message (carries JSON).
    Text,
    /// A binary message (carries MessagePack).
    Binary,
}

/// Which end of the session this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opens connections, sends the hello and reconnects on failure.
    Client,
    /// Accepts connections, answers the hello and outlives connections.
    Server,
}

/// Tunables of a [`Session`]. All durations are in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Wire format a client speaks (a server answers in the format of the
    /// hello it received).
    pub format: Format,
    /// Largest transport message accepted or produced. Received messages
    /// up to [`MIN_MESSAGE_BYTES`] are accepted whatever this says: the
    /// protocol's own envelopes (a welcome naming a lost range, a hello
    /// resuming a long session id) must always fit.
    pub max_message_bytes: usize,
    /// Most envelopes accepted in one batch frame, and most put in one.
    pub max_batch_envelopes: usize,
    /// Server: how long a disconnected session stays resumable before it
    /// reports [`SessionEvent::Expired`].
    pub resume_window_ms: u64,
    /// Most bytes of unacknowledged reliable messages kept for
    /// retransmission; the oldest are evicted beyond it.
    pub resume_buffer_bytes: usize,
    /// Unacknowledged reliable messages older than this are evicted.
    pub resume_buffer_age_ms: u64,
    /// Most outstanding outgoing requests.
    pub max_pending_requests: usize,
    /// Most incoming requests awaiting a reply; beyond it requests are
    /// refused with a `busy` error reply.
    pub max_incoming_requests: usize,
    /// Largest request timeout accepted (outgoing and incoming).
    pub max_request_timeout_ms: u64,
    /// Delay before a standalone ack is sent when no outgoing message can
    /// carry it.
    pub ack_delay_ms: u64,
    /// Acknowledge at once after this many unacknowledged messages.
    pub ack_every: u64,
    /// Send an `evs/ping` after this long without hearing from the peer
    /// (`None`: never ping).
    pub ping_interval_ms: Option<u64>,
    /// Give up on a connection after this long without hearing from the peer
    /// (`None`: never).
    pub idle_timeout_ms: Option<u64>,
    /// Give up on a connection whose hello / welcome does not arrive in time.
    pub handshake_timeout_ms: u64,
    /// Collect outgoing envelopes for this long into one batch frame
    /// (0: send each at once).
    pub batch_window_ms: u64,
    /// Flush a batch early once it holds this many bytes.
    pub batch_max_bytes: usize,
    /// Client: first reconnect delay cap (full jitter below it).
    pub backoff_base_ms: u64,
    /// Client: largest reconnect delay cap.
    pub backoff_max_ms: u64,
}

/// Received messages this large are always accepted (see
/// [`Config::max_message_bytes`]): the largest control envelope (a
/// welcome with a 64-character session id, every counter at 2^53 - 1
/// and a lost range) is about 200 bytes in JSON.
pub const MIN_MESSAGE_BYTES: usize = 512;

impl Config {
    /// The limit applied to received messages.
    pub(crate) fn max_received_bytes(&self) -> usize {
        self.max_message_bytes.max(MIN_MESSAGE_BYTES)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            format: Format::Json,
            max_message_bytes: 1 << 20,
            max_batch_envelopes: 64,
            resume_window_ms: 60_000,
            resume_buffer_bytes: 1 << 20,
            resume_buffer_age_ms: 60_000,
            max_pending_requests: 1024,
            max_incoming_requests: 1024,
            max_request_timeout_ms: 600_000,
            ack_delay_ms: 50,
            ack_every: 32,
            ping_interval_ms: Some(20_000),
            idle_timeout_ms: Some(45_000),
            handshake_timeout_ms: 10_000,
            batch_window_ms: 0,
            batch_max_bytes: 16 * 1024,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
        }
    }
}

/// Something the host must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this whole message on the current transport connection.
    Send {
        /// Text or binary message.
        kind: MessageKind,
        /// The message payload.
        payload: Bytes,
    },
    /// Hand this to the application (or, for connection events, act on it).
    Event(SessionEvent),
}

/// Something that happened in the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The handshake completed on a new connection.
    Established {
        /// The session id (chosen by the server).
        session_id: String,
        /// Whether an earlier session was continued (`false`: a fresh
        /// session, ids start at 1).
        resumed: bool,
    },
    /// Client: the server could not resume the session (unknown or expired);
    /// a fresh session follows. Pending requests have failed with
    /// [`RequestError::ResumeFailed`].
    Reset {
        /// Range of this side's reliable ids that were never confirmed as
        /// received, so the application can decide what to send again.
        unconfirmed: Option<(u64, u64)>,
    },
    /// These incoming reliable ids were evicted by the peer before they could
    /// be delivered and will never arrive; fetch the hole by other means.
    Gap {
        /// First missing id.
        from: u64,
        /// Last missing id (inclusive).
        to: u64,
    },
    /// An application event (fire-and-forget when `id` is `None`).
    Message {
        /// Event id.
        event: EventId,
        /// Encoded data element.
        data: Bytes,
        /// Reliable sequence number, if it was sent reliably.
        id: Option<u64>,
    },
    /// An incoming request; answer with [`Session::reply`] or
    /// [`Session::reply_error`].
    Request {
        /// Request id, to pass to `reply`.
        req: u64,
        /// Event id.
        event: EventId,
        /// Encoded data element.
        data: Bytes,
        /// How long the requester waits for the reply.
        timeout_ms: u64,
        /// Application idempotency key, if the requester gave one.
        idempotency_key: Option<Box<str>>,
    },
    /// The reply to an outgoing request.
    Reply {
        /// Request id returned by [`Session::request`].
        req: u64,
        /// Encoded reply data.
        data: Bytes,
    },
    /// An outgoing request ended without a reply.
    RequestFailed {
        /// Request id returned by [`Session::request`].
        req: u64,
        /// Why.
        error: RequestError,
    },
    /// Client: the reconnect delay has passed; open a new transport
    /// connection now (and call `handle_connected`, or `handle_disconnected`
    /// if it fails).
    Reconnect,
    /// Close the current transport connection. The session has already
    /// treated it as disconnected.
    CloseTransport {
        /// Why.
        reason: CloseReason,
    },
    /// Server: the resume window passed without a reconnect; the session is
    /// closed and the host should drop it.
    Expired,
    /// The session ended for good (by [`Session::close`] or by the peer).
    Closed {
        /// Whether the peer ended it.
        by_peer: bool,
    },
    /// A bad input was ignored.
    Error(SessionError),
}

/// Why a request ended without a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No reply within the timeout.
    Timeout,
    /// The session was closed or expired.
    SessionClosed,
    /// The session could not be resumed, or the request or its reply fell
    /// into an evicted range.
    ResumeFailed,
    /// The peer answered with an error reply (`evs/rerr`); its encoded data.
    Remote(Bytes),
}

impl RequestError {
    /// Stable short name, as used in test vectors.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Timeout => "timeout",
            RequestError::SessionClosed => "session_closed",
            RequestError::ResumeFailed => "resume_failed",
            RequestError::Remote(_) => "remote",
        }
    }
}

/// Why the session asks the host to close the transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Nothing heard from the peer within the idle timeout.
    IdleTimeout,
    /// The hello / welcome did not arrive in time.
    HandshakeTimeout,
    /// The peer broke the protocol in a way that needs a fresh connection.
    ProtocolError,
    /// The server asked the client to go away (and maybe retry later).
    GoAway,
    /// The session was closed.
    SessionClosed,
}

impl CloseReason {
    /// Stable short name, as used in test vectors.
    pub fn code(&self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::GoAway => "go_away",
            CloseReason::SessionClosed => "session_closed",
        }
    }
}

/// A bad input the session ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The message could not be decoded.
    Envelope(EnvelopeError),
    /// A message arrived while no connection was open.
    NotConnected,
    /// The first message on a connection was not the expected hello /
    /// welcome, or a hello / welcome arrived twice.
    UnexpectedHandshake,
    /// The hello / welcome names an unsupported protocol version.
    UnsupportedVersion(u64),
    /// An `evs/` event this implementation does not know.
    UnknownProtocolEvent(EventId),
    /// A reliable id skipped ahead on one connection.
    OutOfOrder {
        /// The id that was due.
        expected: u64,
        /// The id that came.
        got: u64,
    },
    /// An ack for ids never sent.
    BadAck(u64),
    /// A request or reply without an `id`, or a request with a zero timeout.
    BadRequest,
    /// A message arrived in the other codec than the session speaks.
    WrongKind,
}

impl SessionError {
    /// Stable short name, as used in test vectors.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::Envelope(_) => "envelope",
            SessionError::NotConnected => "not_connected",
            SessionError::UnexpectedHandshake => "unexpected_handshake",
            SessionError::UnsupportedVersion(_) => "unsupported_version",
            SessionError::UnknownProtocolEvent(_) => "unknown_protocol_event",
            SessionError::OutOfOrder { .. } => "out_of_order",
            SessionError::BadAck(_) => "bad_ack",
            SessionError::BadRequest => "bad_request",
            SessionError::WrongKind => "wrong_kind",
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Envelope(e) => write!(f, "{e}"),
            SessionError::UnknownProtocolEvent(e) => write!(f, "unknown protocol event {e}"),
            SessionError::OutOfOrder { expected, got } => {
                write!(f, "expected reliable id {expected}, got {got}")
            }
            SessionError::BadAck(a) => write!(f, "ack {a} for ids never sent"),
            SessionError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            other => f.write_str(other.code()),
        }
    }
}

impl std::error::Error for SessionError {}

/// Why an application call was refused. Nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The event id is not valid.
    BadEventId,
    /// The event id is in the reserved `evs/` namespace.
    ReservedEvent,
    /// The data is not one well-formed value of the session's format.
    InvalidData(EnvelopeError),
    /// The envelope would exceed `max_message_bytes`.
    TooLarge,
    /// Fire-and-forget messages need an established connection.
    NotConnected,
    /// `max_pending_requests` are already outstanding.
    TooManyPending,
    /// The resume buffer is full and nothing in it may be evicted yet: while
    /// the session handshakes, every buffered message was promised to the
    /// peer in the hello, so a reliable send that would grow the buffer past
    /// `resume_buffer_bytes` is refused. Retry once `Connected` arrives.
    BufferFull,
    /// The timeout is 0 or above `max_request_timeout_ms`.
    BadTimeout,
    /// No incoming request with this id awaits a reply.
    UnknownRequest,
    /// The idempotency key is empty or too long.
    BadIdempotencyKey,
    /// The session is closed.
    Closed,
}

impl SendError {
    /// Stable short name, as used in test vectors.
    pub fn code(&self) -> &'static str {
        match self {
            SendError::BadEventId => "bad_event_id",
            SendError::ReservedEvent => "reserved_event",
            SendError::InvalidData(_) => "invalid_data",
            SendError::TooLarge => "too_large",
            SendError::NotConnected => "not_connected",
            SendError::TooManyPending => "too_many_pending",
            SendError::BufferFull => "buffer_full",
            SendError::BadTimeout => "bad_timeout",
            SendError::UnknownRequest => "unknown_request",
            SendError::BadIdempotencyKey => "bad_idempotency_key",
            SendError::Closed => "closed",
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            SendError::BadEventId => "invalid event id",
            SendError::ReservedEvent => "event id in the reserved evs/ namespace",
            SendError::InvalidData(_) => "data is not one well-formed value",
            SendError::TooLarge => "message too large",
            SendError::NotConnected => "not connected",
            SendError::TooManyPending => "too many pending requests",
            SendError::BufferFull => "resume buffer full",
            SendError::BadTimeout => "request timeout out of range",
            SendError::UnknownRequest => "no such incoming request",
            SendError::BadIdempotencyKey => "bad idempotency key",
            SendError::Closed => "session closed",
        };
        f.write_str(s)
    }
}

impl std::error::Error for SendError {}
