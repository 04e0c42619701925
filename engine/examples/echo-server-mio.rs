//! An echo server on one thread: a `mio` poll loop drives every connection,
//! the way an event-loop host (or a binding's event loop) drives evsock.
//!
//! `cargo run --release -p evsock --example echo-server-mio -- 127.0.0.1:9002`
//!
//! Per connection the host keeps a socket, an evsock `Connection`, the bytes
//! a short write left over, and the connection's next deadline; everything
//! else (framing, pings, the close handshake, timeouts) is the engine's.
//! The loop:
//!
//! * readable: read straight into the connection's buffer until the socket
//!   is drained (edge-triggered), unless too much output is waiting for a
//!   peer that does not read (back-pressure: reading resumes once it drains);
//! * after any input, drain `poll_output`: events are answered (echoed),
//!   bytes written until the socket would block, the rest kept in order;
//! * writable: write what was kept, then resume reading if it was paused;
//! * sleep until the earliest deadline of any connection, and hand the
//!   connections whose deadline passed `handle_timeout`.

mod support;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use evsock::ws::{Config, Connection, Output};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use support::now_ms;

const LISTENER: Token = Token(0);

/// Output waiting for a slow reader beyond which its input is not read.
const PAUSE_AT: usize = 1 << 20;

/// How long a closed connection may take to read what is still unwritten.
const LINGER_MS: u64 = 5_000;

struct Client {
    sock: TcpStream,
    conn: Connection,
    /// Bytes the socket did not take yet, in order.
    unsent: VecDeque<Bytes>,
    unsent_len: usize,
    /// Input left unread because output backed up.
    paused: bool,
    /// The deadline this client is filed under in `Host::timers`.
    deadline: Option<u64>,
}

struct Host {
    poll: Poll,
    cfg: Arc<Config>,
    clients: HashMap<Token, Client>,
    /// `(deadline, token)` of every client with one, earliest first.
    timers: BTreeSet<(u64, Token)>,
    next_token: usize,
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let addr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let mut listener = TcpListener::bind(addr)?;
    let mut host = Host {
        poll: Poll::new()?,
        cfg: Arc::new(Config {
            subprotocols: vec!["chat".into()],
            ..Config::default()
        }),
        clients: HashMap::new(),
        timers: BTreeSet::new(),
        next_token: 1,
    };
    host.poll
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!(
        "echo-server-mio listening on ws://{}",
        listener.local_addr()?
    );
    let mut events = Events::with_capacity(1024);
    loop {
        let timeout = host
            .timers
            .first()
            .map(|&(at, _)| Duration::from_millis(at.saturating_sub(now_ms())));
        match host.poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in &events {
            if ev.token() == LISTENER {
                host.accept_all(&mut listener)?;
                continue;
            }
            let t = ev.token();
            if ev.is_writable() {
                host.on_writable(t);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                host.on_readable(t);
            }
        }
        host.fire_timers();
    }
}

impl Host {
    fn accept_all(&mut self, listener: &mut TcpListener) -> io::Result<()> {
        loop {
            let (mut sock, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors and the like: stop accepting for now and
                // keep serving; the next connection attempt raises a new edge.
                Err(_) => return Ok(()),
            };
            let _ = sock.set_nodelay(true);
            let t = Token(self.next_token);
            self.next_token += 1;
            self.poll
                .registry()
                .register(&mut sock, t, Interest::READABLE | Interest::WRITABLE)?;
            let conn = Connection::server(self.cfg.clone(), now_ms());
            self.clients.insert(
                t,
                Client {
                    sock,
                    conn,
                    unsent: VecDeque::new(),
                    unsent_len: 0,
                    paused: false,
                    deadline: None,
                },
            );
            // The request may already be there.
            self.on_readable(t);
        }
    }

    fn on_readable(&mut self, t: Token) {
        let Some(c) = self.clients.get_mut(&t) else {
            return;
        };
        read_all(c);
        self.settle(t);
    }

    /// The socket takes bytes again: `settle` writes what was kept (its
    /// `pump` ends in `write_unsent`) and resumes reading if that made room.
    fn on_writable(&mut self, t: Token) {
        self.settle(t);
    }

    fn fire_timers(&mut self) {
        let now = now_ms();
        while let Some(&(at, t)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(c) = self.clients.get_mut(&t) {
                c.deadline = None;
                if c.conn.is_closed() {
                    // Lingered long enough: whatever is unwritten is dropped.
                    c.unsent.clear();
                    c.unsent_len = 0;
                } else {
                    c.conn.handle_timeout(now);
                }
            }
            self.settle(t);
        }
    }

    /// Drains the connection's output, files its deadline, and lets it go
    /// once it is closed and everything it had to say was written.
    fn settle(&mut self, t: Token) {
        let Some(c) = self.clients.get_mut(&t) else {
            return;
        };
        let mut deadline = pump(c);
        while c.paused && c.unsent_len < PAUSE_AT {
            // Writing made room: take the input left waiting, which may
            // produce more output.
            c.paused = false;
            read_all(c);
            deadline = pump(c);
        }
        if c.conn.is_closed() && !c.unsent.is_empty() {
            // The engine is done; the peer gets a while to read the rest.
            deadline = Some(c.deadline.unwrap_or_else(|| now_ms() + LINGER_MS));
        }
        if deadline != c.deadline {
            if let Some(old) = c.deadline {
                self.timers.remove(&(old, t));
            }
            if let Some(new) = deadline {
                self.timers.insert((new, t));
            }
            c.deadline = deadline;
        }
        if c.conn.is_closed() && c.unsent.is_empty() {
            if let Some(mut c) = self.clients.remove(&t) {
                if let Some(d) = c.deadline {
                    self.timers.remove(&(d, t));
                }
                let _ = self.poll.registry().deregister(&mut c.sock);
                let _ = c.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Reads until the socket is drained, the peer ends the stream, or output
/// backs up (then `paused` is set).
///
/// A read that fills less than the room it was given emptied the socket's
/// receive queue, so on Unix the loop stops there instead of paying one
/// more system call to hear `WouldBlock`: bytes that arrive later raise a
/// new readiness edge (tokio's sockets take the same shortcut). Elsewhere
/// it reads until `WouldBlock`, as `mio` documents.
fn read_all(c: &mut Client) {
    while !c.conn.is_closed() {
        if c.unsent_len >= PAUSE_AT {
            c.paused = true;
            return;
        }
        // `read_from` in two halves, to see how much room the read had.
        let room = c.conn.input_buffer();
        let want = room.len();
        let got = c.sock.read(room);
        let now = now_ms();
        match got {
            Ok(0) => {
                c.conn.commit_input(now, 0);
                c.conn.handle_eof(now);
                return;
            }
            Ok(n) => {
                c.conn.commit_input(now, n);
                // Answer as we go, so a long burst does not pile up input.
                pump(c);
                if cfg!(unix) && n < want {
                    return;
                }
            }
            Err(e) => {
                // Lets the room go.
                c.conn.commit_input(now, 0);
                match e.kind() {
                    io::ErrorKind::WouldBlock => return,
                    io::ErrorKind::Interrupted => {}
                    _ => {
                        c.conn.handle_eof(now);
                        return;
                    }
                }
            }
        }
    }
}

/// Drains `poll_output`: events are echoed, bytes queued and written as far
/// as the socket takes them. Returns the connection's next deadline.
fn pump(c: &mut Client) -> Option<u64> {
    let deadline = loop {
        match c.conn.poll_output() {
            Output::Transmit(b) => {
                c.unsent_len += b.len();
                c.unsent.push_back(b);
            }
            Output::Event(e) => support::echo(&mut c.conn, e),
            Output::Wait(d) => break d,
        }
    };
    write_unsent(c);
    deadline
}

/// Writes kept bytes until the socket would block.
fn write_unsent(c: &mut Client) {
    while let Some(front) = c.unsent.front_mut() {
        match c.sock.write(front) {
            Ok(0) => return,
            Ok(n) => {
                c.unsent_len -= n;
                if n == front.len() {
                    c.unsent.pop_front();
                } else {
                    let _ = front.split_to(n);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock: the next writable edge resumes. Anything else:
            // the read side will see the error and end the connection.
            Err(_) => return,
        }
    }
}
