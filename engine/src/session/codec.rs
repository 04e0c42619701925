//! Envelope codecs: JSON in text messages, MessagePack in binary messages.
//!
//! Decoding is zero-copy: event ids and data elements are [`Bytes`] slices of
//! the incoming frame. Only the envelope skeleton is parsed; the data element
//! is checked for well-formedness and handed to the application still encoded,
//! so it can deserialize straight into its own types.
//!
//! Encoding writes the skeleton by hand into one pre-sized buffer.

use super::envelope::{is_valid_event_id, Envelope, EnvelopeError, EventId, Meta};
use super::envelope::{MAX_DEPTH, MAX_IDEMPOTENCY_KEY_LEN, MAX_SAFE_INT};
use super::MessageKind;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;

/// Encoding and decoding of envelopes for one wire format.
///
/// Implemented by [`JsonCodec`] and [`MsgPackCodec`]; [`Format`] picks one at
/// run time.
pub trait Codec {
    /// The message kind this codec travels in.
    fn kind(&self) -> MessageKind;

    /// Decodes a frame (one envelope or a batch of envelopes), appending to
    /// `out`. On error `out` may hold some envelopes of the frame; callers
    /// should discard them.
    fn decode_frame(
        &self,
        frame: &Bytes,
        max_envelopes: usize,
        out: &mut Vec<Envelope>,
    ) -> Result<(), EnvelopeError>;

    /// Checks that `data` is exactly one well-formed value.
    fn validate_value(&self, data: &[u8]) -> Result<(), EnvelopeError>;

    /// Upper bound of the bytes [`Codec::write_envelope`] will append.
    fn envelope_len_hint(&self, event: &[u8], data: &[u8], meta: &Meta) -> usize {
        event.len()
            + data.len()
            + 24
            + meta.field_count() * 24
            + meta.ik.as_ref().map_or(0, |k| k.len() * 6)
    }

    /// Appends one envelope. `data` must be one encoded value, or empty for
    /// "no data" (written as null when metadata follows, omitted otherwise).
    fn write_envelope(&self, out: &mut Vec<u8>, event: &[u8], data: &[u8], meta: &Meta);

    /// Appends the opening of a batch of `count` (>= 2) envelopes.
    fn write_batch_start(&self, out: &mut Vec<u8>, count: usize);

    /// Appends what separates envelope `index` (>= 1) from the previous one.
    fn write_batch_separator(&self, out: &mut Vec<u8>);

    /// Appends the end of a batch.
    fn write_batch_end(&self, out: &mut Vec<u8>);
}

/// Error converting application data to or from a wire format.
#[derive(Debug)]
pub struct DataError(String);

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "data codec error: {}", self.0)
    }
}

impl std::error::Error for DataError {}

/// The wire format of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON in text messages.
    Json,
    /// MessagePack in binary messages.
    MsgPack,
}

impl Format {
    /// The format carried by a message kind.
    pub fn from_kind(kind: MessageKind) -> Format {
        match kind {
            MessageKind::Text => Format::Json,
            MessageKind::Binary => Format::MsgPack,
        }
    }

    /// The message kind this format travels in.
    pub fn kind(self) -> MessageKind {
        match self {
            Format::Json => MessageKind::Text,
            Format::MsgPack => MessageKind::Binary,
        }
    }

    /// The codec implementing this format.
    pub fn codec(self) -> &'static dyn Codec {
        match self {
            Format::Json => &JsonCodec,
            Format::MsgPack => &MsgPackCodec,
        }
    }

    /// Encodes an application value as an envelope data element.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes, DataError> {
        match self {
            Format::Json => serde_json::to_vec(value)
                .map(Bytes::from)
                .map_err(|e| DataError(e.to_string())),
            Format::MsgPack => rmp_serde::to_vec_named(value)
                .map(Bytes::from)
                .map_err(|e| DataError(e.to_string())),
        }
    }

    /// Decodes an envelope data element. Empty data reads as `null`.
    pub fn decode<T: DeserializeOwned>(self, data: &[u8]) -> Result<T, DataError> {
        match self {
            Format::Json => {
                let d: &[u8] = if data.is_empty() { b"null" } else { data };
                serde_json::from_slice(d).map_err(|e| DataError(e.to_string()))
            }
            Format::MsgPack => {
                let d: &[u8] = if data.is_empty() { &[0xc0] } else { data };
                rmp_serde::from_slice(d).map_err(|e| DataError(e.to_string()))
            }
        }
    }
}

// ---------------------------------------------------------------- shared ---

fn check_id(v: u64) -> Result<u64, EnvelopeError> {
    if v <= MAX_SAFE_INT {
        Ok(v)
    } else {
        Err(EnvelopeError::IdOutOfRange)
    }
}

fn set_once<T>(slot: &mut Option<T>, v: T, key: &'static str) -> Result<(), EnvelopeError> {
    if slot.is_some() {
        return Err(EnvelopeError::BadMeta(key));
    }
    *slot = Some(v);
    Ok(())
}

fn meta_key(k: &[u8]) -> Option<&'static str> {
    Some(match k {
        b"id" => "id",
        b"rq" => "rq",
        b"re" => "re",
        b"ack" => "ack",
        b"ik" => "ik",
        _ => return None,
    })
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

// ------------------------------------------------------------------ JSON ---

/// JSON envelopes in text messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

struct JsonCur<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> JsonCur<'a> {
    fn err(&self) -> EnvelopeError {
        EnvelopeError::Syntax { offset: self.p }
    }

    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.p) {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
                self.p += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.p).copied()
    }

    fn eat(&mut self, c: u8) -> Result<(), EnvelopeError> {
        if self.peek() == Some(c) {
            self.p += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn lit(&mut self, s: &[u8]) -> Result<(), EnvelopeError> {
        if self.b[self.p..].starts_with(s) {
            self.p += s.len();
            Ok(())
        } else {
            Err(self.err())
        }
    }

    /// Skips a string starting at the opening quote; returns the span of its
    /// raw contents and whether it contained escapes.
    fn string(&mut self) -> Result<(usize, usize, bool), EnvelopeError> {
        self.eat(b'"')?;
        let start = self.p;
        let mut escaped = false;
        loop {
            let c = self.peek().ok_or_else(|| self.err())?;
            match c {
                b'"' => {
                    let end = self.p;
                    self.p += 1;
                    return Ok((start, end, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.p += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.p += 1,
                        Some(b'u') => {
                            self.p += 1;
                            for _ in 0..4 {
                                match self.peek() {
                                    Some(h) if h.is_ascii_hexdigit() => self.p += 1,
                                    _ => return Err(self.err()),
                                }
                            }
                        }
                        _ => return Err(self.err()),
                    }
                }
                0..=0x1f => return Err(self.err()),
                _ => self.p += 1,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let s = self.p;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.p += 1;
        }
        self.p - s
    }

    fn number(&mut self) -> Result<(), EnvelopeError> {
        if self.peek() == Some(b'-') {
            self.p += 1;
        }
        match self.peek() {
            Some(b'0') => self.p += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err()),
        }
        if self.peek() == Some(b'.') {
            self.p += 1;
            if self.digits() == 0 {
                return Err(self.err());
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.p += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.p += 1;
            }
            if self.digits() == 0 {
                return Err(self.err());
            }
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<(), EnvelopeError> {
        if depth > MAX_DEPTH {
            return Err(EnvelopeError::TooDeep);
        }
        match self.peek() {
            Some(b'{') => {
                self.p += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.p += 1;
                    return Ok(());
                }
                loop {
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => {
                            self.p += 1;
                            self.ws();
                        }
                        Some(b'}') => {
                            self.p += 1;
                            return Ok(());
                        }
                        _ => return Err(self.err()),
                    }
                }
            }
            Some(b'[') => {
                self.p += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.p += 1;
                    return Ok(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => {
                            self.p += 1;
                            self.ws();
                        }
                        Some(b']') => {
                            self.p += 1;
                            return Ok(());
                        }
                        _ => return Err(self.err()),
                    }
                }
            }
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.lit(b"true"),
            Some(b'f') => self.lit(b"false"),
            Some(b'n') => self.lit(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err()),
        }
    }

    /// An unsigned integer within the safe range (no sign, fraction or
    /// exponent).
    fn uint(&mut self) -> Result<u64, EnvelopeError> {
        let start = self.p;
        self.number()?;
        let s = &self.b[start..self.p];
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) || s.len() > 16 {
            return Err(EnvelopeError::IdOutOfRange);
        }
        let v = s.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
        check_id(v)
    }

    fn meta(&mut self) -> Result<Meta, EnvelopeError> {
        let mut m = Meta::default();
        if self.peek() != Some(b'{') {
            return Err(EnvelopeError::BadMeta("not an object"));
        }
        self.p += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.p += 1;
            return Ok(m);
        }
        loop {
            let (ks, ke, esc) = self.string()?;
            let key = if esc { None } else { meta_key(&self.b[ks..ke]) };
            self.ws();
            self.eat(b':')?;
            self.ws();
            match key {
                Some(k @ "ik") => {
                    if self.peek() != Some(b'"') {
                        return Err(EnvelopeError::BadMeta(k));
                    }
                    let s = self.p;
                    self.string()?;
                    let text: String = serde_json::from_slice(&self.b[s..self.p])
                        .map_err(|_| EnvelopeError::BadMeta(k))?;
                    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY_LEN {
                        return Err(EnvelopeError::BadMeta(k));
                    }
                    set_once(&mut m.ik, text.into_boxed_str(), k)?;
                }
                Some(k) => {
                    let v = self.uint()?;
                    let slot = match k {
                        "id" => &mut m.id,
                        "rq" => &mut m.rq,
                        "re" => &mut m.re,
                        _ => &mut m.ack,
                    };
                    set_once(slot, v, k)?;
                }
                // Unknown keys are skipped so that later protocol versions can
                // add fields.
                None => self.value(2)?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.p += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.p += 1;
                    return Ok(m);
                }
                _ => return Err(self.err()),
            }
        }
    }

    /// One envelope; the cursor is on its `[`.
    fn envelope(&mut self, frame: &Bytes) -> Result<Envelope, EnvelopeError> {
        self.eat(b'[')?;
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(EnvelopeError::BadEventId);
        }
        let (s, e, esc) = self.string()?;
        if esc || !is_valid_event_id(&self.b[s..e]) {
            return Err(EnvelopeError::BadEventId);
        }
        let event = EventId::from_validated(frame.slice(s..e));
        let mut data = Bytes::new();
        let mut meta = Meta::default();
        self.ws();
        if self.peek() == Some(b',') {
            self.p += 1;
            self.ws();
            let ds = self.p;
            self.value(1)?;
            data = frame.slice(ds..self.p);
            self.ws();
            if self.peek() == Some(b',') {
                self.p += 1;
                self.ws();
                meta = self.meta()?;
                self.ws();
            }
        }
        if self.peek() != Some(b']') {
            return Err(match self.peek() {
                Some(b',') => EnvelopeError::NotAnEnvelope,
                _ => self.err(),
            });
        }
        self.p += 1;
        Ok(Envelope { event, data, meta })
    }
}

impl Codec for JsonCodec {
    fn kind(&self) -> MessageKind {
        MessageKind::Text
    }

    fn decode_frame(
        &self,
        frame: &Bytes,
        max_envelopes: usize,
        out: &mut Vec<Envelope>,
    ) -> Result<(), EnvelopeError> {
        if simdutf8::basic::from_utf8(frame).is_err() {
            return Err(EnvelopeError::InvalidUtf8);
        }
        let mut c = JsonCur { b: frame, p: 0 };
        c.ws();
        if c.peek().is_none() {
            return Err(EnvelopeError::Empty);
        }
        if c.peek() != Some(b'[') {
            return Err(EnvelopeError::NotAnEnvelope);
        }
        // Look past the `[` to tell a single envelope from a batch.
        let mut look = JsonCur {
            b: frame,
            p: c.p + 1,
        };
        look.ws();
        match look.peek() {
            Some(b'"') => out.push(c.envelope(frame)?),
            Some(b'[') => {
                c.p = look.p;
                let mut n = 0;
                loop {
                    if n == max_envelopes {
                        return Err(EnvelopeError::TooManyEnvelopes { max: max_envelopes });
                    }
                    if c.peek() != Some(b'[') {
                        return Err(EnvelopeError::NotAnEnvelope);
                    }
                    out.push(c.envelope(frame)?);
                    n += 1;
                    c.ws();
                    match c.peek() {
                        Some(b',') => {
                            c.p += 1;
                            c.ws();
                        }
                        Some(b']') => {
                            c.p += 1;
                            break;
                        }
                        _ => return Err(c.err()),
                    }
                }
            }
            None => return Err(c.err()),
            _ => return Err(EnvelopeError::NotAnEnvelope),
        }
        c.ws();
        if c.p != frame.len() {
            return Err(c.err());
        }
        Ok(())
    }

    fn validate_value(&self, data: &[u8]) -> Result<(), EnvelopeError> {
        if simdutf8::basic::from_utf8(data).is_err() {
            return Err(EnvelopeError::InvalidUtf8);
        }
        let mut c = JsonCur { b: data, p: 0 };
        c.ws();
        c.value(1)?;
        c.ws();
        if c.p != data.len() {
            return Err(c.err());
        }
        Ok(())
    }

    fn write_envelope(&self, out: &mut Vec<u8>, event: &[u8], data: &[u8], meta: &Meta) {
        out.extend_from_slice(b"[\"");
        out.extend_from_slice(event);
        out.push(b'"');
        if !data.is_empty() || !meta.is_empty() {
            out.push(b',');
            if data.is_empty() {
                out.extend_from_slice(b"null");
            } else {
                out.extend_from_slice(data);
            }
        }
        if !meta.is_empty() {
            out.extend_from_slice(b",{");
            let mut first = true;
            let mut num = |out: &mut Vec<u8>, k: &[u8], v: Option<u64>| {
                if let Some(v) = v {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    out.push(b'"');
                    out.extend_from_slice(k);
                    out.extend_from_slice(b"\":");
                    push_u64(out, v);
                }
            };
            num(out, b"id", meta.id);
            num(out, b"rq", meta.rq);
            num(out, b"re", meta.re);
            num(out, b"ack", meta.ack);
            if let Some(ik) = &meta.ik {
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"ik\":");
                // Writing a string into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, &**ik);
            }
            out.push(b'}');
        }
        out.push(b']');
    }

    fn write_batch_start(&self, out: &mut Vec<u8>, _count: usize) {
        out.push(b'[');
    }

    fn write_batch_separator(&self, out: &mut Vec<u8>) {
        out.push(b',');
    }

    fn write_batch_end(&self, out: &mut Vec<u8>) {
        out.push(b']');
    }
}

// ----------------------------------------------------------- MessagePack ---

/// MessagePack envelopes in binary messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct MsgPackCodec;

struct MpCur<'a> {
    b: &'a [u8],
    p: usize,
}

enum Head {
    Array(usize),
    Str(usize),
    Other,
}

impl<'a> MpCur<'a> {
    fn err(&self) -> EnvelopeError {
        EnvelopeError::Syntax { offset: self.p }
    }

    fn byte(&mut self) -> Result<u8, EnvelopeError> {
        let c = *self.b.get(self.p).ok_or_else(|| self.err())?;
        self.p += 1;
        Ok(c)
    }

    fn be(&mut self, n: usize) -> Result<u64, EnvelopeError> {
        if self.b.len() - self.p < n {
            return Err(self.err());
        }
        let v = self.b[self.p..self.p + n]
            .iter()
            .fold(0u64, |a, &x| (a << 8) | u64::from(x));
        self.p += n;
        Ok(v)
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), EnvelopeError> {
        if ((self.b.len() - self.p) as u64) < n {
            return Err(self.err());
        }
        self.p += n as usize;
        Ok(())
    }

    /// Reads an array or string header without consuming anything else.
    fn head(&mut self) -> Result<Head, EnvelopeError> {
        let c = self.byte()?;
        Ok(match c {
            0x90..=0x9f => Head::Array((c & 0x0f) as usize),
            0xdc => Head::Array(self.be(2)? as usize),
            0xdd => Head::Array(self.be(4)? as usize),
            0xa0..=0xbf => Head::Str((c & 0x1f) as usize),
            0xd9 => Head::Str(self.be(1)? as usize),
            0xda => Head::Str(self.be(2)? as usize),
            0xdb => Head::Str(self.be(4)? as usize),
            _ => {
                self.p -= 1;
                Head::Other
            }
        })
    }

    fn str_span(&mut self) -> Result<Option<(usize, usize)>, EnvelopeError> {
        match self.head()? {
            Head::Str(n) => {
                let s = self.p;
                self.skip_bytes(n as u64)?;
                Ok(Some((s, self.p)))
            }
            Head::Array(_) => Err(EnvelopeError::NotAnEnvelope),
            Head::Other => Ok(None),
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), EnvelopeError> {
        if depth > MAX_DEPTH {
            return Err(EnvelopeError::TooDeep);
        }
        let c = self.byte()?;
        let (items, skip): (u64, u64) = match c {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (2 * u64::from(c & 0x0f), 0),
            0x90..=0x9f => (u64::from(c & 0x0f), 0),
            0xa0..=0xbf => (0, u64::from(c & 0x1f)),
            0xc1 => {
                self.p -= 1;
                return Err(self.err());
            }
            0xc4 | 0xd9 => (0, self.be(1)?),
            0xc5 | 0xda => (0, self.be(2)?),
            0xc6 | 0xdb => (0, self.be(4)?),
            0xc7 => (0, self.be(1)? + 1),
            0xc8 => (0, self.be(2)? + 1),
            0xc9 => (0, self.be(4)? + 1),
            0xca | 0xce | 0xd2 => (0, 4),
            0xcb | 0xcf | 0xd3 => (0, 8),
            0xcc | 0xd0 => (0, 1),
            0xcd | 0xd1 => (0, 2),
            0xd4 => (0, 2),
            0xd5 => (0, 3),
            0xd6 => (0, 5),
            0xd7 => (0, 9),
            0xd8 => (0, 17),
            0xdc => (self.be(2)?, 0),
            0xdd => (self.be(4)?, 0),
            0xde => (2 * self.be(2)?, 0),
            0xdf => (2 * self.be(4)?, 0),
        };
        self.skip_bytes(skip)?;
        for _ in 0..items {
            // Each item takes at least one byte, so a lying count runs out of
            // input quickly.
            self.value(depth + 1)?;
        }
        Ok(())
    }

    fn uint(&mut self) -> Result<u64, EnvelopeError> {
        let c = self.byte()?;
        let v = match c {
            0x00..=0x7f => u64::from(c),
            0xcc => self.be(1)?,
            0xcd => self.be(2)?,
            0xce => self.be(4)?,
            0xcf => self.be(8)?,
            0xd0 => self.be(1)? as u8 as i8 as i64 as u64,
            0xd1 => self.be(2)? as u16 as i16 as i64 as u64,
            0xd2 => self.be(4)? as u32 as i32 as i64 as u64,
            0xd3 => self.be(8)?,
            0xe0..=0xff => return Err(EnvelopeError::IdOutOfRange),
            _ => return Err(EnvelopeError::IdOutOfRange),
        };
        // Negative signed values wrap to huge numbers and fail here.
        check_id(v)
    }

    fn meta(&mut self) -> Result<Meta, EnvelopeError> {
        let c = self.byte()?;
        let n = match c {
            0x80..=0x8f => u64::from(c & 0x0f),
            0xde => self.be(2)?,
            0xdf => self.be(4)?,
            _ => return Err(EnvelopeError::BadMeta("not a map")),
        };
        let mut m = Meta::default();
        for _ in 0..n {
            let key = match self.str_span() {
                Ok(Some((s, e))) => meta_key(&self.b[s..e]),
                Ok(None) => {
                    self.value(2)?;
                    None
                }
                Err(_) => return Err(EnvelopeError::BadMeta("key")),
            };
            match key {
                Some(k @ "ik") => {
                    let (s, e) = self.str_span()?.ok_or(EnvelopeError::BadMeta(k))?;
                    let text = std::str::from_utf8(&self.b[s..e])
                        .map_err(|_| EnvelopeError::BadMeta(k))?;
                    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY_LEN {
                        return Err(EnvelopeError::BadMeta(k));
                    }
                    set_once(&mut m.ik, text.into(), k)?;
                }
                Some(k) => {
                    let v = self.uint()?;
                    let slot = match k {
                        "id" => &mut m.id,
                        "rq" => &mut m.rq,
                        "re" => &mut m.re,
                        _ => &mut m.ack,
                    };
                    set_once(slot, v, k)?;
                }
                None => self.value(2)?,
            }
        }
        Ok(m)
    }

    /// The rest of an envelope whose array header (of `n` elements) has been
    /// read.
    fn envelope_body(&mut self, n: usize, frame: &Bytes) -> Result<Envelope, EnvelopeError> {
        if !(1..=3).contains(&n) {
            return Err(EnvelopeError::NotAnEnvelope);
        }
        let (s, e) = self.str_span()?.ok_or(EnvelopeError::BadEventId)?;
        if !is_valid_event_id(&self.b[s..e]) {
            return Err(EnvelopeError::BadEventId);
        }
        let event = EventId::from_validated(frame.slice(s..e));
        let mut data = Bytes::new();
        let mut meta = Meta::default();
        if n >= 2 {
            let ds = self.p;
            self.value(1)?;
            data = frame.slice(ds..self.p);
        }
        if n == 3 {
            meta = self.meta()?;
        }
        Ok(Envelope { event, data, meta })
    }
}

fn mp_array_header(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if n <= 0xffff {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn mp_str(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.push(0xd9);
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn mp_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= 0xff {
        out.push(0xcc);
        out.push(v as u8);
    } else if v <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

impl Codec for MsgPackCodec {
    fn kind(&self) -> MessageKind {
        MessageKind::Binary
    }

    fn decode_frame(
        &self,
        frame: &Bytes,
        max_envelopes: usize,
        out: &mut Vec<Envelope>,
    ) -> Result<(), EnvelopeError> {
        if frame.is_empty() {
            return Err(EnvelopeError::Empty);
        }
        let mut c = MpCur { b: frame, p: 0 };
        let n = match c.head()? {
            Head::Array(n) => n,
            _ => return Err(EnvelopeError::NotAnEnvelope),
        };
        let mark = c.p;
        match c.head()? {
            Head::Str(_) => {
                c.p = mark;
                out.push(c.envelope_body(n, frame)?);
            }
            Head::Array(first) => {
                if n > max_envelopes {
                    return Err(EnvelopeError::TooManyEnvelopes { max: max_envelopes });
                }
                out.push(c.envelope_body(first, frame)?);
                for _ in 1..n {
                    match c.head()? {
                        Head::Array(k) => out.push(c.envelope_body(k, frame)?),
                        _ => return Err(EnvelopeError::NotAnEnvelope),
                    }
                }
            }
            Head::Other => return Err(EnvelopeError::BadEventId),
        }
        if c.p != frame.len() {
            return Err(c.err());
        }
        Ok(())
    }

    fn validate_value(&self, data: &[u8]) -> Result<(), EnvelopeError> {
        let mut c = MpCur { b: data, p: 0 };
        c.value(1)?;
        if c.p != data.len() {
            return Err(c.err());
        }
        Ok(())
    }

    fn write_envelope(&self, out: &mut Vec<u8>, event: &[u8], data: &[u8], meta: &Meta) {
        let n = if !meta.is_empty() {
            3
        } else if !data.is_empty() {
            2
        } else {
            1
        };
        mp_array_header(out, n);
        mp_str(out, event);
        if n >= 2 {
            if data.is_empty() {
                out.push(0xc0);
            } else {
                out.extend_from_slice(data);
            }
        }
        if n == 3 {
            out.push(0x80 | meta.field_count() as u8);
            for (k, v) in [
                (&b"id"[..], meta.id),
                (b"rq", meta.rq),
                (b"re", meta.re),
                (b"ack", meta.ack),
            ] {
                if let Some(v) = v {
                    mp_str(out, k);
                    mp_uint(out, v);
                }
            }
            if let Some(ik) = &meta.ik {
                mp_str(out, b"ik");
                mp_str(out, ik.as_bytes());
            }
        }
    }

    fn write_batch_start(&self, out: &mut Vec<u8>, count: usize) {
        mp_array_header(out, count);
    }

    fn write_batch_separator(&self, _out: &mut Vec<u8>) {}

    fn write_batch_end(&self, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(f: Format, b: &[u8]) -> Result<Vec<Envelope>, EnvelopeError> {
        let mut v = Vec::new();
        f.codec()
            .decode_frame(&Bytes::copy_from_slice(b), 16, &mut v)
            .map(|_| v)
    }

    fn enc(f: Format, event: &str, data: &[u8], meta: &Meta) -> Vec<u8> {
        let mut v = Vec::new();
        f.codec()
            .write_envelope(&mut v, event.as_bytes(), data, meta);
        v
    }

    #[test]
    fn json_single_and_meta() {
        let e = dec(
            Format::Json,
            br#" ["chat/send" , {"text":"hi"} , {"id":7,"rq":5000,"x":[1,{}],"ik":"k\u00e9"}] "#,
        )
        .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].event.as_str(), "chat/send");
        assert_eq!(&e[0].data[..], br#"{"text":"hi"}"#);
        assert_eq!(e[0].meta.id, Some(7));
        assert_eq!(e[0].meta.rq, Some(5000));
        assert_eq!(e[0].meta.ik.as_deref(), Some("ké"));
        let e = dec(Format::Json, br#"["evs/ping"]"#).unwrap();
        assert!(e[0].data.is_empty() && e[0].meta.is_empty());
    }

    #[test]
    fn json_batch() {
        let e = dec(Format::Json, br#"[["a",1],["b",[2],{"ack":3}]]"#).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(&e[1].data[..], b"[2]");
        assert_eq!(e[1].meta.ack, Some(3));
    }

    #[test]
    fn json_rejects_bad_input() {
        use EnvelopeError::*;
        type Case = (&'static [u8], fn(&EnvelopeError) -> bool);
        let cases: &[Case] = &[
            (b"", |e| *e == Empty),
            (b"   ", |e| *e == Empty),
            (b"{}", |e| *e == NotAnEnvelope),
            (b"[]", |e| *e == NotAnEnvelope),
            (b"[1,2]", |e| *e == NotAnEnvelope),
            (br#"["a b",1]"#, |e| *e == BadEventId),
            (br#"["a\u0041",1]"#, |e| *e == BadEventId),
            (br#"["a",1,{},4]"#, |e| *e == NotAnEnvelope),
            (br#"["a",1,2]"#, |e| matches!(e, BadMeta(_))),
            (br#"["a",1,{"id":-1}]"#, |e| *e == IdOutOfRange),
            (br#"["a",1,{"id":1.5}]"#, |e| *e == IdOutOfRange),
            (br#"["a",1,{"id":9007199254740992}]"#, |e| {
                *e == IdOutOfRange
            }),
            (br#"["a",1,{"id":1,"id":2}]"#, |e| matches!(e, BadMeta(_))),
            (br#"["a",1,{"ik":5}]"#, |e| matches!(e, BadMeta(_))),
            (br#"["a",01]"#, |e| matches!(e, Syntax { .. })),
            (br#"["a",tru]"#, |e| matches!(e, Syntax { .. })),
            (br#"["a","x"#, |e| matches!(e, Syntax { .. })),
            (br#"["a",1] x"#, |e| matches!(e, Syntax { .. })),
            (b"[\"a\",\"\xff\"]", |e| *e == InvalidUtf8),
            (b"[\"a\",\"\x01\"]", |e| matches!(e, Syntax { .. })),
            (br#"[["a"],1]"#, |e| *e == NotAnEnvelope),
        ];
        for (input, ok) in cases {
            let r = dec(Format::Json, input);
            assert!(
                matches!(&r, Err(e) if ok(e)),
                "{:?} -> {:?}",
                String::from_utf8_lossy(input),
                r
            );
        }
        let deep = format!("[\"a\",{}{}]", "[".repeat(100), "]".repeat(100));
        assert_eq!(dec(Format::Json, deep.as_bytes()), Err(TooDeep));
        let many = format!("[{}[\"a\"]]", "[\"a\"],".repeat(16));
        assert_eq!(
            dec(Format::Json, many.as_bytes()),
            Err(TooManyEnvelopes { max: 16 })
        );
    }

    #[test]
    fn json_encode_exact() {
        let m = Meta {
            id: Some(7),
            ack: Some(3),
            ik: Some("a\"b".into()),
            ..Meta::default()
        };
        assert_eq!(
            enc(Format::Json, "chat/send", br#"{"t":1}"#, &m),
            br#"["chat/send",{"t":1},{"id":7,"ack":3,"ik":"a\"b"}]"#
        );
        assert_eq!(
            enc(Format::Json, "evs/ping", b"", &Meta::default()),
            br#"["evs/ping"]"#
        );
        let m = Meta {
            ack: Some(0),
            ..Meta::default()
        };
        assert_eq!(
            enc(Format::Json, "evs/ack", b"", &m),
            br#"["evs/ack",null,{"ack":0}]"#
        );
    }

    #[test]
    fn msgpack_roundtrip() {
        let data = Format::MsgPack
            .encode(&serde_json::json!({"text": "hi", "n": [1, -2, 3.5, null, true]}))
            .unwrap();
        let m = Meta {
            id: Some(300),
            rq: Some(70000),
            re: Some(5_000_000_000),
            ack: Some(0),
            ik: Some("key".into()),
        };
        let bytes = enc(Format::MsgPack, "chat/send", &data, &m);
        let e = dec(Format::MsgPack, &bytes).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].event.as_str(), "chat/send");
        assert_eq!(e[0].data, data);
        assert_eq!(e[0].meta, m);
        let v: serde_json::Value = Format::MsgPack.decode(&e[0].data).unwrap();
        assert_eq!(v["text"], "hi");
        // Batch of two.
        let mut b = Vec::new();
        let c = Format::MsgPack.codec();
        c.write_batch_start(&mut b, 2);
        c.write_envelope(&mut b, b"a", b"", &Meta::default());
        c.write_batch_separator(&mut b);
        c.write_envelope(&mut b, b"b", &[0x01], &Meta::default());
        c.write_batch_end(&mut b);
        let e = dec(Format::MsgPack, &b).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(&e[1].data[..], &[0x01]);
    }

    #[test]
    fn msgpack_rejects_bad_input() {
        use EnvelopeError::*;
        assert_eq!(dec(Format::MsgPack, &[]), Err(Empty));
        assert_eq!(dec(Format::MsgPack, &[0x01]), Err(NotAnEnvelope));
        assert_eq!(dec(Format::MsgPack, &[0x91, 0x01]), Err(BadEventId));
        assert_eq!(dec(Format::MsgPack, &[0x91, 0xa1, b' ']), Err(BadEventId));
        assert!(matches!(
            dec(Format::MsgPack, &[0x92, 0xa1, b'a']),
            Err(Syntax { .. })
        ));
        assert!(matches!(
            dec(Format::MsgPack, &[0x92, 0xa1, b'a', 0xc1]),
            Err(Syntax { .. })
        ));
        assert!(matches!(
            dec(
                Format::MsgPack,
                &[0x92, 0xa1, b'a', 0xdd, 0xff, 0xff, 0xff, 0xff]
            ),
            Err(Syntax { .. })
        ));
        // Negative id.
        assert_eq!(
            dec(
                Format::MsgPack,
                &[0x93, 0xa1, b'a', 0xc0, 0x81, 0xa2, b'i', b'd', 0xff]
            ),
            Err(IdOutOfRange)
        );
        // Too-large id.
        let mut b = vec![0x93, 0xa1, b'a', 0xc0, 0x81, 0xa2, b'i', b'd', 0xcf];
        b.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(dec(Format::MsgPack, &b), Err(IdOutOfRange));
        // Trailing bytes.
        assert!(matches!(
            dec(Format::MsgPack, &[0x91, 0xa1, b'a', 0x00]),
            Err(Syntax { .. })
        ));
        // Deep nesting.
        let mut b = vec![0x92, 0xa1, b'a'];
        b.extend(std::iter::repeat(0x91).take(100));
        b.push(0xc0);
        assert_eq!(dec(Format::MsgPack, &b), Err(TooDeep));
    }

    #[test]
    fn validate_value_checks_exactly_one_value() {
        assert!(JsonCodec.validate_value(b" {\"a\":[1,2]} ").is_ok());
        assert!(JsonCodec.validate_value(b"1 2").is_err());
        assert!(JsonCodec.validate_value(b"").is_err());
        assert!(MsgPackCodec.validate_value(&[0x01]).is_ok());
        assert!(MsgPackCodec.validate_value(&[0x01, 0x02]).is_err());
    }

    #[test]
    fn push_u64_formats() {
        for v in [0u64, 9, 10, 12345, u64::MAX] {
            let mut o = Vec::new();
            push_u64(&mut o, v);
            assert_eq!(o, v.to_string().into_bytes());
        }
    }
}
