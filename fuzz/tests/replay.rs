//! Replays the checked-in seeds and every crash reproducer through the
//! target logic on stable Rust, without libFuzzer: `cargo test` in fuzz/.
//!
//! Reproducers live in `fuzz/regressions/<target>-<n>`. One whose finding
//! id is still listed in `evsock_fuzz::findings::OPEN` (a known engine bug
//! awaiting its fix) must still fail; every other one must pass.

use std::panic;
use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn run_strict(f: fn(&[u8]), data: &[u8]) -> Result<(), String> {
    evsock_fuzz::findings::set_strict(true);
    let r = panic::catch_unwind(|| f(data));
    evsock_fuzz::findings::set_strict(false);
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn seeds_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut n = 0;
    for (name, f) in evsock_fuzz::TARGETS {
        for p in files(&root.join(name)) {
            if !p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
            {
                continue;
            }
            let data = std::fs::read(&p).unwrap();
            if let Err(e) = run_strict(*f, &data) {
                panic!("{} fails: {e}", p.display());
            }
            n += 1;
        }
    }
    assert!(n > 0, "no seeds found");
}

#[test]
fn regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut failures = Vec::new();
    for p in files(&dir) {
        let file = p.file_name().unwrap().to_string_lossy().to_string();
        if file.ends_with(".md") {
            continue;
        }
        let target = file.rsplit_once('-').map_or(file.as_str(), |(t, _)| t);
        let f =
            evsock_fuzz::target(target).unwrap_or_else(|| panic!("{file}: no target {target:?}"));
        let data = std::fs::read(&p).unwrap();
        let result = run_strict(f, &data);
        let open = evsock_fuzz::findings::OPEN.iter().find(|id| {
            result
                .as_ref()
                .err()
                .is_some_and(|m| m.contains(&format!("[{id}]")))
        });
        match (&result, open) {
            (Ok(()), _) => {}
            (Err(_), Some(_)) => {}
            (Err(m), None) => failures.push(format!("{file}: {m}")),
        }
    }
    assert!(
        failures.is_empty(),
        "regressions fail:\n{}",
        failures.join("\n")
    );
}
