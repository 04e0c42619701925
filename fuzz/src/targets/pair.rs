//! A client and a server talking to each other through a transport that
//! cuts the bytes into arbitrary chunks and interleaves the two directions
//! arbitrarily. Checked: every message either side sent arrives intact and
//! in order (a prefix of them, if a limit made the receiver fail the
//! connection), pings are answered, and a closing handshake started by
//! either side ends both sides cleanly with the initiator's code and reason.
//! Both sides may have permessage-deflate on (any windows, context
//! takeover, threshold and level), so compressed messages take the same
//! route, limits and all.

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use evsock::ws::{
    Accept, ClientRequest, CloseCode, Closed, Config, Connection, DeflateConfig, Event, Message,
    OpCode, Output,
};
use evsock::SeededRng;

use crate::gen::chunks;
use crate::{ensure, Stop};

#[derive(Arbitrary, Debug)]
struct Input {
    max_frame: u16,
    max_message: u16,
    max_fragments: u8,
    retain: u16,
    no_auto_pong: bool,
    seed: u64,
    c2s: Vec<u8>,
    s2c: Vec<u8>,
    /// permessage-deflate on both sides, with these preferences.
    deflate: Option<Deflate>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
struct Deflate {
    server_no_context: bool,
    client_no_context: bool,
    server_bits: u8,
    client_bits: u8,
    threshold: u8,
    level: u8,
}

impl Deflate {
    fn config(&self) -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: self.server_no_context,
            client_no_context_takeover: self.client_no_context,
            server_max_window_bits: 9 + self.server_bits % 7,
            client_max_window_bits: 9 + self.client_bits % 7,
            threshold: self.threshold as usize,
            level: (self.level % 10) as u32,
            ..DeflateConfig::default()
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Send {
        client: bool,
        msg: Msg,
    },
    Ping {
        client: bool,
        payload: Vec<u8>,
    },
    Deliver {
        to_server: bool,
        max: u16,
    },
    Pump,
    Close {
        client: bool,
        code: u16,
        reason: String,
    },
}

#[derive(Arbitrary, Debug)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Parts { text: bool, parts: Vec<String> },
}

#[derive(Default)]
struct Side {
    inbox: Vec<u8>,
    sent: Vec<(bool, Vec<u8>)>,
    received: Vec<(bool, Vec<u8>)>,
    pings: Vec<Vec<u8>>,
    pongs: Vec<Vec<u8>>,
    closed: Option<Closed>,
    close_sent: Option<(u16, String)>,
}

struct World {
    conns: [Connection; 2],
    sides: [Side; 2],
    sizes: [Vec<u8>; 2],
}

const SERVER: usize = 0;
const CLIENT: usize = 1;

/// The target.
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return Ok(());
    };
    let cfg = Config {
        max_frame_size: 1 + input.max_frame as usize,
        max_message_size: 1 + input.max_message as usize,
        max_fragments: input.max_fragments as usize,
        buffer_retain: input.retain as usize,
        auto_pong: !input.no_auto_pong,
        deflate: input.deflate.as_ref().map(Deflate::config),
        ..Config::without_timers()
    };
    let server = Connection::server(cfg.clone(), 0);
    let client = Connection::client(
        cfg.clone(),
        ClientRequest::new("pair", "/"),
        Box::new(SeededRng::new(input.seed)),
        0,
    );
    let mut w = World {
        conns: [server, client],
        sides: [Side::default(), Side::default()],
        sizes: [
            input.c2s.iter().take(8).copied().collect(),
            input.s2c.iter().take(8).copied().collect(),
        ],
    };
    w.pump()?;
    for op in &input.ops {
        match op {
            Op::Send { client, msg } => w.send(*client as usize, msg),
            Op::Ping { client, payload } => {
                let i = *client as usize;
                if w.conns[i].ping(payload).is_ok() {
                    w.sides[i].pings.push(payload.clone());
                }
            }
            Op::Deliver { to_server, max } => {
                let i = if *to_server { SERVER } else { CLIENT };
                w.collect()?;
                w.deliver(i, *max as usize + 1)?;
            }
            Op::Pump => w.pump()?,
            Op::Close {
                client,
                code,
                reason,
            } => {
                let i = *client as usize;
                if w.conns[i].close(CloseCode(*code), reason).is_ok() {
                    w.sides[i].close_sent = Some((*code, reason.clone()));
                }
            }
        }
    }
    w.pump()?;
    // Whoever is closed ends its side of TCP; the other side sees EOF.
    for i in [SERVER, CLIENT] {
        if w.conns[i].is_closed() && !w.conns[1 - i].is_closed() {
            w.conns[1 - i].handle_eof(0);
            w.collect()?;
        }
    }
    w.verify(&cfg)
}

impl World {
    fn send(&mut self, i: usize, msg: &Msg) {
        let c = &mut self.conns[i];
        match msg {
            Msg::Text(t) => {
                if c.send_text(t).is_ok() {
                    self.sides[i].sent.push((true, t.as_bytes().to_vec()));
                }
            }
            Msg::Binary(b) => {
                if c.send_binary(Bytes::copy_from_slice(b)).is_ok() {
                    self.sides[i].sent.push((false, b.clone()));
                }
            }
            Msg::Parts { text, parts } => {
                let mut all = Vec::new();
                let n = parts.len().max(1);
                for k in 0..n {
                    let part = parts.get(k).map_or("", String::as_str);
                    let op = match (k, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    if c.send_fragment(op, part.as_bytes(), k + 1 == n).is_err() {
                        // A half-sent message can never complete: stop
                        // sending on this side.
                        return;
                    }
                    all.extend_from_slice(part.as_bytes());
                }
                self.sides[i].sent.push((*text, all));
            }
        }
    }

    /// Drains both connections: bytes into the peer's inbox, events into
    /// the side's record. The server accepts every request.
    fn collect(&mut self) -> Result<(), Stop> {
        for i in [SERVER, CLIENT] {
            loop {
                let e = match self.conns[i].poll_output() {
                    Output::Transmit(b) => {
                        self.sides[1 - i].inbox.extend_from_slice(&b);
                        continue;
                    }
                    Output::Event(e) => e,
                    Output::Wait(_) => break,
                };
                let s = &mut self.sides[i];
                ensure!(
                    s.closed.is_none(),
                    "pair-event-after-closed",
                    "{e:?} after Closed"
                );
                match e {
                    Event::Request(_) => {
                        ensure!(i == SERVER, "pair-event", "client got a Request");
                        let r = self.conns[i].accept(Accept::default());
                        ensure!(r.is_ok(), "pair-accept", "accept failed: {r:?}");
                    }
                    Event::Open { subprotocol } => {
                        ensure!(
                            subprotocol.is_none(),
                            "pair-event",
                            "subprotocol {subprotocol:?} from nowhere"
                        );
                    }
                    Event::Message(Message::Text(t)) => {
                        s.received.push((true, t.as_bytes().to_vec()))
                    }
                    Event::Message(Message::Binary(b)) => s.received.push((false, b.to_vec())),
                    Event::Ping(_) => {}
                    Event::Pong(p) => s.pongs.push(p.to_vec()),
                    Event::Closed(c) => s.closed = Some(c),
                }
            }
        }
        Ok(())
    }

    fn deliver(&mut self, i: usize, max: usize) -> Result<bool, Stop> {
        let n = self.sides[i].inbox.len().min(max);
        if n == 0 {
            return Ok(false);
        }
        let bytes: Vec<u8> = self.sides[i].inbox.drain(..n).collect();
        let sizes = self.sizes[i].clone();
        for piece in chunks(&bytes, &sizes) {
            // Odd-length pieces are received in place, the rest copied in.
            if piece.len() % 2 == 1 {
                crate::read_all_in_place(&mut self.conns[i], 0, piece);
            } else {
                self.conns[i].handle_input(0, piece);
            }
            self.collect()?;
        }
        Ok(true)
    }

    fn pump(&mut self) -> Result<(), Stop> {
        for _ in 0..1000 {
            self.collect()?;
            let a = self.deliver(SERVER, usize::MAX)?;
            let b = self.deliver(CLIENT, usize::MAX)?;
            if !a && !b {
                return Ok(());
            }
        }
        Err(crate::findings::violation(
            "pair-livelock",
            "the two sides keep talking after 1000 rounds",
        ))
    }

    fn verify(&self, cfg: &Config) -> Result<(), Stop> {
        let failed = |s: &Side| s.closed.as_ref().is_some_and(|c| c.error.is_some());
        let any_error = failed(&self.sides[0]) || failed(&self.sides[1]);
        for (from, to) in [(CLIENT, SERVER), (SERVER, CLIENT)] {
            let sent = &self.sides[from].sent;
            let got = &self.sides[to].received;
            ensure!(
                got.len() <= sent.len() && got[..] == sent[..got.len()],
                "pair-delivery",
                "side {to} received {} messages that are not a prefix of the {} sent",
                got.len(),
                sent.len()
            );
            if !any_error {
                ensure!(
                    got.len() == sent.len(),
                    "pair-delivery",
                    "side {to} received {} of {} messages, no error",
                    got.len(),
                    sent.len()
                );
            }
            if cfg.auto_pong
                && !any_error
                && self.sides[0].close_sent.is_none()
                && self.sides[1].close_sent.is_none()
            {
                let s = &self.sides[from];
                ensure!(
                    s.pongs.iter().all(|p| s.pings.contains(p)),
                    "pair-pong",
                    "pong payloads {:?} for pings {:?}",
                    s.pongs,
                    s.pings
                );
                ensure!(
                    s.pings.last() == s.pongs.last(),
                    "pair-pong",
                    "last ping {:?} unanswered: pongs {:?}",
                    s.pings.last(),
                    s.pongs
                );
            }
        }
        if any_error {
            return Ok(());
        }
        // Both sides closed cleanly, with the initiator's code and reason.
        for i in [SERVER, CLIENT] {
            let Some((code, reason)) = &self.sides[i].close_sent else {
                continue;
            };
            for side in &self.sides {
                let c = side.closed.as_ref();
                ensure!(
                    c.is_some_and(|c| c.clean),
                    "pair-close",
                    "close({code}) by side {i} did not end both cleanly: {c:?}"
                );
            }
            if self.sides[1 - i].close_sent.is_none() {
                let c = self.sides[1 - i].closed.as_ref().unwrap();
                ensure!(
                    c.by_peer && c.code.0 == *code && &c.reason == reason,
                    "pair-close",
                    "peer saw {c:?} for close({code}, {reason:?})"
                );
            }
        }
        Ok(())
    }
}
