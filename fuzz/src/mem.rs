//! A counting allocator, so targets can measure the heap a connection holds.
//!
//! Counts are per thread (the replay tests run threads in parallel). A
//! harness wraps every call into the engine, and every drop of something the
//! engine handed out, in [`Meter::run`]; the sum of the deltas is what the
//! engine holds. Harness allocations made outside `run` are not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    // `try_with`: allocations during thread teardown are simply not counted.
    let _ = LIVE.try_with(|l| l.set(l.get() + n));
}

// SAFETY: every method forwards to the system allocator unchanged; the
// bookkeeping touches only a const-initialised thread-local cell, which
// never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes currently allocated by this thread (net of frees).
pub fn live() -> isize {
    LIVE.with(|l| l.get())
}

/// Heap attributed to one engine object.
#[derive(Debug, Default, Clone, Copy)]
pub struct Meter {
    held: isize,
    peak: isize,
}

impl Meter {
    /// Runs `f`, attributing whatever it allocates or frees to this meter.
    #[inline]
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let before = live();
        let r = f();
        self.held += live() - before;
        self.peak = self.peak.max(self.held);
        r
    }

    /// Bytes held now.
    pub fn held(&self) -> isize {
        self.held
    }

    /// Most bytes held at any point.
    pub fn peak(&self) -> isize {
        self.peak
    }
}
