//! Large binary payloads shared between JS and the engine instead of copied.
//!
//! A server queues a large unmasked payload by reference (the engine's
//! writer puts its `Bytes` behind the frame header as a chunk of its own).
//! When that `Bytes` is a view of a JS `Buffer`, the payload can go from the
//! caller to the socket without a single copy: `takeTransmitChunks()` hands
//! the very same `Buffer` back out, as `ws` hands the caller's buffer to its
//! socket.
//!
//! Safety rests on two rules:
//!
//! - A view's memory stays alive while the engine holds the view: every
//!   view carries a token (an `Arc`), and [`Pins`] keeps a napi reference to
//!   the JS object for as long as a view with that token exists anywhere
//!   (the token's count says so). References are made only for views that
//!   survive the engine call; a view the engine copied and dropped at once
//!   (a masked client frame, a compressed message) costs no reference.
//! - Rust reads a view's memory only while the JS object still has it: in
//!   the engine call that received it (no JS can run meanwhile), and, after
//!   JS had a chance to run (which could detach or shrink the `ArrayBuffer`),
//!   only once [`Pins::live`] has checked that every object lent still
//!   points at the same bytes (once per output call, not per chunk).
//!
//! No external buffers or finalizers are involved: Node runs those only on
//! a later turn of the event loop, so memory freed through them piles up in
//! synchronous loops.

use std::collections::HashMap;
use std::ptr;
use std::sync::Arc;

use bytes::Bytes;
use napi::bindgen_prelude::{FromNapiValue, TypeName, ValidateNapiValue};
use napi::{sys, ValueType};

/// Payloads at least this large are shared rather than copied (the engine
/// queues smaller ones by copying them anyway).
pub const SHARE_FROM: usize = evsock::ws::writer::ZERO_COPY_MIN;

fn status(s: sys::napi_status, what: &str) -> napi::Result<()> {
    if s == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(napi::Status::from(s), what.to_string()))
    }
}

/// A `Uint8Array` (or `Buffer`) argument: its bytes and its JS handle.
pub struct JsBytes {
    value: sys::napi_value,
    ptr: *const u8,
    len: usize,
}

impl JsBytes {
    /// The bytes, valid for the duration of the current call.
    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` and `len` came from napi_get_typedarray_info on a
        // live argument of the current call, during which no JS runs (so
        // nothing can detach or shrink its ArrayBuffer); `len > 0` so `ptr`
        // is not null.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where `value`'s bytes are now, if it is a `Uint8Array`.
    ///
    /// # Safety
    /// `env` and `value` must be live handles of the current call.
    unsafe fn info(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Option<JsBytes>> {
        // SAFETY: `env` and the handles passed are live for this call (this
        // function's contract); the out-pointers are locals.
        let mut is_typed = false;
        status(
            unsafe { sys::napi_is_typedarray(env, value, &mut is_typed) },
            "napi_is_typedarray",
        )?;
        if !is_typed {
            return Ok(None);
        }
        // SAFETY: `env` and the handles passed are live for this call (this
        // function's contract); the out-pointers are locals.
        let mut kind = -1;
        let mut len = 0usize;
        let mut data = ptr::null_mut();
        let mut ab = ptr::null_mut();
        let mut off = 0usize;
        status(
            unsafe {
                sys::napi_get_typedarray_info(
                    env, value, &mut kind, &mut len, &mut data, &mut ab, &mut off,
                )
            },
            "napi_get_typedarray_info",
        )?;
        if kind != sys::TypedarrayType::uint8_array {
            return Ok(None);
        }
        Ok(Some(JsBytes {
            value,
            ptr: data.cast::<u8>().cast_const(),
            len,
        }))
    }

    /// A new `Buffer` holding a copy of `data`, as a `JsBytes`.
    ///
    /// # Safety
    /// `env` must be the live environment of the current call.
    pub unsafe fn copy_of(env: sys::napi_env, data: &[u8]) -> napi::Result<JsBytes> {
        // SAFETY: `env` and the handles passed are live for this call (this
        // function's contract); the out-pointers are locals.
        let mut raw = ptr::null_mut();
        let mut value = ptr::null_mut();
        status(
            unsafe { sys::napi_create_buffer(env, data.len(), &mut raw, &mut value) },
            "napi_create_buffer",
        )?;
        if !data.is_empty() {
            // SAFETY: N-API just allocated `data.len()` writable bytes at
            // `raw`, which cannot overlap `data`.
            unsafe { ptr::copy_nonoverlapping(data.as_ptr(), raw.cast::<u8>(), data.len()) };
        }
        Ok(JsBytes {
            value,
            ptr: raw.cast::<u8>().cast_const(),
            len: data.len(),
        })
    }
}

impl TypeName for JsBytes {
    fn type_name() -> &'static str {
        "Uint8Array"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ValidateNapiValue for JsBytes {
    unsafe fn validate(
        env: sys::napi_env,
        value: sys::napi_value,
    ) -> napi::Result<sys::napi_value> {
        // SAFETY: `env` and the handles passed are live for this call (this
        // function's contract); the out-pointers are locals.
        match unsafe { JsBytes::info(env, value)? } {
            Some(_) => Ok(ptr::null_mut()),
            None => Err(napi::Error::new(
                napi::Status::InvalidArg,
                "Expected a Uint8Array or Buffer".to_string(),
            )),
        }
    }
}

impl FromNapiValue for JsBytes {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        // SAFETY: `env` and the handles passed are live for this call (this
        // function's contract); the out-pointers are locals.
        unsafe { JsBytes::info(env, value)? }.ok_or_else(|| {
            napi::Error::new(
                napi::Status::InvalidArg,
                "Expected a Uint8Array or Buffer".to_string(),
            )
        })
    }
}

/// The owner of a `Bytes` view into JS memory. Dropping it frees nothing;
/// it only tells [`Pins`] (through the token's count) that the view is gone.
struct View {
    ptr: *const u8,
    len: usize,
    _token: Arc<()>,
}

// SAFETY: a View is a pointer and a length plus an `Arc`; it never frees the
// memory it points at. The memory is kept alive by a napi reference in
// `Pins` for as long as the token lives, from whichever thread the View is
// dropped (in practice only the JS thread touches a Connection).
unsafe impl Send for View {}
// SAFETY: as for `Send`; a View is never written through.
unsafe impl Sync for View {}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `len > 0` (views are made only for payloads of at least
        // SHARE_FROM bytes) and the memory is alive while this View exists
        // (see the module notes). It is read only under the rules there.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// One JS object kept alive for the views of it the engine holds.
struct Pin {
    token: Arc<()>,
    reference: sys::napi_ref,
    ptr: *const u8,
    len: usize,
}

/// The JS objects the engine holds views of.
#[derive(Default)]
pub struct Pins {
    list: Vec<Pin>,
}

/// A view made by [`Pins::view`], to be settled with [`Pins::settle`].
pub struct Lent {
    token: Arc<()>,
    ptr: *const u8,
    len: usize,
    value: sys::napi_value,
}

impl Pins {
    /// Number of JS objects kept alive.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when none are.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// A `Bytes` view of `b` (at least [`SHARE_FROM`] bytes) for one engine
    /// call; pass the `Lent` to [`Pins::settle`] right after the call.
    pub fn view(b: &JsBytes) -> (Bytes, Lent) {
        debug_assert!(b.len >= SHARE_FROM);
        let token = Arc::new(());
        let view = View {
            ptr: b.ptr,
            len: b.len,
            _token: Arc::clone(&token),
        };
        let lent = Lent {
            token,
            ptr: b.ptr,
            len: b.len,
            value: b.value,
        };
        (Bytes::from_owner(view), lent)
    }

    /// After the engine call: if the engine kept the view, keeps the JS
    /// object alive with a reference until the view is gone.
    ///
    /// # Safety
    /// `env` must be the live environment of the current call, and `lent`
    /// must come from a `JsBytes` of this call.
    pub unsafe fn settle(&mut self, env: sys::napi_env, lent: Lent) -> napi::Result<()> {
        if Arc::strong_count(&lent.token) == 1 {
            return Ok(()); // copied (or refused) and dropped by the engine
        }
        // SAFETY: `env` and the handles passed are live for this call (this
        // function's contract); the out-pointers are locals.
        let mut reference = ptr::null_mut();
        status(
            unsafe { sys::napi_create_reference(env, lent.value, 1, &mut reference) },
            "napi_create_reference",
        )?;
        self.list.push(Pin {
            token: lent.token,
            reference,
            ptr: lent.ptr,
            len: lent.len,
        });
        Ok(())
    }

    /// Checks that every JS object kept here still holds the bytes its
    /// views point at, and returns them by the exact range they were lent
    /// for. `Err` if one no longer does (its `ArrayBuffer` was detached or
    /// shrunk after it was sent): then no view may be read. Call
    /// [`Pins::release`] first, so that only objects with live views count.
    ///
    /// # Safety
    /// `env` must be the live environment of the current call.
    pub unsafe fn live(&self, env: sys::napi_env) -> Result<Live, Detached> {
        let mut by_range = HashMap::with_capacity(self.list.len());
        for pin in &self.list {
            // SAFETY: `env` and the handles passed are live for this call (this
            // function's contract); the out-pointers are locals.
            let mut value = ptr::null_mut();
            let s = unsafe { sys::napi_get_reference_value(env, pin.reference, &mut value) };
            if s != sys::Status::napi_ok || value.is_null() {
                return Err(Detached);
            }
            match unsafe { JsBytes::info(env, value) } {
                Ok(Some(now)) if now.ptr == pin.ptr && now.len == pin.len => {
                    by_range.insert((pin.ptr as usize, pin.len), value);
                }
                _ => return Err(Detached),
            }
        }
        Ok(Live { by_range })
    }

    /// Lets go of the JS objects the engine no longer holds views of.
    ///
    /// # Safety
    /// `env` must be the live environment of the current call (or of a
    /// finalizer).
    pub unsafe fn release(&mut self, env: sys::napi_env) {
        self.list.retain(|p| {
            if Arc::strong_count(&p.token) > 1 {
                return true;
            }
            // SAFETY: `reference` was made in `settle` and is deleted once.
            unsafe { sys::napi_delete_reference(env, p.reference) };
            false
        });
    }

    /// Lets go of every JS object, whether or not views remain. Only for a
    /// connection being destroyed, after its engine (and so every view) is
    /// gone.
    ///
    /// # Safety
    /// As for [`Pins::release`].
    pub unsafe fn clear(&mut self, env: sys::napi_env) {
        for p in self.list.drain(..) {
            // SAFETY: as in `release`.
            unsafe { sys::napi_delete_reference(env, p.reference) };
        }
    }
}

/// The JS objects lent to the engine, all checked live by [`Pins::live`]:
/// every view among the output may be read during this call.
pub struct Live {
    by_range: HashMap<(usize, usize), sys::napi_value>,
}

impl Live {
    /// The JS object `chunk` is exactly the lent bytes of, if any.
    pub fn whole(&self, chunk: &Bytes) -> Option<sys::napi_value> {
        if self.by_range.is_empty() {
            return None;
        }
        self.by_range
            .get(&(chunk.as_ptr() as usize, chunk.len()))
            .copied()
    }
}

/// A shared payload's `ArrayBuffer` was detached or shrunk before it was
/// written.
#[derive(Debug)]
pub struct Detached;
