//! What freeing the permessage-deflate state between messages costs in
//! time, against the memory it saves; and what a lower `mem_level` costs
//! in ratio and time. Prints per-message times and same-run ratios.
//!
//! `cargo run --release -p evsock --example deflate-cost [-- --quick]`
//!
//! The two sides of each case run alternately, one message each, and the
//! median time per message is reported, so a noisy shared machine affects
//! both sides alike.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use evsock::ws::deflate::{Deflater, Inflater};

/// Chat-like JSON, `len` bytes; `seed` varies the content.
fn text(len: usize, seed: usize) -> Vec<u8> {
    let words = [
        "hello", "room", "evsock", "message", "typing", "ok", "lunch?",
    ];
    let mut s = String::with_capacity(len + 64);
    let mut i = seed * 1000;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user{}\",\"text\":\"{} {}\"}},",
            i * 7 % 23,
            words[i % words.len()],
            words[i * 3 % words.len()]
        ));
        i += 1;
    }
    s.truncate(len);
    s.into_bytes()
}

/// One side of a comparison: a compressor/decompressor pair and what it
/// does per message.
struct Side {
    d: Deflater,
    i: Inflater,
}

impl Side {
    fn new(bits: u8, no_context: bool, mem_level: u8, free: bool) -> Side {
        Side {
            d: Deflater::with_options(bits, 3, no_context, mem_level, free),
            i: Inflater::with_options(bits, no_context, free),
        }
    }

    /// Compresses `msg` and returns the compressed size.
    fn compress(&mut self, msg: &[u8]) -> usize {
        let n = self.d.compress(msg).len();
        self.d.release(4096);
        n
    }

    fn inflate(&mut self, wire: &[u8], out: &mut BytesMut) {
        out.clear();
        self.i.inflate(wire, out, 1 << 24, None).expect("inflate");
        self.i
            .finish_message(out, 1 << 24, None)
            .expect("finish message");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `a` and `b` alternately, one operation each, `n` times; returns
/// the median time of each (robust to the load spikes of a shared machine).
fn race(n: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    let (mut ta, mut tb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        a();
        ta.push(t.elapsed());
        let t = Instant::now();
        b();
        tb.push(t.elapsed());
    }
    (median(ta), median(tb))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("permessage-deflate: state kept vs freed between messages (level 3, mem_level 8)");
    println!(
        "{:<44} {:>10} {:>10} {:>7} {:>12}",
        "case", "kept us", "freed us", "ratio", "kept bytes"
    );
    for (bits, no_context, ctx) in [
        (15u8, true, "no context takeover, 2^15"),
        (15u8, false, "context takeover, 2^15"),
        (9u8, true, "no context takeover, 2^9"),
    ] {
        for len in [1024usize, 64 << 10] {
            let msgs: Vec<Vec<u8>> = (0..16).map(|k| text(len, k)).collect();
            let n = if len > 4096 { 300 } else { 3000 } / if quick { 5 } else { 1 };
            let mut kept = Side::new(bits, no_context, 8, false);
            let mut freed = Side::new(bits, no_context, 8, true);
            // Compress.
            let (mut nk, mut nf) = (0, 0);
            let (tk, tf) = race(
                n,
                || {
                    nk += 1;
                    black_box(kept.compress(black_box(&msgs[nk % 16])));
                },
                || {
                    nf += 1;
                    black_box(freed.compress(black_box(&msgs[nf % 16])));
                },
            );
            let held = kept.d.retained_bytes() as isize - freed.d.retained_bytes() as isize;
            println!(
                "{:<44} {:>10.2} {:>10.2} {:>6.2}x {:>12}",
                format!("compress {} KiB, {ctx}", len >> 10),
                us(tk),
                us(tf),
                tf.as_secs_f64() / tk.as_secs_f64(),
                held
            );
            // Inflate: one stream of messages, compressed beforehand in
            // order (with context takeover each depends on the previous),
            // read through once by each side.
            let mut src = Deflater::with_options(bits, 3, no_context, 8, false);
            let wires: Vec<Vec<u8>> = (0..n)
                .map(|j| src.compress(&msgs[j % 16]).to_vec())
                .collect();
            let (mut out_k, mut out_f) = (BytesMut::new(), BytesMut::new());
            let (mut nk, mut nf) = (0, 0);
            let (tk, tf) = race(
                n,
                || {
                    kept.inflate(black_box(&wires[nk]), &mut out_k);
                    nk += 1;
                },
                || {
                    freed.inflate(black_box(&wires[nf]), &mut out_f);
                    nf += 1;
                },
            );
            assert_eq!(&out_k[..], &out_f[..]);
            let held = kept.i.retained_bytes() as isize - freed.i.retained_bytes() as isize;
            println!(
                "{:<44} {:>10.2} {:>10.2} {:>6.2}x {:>12}",
                format!("inflate {} KiB, {ctx}", len >> 10),
                us(tk),
                us(tf),
                tf.as_secs_f64() / tk.as_secs_f64(),
                held
            );
        }
    }

    println!();
    println!("mem_level: compressed size and time (freed between messages, level 3, 2^15, no context takeover)");
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "case", "mem 8 us", "mem 1 us", "mem 8 B", "mem 1 B", "peak saved"
    );
    for len in [1024usize, 16 << 10, 64 << 10, 1 << 20] {
        let msg = text(len, 0);
        let n = ((16 << 20) / len.max(4096) / if quick { 5 } else { 1 }).max(9);
        let mut m8 = Side::new(15, true, 8, true);
        let mut m1 = Side::new(15, true, 1, true);
        let (s8, s1) = (m8.compress(&msg), m1.compress(&msg));
        let (t8, t1) = race(
            n,
            || {
                black_box(m8.compress(black_box(&msg)));
            },
            || {
                black_box(m1.compress(black_box(&msg)));
            },
        );
        println!(
            "{:<24} {:>10.2} {:>10.2} {:>10} {:>10} {:>12}",
            format!("compress {} KiB", len >> 10),
            us(t8),
            us(t1),
            s8,
            s1,
            (7 << (8 + 6)) - (7 << (1 + 6))
        );
    }
}
