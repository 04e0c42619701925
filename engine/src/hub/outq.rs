//! The outbound queue of one connection, where the slow-consumer policy
//! acts.
//!
//! The hub hands a connection's bytes to the host only while less than the
//! send window is unwritten (the host reports writes with
//! [`Hub::handle_written`](super::Hub::handle_written)). Everything else
//! waits here, one entry per WebSocket frame, so that whole messages can be
//! dropped or replaced without corrupting the stream.

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// What may happen to a queued frame under pressure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Handshake bytes, control frames and session frames (which may carry
    /// reliable envelopes): never dropped from the queue.
    Keep,
    /// A fire-and-forget frame: may be dropped.
    Volatile,
    /// A fire-and-forget frame that a newer one with the same key replaces.
    Latest(u64),
}

#[derive(Debug)]
struct Entry {
    bytes: Bytes,
    class: Class,
}

/// Empty (the usual case: the hub hands frames straight to the host while
/// the send window is open) it is one null pointer; the queue is boxed only
/// while frames wait.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    inner: Option<Box<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    q: VecDeque<Entry>,
    bytes: usize,
}

/// Frames smaller than this are coalesced into one transmit.
const COALESCE_MAX: usize = 16 * 1024;

impl OutQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.bytes)
    }

    /// Appends a frame. A `Latest(k)` frame first removes the queued frame
    /// with the same key (returns how many bytes that freed, if any).
    pub(crate) fn push(&mut self, bytes: Bytes, class: Class) -> Option<usize> {
        self.inner
            .get_or_insert_with(Box::default)
            .push(bytes, class)
    }

    /// Drops the oldest droppable frames until at most `limit` bytes are
    /// queued. Returns the number of frames dropped.
    pub(crate) fn shed(&mut self, limit: usize) -> usize {
        let Some(i) = self.inner.as_deref_mut() else {
            return 0;
        };
        let n = i.shed(limit);
        if i.q.is_empty() {
            self.inner = None;
        }
        n
    }

    /// Forgets everything queued (the connection is being cut).
    pub(crate) fn clear(&mut self) {
        self.inner = None;
    }

    /// Takes the next transmit of at most `budget` bytes (at least one
    /// frame, whatever its size, so that a large frame cannot stall).
    /// Small frames are coalesced into one buffer: one copy each, and one
    /// write for the host instead of many.
    pub(crate) fn pop(&mut self, budget: usize) -> Option<Bytes> {
        let i = self.inner.as_deref_mut()?;
        let out = i.pop(budget);
        if i.q.is_empty() {
            self.inner = None; // idle connections keep no queue
        }
        out
    }
}

impl Inner {
    /// Appends a frame. A `Latest(k)` frame first removes the queued frame
    /// with the same key (returns how many bytes that freed, if any).
    fn push(&mut self, bytes: Bytes, class: Class) -> Option<usize> {
        let mut replaced = None;
        if let Class::Latest(k) = class {
            if let Some(pos) = self.q.iter().position(|e| e.class == Class::Latest(k)) {
                if let Some(old) = self.q.remove(pos) {
                    self.bytes -= old.bytes.len();
                    replaced = Some(old.bytes.len());
                }
            }
        }
        self.bytes += bytes.len();
        self.q.push_back(Entry { bytes, class });
        replaced
    }

    /// Drops the oldest droppable frames until at most `limit` bytes are
    /// queued. Returns the number of frames dropped.
    fn shed(&mut self, limit: usize) -> usize {
        if self.bytes <= limit {
            return 0;
        }
        let mut dropped = 0;
        let mut i = 0;
        while self.bytes > limit && i < self.q.len() {
            if self.q[i].class == Class::Keep {
                i += 1;
                continue;
            }
            if let Some(e) = self.q.remove(i) {
                self.bytes -= e.bytes.len();
                dropped += 1;
            }
        }
        dropped
    }

    /// Takes the next transmit of at most `budget` bytes (at least one
    /// frame, whatever its size, so that a large frame cannot stall).
    /// Small frames are coalesced into one buffer: one copy each, and one
    /// write for the host instead of many.
    fn pop(&mut self, budget: usize) -> Option<Bytes> {
        let first = self.q.pop_front()?;
        self.bytes -= first.bytes.len();
        let budget = budget.min(COALESCE_MAX);
        let fits = |n: usize, e: &Entry| n + e.bytes.len() <= budget;
        let out = match self.q.front() {
            Some(next) if fits(first.bytes.len(), next) => {
                let mut buf = BytesMut::with_capacity(budget);
                buf.extend_from_slice(&first.bytes);
                while let Some(next) = self.q.front() {
                    if !fits(buf.len(), next) {
                        break;
                    }
                    let e = self.q.pop_front().expect("front exists");
                    self.bytes -= e.bytes.len();
                    buf.extend_from_slice(&e.bytes);
                }
                buf.freeze()
            }
            _ => first.bytes,
        };
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn shed_keeps_session_frames_and_latest_replaces() {
        let mut q = OutQueue::default();
        q.push(b("keep1"), Class::Keep);
        q.push(b("vol-1"), Class::Volatile);
        assert_eq!(q.push(b("L7-a"), Class::Latest(7)), None);
        q.push(b("keep2"), Class::Keep);
        assert_eq!(q.push(b("L7-b"), Class::Latest(7)), Some(4));
        assert_eq!(q.bytes(), 5 + 5 + 5 + 4);
        assert_eq!(q.shed(15), 1, "oldest volatile goes first");
        assert_eq!(q.shed(10), 1);
        assert_eq!(q.shed(0), 0, "keep frames are never shed");
        assert_eq!(q.bytes(), 10);
        assert_eq!(&q.pop(1000).unwrap()[..], b"keep1keep2");
        assert!(q.is_empty());
    }

    #[test]
    fn single_frames_are_not_copied() {
        let mut q = OutQueue::default();
        let big = Bytes::from(vec![1u8; 100]);
        q.push(big.clone(), Class::Volatile);
        q.push(b("x"), Class::Keep);
        let out = q.pop(50).unwrap();
        assert_eq!(out.as_ptr(), big.as_ptr());
        assert_eq!(&q.pop(50).unwrap()[..], b"x");
        assert!(q.pop(50).is_none());
    }
}
