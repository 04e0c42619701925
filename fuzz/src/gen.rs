//! Structure-aware input pieces shared by the targets (`arbitrary` derives).

use arbitrary::Arbitrary;
use evsock::ws::{Config, OriginPolicy};

use crate::wire::encode_frame;

/// Small, random connection limits and timers, so that every limit is
/// within reach of a short input.
#[derive(Arbitrary, Debug, Clone)]
pub struct Limits {
    pub max_frame: u16,
    pub max_message: u16,
    pub max_fragments: u8,
    pub max_handshake: u16,
    pub max_headers: u8,
    pub max_outbound: u16,
    pub ping_interval: Option<u16>,
    pub pong_timeout: Option<u16>,
    pub idle_timeout: Option<u16>,
    pub handshake_timeout: Option<u16>,
    pub close_timeout: Option<u16>,
    pub no_auto_pong: bool,
    pub subprotocols: Vec<String>,
    pub origins: Option<(Vec<String>, bool)>,
    pub retain: u16,
}

impl Limits {
    /// The engine configuration these limits describe.
    pub fn config(&self) -> Config {
        let ms = |v: Option<u16>| v.map(u64::from);
        Config {
            max_frame_size: self.max_frame as usize,
            max_message_size: self.max_message as usize,
            max_fragments: self.max_fragments as usize,
            // Tiny handshake limits only make every input fail the same way.
            max_handshake_bytes: 64 + self.max_handshake as usize,
            max_headers: self.max_headers as usize,
            max_outbound_bytes: self.max_outbound as usize,
            ping_interval_ms: ms(self.ping_interval),
            pong_timeout_ms: ms(self.pong_timeout),
            idle_timeout_ms: ms(self.idle_timeout),
            handshake_timeout_ms: ms(self.handshake_timeout),
            close_timeout_ms: ms(self.close_timeout),
            auto_pong: !self.no_auto_pong,
            subprotocols: self.subprotocols.iter().take(4).cloned().collect(),
            origin_policy: match &self.origins {
                None => OriginPolicy::Any,
                Some((o, allow_missing)) => OriginPolicy::AllowList {
                    origins: o.iter().take(4).cloned().collect(),
                    allow_missing: *allow_missing,
                },
            },
            buffer_retain: self.retain as usize,
            // The frame checker in `wire` reads uncompressed frames only;
            // compression is covered by the `deflate` and `pair` targets.
            deflate: None,
        }
    }

    /// A rough count of the heap the configuration itself takes.
    pub fn config_bytes(&self) -> usize {
        let strings = self
            .subprotocols
            .iter()
            .take(4)
            .chain(self.origins.iter().flat_map(|(o, _)| o.iter().take(4)));
        strings.map(|s| s.len() + 32).sum::<usize>() + 512
    }
}

/// Ways to spoil an otherwise valid frame.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Spoil {
    /// Set the RSV bits to this (low three bits).
    Rsv(u8),
    /// Mask when we must not, or the other way round.
    FlipMask,
    /// Use this raw opcode (low four bits) instead.
    Opcode(u8),
    /// Encode the length in a longer form than needed.
    LongLength,
    /// Announce this length but send the payload as is.
    Length(u64),
}

/// One frame, mostly valid.
#[derive(Arbitrary, Debug, Clone)]
pub struct FrameSpec {
    pub fin: bool,
    /// 0: continuation, 1: text, 2: binary, 3: close, 4: ping, 5: pong.
    pub kind: u8,
    pub payload: Vec<u8>,
    /// For close frames: a code to put in front of the payload.
    pub close_code: Option<u16>,
    pub key: [u8; 4],
    pub spoil: Option<Spoil>,
}

impl FrameSpec {
    /// The frame's bytes, masked when `masked` (the peer is a client).
    pub fn bytes(&self, masked: bool) -> Vec<u8> {
        let op = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA][self.kind as usize % 6];
        let mut payload = Vec::new();
        if op == 0x8 {
            if let Some(c) = self.close_code {
                payload.extend_from_slice(&c.to_be_bytes());
            }
        }
        payload.extend_from_slice(&self.payload);
        if op & 0x8 != 0 {
            payload.truncate(125);
        }
        let fin = self.fin || op & 0x8 != 0;
        let mut b0 = (fin as u8) << 7 | op;
        let mut mask = masked;
        match self.spoil {
            Some(Spoil::Rsv(r)) => b0 |= (r & 7) << 4,
            Some(Spoil::FlipMask) => mask = !mask,
            Some(Spoil::Opcode(o)) => b0 = (b0 & 0xF0) | (o & 0xF),
            _ => {}
        }
        let key = mask.then_some(self.key);
        let mut f = encode_frame(b0, key, &payload);
        match self.spoil {
            Some(Spoil::LongLength) if payload.len() < 126 => {
                let mut g = vec![f[0], (f[1] & 0x80) | 126, 0, payload.len() as u8];
                g.extend_from_slice(&f[2..]);
                f = g;
            }
            Some(Spoil::Length(n)) => {
                let hdr = 2 + if payload.len() < 126 {
                    0
                } else if payload.len() <= 0xFFFF {
                    2
                } else {
                    8
                };
                let mut g = vec![f[0], (f[1] & 0x80) | 127];
                g.extend_from_slice(&n.to_be_bytes());
                g.extend_from_slice(&f[hdr..]);
                f = g;
            }
            _ => {}
        }
        f
    }
}

/// Chunk sizes to cut a byte stream with, cycling; empty means "whole".
pub fn chunks<'a>(data: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut pos = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        if pos >= data.len() {
            return None;
        }
        let n = if sizes.is_empty() {
            data.len()
        } else {
            sizes[i % sizes.len()] as usize + 1
        };
        i += 1;
        let end = (pos + n).min(data.len());
        let piece = &data[pos..end];
        pos = end;
        Some(piece)
    })
}
