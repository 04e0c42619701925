//! Randomness for client handshake keys, masking keys and session ids.

use evsock::{BufferedRng, Rng, SeededRng};

/// The operating system's generator. Should it ever fail (it does not on
/// any supported platform) it switches, for good, to a generator seeded
/// from the clock and an address, so that a failure never turns into a
/// panic inside a Python call.
pub struct OsRng {
    fallback: Option<SeededRng>,
}

impl Rng for OsRng {
    fn fill(&mut self, dest: &mut [u8]) {
        if self.fallback.is_none() && getrandom::getrandom(dest).is_ok() {
            return;
        }
        let f = self.fallback.get_or_insert_with(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let addr = dest.as_ptr() as u64;
            SeededRng::new(nanos ^ addr.rotate_left(32))
        });
        f.fill(dest);
    }
}

/// The generator for a new connection or session: deterministic when the
/// caller passes a seed (tests), otherwise the OS generator, drawn from a
/// block at a time so that masking a small frame costs no system call.
pub fn make(seed: Option<u64>) -> Box<dyn Rng + Send> {
    match seed {
        Some(s) => Box::new(SeededRng::new(s)),
        None => Box::new(BufferedRng::new(OsRng { fallback: None })),
    }
}
