//! Incremental, fail-fast UTF-8 validation.
//!
//! Text messages arrive in pieces: several frames, each in several reads. The
//! validator checks each piece as it arrives, so an invalid byte closes the
//! connection (1007) without waiting for the rest of the message, and a code
//! point split across pieces is carried over in at most three bytes of state.

/// Pieces up to this long are first checked for plain ASCII inline.
const SHORT: usize = 64;

/// Why a piece of text was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Checks a whole message at once (no state carried in or out).
#[inline(always)]
pub fn validate(input: &[u8]) -> bool {
    if input.len() <= SHORT && short_is_ascii(input) {
        return true;
    }
    validate_any(input)
}

/// [`validate`] for everything but short ASCII.
#[inline(never)]
fn validate_any(input: &[u8]) -> bool {
    simdutf8::basic::from_utf8(input).is_ok()
}

/// Whether `b`, at most [`SHORT`] bytes, is plain ASCII: the bytes OR-ed
/// together eight at a time (the last word overlapping the one before),
/// inline, with no head or tail to line up. `<[u8]>::is_ascii` is a call
/// that aligns first; for a 20-byte message it cost 35 instructions.
#[inline(always)]
fn short_is_ascii(b: &[u8]) -> bool {
    let n = b.len();
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    if n >= 8 {
        let mut acc = word(n - 8);
        let mut at = 0;
        while at + 8 < n {
            acc |= word(at);
            at += 8;
        }
        acc & 0x8080_8080_8080_8080 == 0
    } else if n >= 4 {
        let half = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[at..at + 4]);
            u32::from_ne_bytes(w)
        };
        (half(0) | half(n - 4)) & 0x8080_8080 == 0
    } else {
        b.iter().fold(0, |acc, &x| acc | x) < 0x80
    }
}

/// State carried between pieces of one text message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// Length of the sequence introduced by lead byte `b`, or 0 if `b` cannot
/// start a sequence.
#[inline]
fn sequence_len(b: u8) -> usize {
    match b {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Utf8Validator {
            pending: [0; 4],
            pending_len: 0,
        }
    }

    /// Forgets any carried-over state (a new message starts).
    #[inline]
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// True when no partial code point is carried over.
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }

    /// Validates the next piece of the message. Fails as soon as the bytes
    /// seen so far cannot be the prefix of valid UTF-8.
    #[inline(always)]
    pub fn feed(&mut self, input: &[u8]) -> Result<(), InvalidUtf8> {
        // Short ASCII with nothing pending (most chat messages and JSON
        // envelopes) is done here, inline in the caller's loop.
        if self.pending_len == 0 && input.len() <= SHORT && short_is_ascii(input) {
            return Ok(());
        }
        self.feed_any(input)
    }

    /// [`Utf8Validator::feed`] for everything but short ASCII.
    #[inline(never)]
    fn feed_any(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = self.pending_len as usize;
            let need = sequence_len(self.pending[0]);
            let take = (need - have).min(input.len());
            self.pending[have..have + take].copy_from_slice(&input[..take]);
            let now = have + take;
            match simdutf8::compat::from_utf8(&self.pending[..now]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix; input is exhausted.
                    self.pending_len = now as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
            input = &input[take..];
        }
        if input.is_empty() {
            return Ok(());
        }
        // Short ASCII (most chat messages and JSON envelopes): a word loop
        // beats calling into the SIMD validator for a few bytes.
        if input.len() <= SHORT && short_is_ascii(input) {
            return Ok(());
        }
        // Fast path: the whole piece is valid on its own.
        if simdutf8::basic::from_utf8(input).is_ok() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &input[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Declares the message finished: a carried-over partial code point is
    /// an error.
    #[inline]
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let ok = self.pending_len == 0;
        self.pending_len = 0;
        if ok {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_in_pieces(data: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &c in cuts {
            let c = c.clamp(start, data.len());
            v.feed(&data[start..c])?;
            start = c;
        }
        v.feed(&data[start..])?;
        v.finish()
    }

    #[test]
    fn known_cases() {
        assert!(validate_in_pieces("κόσμε".as_bytes(), &[1, 2, 3]).is_ok());
        assert!(validate_in_pieces(&[0xF0, 0x9F, 0x98, 0x80], &[1, 2, 3]).is_ok());
        assert!(validate_in_pieces(&[0xF0, 0x9F, 0x98], &[]).is_err());
        assert!(validate_in_pieces(&[0xED, 0xA0, 0x80], &[1]).is_err()); // surrogate
        assert!(validate_in_pieces(&[0xC0, 0x80], &[]).is_err()); // overlong
    }

    #[test]
    fn fails_fast_on_the_first_bad_byte() {
        // Autobahn 6.4.x style: the first piece is already impossible.
        let mut v = Utf8Validator::new();
        assert!(v
            .feed(&[0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE])
            .is_ok());
        assert!(v.feed(&[0xBC, 0xCE, 0xB5, 0xF4, 0x90]).is_err());
        // A bad continuation right after a split lead byte.
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xF4]).is_ok());
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    /// The short ASCII check agrees with the standard one for every
    /// length it takes and every position of a single high byte.
    #[test]
    fn short_ascii_check_matches_std() {
        for n in 0..=SHORT {
            let mut b = vec![b'a'; n];
            assert!(short_is_ascii(&b), "len {n}");
            for i in 0..n {
                b[i] = 0x80 | (i as u8);
                assert!(!short_is_ascii(&b), "len {n} high byte at {i}");
                assert_eq!(short_is_ascii(&b), b.is_ascii());
                b[i] = b'a';
            }
        }
    }

    proptest! {
        #[test]
        fn short_ascii_agrees_with_std(data in proptest::collection::vec(0u8..=0x81, 0..=SHORT)) {
            prop_assert_eq!(short_is_ascii(&data), data.is_ascii());
        }

        #[test]
        fn pieces_agree_with_std(data in proptest::collection::vec(any::<u8>(), 0..64), cuts in proptest::collection::vec(0usize..64, 0..6)) {
            let mut cuts = cuts;
            cuts.sort();
            let expected = std::str::from_utf8(&data).is_ok();
            prop_assert_eq!(validate_in_pieces(&data, &cuts).is_ok(), expected);
        }

        #[test]
        fn valid_strings_split_anywhere(s in "\\PC{0,40}", cuts in proptest::collection::vec(0usize..200, 0..6)) {
            let mut cuts = cuts;
            cuts.sort();
            prop_assert!(validate_in_pieces(s.as_bytes(), &cuts).is_ok());
        }
    }
}
