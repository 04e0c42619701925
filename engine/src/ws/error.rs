//! Typed errors for the WebSocket layer.
//!
//! Every way a peer can misbehave maps to one variant, and every variant
//! knows the close code (or HTTP status) it is answered with.

use std::fmt;

use super::close::CloseCode;

/// A violation of the framing rules of RFC 6455 by the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// An opcode reserved for future use (3-7, 11-15).
    ReservedOpcode(u8),
    /// RSV bits set without an extension that defines them.
    ReservedBits(u8),
    /// The most significant bit of a 64-bit length was set.
    LengthHighBitSet,
    /// A client frame without a mask, or a server frame with one.
    BadMasking {
        /// Whether the offending frame was masked.
        masked: bool,
    },
    /// A control frame with FIN clear.
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    ControlTooLong(u64),
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message was unfinished.
    ExpectedContinuation,
    /// A close frame with a one-byte payload.
    CloseCodeTruncated,
    /// A close frame with a code that may not appear on the wire.
    InvalidCloseCode(u16),
    /// A frame arrived after the peer's close frame.
    FrameAfterClose,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ReservedBits(b) => write!(f, "reserved bits {b:#05b} set"),
            ProtocolError::LengthHighBitSet => f.write_str("64-bit length with the high bit set"),
            ProtocolError::BadMasking { masked: true } => {
                f.write_str("server frames must not be masked")
            }
            ProtocolError::BadMasking { masked: false } => {
                f.write_str("client frames must be masked")
            }
            ProtocolError::FragmentedControl => f.write_str("fragmented control frame"),
            ProtocolError::ControlTooLong(n) => write!(f, "control frame of {n} bytes (max 125)"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message inside a fragmented message")
            }
            ProtocolError::CloseCodeTruncated => f.write_str("close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode(c) => {
                write!(f, "close code {c} is not allowed on the wire")
            }
            ProtocolError::FrameAfterClose => f.write_str("frame after the peer's close frame"),
        }
    }
}

/// Why an upgrade handshake failed. On the server each carries the HTTP
/// status it is answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The bytes are not a well-formed HTTP/1.1 message.
    MalformedHttp(String),
    /// The request line or headers are longer than allowed (431).
    HeadersTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// More header fields than allowed (431).
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// The method is not GET (405).
    MethodNotAllowed(String),
    /// The HTTP version is not 1.1 (505).
    UnsupportedHttpVersion,
    /// A required header is missing (400, or 426 for Upgrade).
    MissingHeader(&'static str),
    /// A header is present but unusable (400).
    InvalidHeader(&'static str),
    /// Sec-WebSocket-Version is not 13 (426 with the supported version).
    UnsupportedVersion(String),
    /// The Origin is not allowed by the policy (403).
    OriginRefused(String),
    /// The host rejected the request.
    Rejected {
        /// The status the host answered with.
        status: u16,
    },
    /// Client role: the server answered with a status other than 101.
    UnexpectedStatus {
        /// The status code.
        status: u16,
        /// The response body, as far as it was received (at most a few KiB).
        body: Vec<u8>,
    },
    /// Client role: Sec-WebSocket-Accept did not match our key.
    BadAccept,
    /// Client role: the server picked a subprotocol we did not offer.
    UnofferedSubprotocol(String),
    /// Client role: the server enabled an extension we did not offer.
    UnofferedExtension(String),
    /// Bytes arrived before the host accepted the request, beyond the limit.
    EarlyDataTooLarge,
}

impl HandshakeError {
    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadersTooLarge { .. } | HandshakeError::TooManyHeaders { .. } => 431,
            HandshakeError::MethodNotAllowed(_) => 405,
            HandshakeError::UnsupportedHttpVersion => 505,
            HandshakeError::MissingHeader("Upgrade") => 426,
            HandshakeError::UnsupportedVersion(_) => 426,
            HandshakeError::OriginRefused(_) => 403,
            HandshakeError::Rejected { status } => *status,
            HandshakeError::EarlyDataTooLarge => 400,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::MalformedHttp(e) => write!(f, "malformed HTTP: {e}"),
            HandshakeError::HeadersTooLarge { limit } => {
                write!(f, "handshake larger than {limit} bytes")
            }
            HandshakeError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} header fields")
            }
            HandshakeError::MethodNotAllowed(m) => {
                write!(f, "method {m} not allowed, expected GET")
            }
            HandshakeError::UnsupportedHttpVersion => f.write_str("HTTP version must be 1.1"),
            HandshakeError::MissingHeader(h) => write!(f, "missing or wrong {h} header"),
            HandshakeError::InvalidHeader(h) => write!(f, "invalid {h} header"),
            HandshakeError::UnsupportedVersion(v) => {
                write!(f, "unsupported Sec-WebSocket-Version {v:?}, expected 13")
            }
            HandshakeError::OriginRefused(o) => write!(f, "origin {o:?} is not allowed"),
            HandshakeError::Rejected { status } => {
                write!(f, "rejected by the host with status {status}")
            }
            HandshakeError::UnexpectedStatus { status, .. } => {
                write!(f, "server answered {status}, expected 101")
            }
            HandshakeError::BadAccept => f.write_str("Sec-WebSocket-Accept does not match the key"),
            HandshakeError::UnofferedSubprotocol(p) => {
                write!(f, "server selected subprotocol {p:?} that was not offered")
            }
            HandshakeError::UnofferedExtension(e) => {
                write!(f, "server enabled extension {e:?} that was not offered")
            }
            HandshakeError::EarlyDataTooLarge => {
                f.write_str("too much data before the handshake was accepted")
            }
        }
    }
}

/// Everything that can end or refuse a WebSocket connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The upgrade handshake failed.
    Handshake(HandshakeError),
    /// The peer broke the framing rules (close code 1002).
    Protocol(ProtocolError),
    /// A text message or close reason was not valid UTF-8 (1007).
    InvalidUtf8,
    /// A frame longer than `Config::max_frame_size` (1009).
    FrameTooLarge {
        /// The announced frame length.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message longer than `Config::max_message_size` (1009).
    MessageTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// More fragments in one message than `Config::max_fragments` (1008).
    TooManyFragments {
        /// The configured limit.
        limit: usize,
    },
    /// No pong arrived within `Config::pong_timeout_ms` of a ping.
    PongTimeout,
    /// Nothing arrived for `Config::idle_timeout_ms`.
    IdleTimeout,
    /// The handshake did not finish within `Config::handshake_timeout_ms`.
    HandshakeTimeout,
    /// The peer did not answer our close frame in time.
    CloseTimeout,
    /// The transport ended without a closing handshake (1006).
    UnexpectedEof,
    /// The call is not valid in the connection's current state.
    InvalidState(&'static str),
    /// Sending would queue more than `Config::max_outbound_bytes`.
    OutboundFull {
        /// The configured limit.
        limit: usize,
    },
    /// A compressed message could not be inflated (1007).
    Compression,
    /// An argument was rejected (for example an illegal close code or a
    /// ping payload over 125 bytes).
    InvalidArgument(&'static str),
}

impl Error {
    /// A stable snake_case name for the kind of error, shared by every
    /// binding (the test vectors and the C, Python and Node APIs use it).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Handshake(_) => "handshake",
            Error::Protocol(_) => "protocol",
            Error::InvalidUtf8 => "invalid_utf8",
            Error::FrameTooLarge { .. } => "frame_too_large",
            Error::MessageTooLarge { .. } => "message_too_large",
            Error::TooManyFragments { .. } => "too_many_fragments",
            Error::PongTimeout => "pong_timeout",
            Error::IdleTimeout => "idle_timeout",
            Error::HandshakeTimeout => "handshake_timeout",
            Error::CloseTimeout => "close_timeout",
            Error::UnexpectedEof => "unexpected_eof",
            Error::InvalidState(_) => "invalid_state",
            Error::OutboundFull { .. } => "outbound_full",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Compression => "compression",
        }
    }

    /// The close code we send to the peer for this error, if one is sent.
    pub fn close_code(&self) -> Option<CloseCode> {
        Some(match self {
            Error::Protocol(_) => CloseCode::PROTOCOL_ERROR,
            Error::InvalidUtf8 | Error::Compression => CloseCode::INVALID_PAYLOAD,
            Error::FrameTooLarge { .. } | Error::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            Error::TooManyFragments { .. } => CloseCode::POLICY_VIOLATION,
            Error::PongTimeout => CloseCode::INTERNAL_ERROR,
            Error::IdleTimeout => CloseCode::GOING_AWAY,
            _ => return None,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::InvalidUtf8 => f.write_str("invalid UTF-8 in a text message or close reason"),
            Error::FrameTooLarge { len, limit } => {
                write!(f, "frame of {len} bytes exceeds the limit of {limit}")
            }
            Error::MessageTooLarge { limit } => {
                write!(f, "message exceeds the limit of {limit} bytes")
            }
            Error::TooManyFragments { limit } => {
                write!(f, "message has more than {limit} fragments")
            }
            Error::PongTimeout => f.write_str("no pong received in time"),
            Error::IdleTimeout => f.write_str("connection idle for too long"),
            Error::HandshakeTimeout => f.write_str("handshake did not complete in time"),
            Error::CloseTimeout => {
                f.write_str("peer did not complete the closing handshake in time")
            }
            Error::UnexpectedEof => f.write_str("connection ended without a closing handshake"),
            Error::InvalidState(s) => write!(f, "invalid state: {s}"),
            Error::OutboundFull { limit } => write!(f, "outbound queue would exceed {limit} bytes"),
            Error::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            Error::Compression => f.write_str("compressed message could not be inflated"),
        }
    }
}

impl std::error::Error for Error {}
impl std::error::Error for ProtocolError {}
impl std::error::Error for HandshakeError {}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}
