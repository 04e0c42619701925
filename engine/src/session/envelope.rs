//! Decoded envelopes: event ids, metadata and typed decoding errors.

use bytes::Bytes;
use std::fmt;

/// Largest id, timeout or ack number the protocol accepts (2^53 - 1).
///
/// Chosen so that every value survives a trip through a JavaScript number.
pub const MAX_SAFE_INT: u64 = (1 << 53) - 1;

/// Longest event id, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// Deepest nesting of arrays and maps accepted inside one frame.
pub const MAX_DEPTH: usize = 64;

/// Prefix reserved for protocol events; applications may not use it.
pub const PROTOCOL_PREFIX: &str = "evs/";

/// Whether `b` is a well-formed event id: 1 to [`MAX_EVENT_ID_LEN`] bytes of
/// printable ASCII other than space, `"` and `\`.
///
/// The restriction means an id never needs escaping in JSON and is the same
/// byte string in every codec.
pub fn is_valid_event_id(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= MAX_EVENT_ID_LEN
        && b.iter()
            .all(|&c| (0x21..=0x7e).contains(&c) && c != b'"' && c != b'\\')
}

/// An event id such as `chat/send`.
///
/// Cheap to clone: it shares the bytes of the frame it was decoded from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventId(Bytes);

impl EventId {
    /// Validates and wraps an event id.
    pub fn new(s: &str) -> Result<Self, EnvelopeError> {
        if is_valid_event_id(s.as_bytes()) {
            Ok(EventId(Bytes::copy_from_slice(s.as_bytes())))
        } else {
            Err(EnvelopeError::BadEventId)
        }
    }

    /// Wraps a static, already known-good id without copying.
    pub(crate) fn from_static(s: &'static str) -> Self {
        debug_assert!(is_valid_event_id(s.as_bytes()));
        EventId(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes the caller has validated with [`is_valid_event_id`].
    pub(crate) fn from_validated(b: Bytes) -> Self {
        EventId(b)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Validated as printable ASCII on construction.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The id as raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether the id is in the reserved `evs/` namespace.
    pub fn is_protocol(&self) -> bool {
        self.0.starts_with(PROTOCOL_PREFIX.as_bytes())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The optional third element of an envelope.
///
/// Every field is optional; an envelope whose metadata is all `None` is sent
/// without a third element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Sequence number of a reliable message (per session and direction,
    /// starting at 1).
    pub id: Option<u64>,
    /// Request: the requester waits this many milliseconds for a reply.
    pub rq: Option<u64>,
    /// Reply: the id of the request this answers.
    pub re: Option<u64>,
    /// Cumulative acknowledgement: every peer message with id <= `ack` has
    /// been received.
    pub ack: Option<u64>,
    /// Application idempotency key (requests only).
    pub ik: Option<Box<str>>,
}

impl Meta {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.id.is_none()
            && self.rq.is_none()
            && self.re.is_none()
            && self.ack.is_none()
            && self.ik.is_none()
    }

    /// Number of fields that are set.
    pub fn field_count(&self) -> usize {
        self.id.is_some() as usize
            + self.rq.is_some() as usize
            + self.re.is_some() as usize
            + self.ack.is_some() as usize
            + self.ik.is_some() as usize
    }
}

/// One decoded event vector `[event-id, data, meta]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The event id.
    pub event: EventId,
    /// The data element, still encoded in the frame's codec (JSON text or
    /// MessagePack bytes), sharing the frame's memory. Empty when the
    /// envelope had no data element (read it as `null`).
    pub data: Bytes,
    /// The metadata element (all `None` when absent).
    pub meta: Meta,
}

/// Why a frame could not be decoded into envelopes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The frame was empty.
    Empty,
    /// The frame is larger than the configured maximum.
    TooLarge {
        /// Size of the frame in bytes.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A text frame was not valid UTF-8.
    InvalidUtf8,
    /// The bytes are not well-formed JSON / MessagePack.
    Syntax {
        /// Byte offset of the problem.
        offset: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The frame is well-formed but is not an envelope or a batch of
    /// envelopes.
    NotAnEnvelope,
    /// The event id is missing, not a string or not a valid id.
    BadEventId,
    /// The metadata element is not a map, repeats a key, or a known key has a
    /// value of the wrong type.
    BadMeta(&'static str),
    /// An id, ack or timeout is negative, fractional or above
    /// [`MAX_SAFE_INT`].
    IdOutOfRange,
    /// A batch holds more envelopes than allowed.
    TooManyEnvelopes {
        /// Configured maximum.
        max: usize,
    },
    /// The data of a protocol event does not have the expected shape.
    BadProtocolData(&'static str),
    /// The message kind does not match the codec (text vs binary).
    WrongKind,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Empty => f.write_str("empty frame"),
            EnvelopeError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds limit of {max}")
            }
            EnvelopeError::InvalidUtf8 => f.write_str("text frame is not valid UTF-8"),
            EnvelopeError::Syntax { offset } => write!(f, "syntax error at byte {offset}"),
            EnvelopeError::TooDeep => f.write_str("nesting too deep"),
            EnvelopeError::NotAnEnvelope => f.write_str("not an event vector"),
            EnvelopeError::BadEventId => f.write_str("missing or invalid event id"),
            EnvelopeError::BadMeta(w) => write!(f, "bad metadata: {w}"),
            EnvelopeError::IdOutOfRange => f.write_str("id out of range"),
            EnvelopeError::TooManyEnvelopes { max } => {
                write!(f, "more than {max} envelopes in one frame")
            }
            EnvelopeError::BadProtocolData(w) => write!(f, "bad protocol event data: {w}"),
            EnvelopeError::WrongKind => f.write_str("message kind does not match codec"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_rules() {
        assert!(is_valid_event_id(b"chat/send"));
        assert!(is_valid_event_id(b"a"));
        assert!(!is_valid_event_id(b""));
        assert!(!is_valid_event_id(b"has space"));
        assert!(!is_valid_event_id(b"q\"uote"));
        assert!(!is_valid_event_id(b"back\\slash"));
        assert!(!is_valid_event_id("é".as_bytes()));
        assert!(!is_valid_event_id(&[b'a'; MAX_EVENT_ID_LEN + 1]));
        assert!(EventId::new("evs/hello").unwrap().is_protocol());
        assert!(!EventId::new("chat/evs").unwrap().is_protocol());
    }

    #[test]
    fn meta_counts() {
        let mut m = Meta::default();
        assert!(m.is_empty());
        m.id = Some(1);
        m.ack = Some(0);
        assert_eq!(m.field_count(), 2);
        assert!(!m.is_empty());
    }
}
