//! Masking kernels by buffer length: where the vector kernels start to beat
//! the word loop (the crossover behind `SIMD_MIN_LEN`), and how fast each
//! runs on long buffers, from aligned and unaligned starts.
//!
//! `cargo bench -p evsock-benches --bench mask -- [--quick]`

use std::hint::black_box;
use std::time::Instant;

use evsock::ws::mask;

/// The word loop as it was before the vector kernels (unaligned words, no
/// head), kept here as the baseline.
fn words_before(buf: &mut [u8], key: [u8; 4]) {
    let k4 = u32::from_ne_bytes(key) as u64;
    let k8 = k4 | (k4 << 32);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let v = u64::from_ne_bytes(w) ^ k8;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut kernels = mask::kernels();
    kernels.insert(1, ("words-before", words_before));
    let lens: &[usize] = &[
        8,
        16,
        24,
        32,
        40,
        48,
        64,
        80,
        96,
        128,
        192,
        256,
        512,
        1024,
        4096,
        65536,
        1 << 20,
    ];
    let rounds = if quick { 3 } else { 15 };
    let bytes_per_sample: usize = if quick { 1 << 21 } else { 1 << 23 };
    let key = [0x12, 0x34, 0x56, 0x78];
    print!("| len | offset |");
    for (name, _) in &kernels {
        print!(" {name} |");
    }
    println!();
    print!("|--:|--:|");
    for _ in &kernels {
        print!("--:|");
    }
    println!();
    for &len in lens {
        for offset in [0usize, 1] {
            // Several buffers used in turn, so a call never reads bytes
            // the previous call has just stored (store-forwarding stalls
            // that real traffic, where every chunk is new, would not see);
            // together they stay in cache for the short lengths.
            let copies = if len <= 4096 { 16 } else { 1 };
            let stride = (len + 64 + 63) & !63;
            let mut storage = vec![0xA5u8; stride * copies + 64];
            let base = storage.as_ptr().align_offset(64);
            let calls = (bytes_per_sample / len.max(1)).clamp(16, 2_000_000);
            let mut samples: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
            for r in 0..rounds {
                for j in 0..kernels.len() {
                    let i = (j + r) % kernels.len();
                    let f = kernels[i].1;
                    let t = Instant::now();
                    for c in 0..calls {
                        let at = base + offset + (c % copies) * stride;
                        f(black_box(&mut storage[at..at + len]), black_box(key));
                    }
                    samples[i].push(t.elapsed().as_secs_f64() / calls as f64);
                }
            }
            print!("| {len} | {offset} |");
            for s in samples.iter_mut() {
                s.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let secs = s[0];
                if len >= 4096 {
                    print!(" {:.1} GB/s |", len as f64 / secs / 1e9);
                } else {
                    print!(" {:.1} ns |", secs * 1e9);
                }
            }
            println!();
        }
    }
}
