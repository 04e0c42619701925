//! A global allocator wrapper that counts live heap bytes, for measuring
//! what an idle connection holds. Install it with `#[global_allocator]` in
//! the binary that measures.
//!
//! Counting is off until [`Counting::enable`] turns it on, so the
//! throughput cases that run in the same binary pay one predictable branch
//! per allocation (the same for every contender), not an atomic add. Only
//! allocations and frees made while it is on are counted, so the
//! measurement brackets what it builds and keeps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// Counts bytes currently allocated through it.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ON: AtomicBool = AtomicBool::new(false);
static SEEN: AtomicBool = AtomicBool::new(false);

impl Counting {
    /// Net bytes allocated while counting was on.
    pub fn live() -> isize {
        LIVE.load(Ordering::SeqCst)
    }

    /// Turns counting on or off.
    pub fn enable(on: bool) {
        ON.store(on, Ordering::SeqCst);
    }

    /// True if this allocator has served an allocation, that is, it is the
    /// global allocator of the running binary.
    pub fn installed() -> bool {
        let probe = std::hint::black_box(vec![0u8; 64]);
        drop(probe);
        SEEN.load(Ordering::SeqCst)
    }
}

#[inline]
fn count(delta: isize) {
    if ON.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged, so it upholds `GlobalAlloc`'s contract exactly as
// `System` does; the counter is bookkeeping on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upheld `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            if !SEEN.load(Ordering::Relaxed) {
                SEEN.store(true, Ordering::Relaxed);
            }
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upheld the contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with
        // this layout, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upheld `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}
