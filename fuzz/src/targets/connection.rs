//! The whole connection state machine, either role, driven by an arbitrary
//! sequence of input chunks, timer jumps and API calls, with small random
//! limits. After every step the harness drains all output and checks:
//!
//! * every transmitted byte is valid: the handshake head per RFC 6455 4 (the
//!   right accept key, an offered subprotocol, no injected fields, a final
//!   status and exact body for refusals) and every frame after it per the
//!   independent parser in `wire` (role-correct masking, no RSV bits, legal
//!   opcodes and close codes, control frames of at most 125 bytes, shortest
//!   length form, valid UTF-8 text, nothing after a close frame);
//! * what the application sent is what goes out, in order, and each API call
//!   succeeds exactly when the state and limits say it should;
//! * events come in a legal order, `Closed` at most once and last, and
//!   nothing at all happens after it;
//! * a host that loops on `poll_timeout` makes progress (no timer spin);
//! * the heap the connection holds stays within what its limits allow, and
//!   drops to a small constant once it is closed.

use std::collections::VecDeque;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use bytes::Bytes;
use evsock::ws::{
    Accept, ClientRequest, CloseCode, Config, Connection, Event, OpCode, Output, Reject, State,
};
use evsock::SeededRng;

use crate::gen::{chunks, FrameSpec, Limits};
use crate::http::{self, read_head};
use crate::mem::Meter;
use crate::wire::{FrameChecker, Item};
use crate::{ensure, Stop};

/// Never let the clock get anywhere near overflow: hosts pass real times.
const MAX_NOW: u64 = 1 << 52;

#[derive(Arbitrary, Debug)]
struct Input {
    client: bool,
    limits: Limits,
    seed: u64,
    offer: Vec<String>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Input(Vec<u8>),
    Frames {
        frames: Vec<FrameSpec>,
        sizes: Vec<u8>,
    },
    Handshake(Hs),
    Eof,
    Advance(u16),
    Jump(u32),
    ToDeadline,
    Accept {
        subprotocol: Option<Choice>,
        headers: Vec<Field>,
    },
    Reject {
        status: Result<u8, u16>,
        headers: Vec<Field>,
        body: Vec<u8>,
    },
    SendText(String),
    SendBinary(Vec<u8>),
    SendFragment {
        kind: u8,
        payload: Vec<u8>,
        fin: bool,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close {
        code: u16,
        reason: String,
    },
}

/// A value the host picks: mostly a sensible one, sometimes anything.
#[derive(Arbitrary, Debug)]
enum Choice {
    /// One of the offered subprotocols (or none when nothing was offered).
    Offered(u8),
    /// Explicitly none.
    Empty,
    /// Anything at all.
    Raw(String),
}

/// A response header the host adds.
#[derive(Arbitrary, Debug)]
enum Field {
    Plain(u8, u32),
    Raw(String, String),
}

impl Field {
    fn pair(&self) -> (String, String) {
        match self {
            Field::Plain(n, v) => (
                ["Set-Cookie", "X-Trace", "Cache-Control", "Retry-After"][*n as usize % 4].into(),
                format!("v{v}"),
            ),
            Field::Raw(n, v) => (n.clone(), v.clone()),
        }
    }
}

/// A plausible handshake from the peer: a request (server role) or a 101
/// for the client's actual key (client role), possibly spoilt.
#[derive(Arbitrary, Debug)]
struct Hs {
    path: String,
    origin: Option<String>,
    protocols: Vec<String>,
    key: [u8; 16],
    wrong_key: bool,
    drop_field: Option<u8>,
    version: Option<u8>,
    extension: bool,
    trailing: Vec<u8>,
    sizes: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum Stage {
    /// Waiting for the handshake head in our output.
    Head,
    /// A refusal head was read; this many body bytes remain.
    Body(usize),
    /// Frames flow.
    Frames,
    /// A refusal was sent in full: nothing more may follow.
    Done,
}

struct Harness {
    conn: Connection,
    client: bool,
    cfg: Config,
    limits: Limits,
    now: u64,
    meter: Meter,
    max_chunk: usize,
    stage: Stage,
    head: Vec<u8>,
    frames: FrameChecker,
    /// Client role: the key in our request. Server role: the peer's key.
    key: Option<String>,
    /// Server role: what the peer offered.
    offered: Vec<String>,
    pending_request: bool,
    request_seen: bool,
    /// Server role: the subprotocol the configuration selected.
    selected: Option<String>,
    body: Vec<u8>,
    /// Expected 101 fields count after `accept` (to catch injection).
    accept_fields: Option<usize>,
    refusal: Option<(u16, Vec<u8>, usize)>,
    open: bool,
    open_protocol: Option<Option<String>>,
    wire_protocol: Option<Option<String>>,
    closed: bool,
    quiet: bool,
    sending_fragments: bool,
    expect_out: VecDeque<Item>,
    partial_out: Option<(bool, Vec<u8>)>,
    expect_pings: VecDeque<Vec<u8>>,
    expect_close: Option<(u16, Vec<u8>)>,
}

/// The target.
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return Ok(());
    };
    let mut meter = Meter::default();
    let limits = input.limits.clone();
    // Subprotocol names are tokens; what the engine does with anything
    // else is the handshake_request target's business.
    let offer: Vec<String> = input
        .offer
        .iter()
        .take(4)
        .map(|p| {
            p.chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-._".contains(*c))
                .collect::<String>()
        })
        .filter(|p| !p.is_empty())
        .collect();
    let conn = meter.run(|| {
        if input.client {
            let mut req = ClientRequest::new("example.com", "/fuzz");
            req.subprotocols = offer.clone();
            Connection::client(
                limits.config(),
                req,
                Box::new(SeededRng::new(input.seed)),
                0,
            )
        } else {
            Connection::server(limits.config(), 0)
        }
    });
    let mut h = Harness {
        conn,
        client: input.client,
        cfg: limits.config(),
        limits,
        now: 0,
        meter,
        max_chunk: 0,
        stage: Stage::Head,
        head: Vec::new(),
        frames: FrameChecker::new(input.client),
        key: None,
        offered: if input.client { offer } else { Vec::new() },
        pending_request: false,
        request_seen: false,
        selected: None,
        body: Vec::new(),
        accept_fields: None,
        refusal: None,
        open: false,
        open_protocol: None,
        wire_protocol: None,
        closed: false,
        quiet: false,
        sending_fragments: false,
        expect_out: VecDeque::new(),
        partial_out: None,
        expect_pings: VecDeque::new(),
        expect_close: None,
    };
    h.settle()?;
    for op in &input.ops {
        h.step(op)?;
        h.settle()?;
    }
    // The end of the story: the transport ends and every timer runs out.
    h.step(&Op::Eof)?;
    h.settle()?;
    ensure!(h.closed, "closed-after-eof", "no Closed event after EOF");
    Ok(())
}

impl Harness {
    fn feed(&mut self, bytes: &[u8]) {
        self.max_chunk = self.max_chunk.max(bytes.len());
        let (conn, now) = (&mut self.conn, self.now);
        // Odd-length inputs are received in place (`read_from`), the rest
        // copied in (`handle_input`): both must behave the same.
        if bytes.len() % 2 == 1 {
            self.meter
                .run(|| crate::read_all_in_place(conn, now, bytes));
        } else {
            self.meter.run(|| conn.handle_input(now, bytes));
        }
    }

    fn advance(&mut self, to: u64) -> Result<(), Stop> {
        self.now = to.max(self.now).min(MAX_NOW);
        let (conn, now) = (&mut self.conn, self.now);
        self.meter.run(|| conn.handle_timeout(now));
        // A host loop: keep running timers while one is due.
        for _ in 0..16 {
            self.drain()?;
            match self.conn.poll_timeout() {
                Some(d) if d <= self.now => {
                    let (conn, now) = (&mut self.conn, self.now);
                    self.meter.run(|| conn.handle_timeout(now));
                }
                _ => return Ok(()),
            }
        }
        // Open finding: a zero ping interval without a pong timeout sends a
        // ping and re-arms the timer for the same instant, forever.
        let id = if self.cfg.ping_interval_ms == Some(0) && self.cfg.pong_timeout_ms.is_none() {
            "timer-spin-ping0"
        } else {
            "timer-spin"
        };
        Err(crate::findings::violation(
            id,
            format!(
                "deadline stays due at {} after 16 handle_timeout calls ({:?}, {:?})",
                self.now,
                self.conn.state(),
                self.cfg
            ),
        ))
    }

    fn state_before(&self) -> State {
        self.conn.state()
    }

    fn step(&mut self, op: &Op) -> Result<(), Stop> {
        let state = self.state_before();
        let open = state == State::Open;
        let max_out = self.cfg.max_outbound_bytes;
        match op {
            Op::Input(b) => self.feed(b),
            Op::Frames { frames, sizes } => {
                let wire: Vec<u8> = frames.iter().flat_map(|f| f.bytes(!self.client)).collect();
                for piece in chunks(&wire, sizes) {
                    self.feed(piece);
                }
            }
            Op::Handshake(hs) => {
                let bytes = self.peer_handshake(hs);
                for piece in chunks(&bytes, &hs.sizes) {
                    self.feed(piece);
                }
            }
            Op::Eof => {
                let (conn, now) = (&mut self.conn, self.now);
                self.meter.run(|| conn.handle_eof(now));
            }
            Op::Advance(ms) => self.advance(self.now + *ms as u64)?,
            Op::Jump(ms) => self.advance(self.now + *ms as u64 * 16)?,
            Op::ToDeadline => {
                if let Some(d) = self.conn.poll_timeout() {
                    ensure!(
                        !self.closed,
                        "timer-after-close",
                        "deadline {d} after Closed"
                    );
                    self.advance(d)?;
                }
            }
            Op::Accept {
                subprotocol,
                headers,
            } => {
                let subprotocol = subprotocol.as_ref().map(|c| match c {
                    Choice::Offered(i) if !self.offered.is_empty() => {
                        self.offered[*i as usize % self.offered.len()].clone()
                    }
                    Choice::Offered(_) | Choice::Empty => String::new(),
                    Choice::Raw(s) => s.clone(),
                });
                let headers: Vec<(String, String)> =
                    headers.iter().take(4).map(Field::pair).collect();
                let conn = &mut self.conn;
                let r = self.meter.run(|| {
                    conn.accept(Accept {
                        subprotocol: subprotocol.clone(),
                        headers: headers.clone(),
                    })
                });
                // The subprotocol must be one the client offered (RFC 6455
                // 4.2.2), or none.
                let proto_ok = subprotocol
                    .as_deref()
                    .is_none_or(|p| p.is_empty() || self.offered.iter().any(|o| o == p));
                ensure!(
                    r.is_ok() == (self.pending_request && http::fields_ok(&headers) && proto_ok),
                    "api-result",
                    "accept() = {r:?} with a request pending: {}; {headers:?}, \
                     subprotocol {subprotocol:?} of {:?}",
                    self.pending_request,
                    self.offered
                );
                if r.is_ok() {
                    self.pending_request = false;
                    let proto = match &subprotocol {
                        Some(p) => !p.is_empty(),
                        None => self.selected.is_some(),
                    };
                    self.accept_fields = Some(3 + proto as usize + headers.len());
                }
            }
            Op::Reject {
                status,
                headers,
                body,
            } => {
                let status = match status {
                    Ok(i) => [400, 401, 403, 404, 426, 429, 500, 503, 302][*i as usize % 9],
                    Err(s) => *s,
                };
                let hs: Vec<(String, String)> = headers.iter().take(4).map(Field::pair).collect();
                let n = hs.len();
                let hs2 = hs.clone();
                let conn = &mut self.conn;
                let r = self.meter.run(|| {
                    conn.reject(Reject {
                        status,
                        headers: hs,
                        body: body.clone(),
                    })
                });
                let final_status = (200..=599).contains(&status) && http::fields_ok(&hs2);
                ensure!(
                    r.is_ok() == (self.pending_request && final_status),
                    "api-result",
                    "reject({status}) = {r:?} with a request pending: {}",
                    self.pending_request
                );
                if r.is_ok() {
                    self.pending_request = false;
                    self.refusal = Some((status, body.clone(), n));
                }
            }
            Op::SendText(t) => {
                let conn = &mut self.conn;
                let r = self.meter.run(|| conn.send_text(t));
                let want = open && t.len() <= max_out && !self.sending_fragments;
                ensure!(
                    r.is_ok() == want,
                    "api-result",
                    "send_text({} bytes) = {r:?} in {state:?}, limit {max_out}, fragmenting {}",
                    t.len(),
                    self.sending_fragments
                );
                if r.is_ok() {
                    self.expect_out.push_back(Item::Message {
                        text: true,
                        data: t.as_bytes().to_vec(),
                    });
                }
            }
            Op::SendBinary(b) => {
                let conn = &mut self.conn;
                let r = self
                    .meter
                    .run(|| conn.send_binary(Bytes::copy_from_slice(b)));
                let want = open && b.len() <= max_out && !self.sending_fragments;
                ensure!(
                    r.is_ok() == want,
                    "api-result",
                    "send_binary({} bytes) = {r:?} in {state:?}",
                    b.len()
                );
                if r.is_ok() {
                    self.expect_out.push_back(Item::Message {
                        text: false,
                        data: b.clone(),
                    });
                }
            }
            Op::SendFragment { kind, payload, fin } => {
                let opcode = [
                    OpCode::Text,
                    OpCode::Binary,
                    OpCode::Continuation,
                    OpCode::Ping,
                ][*kind as usize % 4];
                let conn = &mut self.conn;
                let r = self.meter.run(|| conn.send_fragment(opcode, payload, *fin));
                let in_seq = match opcode {
                    OpCode::Text | OpCode::Binary => !self.sending_fragments,
                    OpCode::Continuation => self.sending_fragments,
                    _ => false,
                };
                // Each fragment of a text message must be UTF-8 on its own
                // (the engine checks the first; the rest of the message is
                // held to the same rule).
                let text_msg = opcode == OpCode::Text
                    || (opcode == OpCode::Continuation
                        && self.partial_out.as_ref().is_some_and(|(t, _)| *t));
                let utf8 = !text_msg || std::str::from_utf8(payload).is_ok();
                ensure!(
                    !(r.is_ok() && opcode == OpCode::Continuation && !utf8),
                    "send-fragment-utf8",
                    "send_fragment(Continuation, {payload:02x?}) of a text message \
                     accepted bytes that are not UTF-8"
                );
                let want = open && payload.len() <= max_out && in_seq && utf8;
                ensure!(
                    r.is_ok() == want,
                    "api-result",
                    "send_fragment({opcode:?}, {} bytes, fin {fin}) = {r:?} in {state:?}",
                    payload.len()
                );
                if r.is_ok() {
                    let (text, mut data) = self
                        .partial_out
                        .take()
                        .unwrap_or((opcode == OpCode::Text, Vec::new()));
                    data.extend_from_slice(payload);
                    if *fin {
                        self.expect_out.push_back(Item::Message { text, data });
                    } else {
                        self.partial_out = Some((text, data));
                    }
                    self.sending_fragments = !fin;
                }
            }
            Op::Ping(p) | Op::Pong(p) => {
                let ping = matches!(op, Op::Ping(_));
                let conn = &mut self.conn;
                let r = self
                    .meter
                    .run(|| if ping { conn.ping(p) } else { conn.pong(p) });
                let want = open && p.len() <= 125 && p.len() <= max_out;
                ensure!(
                    r.is_ok() == want,
                    "api-result",
                    "ping/pong({} bytes) = {r:?} in {state:?}",
                    p.len()
                );
                if r.is_ok() && ping {
                    self.expect_pings.push_back(p.clone());
                }
            }
            Op::Close { code, reason } => {
                let conn = &mut self.conn;
                let r = self.meter.run(|| conn.close(CloseCode(*code), reason));
                let args = CloseCode(*code).is_sendable() && reason.len() <= 123;
                ensure!(
                    CloseCode(*code).is_sendable() == crate::wire::legal_close_code(*code),
                    "close-code",
                    "is_sendable({code}) disagrees with RFC 6455 / IANA"
                );
                let want = args && matches!(state, State::Open | State::Handshake);
                ensure!(
                    r.is_ok() == want,
                    "api-result",
                    "close({code}, {} bytes) = {r:?} in {state:?}",
                    reason.len()
                );
                if r.is_ok() && open {
                    self.expect_close = Some((*code, reason.as_bytes().to_vec()));
                }
                if r.is_ok() && self.pending_request {
                    self.pending_request = false;
                    self.refusal = Some((503, b"closing\n".to_vec(), 0));
                }
            }
        }
        Ok(())
    }

    /// Builds the peer's side of the handshake.
    fn peer_handshake(&self, hs: &Hs) -> Vec<u8> {
        let mut fields: Vec<String> = Vec::new();
        let start;
        if self.client {
            start = "HTTP/1.1 101 Switching Protocols".to_string();
            let key = self.key.clone().unwrap_or_default();
            let accept = if hs.wrong_key {
                http::expected_accept("x")
            } else {
                http::expected_accept(&key)
            };
            fields.push("Upgrade: websocket".into());
            fields.push("Connection: Upgrade".into());
            fields.push(format!("Sec-WebSocket-Accept: {accept}"));
            if let Some(p) = hs.protocols.first() {
                let p: String = p
                    .chars()
                    .filter(|c| c.is_ascii_graphic() && *c != ',')
                    .collect();
                let p = if hs.version.is_some() {
                    self.offered.first().cloned().unwrap_or(p)
                } else {
                    p
                };
                fields.push(format!("Sec-WebSocket-Protocol: {p}"));
            }
        } else {
            let path: String = hs.path.chars().filter(|c| c.is_ascii_graphic()).collect();
            start = format!("GET /{path} HTTP/1.1");
            fields.push("Host: example.com".into());
            fields.push("Upgrade: websocket".into());
            fields.push("Connection: keep-alive, Upgrade".into());
            fields.push(format!(
                "Sec-WebSocket-Key: {}",
                base64::engine::general_purpose::STANDARD.encode(hs.key)
            ));
            fields.push(format!(
                "Sec-WebSocket-Version: {}",
                hs.version.map_or(13, |v| v % 16)
            ));
            if let Some(o) = &hs.origin {
                let o: String = o.chars().filter(|c| c.is_ascii_graphic()).collect();
                fields.push(format!("Origin: {o}"));
            }
            let offer: Vec<String> = hs
                .protocols
                .iter()
                .take(4)
                .map(|p| p.chars().filter(|c| c.is_ascii_alphanumeric()).collect())
                .collect();
            let offer: Vec<String> = if hs.wrong_key {
                self.cfg
                    .subprotocols
                    .iter()
                    .chain(&offer)
                    .cloned()
                    .collect()
            } else {
                offer
            };
            if !offer.is_empty() {
                fields.push(format!("Sec-WebSocket-Protocol: {}", offer.join(", ")));
            }
        }
        if hs.extension {
            fields.push("Sec-WebSocket-Extensions: permessage-deflate".into());
        }
        if let Some(i) = hs.drop_field {
            let i = i as usize % (fields.len() + 4);
            if i < fields.len() {
                fields.remove(i);
            }
        }
        let mut out = start.into_bytes();
        for f in fields {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(f.as_bytes());
        }
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&hs.trailing);
        out
    }

    /// Drains everything through `poll_output`, as a host loop does.
    fn drain(&mut self) -> Result<(), Stop> {
        for _ in 0..100_000 {
            let conn = &mut self.conn;
            match self.meter.run(|| conn.poll_output()) {
                Output::Transmit(b) => {
                    let v = b.to_vec();
                    self.meter.run(|| drop(b));
                    ensure!(
                        !self.quiet,
                        "output-after-close",
                        "{} bytes transmitted after Closed was drained",
                        v.len()
                    );
                    ensure!(!v.is_empty(), "output-empty", "an empty chunk to transmit");
                    self.output(&v)?;
                }
                Output::Event(e) => {
                    let r = self.event(&e);
                    self.meter.run(|| drop(e));
                    r?;
                }
                Output::Wait(d) => {
                    ensure!(
                        d == self.conn.poll_timeout(),
                        "timer",
                        "Wait({d:?}) but poll_timeout() = {:?}",
                        self.conn.poll_timeout()
                    );
                    return Ok(());
                }
            }
        }
        Err(crate::findings::violation(
            "drain-livelock",
            "poll_output never reached Wait",
        ))
    }

    fn settle(&mut self) -> Result<(), Stop> {
        self.drain()?;
        ensure!(
            self.conn.is_closed() == self.closed,
            "state",
            "is_closed() = {} but Closed event seen: {}",
            self.conn.is_closed(),
            self.closed
        );
        ensure!(
            (self.conn.state() == State::Closed) == self.closed,
            "state",
            "state() = {:?}, Closed seen: {}",
            self.conn.state(),
            self.closed
        );
        ensure!(
            self.expect_out.is_empty() && self.expect_pings.is_empty(),
            "lost-output",
            "sent but not transmitted: {:?} / pings {:?}",
            self.expect_out,
            self.expect_pings
        );
        if self.stage == Stage::Done {
            ensure!(
                self.closed,
                "refusal-not-closed",
                "a refusal was sent but the connection is not closed"
            );
        }
        let c = &self.cfg;
        let proto = self
            .open_protocol
            .as_ref()
            .and_then(|p| p.as_ref())
            .map_or(0, String::len);
        let fixed = 16 * 1024 + self.limits.config_bytes() + proto;
        if self.closed {
            self.quiet = true;
            ensure!(
                self.conn.poll_timeout().is_none(),
                "timer-after-close",
                "deadline {:?} after Closed",
                self.conn.poll_timeout()
            );
            ensure!(
                self.frames.partial() == 0 || self.stage != Stage::Frames,
                "truncated-output",
                "output ends inside a frame ({} bytes)",
                self.frames.partial()
            );
            let bound = fixed + c.buffer_retain;
            ensure!(
                self.meter.held() <= bound as isize,
                "memory-closed",
                "closed connection holds {} bytes (bound {bound}, retain {})",
                self.meter.held(),
                c.buffer_retain
            );
        } else {
            let bound = fixed
                + 6 * c.max_handshake_bytes
                + 64 * c.max_headers
                + 2 * (self.max_chunk + c.max_handshake_bytes + 14 + c.max_frame_size.max(125))
                + 2 * c.max_message_size
                + 2 * c.buffer_retain
                + 16 * 160;
            ensure!(
                self.meter.held() <= bound as isize,
                "memory-open",
                "connection in {:?} holds {} bytes (bound {bound}; largest read {})",
                self.conn.state(),
                self.meter.held(),
                self.max_chunk
            );
        }
        Ok(())
    }

    fn event(&mut self, e: &Event) -> Result<(), Stop> {
        ensure!(!self.closed, "event-after-closed", "{e:?} after Closed");
        match e {
            Event::Request(r) => {
                ensure!(
                    !self.client && !self.request_seen,
                    "event-order",
                    "unexpected Request (client {})",
                    self.client
                );
                self.request_seen = true;
                self.pending_request = true;
                self.key = Some(r.key().to_string());
                self.offered = r.subprotocols.clone();
                self.selected = r.selected_subprotocol.clone();
                if let Some(s) = &self.selected {
                    ensure!(
                        r.subprotocols.contains(s) && self.cfg.subprotocols.contains(s),
                        "request-subprotocol",
                        "selected {s:?} from {:?}",
                        r.subprotocols
                    );
                }
            }
            Event::Open { subprotocol } => {
                ensure!(!self.open, "event-order", "second Open");
                ensure!(
                    self.stage == Stage::Frames,
                    "event-order",
                    "Open before the handshake went out"
                );
                self.open = true;
                self.open_protocol = Some(subprotocol.clone());
                if self.client {
                    ensure!(
                        subprotocol
                            .as_ref()
                            .is_none_or(|p| self.offered.contains(p)),
                        "open-subprotocol",
                        "opened with unoffered {subprotocol:?}"
                    );
                } else {
                    ensure!(
                        self.wire_protocol.as_ref() == Some(subprotocol),
                        "open-subprotocol",
                        "Open says {subprotocol:?}, the 101 said {:?}",
                        self.wire_protocol
                    );
                }
            }
            Event::Message(_) | Event::Ping(_) | Event::Pong(_) => {
                ensure!(self.open, "event-order", "{e:?} before Open");
            }
            Event::Closed(c) => {
                self.closed = true;
                // A request still awaiting accept/reject (say, the peer hung
                // up meanwhile) is gone with the connection: both calls are
                // now refused with InvalidState.
                self.pending_request = false;
                ensure!(
                    crate::wire::legal_close_code(c.code.0) || matches!(c.code.0, 1005 | 1006),
                    "closed-code",
                    "Closed with code {}",
                    c.code
                );
                ensure!(
                    !c.clean || self.frames.close_seen(),
                    "closed-clean",
                    "clean close without a close frame sent: {c:?}"
                );
                if self.sending_fragments || self.partial_out.is_some() {
                    self.partial_out = None;
                }
            }
        }
        Ok(())
    }

    fn output(&mut self, v: &[u8]) -> Result<(), Stop> {
        match self.stage {
            Stage::Head => {
                self.head.extend_from_slice(v);
                let head = match read_head(&self.head) {
                    None => {
                        ensure!(
                            self.head.len() < 1 << 20,
                            "handshake-output",
                            "no end of head in {} bytes",
                            self.head.len()
                        );
                        return Ok(());
                    }
                    Some(Err(e)) => {
                        let id = if self.refusal.is_some() {
                            "reject-invalid-header"
                        } else if self.accept_fields.is_some() {
                            "accept-invalid-header"
                        } else {
                            "handshake-output"
                        };
                        return Err(crate::findings::violation(
                            id,
                            format!("{e}: {:?}", String::from_utf8_lossy(&self.head)),
                        ));
                    }
                    Some(Ok(h)) => h,
                };
                let rest = self.head.split_off(head.len);
                if self.client {
                    match http::check_request(&head) {
                        Ok(k) => self.key = Some(k),
                        Err(e) => return Err(crate::findings::violation("handshake-output", e)),
                    }
                    self.stage = Stage::Frames;
                    return self.output(&rest);
                }
                let host_refusal = self.refusal.as_ref().is_some_and(|r| r.2 > 0 || r.0 != 503);
                let st = http::status(&head).map_err(|e| {
                    crate::findings::violation(
                        if host_refusal {
                            "reject-invalid-status"
                        } else {
                            "handshake-output"
                        },
                        e,
                    )
                })?;
                if st == 101 {
                    let key = self.key.clone().unwrap_or_default();
                    let proto = http::check_switching(&head, &key, &self.offered).map_err(|e| {
                        let id = if e.contains("subprotocol") {
                            "accept-unoffered-subprotocol"
                        } else {
                            "handshake-output"
                        };
                        crate::findings::violation(id, e)
                    })?;
                    if let Some(n) = self.accept_fields {
                        ensure!(
                            head.fields.len() == n,
                            "accept-injection",
                            "{} fields in the 101, expected {n}: {:?}",
                            head.fields.len(),
                            head.fields
                        );
                    }
                    self.wire_protocol = Some(proto);
                    self.stage = Stage::Frames;
                    return self.output(&rest);
                }
                let (st, len) = http::check_refusal(&head).map_err(|e| {
                    crate::findings::violation(
                        if host_refusal {
                            "reject-invalid-status"
                        } else {
                            "handshake-output"
                        },
                        e,
                    )
                })?;
                if let Some((status, _, n)) = &self.refusal {
                    ensure!(
                        st == *status,
                        "reject-status",
                        "rejected with {status}, wire says {st}"
                    );
                    let fixed = 3 + match st {
                        426 => 2,
                        405 => 1,
                        _ => 0,
                    };
                    ensure!(
                        head.fields.len() == fixed + n,
                        "reject-injection",
                        "{} fields, expected {}: {:?}",
                        head.fields.len(),
                        fixed + n,
                        head.fields
                    );
                } else {
                    ensure!(
                        (400..=599).contains(&st),
                        "handshake-output",
                        "automatic refusal with status {st}"
                    );
                }
                self.stage = Stage::Body(len);
                self.output(&rest)
            }
            Stage::Body(n) => {
                let take = n.min(v.len());
                self.body.extend_from_slice(&v[..take]);
                self.stage = Stage::Body(n - take);
                if n - take == 0 {
                    self.stage = Stage::Done;
                    if let Some((_, body, _)) = &self.refusal {
                        ensure!(
                            &self.body == body,
                            "reject-body",
                            "body {:?}, expected {:?}",
                            self.body,
                            body
                        );
                    }
                }
                ensure!(
                    take == v.len(),
                    "refusal-trailing",
                    "{} bytes after the refusal body",
                    v.len() - take
                );
                Ok(())
            }
            Stage::Done => Err(crate::findings::violation(
                "refusal-trailing",
                format!("{} bytes after a complete refusal", v.len()),
            )),
            Stage::Frames => {
                let items = self.frames.feed(v).map_err(|e| {
                    let id = if e.contains("not valid UTF-8") {
                        "text-not-utf8"
                    } else {
                        "frame-output"
                    };
                    crate::findings::violation(id, e)
                })?;
                for it in items {
                    match it {
                        Item::Message { .. } => {
                            let want = self.expect_out.pop_front();
                            ensure!(
                                want.as_ref() == Some(&it),
                                "message-output",
                                "transmitted {it:?}, the application sent {want:?}"
                            );
                        }
                        Item::Ping(p) => {
                            if self.expect_pings.front() == Some(&p) {
                                self.expect_pings.pop_front();
                            } else {
                                ensure!(p.len() == 8, "ping-output", "ping {p:?} nobody asked for");
                            }
                        }
                        Item::Pong(_) => {}
                        Item::Close(c) => {
                            if let Some(want) = self.expect_close.take() {
                                ensure!(
                                    c.as_ref() == Some(&want),
                                    "close-output",
                                    "close({want:?}) went out as {c:?}"
                                );
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// The decoded input, for triage (`replay --explain`).
pub fn describe(data: &[u8]) -> String {
    match Input::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(i) => format!("{i:#?}"),
        Err(e) => format!("undecodable: {e}"),
    }
}
