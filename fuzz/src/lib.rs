//! Fuzz harnesses for the evsock engine.
//!
//! Every target's logic lives here, as a plain function over the fuzzer's
//! bytes, so that `fuzz_targets/*.rs` are one-liners and `cargo test` in this
//! crate can replay the checked-in seeds and regression reproducers on stable
//! Rust without libFuzzer.
//!
//! The targets check properties, not just "no crash": the engine's output is
//! re-parsed by the small, independent RFC 6455 and HTTP checkers in
//! [`wire`] and [`http`], the reader is compared against the naive decoder in
//! [`refdec`], and memory held by a connection is measured with the counting
//! allocator in [`mem`].

pub mod findings;
pub mod gen;
pub mod http;
pub mod mem;
pub mod refdec;
pub mod refinflate;
pub mod targets;
pub mod wire;

pub use findings::Stop;

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for the replay tests and tools.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame_header", targets::frame_header::run),
    ("reader", targets::reader::run),
    ("utf8", targets::utf8::run),
    ("handshake_request", targets::handshake_request::run),
    ("handshake_response", targets::handshake_response::run),
    ("connection", targets::connection::run),
    ("pair", targets::pair::run),
    ("deflate", targets::deflate::run),
    ("envelope", targets::envelope::run),
    ("session", targets::session::run),
    ("hub", targets::hub::run),
];

/// Looks a target up by name.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The decoded input of a structure-aware target, for triage; `None` for
/// targets whose input is plain bytes or that have no describer.
pub fn describe(name: &str, data: &[u8]) -> Option<String> {
    match name {
        "connection" => Some(targets::connection::describe(data)),
        "session" => Some(targets::session::describe(data)),
        "deflate" => Some(targets::deflate::describe(data)),
        _ => None,
    }
}

/// Hands `bytes` to `conn` the way a host reading straight into the
/// connection's buffer does: `read_from` until all are taken, or until the
/// connection, closed, stops reading (as `handle_input` would ignore them).
pub fn read_all_in_place(conn: &mut evsock::ws::Connection, now: u64, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match conn.read_from(&mut rest, || now) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
