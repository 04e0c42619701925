//! The permessage-deflate path (RFC 7692) on its own: the engine's
//! `Deflater` and `Inflater`, fed in arbitrary chunks.
//!
//! Round trip: every message the engine compresses (any window, level,
//! with or without context takeover) is inflated back to itself, both by
//! the engine and by the independent `miniz_oxide` decoder in
//! `refinflate` (a fresh one per message without context takeover, which
//! proves the compressor did not refer back). A message over the limit
//! ends with `MessageTooLarge` instead.
//!
//! Raw: arbitrary bytes as compressed messages. Whatever the engine
//! produces is exactly what the reference decodes; it never holds more
//! than the limit plus one byte of output, nor more heap than the limit
//! and its window allow; `MessageTooLarge` only when the data really
//! expands past the limit; `InvalidUtf8` only for text that really is not
//! UTF-8, and fast: within one inflate step of the first bad byte; a
//! message that the reference leaves inside a block (no sync flush's empty
//! stored block at its end, RFC 7692 7.2.1) fails with `Compression`, and
//! only such a message or data the reference finds corrupt.
//!
//! Both ways, an inflater that keeps its zlib state between messages
//! (`FreeState::Never`) and one that frees it (the default) give the same
//! bytes and the same errors: a memory setting never changes what the
//! application gets.

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use evsock::ws::deflate::{Deflater, Inflater};
use evsock::ws::utf8::Utf8Validator;
use evsock::ws::Error;

use crate::gen::chunks;
use crate::mem::Meter;
use crate::refinflate::{RefEnd, RefInflater};
use crate::{ensure, Stop};

/// How much the engine inflates in one step before checking limits and
/// UTF-8 (`INFLATE_STEP` in engine/src/ws/deflate.rs).
const STEP: usize = 64 * 1024;

#[derive(Arbitrary, Debug)]
enum Input {
    RoundTrip {
        bits: u8,
        level: u8,
        reset: bool,
        limit: u32,
        sizes: Vec<u8>,
        msgs: Vec<Msg>,
    },
    Raw {
        bits: u8,
        reset: bool,
        limit: u16,
        text: bool,
        sizes: Vec<u8>,
        msgs: Vec<Vec<u8>>,
    },
}

#[derive(Arbitrary, Debug)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    /// A run of one byte: compresses to almost nothing (a small bomb).
    Repeat {
        byte: u8,
        count: u16,
    },
    /// Text repeated, for back references across messages.
    Again {
        text: String,
        times: u8,
    },
}

impl Msg {
    fn bytes(&self) -> (bool, Vec<u8>) {
        match self {
            Msg::Text(t) => (true, t.as_bytes().to_vec()),
            Msg::Binary(b) => (false, b.clone()),
            Msg::Repeat { byte, count } => (false, vec![*byte; *count as usize]),
            Msg::Again { text, times } => (true, text.repeat(*times as usize % 32).into_bytes()),
        }
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return Ok(());
    };
    match input {
        Input::RoundTrip {
            bits,
            level,
            reset,
            limit,
            sizes,
            msgs,
        } => round_trip(
            9 + bits % 7,
            (level % 10) as u32,
            reset,
            limit as usize % (1 << 20),
            &sizes,
            &msgs,
        ),
        Input::Raw {
            bits,
            reset,
            limit,
            text,
            sizes,
            msgs,
        } => raw(9 + bits % 7, reset, limit as usize, text, &sizes, &msgs),
    }
}

/// Heap an inflater may hold: its output (grown by doubling) plus the
/// window and zlib's tables, and with context takeover the history it
/// keeps to re-prime a freed state: the last window of output, let grow
/// to two windows before it is trimmed (so a capacity of up to four).
fn inflate_bound(limit: usize, bits: u8, reset: bool) -> isize {
    let history = if reset { 0 } else { 4 << bits };
    (2 * (limit + 1) + (1 << bits) + 48 * 1024 + history) as isize
}

fn round_trip(
    bits: u8,
    level: u32,
    reset: bool,
    limit: usize,
    sizes: &[u8],
    msgs: &[Msg],
) -> Result<(), Stop> {
    let mut d = Deflater::new(bits, level, reset);
    let mut engines = inflaters(bits, reset);
    let mut reference = RefInflater::new();
    for m in msgs.iter().take(16) {
        let (text, payload) = m.bytes();
        let wire = d.compress(&payload).to_vec();

        // The independent decoder gets the same message back.
        if reset {
            reference = RefInflater::new();
        }
        let mut back = Vec::new();
        let cap = payload.len() + 1;
        let e1 = reference.feed(&wire, &mut back, cap);
        let e2 = reference.finish_message(&mut back, cap);
        ensure!(
            e1 == RefEnd::Done && e2 == RefEnd::Done && back == payload,
            "deflate-output",
            "{} bytes (bits {bits}, level {level}, reset {reset}) compressed to {wire:02x?}, \
             which the reference inflates to {} bytes ({e1:?}/{e2:?})",
            payload.len(),
            back.len()
        );

        // And so does the engine, within the limit, kept or freed.
        for (free, i) in engines.iter_mut() {
            let mut meter = Meter::default();
            let mut out = meter.run(BytesMut::new);
            let mut v = Utf8Validator::new();
            let mut r = Ok(());
            for piece in chunks(&wire, sizes) {
                r = meter.run(|| i.inflate(piece, &mut out, limit, text.then_some(&mut v)));
                if r.is_err() {
                    break;
                }
            }
            if r.is_ok() {
                r = meter.run(|| i.finish_message(&mut out, limit, text.then_some(&mut v)));
            }
            ensure!(
                out.len() <= limit + 1,
                "inflate-limit",
                "{} bytes produced, limit {limit}",
                out.len()
            );
            ensure!(
                meter.peak() <= inflate_bound(limit, bits, reset),
                "inflate-memory",
                "inflating {} bytes held {} bytes of heap (limit {limit}, bits {bits}, free {free})",
                payload.len(),
                meter.peak()
            );
            if payload.len() > limit {
                ensure!(
                    r == Err(Error::MessageTooLarge { limit }),
                    "inflate-limit",
                    "{} bytes over a limit of {limit} inflated with {r:?}",
                    payload.len()
                );
                continue;
            }
            ensure!(
                r.is_ok() && out[..] == payload[..],
                "inflate-roundtrip",
                "{} bytes came back as {} ({r:?}; bits {bits}, level {level}, reset {reset}, \
                 free {free})",
                payload.len(),
                out.len()
            );
            if text {
                ensure!(
                    v.finish().is_ok(),
                    "inflate-utf8",
                    "valid text failed UTF-8 at the end"
                );
            }
        }
        if payload.len() > limit {
            // The connection is failed now; nothing more arrives.
            return Ok(());
        }
    }
    Ok(())
}

/// The engine's inflater as it frees its zlib state between messages
/// (the default, `FreeState::Cheap`) and as it keeps it
/// (`FreeState::Never`), by `free`.
fn inflaters(bits: u8, reset: bool) -> [(bool, Inflater); 2] {
    [
        (true, Inflater::with_options(bits, reset, true)),
        (false, Inflater::with_options(bits, reset, false)),
    ]
}

/// One message through one engine inflater, in pieces: its result, its
/// output, and the peak heap it held meanwhile.
fn inflate_one(
    i: &mut Inflater,
    wire: &[u8],
    sizes: &[u8],
    limit: usize,
    text: bool,
) -> Result<(Result<(), Error>, BytesMut, isize), Stop> {
    let mut meter = Meter::default();
    let mut out = meter.run(BytesMut::new);
    let mut v = Utf8Validator::new();
    let mut r = Ok(());
    for piece in chunks(wire, sizes) {
        r = meter.run(|| i.inflate(piece, &mut out, limit, text.then_some(&mut v)));
        ensure!(
            out.len() <= limit + 1,
            "inflate-limit",
            "{} bytes produced, limit {limit}",
            out.len()
        );
        if r.is_err() {
            break;
        }
    }
    if r.is_ok() {
        r = meter.run(|| i.finish_message(&mut out, limit, text.then_some(&mut v)));
    }
    // finish_message may inflate what zlib still holds: within the limit
    // too (regression deflate-5, fixed in the engine).
    ensure!(
        out.len() <= limit + 1,
        "inflate-limit-finish",
        "{} bytes produced by finish_message ({r:?}), limit {limit}",
        out.len()
    );
    Ok((r, out, meter.peak()))
}

fn raw(
    bits: u8,
    reset: bool,
    limit: usize,
    text: bool,
    sizes: &[u8],
    msgs: &[Vec<u8>],
) -> Result<(), Stop> {
    let [(_, mut freed), (_, mut kept)] = inflaters(bits, reset);
    let mut reference = RefInflater::new();
    // The messages since the inflaters last started afresh.
    let mut history: Vec<&[u8]> = Vec::new();
    for wire in msgs.iter().take(8) {
        if reset {
            history.clear();
        }
        history.push(wire);
        let (r, out, peak) = inflate_one(&mut freed, wire, sizes, limit, text)?;
        let (kept_r, kept_out, kept_peak) = inflate_one(&mut kept, wire, sizes, limit, text)?;
        ensure!(
            kept_r == r && kept_out == out,
            "inflate-free-state",
            "a kept zlib state gave {kept_r:?} and {} bytes, a freed one {r:?} and {} bytes; \
             bits {bits}, reset {reset}, input {wire:02x?}",
            kept_out.len(),
            out.len()
        );
        ensure!(
            peak.max(kept_peak) <= inflate_bound(limit, bits, reset),
            "inflate-memory",
            "inflating {} bytes held {} bytes of heap freed, {kept_peak} kept \
             (limit {limit}, bits {bits})",
            wire.len(),
            peak
        );

        // What the reference makes of the same bytes, up to just past
        // what the engine could have produced, and whether the message
        // left it at a block boundary.
        let cap = limit + 2;
        let mut want = Vec::new();
        let mut end = reference.feed(wire, &mut want, cap);
        if end == RefEnd::Done {
            end = reference.finish_message(&mut want, cap);
        }
        let inside_block = end == RefEnd::Done && !reference.at_block_boundary();
        if reset {
            reference = RefInflater::new();
        }
        let n = out.len();
        ensure!(
            want.len() >= n && want[..n] == out[..],
            "inflate-vs-reference",
            "engine produced {n} bytes ({r:?}) that are not what the reference decodes \
             ({} bytes, {end:?}); bits {bits}, input {wire:02x?}",
            want.len()
        );
        match &r {
            Ok(()) => {
                // Nothing the data holds is left out, and the message
                // ended on a block boundary. (zlib reports some corrupt
                // headers only once more input arrives, so a message cut
                // inside one yields its decodable prefix; the reference
                // may call that corrupt: known, see README.)
                ensure!(
                    !inside_block,
                    "inflate-midblock",
                    "engine accepted a message that ends inside a block; input {wire:02x?}"
                );
                ensure!(
                    end == RefEnd::Corrupt || (end == RefEnd::Done && want.len() == n),
                    "inflate-vs-reference",
                    "engine accepted {n} bytes, the reference decodes {} ({end:?}); \
                     input {wire:02x?}",
                    want.len()
                );
            }
            Err(Error::MessageTooLarge { .. }) => {
                ensure!(
                    want.len() > limit,
                    "inflate-limit",
                    "MessageTooLarge, but the data inflates to {} bytes ({end:?}), limit {limit}",
                    want.len()
                );
            }
            Err(Error::InvalidUtf8) => {
                let bad = std::str::from_utf8(&out)
                    .err()
                    .filter(|e| e.error_len().is_some());
                ensure!(
                    text && bad.is_some(),
                    "inflate-utf8",
                    "InvalidUtf8 for {n} bytes that are valid so far (text {text})"
                );
                let at = bad.map_or(0, |e| e.valid_up_to());
                ensure!(
                    n <= at + STEP,
                    "inflate-utf8-late",
                    "bad UTF-8 at byte {at} reported after {n} bytes"
                );
            }
            Err(Error::Compression) => {
                // A message ending inside a block (RFC 7692 7.2.1) is
                // refused. A window smaller than 15 bits refuses far
                // references the reference accepts, and so does zlib for
                // a distance past the start of the stream; otherwise both
                // must find it corrupt.
                ensure!(
                    inside_block
                        || bits < 15
                        || end != RefEnd::Done
                        || reaches_back(&history, limit),
                    "inflate-vs-reference",
                    "engine found corrupt data the reference decodes ({} bytes); \
                     input {wire:02x?}",
                    want.len()
                );
            }
            Err(e) => {
                return Err(crate::findings::violation(
                    "inflate-error",
                    format!("unexpected error {e:?}"),
                ))
            }
        }
        if r.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Do these messages refer back past the start of their stream? Decoded
/// with an empty window and with one full of 0xAA, they differ if so.
fn reaches_back(history: &[&[u8]], limit: usize) -> bool {
    let (mut a, mut b) = (RefInflater::new(), RefInflater::primed());
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let cap = history.len() * (limit + 2);
    for wire in history {
        a.feed(wire, &mut x, cap);
        a.finish_message(&mut x, cap);
        b.feed(wire, &mut y, cap);
        b.finish_message(&mut y, cap);
    }
    x != y
}

/// The decoded input, for triage (`FUZZ_EXPLAIN=1` with the replay example).
pub fn describe(data: &[u8]) -> String {
    match Input::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(i) => format!("{i:#?}"),
        Err(e) => format!("undecodable: {e}"),
    }
}
