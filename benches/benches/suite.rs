//! The same cases as the ratio table, through criterion, for anyone who
//! wants its statistics and change detection:
//! `cargo bench -p evsock-benches --bench suite -- 'parse text 64 KiB'`.
//!
//! Criterion times one contender after another, so on a shared machine
//! its numbers drift between contenders; the `ratios` bench interleaves
//! them and is the one to quote.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use evsock_benches::cases::{self, Size};

fn suite(c: &mut Criterion) {
    for mut case in cases::all(Size::Quick) {
        let mut g = c.benchmark_group(case.name.clone());
        g.throughput(Throughput::Bytes(case.bytes_per_run));
        for contender in case.contenders.iter_mut() {
            let name = contender.name();
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        contender.prepare();
                        let t = std::time::Instant::now();
                        std::hint::black_box(contender.run());
                        total += t.elapsed();
                    }
                    total
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = suite
}
criterion_main!(benches);
