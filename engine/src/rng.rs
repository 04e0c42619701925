//! Injectable randomness.
//!
//! The engine never reads an entropy source on its own: mask keys, handshake
//! keys and session ids come from a [`Rng`] the host hands in. Tests pass a
//! seeded [`SeededRng`] so that whole conversations replay byte for byte.

/// A source of random bytes supplied by the host.
///
/// Production hosts should back this with the operating system's generator
/// (for example the `getrandom` crate); RFC 6455 asks for unpredictable
/// masking keys so that intermediaries cannot be poisoned.
pub trait Rng {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);

    /// Returns a random `u32`.
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_le_bytes(b)
    }

    /// Returns a random `u64`.
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

impl<R: Rng + ?Sized> Rng for Box<R> {
    fn fill(&mut self, dest: &mut [u8]) {
        (**self).fill(dest)
    }

    fn next_u32(&mut self) -> u32 {
        (**self).next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// A small deterministic generator (xoshiro256++ seeded through splitmix64).
///
/// It is fast and reproducible, which is what tests and simulations need. It
/// is **not** cryptographically secure: hosts facing the internet should seed
/// it from the OS for every connection, or supply their own [`Rng`].
#[derive(Clone, Debug)]
pub struct SeededRng {
    s: [u64; 4],
}

impl SeededRng {
    /// Creates a generator from a 64-bit seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        SeededRng {
            s: [next(), next(), next(), next()],
        }
    }

    fn step(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.step().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn next_u32(&mut self) -> u32 {
        // The first four bytes `fill` takes from a step, read little-endian.
        self.step() as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.step()
    }
}

/// Bytes a [`BufferedRng`] draws from its inner generator at a time.
pub const BUFFERED_RNG_BLOCK: usize = 256;

/// Draws bytes from another generator a block at a time and hands them out
/// in the small pieces the engine asks for (a 4-byte mask key per client
/// frame), so that a generator with a cost per call (the OS one is a
/// system call) is called once per block of [`BUFFERED_RNG_BLOCK`] bytes
/// instead of once per frame. Bytes handed out are erased from the buffer, so none is
/// given twice or left behind in memory.
#[derive(Clone)]
pub struct BufferedRng<R> {
    inner: R,
    buf: [u8; BUFFERED_RNG_BLOCK],
    /// Bytes of `buf` already handed out (all of them at first).
    used: usize,
}

impl<R: Rng> BufferedRng<R> {
    /// Buffers `inner` (nothing is drawn until the first request).
    pub fn new(inner: R) -> Self {
        BufferedRng {
            inner,
            buf: [0; BUFFERED_RNG_BLOCK],
            used: BUFFERED_RNG_BLOCK,
        }
    }
}

impl<R> std::fmt::Debug for BufferedRng<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the bytes themselves.
        f.debug_struct("BufferedRng")
            .field("left", &(self.buf.len() - self.used))
            .finish_non_exhaustive()
    }
}

impl<R: Rng> Rng for BufferedRng<R> {
    fn fill(&mut self, dest: &mut [u8]) {
        let mut done = 0;
        while done < dest.len() {
            if self.used == self.buf.len() {
                self.inner.fill(&mut self.buf);
                self.used = 0;
            }
            let n = (dest.len() - done).min(self.buf.len() - self.used);
            let take = &mut self.buf[self.used..self.used + n];
            dest[done..done + n].copy_from_slice(take);
            take.fill(0);
            self.used += n;
            done += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let mut a = SeededRng::new(7);
        let mut b = SeededRng::new(7);
        let mut c = SeededRng::new(8);
        let (mut x, mut y, mut z) = ([0u8; 13], [0u8; 13], [0u8; 13]);
        a.fill(&mut x);
        b.fill(&mut y);
        c.fill(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn next_u32_and_next_u64_read_the_bytes_fill_gives() {
        let (mut a, mut b) = (SeededRng::new(3), SeededRng::new(3));
        for _ in 0..100 {
            let mut four = [0u8; 4];
            a.fill(&mut four);
            assert_eq!(b.next_u32(), u32::from_le_bytes(four));
            let mut eight = [0u8; 8];
            a.fill(&mut eight);
            assert_eq!(b.next_u64(), u64::from_le_bytes(eight));
        }
        // Through a box too (connections hold their generator boxed).
        let mut boxed: Box<dyn Rng> = Box::new(SeededRng::new(3));
        let mut four = [0u8; 4];
        SeededRng::new(3).fill(&mut four);
        assert_eq!(boxed.next_u32(), u32::from_le_bytes(four));
    }

    #[test]
    fn buffered_gives_the_inner_stream_in_order_and_draws_a_block_at_a_time() {
        struct Counting(SeededRng, usize);
        impl Rng for Counting {
            fn fill(&mut self, dest: &mut [u8]) {
                self.1 += 1;
                self.0.fill(dest);
            }
        }
        let mut direct = SeededRng::new(9);
        let mut want = vec![0u8; 1000];
        direct.fill(&mut want);
        let mut b = BufferedRng::new(Counting(SeededRng::new(9), 0));
        let mut got = Vec::new();
        // Pieces of every size, some across a block boundary.
        for n in (0..).map(|i| [4, 1, 13, 0, 300][i % 5]) {
            if got.len() + n > want.len() {
                break;
            }
            let mut piece = vec![0u8; n];
            b.fill(&mut piece);
            got.extend(piece);
        }
        assert_eq!(got, want[..got.len()]);
        let blocks = got.len().div_ceil(BUFFERED_RNG_BLOCK);
        assert_eq!(b.inner.1, blocks, "one draw per block");
        // What was handed out is gone from the buffer.
        assert!(b.buf[..b.used].iter().all(|&x| x == 0));
    }

    #[test]
    fn output_is_not_degenerate() {
        let mut r = SeededRng::new(0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(r.next_u64()));
        }
    }
}
