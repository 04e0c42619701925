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

/// Keeps the last `window` bytes seen in one direction, so that a freed
/// zlib state can be re-created primed with them (context takeover
/// without keeping zlib's own buffers).
#[derive(Debug, Default)]
struct History {
    bytes: Vec<u8>,
}

impl History {
    fn push(&mut self, data: &[u8], window: usize) {
        if data.len() >= window {
            self.bytes.clear();
            self.bytes.extend_from_slice(&data[data.len() - window..]);
            return;
        }
        // Let it grow to two windows before moving the tail down, so that
        // many small pieces cost amortized O(1) each.
        if self.bytes.len() + data.len() > 2 * window {
            let keep = window - data.len();
            let cut = self.bytes.len() - keep;
            self.bytes.drain(..cut);
        }
        self.bytes.extend_from_slice(data);
    }

    /// The last `window` bytes, with the allocation trimmed to them.
    fn settle(&mut self, window: usize) -> &[u8] {
        if self.bytes.len() > window {
            let cut = self.bytes.len() - window;
            self.bytes.drain(..cut);
        }
        if self.bytes.capacity() > self.bytes.len() + self.bytes.len() / 4 + 64 {
            self.bytes.shrink_to_fit();
        }
        &self.bytes
    }

    fn clear(&mut self) {
        self.bytes = Vec::new();
    }
}

fn window_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// The receiving half: inflates messages, bounded and UTF-8-checked as the
/// bytes come out.
pub struct Inflater {
    window_bits: u8,
    /// The peer starts every message afresh (its no_context_takeover).
    no_context: bool,
    /// Drop the zlib state after every message.
    free: bool,
    state: Option<Inflate>,
    /// With `free` and context takeover: what the peer may still refer to.
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
    /// state when kept, else the history kept for context takeover), an
    /// estimate for memory reports and tests.
    pub fn retained_bytes(&self) -> usize {
        self.state.as_ref().map_or(0, |_| INFLATE_STATE_BYTES) + self.history.bytes.capacity()
    }

    fn window(&self) -> usize {
        1 << self.window_bits
    }

    fn fresh_state(&self) -> Result<Inflate, Error> {
        let mut d = Inflate::new(false, self.window_bits);
        let dict = &self.history.bytes;
        if !dict.is_empty() {
            let start = dict.len().saturating_sub(self.window());
            d.set_dictionary(&dict[start..])
                .map_err(|_| Error::Compression)?;
        }
        Ok(d)
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
        let track = self.free && !self.no_context;
        let window = self.window();
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
            if produced > 0 {
                if let Some(v) = utf8.as_deref_mut() {
                    v.feed(&out[start..]).map_err(|_| Error::InvalidUtf8)?;
                }
                if track {
                    self.history.push(&out[start..], window);
                }
            }
            if out.len() > limit {
                return Err(Error::MessageTooLarge { limit });
            }
            if status == Status::StreamEnd {
                // A final block: the sender starts afresh after it, with
                // an empty window.
                self.history.clear();
                self.state = Some(Inflate::new(false, self.window_bits));
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

    /// Ends a message: feeds the flush marker the sender stripped, then
    /// frees or resets the zlib state as configured.
    pub fn finish_message(
        &mut self,
        out: &mut BytesMut,
        limit: usize,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), Error> {
        self.inflate(&TAIL, out, limit, utf8)?;
        if self.free {
            self.state = None;
            if !self.no_context {
                let window = self.window();
                self.history.settle(window);
            }
        } else if self.no_context {
            // zlib-rs's reset would also restore the default 2^15 window,
            // so a new state keeps the negotiated one instead.
            self.state = Some(Inflate::new(false, self.window_bits));
        }
        Ok(())
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
            self.history.settle(window);
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
}
