//! Whole WebSocket messages as the application sees them.

use bytes::Bytes;
use std::fmt;

/// UTF-8 text backed by shared bytes, validated once on receipt.
///
/// It derefs to `str` without copying or validating again.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(Bytes);

impl Text {
    /// Wraps bytes the caller has already checked. Crate-private: every
    /// constructor guarantees the bytes are UTF-8.
    pub(crate) fn from_validated(b: Bytes) -> Text {
        debug_assert!(std::str::from_utf8(&b).is_ok());
        Text(b)
    }

    /// Validates `b` and wraps it.
    pub fn from_bytes(b: Bytes) -> Result<Text, std::str::Utf8Error> {
        std::str::from_utf8(&b)?;
        Ok(Text(b))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor of `Text` validated the bytes as UTF-8
        // (`from_bytes` here, and the reader's incremental validator for
        // `from_validated`), and `Bytes` is immutable, so they still are.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A complete message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(Text),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}
