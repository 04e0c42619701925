//! Encoding frames into bytes for the host to write.
//!
//! Small frames are packed one after another into a single buffer, so a
//! burst of messages leaves as one write. Large unmasked payloads are not
//! copied: their `Bytes` is queued behind its header as its own chunk.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::mask::copy_masked;

/// Payloads at least this large are sent without copying (server role).
pub const ZERO_COPY_MIN: usize = 8 * 1024;

/// Capacity of each further buffer when a burst of frames overflows the
/// first one: large enough that a burst leaves in few writes, small enough
/// to stay in cache while it is filled and written.
pub const BURST_CHUNK: usize = 16 * 1024;

/// The outbound side of a connection.
#[derive(Debug, Default)]
pub struct Writer {
    out: BytesMut,
    queue: VecDeque<Bytes>,
    queued: usize,
    /// The capacity `out`'s allocation had when it was made (or last
    /// reclaimed whole). Once drained, `out` only reports what follows the
    /// last chunk taken from it; this is what it can get back.
    whole: usize,
    /// What is left of the buffer the last overflowing burst moved on
    /// from (empty, sharing its allocation): once the host drops the chunks
    /// taken from it, the next overflow reclaims it instead of allocating,
    /// so bursts just over [`BURST_CHUNK`] alternate between two buffers.
    spare: BytesMut,
}

impl Writer {
    /// Bytes waiting to be taken by the host.
    #[inline]
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Makes room for `n` more bytes in `out`.
    ///
    /// A buffer is grown only up to [`BURST_CHUNK`]; past that it is not
    /// (which would copy everything queued so far, again and again for a
    /// long burst): what it holds is queued as a chunk of its own and a
    /// fresh buffer, sized for the burst, takes over. The host gets the chunks in order, one write (or one
    /// `writev`) each.
    #[inline(always)]
    fn reserve(&mut self, n: usize, retain: usize) {
        // The common case, a frame that fits behind the last one, inline;
        // starting over, growing and overflowing out of line.
        if !self.out.is_empty() && self.out.capacity() - self.out.len() >= n {
            return;
        }
        self.make_room(n, retain)
    }

    /// [`Writer::reserve`] when `out` is empty or too full for `n` bytes.
    #[inline(never)]
    fn make_room(&mut self, n: usize, retain: usize) {
        if self.out.is_empty() {
            // A kept buffer starts over from the front of its allocation:
            // asking for all of it reclaims it whole when the host dropped
            // the chunks taken from it (nothing to copy, the buffer is
            // empty), and allocates afresh otherwise.
            let kept = if retain > 0 { self.whole } else { 0 };
            let want = n.max(retain).max(kept);
            if self.out.capacity() < want {
                self.out.reserve(want);
                self.whole = self.out.capacity();
            }
            return;
        }
        if self.out.capacity() - self.out.len() >= n {
            return;
        }
        if self.out.len() + n <= BURST_CHUNK {
            // Small frames keep coalescing into one write; growing a buffer
            // this small copies little.
            self.out.reserve(n);
            self.whole = self.out.capacity();
            return;
        }
        let size = n.max(retain).max(BURST_CHUNK);
        // `split` leaves `out` empty on the same allocation; the spare
        // takes that place, and `reserve` either reclaims the spare's
        // allocation (its chunks are gone) or allocates afresh.
        let full = self.out.split().freeze();
        self.queue.push_back(full);
        std::mem::swap(&mut self.out, &mut self.spare);
        self.out.reserve(size);
        self.whole = self.out.capacity();
    }

    /// Appends raw bytes (handshake responses).
    pub fn raw(&mut self, data: &[u8], retain: usize) {
        self.reserve(data.len(), retain);
        self.out.extend_from_slice(data);
        self.queued += data.len();
    }

    /// Encodes one frame, copying and (if `mask` is set) masking `payload`.
    #[inline(always)]
    pub fn frame(
        &mut self,
        fin: bool,
        opcode: OpCode,
        payload: &[u8],
        mask: Option<[u8; 4]>,
        retain: usize,
    ) {
        self.frame_rsv(fin, 0, opcode, payload, mask, retain)
    }

    /// [`Writer::frame`] with RSV bits (RSV1 = 0b100 marks a compressed
    /// message).
    #[inline(always)]
    pub fn frame_rsv(
        &mut self,
        fin: bool,
        rsv: u8,
        opcode: OpCode,
        payload: &[u8],
        mask: Option<[u8; 4]>,
        retain: usize,
    ) {
        let h = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            len: payload.len() as u64,
        };
        let mut hb = [0u8; MAX_HEADER_LEN];
        let hn = h.encode(&mut hb);
        self.reserve(hn + payload.len(), retain);
        self.out.extend_from_slice(&hb[..hn]);
        match mask {
            Some(key) => {
                let n = payload.len();
                // Masked straight into the buffer: one pass, not a copy and
                // then a second pass to mask it in place.
                copy_masked(&mut self.out.spare_capacity_mut()[..n], payload, key);
                // SAFETY: `reserve` made room for `n` more bytes, and
                // `copy_masked` initialized all `n` of them.
                unsafe { self.out.set_len(self.out.len() + n) };
            }
            None => self.out.extend_from_slice(payload),
        }
        self.queued += hn + payload.len();
    }

    /// Encodes one unmasked frame whose payload is already shared bytes:
    /// large payloads are queued by reference instead of copied.
    pub fn frame_shared(&mut self, fin: bool, opcode: OpCode, payload: Bytes, retain: usize) {
        if payload.len() < ZERO_COPY_MIN {
            return self.frame(fin, opcode, &payload, None, retain);
        }
        let h = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask: None,
            len: payload.len() as u64,
        };
        let mut hb = [0u8; MAX_HEADER_LEN];
        let hn = h.encode(&mut hb);
        self.reserve(hn, retain);
        self.out.extend_from_slice(&hb[..hn]);
        self.queued += hn + payload.len();
        let head = self.out.split().freeze();
        self.queue.push_back(head);
        self.queue.push_back(payload);
    }

    /// Takes the next chunk to write, in order.
    ///
    /// Once everything is taken the buffer is freed, unless `retain` is
    /// non-zero (a busy connection) and its allocation is at most
    /// `retain` or [`BURST_CHUNK`] bytes: a busy connection keeps the
    /// buffer its bursts fill, so steady traffic allocates nothing.
    pub fn pop(&mut self, retain: usize) -> Option<Bytes> {
        let chunk = match self.queue.pop_front() {
            Some(c) => c,
            None if !self.out.is_empty() => self.out.split().freeze(),
            None => return None,
        };
        self.queued -= chunk.len();
        if self.queued == 0 && (retain == 0 || self.whole > retain.max(BURST_CHUNK)) {
            self.out = BytesMut::new();
            self.spare = BytesMut::new();
            self.whole = 0;
        }
        Some(chunk)
    }

    /// Frees the buffers while nothing is queued (an idle connection).
    pub fn release_idle(&mut self) {
        if self.queued == 0 {
            *self = Writer::default();
        }
    }

    /// Frees everything not yet written.
    pub fn clear(&mut self) {
        *self = Writer::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &mut Writer) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(c) = w.pop(0) {
            v.extend_from_slice(&c);
        }
        v
    }

    #[test]
    fn small_frames_coalesce_and_big_ones_are_shared() {
        let mut w = Writer::default();
        w.frame(true, OpCode::Text, b"a", None, 0);
        w.frame(true, OpCode::Text, b"b", None, 0);
        let big = Bytes::from(vec![7u8; ZERO_COPY_MIN]);
        w.frame_shared(true, OpCode::Binary, big.clone(), 0);
        w.frame(true, OpCode::Ping, b"", None, 0);
        assert_eq!(w.queued(), 3 + 3 + 4 + ZERO_COPY_MIN + 2);
        let first = w.pop(0).unwrap();
        assert_eq!(&first[..], b"\x81\x01a\x81\x01b\x82\x7e\x20\x00");
        let second = w.pop(0).unwrap();
        assert_eq!(second.as_ptr(), big.as_ptr(), "payload was copied");
        assert_eq!(&w.pop(0).unwrap()[..], b"\x89\x00");
        assert!(w.pop(0).is_none());
        assert_eq!(w.queued(), 0);
    }

    /// A long burst of masked frames of mixed sizes comes out in order,
    /// each frame byte-exact, in chunks no bigger than needed.
    #[test]
    fn bursts_split_into_bounded_chunks_in_order() {
        let key = [0x11, 0x22, 0x33, 0x44];
        let mut w = Writer::default();
        let mut want = Vec::new();
        for i in 0..100usize {
            let len = [0, 5, 125, 126, 1000, 20_000, 70_000][i % 7];
            let payload: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
            w.frame(true, OpCode::Binary, &payload, Some(key), 4096);
            let h = FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: Some(key),
                len: len as u64,
            };
            let mut hb = [0u8; MAX_HEADER_LEN];
            let hn = h.encode(&mut hb);
            want.extend_from_slice(&hb[..hn]);
            want.extend(payload.iter().enumerate().map(|(j, b)| b ^ key[j & 3]));
        }
        assert_eq!(w.queued(), want.len());
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(c) = w.pop(4096) {
            assert!(
                c.len() <= 70_000 + MAX_HEADER_LEN + BURST_CHUNK,
                "{}",
                c.len()
            );
            got.extend_from_slice(&c);
            chunks += 1;
        }
        assert!(chunks > 1);
        assert_eq!(got, want);
        assert_eq!(w.queued(), 0);
    }

    #[test]
    fn masked_frames_unmask_to_the_payload() {
        let mut w = Writer::default();
        w.frame(
            true,
            OpCode::Text,
            b"Hello",
            Some([0x37, 0xfa, 0x21, 0x3d]),
            0,
        );
        assert_eq!(
            drain(&mut w),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }
}
