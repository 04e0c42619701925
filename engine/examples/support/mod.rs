//! A small blocking host shared by the examples: one thread per connection,
//! std sockets, the OS clock and the OS random source. It is the whole of
//! what a host does for evsock: feed bytes and time in (here read straight
//! into the connection's buffer), write bytes out.
#![allow(dead_code)]

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use evsock::ws::{Connection, Event, Output};
use evsock::Rng;

/// Milliseconds since the process started: the engine's clock.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Randomness from the operating system (a system call per `fill`: wrap it
/// in `evsock::BufferedRng` for clients, which ask for 4 bytes per frame).
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&mut self, dest: &mut [u8]) {
        getrandom::getrandom(dest).expect("OS random source failed");
    }
}

/// Drives `conn` over `stream` until it closes. `on_event` may call back
/// into the connection (to accept, send or close).
pub fn drive(
    conn: &mut Connection,
    stream: &mut TcpStream,
    mut on_event: impl FnMut(&mut Connection, Event),
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let deadline = loop {
            match conn.poll_output() {
                Output::Transmit(bytes) => stream.write_all(&bytes)?,
                Output::Event(e) => on_event(conn, e),
                Output::Wait(deadline) => break deadline,
            }
        };
        if conn.is_closed() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        let wait = deadline.map(|d| Duration::from_millis(d.saturating_sub(now_ms()).max(1)));
        stream.set_read_timeout(wait)?;
        // Straight into the connection's buffer; end of stream is handled
        // inside.
        match conn.read_from(stream, now_ms) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                conn.handle_timeout(now_ms())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => conn.handle_eof(now_ms()),
        }
    }
}

/// Echoes every message back, accepting any upgrade request.
pub fn echo(conn: &mut Connection, event: Event) {
    match event {
        Event::Request(_) => {
            let _ = conn.accept(Default::default());
        }
        Event::Message(m) => {
            let _ = conn.send(m);
        }
        _ => {}
    }
}
