//! A reference raw-DEFLATE decoder for permessage-deflate payloads, built on
//! `miniz_oxide` (an implementation independent of the engine's zlib-rs).
//! It always keeps a 32 KiB window, so it accepts every stream a smaller
//! window accepts.

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

/// The window the reference keeps (miniz_oxide's, whatever the bits).
const WINDOW: usize = 32 * 1024;

/// A streaming raw inflater that, like RFC 7692 receivers, starts a new
/// stream after a block with BFINAL set, on the same window: the new
/// stream may refer back into what came before it (context takeover).
pub struct RefInflater {
    state: Box<InflateState>,
    /// The last `WINDOW` bytes of output (at most twice that, trimmed
    /// lazily), to prime the stream that follows a final block.
    window: Vec<u8>,
}

impl Default for RefInflater {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the reference stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefEnd {
    /// All input consumed.
    Done,
    /// `cap` bytes of output were reached; the rest was not looked at.
    Capped,
    /// The data is corrupt.
    Corrupt,
}

impl RefInflater {
    /// A fresh inflater with an empty window.
    pub fn new() -> Self {
        RefInflater {
            state: InflateState::new_boxed(DataFormat::Raw),
            window: Vec::new(),
        }
    }

    /// An inflater whose window starts full of 0xAA. miniz_oxide, unlike
    /// zlib, lets a distance reach back past the start of the window
    /// (reading zeros): decoding a stream both ways and getting different
    /// bytes shows it does.
    pub fn primed() -> Self {
        let mut r = RefInflater {
            state: InflateState::new_boxed(DataFormat::Raw),
            window: vec![0xAA; WINDOW],
        };
        r.prime();
        r
    }

    /// Feeds the window to the fresh state as one stored block, whose
    /// output is dropped: the next stream refers back into it.
    fn prime(&mut self) {
        let start = self.window.len().saturating_sub(WINDOW);
        self.window.drain(..start);
        if self.window.is_empty() {
            return;
        }
        let n = self.window.len() as u16;
        let mut block = vec![0x00];
        block.extend_from_slice(&n.to_le_bytes());
        block.extend_from_slice(&(!n).to_le_bytes());
        block.extend_from_slice(&self.window);
        let mut sink = vec![0u8; self.window.len()];
        let r = inflate(&mut self.state, &block, &mut sink, MZFlush::None);
        debug_assert_eq!(
            (r.bytes_consumed, r.bytes_written),
            (block.len(), self.window.len())
        );
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.window.extend_from_slice(bytes);
        if self.window.len() > 2 * WINDOW {
            let cut = self.window.len() - WINDOW;
            self.window.drain(..cut);
        }
    }

    /// Inflates `input` onto `out`, stopping once `out` holds `cap` bytes.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, cap: usize) -> RefEnd {
        let mut pos = 0;
        let mut buf = [0u8; 4096];
        loop {
            if out.len() >= cap {
                out.truncate(cap);
                return RefEnd::Capped;
            }
            let r = inflate(&mut self.state, &input[pos..], &mut buf, MZFlush::None);
            pos += r.bytes_consumed;
            out.extend_from_slice(&buf[..r.bytes_written]);
            self.keep(&buf[..r.bytes_written]);
            match r.status {
                Ok(MZStatus::StreamEnd) => {
                    if r.bytes_written == buf.len() {
                        // More of the final block may be pending.
                        continue;
                    }
                    self.state.reset(DataFormat::Raw);
                    self.prime();
                    if pos == input.len() {
                        return RefEnd::Done;
                    }
                }
                Ok(_) => {
                    if pos == input.len() && r.bytes_written < buf.len() {
                        return RefEnd::Done;
                    }
                }
                // No progress possible without more input.
                Err(MZError::Buf) => {
                    return if pos == input.len() {
                        RefEnd::Done
                    } else {
                        RefEnd::Corrupt
                    }
                }
                Err(_) => return RefEnd::Corrupt,
            }
        }
    }

    /// Is the stream at a block boundary, where a well-formed message
    /// (one that ends with the sync flush's empty stored block) leaves it?
    /// Probes a copy with an empty final block (`03 00`), which ends the
    /// stream at once only there.
    pub fn at_block_boundary(&self) -> bool {
        let mut probe = self.state.clone();
        let mut sink = [0u8; 64];
        let r = inflate(&mut probe, &[0x03, 0x00], &mut sink, MZFlush::None);
        r.status == Ok(MZStatus::StreamEnd) && r.bytes_written == 0 && r.bytes_consumed == 2
    }

    /// Ends one message: the `00 00 FF FF` the sender stripped.
    pub fn finish_message(&mut self, out: &mut Vec<u8>, cap: usize) -> RefEnd {
        self.feed(&[0, 0, 0xFF, 0xFF], out, cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflates_rfc7692_examples() {
        // RFC 7692 7.2.3.1: "Hello", compressed, without the tail.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut r = RefInflater::new();
        let mut out = Vec::new();
        assert_eq!(r.feed(&hello, &mut out, 100), RefEnd::Done);
        assert_eq!(r.finish_message(&mut out, 100), RefEnd::Done);
        assert_eq!(out, b"Hello");
        // 7.2.3.2: the second "Hello" refers back into the first (context).
        let again = [0xf2, 0x00, 0x11, 0x00, 0x00];
        let mut out = Vec::new();
        assert_eq!(r.feed(&again, &mut out, 100), RefEnd::Done);
        assert_eq!(r.finish_message(&mut out, 100), RefEnd::Done);
        assert_eq!(out, b"Hello");
        // 7.2.3.3: a stored block.
        let mut out = Vec::new();
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(
            RefInflater::new().feed(&stored, &mut out, 100),
            RefEnd::Done
        );
        assert_eq!(out, b"Hello");
        // 7.2.3.5: BFINAL set, then a new stream.
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let mut r = RefInflater::new();
        let mut out = Vec::new();
        assert_eq!(r.feed(&fin, &mut out, 100), RefEnd::Done);
        assert_eq!(r.finish_message(&mut out, 100), RefEnd::Done);
        assert_eq!(r.feed(&hello, &mut out, 100), RefEnd::Done);
        assert_eq!(r.finish_message(&mut out, 100), RefEnd::Done);
        assert_eq!(out, b"HelloHello");
        // The new stream keeps the window: a reference back into it.
        let mut r = RefInflater::new();
        let mut out = Vec::new();
        assert_eq!(r.feed(&fin, &mut out, 100), RefEnd::Done);
        assert_eq!(r.finish_message(&mut out, 100), RefEnd::Done);
        assert!(r.at_block_boundary());
        assert_eq!(r.feed(&again, &mut out, 100), RefEnd::Done);
        assert_eq!(r.finish_message(&mut out, 100), RefEnd::Done);
        assert_eq!(out, b"HelloHello");
        // A final block with nothing after it: the tail starts a stored
        // block's header in the new stream.
        let mut r = RefInflater::new();
        assert_eq!(r.feed(&fin[..7], &mut Vec::new(), 100), RefEnd::Done);
        assert_eq!(r.finish_message(&mut Vec::new(), 100), RefEnd::Done);
        assert!(!r.at_block_boundary());
        // A distance past the start: zeros fresh, 0xAA primed.
        let far = [0x03, 0xc1, 0xc1, 0xc1, 0x00];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert_eq!(RefInflater::new().feed(&far, &mut a, 1000), RefEnd::Done);
        assert_eq!(RefInflater::primed().feed(&far, &mut b, 1000), RefEnd::Done);
        assert!(!a.is_empty() && a != b);
        // A well-formed message ends on a block boundary; an empty one
        // (the tail alone) leaves a stored block's header half read.
        let mut r = RefInflater::new();
        assert!(r.at_block_boundary());
        assert_eq!(r.feed(&hello, &mut Vec::new(), 100), RefEnd::Done);
        assert_eq!(r.finish_message(&mut Vec::new(), 100), RefEnd::Done);
        assert!(r.at_block_boundary());
        assert_eq!(r.finish_message(&mut Vec::new(), 100), RefEnd::Done);
        assert!(!r.at_block_boundary());
        // Garbage is corrupt; a cap stops a bomb.
        assert_eq!(
            RefInflater::new().feed(&[0xff; 8], &mut Vec::new(), 100),
            RefEnd::Corrupt
        );
        let mut out = Vec::new();
        let zeros = miniz_oxide::deflate::compress_to_vec(&[0u8; 100_000], 9);
        assert_eq!(
            RefInflater::new().feed(&zeros, &mut out, 1000),
            RefEnd::Capped
        );
        assert_eq!(out.len(), 1000);
    }
}
