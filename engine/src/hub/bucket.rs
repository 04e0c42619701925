//! Token buckets for message rate limits and connection admission.

/// A token bucket in integer milli-tokens: `rate` tokens per second refill
/// it, up to `burst` tokens. Twelve bytes of state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    milli: u32,
    last: u64,
}

impl Bucket {
    pub(crate) fn full(burst: u32, now: u64) -> Self {
        Bucket {
            milli: burst.saturating_mul(1000),
            last: now,
        }
    }

    /// Takes one token if there is one. `rate == 0` means unlimited.
    pub(crate) fn take(&mut self, now: u64, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let cap = burst.max(1).saturating_mul(1000) as u64;
        let elapsed = now.saturating_sub(self.last);
        // rate tokens per 1000 ms = rate milli-tokens per ms.
        let refill = elapsed.saturating_mul(rate as u64);
        self.milli = (self.milli as u64).saturating_add(refill).min(cap) as u32;
        self.last = self.last.max(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = Bucket::full(3, 0);
        assert!((0..3).all(|_| b.take(0, 10, 3)));
        assert!(!b.take(0, 10, 3));
        assert!(!b.take(99, 10, 3));
        assert!(b.take(100, 10, 3), "10/s refills one token per 100 ms");
        assert!(!b.take(100, 10, 3));
        // A long pause refills only up to the burst.
        assert!((0..3).all(|_| b.take(100_000, 10, 3)));
        assert!(!b.take(100_000, 10, 3));
        assert!(Bucket::full(0, 0).take(0, 0, 0), "rate 0 is unlimited");
    }
}
