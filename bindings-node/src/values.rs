//! Conversions of engine output into JS values, shaped so that one N-API
//! crossing carries many messages.
//!
//! Creating a JS object or a `Buffer` through N-API costs far more than
//! doing it in JavaScript (property names are looked up by C string, every
//! `Buffer` gets its own backing store). So a batch of events crosses as a
//! handful of values: a `Uint32Array` describing each event, one string
//! holding every text payload, one `Buffer` holding every small binary
//! payload, and an array of the rare events (request, open, closed) built
//! here. `lib/index.js` turns that into event objects with `slice` and
//! `subarray`, which V8 does in nanoseconds.
//!
//! Received payloads are always copied into JS-owned memory: sharing engine
//! memory through external buffers was measured slower (finalizers and GC
//! pressure), and it would pin the engine's read buffers. Sent payloads go
//! the other way without a copy: the engine holds views of JS `Buffer`s
//! (`crate::shared`), which `takeTransmitChunks()` hands back out as they
//! are.

use std::ptr;

use bytes::Bytes;
use evsock::ws::Text;
use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{sys, ValueType};

use crate::shared::{Detached, Live};

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            format!("failed to create {what}"),
        ))
    }
}

/// A new `Buffer` holding a copy of `data`.
///
/// # Safety
/// `env` must be the live environment of the current call.
pub unsafe fn buffer_copy(env: sys::napi_env, data: &[u8]) -> napi::Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    let status = unsafe {
        sys::napi_create_buffer_copy(
            env,
            data.len(),
            data.as_ptr().cast(),
            ptr::null_mut(),
            &mut out,
        )
    };
    check(status, "a Buffer")?;
    Ok(out)
}

unsafe fn utf8_string(env: sys::napi_env, s: &str) -> napi::Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    let status =
        unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out) };
    check(status, "a string")?;
    Ok(out)
}

/// A new string holding `s`: ASCII text is copied as Latin-1, which V8
/// takes as is, instead of going through its UTF-8 decoder.
///
/// # Safety
/// `env` must be the live environment of the current call.
unsafe fn string(env: sys::napi_env, s: &str) -> napi::Result<sys::napi_value> {
    if !s.is_ascii() {
        return unsafe { utf8_string(env, s) };
    }
    // SAFETY: `env` and the handles passed are live for this call (this
    // function's contract); the out-pointers are locals.
    let mut out = ptr::null_mut();
    let status = unsafe {
        sys::napi_create_string_latin1(env, s.as_ptr().cast(), s.len() as isize, &mut out)
    };
    check(status, "a string")?;
    Ok(out)
}

unsafe fn u32_array(env: sys::napi_env, data: &[u32]) -> napi::Result<sys::napi_value> {
    let bytes = std::mem::size_of_val(data);
    let mut raw = ptr::null_mut();
    let mut ab = ptr::null_mut();
    check(
        unsafe { sys::napi_create_arraybuffer(env, bytes, &mut raw, &mut ab) },
        "an ArrayBuffer",
    )?;
    if bytes > 0 {
        // SAFETY: N-API just allocated `bytes` writable bytes at `raw`,
        // suitably aligned for any element type.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), raw.cast::<u32>(), data.len()) };
    }
    let mut out = ptr::null_mut();
    check(
        unsafe {
            sys::napi_create_typedarray(
                env,
                sys::TypedarrayType::uint32_array,
                data.len(),
                ab,
                0,
                &mut out,
            )
        },
        "a Uint32Array",
    )?;
    Ok(out)
}

/// Length of `s` in UTF-16 code units, the unit of JS string offsets.
pub fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        return s.len();
    }
    // One unit per character, two for characters outside the BMP (whose
    // UTF-8 form starts with 0xF0..=0xF4).
    s.bytes()
        .map(|b| usize::from(b & 0xC0 != 0x80) + usize::from(b >= 0xF0))
        .sum()
}

/// Event kinds in a batch's descriptor; mirrored in `lib/index.js`.
pub mod kind {
    /// The next prebuilt object of `objs` (request, open, closed).
    pub const OBJECT: u32 = 0;
    /// A text message: `text.slice(a, b)`.
    pub const TEXT: u32 = 1;
    /// A binary message: `bin.subarray(a, b)`.
    pub const BINARY: u32 = 2;
    /// A ping: `bin.subarray(a, b)`.
    pub const PING: u32 = 3;
    /// A pong: `bin.subarray(a, b)`.
    pub const PONG: u32 = 4;
    /// A large binary message: the next `Buffer` of `objs`.
    pub const BIG_BINARY: u32 = 5;
    /// A large text message: the next string of `objs`.
    pub const BIG_TEXT: u32 = 6;
}

/// Binary payloads from this size on get a `Buffer` of their own instead of
/// a view into the batch buffer (one copy instead of two, and a kept
/// message does not keep its neighbours alive).
const OWN_BUFFER_FROM: usize = 4096;

/// Text messages from this size on get a string of their own, made straight
/// from the engine's bytes instead of first gathered into the batch text
/// (which copies them once more).
const OWN_STRING_FROM: usize = 4096;

/// One value that crosses as is.
pub enum Item {
    /// A prebuilt event object.
    Object(Box<dyn FnOnce(sys::napi_env) -> napi::Result<sys::napi_value>>),
    /// A large binary payload.
    Bytes(Bytes),
    /// A large text message.
    Text(Text),
}

/// A batch of events on its way to `lib/index.js`, which unpacks it.
#[derive(Default)]
pub struct Batch {
    meta: Vec<u32>,
    text: String,
    text_units: usize,
    bin: Vec<u8>,
    objs: Vec<Item>,
}

fn offset(n: usize) -> u32 {
    // A batch's text must fit one JS string (under 2^30 units), which N-API
    // refuses to create otherwise, so saturating here never yields a wrong
    // slice.
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Batch {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.meta.len() / 3
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Adds a text message.
    pub fn text(&mut self, t: Text) {
        if t.len() >= OWN_STRING_FROM {
            self.meta.extend_from_slice(&[kind::BIG_TEXT, 0, 0]);
            self.objs.push(Item::Text(t));
            return;
        }
        let s = t.as_str();
        let start = self.text_units;
        self.text.push_str(s);
        self.text_units += utf16_len(s);
        self.meta
            .extend_from_slice(&[kind::TEXT, offset(start), offset(self.text_units)]);
    }

    /// Adds a binary message, ping or pong.
    pub fn bytes(&mut self, k: u32, b: Bytes) {
        if k == kind::BINARY && b.len() >= OWN_BUFFER_FROM {
            self.meta.extend_from_slice(&[kind::BIG_BINARY, 0, 0]);
            self.objs.push(Item::Bytes(b));
            return;
        }
        let start = self.bin.len();
        self.bin.extend_from_slice(&b);
        self.meta
            .extend_from_slice(&[k, offset(start), offset(self.bin.len())]);
    }

    /// Adds a prebuilt object.
    pub fn object<T: ToNapiValue + 'static>(&mut self, v: T) {
        self.meta.extend_from_slice(&[kind::OBJECT, 0, 0]);
        self.objs.push(Item::Object(Box::new(move |env| unsafe {
            // SAFETY: called from `to_napi_value` with its live `env`.
            T::to_napi_value(env, v)
        })));
    }
}

impl TypeName for Batch {
    fn type_name() -> &'static str {
        "Array<Event>"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Batch {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let mut out = ptr::null_mut();
        if val.is_empty() {
            check(unsafe { sys::napi_get_null(env, &mut out) }, "null")?;
            return Ok(out);
        }
        check(
            unsafe { sys::napi_create_array_with_length(env, 4, &mut out) },
            "an array",
        )?;
        let meta = unsafe { u32_array(env, &val.meta)? };
        let text = unsafe { utf8_string(env, &val.text)? };
        let bin = unsafe { buffer_copy(env, &val.bin)? };
        let mut objs = ptr::null_mut();
        check(
            unsafe { sys::napi_create_array_with_length(env, val.objs.len(), &mut objs) },
            "an array",
        )?;
        for (i, item) in val.objs.into_iter().enumerate() {
            let v = match item {
                Item::Object(make) => make(env)?,
                Item::Bytes(b) => unsafe { buffer_copy(env, &b)? },
                Item::Text(t) => unsafe { string(env, &t)? },
            };
            check(
                unsafe { sys::napi_set_element(env, objs, i as u32, v) },
                "an array element",
            )?;
        }
        for (i, v) in [meta, text, bin, objs].into_iter().enumerate() {
            check(
                unsafe { sys::napi_set_element(env, out, i as u32, v) },
                "an array element",
            )?;
        }
        Ok(out)
    }
}

/// A value built during the call, returned as is.
pub struct Raw(pub sys::napi_value);

impl TypeName for Raw {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for Raw {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        Ok(val.0)
    }
}

/// Why output could not be handed over.
pub enum TransmitError {
    /// A shared payload's memory is gone (see [`Detached`]).
    Detached,
    /// N-API failed.
    Napi(napi::Error),
}

impl From<Detached> for TransmitError {
    fn from(_: Detached) -> Self {
        TransmitError::Detached
    }
}

impl From<napi::Error> for TransmitError {
    fn from(e: napi::Error) -> Self {
        TransmitError::Napi(e)
    }
}

unsafe fn null(env: sys::napi_env) -> napi::Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    // SAFETY: `env` and the handles passed are live for this call (this
    // function's contract); the out-pointers are locals.
    check(unsafe { sys::napi_get_null(env, &mut out) }, "null")?;
    Ok(out)
}

/// One new `Buffer` holding `chunks` one after another.
///
/// # Safety
/// `env` must be the live environment of the current call, and every chunk
/// readable: engine memory, or a view [`crate::shared::Pins::live`] checked.
unsafe fn concat(env: sys::napi_env, chunks: &[Bytes]) -> napi::Result<sys::napi_value> {
    if let [one] = chunks {
        // SAFETY: `env` and the handles passed are live for this call (this
        // function's contract); the out-pointers are locals.
        return unsafe { buffer_copy(env, one) };
    }
    let total: usize = chunks.iter().map(Bytes::len).sum();
    // SAFETY: `env` and the handles passed are live for this call (this
    // function's contract); the out-pointers are locals.
    let mut data = ptr::null_mut();
    let mut out = ptr::null_mut();
    check(
        unsafe { sys::napi_create_buffer(env, total, &mut data, &mut out) },
        "a Buffer",
    )?;
    if total > 0 {
        // SAFETY: N-API just allocated `total` writable bytes.
        let dst = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), total) };
        let mut at = 0;
        for c in chunks {
            dst[at..at + c.len()].copy_from_slice(c);
            at += c.len();
        }
    }
    Ok(out)
}

/// Everything in `chunks` as one `Buffer`, or `null` when empty.
///
/// # Safety
/// `env` must be the live environment of the current call, and every view
/// among `chunks` covered by `live`.
pub unsafe fn transmit_concat(
    env: sys::napi_env,
    chunks: &[Bytes],
    _live: &Live,
) -> Result<sys::napi_value, TransmitError> {
    if chunks.is_empty() {
        // SAFETY: `env` and the handles passed are live for this call (this
        // function's contract); the out-pointers are locals.
        return Ok(unsafe { null(env)? });
    }
    Ok(unsafe { concat(env, chunks)? })
}

/// `chunks` for `takeTransmitChunks()`, or `null` when empty: an array
/// whose first element is one `Buffer` holding every chunk that is not a
/// shared JS object, concatenated, followed by the parts in order: a number
/// for the next that many bytes of that `Buffer`, a `Buffer` for a shared
/// payload (the JS object itself). `lib/connection.js` turns the numbers
/// into `subarray`s, which costs far less than a `Buffer` per frame header
/// made through N-API.
///
/// # Safety
/// As for [`transmit_concat`].
pub unsafe fn transmit_parts(
    env: sys::napi_env,
    chunks: &[Bytes],
    live: &Live,
) -> Result<sys::napi_value, TransmitError> {
    if chunks.is_empty() {
        // SAFETY: `env` and the handles passed are live for this call (this
        // function's contract); the out-pointers are locals.
        return Ok(unsafe { null(env)? });
    }
    // Shared payloads, by index, and the runs of other chunks between them.
    let mut parts: Vec<Result<usize, sys::napi_value>> = Vec::new();
    let mut own: Vec<Bytes> = Vec::with_capacity(chunks.len());
    let mut run = 0usize;
    for c in chunks {
        match live.whole(c) {
            Some(v) => {
                if run > 0 {
                    parts.push(Ok(run));
                    run = 0;
                }
                parts.push(Err(v));
            }
            // Engine memory, or (part of) a view checked live.
            None => {
                run += c.len();
                own.push(c.clone());
            }
        }
    }
    if run > 0 {
        parts.push(Ok(run));
    }
    // SAFETY: `env` and the handles passed are live for this call (this
    // function's contract); the out-pointers are locals.
    let mut out = ptr::null_mut();
    check(
        unsafe { sys::napi_create_array_with_length(env, parts.len() + 1, &mut out) },
        "an array",
    )?;
    let bytes = unsafe { concat(env, &own)? };
    check(
        unsafe { sys::napi_set_element(env, out, 0, bytes) },
        "an array element",
    )?;
    for (i, p) in parts.into_iter().enumerate() {
        let v = match p {
            Err(v) => v,
            Ok(n) => {
                // SAFETY: `env` and the handles passed are live for this call (this
                // function's contract); the out-pointers are locals.
                let mut v = ptr::null_mut();
                // A run is at most the connection's outbound limit, which
                // fits a JS number exactly.
                check(
                    unsafe { sys::napi_create_double(env, n as f64, &mut v) },
                    "a number",
                )?;
                v
            }
        };
        check(
            unsafe { sys::napi_set_element(env, out, i as u32 + 1, v) },
            "an array element",
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_lengths_match_js() {
        for s in ["", "hello", "héllo", "日本語", "a😀b", "😀😀", "\u{10FFFF}"] {
            assert_eq!(utf16_len(s), s.encode_utf16().count(), "{s:?}");
        }
    }

    #[test]
    fn large_texts_get_strings_of_their_own() {
        let mut b = Batch::default();
        b.text("small".into());
        b.text("x".repeat(OWN_STRING_FROM).into());
        b.text("é".repeat(OWN_STRING_FROM).into());
        b.text("after".into());
        assert_eq!(
            b.meta,
            vec![
                kind::TEXT,
                0,
                5,
                kind::BIG_TEXT,
                0,
                0,
                kind::BIG_TEXT,
                0,
                0,
                kind::TEXT,
                5,
                10
            ]
        );
        assert_eq!(b.text, "smallafter");
        assert!(matches!(&b.objs[..], [Item::Text(a), Item::Text(e)]
            if a.len() == OWN_STRING_FROM && e.len() == 2 * OWN_STRING_FROM));
    }

    #[test]
    fn a_batch_records_offsets_per_kind() {
        let mut b = Batch::default();
        b.text("hé".into());
        b.text("😀!".into());
        b.bytes(kind::PING, Bytes::from_static(b"p"));
        b.bytes(kind::BINARY, Bytes::from(vec![1u8; OWN_BUFFER_FROM]));
        b.bytes(kind::BINARY, Bytes::from_static(b"xy"));
        assert_eq!(b.len(), 5);
        assert_eq!(
            b.meta,
            vec![
                kind::TEXT,
                0,
                2,
                kind::TEXT,
                2,
                5,
                kind::PING,
                0,
                1,
                kind::BIG_BINARY,
                0,
                0,
                kind::BINARY,
                1,
                3
            ]
        );
        assert_eq!(b.text, "hé😀!");
        assert_eq!(b.bin, b"pxy");
        assert_eq!(b.objs.len(), 1);
    }
}
