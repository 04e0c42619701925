//! Deadlines for many entities without scanning them.
//!
//! A binary min-heap of `(deadline, entity key)` with lazy invalidation.
//! Each entity remembers the earliest deadline it has in the heap
//! (`scheduled`). After an entity is touched the hub recomputes its next
//! deadline and pushes a new entry **only if it is earlier** than the one
//! already scheduled; a later deadline is left for the existing entry, which
//! then fires early, finds nothing due, and reschedules. Entries for removed
//! entities, or superseded by an earlier push, are skipped when popped.
//!
//! So every operation is O(log n), `next()` is O(1), and the heap holds about
//! one entry per entity: an idle connection whose ping deadline moves forward
//! with every message costs no heap work at all until it comes due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The kind of entity a timer belongs to, in the top two bits of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Conn = 0,
    Client = 1,
    User = 2,
    Hub = 3,
}

/// No deadline.
pub(crate) const NEVER: u64 = u64::MAX;

const KIND_SHIFT: u32 = 62;
const KEY_MASK: u64 = (1 << KIND_SHIFT) - 1;

pub(crate) fn tag(kind: Kind, key: u64) -> u64 {
    // Slab keys use 32 bits of index and 32 of generation; the generation's
    // top two bits are given up here (a collision needs 2^30 reuses of one
    // slot between two pops of a stale entry, and then costs one spurious
    // wake-up).
    ((kind as u64) << KIND_SHIFT) | (key & KEY_MASK)
}

pub(crate) fn untag(t: u64) -> (Kind, u64) {
    let kind = match t >> KIND_SHIFT {
        0 => Kind::Conn,
        1 => Kind::Client,
        2 => Kind::User,
        _ => Kind::Hub,
    };
    (kind, t & KEY_MASK)
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
}

impl Timers {
    /// Schedules `tagged` at `at` if that is earlier than `*scheduled`.
    pub(crate) fn arm(&mut self, scheduled: &mut u64, at: Option<u64>, tagged: u64) {
        if let Some(at) = at {
            if at < *scheduled {
                *scheduled = at;
                self.heap.push(Reverse((at, tagged)));
            }
        }
    }

    /// The earliest entry's deadline (possibly stale: a wake-up then finds
    /// nothing to do).
    pub(crate) fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops one entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(u64, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn capacity_bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Reverse<(u64, u64)>>()
    }
}

/// `key`'s entry fired: does it still stand for the entity's schedule?
pub(crate) fn is_current(scheduled: u64, fired_at: u64) -> bool {
    scheduled == fired_at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_earlier_deadlines_are_pushed() {
        let mut t = Timers::default();
        let mut s = NEVER;
        let k = tag(Kind::Client, 7);
        t.arm(&mut s, Some(100), k);
        t.arm(&mut s, Some(200), k); // later: left to the existing entry
        t.arm(&mut s, Some(50), k);
        assert_eq!(t.len(), 2);
        assert_eq!(t.next(), Some(50));
        assert_eq!(t.pop_due(49), None);
        let (at, key) = t.pop_due(60).unwrap();
        assert_eq!((at, untag(key)), (50, (Kind::Client, 7)));
        assert!(is_current(s, at));
        s = NEVER;
        let (at, _) = t.pop_due(100).unwrap();
        assert!(!is_current(s, at), "superseded entry is stale");
    }
}
