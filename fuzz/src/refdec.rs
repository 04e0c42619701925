//! A naive reference decoder for one direction of a connection, to compare
//! the engine's incremental `Reader` against. It sees the whole byte stream
//! at once and re-checks everything from scratch for each frame.

use crate::wire::{legal_close_code, Item};

/// The limits the reader enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest data frame payload.
    pub max_frame: u64,
    /// Largest message, over all its fragments.
    pub max_message: u64,
    /// Most frames in one message (a first frame is always allowed).
    pub max_fragments: u64,
}

/// How the stream ends, as far as the reference can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte was decoded, or the rest is the start of a frame that may
    /// still turn out valid.
    Fine,
    /// The rest starts a frame that can no longer be valid, but its header
    /// is not complete yet: a reader may report it now or wait.
    Doomed(String),
    /// A complete frame, a complete header, or received text is invalid:
    /// a fail-fast reader must have reported an error by now.
    Invalid(String),
}

struct Partial {
    text: bool,
    data: Vec<u8>,
    frames: u64,
}

/// Decodes `bytes` from a peer that must (`masked`) or must not mask.
pub fn decode(bytes: &[u8], masked: bool, lim: &Limits) -> (Vec<Item>, End) {
    let mut out = Vec::new();
    let mut msg: Option<Partial> = None;
    let mut pos = 0;
    loop {
        let b = &bytes[pos..];
        if b.is_empty() {
            return (out, End::Fine);
        }
        let mut doom: Option<String> = None;
        let mut flag = |cond: bool, why: &str| {
            if cond && doom.is_none() {
                doom = Some(why.to_string());
            }
        };
        let fin = b[0] & 0x80 != 0;
        let op = b[0] & 0x0F;
        let control = op & 0x8 != 0;
        flag(b[0] & 0x70 != 0, "reserved bits");
        flag(!matches!(op, 0 | 1 | 2 | 8 | 9 | 10), "reserved opcode");
        flag(control && !fin, "fragmented control frame");
        flag(op == 0 && msg.is_none(), "continuation without a message");
        flag(
            matches!(op, 1 | 2) && msg.is_some(),
            "new message inside a message",
        );
        let partial = |doom: Option<String>| match doom {
            Some(d) => End::Doomed(d),
            None => End::Fine,
        };
        if b.len() < 2 {
            return (out, partial(doom));
        }
        let has_mask = b[1] & 0x80 != 0;
        let len7 = (b[1] & 0x7F) as u64;
        flag(has_mask != masked, "masking");
        let (len, mut hlen) = match len7 {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => {
                let mut x = [0u8; 8];
                x.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(x), 10)
            }
            126 | 127 => return (out, partial(doom)),
            n => (n, 2),
        };
        flag(len >> 63 != 0, "64-bit length with the top bit set");
        // The payload length counts, not its encoding: receivers may accept
        // a length in a longer form than needed.
        flag(control && len > 125, "control frame too long");
        if !control {
            let so_far = msg.as_ref().map_or(0, |m| m.data.len() as u64);
            let frames = msg.as_ref().map_or(0, |m| m.frames);
            flag(len > lim.max_frame, "frame too large");
            flag(
                so_far.saturating_add(len) > lim.max_message,
                "message too large",
            );
            flag(
                op == 0 && frames >= lim.max_fragments.max(1),
                "too many fragments",
            );
        }
        let key = if has_mask {
            if b.len() < hlen + 4 {
                return (out, partial(doom));
            }
            let k = [b[hlen], b[hlen + 1], b[hlen + 2], b[hlen + 3]];
            hlen += 4;
            Some(k)
        } else {
            None
        };
        if let Some(d) = doom {
            return (out, End::Invalid(format!("{d} (header complete)")));
        }
        let avail = ((b.len() - hlen) as u64).min(len) as usize;
        let mut payload = b[hlen..hlen + avail].to_vec();
        if let Some(k) = key {
            for (i, x) in payload.iter_mut().enumerate() {
                *x ^= k[i % 4];
            }
        }
        let text = op == 1 || (op == 0 && msg.as_ref().is_some_and(|m| m.text));
        if text {
            let mut so_far = msg.as_ref().map_or(Vec::new(), |m| m.data.clone());
            so_far.extend_from_slice(&payload);
            if let Err(e) = std::str::from_utf8(&so_far) {
                if e.error_len().is_some() {
                    return (out, End::Invalid("text is not UTF-8 (fail fast)".into()));
                }
            }
        }
        if (avail as u64) < len {
            return (out, End::Fine);
        }
        pos += hlen + avail;
        match op {
            8 => match payload.len() {
                0 => out.push(Item::Close(None)),
                1 => return (out, End::Invalid("one-byte close payload".into())),
                _ => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    if !legal_close_code(code) {
                        return (out, End::Invalid(format!("close code {code}")));
                    }
                    if std::str::from_utf8(&payload[2..]).is_err() {
                        return (out, End::Invalid("close reason not UTF-8".into()));
                    }
                    out.push(Item::Close(Some((code, payload[2..].to_vec()))));
                }
            },
            9 => out.push(Item::Ping(payload)),
            10 => out.push(Item::Pong(payload)),
            _ => {
                let m = msg.get_or_insert(Partial {
                    text: op == 1,
                    data: Vec::new(),
                    frames: 0,
                });
                m.data.extend_from_slice(&payload);
                m.frames += 1;
                if fin {
                    let m = msg.take().unwrap();
                    if m.text && std::str::from_utf8(&m.data).is_err() {
                        return (out, End::Invalid("text message not UTF-8".into()));
                    }
                    out.push(Item::Message {
                        text: m.text,
                        data: m.data,
                    });
                }
            }
        }
    }
}
