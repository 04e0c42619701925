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
    fn output_is_not_degenerate() {
        let mut r = SeededRng::new(0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(r.next_u64()));
        }
    }
}
