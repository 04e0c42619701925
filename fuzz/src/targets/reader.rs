//! The frame reader against the naive reference decoder in `refdec`, on the
//! same bytes cut into arbitrary chunks: same units in the same order, an
//! error exactly when the reference finds the stream invalid (allowing the
//! reader to report a doomed frame before its header is complete), and never
//! more memory held than the limits allow.

use arbitrary::{Arbitrary, Unstructured};
use evsock::ws::reader::{Incoming, Reader};
use evsock::ws::{Config, Message};

use crate::gen::{chunks, FrameSpec};
use crate::refdec::{self, End};
use crate::wire::Item;
use crate::{ensure, Stop};

#[derive(Arbitrary, Debug)]
struct Params {
    /// Bit 0: the peer is a client (frames masked). Bit 1: the stream is
    /// built from frame specs rather than taken raw. Bit 2: pieces are
    /// received into the reader's room (`room`/`commit`) rather than
    /// copied in with `extend`; bit 3: the two alternate, piece by piece.
    flags: u8,
    max_frame: u16,
    max_message: u16,
    max_fragments: u8,
    retain: u16,
    sizes: [u8; 3],
}

fn item(i: Incoming) -> Item {
    match i {
        Incoming::Message(Message::Text(t)) => Item::Message {
            text: true,
            data: t.into_bytes().to_vec(),
        },
        Incoming::Message(Message::Binary(b)) => Item::Message {
            text: false,
            data: b.to_vec(),
        },
        Incoming::Ping(p) => Item::Ping(p.to_vec()),
        Incoming::Pong(p) => Item::Pong(p.to_vec()),
        Incoming::Close(c) => Item::Close(c.map(|(code, r)| (code.0, r.into_bytes()))),
    }
}

/// The target. Parameters first, then the wire bytes (raw, or frame specs).
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    let mut u = Unstructured::new(data);
    let Ok(p) = Params::arbitrary(&mut u) else {
        return Ok(());
    };
    let masked = p.flags & 1 == 1;
    let wire: Vec<u8> = if p.flags & 2 == 2 {
        let specs: Vec<FrameSpec> = Vec::arbitrary_take_rest(u).unwrap_or_default();
        specs.iter().flat_map(|s| s.bytes(masked)).collect()
    } else {
        u.take_rest().to_vec()
    };
    let cfg = Config {
        max_frame_size: p.max_frame as usize,
        max_message_size: p.max_message as usize,
        max_fragments: p.max_fragments as usize,
        ..Config::default()
    };
    let lim = refdec::Limits {
        max_frame: p.max_frame as u64,
        max_message: p.max_message as u64,
        max_fragments: p.max_fragments as u64,
    };
    let (want, end) = refdec::decode(&wire, masked, &lim);
    let sizes: Vec<u8> = p.sizes.iter().copied().filter(|&s| s != 0xFF).collect();

    let mut r = Reader::new(masked);
    let mut got = Vec::new();
    let mut error = None;
    'feed: for (i, piece) in chunks(&wire, &sizes).enumerate() {
        let in_place = p.flags & 4 == 4 && (p.flags & 8 == 0 || i % 2 == 0);
        if in_place {
            // As many reads as the room needs; the bytes past what is
            // committed are garbage that must never show up.
            let mut rest = piece;
            while !rest.is_empty() {
                let room = r.room(p.retain as usize);
                ensure!(
                    !room.is_empty(),
                    "reader-room",
                    "an empty room with bytes to come"
                );
                let k = room.len().min(rest.len());
                room[..k].copy_from_slice(&rest[..k]);
                room[k..].fill(0xA5);
                ensure!(
                    r.commit(k) == k,
                    "reader-room",
                    "commit took less than was written"
                );
                rest = &rest[k..];
            }
        } else {
            r.extend(piece, p.retain as usize, cfg.max_frame_size);
        }
        loop {
            match r.next(&cfg) {
                Ok(Some(i)) => got.push(item(i)),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
            ensure!(
                r.message_bytes() <= cfg.max_message_size,
                "reader-memory",
                "{} bytes of an unfinished message held, limit {}",
                r.message_bytes(),
                cfg.max_message_size
            );
        }
        // Drained: what is left is at most one unfinished frame.
        let bound = cfg.max_frame_size.max(125) + 14;
        ensure!(
            r.buffered().len() <= bound,
            "reader-memory",
            "{} bytes buffered after draining, bound {bound}",
            r.buffered().len()
        );
        r.release(p.retain as usize);
    }
    ensure!(
        got == want,
        "reader-vs-reference",
        "reader produced {got:?}, reference {want:?} ({end:?}, reader error {error:?}); wire {wire:02x?}"
    );
    match (&end, &error) {
        (End::Fine, None) | (End::Doomed(_), None) => {}
        (End::Invalid(_), Some(_)) | (End::Doomed(_), Some(_)) => {}
        (End::Invalid(why), None) => {
            return Err(crate::findings::violation(
                "reader-missed-error",
                format!("reference finds the stream invalid ({why}) but the reader accepted it; got {got:?}; wire {wire:02x?}"),
            ))
        }
        (End::Fine, Some(e)) => {
            return Err(crate::findings::violation(
                "reader-false-error",
                format!("reader failed with {e:?} on a stream the reference accepts; got {got:?}; wire {wire:02x?}"),
            ))
        }
    }
    Ok(())
}
