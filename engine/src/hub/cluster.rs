//! The messages hubs exchange through a pub/sub bus (Redis in the example
//! host) to share rooms, users and presence between nodes.
//!
//! A small length-prefixed binary format, so that application data (already
//! encoded JSON) is carried verbatim, decoding is bounded and every defect is
//! a typed [`ClusterError`]:
//!
//! ```text
//! "EV" version(=1) kind(u8) node(u8 len + bytes) body...
//! str8  = u8 length + bytes      str16 = u16 BE length + bytes
//! blob  = u32 BE length + bytes
//! kind 1 room message:  room str16, event str8, delivery, data blob
//! kind 2 user message:  user str16, event str8, delivery, data blob
//! kind 3 to everyone:   event str8, delivery, data blob
//! kind 4 presence:      room str16, user str16, online u8
//! kind 5 sync request:  room str16
//! kind 6 snapshot:      room str16, count u32, count x user str16
//! kind 7 heartbeat
//! delivery = 0 reliable | 1 volatile | 2 latest + u64 BE key
//! ```
//!
//! Every message names the node that sent it, so a hub drops its own echoes
//! (pub/sub delivers to every subscriber, the publisher included).

use super::Delivery;
use bytes::Bytes;
use std::fmt;

const MAGIC: &[u8; 2] = b"EV";
const VERSION: u8 = 1;

/// Longest node id.
pub const MAX_NODE_ID_LEN: usize = 64;

/// A decoded cluster message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Remote {
    Room {
        room: String,
        event: String,
        delivery: Delivery,
        data: Bytes,
    },
    User {
        user: String,
        event: String,
        delivery: Delivery,
        data: Bytes,
    },
    All {
        event: String,
        delivery: Delivery,
        data: Bytes,
    },
    Presence {
        room: String,
        user: String,
        online: bool,
    },
    SyncRequest {
        room: String,
    },
    Snapshot {
        room: String,
        users: Vec<String>,
    },
    Heartbeat,
}

/// Why a message from another node was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterError {
    /// It does not start with the `EV` magic.
    BadMagic,
    /// It speaks another version of the cluster format.
    Version(u8),
    /// An unknown message kind.
    UnknownKind(u8),
    /// It ends in the middle of a field.
    Truncated,
    /// Bytes follow the last field.
    TrailingBytes,
    /// A text field is not UTF-8, or a field is out of range.
    BadField(&'static str),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::BadMagic => f.write_str("not a cluster message"),
            ClusterError::Version(v) => write!(f, "unsupported cluster format version {v}"),
            ClusterError::UnknownKind(k) => write!(f, "unknown cluster message kind {k}"),
            ClusterError::Truncated => f.write_str("truncated cluster message"),
            ClusterError::TrailingBytes => f.write_str("bytes after the cluster message"),
            ClusterError::BadField(w) => write!(f, "bad field in cluster message: {w}"),
        }
    }
}

impl std::error::Error for ClusterError {}

struct W(Vec<u8>);

impl W {
    fn str8(&mut self, s: &str) {
        let s = &s.as_bytes()[..s.len().min(255)];
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s);
    }
    fn str16(&mut self, s: &str) {
        let s = &s.as_bytes()[..s.len().min(65535)];
        self.0.extend_from_slice(&(s.len() as u16).to_be_bytes());
        self.0.extend_from_slice(s);
    }
    fn blob(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
    }
    fn delivery(&mut self, d: Delivery) {
        match d {
            Delivery::Reliable => self.0.push(0),
            Delivery::Volatile => self.0.push(1),
            Delivery::Latest(k) => {
                self.0.push(2);
                self.0.extend_from_slice(&k.to_be_bytes());
            }
        }
    }
}

pub(crate) fn encode(node: &str, m: &Remote) -> Bytes {
    let hint = match m {
        Remote::Room { data, .. } | Remote::User { data, .. } | Remote::All { data, .. } => {
            data.len() + 128
        }
        _ => 96,
    };
    let mut w = W(Vec::with_capacity(hint));
    w.0.extend_from_slice(MAGIC);
    w.0.push(VERSION);
    let kind = match m {
        Remote::Room { .. } => 1,
        Remote::User { .. } => 2,
        Remote::All { .. } => 3,
        Remote::Presence { .. } => 4,
        Remote::SyncRequest { .. } => 5,
        Remote::Snapshot { .. } => 6,
        Remote::Heartbeat => 7,
    };
    w.0.push(kind);
    w.str8(node);
    match m {
        Remote::Room {
            room,
            event,
            delivery,
            data,
        } => {
            w.str16(room);
            w.str8(event);
            w.delivery(*delivery);
            w.blob(data);
        }
        Remote::User {
            user,
            event,
            delivery,
            data,
        } => {
            w.str16(user);
            w.str8(event);
            w.delivery(*delivery);
            w.blob(data);
        }
        Remote::All {
            event,
            delivery,
            data,
        } => {
            w.str8(event);
            w.delivery(*delivery);
            w.blob(data);
        }
        Remote::Presence { room, user, online } => {
            w.str16(room);
            w.str16(user);
            w.0.push(*online as u8);
        }
        Remote::SyncRequest { room } => w.str16(room),
        Remote::Snapshot { room, users } => {
            w.str16(room);
            w.0.extend_from_slice(&(users.len() as u32).to_be_bytes());
            for u in users {
                w.str16(u);
            }
        }
        Remote::Heartbeat => {}
    }
    Bytes::from(w.0)
}

struct R<'a> {
    b: &'a [u8],
    whole: &'a Bytes,
    p: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ClusterError> {
        let end = self.p.checked_add(n).ok_or(ClusterError::Truncated)?;
        let s = self.b.get(self.p..end).ok_or(ClusterError::Truncated)?;
        self.p = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ClusterError> {
        Ok(self.take(1)?[0])
    }
    fn text(&mut self, n: usize, what: &'static str) -> Result<String, ClusterError> {
        let s = self.take(n)?;
        std::str::from_utf8(s)
            .map(str::to_owned)
            .map_err(|_| ClusterError::BadField(what))
    }
    fn str8(&mut self, what: &'static str) -> Result<String, ClusterError> {
        let n = self.u8()? as usize;
        self.text(n, what)
    }
    fn str16(&mut self, what: &'static str) -> Result<String, ClusterError> {
        let b = self.take(2)?;
        let n = u16::from_be_bytes([b[0], b[1]]) as usize;
        self.text(n, what)
    }
    fn u32(&mut self) -> Result<u32, ClusterError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn blob(&mut self) -> Result<Bytes, ClusterError> {
        let n = self.u32()? as usize;
        let start = self.p;
        self.take(n)?;
        Ok(self.whole.slice(start..start + n))
    }
    fn delivery(&mut self) -> Result<Delivery, ClusterError> {
        Ok(match self.u8()? {
            0 => Delivery::Reliable,
            1 => Delivery::Volatile,
            2 => {
                let b = self.take(8)?;
                let mut k = [0u8; 8];
                k.copy_from_slice(b);
                Delivery::Latest(u64::from_be_bytes(k))
            }
            _ => return Err(ClusterError::BadField("delivery")),
        })
    }
}

/// Decodes a message; returns the sending node and the message. Data
/// elements share `bytes`.
pub(crate) fn decode(bytes: &Bytes) -> Result<(String, Remote), ClusterError> {
    let mut r = R {
        b: bytes,
        whole: bytes,
        p: 0,
    };
    if r.take(2).map_err(|_| ClusterError::BadMagic)? != MAGIC {
        return Err(ClusterError::BadMagic);
    }
    let v = r.u8()?;
    if v != VERSION {
        return Err(ClusterError::Version(v));
    }
    let kind = r.u8()?;
    let node = r.str8("node")?;
    let m = match kind {
        1 => Remote::Room {
            room: r.str16("room")?,
            event: r.str8("event")?,
            delivery: r.delivery()?,
            data: r.blob()?,
        },
        2 => Remote::User {
            user: r.str16("user")?,
            event: r.str8("event")?,
            delivery: r.delivery()?,
            data: r.blob()?,
        },
        3 => Remote::All {
            event: r.str8("event")?,
            delivery: r.delivery()?,
            data: r.blob()?,
        },
        4 => Remote::Presence {
            room: r.str16("room")?,
            user: r.str16("user")?,
            online: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(ClusterError::BadField("online")),
            },
        },
        5 => Remote::SyncRequest {
            room: r.str16("room")?,
        },
        6 => {
            let room = r.str16("room")?;
            let n = r.u32()? as usize;
            // Each user takes at least two bytes: refuse counts the message
            // cannot hold before allocating for them.
            if n > (bytes.len() - r.p) / 2 {
                return Err(ClusterError::Truncated);
            }
            let mut users = Vec::with_capacity(n);
            for _ in 0..n {
                users.push(r.str16("user")?);
            }
            Remote::Snapshot { room, users }
        }
        7 => Remote::Heartbeat,
        k => return Err(ClusterError::UnknownKind(k)),
    };
    if r.p != bytes.len() {
        return Err(ClusterError::TrailingBytes);
    }
    Ok((node, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        let msgs = vec![
            Remote::Room {
                room: "lobby".into(),
                event: "chat/msg".into(),
                delivery: Delivery::Reliable,
                data: Bytes::from_static(b"{\"a\":1}"),
            },
            Remote::User {
                user: "bob".into(),
                event: "x/y".into(),
                delivery: Delivery::Latest(9),
                data: Bytes::from_static(b"1"),
            },
            Remote::All {
                event: "x/y".into(),
                delivery: Delivery::Volatile,
                data: Bytes::new(),
            },
            Remote::Presence {
                room: "r".into(),
                user: "u".into(),
                online: true,
            },
            Remote::SyncRequest { room: "r".into() },
            Remote::Snapshot {
                room: "r".into(),
                users: vec!["a".into(), "b".into()],
            },
            Remote::Heartbeat,
        ];
        for m in msgs {
            let b = encode("node-1", &m);
            assert_eq!(decode(&b).unwrap(), ("node-1".to_string(), m.clone()));
            for cut in 0..b.len() {
                assert!(decode(&b.slice(..cut)).is_err(), "{m:?} cut at {cut}");
            }
            let mut long = b.to_vec();
            long.push(0);
            assert_eq!(decode(&Bytes::from(long)), Err(ClusterError::TrailingBytes));
        }
        assert_eq!(
            decode(&Bytes::from_static(b"XX\x01\x07\x00")),
            Err(ClusterError::BadMagic)
        );
        assert_eq!(
            decode(&Bytes::from_static(b"EV\x02\x07\x00")),
            Err(ClusterError::Version(2))
        );
        assert_eq!(
            decode(&Bytes::from_static(b"EV\x01\x63\x00")),
            Err(ClusterError::UnknownKind(0x63))
        );
        // A snapshot claiming four billion users is refused up front.
        assert_eq!(
            decode(&Bytes::from_static(
                b"EV\x01\x06\x00\x00\x01r\xff\xff\xff\xff"
            )),
            Err(ClusterError::Truncated)
        );
    }
}
