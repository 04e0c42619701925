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
use zlib_rs::{Deflate, DeflateConfig as ZConfig, DeflateFlush, Inflate, InflateFlush, Status};

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
    /// zlib's `memLevel` for our compressor, 1..=9 (values outside are
    /// clamped). It sizes the symbol and pending buffers, 7 x 2^(mem_level
    /// plus 6) bytes: 112 KiB at the default 8, 896 B at 1. Lower levels
    /// emit more, smaller deflate blocks: slightly worse ratios on large
    /// messages, none on messages of a few KiB (see the module docs).
    pub mem_level: u8,
    /// Which zlib states are freed after every message rather than kept
    /// for the next one. Default [`FreeState::Cheap`].
    pub free_state: FreeState,
}

/// Which zlib states a connection frees after every compressed message
/// (and creates again for the next one) instead of keeping them.
///
/// A kept compressor holds 250 to 380 KB and a kept decompressor 47 KB
/// (zlib-rs; see the module docs), for as long as the connection lives.
/// Where context takeover applies, a freed state keeps only the last
/// window of bytes (2^window_bits, and never more than was sent or
/// received) and the next state is primed with them as a preset
/// dictionary, which is exact: the peer's window holds the same bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FreeState {
    /// Keep both states: fastest, and the most memory per connection.
    /// With context takeover a kept decompressor also keeps the last
    /// window of bytes received (up to 2^window_bits, 32 KiB at most),
    /// with which it starts the new stream after a peer's final block.
    Never,
    /// Free every state whose re-creation costs little: any state without
    /// context takeover (re-creating costs what resetting does, zlib
    /// clears the same tables) and the decompressor with context takeover
    /// (priming it is a copy: +1.5 us per 1 KiB message); keep a
    /// compressor with context takeover, whose priming hashes the window
    /// again (7x the time of a 1 KiB message). The default.
    #[default]
    Cheap,
    /// Free both states after every message, a compressor with context
    /// takeover too: about 347 KB less per connection sending with
    /// context takeover, for 7x the time per 1 KiB message (1.24x at
    /// 64 KiB).
    Always,
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
            mem_level: 8,
            free_state: FreeState::Cheap,
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

/// The two halves of one connection's compression, for our `role`
/// (`server`: true if we are the server) under the agreed parameters,
/// with the memory settings of `cfg`.
pub fn halves(p: &DeflateParams, server: bool, cfg: &DeflateConfig) -> (Inflater, Deflater) {
    let (send_bits, send_nct, recv_bits, recv_nct) = if server {
        (
            p.server_max_window_bits,
            p.server_no_context_takeover,
            p.client_max_window_bits,
            p.client_no_context_takeover,
        )
    } else {
        (
            p.client_max_window_bits,
            p.client_no_context_takeover,
            p.server_max_window_bits,
            p.server_no_context_takeover,
        )
    };
    let (free_in, free_out) = match cfg.free_state {
        FreeState::Never => (false, false),
        FreeState::Cheap => (true, send_nct),
        FreeState::Always => (true, true),
    };
    (
        Inflater::with_options(recv_bits, recv_nct, free_in),
        Deflater::with_options(send_bits, cfg.level, send_nct, cfg.mem_level, free_out),
    )
}

/// The bytes a sender strips from the end of every compressed message
/// (the empty stored block of a sync flush).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Keeps the last `window` bytes seen in one direction, so that a zlib
/// state can be created again primed with them (context takeover without
/// keeping zlib's own buffers, or across a final block).
///
/// Up to `window` bytes in order; once full, a ring whose oldest byte is
/// at `head`, so every byte is copied once whatever the sizes of the
/// pieces, and the capacity never exceeds the window.
#[derive(Debug, Default)]
struct History {
    bytes: Vec<u8>,
    head: usize,
}

impl History {
    fn push(&mut self, mut data: &[u8], window: usize) {
        if data.len() >= window {
            self.bytes.clear();
            self.head = 0;
            self.grow(window, window);
            self.bytes.extend_from_slice(&data[data.len() - window..]);
            return;
        }
        if self.bytes.len() < window {
            let n = data.len().min(window - self.bytes.len());
            self.grow(self.bytes.len() + n, window);
            self.bytes.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        while !data.is_empty() {
            let n = data.len().min(window - self.head);
            self.bytes[self.head..self.head + n].copy_from_slice(&data[..n]);
            self.head = (self.head + n) % window;
            data = &data[n..];
        }
    }

    /// Room for `need` bytes: doubling, but never past the window.
    fn grow(&mut self, need: usize, window: usize) {
        let cap = self.bytes.capacity();
        if need > cap {
            let want = need.max(cap * 2).max(64).min(window);
            self.bytes.reserve_exact(want - self.bytes.len());
        }
    }

    /// The bytes kept, oldest first, in two pieces (the ring's halves).
    fn halves(&self) -> (&[u8], &[u8]) {
        (&self.bytes[self.head..], &self.bytes[..self.head])
    }

    /// The bytes kept, oldest first, in one piece.
    fn linear(&mut self) -> &[u8] {
        if self.head != 0 {
            self.bytes.rotate_left(self.head);
            self.head = 0;
        }
        &self.bytes
    }

    /// Trims the allocation to the bytes kept (a freed state keeps only
    /// these between messages).
    fn settle(&mut self) {
        if self.bytes.capacity() > self.bytes.len() + self.bytes.len() / 4 + 64 {
            self.linear();
            self.bytes.shrink_to_fit();
        }
    }

    fn clear(&mut self) {
        self.bytes = Vec::new();
        self.head = 0;
    }
}

fn window_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// The receiving half: inflates messages, bounded and UTF-8-checked as the
/// bytes come out.
///
/// Every message must end on a DEFLATE block boundary once the stripped
/// `00 00 FF FF` is put back (RFC 7692 7.2.1: the sender ends it with a
/// sync flush's empty stored block). One that ends inside a block fails
/// with [`Error::Compression`] (1007): its half-read block would otherwise
/// run into the next message with a kept zlib state and be dropped with a
/// freed one, so the memory setting would change what the application
/// gets. A message may also end its DEFLATE stream with a final block
/// (BFINAL, RFC 7692 7.2.3.3, e.g. `f3 48 cd c9 c9 07 00 00`): what follows
/// starts a new stream that, with context takeover, still refers back into
/// the same window. Both behave alike whatever [`FreeState`] says.
pub struct Inflater {
    window_bits: u8,
    /// The peer starts every message afresh (its no_context_takeover).
    no_context: bool,
    /// Drop the zlib state after every message.
    free: bool,
    state: Option<Inflate>,
    /// With context takeover: the last window of output, to prime the
    /// state created after a freed one or after a final block.
    history: History,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("window_bits", &self.window_bits)
            .field("allocated", &self.state.is_some())
            .field("history", &self.history.bytes.len())
            .finish()
    }
}

/// Output is produced in pieces of at most this many bytes, so the limit
/// check and UTF-8 check run long before a bomb could fill memory.
const INFLATE_STEP: usize = 64 * 1024;

/// The tail the sender stripped, then two empty non-final stored blocks
/// (BFINAL 0, BTYPE 00, LEN 0, NLEN 0xFFFF). Inflating one of those at a
/// block boundary changes nothing: no output, and the stream is at a
/// boundary again.
const TAIL_THEN_EMPTY: [u8; 14] = [
    0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0xFF,
];
const EMPTY_STORED: [u8; 10] = [0x00, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0xFF];

/// One call into zlib: (status, bytes read, bytes written).
fn step(
    d: &mut Inflate,
    input: &[u8],
    sink: &mut [u8],
    flush: InflateFlush,
) -> Result<(Status, usize, usize), Error> {
    let (in0, out0) = (d.total_in(), d.total_out());
    let status = d.decompress(input, sink, flush);
    let consumed = (d.total_in() - in0) as usize;
    let produced = (d.total_out() - out0) as usize;
    Ok((status.map_err(|_| Error::Compression)?, consumed, produced))
}

/// Where a state that just stopped at a block boundary
/// (`InflateFlush::Block`) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Boundary {
    /// A clean boundary: no bit of a next block read.
    Clean,
    /// The end of a final block: the stream is over.
    StreamEnd,
    /// Bits of a next block were already read.
    Inside,
}

/// Asks a state just stopped at a block boundary where it is: an empty
/// stored block reads as such and leaves a clean boundary as it was; the
/// end of a final block ends the stream before reading any of it; and
/// bits left over in the last byte (ones: every probe ends in `FF`) make
/// the header of a final or an invalid block instead.
fn boundary(d: &mut Inflate) -> Boundary {
    let mut sink = [0u8; 8];
    match step(d, &EMPTY_STORED[..5], &mut sink, InflateFlush::NoFlush) {
        Ok((Status::Ok, 5, 0)) => Boundary::Clean,
        Ok((Status::StreamEnd, 0, 0)) => Boundary::StreamEnd,
        _ => Boundary::Inside,
    }
}

/// Is `d`, wherever it is, at a clean block boundary? zlib-rs's safe API
/// does not expose zlib's `data_type`, so this asks by inflating empty
/// stored blocks, which leave a state at a clean boundary as it was. With
/// `InflateFlush::Block`, which returns at the first boundary reached, a
/// state at a boundary reads exactly the first block (5 bytes, no output).
/// Inside a block the bytes are read as its data instead: output, an
/// error, an earlier boundary, or more bytes read; the one exception, a
/// dynamic block's header that the probe happens to complete together
/// with an empty block, cannot be under way here (see `Inflater::end`).
fn at_block_boundary(d: &mut Inflate) -> bool {
    let mut sink = [0u8; 8];
    // A final block ending in the probe is not the message's: only Clean.
    step(d, &EMPTY_STORED, &mut sink, InflateFlush::Block) == Ok((Status::Ok, 5, 0))
        && boundary(d) == Boundary::Clean
}

impl Inflater {
    /// An inflater for a peer compressing with `window_bits`; when
    /// `reset_after_message`, the peer keeps no context between messages.
    /// The zlib state is freed between messages, as with the default
    /// [`FreeState::Cheap`].
    pub fn new(window_bits: u8, reset_after_message: bool) -> Inflater {
        Inflater::with_options(window_bits, reset_after_message, true)
    }

    /// [`Inflater::new`], choosing whether the zlib state is freed after
    /// every message (`free`) or kept for the next one.
    pub fn with_options(window_bits: u8, reset_after_message: bool, free: bool) -> Inflater {
        Inflater {
            window_bits: self::window_bits(window_bits),
            no_context: reset_after_message,
            free,
            state: None,
            history: History::default(),
        }
    }

    /// Bytes this inflater holds on the heap between messages (zlib's
    /// state when kept, the history kept for context takeover), an
    /// estimate for memory reports and tests.
    pub fn retained_bytes(&self) -> usize {
        self.state.as_ref().map_or(0, |_| INFLATE_STATE_BYTES) + self.history.bytes.capacity()
    }

    fn window(&self) -> usize {
        1 << self.window_bits
    }

    /// A new zlib state, primed with the history (empty without context
    /// takeover).
    fn fresh_state(&self) -> Result<Inflate, Error> {
        let mut d = Inflate::new(false, self.window_bits);
        // A preset dictionary is taken as output already seen, so the
        // ring's two halves go in one after the other.
        let (older, newer) = self.history.halves();
        for piece in [older, newer] {
            if !piece.is_empty() {
                d.set_dictionary(piece).map_err(|_| Error::Compression)?;
            }
        }
        Ok(d)
    }

    /// A final block ended the DEFLATE stream inside a message whose output
    /// so far is `out`: what follows is a new stream, but on the same LZ77
    /// sliding window (RFC 7692 7.2.2 resets the window only between
    /// messages, and only without context takeover). With context takeover
    /// the kept history already ends with `out`; without it, `out` is the
    /// window.
    fn restart_within(&mut self, out: &[u8]) -> Result<(), Error> {
        let mut d = self.fresh_state()?;
        if self.no_context && !out.is_empty() {
            let start = out.len().saturating_sub(self.window());
            d.set_dictionary(&out[start..])
                .map_err(|_| Error::Compression)?;
        }
        self.state = Some(d);
        Ok(())
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
        if self.state.is_none() {
            self.state = Some(self.fresh_state()?);
        }
        let mut pos = 0;
        loop {
            let Some(d) = self.state.as_mut() else {
                return Err(Error::Compression);
            };
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
            let status = d.decompress(&input[pos..], &mut out[start..], InflateFlush::NoFlush);
            let consumed = (d.total_in() - in0) as usize;
            let produced = (d.total_out() - out0) as usize;
            out.truncate(start + produced);
            pos += consumed;
            let status = status.map_err(|_| Error::Compression)?;
            self.took(out, start, limit, utf8.as_deref_mut())?;
            if status == Status::StreamEnd {
                // A final block (RFC 7692 7.2.3.3): what follows is a new
                // stream on the same sliding window.
                self.restart_within(out)?;
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

    /// Accounts for the output from `start` on: the limit, UTF-8, and the
    /// history kept for context takeover.
    fn took(
        &mut self,
        out: &BytesMut,
        start: usize,
        limit: usize,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), Error> {
        if out.len() > start {
            if let Some(v) = utf8 {
                v.feed(&out[start..]).map_err(|_| Error::InvalidUtf8)?;
            }
            if !self.no_context {
                let window = self.window();
                self.history.push(&out[start..], window);
            }
        }
        if out.len() > limit {
            return Err(Error::MessageTooLarge { limit });
        }
        Ok(())
    }

    /// Ends a message: feeds the flush marker the sender stripped, checks
    /// that the message ended on a block boundary, then frees or resets
    /// the zlib state as configured.
    pub fn finish_message(
        &mut self,
        out: &mut BytesMut,
        limit: usize,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), Error> {
        let ended = self.end(out, limit, utf8);
        if ended.is_err() {
            // The connection fails; keep nothing of a broken stream.
            self.state = None;
            self.history.clear();
            return ended;
        }
        if self.free {
            self.state = None;
            self.history.settle();
        } else if self.no_context {
            // zlib-rs's reset would also restore the default 2^15 window,
            // so a new state keeps the negotiated one instead.
            self.state = Some(Inflate::new(false, self.window_bits));
        }
        Ok(())
    }

    fn end(
        &mut self,
        out: &mut BytesMut,
        limit: usize,
        mut utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), Error> {
        if self.state.is_none() {
            self.state = Some(self.fresh_state()?);
        }
        let Some(d) = self.state.as_mut() else {
            return Err(Error::Compression);
        };
        // The tail and the probe in one call that stops at the first block
        // boundary: a well-formed message reaches it exactly at the end of
        // the tail, which then is the sync flush's empty stored block.
        // Output here is rare, and bounded like the rest: one byte past
        // the limit at most, so that overflowing is visible.
        let room = (limit + 1).saturating_sub(out.len());
        if room == 0 {
            return Err(Error::MessageTooLarge { limit });
        }
        let mut sink = [0u8; 32];
        let sink = &mut sink[..room.min(32)];
        let (status, consumed, produced) = step(d, &TAIL_THEN_EMPTY, sink, InflateFlush::Block)?;
        if consumed > TAIL.len() {
            // Past the end of the message and still inside a block.
            return Err(Error::Compression);
        }
        if (status, consumed, produced) == (Status::Ok, TAIL.len(), 0) {
            return match boundary(d) {
                Boundary::Clean => Ok(()),
                // The message ended with a final block (RFC 7692 7.2.3.3):
                // the next one starts a new stream, on the same window.
                Boundary::StreamEnd => {
                    self.state = Some(self.fresh_state()?);
                    Ok(())
                }
                Boundary::Inside => Err(Error::Compression),
            };
        }
        // Rare: output, a boundary or the end of a stream inside the tail.
        // The rest of the tail then starts no dynamic block header that
        // the probe could complete: a header read from its bits is one of
        // an invalid block, or of a dynamic block claiming 288 literal and
        // length codes (HLIT from the FF bits), which zlib refuses.
        let start = out.len();
        out.extend_from_slice(&sink[..produced]);
        self.took(out, start, limit, utf8.as_deref_mut())?;
        if status == Status::StreamEnd {
            self.restart_within(out)?;
        }
        self.inflate(&TAIL[consumed..], out, limit, utf8)?;
        match self.state.as_mut().map(at_block_boundary) {
            Some(true) => Ok(()),
            _ => Err(Error::Compression),
        }
    }
}

/// The sending half: compresses whole messages.
pub struct Deflater {
    window_bits: u8,
    level: u8,
    mem_level: u8,
    /// We start every message afresh (our no_context_takeover).
    no_context: bool,
    /// Drop the zlib state after every message.
    free: bool,
    state: Option<Deflate>,
    /// With `free` and context takeover: what the peer's window holds.
    history: History,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("window_bits", &self.window_bits)
            .field("mem_level", &self.mem_level)
            .field("allocated", &self.state.is_some())
            .field("history", &self.history.bytes.len())
            .finish()
    }
}

impl Deflater {
    /// A compressor using `window_bits` (9..=15) at `level`, with zlib's
    /// default memory level (8), freeing its state between messages when
    /// `reset_after_message` (as with the default [`FreeState::Cheap`]).
    pub fn new(window_bits: u8, level: u32, reset_after_message: bool) -> Deflater {
        Deflater::with_options(
            window_bits,
            level,
            reset_after_message,
            8,
            reset_after_message,
        )
    }

    /// [`Deflater::new`] with a zlib `mem_level` (1..=9, clamped) and the
    /// choice of freeing the zlib state after every message (`free`).
    pub fn with_options(
        window_bits: u8,
        level: u32,
        reset_after_message: bool,
        mem_level: u8,
        free: bool,
    ) -> Deflater {
        Deflater {
            window_bits: self::window_bits(window_bits),
            level: level.min(9) as u8,
            mem_level: mem_level.clamp(1, 9),
            no_context: reset_after_message,
            free,
            state: None,
            history: History::default(),
            scratch: Vec::new(),
        }
    }

    /// Bytes this deflater holds on the heap between messages (zlib's
    /// state when kept, the history kept for context takeover, the output
    /// scratch buffer), an estimate for memory reports and tests.
    pub fn retained_bytes(&self) -> usize {
        let zlib = if self.state.is_some() {
            deflate_state_bytes(self.window_bits, self.mem_level)
        } else {
            0
        };
        zlib + self.history.bytes.capacity() + self.scratch.capacity()
    }

    fn window(&self) -> usize {
        1 << self.window_bits
    }

    fn fresh_state(&self) -> Deflate {
        let mut c = Deflate::new_with_config(ZConfig {
            level: i32::from(self.level),
            // Negative: raw deflate, no zlib header.
            window_bits: -i32::from(self.window_bits),
            mem_level: i32::from(self.mem_level),
            ..ZConfig::default()
        });
        let dict = &self.history.bytes;
        if !dict.is_empty() {
            let start = dict.len().saturating_sub(self.window());
            // Only fails for zlib or gzip streams, or after input was
            // given; this is a fresh raw stream. Without the dictionary
            // the output is still valid, only larger.
            let _ = c.set_dictionary(&dict[start..]);
        }
        c
    }

    /// Compresses one message; the result (without the trailing
    /// `00 00 FF FF`) is valid until the next call.
    pub fn compress(&mut self, payload: &[u8]) -> &[u8] {
        self.scratch.clear();
        if payload.is_empty() {
            // zlib emits nothing for a second sync flush in a row, so the
            // loop below would wait forever for the marker. An empty
            // message is an empty stored block (RFC 7692 7.2.3.6), which
            // leaves the window as it is.
            self.scratch.push(0x00);
            return &self.scratch;
        }
        let mut c = match self.state.take() {
            Some(c) => c,
            None => self.fresh_state(),
        };
        let ok = deflate_sync(&mut c, payload, &mut self.scratch);
        if !ok {
            // zlib refused a healthy-looking stream: never loop or panic,
            // send the message in stored blocks (valid for any window, and
            // a fresh state after it refers to nothing older).
            stored_blocks(payload, &mut self.scratch);
            self.history.clear();
            return &self.scratch;
        }
        if !self.no_context && self.free {
            let window = self.window();
            self.history.push(payload, window);
            self.history.linear();
            self.history.settle();
        }
        if !self.free {
            if self.no_context {
                c.reset();
            }
            self.state = Some(c);
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

/// Compresses `payload` with a sync flush onto the empty `out`, and strips
/// the `00 00 FF FF` marker. False if zlib failed or stopped making
/// progress (out is then garbage).
fn deflate_sync(c: &mut Deflate, payload: &[u8], out: &mut Vec<u8>) -> bool {
    out.reserve(payload.len() / 2 + 64);
    let mut pos = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let start = out.len();
        let cap = out.capacity();
        // Zero-filled rather than uninitialised: no `unsafe`, and the
        // memset is small next to compressing the same bytes.
        out.resize(cap, 0);
        let (in0, out0) = (c.total_in(), c.total_out());
        let status = c.compress(&payload[pos..], &mut out[start..], DeflateFlush::SyncFlush);
        let consumed = (c.total_in() - in0) as usize;
        let produced = (c.total_out() - out0) as usize;
        out.truncate(start + produced);
        pos += consumed;
        if status.is_err() || (consumed == 0 && produced == 0) {
            return false;
        }
        // zlib has finished the flush once it returns with output room
        // to spare.
        if pos == payload.len() && start + produced < cap && out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
            return true;
        }
    }
}

/// `payload` as non-final stored deflate blocks (RFC 1951 3.2.4), then
/// the header byte of the sync flush's empty stored block whose remaining
/// `00 00 FF FF` the receiver appends.
fn stored_blocks(payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    for piece in payload.chunks(0xFFFF) {
        let n = piece.len() as u16;
        out.push(0x00);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out.push(0x00);
}

/// zlib-rs's inflate allocation (state plus a 32 KiB window, whatever the
/// window bits), measured by `tests/deflate_memory.rs`.
const INFLATE_STATE_BYTES: usize = 47_552;

/// zlib-rs's deflate allocation: window (2 x 2^bits), chain (2 x 2^bits),
/// a fixed 128 KiB hash head, pending and symbol buffers (7 x 2^(mem + 6))
/// and the state itself.
fn deflate_state_bytes(window_bits: u8, mem_level: u8) -> usize {
    (4 << window_bits) + (128 << 10) + (7 << (mem_level + 6)) + DEFLATE_STATE_OVERHEAD
}

/// The deflate state struct and alignment padding, measured.
const DEFLATE_STATE_OVERHEAD: usize = 3_200;

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

    /// An inflater for each `FreeState`, receiving (as a server) from a
    /// peer with or without context takeover.
    fn every_free_state(no_context: bool) -> Vec<(FreeState, Inflater)> {
        let p = DeflateParams {
            server_no_context_takeover: no_context,
            client_no_context_takeover: no_context,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        [FreeState::Never, FreeState::Cheap, FreeState::Always]
            .into_iter()
            .map(|free_state| {
                let cfg = DeflateConfig {
                    free_state,
                    ..DeflateConfig::default()
                };
                (free_state, halves(&p, true, &cfg).0)
            })
            .collect()
    }

    /// The limit holds while a message is finished too: here the message
    /// opens a stored block of 4 bytes and stops, so the flush marker
    /// appended at the end is read as those 4 bytes of content.
    #[test]
    fn finishing_a_message_stays_within_the_limit() {
        let msg = [0x00, 0x04, 0x00, 0xFB, 0xFF];
        for free in [false, true] {
            for limit in [0, 1, 2, 3] {
                let mut i = Inflater::with_options(15, false, free);
                let mut out = BytesMut::new();
                i.inflate(&msg, &mut out, limit, None).unwrap();
                let r = i.finish_message(&mut out, limit, None);
                assert_eq!(r, Err(Error::MessageTooLarge { limit }), "limit {limit}");
                assert!(out.len() <= limit + 1, "{} bytes, limit {limit}", out.len());
            }
        }
    }

    /// Receives whole messages in order, each fed in pieces of `piece`
    /// bytes, up to the first error (the connection fails there).
    fn receive(i: &mut Inflater, msgs: &[Vec<u8>], piece: usize) -> Vec<Result<Vec<u8>, Error>> {
        let mut got = Vec::new();
        for m in msgs {
            let mut out = BytesMut::new();
            let r = m
                .chunks(piece)
                .try_for_each(|c| i.inflate(c, &mut out, 1 << 20, None))
                .and_then(|()| i.finish_message(&mut out, 1 << 20, None));
            let failed = r.is_err();
            got.push(r.map(|()| out.to_vec()));
            if failed {
                break;
            }
        }
        got
    }

    /// Checks that every `FreeState`, with messages whole or a byte at a
    /// time, receives exactly `want`.
    fn expect(no_context: bool, msgs: &[Vec<u8>], want: &[Result<&[u8], Error>]) {
        let want: Vec<Result<Vec<u8>, Error>> =
            want.iter().map(|w| w.clone().map(<[u8]>::to_vec)).collect();
        for piece in [1, 1 << 20] {
            for (free_state, mut i) in every_free_state(no_context) {
                assert_eq!(
                    receive(&mut i, msgs, piece),
                    want,
                    "{free_state:?}, no_context {no_context}, pieces of {piece}"
                );
            }
        }
    }

    /// RFC 7692 7.2.3.1: "Hello" with the sync flush's tail stripped.
    const HELLO: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    /// 7.2.3.2: "Hello" again: a literal "H", then 4 bytes copied from 5
    /// back (context).
    const HELLO_AGAIN: &[u8] = &[0xf2, 0x00, 0x11, 0x00, 0x00];
    /// 7.2.3.3: "Hello" in a final block, then the empty stored block's
    /// first byte.
    const HELLO_FINAL: &[u8] = &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];

    /// A sender without the empty-block flush (RFC 7692 7.2.3.3): every
    /// message is a whole DEFLATE stream (final block), primed with the
    /// last window of what it sent before unless `no_context`, followed
    /// by the byte that remains of the empty stored block 7.2.1 appends.
    fn final_block_sender(msgs: &[&[u8]], no_context: bool) -> Vec<Vec<u8>> {
        let mut sent: Vec<u8> = Vec::new();
        msgs.iter()
            .map(|m| {
                let mut c = Deflate::new(6, false, 15);
                if !no_context && !sent.is_empty() {
                    let start = sent.len().saturating_sub(1 << 15);
                    c.set_dictionary(&sent[start..]).unwrap();
                }
                let mut out = vec![0u8; m.len() * 2 + 64];
                let status = c.compress(m, &mut out, DeflateFlush::Finish).unwrap();
                assert_eq!(status, Status::StreamEnd);
                out.truncate(c.total_out() as usize);
                out.push(0x00);
                sent.extend_from_slice(m);
                out
            })
            .collect()
    }

    fn chat(n: usize) -> Vec<u8> {
        format!("{{\"n\":{n},\"text\":\"{}\"}}", "hello there ".repeat(40)).into_bytes()
    }

    #[test]
    fn sync_flushed_messages_decode_in_every_free_state() {
        for no_context in [false, true] {
            let mut d = Deflater::new(15, 6, no_context);
            let plain: Vec<Vec<u8>> = (0..6).map(chat).chain([Vec::new()]).collect();
            let wire: Vec<Vec<u8>> = plain.iter().map(|m| d.compress(m).to_vec()).collect();
            if !no_context {
                // The later messages refer back into the earlier ones.
                assert!(wire[1].len() < wire[0].len() / 2, "{}", wire[1].len());
            }
            let want: Vec<Result<&[u8], Error>> = plain.iter().map(|m| Ok(&m[..])).collect();
            expect(no_context, &wire, &want);
        }
        // The RFC's own example, with context takeover.
        expect(
            false,
            &[HELLO.to_vec(), HELLO_AGAIN.to_vec()],
            &[Ok(b"Hello"), Ok(b"Hello")],
        );
    }

    #[test]
    fn a_message_ending_inside_a_block_fails_in_every_free_state() {
        let mut d = Deflater::new(15, 6, false);
        let big = d.compress(&chat(7)).to_vec();
        for no_context in [false, true] {
            for cut in [
                // No data at all: the tail is read as a stored block's
                // header announcing 0xFF00 bytes (fuzz regression deflate-3).
                Vec::new(),
                // Inside the fixed block of "Hello".
                HELLO[..3].to_vec(),
                // A whole message but for its last byte (the empty stored
                // block's header).
                big[..big.len() - 1].to_vec(),
                // Inside a stored block.
                vec![0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65],
                // A final block with nothing after it: the tail then
                // starts a new stream, inside a stored block's header.
                HELLO_FINAL[..7].to_vec(),
            ] {
                let msgs = [HELLO.to_vec(), cut, HELLO.to_vec()];
                expect(no_context, &msgs, &[Ok(b"Hello"), Err(Error::Compression)]);
            }
        }
    }

    #[test]
    fn a_message_ending_with_a_final_block_keeps_the_window() {
        // RFC 7692 7.2.3.3's "Hello", then 7.2.3.2's reference back into it.
        expect(
            false,
            &[HELLO_FINAL.to_vec(), HELLO_AGAIN.to_vec(), HELLO.to_vec()],
            &[Ok(b"Hello"), Ok(b"Hello"), Ok(b"Hello")],
        );
        // "Hello" stored, then an empty final stored block whose LEN and
        // NLEN are the stripped tail; the next message refers back.
        let stored_final = vec![
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x01,
        ];
        expect(
            false,
            &[stored_final, HELLO_AGAIN.to_vec()],
            &[Ok(b"Hello"), Ok(b"Hello")],
        );
        // Without context takeover a final block is just as fine.
        expect(
            true,
            &[HELLO_FINAL.to_vec(), HELLO.to_vec(), HELLO_FINAL.to_vec()],
            &[Ok(b"Hello"), Ok(b"Hello"), Ok(b"Hello")],
        );
        // A final block inside a message: the stream after it is on the
        // same window, so it may refer back into the message's own first
        // part, with or without context takeover (which resets the window
        // only between messages; fuzz regression deflate-6). The next
        // message then starts with an empty window again.
        let inside = [&HELLO_FINAL[..7], HELLO_AGAIN].concat();
        for no_context in [false, true] {
            expect(
                no_context,
                &[inside.clone(), HELLO.to_vec()],
                &[Ok(b"HelloHello"), Ok(b"Hello")],
            );
        }
        expect(
            true,
            &[inside.clone(), HELLO_AGAIN.to_vec()],
            &[Ok(b"HelloHello"), Err(Error::Compression)],
        );
        // A zlib sender finishing every message, with many messages and
        // references back across them (and past one window).
        let plain: Vec<Vec<u8>> = (0..40).map(|n| chat(n % 5).repeat(1 + n % 7)).collect();
        let refs: Vec<&[u8]> = plain.iter().map(|m| &m[..]).collect();
        for no_context in [false, true] {
            let wire = final_block_sender(&refs, no_context);
            if !no_context {
                assert!(wire[5].len() < 100, "{}", wire[5].len());
            }
            let want: Vec<Result<&[u8], Error>> = refs.iter().map(|m| Ok(*m)).collect();
            expect(no_context, &wire, &want);
        }
        // Final and sync-flushed messages mixed, with context.
        let mut d = Deflater::new(15, 6, false);
        let first = d.compress(&chat(1)).to_vec();
        let mut c = Deflate::new(6, false, 15);
        c.set_dictionary(&chat(1)).unwrap();
        let mut second = vec![0u8; 4096];
        c.compress(&chat(2), &mut second, DeflateFlush::Finish)
            .unwrap();
        second.truncate(c.total_out() as usize);
        second.push(0x00);
        assert!(second.len() < 40, "{}", second.len());
        let (one, two) = (chat(1), chat(2));
        let third = [b"H", &two[two.len() - 4..]].concat();
        expect(
            false,
            &[first, second, HELLO_AGAIN.to_vec()],
            &[Ok(&one), Ok(&two), Ok(&third)],
        );
    }

    #[test]
    fn history_keeps_the_last_window_in_order() {
        let window = 1000;
        let mut h = History::default();
        let mut all: Vec<u8> = Vec::new();
        let mut n = 0u8;
        for size in [
            0, 1, 7, 400, 999, 3, 1000, 1500, 250, 250, 250, 250, 251, 2, 998,
        ] {
            let piece: Vec<u8> = (0..size)
                .map(|_| {
                    n = n.wrapping_add(1);
                    n
                })
                .collect();
            h.push(&piece, window);
            all.extend_from_slice(&piece);
            assert!(h.bytes.capacity() <= window);
            if size % 2 == 1 {
                let tail = &all[all.len().saturating_sub(window)..];
                assert_eq!(h.linear(), tail, "after {size}");
            }
        }
        h.settle();
        assert_eq!(h.bytes, all[all.len() - window..]);
    }
}
