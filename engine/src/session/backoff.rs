//! Client reconnect delays: exponential backoff with full jitter and a cap.

use crate::rng::Rng;

/// Exponential backoff with full jitter.
///
/// Attempt `n` (counting from 0) waits a uniformly random delay in
/// `0..=min(max, base * 2^n)`; precisely `r % (cap + 1)` where `r` is the next
/// `u64` from the injected [`Rng`], so every binding computes the same delays
/// from the same random stream. A server-suggested retry-after raises the
/// delay to at least that value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    /// Creates a backoff with the given first cap and largest cap.
    pub fn new(base_ms: u64, max_ms: u64) -> Self {
        Backoff {
            base_ms,
            max_ms: max_ms.max(base_ms),
            attempt: 0,
        }
    }

    /// Number of delays handed out since the last [`Backoff::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The cap of the next delay.
    pub fn cap(&self) -> u64 {
        let factor = 1u64.checked_shl(self.attempt.min(63)).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// The next delay, honouring `retry_after_ms` as a lower bound.
    pub fn next_delay(&mut self, rng: &mut dyn Rng, retry_after_ms: Option<u64>) -> u64 {
        let cap = self.cap();
        self.attempt = self.attempt.saturating_add(1);
        let r = rng.next_u64();
        let jitter = if cap == u64::MAX { r } else { r % (cap + 1) };
        jitter.max(retry_after_ms.unwrap_or(0))
    }

    /// Starts over after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    #[test]
    fn caps_grow_and_saturate() {
        let mut b = Backoff::new(100, 1000);
        let mut r = SeededRng::new(3);
        let mut caps = Vec::new();
        for _ in 0..8 {
            caps.push(b.cap());
            let d = b.next_delay(&mut r, None);
            assert!(d <= *caps.last().unwrap());
        }
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        for _ in 0..100 {
            b.next_delay(&mut r, None);
        }
        assert_eq!(b.cap(), 1000);
        b.reset();
        assert_eq!(b.cap(), 100);
    }

    #[test]
    fn retry_after_is_a_floor_and_jitter_spreads() {
        let mut b = Backoff::new(100, 1000);
        let mut r = SeededRng::new(4);
        assert!(b.next_delay(&mut r, Some(5000)) == 5000);
        let mut b = Backoff::new(1000, 1000);
        let ds: std::collections::HashSet<u64> =
            (0..50).map(|_| b.next_delay(&mut r, None)).collect();
        assert!(ds.len() > 40, "jitter should spread delays");
    }
}
