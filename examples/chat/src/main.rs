fn main() {
    eprintln!("the chat demo is not built yet");
    std::process::exit(1);
}
