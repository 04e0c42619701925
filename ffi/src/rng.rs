//! Randomness for client connections: the OS generator, a host callback,
//! or a seeded generator for tests.

use std::ffi::c_void;

use evsock::{BufferedRng, Rng};

/// A host-supplied source of random bytes: fill `buf[0..len)` completely.
///
/// Called from inside evsock calls on the connection it was given to (for
/// the handshake key, and a 4-byte mask key per frame sent), on whichever
/// thread makes that call. It must not call back into evsock with the same
/// connection (that call fails with `EVSOCK_ERR_BUSY`), must not unwind or
/// `longjmp` out, and `user` must stay valid until the connection is freed.
pub type evsock_fill_fn = Option<unsafe extern "C" fn(user: *mut c_void, buf: *mut u8, len: usize)>;

/// The operating system's generator.
pub(crate) struct OsRng;

impl Rng for OsRng {
    fn fill(&mut self, dest: &mut [u8]) {
        // Linux's getrandom(2) does not fail once the pool is seeded. Should
        // it ever, the panic is caught at the boundary and reported as
        // EVSOCK_ERR_PANIC rather than masking with predictable bytes.
        if let Err(e) = getrandom::getrandom(dest) {
            panic!("the OS random source failed: {e}");
        }
    }
}

/// The host's callback plus its user pointer.
pub(crate) struct CallbackRng {
    pub(crate) fill: unsafe extern "C" fn(*mut c_void, *mut u8, usize),
    pub(crate) user: *mut c_void,
}

// SAFETY: the engine needs `Rng + Send` so that connections can move between
// threads. The callback and `user` are only ever used by the one thread that
// is inside a call on this connection (the busy flag forbids concurrent
// calls); the header tells hosts that the callback runs on whichever thread
// drives the connection.
unsafe impl Send for CallbackRng {}

impl Rng for CallbackRng {
    fn fill(&mut self, dest: &mut [u8]) {
        // Pre-fill so that a callback that writes nothing does not leave
        // stale bytes; the host's contract is still to fill everything.
        dest.fill(0);
        // SAFETY: `dest` is a live, writable buffer of exactly `dest.len()`
        // bytes; the callback's contract is to write at most that many
        // bytes through the pointer, and `user` is the host's own pointer
        // handed back untouched.
        unsafe { (self.fill)(self.user, dest.as_mut_ptr(), dest.len()) }
    }
}

/// The OS generator, drawn from a block at a time: a client sends a 4-byte
/// mask key per frame, and a system call for each would cost more than the
/// frame.
pub(crate) fn os_rng() -> Box<dyn Rng + Send> {
    Box::new(BufferedRng::new(OsRng))
}

/// The host's callback, or the OS generator for NULL.
pub(crate) fn rng_from(fill: evsock_fill_fn, user: *mut c_void) -> Box<dyn Rng + Send> {
    match fill {
        Some(fill) => Box::new(CallbackRng { fill, user }),
        None => os_rng(),
    }
}
