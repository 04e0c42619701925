//! permessage-deflate (RFC 7692): negotiation and per-message compression.
//!
//! Backend: `flate2` over `zlib-rs`, a pure-Rust zlib. Raw deflate with a
//! chosen window size (`*_max_window_bits`) needs a zlib-style backend
//! (flate2's default `miniz_oxide` cannot set it), and `zlib-rs` gives that
//! without a C toolchain or system library, and is as fast as zlib-ng.
//!
//! Memory is spent only when used: the inflater and deflater of a
//! connection are created on the first compressed message in each
//! direction, so idle connections pay nothing. Inflating is bounded by
//! `Config::max_message_size` *while* inflating, so a small frame that
//! expands to gigabytes ends with 1009 after at most the limit is produced.

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::{Error, HandshakeError};
use super::utf8::Utf8Validator;

/// The extension's registered name.
pub const NAME: &str = "permessage-deflate";

/// Our permessage-deflate preferences.
///
/// The same settings serve both roles; the names are RFC 7692's, so
/// `server_*` always means the server's compressor whichever side we are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Ask (client) or insist (server) that the server compress each
    /// message on its own. On by default: the server keeps no compression
    /// window between messages, which saves memory per connection and
    /// makes a broadcast compress to the same bytes for every recipient.
    pub server_no_context_takeover: bool,
    /// Ask that the client compress each message on its own. Off by
    /// default (browsers compress better with context).
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (as a power of two, 9..=15) the server may use.
    pub server_max_window_bits: u8,
    /// Largest window (9..=15) the client may use; smaller windows make
    /// the server's inflater cheaper.
    pub client_max_window_bits: u8,
    /// Messages shorter than this are sent uncompressed. Default 256 bytes:
    /// below that deflate rarely pays for its CPU time.
    pub threshold: usize,
    /// Compression level 0..=9. Default 3: realtime traffic is latency
    /// bound, and on small JSON the ratio gained past 3 is slight.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            threshold: 256,
            level: 3,
        }
    }
}

/// What the two ends agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's window, 9..=15 (8 is read as 9, see `negotiate`).
    pub server_max_window_bits: u8,
    /// The client's window, 9..=15.
    pub client_max_window_bits: u8,
}

/// One offer's parameters, as parsed.
#[derive(Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_bits(v: Option<&str>) -> Result<u8, ()> {
    let v = v.ok_or(())?;
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v);
    if v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) || v.starts_with('0') {
        return Err(());
    }
    match v.parse::<u8>() {
        Ok(n @ 8..=15) => Ok(n),
        _ => Err(()),
    }
}

/// Parses one extension element (`name; p1; p2=v`) as a permessage-deflate
/// offer or response. `None` if it names another extension; `Err` if it is
/// ours but malformed (duplicate, unknown or invalid parameter).
fn parse(element: &str) -> Option<Result<Offer, ()>> {
    let mut parts = element.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let mut o = Offer::default();
    let mut seen = [false; 4];
    for p in parts {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p, None),
        };
        let idx = match k.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if v.is_none() => {
                o.server_no_context_takeover = true;
                0
            }
            "client_no_context_takeover" if v.is_none() => {
                o.client_no_context_takeover = true;
                1
            }
            "server_max_window_bits" => match parse_bits(v) {
                Ok(n) => {
                    o.server_max_window_bits = Some(n);
                    2
                }
                Err(()) => return Some(Err(())),
            },
            "client_max_window_bits" => {
                let n = match v {
                    None => None,
                    Some(_) => match parse_bits(v) {
                        Ok(n) => Some(n),
                        Err(()) => return Some(Err(())),
                    },
                };
                o.client_max_window_bits = Some(n);
                3
            }
            _ => return Some(Err(())),
        };
        if std::mem::replace(&mut seen[idx], true) {
            return Some(Err(()));
        }
    }
    Some(Ok(o))
}

/// Server side: picks the first acceptable offer among the client's
/// `Sec-WebSocket-Extensions` elements. Returns the agreed parameters and
/// the response header value, or `None` to decline (malformed offers and
/// ones we cannot honour are declined, as RFC 7692 asks, not refused).
pub fn negotiate(offers: &[String], cfg: &DeflateConfig) -> Option<(DeflateParams, String)> {
    for element in offers {
        let Some(Ok(o)) = parse(element) else {
            continue;
        };
        // Our compressor's window. zlib cannot compress with a 256-byte
        // window (it silently uses 512), so an offer demanding 8 is declined.
        let server_bits = match o.server_max_window_bits {
            Some(n) if n < 9 => continue,
            Some(n) => n.min(cfg.server_max_window_bits),
            None => cfg.server_max_window_bits,
        };
        let mut resp = String::from(NAME);
        let server_nct = o.server_no_context_takeover || cfg.server_no_context_takeover;
        if server_nct {
            resp.push_str("; server_no_context_takeover");
        }
        let client_nct = o.client_no_context_takeover || cfg.client_no_context_takeover;
        if client_nct {
            resp.push_str("; client_no_context_takeover");
        }
        if o.server_max_window_bits.is_some() {
            resp.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        // We may limit the client's window only if it said it can be limited.
        let client_bits = match o.client_max_window_bits {
            None => 15,
            Some(offered) => {
                let bits = offered.unwrap_or(15).min(cfg.client_max_window_bits);
                if bits < 15 || offered.is_some() {
                    resp.push_str(&format!("; client_max_window_bits={bits}"));
                }
                bits
            }
        };
        return Some((
            DeflateParams {
                server_no_context_takeover: server_nct,
                client_no_context_takeover: client_nct,
                server_max_window_bits: server_bits.max(9),
                client_max_window_bits: client_bits.max(9),
            },
            resp,
        ));
    }
    None
}

/// Client side: the offer to send.
pub fn offer(cfg: &DeflateConfig) -> String {
    let mut s = String::from(NAME);
    if cfg.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if cfg.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if cfg.server_max_window_bits < 15 {
        s.push_str(&format!(
            "; server_max_window_bits={}",
            cfg.server_max_window_bits
        ));
    }
    if cfg.client_max_window_bits < 15 {
        s.push_str(&format!(
            "; client_max_window_bits={}",
            cfg.client_max_window_bits
        ));
    } else {
        s.push_str("; client_max_window_bits");
    }
    s
}

/// Client side: checks the server's response against our offer. Anything
/// we did not offer, or a malformed response, fails the handshake
/// (RFC 7692 section 5).
pub fn accept(value: &str, cfg: &DeflateConfig) -> Result<DeflateParams, HandshakeError> {
    let bad = || HandshakeError::UnofferedExtension(value.to_string());
    let mut elements = value.split(',').map(str::trim).filter(|e| !e.is_empty());
    let first = elements.next().ok_or_else(bad)?;
    if elements.next().is_some() {
        return Err(bad());
    }
    let o = match parse(first) {
        Some(Ok(o)) => o,
        _ => return Err(bad()),
    };
    let server_bits = match o.server_max_window_bits {
        Some(n) if cfg.server_max_window_bits < 15 && n > cfg.server_max_window_bits => {
            return Err(bad())
        }
        Some(n) => n,
        None => 15,
    };
    let client_bits = match o.client_max_window_bits {
        None => cfg.client_max_window_bits,
        // A limit we cannot honour with zlib, or one over what we offered.
        Some(Some(n)) if n >= 9 && n <= cfg.client_max_window_bits.max(9) => n,
        Some(_) => return Err(bad()),
    };
    Ok(DeflateParams {
        server_no_context_takeover: o.server_no_context_takeover,
        client_no_context_takeover: o.client_no_context_takeover || cfg.client_no_context_takeover,
        server_max_window_bits: server_bits.max(9),
        client_max_window_bits: client_bits.max(9),
    })
}

/// The receiving half: inflates messages, bounded and UTF-8-checked as the
/// bytes come out.
pub struct Inflater {
    window_bits: u8,
    reset_after_message: bool,
    state: Option<Decompress>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("window_bits", &self.window_bits)
            .field("allocated", &self.state.is_some())
            .finish()
    }
}

/// Output is produced in pieces of at most this many bytes, so the limit
/// check and UTF-8 check run long before a bomb could fill memory.
const INFLATE_STEP: usize = 64 * 1024;

impl Inflater {
    /// An inflater for a peer compressing with `window_bits`; when
    /// `reset_after_message`, the peer keeps no context between messages
    /// and our state is reset (freeing nothing, but keeping it clean).
    pub fn new(window_bits: u8, reset_after_message: bool) -> Inflater {
        Inflater {
            window_bits,
            reset_after_message,
            state: None,
        }
    }

    /// Inflates `input` (part of one compressed message) onto `out`,
    /// failing once `out` would exceed `limit` bytes.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
        mut utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), Error> {
        let bits = self.window_bits;
        let d = self
            .state
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let mut pos = 0;
        loop {
            let start = out.len();
            // One byte past the limit, so that overflowing is visible.
            let room = (limit + 1).saturating_sub(start);
            if room == 0 {
                return Err(Error::MessageTooLarge { limit });
            }
            let want = (input.len() - pos)
                .saturating_mul(4)
                .clamp(1024, INFLATE_STEP);
            let chunk = room.min(want);
            out.resize(start + chunk, 0);
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d.decompress(&input[pos..], &mut out[start..], FlushDecompress::None);
            let consumed = (d.total_in() - in0) as usize;
            let produced = (d.total_out() - out0) as usize;
            out.truncate(start + produced);
            pos += consumed;
            let status = status.map_err(|_| Error::Compression)?;
            if produced > 0 {
                if let Some(v) = utf8.as_deref_mut() {
                    v.feed(&out[start..]).map_err(|_| Error::InvalidUtf8)?;
                }
            }
            if out.len() > limit {
                return Err(Error::MessageTooLarge { limit });
            }
            if status == Status::StreamEnd {
                // A final block: the sender starts afresh after it.
                d.reset(false);
            }
            if pos == input.len() && produced < chunk {
                return Ok(());
            }
            if consumed == 0 && produced == 0 && status != Status::StreamEnd {
                // No progress with input left: the data is corrupt.
                return if pos == input.len() {
                    Ok(())
                } else {
                    Err(Error::Compression)
                };
            }
        }
    }

    /// Ends a message: feeds the flush marker the sender stripped.
    pub fn finish_message(
        &mut self,
        out: &mut BytesMut,
        limit: usize,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), Error> {
        self.inflate(&[0x00, 0x00, 0xFF, 0xFF], out, limit, utf8)?;
        if self.reset_after_message {
            if let Some(d) = self.state.as_mut() {
                d.reset(false);
            }
        }
        Ok(())
    }
}

/// The sending half: compresses whole messages.
pub struct Deflater {
    window_bits: u8,
    level: u32,
    reset_after_message: bool,
    state: Option<Compress>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("window_bits", &self.window_bits)
            .field("allocated", &self.state.is_some())
            .finish()
    }
}

impl Deflater {
    /// A compressor using `window_bits` (9..=15) at `level`.
    pub fn new(window_bits: u8, level: u32, reset_after_message: bool) -> Deflater {
        Deflater {
            window_bits: window_bits.clamp(9, 15),
            level: level.min(9),
            reset_after_message,
            state: None,
            scratch: Vec::new(),
        }
    }

    /// Compresses one message; the result (without the trailing
    /// `00 00 FF FF`) is valid until the next call.
    pub fn compress(&mut self, payload: &[u8]) -> &[u8] {
        let (bits, level) = (self.window_bits, self.level);
        let c = self.state.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        let out = &mut self.scratch;
        out.clear();
        if payload.is_empty() {
            // zlib emits nothing for a second sync flush in a row, so the
            // loop below would wait forever for the marker. An empty
            // message is an empty stored block (RFC 7692 7.2.3.6), which
            // leaves the window as it is.
            out.push(0x00);
            return &self.scratch;
        }
        out.reserve(payload.len() / 2 + 64);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = c.total_in();
            // compress_vec only fails on a corrupt stream state, which a
            // fresh or reset compressor never has.
            let _ = c.compress_vec(&payload[pos..], out, FlushCompress::Sync);
            pos += (c.total_in() - before) as usize;
            if pos == payload.len()
                && out.len() < out.capacity()
                && out.ends_with(&[0, 0, 0xFF, 0xFF])
            {
                break;
            }
        }
        out.truncate(out.len() - 4);
        if self.reset_after_message {
            c.reset();
        }
        &self.scratch
    }

    /// Frees the scratch buffer when it grew past `retain` bytes.
    pub fn release(&mut self, retain: usize) {
        if self.scratch.capacity() > retain {
            self.scratch = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(s: &str) -> Vec<String> {
        s.split(',').map(|x| x.trim().to_string()).collect()
    }

    #[test]
    fn negotiation_follows_the_offer_and_our_preferences() {
        let cfg = DeflateConfig::default();
        // A browser's usual offer.
        let (p, resp) =
            negotiate(&offers("permessage-deflate; client_max_window_bits"), &cfg).unwrap();
        assert_eq!(resp, "permessage-deflate; server_no_context_takeover");
        assert_eq!(p.client_max_window_bits, 15);
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        // Limits the client asks for are honoured and echoed.
        let (p, resp) = negotiate(
            &offers("permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"),
            &cfg,
        )
        .unwrap();
        assert_eq!(
            resp,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"
        );
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (10, 12)
        );
        // Our own client limit applies only when the client allowed it.
        let small = DeflateConfig {
            client_max_window_bits: 10,
            server_no_context_takeover: false,
            ..cfg.clone()
        };
        let (p, resp) = negotiate(
            &offers("permessage-deflate; client_max_window_bits"),
            &small,
        )
        .unwrap();
        assert_eq!(resp, "permessage-deflate; client_max_window_bits=10");
        assert_eq!(p.client_max_window_bits, 10);
        let (p, resp) = negotiate(&offers("permessage-deflate"), &small).unwrap();
        assert_eq!(resp, "permessage-deflate");
        assert_eq!(p.client_max_window_bits, 15);
    }

    #[test]
    fn malformed_or_unhonourable_offers_are_declined_and_the_next_tried() {
        let cfg = DeflateConfig::default();
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; unknown_thing",
            "permessage-deflate; server_max_window_bits=8",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(negotiate(&offers(bad), &cfg), None, "{bad}");
        }
        let (p, _) = negotiate(
            &offers("permessage-deflate; bogus, permessage-deflate; server_max_window_bits=\"11\""),
            &cfg,
        )
        .unwrap();
        assert_eq!(p.server_max_window_bits, 11);
    }

    #[test]
    fn client_checks_the_response() {
        let cfg = DeflateConfig::default();
        assert_eq!(
            offer(&cfg),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits"
        );
        let p = accept(
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
            &cfg,
        )
        .unwrap();
        assert_eq!(p.client_max_window_bits, 10);
        assert!(accept("permessage-deflate; client_max_window_bits=8", &cfg).is_err());
        assert!(accept("permessage-deflate; foo", &cfg).is_err());
        assert!(accept("permessage-deflate, permessage-deflate", &cfg).is_err());
        assert!(accept("other-ext", &cfg).is_err());
        let limited = DeflateConfig {
            server_max_window_bits: 10,
            ..cfg
        };
        assert!(accept("permessage-deflate; server_max_window_bits=12", &limited).is_err());
        assert!(accept("permessage-deflate; server_max_window_bits=9", &limited).is_ok());
    }

    #[test]
    fn round_trip_with_and_without_context() {
        for reset in [false, true] {
            let mut d = Deflater::new(15, 6, reset);
            let mut i = Inflater::new(15, reset);
            for n in 0..5 {
                let msg = format!("{{\"n\":{n},\"text\":\"{}\"}}", "hello ".repeat(50));
                let wire = d.compress(msg.as_bytes()).to_vec();
                assert!(wire.len() < msg.len() / 3);
                let mut out = BytesMut::new();
                let mut v = Utf8Validator::new();
                i.inflate(&wire, &mut out, 1 << 20, Some(&mut v)).unwrap();
                i.finish_message(&mut out, 1 << 20, Some(&mut v)).unwrap();
                v.finish().unwrap();
                assert_eq!(&out[..], msg.as_bytes());
            }
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let mut d = Deflater::new(15, 9, true);
        let huge = vec![0u8; 8 << 20];
        let wire = d.compress(&huge).to_vec();
        assert!(wire.len() < 64 << 10, "{}", wire.len());
        let mut i = Inflater::new(15, true);
        let mut out = BytesMut::new();
        let limit = 1 << 20;
        assert_eq!(
            i.inflate(&wire, &mut out, limit, None),
            Err(Error::MessageTooLarge { limit })
        );
        assert!(
            out.len() <= limit + INFLATE_STEP,
            "held {} bytes",
            out.len()
        );
    }

    #[test]
    fn invalid_utf8_inside_compressed_text_fails_fast() {
        let mut d = Deflater::new(15, 6, false);
        let mut bad = vec![b'a'; 10_000];
        bad[10] = 0xFF;
        let wire = d.compress(&bad).to_vec();
        let mut i = Inflater::new(15, false);
        let mut out = BytesMut::new();
        let mut v = Utf8Validator::new();
        assert_eq!(
            i.inflate(&wire, &mut out, 1 << 20, Some(&mut v)),
            Err(Error::InvalidUtf8)
        );
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let mut i = Inflater::new(15, false);
        let mut out = BytesMut::new();
        assert_eq!(
            i.inflate(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF], &mut out, 1 << 20, None),
            Err(Error::Compression)
        );
    }
}
