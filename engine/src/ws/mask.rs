//! Applying the RFC 6455 masking key (XOR with a repeating 4-byte key).
//!
//! Masking is its own inverse, so the same function masks outgoing client
//! frames and unmasks incoming ones. `phase` says how many payload bytes of
//! the frame came before `buf`, so a frame that arrives in several reads can
//! be unmasked piece by piece.
//!
//! Every payload byte a server receives passes through here, so this is one
//! of the two hot loops of the engine (UTF-8 validation is the other). Short
//! buffers take a portable word-at-a-time loop; from [`SIMD_MIN_LEN`] bytes
//! on, a vector kernel chosen once at run time for the CPU we are on does
//! the work (AVX2 on x86-64 when the CPU has it, SSE2 otherwise; other
//! architectures use the portable loop, which their compilers vectorize
//! with the target's baseline vector unit). The crossover was measured with
//! `cargo bench -p evsock-benches --bench mask`; see BENCHMARKS.md.
//!
//! [`copy_masked`] fuses a copy with the masking, for the writer (masking
//! into the output buffer) and the reader (unmasking into the input
//! buffer).

use std::mem::MaybeUninit;

/// Buffers at least this long are handed to the vector kernel; shorter ones
/// use the word loop, which wins there because it is inlined and has no
/// head or tail to line up.
pub const SIMD_MIN_LEN: usize = 128;

/// XORs `buf` in place with `key`, starting at key byte `phase % 4`.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    let key = rotate_key(key, phase);
    apply_mask_aligned(buf, key);
}

/// Rotates `key` so that index 0 is the key byte for payload offset `phase`.
#[inline]
pub fn rotate_key(key: [u8; 4], phase: usize) -> [u8; 4] {
    let k = u32::from_ne_bytes(key);
    let shift = (phase % 4) * 8;
    let rotated = if cfg!(target_endian = "little") {
        k.rotate_right(shift as u32)
    } else {
        k.rotate_left(shift as u32)
    };
    rotated.to_ne_bytes()
}

/// XORs `buf` with `key`, where `key[0]` applies to `buf[0]`.
#[inline]
pub fn apply_mask_aligned(buf: &mut [u8], key: [u8; 4]) {
    if buf.len() < SIMD_MIN_LEN {
        apply_mask_words(buf, key)
    } else {
        apply_mask_vector(buf, key)
    }
}

/// The vector path for long buffers, whatever their length: the kernel
/// picked for this CPU (see the module docs).
#[inline]
pub fn apply_mask_vector(buf: &mut [u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    {
        x86::apply(buf, key)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        apply_mask_words(buf, key)
    }
}

/// Copies `src` into `dst` masked with `key` (`key[0]` for `src[0]`), in
/// one pass: the writer masks a client frame's payload straight into its
/// output buffer and the reader unmasks received bytes straight into its
/// input buffer, instead of copying and then masking in place (a second
/// pass over the bytes). Every byte of `dst` is initialized on return.
///
/// # Panics
/// If the lengths differ (a bug in the caller, never input-dependent).
#[inline]
pub fn copy_masked(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
    assert_eq!(dst.len(), src.len(), "copy_masked: lengths differ");
    if src.len() < COPY_SIMD_MIN_LEN {
        return copy_masked_words(dst, src, key);
    }
    #[cfg(target_arch = "x86_64")]
    {
        x86::copy(dst, src, key)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        copy_masked_words(dst, src, key)
    }
}

/// Buffers at least this long take the vector kernel in [`copy_masked`].
pub const COPY_SIMD_MIN_LEN: usize = 64;

/// [`copy_masked`] eight bytes at a time, in safe code: each word is read
/// from `src`, masked and written to `dst`. Compilers turn the byte writes
/// of a word into one store.
#[inline]
pub fn copy_masked_words(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
    let k8 = key8(key);
    let mut d8 = dst.chunks_exact_mut(8);
    let mut s8 = src.chunks_exact(8);
    for (d, s) in (&mut d8).zip(&mut s8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        let v = (u64::from_ne_bytes(w) ^ k8).to_ne_bytes();
        for (dd, b) in d.iter_mut().zip(v) {
            dd.write(b);
        }
    }
    // 8 is a multiple of 4: the remainder starts at key byte 0 again.
    for ((dd, b), k) in d8
        .into_remainder()
        .iter_mut()
        .zip(s8.remainder())
        .zip(key.iter().cycle())
    {
        dd.write(b ^ k);
    }
}

/// The key repeated over a `u64`; the same in either byte order because
/// the key's bytes are in memory order.
#[inline(always)]
fn key8(key: [u8; 4]) -> u64 {
    let k4 = u32::from_ne_bytes(key) as u64;
    k4 | (k4 << 32)
}

/// XORs whole 8-byte words of `buf` (any length, any alignment), then a
/// 4-byte word and single bytes; `key[0]` applies to `buf[0]`.
#[inline(always)]
fn xor_words_from(buf: &mut [u8], key: [u8; 4]) {
    let k8 = key8(key);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let v = u64::from_ne_bytes(w) ^ k8;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    // 8 is a multiple of 4: the remainder starts at key byte 0 again.
    let mut rest = chunks.into_remainder();
    if rest.len() >= 4 {
        let (w4, tail) = rest.split_at_mut(4);
        let mut w = [0u8; 4];
        w.copy_from_slice(w4);
        let v = u32::from_ne_bytes(w) ^ u32::from_ne_bytes(key);
        w4.copy_from_slice(&v.to_ne_bytes());
        rest = tail;
    }
    for (b, k) in rest.iter_mut().zip(key) {
        *b ^= k;
    }
}

/// A portable version that works eight bytes at a time.
///
/// Words are loaded and stored unaligned wherever the buffer starts, so an
/// unaligned head costs nothing extra (no byte-by-byte prologue): on the
/// CPUs evsock targets (x86-64, AArch64) an unaligned word access is as
/// fast as an aligned one unless it straddles a cache line, which at most
/// one word in eight does. The 0 to 7 trailing bytes take one 4-byte step
/// and then single bytes.
#[inline]
pub fn apply_mask_words(buf: &mut [u8], key: [u8; 4]) {
    xor_words_from(buf, key)
}

/// The obvious byte-at-a-time version, kept as the reference in tests.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], phase: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + phase) & 3];
    }
}

/// A masking kernel: `fn(buf, key)` with `key[0]` for `buf[0]`.
#[doc(hidden)]
pub type Kernel = fn(&mut [u8], [u8; 4]);

/// Every masking kernel this build has that the running CPU supports, by
/// name, each as `fn(buf, key)` with `key[0]` for `buf[0]`. For benchmarks
/// and tests; the engine itself goes through [`apply_mask`].
#[doc(hidden)]
pub fn kernels() -> Vec<(&'static str, Kernel)> {
    let mut v: Vec<(&'static str, Kernel)> = vec![
        ("bytewise", |b, k| apply_mask_bytewise(b, k, 0)),
        ("words", apply_mask_words),
        ("dispatch", apply_mask_aligned),
    ];
    #[cfg(target_arch = "x86_64")]
    x86::add_kernels(&mut v);
    v
}

/// A copy-and-mask kernel: `fn(dst, src, key)`, as [`copy_masked`].
#[doc(hidden)]
pub type CopyKernel = fn(&mut [MaybeUninit<u8>], &[u8], [u8; 4]);

/// Every copy-and-mask kernel this build has that the running CPU
/// supports, by name. For benchmarks and tests.
#[doc(hidden)]
pub fn copy_kernels() -> Vec<(&'static str, CopyKernel)> {
    let mut v: Vec<(&'static str, CopyKernel)> =
        vec![("words", copy_masked_words), ("dispatch", copy_masked)];
    #[cfg(target_arch = "x86_64")]
    x86::add_copy_kernels(&mut v);
    v
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! SSE2 (part of every x86-64 CPU) and AVX2 (detected at run time).

    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;
    use std::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const SSE2: u8 = 1;
    const AVX2: u8 = 2;

    /// The best kernel for this CPU, detected on first use.
    static LEVEL: AtomicU8 = AtomicU8::new(UNKNOWN);

    #[inline]
    fn level() -> u8 {
        match LEVEL.load(Ordering::Relaxed) {
            UNKNOWN => detect(),
            l => l,
        }
    }

    #[cold]
    fn detect() -> u8 {
        let l = if is_x86_feature_detected!("avx2") {
            AVX2
        } else {
            SSE2
        };
        // Racing threads all store the same value.
        LEVEL.store(l, Ordering::Relaxed);
        l
    }

    #[inline]
    pub(super) fn apply(buf: &mut [u8], key: [u8; 4]) {
        if level() == AVX2 {
            // SAFETY: `level()` returns AVX2 only after
            // `is_x86_feature_detected!("avx2")` said this CPU has it.
            unsafe { avx2(buf, key) }
        } else {
            sse2(buf, key)
        }
    }

    pub(super) fn add_kernels(v: &mut Vec<(&'static str, super::Kernel)>) {
        v.push(("sse2", sse2));
        if is_x86_feature_detected!("avx2") {
            // SAFETY (of the call inside): this closure is only handed out
            // after the check above found AVX2 on this CPU.
            v.push(("avx2", |b, k| unsafe { avx2(b, k) }));
        }
    }

    /// 16 bytes at a time with SSE2 (part of every x86-64 CPU, so this
    /// needs no detection). Buffers under 16 bytes take the word loop.
    ///
    /// No byte-by-byte head or tail: the first and the last 16 bytes are
    /// loaded (unaligned) before anything is written, the aligned middle is
    /// masked in place, and then the first and last vectors are stored.
    /// Where they overlap the middle they store the very bytes the middle
    /// loop wrote (masking is per-byte), so every byte ends up masked once.
    pub(super) fn sse2(buf: &mut [u8], key: [u8; 4]) {
        let len = buf.len();
        if len < 16 {
            return super::xor_words_from(buf, key);
        }
        let at = |p: usize| splat128(super::rotate_key(key, p));
        // SAFETY: `len >= 16`, so both 16-byte loads lie inside `buf`;
        // unaligned loads have no alignment requirement.
        let (first, last) = unsafe {
            (
                _mm_loadu_si128(buf.as_ptr() as *const __m128i),
                _mm_loadu_si128(buf.as_ptr().add(len - 16) as *const __m128i),
            )
        };
        let head = (16 - (buf.as_ptr() as usize & 15)) & 15;
        let body = (len - head) & !15;
        let k = at(head);
        let mut blocks = buf[head..head + body].chunks_exact_mut(64);
        for b in &mut blocks {
            let p = b.as_mut_ptr() as *mut __m128i;
            // SAFETY: `b` is 64 bytes inside `buf`, exactly four vectors,
            // starting on a 16-byte boundary (`head` bytes past the start
            // of `buf` is one, and blocks are whole multiples of 16 from
            // there), as aligned loads and stores require; `b` is borrowed
            // exclusively.
            unsafe {
                let a0 = _mm_xor_si128(_mm_load_si128(p), k);
                let a1 = _mm_xor_si128(_mm_load_si128(p.add(1)), k);
                let a2 = _mm_xor_si128(_mm_load_si128(p.add(2)), k);
                let a3 = _mm_xor_si128(_mm_load_si128(p.add(3)), k);
                _mm_store_si128(p, a0);
                _mm_store_si128(p.add(1), a1);
                _mm_store_si128(p.add(2), a2);
                _mm_store_si128(p.add(3), a3);
            }
        }
        for v in blocks.into_remainder().chunks_exact_mut(16) {
            let p = v.as_mut_ptr() as *mut __m128i;
            // SAFETY: 16 bytes inside `buf`, 16-aligned as above (the body
            // length is a multiple of 16), borrowed exclusively.
            unsafe { _mm_store_si128(p, _mm_xor_si128(_mm_load_si128(p), k)) }
        }
        // SAFETY: the same two in-bounds 16-byte ranges as the loads;
        // unaligned stores have no alignment requirement, and no borrow of
        // `buf` is live.
        unsafe {
            _mm_storeu_si128(
                buf.as_mut_ptr() as *mut __m128i,
                _mm_xor_si128(first, at(0)),
            );
            _mm_storeu_si128(
                buf.as_mut_ptr().add(len - 16) as *mut __m128i,
                _mm_xor_si128(last, at(len - 16)),
            );
        }
    }

    #[inline]
    pub(super) fn copy(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
        if level() == AVX2 {
            // SAFETY: `level()` returns AVX2 only after
            // `is_x86_feature_detected!("avx2")` said this CPU has it.
            unsafe { copy_avx2(dst, src, key) }
        } else {
            copy_sse2(dst, src, key)
        }
    }

    pub(super) fn add_copy_kernels(v: &mut Vec<(&'static str, super::CopyKernel)>) {
        v.push(("sse2", copy_sse2));
        if is_x86_feature_detected!("avx2") {
            // SAFETY (of the call inside): this closure is only handed out
            // after the check above found AVX2 on this CPU.
            v.push(("avx2", |d, s, k| unsafe { copy_avx2(d, s, k) }));
        }
    }

    /// [`super::copy_masked`] 16 bytes at a time with SSE2, four vectors
    /// per iteration, unaligned loads and stores. No scalar tail: the last
    /// 16 bytes are loaded and stored as one more (unaligned) vector, with
    /// the key turned to their phase; where it overlaps what the loop wrote
    /// it writes the very same bytes. Under 16 bytes the word loop does it.
    pub(super) fn copy_sse2(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
        let len = src.len().min(dst.len());
        if len < 16 {
            return super::copy_masked_words(&mut dst[..len], &src[..len], key);
        }
        let k = splat128(key);
        let s = src.as_ptr();
        let d = dst.as_mut_ptr() as *mut u8;
        let mut at = 0;
        while at + 64 <= len {
            // SAFETY: bytes `at..at + 64` lie inside both `src` and `dst`
            // (`at + 64 <= len`); unaligned loads and stores have no
            // alignment requirement; `dst` is borrowed exclusively and does
            // not overlap `src` (a shared and an exclusive borrow); writing
            // to `MaybeUninit` bytes is always allowed.
            unsafe {
                let (s, d) = (s.add(at) as *const __m128i, d.add(at) as *mut __m128i);
                let a0 = _mm_xor_si128(_mm_loadu_si128(s), k);
                let a1 = _mm_xor_si128(_mm_loadu_si128(s.add(1)), k);
                let a2 = _mm_xor_si128(_mm_loadu_si128(s.add(2)), k);
                let a3 = _mm_xor_si128(_mm_loadu_si128(s.add(3)), k);
                _mm_storeu_si128(d, a0);
                _mm_storeu_si128(d.add(1), a1);
                _mm_storeu_si128(d.add(2), a2);
                _mm_storeu_si128(d.add(3), a3);
            }
            at += 64;
        }
        while at + 16 <= len {
            // SAFETY: bytes `at..at + 16` lie inside both; as above.
            unsafe {
                let v = _mm_loadu_si128(s.add(at) as *const __m128i);
                _mm_storeu_si128(d.add(at) as *mut __m128i, _mm_xor_si128(v, k));
            }
            at += 16;
        }
        if at < len {
            let last = len - 16;
            let k = splat128(super::rotate_key(key, last));
            // SAFETY: `len >= 16`, so bytes `last..len` lie inside both;
            // as above.
            unsafe {
                let v = _mm_loadu_si128(s.add(last) as *const __m128i);
                _mm_storeu_si128(d.add(last) as *mut __m128i, _mm_xor_si128(v, k));
            }
        }
    }

    /// [`copy_sse2`] with 32-byte AVX2 vectors, eight per iteration (a
    /// 1 KiB payload is four turns of the loop). Under 32 bytes it hands
    /// over to [`copy_sse2`].
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn copy_avx2(dst: &mut [MaybeUninit<u8>], src: &[u8], key: [u8; 4]) {
        let len = src.len().min(dst.len());
        if len < 32 {
            return copy_sse2(dst, src, key);
        }
        // SAFETY: the caller guarantees AVX2.
        let k = unsafe { splat256(key) };
        let s = src.as_ptr();
        let d = dst.as_mut_ptr() as *mut u8;
        let mut at = 0;
        while at + 256 <= len {
            // SAFETY: bytes `at..at + 256` lie inside both `src` and `dst`
            // (`at + 256 <= len`); unaligned loads and stores have no
            // alignment requirement; `dst` is borrowed exclusively and does
            // not overlap `src`; writing to `MaybeUninit` bytes is always
            // allowed; AVX2 is there.
            unsafe {
                let (s, d) = (s.add(at) as *const __m256i, d.add(at) as *mut __m256i);
                let a0 = _mm256_xor_si256(_mm256_loadu_si256(s), k);
                let a1 = _mm256_xor_si256(_mm256_loadu_si256(s.add(1)), k);
                let a2 = _mm256_xor_si256(_mm256_loadu_si256(s.add(2)), k);
                let a3 = _mm256_xor_si256(_mm256_loadu_si256(s.add(3)), k);
                let a4 = _mm256_xor_si256(_mm256_loadu_si256(s.add(4)), k);
                let a5 = _mm256_xor_si256(_mm256_loadu_si256(s.add(5)), k);
                let a6 = _mm256_xor_si256(_mm256_loadu_si256(s.add(6)), k);
                let a7 = _mm256_xor_si256(_mm256_loadu_si256(s.add(7)), k);
                _mm256_storeu_si256(d, a0);
                _mm256_storeu_si256(d.add(1), a1);
                _mm256_storeu_si256(d.add(2), a2);
                _mm256_storeu_si256(d.add(3), a3);
                _mm256_storeu_si256(d.add(4), a4);
                _mm256_storeu_si256(d.add(5), a5);
                _mm256_storeu_si256(d.add(6), a6);
                _mm256_storeu_si256(d.add(7), a7);
            }
            at += 256;
        }
        while at + 32 <= len {
            // SAFETY: bytes `at..at + 32` lie inside both; as above.
            unsafe {
                let v = _mm256_loadu_si256(s.add(at) as *const __m256i);
                _mm256_storeu_si256(d.add(at) as *mut __m256i, _mm256_xor_si256(v, k));
            }
            at += 32;
        }
        if at < len {
            // The last 32 bytes as one more vector, overlapping the loop's.
            let last = len - 32;
            // SAFETY: `len >= 32`, so bytes `last..len` lie inside both; as
            // above.
            unsafe {
                let k = splat256(super::rotate_key(key, last));
                let v = _mm256_loadu_si256(s.add(last) as *const __m256i);
                _mm256_storeu_si256(d.add(last) as *mut __m256i, _mm256_xor_si256(v, k));
            }
        }
    }

    /// The key repeated over a 16-byte vector.
    #[inline(always)]
    fn splat128(key: [u8; 4]) -> __m128i {
        let k = [u32::from_ne_bytes(key); 4];
        // SAFETY: an unaligned 16-byte load from a 16-byte array; SSE2 is
        // part of every x86-64 CPU.
        unsafe { _mm_loadu_si128(k.as_ptr() as *const __m128i) }
    }

    /// The key repeated over a 32-byte vector.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn splat256(key: [u8; 4]) -> __m256i {
        let k = [u32::from_ne_bytes(key); 8];
        // SAFETY: an unaligned 32-byte load from a 32-byte array; the
        // caller guarantees AVX2.
        unsafe { _mm256_loadu_si256(k.as_ptr() as *const __m256i) }
    }

    /// 32 bytes at a time with AVX2, the same way as [`sse2`]: first and
    /// last vectors loaded up front and stored last, an aligned middle in
    /// between, four vectors per iteration. Under 32 bytes it hands over to
    /// [`sse2`].
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(buf: &mut [u8], key: [u8; 4]) {
        let len = buf.len();
        if len < 32 {
            return sse2(buf, key);
        }
        // SAFETY: `len >= 32`, so both 32-byte loads lie inside `buf`;
        // unaligned loads have no alignment requirement; AVX2 is there.
        let (first, last) = unsafe {
            (
                _mm256_loadu_si256(buf.as_ptr() as *const __m256i),
                _mm256_loadu_si256(buf.as_ptr().add(len - 32) as *const __m256i),
            )
        };
        let head = (32 - (buf.as_ptr() as usize & 31)) & 31;
        let body = (len - head) & !31;
        // SAFETY: the caller guarantees AVX2.
        let k = unsafe { splat256(super::rotate_key(key, head)) };
        let mut blocks = buf[head..head + body].chunks_exact_mut(128);
        for b in &mut blocks {
            let p = b.as_mut_ptr() as *mut __m256i;
            // SAFETY: `b` is 128 bytes inside `buf`, exactly four vectors,
            // starting on a 32-byte boundary (`head` bytes past the start of
            // `buf` is one, and blocks are whole multiples of 32 from
            // there), as aligned loads and stores require; `b` is borrowed
            // exclusively; AVX2 is there.
            unsafe {
                let a0 = _mm256_xor_si256(_mm256_load_si256(p), k);
                let a1 = _mm256_xor_si256(_mm256_load_si256(p.add(1)), k);
                let a2 = _mm256_xor_si256(_mm256_load_si256(p.add(2)), k);
                let a3 = _mm256_xor_si256(_mm256_load_si256(p.add(3)), k);
                _mm256_store_si256(p, a0);
                _mm256_store_si256(p.add(1), a1);
                _mm256_store_si256(p.add(2), a2);
                _mm256_store_si256(p.add(3), a3);
            }
        }
        for v in blocks.into_remainder().chunks_exact_mut(32) {
            let p = v.as_mut_ptr() as *mut __m256i;
            // SAFETY: 32 bytes inside `buf`, 32-aligned as above (the body
            // length is a multiple of 32), borrowed exclusively; AVX2.
            unsafe { _mm256_store_si256(p, _mm256_xor_si256(_mm256_load_si256(p), k)) }
        }
        // SAFETY: the same two in-bounds 32-byte ranges as the loads;
        // unaligned stores have no alignment requirement, no borrow of
        // `buf` is live, and AVX2 is there.
        unsafe {
            let k_first = splat256(key);
            let k_last = splat256(super::rotate_key(key, len - 32));
            _mm256_storeu_si256(
                buf.as_mut_ptr() as *mut __m256i,
                _mm256_xor_si256(first, k_first),
            );
            _mm256_storeu_si256(
                buf.as_mut_ptr().add(len - 32) as *mut __m256i,
                _mm256_xor_si256(last, k_last),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example() {
        let mut b = *b"Hello";
        apply_mask(&mut b, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(b, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    /// Every kernel, every length 0..=300, every phase and every start
    /// offset within a 64-byte line agree with the byte-by-byte reference.
    #[test]
    fn every_kernel_every_length_phase_and_offset() {
        let key = [0x9d, 0x21, 0xf3, 0x5a];
        let data: Vec<u8> = (0..300 + 64).map(|i| (i * 7 + 3) as u8).collect();
        let mut names = Vec::new();
        for (name, kernel) in kernels() {
            names.push(name);
            for offset in 0..64 {
                for len in 0..=300 {
                    for phase in 0..4 {
                        let mut want = data.clone();
                        apply_mask_bytewise(&mut want[offset..offset + len], key, phase);
                        let mut got = data.clone();
                        kernel(&mut got[offset..offset + len], rotate_key(key, phase));
                        assert_eq!(got, want, "{name} offset {offset} len {len} phase {phase}");
                    }
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        assert!(names.contains(&"sse2"));
    }

    #[test]
    fn long_buffers_across_kernels() {
        let key = [1, 2, 3, 4];
        for len in [4095, 4096, 65_536 + 13, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i ^ (i >> 8)) as u8).collect();
            let mut want = data.clone();
            apply_mask_bytewise(&mut want[5..], key, 1);
            for (name, kernel) in kernels() {
                let mut got = data.clone();
                kernel(&mut got[5..], rotate_key(key, 1));
                assert!(got == want, "{name} len {len}");
            }
        }
    }

    fn copy_with(kernel: CopyKernel, src: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut dst = vec![MaybeUninit::new(0xAAu8); src.len()];
        kernel(&mut dst, src, key);
        // SAFETY: every element was initialized by `MaybeUninit::new`
        // above, and the kernel only ever writes initialized bytes.
        dst.iter().map(|b| unsafe { b.assume_init() }).collect()
    }

    /// Every copy kernel, every length 0..=300 and source offset within a
    /// 64-byte line, agrees with masking a copy byte by byte.
    #[test]
    fn every_copy_kernel_every_length_and_offset() {
        let key = [0x9d, 0x21, 0xf3, 0x5a];
        let data: Vec<u8> = (0..300 + 64).map(|i| (i * 7 + 3) as u8).collect();
        let mut names = Vec::new();
        for (name, kernel) in copy_kernels() {
            names.push(name);
            for offset in 0..64 {
                for len in 0..=300 {
                    let src = &data[offset..offset + len];
                    let mut want = src.to_vec();
                    apply_mask_bytewise(&mut want, key, 0);
                    assert_eq!(
                        copy_with(kernel, src, key),
                        want,
                        "{name} offset {offset} len {len}"
                    );
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        assert!(names.contains(&"sse2"));
    }

    #[test]
    fn long_copies_across_kernels() {
        let key = [1, 2, 3, 4];
        for len in [4095, 65_536 + 13, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i ^ (i >> 8)) as u8).collect();
            let mut want = data[3..].to_vec();
            apply_mask_bytewise(&mut want, key, 0);
            for (name, kernel) in copy_kernels() {
                assert!(
                    copy_with(kernel, &data[3..], key) == want,
                    "{name} len {len}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn copy_masked_refuses_different_lengths() {
        let mut dst = [MaybeUninit::new(0u8); 3];
        copy_masked(&mut dst, b"four", [1, 2, 3, 4]);
    }

    proptest! {
        #[test]
        fn matches_bytewise(data in proptest::collection::vec(any::<u8>(), 0..=300), key in any::<[u8; 4]>(), phase in 0usize..9, offset in 0usize..32) {
            let offset = offset.min(data.len());
            let mut a = data.clone();
            let mut b = data.clone();
            apply_mask(&mut a[offset..], key, phase);
            apply_mask_bytewise(&mut b[offset..], key, phase);
            prop_assert_eq!(&a, &b);
            apply_mask(&mut a[offset..], key, phase);
            prop_assert_eq!(&a, &data);
        }

        #[test]
        fn kernels_match_bytewise(data in proptest::collection::vec(any::<u8>(), 0..=300), key in any::<[u8; 4]>(), phase in 0usize..4, offset in 0usize..64) {
            let offset = offset.min(data.len());
            let mut want = data.clone();
            apply_mask_bytewise(&mut want[offset..], key, phase);
            for (name, kernel) in kernels() {
                let mut got = data.clone();
                kernel(&mut got[offset..], rotate_key(key, phase));
                prop_assert_eq!(&got, &want, "{}", name);
            }
        }

        #[test]
        fn copy_masked_matches_bytewise(data in proptest::collection::vec(any::<u8>(), 0..=600), key in any::<[u8; 4]>(), phase in 0usize..4) {
            let mut want = data.clone();
            apply_mask_bytewise(&mut want, key, phase);
            for (name, kernel) in copy_kernels() {
                prop_assert_eq!(&copy_with(kernel, &data, rotate_key(key, phase)), &want, "{}", name);
            }
        }

        #[test]
        fn split_anywhere_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..=300), key in any::<[u8; 4]>(), cut in 0usize..=300) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, parts);
        }
    }
}
