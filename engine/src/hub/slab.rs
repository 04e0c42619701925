//! A generational slab: dense storage addressed by `index | generation << 32`.
//!
//! Ids stay small (one `u64`), lookups are one bounds check and one
//! generation compare, and a stale id (its slot reused) is told apart from a
//! live one, so hosts can hold ids past a connection's end without confusing
//! it with the next connection in the same slot.

pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

struct Slot<T> {
    gen: u32,
    val: Option<T>,
}

pub(crate) fn key(idx: u32, gen: u32) -> u64 {
    (idx as u64) | ((gen as u64) << 32)
}

fn split(k: u64) -> (usize, u32) {
    ((k & 0xffff_ffff) as usize, (k >> 32) as u32)
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `val` and returns its key (`None` when 2^32 slots are used).
    pub(crate) fn insert(&mut self, val: T) -> Option<u64> {
        self.len += 1;
        if let Some(i) = self.free.pop() {
            let s = &mut self.slots[i as usize];
            s.gen = s.gen.wrapping_add(1);
            s.val = Some(val);
            return Some(key(i, s.gen));
        }
        let i = u32::try_from(self.slots.len()).ok()?;
        self.slots.push(Slot {
            gen: 0,
            val: Some(val),
        });
        Some(key(i, 0))
    }

    /// The key the next [`Slab::insert`] will return (`None` when full).
    pub(crate) fn vacant_key(&self) -> Option<u64> {
        if let Some(&i) = self.free.last() {
            let gen = self.slots[i as usize].gen.wrapping_add(1);
            return Some(key(i, gen));
        }
        u32::try_from(self.slots.len()).ok().map(|i| key(i, 0))
    }

    pub(crate) fn get(&self, k: u64) -> Option<&T> {
        let (i, g) = split(k);
        match self.slots.get(i) {
            Some(s) if s.gen == g => s.val.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, k: u64) -> Option<&mut T> {
        let (i, g) = split(k);
        match self.slots.get_mut(i) {
            Some(s) if s.gen == g => s.val.as_mut(),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, k: u64) -> Option<T> {
        let (i, g) = split(k);
        let s = self.slots.get_mut(i)?;
        if s.gen != g {
            return None;
        }
        let v = s.val.take()?;
        self.free.push(i as u32);
        self.len -= 1;
        Some(v)
    }

    /// The full key of the live entry in slot `idx`, if any.
    pub(crate) fn key_at(&self, idx: u32) -> Option<u64> {
        let s = self.slots.get(idx as usize)?;
        s.val.as_ref().map(|_| key(idx, s.gen))
    }

    /// Bytes of slot storage reserved (for memory accounting).
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<T>>() + self.free.capacity() * 4
    }

    /// Keys of every live entry (in slot order).
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.val.is_some())
            .map(|(i, s)| key(i as u32, s.gen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_after_reuse() {
        let mut s = Slab::new();
        let a = s.insert("a").unwrap();
        assert_eq!(s.remove(a), Some("a"));
        let next = s.vacant_key();
        let b = s.insert("b").unwrap();
        assert_eq!(next, Some(b), "vacant_key foretells a reused slot");
        assert_eq!(s.vacant_key(), Some(key(1, 0)), "and a new one");
        assert_eq!(a & 0xffff_ffff, b & 0xffff_ffff, "slot reused");
        assert!(s.get(a).is_none());
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.keys().collect::<Vec<_>>(), vec![b]);
    }
}
