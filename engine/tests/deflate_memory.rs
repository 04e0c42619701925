//! Memory that permessage-deflate keeps per connection, counted by a
//! global allocator that tracks the live heap of the current thread (so
//! tests running in parallel do not disturb each other).
//!
//! `cargo test -p evsock --test deflate_memory -- --nocapture` prints the
//! per-connection report quoted in `ws/deflate.rs`.
//!
//! Freeing is never visible in what a connection delivers: the last tests
//! send a message ending inside a DEFLATE block (1007 in every
//! `FreeState`) and messages ending with a final block (read on, window
//! kept).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use evsock::ws::deflate::{Deflater, FreeState, Inflater};
use evsock::ws::{Accept, ClientRequest, Config, Connection, DeflateConfig, Error, Event, Message};
use evsock::SeededRng;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    // `try_with`: the allocator also runs while thread locals are torn down.
    let _ = LIVE.try_with(|l| l.set(l.get() + n));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.with(|l| l.get())
}

/// Live heap growth caused by building the value with `f` (the value is
/// returned so that it stays alive while measured).
fn grown<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let before = live();
    let v = f();
    (v, live() - before)
}

/// A JSON-ish 1 KiB text, compressible like chat traffic.
fn text(len: usize, seed: usize) -> String {
    let mut s = String::with_capacity(len);
    let mut i = seed;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"user\":\"u{}\",\"text\":\"hello {}\"}},",
            i % 17,
            i
        ));
        i += 1;
    }
    s.truncate(len);
    s
}

fn round(d: &mut Deflater, i: &mut Inflater, msg: &[u8]) {
    let wire = d.compress(msg).to_vec();
    let mut out = BytesMut::new();
    i.inflate(&wire, &mut out, 1 << 24, None).unwrap();
    i.finish_message(&mut out, 1 << 24, None).unwrap();
    assert_eq!(&out[..], msg);
}

#[test]
fn the_size_estimates_match_what_zlib_allocates() {
    for bits in [9u8, 12, 15] {
        for mem in [1u8, 4, 8, 9] {
            // Kept state, context takeover: exactly zlib's allocation stays
            // (plus the scratch buffer the estimate also counts).
            let ((d, i), held) = grown(|| {
                let mut d = Deflater::with_options(bits, 3, false, mem, false);
                let mut i = Inflater::with_options(bits, false, false);
                round(&mut d, &mut i, text(1024, 0).as_bytes());
                (d, i)
            });
            let estimate = (d.retained_bytes() + i.retained_bytes()) as isize;
            // The two structs live on the stack; the rest is heap.
            let err = (held - estimate).abs();
            assert!(
                err <= estimate / 50,
                "bits {bits} mem {mem}: counted {held}, estimated {estimate}"
            );
        }
    }
}

#[test]
fn freeing_keeps_only_the_window_of_history() {
    let msg = text(1024, 1);
    for bits in [9u8, 15] {
        // Context takeover both ways: the history is what is kept, at most
        // one window and never more than was sent.
        let ((d, i), held) = grown(|| {
            let mut d = Deflater::with_options(bits, 3, false, 8, true);
            let mut i = Inflater::with_options(bits, false, true);
            round(&mut d, &mut i, msg.as_bytes());
            (d, i)
        });
        let window = 1usize << bits;
        assert!(
            i.retained_bytes() <= window.min(msg.len()) + 64,
            "bits {bits}: inflater keeps {}",
            i.retained_bytes()
        );
        // The deflater also keeps its scratch output (the connection
        // releases it past `buffer_retain`).
        assert!(
            d.retained_bytes() <= window.min(msg.len()) + 64 + msg.len(),
            "bits {bits}: deflater keeps {}",
            d.retained_bytes()
        );
        let estimate = (d.retained_bytes() + i.retained_bytes()) as isize;
        assert!(
            (held - estimate).abs() <= 64,
            "bits {bits}: counted {held}, estimated {estimate}"
        );
        drop((d, i));
    }
    // No context takeover: nothing but the scratch output.
    let ((mut d, i), held) = grown(|| {
        let mut d = Deflater::with_options(15, 3, true, 8, true);
        let mut i = Inflater::with_options(15, true, true);
        round(&mut d, &mut i, msg.as_bytes());
        (d, i)
    });
    assert_eq!(i.retained_bytes(), 0);
    d.release(0);
    assert_eq!(d.retained_bytes(), 0);
    assert!(held <= msg.len() as isize, "counted {held}");
}

#[test]
fn freed_states_still_round_trip_with_context_across_many_messages() {
    // A long conversation with context takeover through freed states: each
    // message is compressed against the previous ones through the preset
    // dictionary, so repeats compress to almost nothing.
    for bits in [9u8, 10, 15] {
        let mut d = Deflater::with_options(bits, 6, false, 1, true);
        let mut i = Inflater::with_options(bits, false, true);
        let mut kept_d = Deflater::with_options(bits, 6, false, 1, false);
        let mut kept_i = Inflater::with_options(bits, false, false);
        for n in 0..40 {
            let msg = text(300 + 97 * n, n % 5);
            round(&mut d, &mut i, msg.as_bytes());
            round(&mut kept_d, &mut kept_i, msg.as_bytes());
        }
        // The preset dictionary compresses as well as a kept state.
        let again = text(300, 4);
        let freed = d.compress(again.as_bytes()).len();
        let kept = kept_d.compress(again.as_bytes()).len();
        let fresh = Deflater::new(bits, 6, true)
            .compress(again.as_bytes())
            .len();
        assert!(
            freed <= kept + 8 && freed * 3 < fresh * 2,
            "bits {bits}: freed {freed}, kept {kept}, fresh {fresh} bytes"
        );
    }
}

#[test]
fn a_freed_inflater_reads_a_kept_deflater_and_back() {
    for bits in [9u8, 15] {
        let mut kept_d = Deflater::with_options(bits, 6, false, 8, false);
        let mut freed_i = Inflater::with_options(bits, false, true);
        let mut freed_d = Deflater::with_options(bits, 6, false, 8, true);
        let mut kept_i = Inflater::with_options(bits, false, false);
        for n in 0..30 {
            let msg = text(200 + 311 * n, n % 3);
            round(&mut kept_d, &mut freed_i, msg.as_bytes());
            round(&mut freed_d, &mut kept_i, msg.as_bytes());
        }
    }
}

fn client(cfg: Config) -> Connection {
    let req = ClientRequest::new("localhost", "/chat");
    Connection::client(cfg, req, Box::new(SeededRng::new(3)), 0)
}

fn transmit(c: &mut Connection) -> Vec<u8> {
    let mut v = Vec::new();
    while let Some(b) = c.poll_transmit() {
        v.extend_from_slice(&b);
    }
    v
}

/// Heap growth of one server connection (its struct aside) in three
/// states: handshake done, one 1 KiB text received (and dropped by the
/// host), the same text sent back; `shrink_idle` after each.
#[derive(Debug)]
struct Report {
    idle: isize,
    after_in: isize,
    after_echo: isize,
}

/// The server uses `server`, the client offers `client_side` (`None`:
/// no deflate on that side).
fn measure(server: Option<DeflateConfig>, client_side: Option<DeflateConfig>) -> Report {
    let cfg = |d: Option<DeflateConfig>| Config {
        deflate: d.map(|d| DeflateConfig { threshold: 0, ..d }),
        buffer_retain: 0,
        ..Config::without_timers()
    };
    let (scfg, ccfg) = (cfg(server), cfg(client_side));
    let msg = text(1024, 7);
    // The client's handshake and first message, made before counting: a
    // first message does not depend on the server it goes to.
    let mut c = client(ccfg);
    let handshake = transmit(&mut c);
    let mut other = Connection::server(scfg.clone(), 0);
    other.handle_input(0, &handshake);
    assert!(matches!(other.poll_event(), Some(Event::Request(_))));
    other.accept(Accept::default()).unwrap();
    c.handle_input(0, &transmit(&mut other));
    while c.poll_event().is_some() {}
    c.send_text(&msg).unwrap();
    let wire = transmit(&mut c);
    let deflate = other.deflate().is_some();
    assert_eq!(wire[0] & 0x40 != 0, deflate, "compressed iff negotiated");

    let base = live();
    let mut s = Connection::server(scfg, 0);
    s.handle_input(0, &handshake);
    assert!(matches!(s.poll_event(), Some(Event::Request(_))));
    s.accept(Accept::default()).unwrap();
    transmit(&mut s);
    while s.poll_event().is_some() {}
    s.shrink_idle();
    let idle = live() - base;

    s.handle_input(1, &wire);
    let m = match s.poll_event() {
        Some(Event::Message(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(matches!(&m, Message::Text(t) if t.as_str() == msg));
    drop(m);
    s.shrink_idle();
    let after_in = live() - base;

    // `msg` was allocated before counting started.
    s.send_text(&msg).unwrap();
    let out = transmit(&mut s).len();
    assert_eq!(out < msg.len(), deflate, "echo compressed iff negotiated");
    s.shrink_idle();
    let after_echo = live() - base;
    drop(s);
    Report {
        idle,
        after_in,
        after_echo,
    }
}

#[test]
fn per_connection_report() {
    let d = DeflateConfig::default();
    let with = |free_state: FreeState, d: &DeflateConfig| DeflateConfig {
        free_state,
        ..d.clone()
    };
    let lowest = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 9,
        client_max_window_bits: 9,
        mem_level: 1,
        ..d.clone()
    };
    // A server that keeps its compression context (and so its compressor).
    let server_ctx = DeflateConfig {
        server_no_context_takeover: false,
        ..d.clone()
    };
    let rows = [
        ("deflate off", None, None),
        ("defaults (free Cheap)", Some(d.clone()), Some(d.clone())),
        (
            "defaults, free Never",
            Some(with(FreeState::Never, &d)),
            Some(d.clone()),
        ),
        (
            "server context, free Cheap",
            Some(server_ctx.clone()),
            Some(server_ctx.clone()),
        ),
        (
            "server context, free Always",
            Some(with(FreeState::Always, &server_ctx)),
            Some(server_ctx.clone()),
        ),
        ("lowest memory", Some(lowest.clone()), Some(lowest.clone())),
        (
            "lowest memory, free Never",
            Some(with(FreeState::Never, &lowest)),
            Some(lowest.clone()),
        ),
    ];
    println!(
        "heap per server connection in bytes (Connection itself: {} B more)",
        std::mem::size_of::<Connection>()
    );
    println!(
        "{:<30} {:>8} {:>10} {:>10}",
        "settings", "idle", "1 KiB in", "1 KiB echo"
    );
    let mut got = Vec::new();
    for (name, s, c) in rows {
        let r = measure(s, c);
        println!(
            "{name:<30} {:>8} {:>10} {:>10}",
            r.idle, r.after_in, r.after_echo
        );
        got.push(r);
    }
    let [off, def, def_kept, ctx, ctx_always, low, low_kept] = &got[..] else {
        unreachable!()
    };
    let halves = (std::mem::size_of::<Inflater>() + std::mem::size_of::<Deflater>()) as isize;
    let inflate = 47_552;
    let deflate = |bits: isize, mem: isize| (4 << bits) + (128 << 10) + (7 << (mem + 6)) + 3_200;
    // Negotiating costs at most the two boxed halves while idle.
    assert!(def.idle - off.idle <= halves, "{def:?} vs {off:?}");
    // Defaults: a client with context takeover leaves its 1 KiB as history
    // (all of the window it has used); the compressor (no context
    // takeover) is freed after the echo.
    // (+ 160: the rest of the connection's I/O box, which the history
    // keeps; the writer's spare and the reader's front buffer handles are
    // 64 of it, the reader's receive-in-place bookkeeping 24.)
    assert!(def.after_in - def.idle <= 1024 + 160 + halves, "{def:?}");
    assert!(def.after_echo - def.after_in <= halves, "{def:?}");
    // Kept states: zlib's allocations stay.
    assert!(def_kept.after_in - def_kept.idle >= inflate, "{def_kept:?}");
    assert!(
        def_kept.after_echo - def_kept.idle >= inflate + deflate(15, 8),
        "{def_kept:?}"
    );
    // A server compressing with context: Cheap keeps the compressor,
    // Always keeps only the 1 KiB it sent.
    assert!(ctx.after_echo - ctx.after_in >= deflate(15, 8), "{ctx:?}");
    assert!(
        ctx_always.after_echo - ctx_always.after_in <= 1024 + 64 + halves,
        "{ctx_always:?}"
    );
    // Lowest memory frees everything.
    assert!(low.after_echo - low.idle <= halves, "{low:?}");
    assert!(
        low_kept.after_echo - low_kept.idle >= inflate + deflate(9, 1),
        "{low_kept:?}"
    );
}

/// An open server connection, deflate negotiated with `free_state` and
/// the client keeping its context between messages.
fn open_server(free_state: FreeState) -> Connection {
    let cfg = |free_state| Config {
        deflate: Some(DeflateConfig {
            free_state,
            ..DeflateConfig::default()
        }),
        ..Config::without_timers()
    };
    let mut c = client(cfg(FreeState::Cheap));
    let mut s = Connection::server(cfg(free_state), 0);
    s.handle_input(0, &transmit(&mut c));
    assert!(matches!(s.poll_event(), Some(Event::Request(_))));
    s.accept(Accept::default()).unwrap();
    transmit(&mut s);
    while s.poll_event().is_some() {}
    let p = s.deflate().expect("deflate negotiated");
    assert!(!p.client_no_context_takeover);
    s
}

/// A masked (key 0) compressed text frame, FIN set.
fn compressed_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![0xC1, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// RFC 7692 7.2.3.3: "Hello" in a final block. 7.2.3.2: "H" and 4 bytes
/// copied from 5 back.
const HELLO_FINAL: &[u8] = &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
const HELLO_AGAIN: &[u8] = &[0xf2, 0x00, 0x11, 0x00, 0x00];

#[test]
fn every_free_state_fails_a_message_ending_inside_a_block_with_1007() {
    for free_state in [FreeState::Never, FreeState::Cheap, FreeState::Always] {
        // An empty compressed payload: the tail alone is a stored block's
        // header, and the block would run into the next message.
        let mut s = open_server(free_state);
        s.handle_input(1, &compressed_text(&[]));
        match s.poll_event() {
            Some(Event::Closed(c)) => {
                assert_eq!(c.code.0, 1007, "{free_state:?}");
                assert_eq!(c.error, Some(Error::Compression), "{free_state:?}");
            }
            other => panic!("{free_state:?}: {other:?}"),
        }
        let wire = transmit(&mut s);
        assert_eq!(wire[0], 0x88, "{free_state:?}: a close frame");
        assert_eq!(&wire[2..4], &1007u16.to_be_bytes(), "{free_state:?}");
    }
}

#[test]
fn every_free_state_reads_on_after_a_final_block() {
    for free_state in [FreeState::Never, FreeState::Cheap, FreeState::Always] {
        let mut s = open_server(free_state);
        for (frame, want) in [
            (HELLO_FINAL, "Hello"),
            // A reference back across the final block (context takeover).
            (HELLO_AGAIN, "Hello"),
            (HELLO_FINAL, "Hello"),
        ] {
            s.handle_input(1, &compressed_text(frame));
            match s.poll_event() {
                Some(Event::Message(Message::Text(t))) => {
                    assert_eq!(t.as_str(), want, "{free_state:?}")
                }
                other => panic!("{free_state:?}: {other:?}"),
            }
        }
        assert!(transmit(&mut s).is_empty(), "{free_state:?}: no close");
    }
}
