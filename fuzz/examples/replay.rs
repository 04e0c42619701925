//! Runs inputs through a target without libFuzzer, in strict mode, and says
//! what broke: `cargo run --example replay -- <target> <file>...`
//! With `FUZZ_EXPLAIN=1` it first prints the decoded input (connection and
//! session targets); the session target also prints a trace with
//! `FUZZ_TRACE=1`.

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: replay <target> <file>...");
    let f = evsock_fuzz::target(&name).unwrap_or_else(|| panic!("no target {name}"));
    evsock_fuzz::findings::set_strict(true);
    let mut bad = 0;
    for file in args {
        let data = std::fs::read(&file).unwrap();
        if std::env::var_os("FUZZ_EXPLAIN").is_some() {
            if let Some(d) = evsock_fuzz::describe(&name, &data) {
                println!("{file}:\n{d}");
            }
        }
        match std::panic::catch_unwind(|| f(&data)) {
            Ok(()) => println!("{file}: ok"),
            Err(_) => {
                bad += 1;
                println!("{file}: FAILED (message above)");
            }
        }
    }
    std::process::exit(if bad > 0 { 1 } else { 0 });
}
