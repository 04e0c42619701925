//! Building the inputs every contender is fed: client frames encoded here,
//! independently of any implementation under test, so all of them parse
//! byte-for-byte the same stream.

/// A fixed upgrade request (the RFC 6455 sample key).
pub const UPGRADE_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: localhost\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// Frame opcodes used by the workloads.
pub const OP_CONT: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Ping frame.
pub const OP_PING: u8 = 0x9;

/// A small deterministic generator (xorshift64*), so inputs are the same in
/// every run and every process.
#[derive(Clone, Debug)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Lcg(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random masking key.
    pub fn key(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_le_bytes()
    }
}

/// Appends one frame. `mask` is applied byte by byte (the reference way).
pub fn push_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        out.push(m | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(m | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i & 3]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// Chat-like UTF-8 text of exactly `len` bytes: mostly ASCII, with a
/// two-byte and a three-byte character now and then, as in real messages.
pub fn text_payload(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "hello",
        "world",
        "event",
        "vector",
        "{\"id\":",
        "42",
        "},",
        "café",
        "naïve",
        "über",
        "→",
        "ok",
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dog",
        "message",
        "payload",
        "timestamp",
        "user",
        "room",
    ];
    let mut rng = Lcg::new(seed);
    let mut s = String::with_capacity(len + 8);
    while s.len() < len {
        let w = WORDS[(rng.next_u64() % WORDS.len() as u64) as usize];
        if s.len() + w.len() + 1 > len {
            break;
        }
        s.push_str(w);
        s.push(' ');
    }
    while s.len() < len {
        s.push('.');
    }
    debug_assert_eq!(s.len(), len);
    s.into_bytes()
}

/// Binary noise of `len` bytes.
pub fn binary_payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Lcg::new(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// What a stream of client frames should decode to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// Whole data messages.
    pub messages: u64,
    /// Payload bytes over those messages.
    pub payload_bytes: u64,
    /// Pings (each owes a pong).
    pub pings: u64,
}

/// A server-side input: masked client frames, as they arrive on the wire.
#[derive(Clone, Debug)]
pub struct Inbound {
    /// The wire bytes (no handshake).
    pub wire: Vec<u8>,
    /// What they decode to.
    pub expect: Expect,
    /// How many bytes one read of the transport hands over.
    pub read_size: usize,
}

/// `count` single-frame messages of `len` bytes each.
pub fn messages(text: bool, len: usize, count: usize, read_size: usize) -> Inbound {
    let payload = if text {
        text_payload(len, 7)
    } else {
        binary_payload(len, 7)
    };
    let mut rng = Lcg::new(11);
    let mut wire = Vec::with_capacity(count * (len + 14));
    for _ in 0..count {
        let op = if text { OP_TEXT } else { OP_BINARY };
        push_frame(&mut wire, true, op, &payload, Some(rng.key()));
    }
    Inbound {
        wire,
        expect: Expect {
            messages: count as u64,
            payload_bytes: (count * len) as u64,
            pings: 0,
        },
        read_size,
    }
}

/// `count` text messages of `len` bytes, each sent as `fragments` frames.
/// Cuts fall wherever the byte count says, even inside a character, as
/// real senders are allowed to do.
pub fn fragmented(len: usize, fragments: usize, count: usize, read_size: usize) -> Inbound {
    let payload = text_payload(len, 9);
    let piece = len.div_ceil(fragments);
    let mut rng = Lcg::new(13);
    let mut wire = Vec::with_capacity(count * (len + 14 * fragments));
    for _ in 0..count {
        let chunks: Vec<&[u8]> = payload.chunks(piece).collect();
        for (i, c) in chunks.iter().enumerate() {
            let op = if i == 0 { OP_TEXT } else { OP_CONT };
            push_frame(&mut wire, i + 1 == chunks.len(), op, c, Some(rng.key()));
        }
    }
    Inbound {
        wire,
        expect: Expect {
            messages: count as u64,
            payload_bytes: (count * len) as u64,
            pings: 0,
        },
        read_size,
    }
}

/// `count` pings with an 8-byte payload (a keep-alive counter), one per read.
pub fn pings(count: usize) -> Inbound {
    let mut rng = Lcg::new(17);
    let mut wire = Vec::with_capacity(count * 14);
    for i in 0..count as u64 {
        push_frame(&mut wire, true, OP_PING, &i.to_be_bytes(), Some(rng.key()));
    }
    Inbound {
        wire,
        expect: Expect {
            messages: 0,
            payload_bytes: 0,
            pings: count as u64,
        },
        read_size: 14,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_asked_length_and_are_utf8() {
        for len in [0, 1, 20, 1024, 65536, 100_003] {
            let t = text_payload(len, 1);
            assert_eq!(t.len(), len);
            assert!(std::str::from_utf8(&t).is_ok());
            assert_eq!(binary_payload(len, 1).len(), len);
        }
    }

    #[test]
    fn frame_lengths() {
        let mut v = Vec::new();
        push_frame(&mut v, true, OP_TEXT, &[0; 125], Some([1, 2, 3, 4]));
        assert_eq!(v.len(), 2 + 4 + 125);
        v.clear();
        push_frame(&mut v, true, OP_TEXT, &[0; 70_000], None);
        assert_eq!(v.len(), 2 + 8 + 70_000);
    }
}
