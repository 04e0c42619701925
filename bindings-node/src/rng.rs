//! Randomness from the operating system, for handshake keys, mask keys,
//! session ids and reconnect jitter.

use evsock::{BufferedRng, Rng};

/// The OS generator, one `getrandom` call per request.
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&mut self, dest: &mut [u8]) {
        if getrandom::getrandom(dest).is_err() {
            // No OS randomness at all is not something a process recovers
            // from; but masks, ids and jitter must never silently become
            // predictable either.
            std::process::abort();
        }
    }
}

/// The generator a connection or session owns: the OS one drawn from a
/// block at a time, so that a client's 4-byte mask key per frame is not a
/// system call per frame.
pub fn os() -> Box<dyn Rng + Send> {
    Box::new(BufferedRng::new(OsRng))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_span_blocks() {
        let mut r = os();
        let mut seen = std::collections::HashSet::new();
        // 200 x 4 bytes crosses several 256-byte blocks.
        for _ in 0..200 {
            seen.insert(r.next_u32());
        }
        // Repeats among 200 random u32s are possible but vanishingly rare.
        assert!(seen.len() >= 199, "{} distinct of 200", seen.len());
    }
}
