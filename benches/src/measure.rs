//! Interleaved timing and the ratio table.
//!
//! The machine is shared and noisy, so contenders of one case are never
//! timed one after the other in long blocks: each round runs every
//! contender once (in a rotating order, each timed run right after an
//! untimed one of the same contender), and the fastest run of each over
//! many rounds is compared. Interference from other processes only ever
//! adds time, so the minimum is the steadiest estimate of what the code
//! itself costs; the median is shown next to it in the detail table.
//! Ratios from one run are meaningful; absolute numbers are only context.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::contenders::{Contender, Outcome};

/// One benchmark case: a job and everyone who does it.
pub struct Case {
    /// Row label.
    pub name: String,
    /// What every contender must produce per run.
    pub expect: Outcome,
    /// Bytes each run moves (wire bytes for parse, payload for encode),
    /// for MiB/s.
    pub bytes_per_run: u64,
    /// The contenders; the first must be evsock.
    pub contenders: Vec<Box<dyn Contender>>,
}

/// Timing results of one case.
#[derive(Clone, Debug)]
pub struct Timed {
    /// Row label.
    pub name: String,
    /// Messages (or pings) per run.
    pub units_per_run: u64,
    /// Bytes per run.
    pub bytes_per_run: u64,
    /// Fastest seconds per run, by contender name.
    pub best: Vec<(&'static str, f64)>,
    /// Median seconds per run, by contender name.
    pub medians: Vec<(&'static str, f64)>,
    /// Rounds measured.
    pub rounds: usize,
}

impl Timed {
    /// Fastest seconds per run of a contender.
    pub fn secs(&self, name: &str) -> Option<f64> {
        self.best.iter().find(|(n, _)| *n == name).map(|x| x.1)
    }

    /// Throughput ratio `a / b` (above 1: `a` is faster).
    pub fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        Some(self.secs(b)? / self.secs(a)?)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs a case: one checked warm-up run per contender, then rounds until
/// `budget` is spent and at least `min_rounds` were done.
pub fn run_case(case: &mut Case, budget: Duration, min_rounds: usize) -> Timed {
    let k = case.contenders.len();
    for c in case.contenders.iter_mut() {
        c.prepare();
        let got = c.run();
        assert_eq!(
            got,
            case.expect,
            "{}: {} produced a different outcome",
            case.name,
            c.name()
        );
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); k];
    let start = Instant::now();
    let mut round = 0;
    while round < min_rounds || start.elapsed() < budget {
        for j in 0..k {
            let i = (j + round) % k;
            let c = &mut case.contenders[i];
            // An untimed run first, so each contender is timed with its own
            // working set warm rather than with whatever the previous one
            // left in the caches (the 1 MiB cases otherwise swing wildly
            // with the order).
            c.prepare();
            std::hint::black_box(c.run());
            c.prepare();
            let t = Instant::now();
            let out = c.run();
            let dt = t.elapsed().as_secs_f64();
            std::hint::black_box(out);
            samples[i].push(dt);
        }
        round += 1;
        if round >= 10_000 {
            break;
        }
    }
    let medians = case
        .contenders
        .iter()
        .zip(samples.iter_mut())
        .map(|(c, s)| (c.name(), median(s)))
        .collect();
    // `median` sorted the samples.
    let best = case
        .contenders
        .iter()
        .zip(samples.iter())
        .map(|(c, s)| (c.name(), s[0]))
        .collect();
    Timed {
        name: case.name.clone(),
        units_per_run: (case.expect.messages + case.expect.pongs).max(1),
        bytes_per_run: case.bytes_per_run,
        best,
        medians,
        rounds: round,
    }
}

fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Every contender's throughput, for context.
pub fn detail_table(results: &[Timed]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| case | contender | msg/s (best) | MiB/s (best) | MiB/s (median) | rounds |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|");
    let mib = |t: &Timed, secs: f64| t.bytes_per_run as f64 / secs / (1024.0 * 1024.0);
    for t in results {
        for ((name, best), (_, med)) in t.best.iter().zip(&t.medians) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.0} | {} |",
                t.name,
                name,
                fmt_rate(t.units_per_run as f64 / best),
                mib(t, *best),
                mib(t, *med),
                t.rounds
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
