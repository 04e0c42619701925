//! Randomness for client handshake keys, masking keys and session ids.

use evsock::{Rng, SeededRng};

/// Operating-system randomness, read 256 bytes at a time so that masking a
/// small frame does not cost a system call.
pub struct OsRng {
    buf: [u8; 256],
    pos: usize,
    /// Used only if the OS generator ever fails (it does not on any
    /// supported platform), so that a failure never turns into a panic.
    fallback: Option<SeededRng>,
}

impl OsRng {
    pub fn new() -> Self {
        OsRng {
            buf: [0; 256],
            pos: 256,
            fallback: None,
        }
    }

    fn refill(&mut self) {
        self.pos = 0;
        if let Some(f) = &mut self.fallback {
            f.fill(&mut self.buf);
            return;
        }
        if getrandom::getrandom(&mut self.buf).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let addr = &self.buf as *const _ as u64;
            let mut f = SeededRng::new(nanos ^ addr.rotate_left(32));
            f.fill(&mut self.buf);
            self.fallback = Some(f);
        }
    }
}

impl Rng for OsRng {
    fn fill(&mut self, dest: &mut [u8]) {
        let mut done = 0;
        while done < dest.len() {
            if self.pos >= self.buf.len() {
                self.refill();
            }
            let n = (dest.len() - done).min(self.buf.len() - self.pos);
            dest[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            // Never hand out the same bytes twice.
            self.buf[self.pos..self.pos + n].fill(0);
            self.pos += n;
            done += n;
        }
    }
}

/// The generator for a new connection or session: deterministic when the
/// caller passes a seed (tests), otherwise the OS generator.
pub fn make(seed: Option<u64>) -> Box<dyn Rng + Send> {
    match seed {
        Some(s) => Box::new(SeededRng::new(s)),
        None => Box::new(OsRng::new()),
    }
}
