//! A second, deliberately naive RFC 6455 frame parser, used to check every
//! byte the engine transmits. It shares no code with the engine: it reads
//! one frame at a time from a byte buffer and is as strict as the RFC allows.

/// One frame-level unit as seen on the wire, with payloads unmasked and
/// fragmented messages reassembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole data message.
    Message {
        /// Text (opcode 1) or binary (opcode 2).
        text: bool,
        /// The payload of every fragment, concatenated.
        data: Vec<u8>,
    },
    /// A ping and its payload.
    Ping(Vec<u8>),
    /// A pong and its payload.
    Pong(Vec<u8>),
    /// A close frame: code and raw reason bytes, when present.
    Close(Option<(u16, Vec<u8>)>),
}

/// Close codes that may appear on the wire: RFC 6455 7.4.1 plus the IANA
/// registry (1012-1014), and the ranges for libraries and applications.
pub fn legal_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Checks one direction of frames produced by an endpoint.
#[derive(Debug)]
pub struct FrameChecker {
    masked: bool,
    buf: Vec<u8>,
    frag: Option<(bool, Vec<u8>)>,
    close_seen: bool,
    /// permessage-deflate was negotiated: RSV1 may mark the first frame of
    /// a data message, whose payload this reference inflater decodes.
    inflater: Option<crate::refinflate::RefInflater>,
    /// The unfinished fragmented message is compressed.
    frag_compressed: bool,
}

impl std::fmt::Debug for crate::refinflate::RefInflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefInflater")
    }
}

impl FrameChecker {
    /// A checker for frames that must be masked (a client's) or not.
    pub fn new(masked: bool) -> Self {
        FrameChecker {
            masked,
            buf: Vec::new(),
            frag: None,
            close_seen: false,
            inflater: None,
            frag_compressed: false,
        }
    }

    /// A checker for an endpoint that negotiated permessage-deflate
    /// (RFC 7692): compressed messages are inflated by the independent
    /// reference decoder (with context kept, which also reads streams
    /// whose sender did not keep it) and checked like any other.
    pub fn with_deflate(masked: bool) -> Self {
        FrameChecker {
            inflater: Some(crate::refinflate::RefInflater::new()),
            ..Self::new(masked)
        }
    }

    /// True once a close frame went by.
    pub fn close_seen(&self) -> bool {
        self.close_seen
    }

    /// Bytes of an unfinished frame held back.
    pub fn partial(&self) -> usize {
        self.buf.len()
    }

    /// True while a fragmented message is unfinished.
    pub fn in_message(&self) -> bool {
        self.frag.is_some()
    }

    /// Consumes transmitted bytes; returns the complete units, or what is
    /// wrong with them.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Item>, String> {
        self.buf.extend_from_slice(data);
        let mut items = Vec::new();
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            if rest.is_empty() {
                break;
            }
            if self.close_seen {
                return Err(format!("{} bytes sent after the close frame", rest.len()));
            }
            let Some((fin, rsv1, op, key, len, hlen)) = self.header(rest)? else {
                break;
            };
            if rest.len() - hlen < len {
                break;
            }
            let mut payload = rest[hlen..hlen + len].to_vec();
            if let Some(k) = key {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= k[i % 4];
                }
            }
            pos += hlen + len;
            if rsv1 && (self.inflater.is_none() || !matches!(op, 0x1 | 0x2)) {
                return Err(format!(
                    "RSV1 set on opcode {op:#x} (deflate negotiated: {})",
                    self.inflater.is_some()
                ));
            }
            if rsv1 {
                self.frag_compressed = true;
            } else if matches!(op, 0x1 | 0x2) {
                self.frag_compressed = false;
            }
            if let Some(item) = self.unit(fin, op, payload)? {
                items.push(item);
            }
        }
        self.buf.drain(..pos);
        Ok(items)
    }

    #[allow(clippy::type_complexity)]
    fn header(
        &self,
        b: &[u8],
    ) -> Result<Option<(bool, bool, u8, Option<[u8; 4]>, usize, usize)>, String> {
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] >> 7 == 1;
        let rsv1 = b[0] & 0b0100_0000 != 0;
        if b[0] & 0b0011_0000 != 0 {
            return Err(format!("RSV bits set in {:#04x}", b[0]));
        }
        let op = b[0] & 0x0F;
        if !matches!(op, 0x0 | 0x1 | 0x2 | 0x8 | 0x9 | 0xA) {
            return Err(format!("reserved opcode {op:#x}"));
        }
        let masked = b[1] >> 7 == 1;
        if masked != self.masked {
            return Err(format!(
                "frame is {}masked, but this endpoint must {}mask",
                if masked { "" } else { "not " },
                if self.masked { "" } else { "not " }
            ));
        }
        let (len, mut hlen) = match b[1] & 0x7F {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                let l = u16::from_be_bytes([b[2], b[3]]) as u64;
                if l < 126 {
                    return Err(format!("length {l} not in the shortest form (16-bit)"));
                }
                (l, 4)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                let mut x = [0u8; 8];
                x.copy_from_slice(&b[2..10]);
                let l = u64::from_be_bytes(x);
                if l >> 63 != 0 {
                    return Err("64-bit length with the top bit set".into());
                }
                if l <= 0xFFFF {
                    return Err(format!("length {l} not in the shortest form (64-bit)"));
                }
                (l, 10)
            }
            l => (l as u64, 2),
        };
        if op >= 0x8 {
            if !fin {
                return Err(format!("fragmented control frame (opcode {op:#x})"));
            }
            if len > 125 {
                return Err(format!("control frame with {len} bytes of payload"));
            }
        }
        if len > 1 << 31 {
            return Err(format!("implausible frame length {len}"));
        }
        let key = if masked {
            if b.len() < hlen + 4 {
                return Ok(None);
            }
            let k = [b[hlen], b[hlen + 1], b[hlen + 2], b[hlen + 3]];
            hlen += 4;
            Some(k)
        } else {
            None
        };
        Ok(Some((fin, rsv1, op, key, len as usize, hlen)))
    }

    fn unit(&mut self, fin: bool, op: u8, payload: Vec<u8>) -> Result<Option<Item>, String> {
        match op {
            0x8 => {
                self.close_seen = true;
                match payload.len() {
                    0 => Ok(Some(Item::Close(None))),
                    1 => Err("close frame with a one-byte payload".into()),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        if !legal_close_code(code) {
                            return Err(format!("close code {code} may not be sent"));
                        }
                        if std::str::from_utf8(&payload[2..]).is_err() {
                            return Err("close reason is not UTF-8".into());
                        }
                        Ok(Some(Item::Close(Some((code, payload[2..].to_vec())))))
                    }
                }
            }
            0x9 => Ok(Some(Item::Ping(payload))),
            0xA => Ok(Some(Item::Pong(payload))),
            0x1 | 0x2 => {
                if self.frag.is_some() {
                    return Err("new data frame inside an unfinished fragmented message".into());
                }
                if fin {
                    return self.whole(op == 0x1, payload).map(Some);
                }
                self.frag = Some((op == 0x1, payload));
                Ok(None)
            }
            _ => {
                let Some((text, mut data)) = self.frag.take() else {
                    return Err("continuation frame outside a fragmented message".into());
                };
                data.extend_from_slice(&payload);
                if fin {
                    return self.whole(text, data).map(Some);
                }
                self.frag = Some((text, data));
                Ok(None)
            }
        }
    }
}

impl FrameChecker {
    /// A complete data message: inflated first if it was compressed.
    fn whole(&mut self, text: bool, data: Vec<u8>) -> Result<Item, String> {
        let compressed = std::mem::take(&mut self.frag_compressed);
        let data = match (compressed, self.inflater.as_mut()) {
            (true, Some(r)) => {
                use crate::refinflate::RefEnd;
                let mut out = Vec::new();
                let cap = 1 << 26;
                let a = r.feed(&data, &mut out, cap);
                let b = r.finish_message(&mut out, cap);
                if a != RefEnd::Done || b != RefEnd::Done {
                    return Err(format!(
                        "compressed message of {} bytes does not inflate ({a:?}/{b:?})",
                        data.len()
                    ));
                }
                out
            }
            _ => data,
        };
        whole(text, data)
    }
}

fn whole(text: bool, data: Vec<u8>) -> Result<Item, String> {
    if text && std::str::from_utf8(&data).is_err() {
        return Err(format!(
            "text message of {} bytes is not valid UTF-8",
            data.len()
        ));
    }
    Ok(Item::Message { text, data })
}

/// Encodes one frame the plain way (for building inputs): shortest length
/// form, payload masked with `key` when given.
pub fn encode_frame(first_byte: u8, key: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let m = if key.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        out.push(m | n as u8);
    } else if n <= 0xFFFF {
        out.push(m | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match key {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc_examples_and_rejects_breakage() {
        let mut c = FrameChecker::new(false);
        assert_eq!(c.feed(&[0x01, 0x03, b'H', b'e', b'l']).unwrap(), vec![]);
        assert_eq!(
            c.feed(&[0x80, 0x02, b'l', b'o']).unwrap(),
            vec![Item::Message {
                text: true,
                data: b"Hello".to_vec()
            }]
        );
        let mut m = FrameChecker::new(true);
        let f = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            m.feed(&f).unwrap(),
            vec![Item::Message {
                text: true,
                data: b"Hello".to_vec()
            }]
        );
        assert!(
            FrameChecker::new(false).feed(&f).is_err(),
            "masked server frame"
        );
        assert!(
            FrameChecker::new(false)
                .feed(&[0x88, 0x02, 0x03, 0xED])
                .is_err(),
            "1005 sent"
        );
        assert!(
            FrameChecker::new(false)
                .feed(&[0x82, 0x7E, 0, 5, 1, 2, 3, 4, 5])
                .is_err(),
            "long form"
        );
        assert!(
            FrameChecker::new(false).feed(&[0x09, 0x00]).is_err(),
            "fragmented ping"
        );
        assert!(
            FrameChecker::new(false).feed(&[0x80, 0x00]).is_err(),
            "stray continuation"
        );
        let mut c = FrameChecker::new(false);
        c.feed(&[0x88, 0x02, 0x03, 0xE8]).unwrap();
        assert!(c.feed(&[0x8A, 0x00]).is_err(), "frame after close");
        assert_eq!(
            encode_frame(0x81, Some([0x37, 0xfa, 0x21, 0x3d]), b"Hello"),
            f
        );
    }
}
