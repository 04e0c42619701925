//! The ratio table: every case, every contender, timed interleaved.
//!
//! `cargo bench -p evsock-benches --bench ratios -- [--quick] [--out FILE] [--filter TEXT] [--only NAME,NAME]`

use std::time::Duration;

use evsock_benches::cases::{self, Size};
use evsock_benches::measure::{detail_table, ratio_table, run_case};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let filter = value("--filter");
    let only: Option<Vec<String>> =
        value("--only").map(|v| v.split(',').map(str::to_string).collect());
    let out = value("--out");
    let (size, budget, min_rounds) = if quick {
        (Size::Quick, Duration::from_millis(300), 3)
    } else {
        (Size::Full, Duration::from_secs(3), 15)
    };
    let mut results = Vec::new();
    for mut case in cases::all(size) {
        if filter
            .as_ref()
            .is_some_and(|f| !case.name.contains(f.as_str()))
        {
            continue;
        }
        if let Some(only) = &only {
            case.contenders
                .retain(|c| only.iter().any(|o| o.as_str() == c.name()));
        }
        let t = run_case(&mut case, budget, min_rounds);
        eprintln!("measured {} ({} rounds)", t.name, t.rounds);
        results.push(t);
    }
    let mut report = String::new();
    report.push_str("Throughput ratios, evsock / peer (above 1.00x: evsock is faster; vs memcpy: share of the copy ceiling)\n\n");
    report.push_str(&ratio_table(&results));
    report.push_str(
        "\nEvery contender (absolute numbers are noisy on a shared machine; compare within a row group only)\n\n",
    );
    report.push_str(&detail_table(&results));
    print!("{report}");
    if let Some(path) = out {
        std::fs::write(&path, &report).expect("write --out file");
    }
}
