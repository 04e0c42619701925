//! Encoding frames into bytes for the host to write.
//!
//! Small frames are packed one after another into a single buffer, so a
//! burst of messages leaves as one write. Large unmasked payloads are not
//! copied: their `Bytes` is queued behind its header as its own chunk.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::mask::apply_mask;

/// Payloads at least this large are sent without copying (server role).
pub const ZERO_COPY_MIN: usize = 8 * 1024;

/// The outbound side of a connection.
#[derive(Debug, Default)]
pub struct Writer {
    out: BytesMut,
    queue: VecDeque<Bytes>,
    queued: usize,
}

impl Writer {
    /// Bytes waiting to be taken by the host.
    #[inline]
    pub fn queued(&self) -> usize {
        self.queued
    }

    fn reserve(&mut self, n: usize, retain: usize) {
        if self.out.capacity() == 0 {
            self.out.reserve(n.max(retain));
        } else {
            self.out.reserve(n);
        }
    }

    /// Appends raw bytes (handshake responses).
    pub fn raw(&mut self, data: &[u8], retain: usize) {
        self.reserve(data.len(), retain);
        self.out.extend_from_slice(data);
        self.queued += data.len();
    }

    /// Encodes one frame, copying and (if `mask` is set) masking `payload`.
    #[inline]
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
    #[inline]
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
        let start = self.out.len();
        self.out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.out[start..], key, 0);
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
    pub fn pop(&mut self, retain: usize) -> Option<Bytes> {
        let chunk = match self.queue.pop_front() {
            Some(c) => c,
            None if !self.out.is_empty() => self.out.split().freeze(),
            None => return None,
        };
        self.queued -= chunk.len();
        if self.queued == 0 && self.out.capacity() > retain {
            self.out = BytesMut::new();
        }
        Some(chunk)
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
