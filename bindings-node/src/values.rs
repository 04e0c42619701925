//! Conversions of engine bytes into JS values with as few copies as the
//! sizes justify.
//!
//! Small payloads are copied into a fresh `Buffer` (cheaper than the
//! bookkeeping of an external buffer); large ones are handed to JavaScript
//! without copying: the `Buffer` points into the engine's `Bytes`, which
//! stays alive until the garbage collector finalizes the `Buffer`.

use std::ffi::c_void;
use std::ptr;

use bytes::Bytes;
use evsock::ws::Text;
use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{sys, ValueType};

/// Payloads at least this long are shared with JS instead of copied.
const SHARE_FROM: usize = 16 * 1024;

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

unsafe extern "C" fn drop_shared(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the `Box<Bytes>` leaked in `buffer_from_bytes`, and
    // N-API calls each finalizer exactly once.
    drop(unsafe { Box::from_raw(hint.cast::<Bytes>()) });
}

unsafe fn buffer_copy(env: sys::napi_env, data: &[u8]) -> napi::Result<sys::napi_value> {
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

/// A `Buffer` holding `b`, shared when large, copied when small.
///
/// # Safety
/// `env` must be the live environment of the current call.
pub unsafe fn buffer_from_bytes(env: sys::napi_env, b: Bytes) -> napi::Result<sys::napi_value> {
    if b.len() < SHARE_FROM {
        return unsafe { buffer_copy(env, &b) };
    }
    let len = b.len();
    let data = b.as_ptr().cast_mut().cast::<c_void>();
    let hint = Box::into_raw(Box::new(b));
    let mut out = ptr::null_mut();
    // SAFETY: `data..data+len` stays valid while the boxed `Bytes` lives,
    // and the box is freed only by `drop_shared` (or below on failure).
    // The region belongs to this message alone: the engine never writes
    // into bytes it has handed out, so JS may treat it as its own.
    let status = unsafe {
        sys::napi_create_external_buffer(env, len, data, Some(drop_shared), hint.cast(), &mut out)
    };
    if status == sys::Status::napi_ok {
        return Ok(out);
    }
    // Runtimes that forbid external buffers (or any failure): copy instead.
    let b = unsafe { Box::from_raw(hint) };
    unsafe { buffer_copy(env, &b) }
}

/// A binary payload on its way to JavaScript, where it is a `Buffer`.
pub struct JsBytes(pub Bytes);

impl TypeName for JsBytes {
    fn type_name() -> &'static str {
        "Buffer"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for JsBytes {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        unsafe { buffer_from_bytes(env, val.0) }
    }
}

/// Validated UTF-8 on its way to JavaScript, where it is a `string`.
pub struct JsText(pub Text);

impl TypeName for JsText {
    fn type_name() -> &'static str {
        "string"
    }
    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl ToNapiValue for JsText {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let s = val.0.as_str();
        let mut out = ptr::null_mut();
        // The engine validated the UTF-8 once; V8 decodes straight from it.
        let status = unsafe {
            sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out)
        };
        check(status, "a string")?;
        Ok(out)
    }
}

/// Everything the connection has to write, as one `Buffer` (or `null`).
pub struct Transmit(pub Vec<Bytes>);

impl TypeName for Transmit {
    fn type_name() -> &'static str {
        "Buffer | null"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Transmit {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let mut chunks = val.0;
        match chunks.len() {
            0 => unsafe {
                napi::bindgen_prelude::Null::to_napi_value(env, napi::bindgen_prelude::Null)
            },
            1 => unsafe { buffer_from_bytes(env, chunks.pop().unwrap_or_default()) },
            _ => {
                let total: usize = chunks.iter().map(Bytes::len).sum();
                let mut data = ptr::null_mut();
                let mut out = ptr::null_mut();
                let status = unsafe { sys::napi_create_buffer(env, total, &mut data, &mut out) };
                check(status, "a Buffer")?;
                if total > 0 {
                    // SAFETY: N-API just allocated `total` writable bytes.
                    let dst = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), total) };
                    let mut at = 0;
                    for c in &chunks {
                        dst[at..at + c.len()].copy_from_slice(c);
                        at += c.len();
                    }
                }
                Ok(out)
            }
        }
    }
}

/// A fixed ASCII string, such as an event's `type`.
pub struct Tag(pub &'static str);

impl TypeName for Tag {
    fn type_name() -> &'static str {
        "string"
    }
    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl ToNapiValue for Tag {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let mut out = ptr::null_mut();
        let status = unsafe {
            sys::napi_create_string_latin1(
                env,
                val.0.as_ptr().cast(),
                val.0.len() as isize,
                &mut out,
            )
        };
        check(status, "a string")?;
        Ok(out)
    }
}
