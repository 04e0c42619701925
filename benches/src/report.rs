//! The one summary table: every throughput case and every memory case,
//! each as `evsock / peer`, with the targets checked against the
//! numbers of the same run.

use std::fmt::Write as _;

use crate::measure::Timed;
use crate::memory::MemCase;

/// A target from the issue, checked on one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// evsock / `peer` throughput at least `min`.
    AtLeast {
        /// The peer's contender name.
        peer: &'static str,
        /// The smallest acceptable ratio.
        min: f64,
    },
    /// evsock's total bytes per connection below `max`.
    BytesBelow(f64),
}

impl Target {
    fn label(self) -> String {
        match self {
            Target::AtLeast { peer, min } => format!(">= {min:.1}x {peer}"),
            Target::BytesBelow(b) => format!("< {b:.0} B"),
        }
    }
}

/// The targets for a throughput case, by its name.
pub fn targets_for(case: &str) -> Vec<Target> {
    let mut v = Vec::new();
    if case == "parse text 20 B" || case == "parse text 1 KiB" {
        v.push(Target::AtLeast {
            peer: "tungstenite",
            min: 1.5,
        });
    }
    if case.starts_with("parse") && case.ends_with("64 KiB") && !case.contains("fragmented") {
        v.push(Target::AtLeast {
            peer: "tungstenite",
            min: 2.0,
        });
        v.push(Target::AtLeast {
            peer: "memcpy",
            min: 0.8,
        });
    }
    if case.starts_with("encode+mask") {
        v.push(Target::AtLeast {
            peer: "tungstenite",
            min: 2.0,
        });
    }
    v
}

/// The memory target (evsock idle connection under 1 KiB), on the rows
/// of idle connections without permessage-deflate traffic.
pub fn memory_targets_for(case: &str) -> Vec<Target> {
    if case.starts_with("memory/idle conn") || case == "memory/deflate negotiated, fresh" {
        vec![Target::BytesBelow(1024.0)]
    } else {
        Vec::new()
    }
}

fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}x"),
        _ => "-".into(),
    }
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M/s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k/s", x / 1e3)
    } else {
        format!("{x:.0}/s")
    }
}

fn verdict(met: bool, targets: &[String]) -> String {
    if targets.is_empty() {
        return String::new();
    }
    format!(
        "{}: {}",
        targets.join(", "),
        if met { "met" } else { "**missed**" }
    )
}

/// How many targets the table checked, and how many were met.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Targets checked.
    pub checked: usize,
    /// Targets met.
    pub met: usize,
}

/// The summary table, and the tally of targets.
pub fn summary(results: &[Timed], memory: &[MemCase]) -> (String, Tally) {
    let mut s = String::new();
    let mut tally = Tally::default();
    let _ = writeln!(
        s,
        "| case | evsock | vs tungstenite | vs fastwebsockets | vs memcpy | vs serde_json (generic / raw) | target |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|---|");
    for t in results {
        let secs = t.secs("evsock").unwrap_or(f64::NAN);
        let mut labels = Vec::new();
        let mut all_met = true;
        for target in targets_for(&t.name) {
            if let Target::AtLeast { peer, min } = target {
                let Some(r) = t.ratio("evsock", peer) else {
                    continue;
                };
                tally.checked += 1;
                if r >= min {
                    tally.met += 1;
                } else {
                    all_met = false;
                }
                labels.push(target.label());
            }
        }
        let serde = match (t.secs("serde_json"), t.secs("serde_json-raw")) {
            (None, None) => "-".to_string(),
            _ => format!(
                "{} / {}",
                ratio(t.ratio("evsock", "serde_json")),
                ratio(t.ratio("evsock", "serde_json-raw"))
            ),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            t.name,
            rate(t.units_per_run as f64 / secs),
            ratio(t.ratio("evsock", "tungstenite")),
            ratio(t.ratio("evsock", "fastwebsockets")),
            ratio(t.ratio("evsock", "memcpy")),
            serde,
            verdict(all_met, &labels),
        );
    }
    for m in memory {
        let e = m.evsock.total();
        let mut labels = Vec::new();
        let mut all_met = true;
        for target in memory_targets_for(&m.name) {
            if let Target::BytesBelow(max) = target {
                tally.checked += 1;
                if e < max {
                    tally.met += 1;
                } else {
                    all_met = false;
                }
                labels.push(target.label());
            }
        }
        let vs = |p: &Option<crate::memory::MemRow>| {
            p.as_ref()
                .map_or("-".to_string(), |p| format!("{:.3}x", e / p.total()))
        };
        let _ = writeln!(
            s,
            "| {} (bytes: lower is better) | {:.0} B | {} | {} | - | - | {} |",
            m.name,
            e,
            vs(&m.tungstenite),
            vs(&m.fastws),
            verdict(all_met, &labels),
        );
    }
    (s, tally)
}

/// Memory per connection in detail: heap and inline bytes of everyone.
pub fn memory_detail(memory: &[MemCase]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| case | contender | heap B | inline B | total B |\n|---|---|--:|--:|--:|"
    );
    for m in memory {
        let rows = [
            Some(("evsock", &m.evsock)),
            m.tungstenite.as_ref().map(|r| ("tungstenite", r)),
            m.fastws.as_ref().map(|r| ("fastwebsockets", r)),
        ];
        for (who, r) in rows.into_iter().flatten() {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {:.0} |",
                m.name,
                who,
                r.heap,
                r.inline,
                r.total()
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemRow;

    fn timed(name: &str, best: Vec<(&'static str, f64)>) -> Timed {
        Timed {
            name: name.into(),
            units_per_run: 100,
            bytes_per_run: 1000,
            medians: best.clone(),
            best,
            rounds: 3,
        }
    }

    #[test]
    fn targets_are_checked_against_the_ratios() {
        // evsock takes 1 s, tungstenite 2 s: 2.0x, enough for 1.5x.
        let met = timed(
            "parse text 20 B",
            vec![("evsock", 1.0), ("tungstenite", 2.0)],
        );
        // 64 KiB: 3.0x tungstenite (met) but 0.5x memcpy (missed).
        let half = timed(
            "parse text 64 KiB",
            vec![("evsock", 1.0), ("tungstenite", 3.0), ("memcpy", 0.5)],
        );
        let (table, tally) = summary(&[met, half], &[]);
        assert_eq!(tally, Tally { checked: 3, met: 2 });
        assert!(table.contains("| parse text 20 B | 100/s | 2.00x |"));
        assert!(table.contains(">= 1.5x tungstenite: met"));
        assert!(table.contains(">= 2.0x tungstenite, >= 0.8x memcpy: **missed**"));
    }

    #[test]
    fn memory_rows_compare_totals() {
        let row = |heap: f64, inline: usize| MemRow {
            name: String::new(),
            heap,
            inline,
        };
        let m = MemCase {
            name: "memory/idle conn, fresh".into(),
            evsock: row(500.0, 300),
            tungstenite: Some(row(7700.0, 300)),
            fastws: None,
        };
        let (table, tally) = summary(&[], &[m]);
        assert_eq!(tally, Tally { checked: 1, met: 1 });
        assert!(table.contains("| 800 B | 0.100x | - |"), "{table}");
    }
}
