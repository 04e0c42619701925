//! The shape every evsock object handle shares (connections and sessions):
//! a type tag, a busy flag against re-entrant or concurrent use, a poison
//! flag set by a caught panic, and the object itself.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::status::{evsock_status, guard, panic_message, Fail, FfiResult};

/// What an opaque `evsock_conn *` or `evsock_session *` points at. The tag
/// comes first in every handle type (and in the config handle), so reading
/// it through a handle of the wrong type stays in bounds.
#[repr(C)]
pub(crate) struct Handle<T> {
    magic: AtomicU64,
    busy: AtomicBool,
    poisoned: AtomicBool,
    inner: UnsafeCell<T>,
}

/// Releases the busy flag when a call ends, even by unwinding.
struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<T> Handle<T> {
    /// Boxes `inner` into a new handle and returns the raw pointer, which
    /// the caller hands to C (and later back to [`free_handle`]).
    pub(crate) fn into_raw(magic: u64, inner: T) -> *mut Handle<T> {
        Box::into_raw(Box::new(Handle {
            magic: AtomicU64::new(magic),
            busy: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            inner: UnsafeCell::new(inner),
        }))
    }

    /// Checks a pointer from C and borrows the handle shared.
    ///
    /// # Safety
    /// `ptr` is NULL or points at a live handle created by [`into_raw`]
    /// (of any type, or a config handle: all start with their tag).
    unsafe fn get<'a>(ptr: *const Handle<T>, magic: u64, what: &str) -> Result<&'a Self, Fail> {
        if ptr.is_null() {
            return Err(Fail::null(what));
        }
        // SAFETY: per the contract `ptr` points at a live, tag-first handle;
        // only shared references are ever formed to it (mutation goes
        // through the atomics and the `UnsafeCell`), and the tag read stays
        // within the smallest handle type.
        let h = unsafe { &*ptr };
        if h.magic.load(Ordering::Relaxed) != magic {
            return Err(Fail::arg(format!(
                "not an evsock_{what} handle (or already freed)"
            )));
        }
        Ok(h)
    }

    fn enter(&self) -> Result<Busy<'_>, Fail> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .map_err(|_| {
                Fail::new(
                    evsock_status::EVSOCK_ERR_BUSY,
                    "the object is already in a call (re-entrant or concurrent use)",
                )
            })?;
        Ok(Busy(&self.busy))
    }
}

/// Runs `f` with exclusive access to the object behind `ptr`, catching
/// panics (which poison the handle) and recording failures.
///
/// # Safety
/// `ptr` is NULL or a live handle returned to C by [`Handle::into_raw`].
pub(crate) unsafe fn with_handle<T, O>(
    ptr: *const O,
    magic: u64,
    what: &'static str,
    f: impl FnOnce(&mut T) -> FfiResult,
) -> evsock_status {
    guard(|| {
        // SAFETY: forwarded from the caller's contract.
        let h = unsafe { Handle::<T>::get(ptr.cast(), magic, what)? };
        let _busy = h.enter()?;
        if h.poisoned.load(Ordering::Relaxed) {
            return Err(Fail::new(
                evsock_status::EVSOCK_ERR_POISONED,
                format!("an earlier call on this {what} panicked; free it"),
            ));
        }
        // SAFETY: the busy flag was acquired above and is held until `_busy`
        // drops, so this is the only reference to `inner` anywhere.
        let inner = unsafe { &mut *h.inner.get() };
        match catch_unwind(AssertUnwindSafe(|| f(inner))) {
            Ok(r) => r,
            Err(payload) => {
                h.poisoned.store(true, Ordering::Relaxed);
                Err(Fail::new(
                    evsock_status::EVSOCK_ERR_PANIC,
                    format!(
                        "internal panic in evsock: {}; the {what} is poisoned",
                        panic_message(&*payload)
                    ),
                ))
            }
        }
    })
}

/// Frees the handle behind `ptr`; NULL is ignored. A handle that is in a
/// call (freed from inside its own callback) is left alone and the failure
/// recorded.
///
/// # Safety
/// `ptr` is NULL or a live handle returned to C by [`Handle::into_raw`] with
/// inner type `T`, not used after this call.
pub(crate) unsafe fn free_handle<T, O>(ptr: *mut O, magic: u64, what: &'static str) {
    let _ = guard(|| {
        if ptr.is_null() {
            return Ok(evsock_status::EVSOCK_OK);
        }
        // SAFETY: forwarded from the caller's contract.
        let h = unsafe { Handle::<T>::get(ptr.cast_const().cast(), magic, what)? };
        let busy = h.enter()?;
        h.magic.store(0, Ordering::Relaxed);
        std::mem::forget(busy);
        // SAFETY: the handle came from `Box::into_raw` in `into_raw` with
        // inner type `T` (the tag matched); the busy flag, now never
        // released, and the cleared tag make this the only free, and no
        // reference into the handle outlives this statement.
        drop(unsafe { Box::from_raw(ptr.cast::<Handle<T>>()) });
        Ok(evsock_status::EVSOCK_OK)
    });
}
