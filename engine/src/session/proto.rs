//! Protocol events (`evs/...`) and the helpers a host needs before a
//! [`Session`](super::Session) exists.

use super::codec::Format;
use super::envelope::{is_valid_event_id, EnvelopeError, Meta, MAX_SAFE_INT};
use super::MessageKind;
use crate::rng::Rng;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The protocol version this implementation speaks (`"v"` in hello and
/// welcome).
pub const PROTOCOL_VERSION: u64 = 1;

pub(crate) const HELLO: &str = "evs/hello";
pub(crate) const WELCOME: &str = "evs/welcome";
pub(crate) const PING: &str = "evs/ping";
pub(crate) const PONG: &str = "evs/pong";
pub(crate) const ACK: &str = "evs/ack";
pub(crate) const BYE: &str = "evs/bye";
pub(crate) const REPLY: &str = "evs/reply";
pub(crate) const RERR: &str = "evs/rerr";

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn one() -> u64 {
    1
}

/// Data of `evs/hello` (client to server, first message of a connection).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HelloData {
    pub v: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default)]
    pub rx: u64,
    #[serde(default = "one")]
    pub lo: u64,
}

/// Data of `evs/welcome` (server to client, answer to the hello).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WelcomeData {
    pub v: u64,
    pub sid: String,
    pub st: String,
    #[serde(default)]
    pub rx: u64,
    #[serde(default = "one")]
    pub lo: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<[u64; 2]>,
}

/// Data of `evs/bye`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ByeData {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ra: u64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub end: bool,
}

/// Data of an `evs/rerr` the engine generates itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RerrData<'a> {
    pub code: &'a str,
}

pub(crate) fn is_valid_session_id(s: &str) -> bool {
    s.len() <= 64 && is_valid_event_id(s.as_bytes())
}

impl HelloData {
    pub(crate) fn check(&self) -> Result<(), EnvelopeError> {
        if self.rx > MAX_SAFE_INT || self.lo > MAX_SAFE_INT || self.lo == 0 {
            return Err(EnvelopeError::IdOutOfRange);
        }
        if let Some(s) = &self.sid {
            if !is_valid_session_id(s) {
                return Err(EnvelopeError::BadProtocolData("sid"));
            }
        }
        Ok(())
    }
}

impl WelcomeData {
    pub(crate) fn check(&self) -> Result<(), EnvelopeError> {
        if self.rx > MAX_SAFE_INT || self.lo > MAX_SAFE_INT || self.lo == 0 {
            return Err(EnvelopeError::IdOutOfRange);
        }
        if !is_valid_session_id(&self.sid) {
            return Err(EnvelopeError::BadProtocolData("sid"));
        }
        if !matches!(self.st.as_str(), "new" | "resumed" | "reset") {
            return Err(EnvelopeError::BadProtocolData("st"));
        }
        Ok(())
    }
}

/// What the first message of a connection says, for routing it to a
/// session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Wire format of the connection (from the message kind).
    pub format: Format,
    /// The session the client wants to resume, if any.
    pub session_id: Option<String>,
    /// Highest server id the client has received in order.
    pub rx: u64,
    /// Lowest client id the client can still retransmit.
    pub lo: u64,
    /// Protocol version the client speaks.
    pub version: u64,
}

/// Reads the hello from the first message of a new connection, so the host
/// can find the session to resume (or create a new one) before handing the
/// message to [`Session::handle_message`](super::Session::handle_message).
pub fn peek_hello(kind: MessageKind, payload: &[u8]) -> Result<Hello, EnvelopeError> {
    let format = Format::from_kind(kind);
    let frame = Bytes::copy_from_slice(payload);
    let mut envs = Vec::with_capacity(1);
    format.codec().decode_frame(&frame, 1, &mut envs)?;
    let env = envs.pop().ok_or(EnvelopeError::NotAnEnvelope)?;
    if env.event.as_bytes() != HELLO.as_bytes() {
        return Err(EnvelopeError::BadProtocolData("expected evs/hello"));
    }
    let h: HelloData = format
        .decode(&env.data)
        .map_err(|_| EnvelopeError::BadProtocolData("hello"))?;
    h.check()?;
    Ok(Hello {
        format,
        session_id: h.sid,
        rx: h.rx,
        lo: h.lo,
        version: h.v,
    })
}

/// A fresh random session id: 16 bytes from `rng`, base64url without
/// padding (22 characters).
pub fn new_session_id(rng: &mut dyn Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Encodes a session-less `evs/bye` asking a client to go away and retry
/// after `retry_after_ms`: for a host that refuses a connection (overload,
/// maintenance) before creating a session.
pub fn encode_go_away(format: Format, retry_after_ms: u64) -> Bytes {
    let data = ByeData {
        ra: retry_after_ms.min(MAX_SAFE_INT),
        end: false,
    };
    // Serializing two integers cannot fail.
    let data = format.encode(&data).unwrap_or_default();
    let mut out = Vec::with_capacity(data.len() + 16);
    format
        .codec()
        .write_envelope(&mut out, BYE.as_bytes(), &data, &Meta::default());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    #[test]
    fn peek_hello_json_and_msgpack() {
        let h = peek_hello(
            MessageKind::Text,
            br#"["evs/hello",{"v":1,"sid":"abc","rx":4,"lo":2}]"#,
        )
        .unwrap();
        assert_eq!(h.session_id.as_deref(), Some("abc"));
        assert_eq!((h.rx, h.lo, h.version), (4, 2, 1));
        let h = peek_hello(MessageKind::Text, br#"["evs/hello",{"v":1}]"#).unwrap();
        assert_eq!((h.session_id, h.rx, h.lo), (None, 0, 1));

        let data = Format::MsgPack
            .encode(&HelloData {
                v: 1,
                sid: Some("s".into()),
                rx: 9,
                lo: 3,
            })
            .unwrap();
        let mut msg = Vec::new();
        Format::MsgPack
            .codec()
            .write_envelope(&mut msg, b"evs/hello", &data, &Meta::default());
        let h = peek_hello(MessageKind::Binary, &msg).unwrap();
        assert_eq!(h.format, Format::MsgPack);
        assert_eq!((h.session_id.as_deref(), h.rx, h.lo), (Some("s"), 9, 3));
    }

    #[test]
    fn peek_hello_rejects() {
        assert!(peek_hello(MessageKind::Text, b"[\"chat/x\",1]").is_err());
        assert!(peek_hello(MessageKind::Text, b"[\"evs/hello\",1]").is_err());
        assert!(peek_hello(
            MessageKind::Text,
            b"[\"evs/hello\",{\"v\":1,\"sid\":\"a b\"}]"
        )
        .is_err());
        assert!(peek_hello(MessageKind::Text, b"[\"evs/hello\",{\"v\":1,\"lo\":0}]").is_err());
        assert!(peek_hello(MessageKind::Text, b"[[\"evs/hello\"],[\"evs/hello\"]]").is_err());
        assert!(peek_hello(MessageKind::Binary, b"nonsense").is_err());
    }

    #[test]
    fn session_ids_are_random_and_valid() {
        let mut r = SeededRng::new(1);
        let a = new_session_id(&mut r);
        let b = new_session_id(&mut r);
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(is_valid_session_id(&a));
    }

    #[test]
    fn go_away_bytes() {
        assert_eq!(
            &encode_go_away(Format::Json, 5000)[..],
            br#"["evs/bye",{"ra":5000}]"#
        );
    }
}
