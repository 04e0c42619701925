//! Runs inputs through a target without libFuzzer, in strict mode, and says
//! what broke: `cargo run --example replay -- <target> <file>...`

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: replay <target> <file>...");
    let f = evsock_fuzz::target(&name).unwrap_or_else(|| panic!("no target {name}"));
    evsock_fuzz::findings::set_strict(true);
    let mut bad = 0;
    for file in args {
        let data = std::fs::read(&file).unwrap();
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
