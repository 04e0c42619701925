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
    if input.len() <= SHORT && input.is_ascii() {
        return true;
    }
    validate_any(input)
}

/// [`validate`] for everything but short ASCII.
#[inline(never)]
fn validate_any(input: &[u8]) -> bool {
    simdutf8::basic::from_utf8(input).is_ok()
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
        if self.pending_len == 0 && input.len() <= SHORT && input.is_ascii() {
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
        if input.len() <= SHORT && input.is_ascii() {
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

    proptest! {
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
