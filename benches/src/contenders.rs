//! The implementations under test, each wrapped to do the same job on the
//! same bytes: evsock, tungstenite, fastwebsockets, and a plain memcpy of
//! the bytes as the physical ceiling.
//!
//! Server side ("parse"): read every frame of an [`Inbound`], unmask it,
//! validate text as UTF-8, reassemble fragments, answer pings, and hand
//! each whole message to the application (which only looks at its length).
//!
//! Client side ("encode"): send `count` binary messages, masked, flushing
//! after every [`BATCH`] messages into a [`Sink`], and in between whenever
//! [`WRITE_THROUGH`] bytes are waiting (tungstenite's default policy, which
//! the evsock host copies; fastwebsockets writes every frame at once).

use std::sync::Arc;

use bytes::Bytes;
use evsock::ws::{Accept, ClientRequest, Config, Connection, Event};
use evsock::SeededRng;

use crate::stream::{copy_piecewise, MemStream, Sink};
use crate::wire::{Inbound, UPGRADE_REQUEST};

/// What one run produced; every contender of a case must agree on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Whole data messages delivered (parse) or sent (encode).
    pub messages: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// Pong frames written in answer to pings.
    pub pongs: u64,
}

/// One implementation doing one case's job.
pub trait Contender {
    /// Short name for tables.
    fn name(&self) -> &'static str;
    /// Untimed setup before each run (fresh connection state).
    fn prepare(&mut self) {}
    /// The timed work.
    fn run(&mut self) -> Outcome;
}

/// Messages sent between two flushes on the client side.
pub const BATCH: usize = 16;

/// Bytes waiting to be written that make a client write them out before
/// the batch ends: tungstenite's default `write_buffer_size` (it writes to
/// the stream as soon as its buffer reaches it), applied by the evsock host
/// with `buffered_amount`, so that both keep what they write in cache.
pub const WRITE_THROUGH: usize = 128 << 10;

// ----- evsock -------------------------------------------------------------

/// The configuration evsock runs with in the comparisons: no timers (no
/// clock moves anyway) and no permessage-deflate, which neither peer here
/// does either.
pub fn bench_config() -> Config {
    Config {
        deflate: None,
        ..Config::without_timers()
    }
}

/// An evsock server connection that has completed its handshake.
pub fn evsock_server(cfg: Arc<Config>) -> Connection {
    let mut c = Connection::server(cfg, 0);
    c.handle_input(0, UPGRADE_REQUEST);
    match c.poll_event() {
        Some(Event::Request(_)) => {}
        other => panic!("expected an upgrade request, got {other:?}"),
    }
    c.accept(Accept::default()).expect("accept");
    while c.poll_transmit().is_some() {}
    while let Some(e) = c.poll_event() {
        assert!(matches!(e, Event::Open { .. }), "{e:?}");
    }
    c
}

/// An evsock client connection that has completed its handshake (against
/// an evsock server in memory).
pub fn evsock_client(cfg: Arc<Config>, seed: u64) -> Connection {
    let req = ClientRequest::new("localhost", "/chat");
    let mut c = Connection::client(cfg.clone(), req, Box::new(SeededRng::new(seed)), 0);
    let mut s = Connection::server(cfg, 0);
    while let Some(b) = c.poll_transmit() {
        s.handle_input(0, &b);
    }
    match s.poll_event() {
        Some(Event::Request(_)) => {}
        other => panic!("expected an upgrade request, got {other:?}"),
    }
    s.accept(Accept::default()).expect("accept");
    while let Some(b) = s.poll_transmit() {
        c.handle_input(0, &b);
    }
    match c.poll_event() {
        Some(Event::Open { .. }) => {}
        other => panic!("expected open, got {other:?}"),
    }
    c
}

/// How the evsock parse contender receives its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receive {
    /// Reads straight into the connection's buffer
    /// (`Connection::input_buffer` / `commit_input`): the one copy is the
    /// simulated `recv`, payload is unmasked where it lands. What a host
    /// reading from a socket would do.
    InPlace,
    /// Reads into a host buffer first (the simulated `recv`), then hands it
    /// to `handle_input`, which copies it again (unmasking as it copies):
    /// what a host that already holds the bytes in its own buffer pays.
    Slice,
    /// Hands the prepared input to `handle_input` with no simulated
    /// `recv` at all: the engine's own cost, not a real host's.
    Direct,
}

/// evsock as a server parses an inbound stream, receiving it as `how` says.
pub struct EvsockParse {
    input: Arc<Inbound>,
    cfg: Arc<Config>,
    conn: Option<Connection>,
    host_buf: Vec<u8>,
    how: Receive,
    sink: Sink,
}

impl EvsockParse {
    /// A contender for `input`.
    pub fn new(input: Arc<Inbound>, how: Receive) -> Self {
        let host_buf = vec![0u8; input.read_size];
        EvsockParse {
            input,
            cfg: Arc::new(bench_config()),
            conn: None,
            host_buf,
            how,
            sink: Sink::new(),
        }
    }

    /// Takes every event and transmit the connection has.
    #[inline]
    fn drain(conn: &mut Connection, sink: &mut Sink, out: &mut Outcome) {
        while let Some(e) = conn.poll_event() {
            match e {
                Event::Message(m) => {
                    out.messages += 1;
                    out.payload_bytes += std::hint::black_box(&m).len() as u64;
                }
                Event::Ping(_) => {}
                other => panic!("unexpected event {other:?}"),
            }
        }
        while let Some(b) = conn.poll_transmit() {
            sink.put(&b);
        }
    }
}

impl Contender for EvsockParse {
    fn name(&self) -> &'static str {
        match self.how {
            Receive::InPlace => "evsock",
            Receive::Slice => "evsock-slice",
            Receive::Direct => "evsock-direct",
        }
    }

    fn prepare(&mut self) {
        self.conn = Some(evsock_server(self.cfg.clone()));
        self.sink.reset();
    }

    fn run(&mut self) -> Outcome {
        let conn = self.conn.as_mut().expect("prepared");
        let mut out = Outcome::default();
        let input = &self.input;
        match self.how {
            Receive::InPlace => {
                let mut stream = MemStream::new(&input.wire, input.read_size);
                while !stream.exhausted() {
                    let n = stream.read_into(conn.input_buffer());
                    if n == 0 {
                        break; // closed: the outcome check will say so
                    }
                    conn.commit_input(0, n);
                    Self::drain(conn, &mut self.sink, &mut out);
                }
            }
            Receive::Slice => {
                for piece in input.wire.chunks(input.read_size) {
                    let buf = &mut self.host_buf[..piece.len()];
                    copy_piecewise(buf, piece);
                    conn.handle_input(0, buf);
                    Self::drain(conn, &mut self.sink, &mut out);
                }
            }
            Receive::Direct => {
                for piece in input.wire.chunks(input.read_size) {
                    conn.handle_input(0, piece);
                    Self::drain(conn, &mut self.sink, &mut out);
                }
            }
        }
        // Every pong here is 2 + 8 bytes (unmasked, 8-byte payload).
        out.pongs = self.sink.written / 10;
        out
    }
}

/// How the evsock encode host hands each payload over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// `send_binary_slice(&payload)`: borrowed, copied (masked) straight
    /// into the output. What a client holding its payload in any buffer
    /// does; the headline row.
    Slice,
    /// `send_binary(payload.clone())`: shared `Bytes`, as tungstenite is
    /// given (a reference count up and down per message on top of the
    /// same copy).
    Shared,
}

/// evsock as a client encodes and masks binary messages.
pub struct EvsockEncode {
    payload: Bytes,
    count: usize,
    how: Handover,
    cfg: Arc<Config>,
    conn: Option<Connection>,
    sink: Sink,
}

impl EvsockEncode {
    /// `count` messages of `payload`, handed over as `how` says.
    pub fn new(payload: Bytes, count: usize, how: Handover) -> Self {
        EvsockEncode {
            payload,
            count,
            how,
            cfg: Arc::new(bench_config()),
            conn: None,
            sink: Sink::new(),
        }
    }
}

impl Contender for EvsockEncode {
    fn name(&self) -> &'static str {
        match self.how {
            Handover::Slice => "evsock",
            Handover::Shared => "evsock-shared",
        }
    }

    fn prepare(&mut self) {
        self.conn = Some(evsock_client(self.cfg.clone(), 5));
        self.sink.reset();
    }

    fn run(&mut self) -> Outcome {
        let conn = self.conn.as_mut().expect("prepared");
        let mut sent = 0;
        while sent < self.count {
            let n = BATCH.min(self.count - sent);
            for _ in 0..n {
                match self.how {
                    Handover::Slice => conn.send_binary_slice(&self.payload),
                    Handover::Shared => conn.send_binary(self.payload.clone()),
                }
                .expect("send");
                if conn.buffered_amount() >= WRITE_THROUGH {
                    while let Some(b) = conn.poll_transmit() {
                        self.sink.put(&b);
                    }
                }
            }
            sent += n;
            while let Some(b) = conn.poll_transmit() {
                self.sink.put(&b);
            }
        }
        Outcome {
            messages: sent as u64,
            payload_bytes: (sent * self.payload.len()) as u64,
            pongs: 0,
        }
    }
}

// ----- tungstenite --------------------------------------------------------

/// tungstenite (server role over an in-memory stream) parses the input.
pub struct TungsteniteParse {
    input: Arc<Inbound>,
}

impl TungsteniteParse {
    /// A contender for `input`.
    pub fn new(input: Arc<Inbound>) -> Self {
        TungsteniteParse { input }
    }
}

impl Contender for TungsteniteParse {
    fn name(&self) -> &'static str {
        "tungstenite"
    }

    fn run(&mut self) -> Outcome {
        use tungstenite::protocol::{Role, WebSocket};
        use tungstenite::Message as M;
        let stream = MemStream::new(&self.input.wire, self.input.read_size);
        let mut ws = WebSocket::from_raw_socket(stream, Role::Server, None);
        let mut out = Outcome::default();
        loop {
            match ws.read() {
                Ok(M::Text(t)) => {
                    out.messages += 1;
                    out.payload_bytes += std::hint::black_box(&t).len() as u64;
                }
                Ok(M::Binary(b)) => {
                    out.messages += 1;
                    out.payload_bytes += std::hint::black_box(&b).len() as u64;
                }
                Ok(M::Ping(_)) => {}
                Ok(other) => panic!("unexpected message {other:?}"),
                Err(e) if ws.get_ref().exhausted() => {
                    // The input ran out: the usual end of a run. Write the
                    // last queued pong, as the next read would have.
                    let _ = e;
                    let _ = ws.flush();
                    break;
                }
                Err(e) => panic!("tungstenite failed: {e}"),
            }
        }
        let written = ws.get_ref().sink.written;
        // Every pong here is 2 + 8 bytes (unmasked, 8-byte payload).
        out.pongs = written / 10;
        out
    }
}

/// tungstenite as a client encodes and masks binary messages.
pub struct TungsteniteEncode {
    payload: Bytes,
    count: usize,
}

impl TungsteniteEncode {
    /// `count` messages of `payload`.
    pub fn new(payload: Bytes, count: usize) -> Self {
        TungsteniteEncode { payload, count }
    }
}

impl Contender for TungsteniteEncode {
    fn name(&self) -> &'static str {
        "tungstenite"
    }

    fn run(&mut self) -> Outcome {
        use tungstenite::protocol::{Role, WebSocket};
        let stream = MemStream::new(&[], 1);
        let mut ws = WebSocket::from_raw_socket(stream, Role::Client, None);
        let mut sent = 0;
        while sent < self.count {
            let n = BATCH.min(self.count - sent);
            for _ in 0..n {
                ws.write(tungstenite::Message::Binary(self.payload.clone()))
                    .expect("write");
            }
            ws.flush().expect("flush");
            sent += n;
        }
        std::hint::black_box(ws.get_ref().sink.written);
        Outcome {
            messages: sent as u64,
            payload_bytes: (sent * self.payload.len()) as u64,
            pongs: 0,
        }
    }
}

// ----- fastwebsockets -----------------------------------------------------

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

/// fastwebsockets (server role, with its `FragmentCollector` so that
/// fragmented text is reassembled and validated) parses the input.
pub struct FastwsParse {
    input: Arc<Inbound>,
    rt: tokio::runtime::Runtime,
}

impl FastwsParse {
    /// A contender for `input`.
    pub fn new(input: Arc<Inbound>) -> Self {
        FastwsParse {
            input,
            rt: current_thread_runtime(),
        }
    }
}

impl Contender for FastwsParse {
    fn name(&self) -> &'static str {
        "fastwebsockets"
    }

    fn run(&mut self) -> Outcome {
        use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
        let input = &self.input;
        self.rt.block_on(async {
            let stream = MemStream::new(&input.wire, input.read_size);
            let mut ws = WebSocket::after_handshake(stream, Role::Server);
            ws.set_auto_close(true);
            ws.set_auto_pong(true);
            let mut ws = FragmentCollector::new(ws);
            let mut out = Outcome::default();
            loop {
                match ws.read_frame().await {
                    Ok(f) => match f.opcode {
                        OpCode::Text | OpCode::Binary => {
                            out.messages += 1;
                            out.payload_bytes += std::hint::black_box(&f.payload).len() as u64;
                        }
                        other => panic!("unexpected frame {other:?}"),
                    },
                    Err(fastwebsockets::WebSocketError::UnexpectedEOF) => break,
                    Err(e) => panic!("fastwebsockets failed: {e}"),
                }
            }
            let stream = ws.into_inner();
            assert!(stream.exhausted());
            out.pongs = stream.sink.written / 10;
            out
        })
    }
}

/// fastwebsockets as a client encodes and masks binary messages.
pub struct FastwsEncode {
    payload: Bytes,
    count: usize,
    rt: tokio::runtime::Runtime,
}

impl FastwsEncode {
    /// `count` messages of `payload`.
    pub fn new(payload: Bytes, count: usize) -> Self {
        FastwsEncode {
            payload,
            count,
            rt: current_thread_runtime(),
        }
    }
}

impl Contender for FastwsEncode {
    fn name(&self) -> &'static str {
        "fastwebsockets"
    }

    fn run(&mut self) -> Outcome {
        use fastwebsockets::{Frame, Payload, Role, WebSocket};
        let payload = &self.payload;
        let count = self.count;
        self.rt.block_on(async {
            let stream = MemStream::new(&[], 1);
            let mut ws = WebSocket::after_handshake(stream, Role::Client);
            let mut sent = 0;
            while sent < count {
                let n = BATCH.min(count - sent);
                for _ in 0..n {
                    let frame = Frame::binary(Payload::Borrowed(payload));
                    ws.write_frame(frame).await.expect("write");
                }
                ws.flush().await.expect("flush");
                sent += n;
            }
            std::hint::black_box(ws.into_inner().sink.written);
            Outcome {
                messages: sent as u64,
                payload_bytes: (sent * payload.len()) as u64,
                pongs: 0,
            }
        })
    }
}

// ----- the ceiling --------------------------------------------------------

/// Copies the inbound bytes once, read by read: the least any parser must
/// do, since the bytes have to land somewhere. Two flavours:
///
/// - `memcpy`: into a destination as large as the input, so every byte
///   moves through memory once, as a parser handing each message off in
///   its own buffer must (the headline ceiling);
/// - `memcpy-hot`: into one reused buffer of the read size, which stays in
///   cache: a stricter bound that no parser handing payloads off can reach
///   for large messages.
///
/// Its outcome is the expected one, so it lines up with the others.
pub struct MemcpyParse {
    input: Arc<Inbound>,
    dst: Vec<u8>,
    hot: bool,
}

impl MemcpyParse {
    /// A ceiling for `input`.
    pub fn new(input: Arc<Inbound>, hot: bool) -> Self {
        let len = if hot {
            input.read_size
        } else {
            input.wire.len()
        };
        MemcpyParse {
            dst: vec![1u8; len],
            input,
            hot,
        }
    }
}

impl Contender for MemcpyParse {
    fn name(&self) -> &'static str {
        if self.hot {
            "memcpy-hot"
        } else {
            "memcpy"
        }
    }

    fn run(&mut self) -> Outcome {
        let rs = self.input.read_size;
        for (i, s) in self.input.wire.chunks(rs).enumerate() {
            let at = if self.hot { 0 } else { i * rs };
            let d = &mut self.dst[at..at + s.len()];
            copy_piecewise(d, s);
            std::hint::black_box(&mut *d);
        }
        let e = self.input.expect;
        Outcome {
            messages: e.messages,
            payload_bytes: e.payload_bytes,
            pongs: e.pings,
        }
    }
}

/// Copies each message's payload once into a sink: the ceiling for encode.
pub struct MemcpyEncode {
    payload: Bytes,
    count: usize,
    sink: Sink,
}

impl MemcpyEncode {
    /// `count` copies of `payload`.
    pub fn new(payload: Bytes, count: usize) -> Self {
        MemcpyEncode {
            payload,
            count,
            sink: Sink::new(),
        }
    }
}

impl Contender for MemcpyEncode {
    fn name(&self) -> &'static str {
        "memcpy"
    }

    fn run(&mut self) -> Outcome {
        for _ in 0..self.count {
            self.sink.put(&self.payload);
        }
        std::hint::black_box(self.sink.held());
        Outcome {
            messages: self.count as u64,
            payload_bytes: (self.count * self.payload.len()) as u64,
            pongs: 0,
        }
    }
}
