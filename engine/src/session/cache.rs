//! A bounded cache of replies keyed by application idempotency key.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// A cached reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedReply {
    /// Encoded reply data.
    pub data: Bytes,
    /// Whether it was an error reply (`evs/rerr`).
    pub error: bool,
    at: u64,
}

/// Recent replies keyed by idempotency key, bounded by count and age.
///
/// Within one session the engine de-duplicates by reliable id on its own.
/// Across sessions (a page reload, a session that could not be resumed) it
/// cannot: the client retries with the same idempotency key in a new
/// session. A server host keeps one `ReplyCache` per user or tenant (outside
/// any one [`Session`](super::Session)); on
/// [`SessionEvent::Request`](super::SessionEvent::Request) with a key it
/// looks the key up and, on a hit, answers with the cached reply instead of
/// applying the request again; otherwise it stores the reply it sends.
#[derive(Clone, Debug)]
pub struct ReplyCache {
    max_entries: usize,
    max_age_ms: u64,
    map: HashMap<Box<str>, CachedReply>,
    order: VecDeque<(u64, Box<str>)>,
}

impl ReplyCache {
    /// A cache holding at most `max_entries` replies for at most
    /// `max_age_ms` each.
    pub fn new(max_entries: usize, max_age_ms: u64) -> Self {
        ReplyCache {
            max_entries: max_entries.max(1),
            max_age_ms,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Number of cached replies.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The cached reply for `key`, if it is still within the window.
    pub fn get(&mut self, now_ms: u64, key: &str) -> Option<&CachedReply> {
        self.expire(now_ms);
        self.map.get(key)
    }

    /// Stores the reply sent for `key` (replacing an older one).
    pub fn insert(&mut self, now_ms: u64, key: &str, data: Bytes, error: bool) {
        self.expire(now_ms);
        if self.map.contains_key(key) {
            // Replacing: forget the old position (bounded by max_entries).
            self.order.retain(|(_, k)| &**k != key);
        }
        self.map.insert(
            key.into(),
            CachedReply {
                data,
                error,
                at: now_ms,
            },
        );
        self.order.push_back((now_ms, key.into()));
        while self.map.len() > self.max_entries {
            self.pop_oldest();
        }
    }

    /// When the oldest entry expires.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.order
            .front()
            .map(|(at, _)| at.saturating_add(self.max_age_ms))
    }

    /// Drops entries older than the window.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(self.max_age_ms) > now_ms {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((at, k)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|e| e.at == at) {
                self.map.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count_and_age() {
        let mut c = ReplyCache::new(2, 100);
        c.insert(0, "a", Bytes::from_static(b"1"), false);
        c.insert(10, "b", Bytes::from_static(b"2"), false);
        c.insert(20, "c", Bytes::from_static(b"3"), true);
        assert_eq!(c.len(), 2);
        assert!(c.get(20, "a").is_none());
        assert_eq!(&c.get(20, "b").unwrap().data[..], b"2");
        assert!(c.get(20, "c").unwrap().error);
        assert_eq!(c.poll_timeout(), Some(110));
        assert!(c.get(110, "b").is_none());
        assert!(c.get(110, "c").is_some());
        assert!(c.get(120, "c").is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn replacing_a_key_keeps_it_fresh() {
        let mut c = ReplyCache::new(10, 100);
        c.insert(0, "a", Bytes::from_static(b"1"), false);
        c.insert(50, "a", Bytes::from_static(b"2"), false);
        assert_eq!(&c.get(120, "a").unwrap().data[..], b"2");
        for i in 0..100 {
            c.insert(120, "a", Bytes::from_static(b"3"), false);
            assert_eq!(c.order.len(), 1, "{i}");
        }
    }
}
