//! The summary: every case, every contender, timed interleaved, plus the
//! memory each kind of idle connection holds, in one table of
//! `evsock / peer` ratios with the targets checked.
//!
//! `cargo bench -p evsock-benches --bench ratios -- [--quick] [--out FILE] [--filter TEXT] [--only NAME,NAME] [--no-memory]`
//!
//! `--quick` is a smoke run for CI: it checks that every contender agrees
//! on every case and prints the table; it never fails on the numbers.

use std::time::Duration;

use evsock_benches::alloc::Counting;
use evsock_benches::cases::{self, Size};
use evsock_benches::measure::{detail_table, run_case};
use evsock_benches::{memory, report};

// Counts nothing until the memory cases turn it on (see `alloc`).
#[global_allocator]
static ALLOC: Counting = Counting;

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
    let (size, budget, min_rounds, conns) = if quick {
        (Size::Quick, Duration::from_millis(250), 3, 200)
    } else {
        (Size::Full, Duration::from_secs(3), 15, 500)
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
                .retain(|c| c.name() == "evsock" || only.iter().any(|o| o.as_str() == c.name()));
        }
        let t = run_case(&mut case, budget, min_rounds);
        eprintln!("measured {} ({} rounds)", t.name, t.rounds);
        results.push(t);
    }
    let mem = if args.iter().any(|a| a == "--no-memory")
        || filter
            .as_ref()
            .is_some_and(|f| !"memory".contains(f.as_str()))
    {
        Vec::new()
    } else {
        eprintln!("measuring memory per idle connection ({conns} each)");
        memory::measure(conns)
    };
    let (table, tally) = report::summary(&results, &mem);
    let mut s = String::new();
    s.push_str(
        "evsock / peer, one run (throughput: above 1.00x evsock is faster; vs memcpy: share of \
         the copy ceiling; memory: total bytes per connection, below 1.00x evsock holds less)\n\n",
    );
    s.push_str(&table);
    s.push_str(&format!(
        "\nTargets met: {} of {} checked{}\n",
        tally.met,
        tally.checked,
        if quick {
            " (quick run: small samples, indicative only)"
        } else {
            ""
        }
    ));
    s.push_str(
        "\nEvery contender (absolute numbers are noisy on a shared machine; compare within a case only)\n\n",
    );
    s.push_str(&detail_table(&results));
    if !mem.is_empty() {
        s.push_str(&format!(
            "\nMemory per connection ({conns} connections each; heap counted by a global allocator, \
             inline = size of the connection struct; the socket itself is not counted)\n\n"
        ));
        s.push_str(&report::memory_detail(&mem));
    }
    print!("{s}");
    if let Some(path) = out {
        std::fs::write(&path, &s).expect("write --out file");
    }
}
