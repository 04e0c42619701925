//! What each pass over a received payload costs on its own, per byte, for
//! a 64 KiB text frame: the budget the parse cases are spent on. It shows
//! which passes dominate and what removing one would buy.
//!
//! `cargo bench -p evsock-benches --bench stages -- [--quick]`

use std::hint::black_box;
use std::time::Instant;

use evsock::ws::mask;
use evsock::ws::utf8::Utf8Validator;
use evsock_benches::stream::copy_piecewise;
use evsock_benches::wire;

fn best_secs(rounds: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, reps) = if quick { (5, 50) } else { (30, 200) };
    let len = 64 << 10;
    let text = wire::text_payload(len, 7);
    let ascii: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    let src = text.clone();
    // Destinations placed on purpose relative to the source: 16 bytes past
    // it modulo 4 KiB (where glibc's `rep movsb` crawls on this AMD CPU)
    // and half a page past it (where it does not).
    let mut room = vec![0u8; len + 3 * 4096];
    let place = |room: &Vec<u8>, rel: usize| {
        let d = room.as_ptr() as usize;
        let s = src.as_ptr() as usize;
        (rel + 4096 - (d.wrapping_sub(s) % 4096)) % 4096
    };
    let bad = place(&room, 16);
    let good = place(&room, 2048);
    let mut dst = vec![0u8; len + 64];
    let mut buf = text.clone();
    // A cut that falls inside a multi-byte character, as reads do.
    let mut cut = len / 2;
    while cut < len && (text[cut] & 0xC0) != 0x80 {
        cut += 1;
    }
    let rows: Vec<(&str, f64)> = vec![
        (
            "memcpy (2 KiB pieces)",
            best_secs(rounds, reps, || {
                copy_piecewise(&mut dst[..len], black_box(&src));
                black_box(&mut dst);
            }),
        ),
        (
            "memcpy (one call, dst 2048 B past src mod 4 KiB)",
            best_secs(rounds, reps, || {
                room[good..good + len].copy_from_slice(black_box(&src));
                black_box(&mut room);
            }),
        ),
        (
            "memcpy (one call, dst 16 B past src mod 4 KiB)",
            best_secs(rounds, reps, || {
                room[bad..bad + len].copy_from_slice(black_box(&src));
                black_box(&mut room);
            }),
        ),
        (
            "memcpy (2 KiB pieces, dst 16 B past src mod 4 KiB)",
            best_secs(rounds, reps, || {
                copy_piecewise(&mut room[bad..bad + len], black_box(&src));
                black_box(&mut room);
            }),
        ),
        (
            "apply_mask (in place)",
            best_secs(rounds, reps, || {
                mask::apply_mask(black_box(&mut buf), [1, 2, 3, 4], 1);
            }),
        ),
        (
            "apply_mask_words (in place)",
            best_secs(rounds, reps, || {
                mask::apply_mask_words(black_box(&mut buf), [1, 2, 3, 4]);
            }),
        ),
        (
            "simdutf8::basic, chat text",
            best_secs(rounds, reps, || {
                black_box(simdutf8::basic::from_utf8(black_box(&text)).is_ok());
            }),
        ),
        (
            "simdutf8::basic, ASCII",
            best_secs(rounds, reps, || {
                black_box(simdutf8::basic::from_utf8(black_box(&ascii)).is_ok());
            }),
        ),
        (
            "std::str::from_utf8, chat text",
            best_secs(rounds, reps, || {
                black_box(std::str::from_utf8(black_box(&text)).is_ok());
            }),
        ),
        (
            "Utf8Validator, whole frame",
            best_secs(rounds, reps, || {
                let mut v = Utf8Validator::new();
                v.feed(black_box(&text)).unwrap();
                v.finish().unwrap();
            }),
        ),
        (
            "Utf8Validator, cut mid-character",
            best_secs(rounds, reps, || {
                let mut v = Utf8Validator::new();
                v.feed(black_box(&text[..cut])).unwrap();
                v.feed(black_box(&text[cut..])).unwrap();
                v.finish().unwrap();
            }),
        ),
    ];
    // Copy-and-unmask (the reader's one pass over received payload), per
    // kernel, with the destination placed as `place` describes: 2048 bytes
    // past the source mod 4 KiB, the same plus 8 (misaligned stores), and
    // 16 bytes past it (4 KiB aliasing).
    let mut mroom = vec![std::mem::MaybeUninit::new(0u8); len + 3 * 4096];
    let mplace = |rel: usize| {
        let d = mroom.as_ptr() as usize;
        let s = src.as_ptr() as usize;
        (rel + 4096 - (d.wrapping_sub(s) % 4096)) % 4096
    };
    let spots = [
        ("dst 2048 B past src", mplace(2048)),
        ("dst 2056 B past src", mplace(2056)),
        ("dst 16 B past src", mplace(16)),
    ];
    let mut rows = rows;
    for (kname, kernel) in mask::copy_kernels() {
        if kname == "words" {
            continue;
        }
        for (where_, at) in spots {
            let secs = best_secs(rounds, reps, || {
                kernel(&mut mroom[at..at + len], black_box(&src), [1, 2, 3, 4]);
                black_box(&mut mroom);
            });
            let name: &'static str =
                Box::leak(format!("copy_masked {kname} ({where_})").into_boxed_str());
            rows.push((name, secs));
        }
    }
    println!("Cost of each pass over a 64 KiB text payload (best of {rounds} rounds)\n");
    println!("| pass | GB/s | ns per KiB |");
    println!("|---|--:|--:|");
    for (name, secs) in rows {
        println!(
            "| {name} | {:.1} | {:.1} |",
            len as f64 / secs / 1e9,
            secs * 1e9 / 64.0
        );
    }
}
