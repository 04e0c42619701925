//! The session layer: a client and a server `Session` (small random limits,
//! either codec) driven by an arbitrary sequence of application calls,
//! deliveries, connection cuts (reported at once or late), reconnects,
//! timer jumps, closes, go-aways and forged envelopes. The harness is the
//! host: it routes messages over an in-memory link, finds or creates the
//! server session from the hello, and drops sessions that expire or close.
//!
//! Checked after every step:
//! * every request ends in at most one reply or failure, only requests that
//!   were made do, and a reply carries what the peer answered to it;
//! * reliable events arrive in id order, each id at most once, with the
//!   payload sent under that id; fire-and-forget events at most once;
//! * what a session holds (heap, unacknowledged bytes, pending requests)
//!   stays within what its configuration allows;
//! * without forged input, no error event and no protocol-error close.
//!
//! At the end the network heals and time runs on: unless a session was
//! reset, expired or closed, every reliable event sent either way has
//! arrived or falls in a reported gap, every request has its outcome, and
//! the resume buffers are empty once everything is acknowledged.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use evsock::session::{
    new_session_id, peek_hello, CloseReason, Config, Format, MessageKind, Output, RequestError,
    SendError, Session, SessionEvent,
};
use evsock::{Rng, SeededRng};

use crate::mem::Meter;
use crate::{ensure, Stop};

const C: usize = 0;
const S: usize = 1;

#[derive(Arbitrary, Debug)]
struct Limits {
    msgpack: bool,
    max_message: u16,
    max_batch: u8,
    resume_window: u16,
    resume_bytes: u16,
    resume_age: u16,
    max_pending: u8,
    max_incoming: u8,
    max_timeout: u16,
    ack_delay: u8,
    ack_every: u8,
    ping: Option<u16>,
    idle: Option<u16>,
    handshake: u16,
    batch_window: u8,
    batch_bytes: u16,
    backoff_base: u8,
    backoff_max: u16,
}

impl Limits {
    fn config(&self) -> Config {
        Config {
            format: if self.msgpack {
                Format::MsgPack
            } else {
                Format::Json
            },
            max_message_bytes: 96 + self.max_message as usize % 4096,
            max_batch_envelopes: 1 + self.max_batch as usize % 16,
            resume_window_ms: self.resume_window as u64,
            resume_buffer_bytes: self.resume_bytes as usize % 8192,
            resume_buffer_age_ms: self.resume_age as u64 * 4,
            max_pending_requests: self.max_pending as usize % 32,
            max_incoming_requests: self.max_incoming as usize % 32,
            max_request_timeout_ms: 1 + self.max_timeout as u64,
            ack_delay_ms: self.ack_delay as u64,
            ack_every: 1 + self.ack_every as u64 % 16,
            ping_interval_ms: self.ping.map(|p| 50 + p as u64),
            // An idle timeout shorter than a batch window or an ack delay
            // starves the connection by design; keep it above both.
            idle_timeout_ms: self.idle.map(|p| 600 + p as u64),
            handshake_timeout_ms: 1 + self.handshake as u64,
            batch_window_ms: self.batch_window as u64 % 32,
            batch_max_bytes: self.batch_bytes as usize % 8192,
            backoff_base_ms: 1 + self.backoff_base as u64,
            backoff_max_ms: 1 + self.backoff_max as u64,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    limits: Limits,
    seed: u64,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Send {
        server: bool,
        reliable: bool,
    },
    Request {
        server: bool,
        timeout: u16,
    },
    Answer {
        server: bool,
        pick: u8,
        error: bool,
    },
    Deliver {
        to_server: bool,
        n: u8,
    },
    Cut {
        tell_client: bool,
        tell_server: bool,
    },
    Tell {
        server: bool,
    },
    Connect,
    Advance(u16),
    ToDeadline,
    Close {
        server: bool,
    },
    GoAway(u16),
    Forge {
        to_server: bool,
        envs: Vec<Forged>,
    },
    Raw {
        to_server: bool,
        binary: bool,
        bytes: Vec<u8>,
    },
}

/// A plausible envelope from a broken or hostile peer (always JSON).
#[derive(Arbitrary, Debug)]
struct Forged {
    event: u8,
    data: Option<ForgedData>,
    id: Option<u8>,
    rq: Option<u16>,
    re: Option<u8>,
    ack: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct ForgedData {
    v: Option<u8>,
    sid: Option<bool>,
    st: Option<bool>,
    rx: Option<u8>,
    lo: Option<u8>,
    lost: Option<(u8, u8)>,
    ra: Option<u16>,
    end: Option<bool>,
    num: Option<u8>,
}

impl Forged {
    fn json(&self, sid: &str) -> String {
        const EVENTS: [&str; 10] = [
            "evs/hello",
            "evs/welcome",
            "evs/ack",
            "evs/reply",
            "evs/rerr",
            "evs/ping",
            "evs/pong",
            "evs/bye",
            "evs/what",
            "inj/x",
        ];
        let ev = EVENTS[self.event as usize % EVENTS.len()];
        let data = match &self.data {
            None => "null".to_string(),
            Some(d) => {
                if let Some(n) = d.num {
                    n.to_string()
                } else {
                    let mut f = Vec::new();
                    let mut num = |k: &str, v: Option<u64>| {
                        if let Some(v) = v {
                            f.push(format!("\"{k}\":{v}"));
                        }
                    };
                    num("v", d.v.map(|v| v as u64 % 3));
                    num("rx", d.rx.map(u64::from));
                    num("lo", d.lo.map(u64::from));
                    num("ra", d.ra.map(u64::from));
                    if let Some(real) = d.sid {
                        f.push(format!("\"sid\":\"{}\"", if real { sid } else { "S9" }));
                    }
                    if let Some(st) = d.st {
                        f.push(format!("\"st\":\"{}\"", if st { "new" } else { "resumed" }));
                    }
                    if let Some((a, b)) = d.lost {
                        f.push(format!("\"lost\":[{a},{b}]"));
                    }
                    if let Some(e) = d.end {
                        f.push(format!("\"end\":{e}"));
                    }
                    format!("{{{}}}", f.join(","))
                }
            }
        };
        let mut m = Vec::new();
        for (k, v) in [
            ("id", self.id.map(u64::from)),
            ("rq", self.rq.map(u64::from)),
            ("re", self.re.map(u64::from)),
            ("ack", self.ack.map(u64::from)),
        ] {
            if let Some(v) = v {
                m.push(format!("\"{k}\":{v}"));
            }
        }
        if m.is_empty() {
            format!("[\"{ev}\",{data}]")
        } else {
            format!("[\"{ev}\",{data},{{{}}}]", m.join(","))
        }
    }
}

/// What one side sent reliably, by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Msg(u64),
    Req(u64),
}

#[derive(Default)]
struct Book {
    /// Reliable ids this side sent (messages and requests; replies are
    /// tracked by their request).
    sent: BTreeMap<u64, Sent>,
    /// Fire-and-forget tags this side sent.
    once_sent: BTreeSet<u64>,
    /// Highest reliable id received from the peer (this incarnation).
    last_id: u64,
    /// Reliable ids received from the peer.
    got: BTreeSet<u64>,
    once_got: BTreeSet<u64>,
    gaps: Vec<(u64, u64)>,
    /// Outgoing requests: id -> tag, and their outcomes.
    requests: BTreeMap<u64, u64>,
    outcomes: BTreeMap<u64, String>,
    /// Incoming requests not answered yet.
    to_answer: Vec<u64>,
    /// Answers this side gave: request id -> (tag, as error).
    answered: BTreeMap<u64, (u64, bool)>,
}

struct Link {
    c2s: VecDeque<(MessageKind, Vec<u8>)>,
    s2c: VecDeque<(MessageKind, Vec<u8>)>,
    /// The server session has seen this connection's hello.
    server_attached: bool,
}

struct World {
    cfg: Config,
    now: u64,
    rng: SeededRng,
    client: Session,
    server: Option<Session>,
    meters: [Meter; 2],
    link: Option<Link>,
    /// Disconnects not yet reported to each side.
    untold: [bool; 2],
    want_connect: bool,
    books: [Book; 2],
    next_tag: u64,
    /// Forged input went in: only the safety properties hold.
    tainted: bool,
    /// A reset, expiry or close: completeness no longer holds.
    weak: bool,
    closed: [bool; 2],
}

thread_local! {
    static TRACE: bool = std::env::var_os("FUZZ_TRACE").is_some();
}

/// With FUZZ_TRACE set (replaying one input), prints what happens.
fn trace(f: impl FnOnce() -> String) {
    if TRACE.with(|t| *t) {
        eprintln!("{}", f());
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return Ok(());
    };
    let cfg = input.limits.config();
    let mut meters = [Meter::default(), Meter::default()];
    let client =
        meters[C].run(|| Session::client(cfg.clone(), Box::new(SeededRng::new(input.seed))));
    let mut w = World {
        cfg,
        now: 0,
        rng: SeededRng::new(input.seed ^ 0x5eed),
        client,
        server: None,
        meters,
        link: None,
        untold: [false; 2],
        want_connect: true,
        books: [Book::default(), Book::default()],
        next_tag: 1,
        tainted: false,
        weak: false,
        closed: [false; 2],
    };
    trace(|| format!("{:?}", w.cfg));
    for op in input.ops.iter().take(256) {
        trace(|| format!("t={} op {op:?}", w.now));
        w.step(op)?;
        w.drain()?;
        w.check_bounds()?;
    }
    w.heal()
}

impl World {
    fn session(&mut self, side: usize) -> Option<&mut Session> {
        if side == C {
            Some(&mut self.client)
        } else {
            self.server.as_mut()
        }
    }

    /// Runs `f` on a side's session, metering its heap.
    fn with<R>(&mut self, side: usize, f: impl FnOnce(&mut Session, u64) -> R) -> Option<R> {
        let now = self.now;
        let s = if side == C {
            &mut self.client
        } else {
            self.server.as_mut()?
        };
        Some(self.meters[side].run(|| f(s, now)))
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    fn data(&self, tag: u64) -> Bytes {
        self.cfg.format.encode(&tag).unwrap()
    }

    fn step(&mut self, op: &Op) -> Result<(), Stop> {
        match op {
            Op::Send { server, reliable } => {
                let side = *server as usize;
                let tag = self.tag();
                let data = self.data(tag);
                if *reliable {
                    let r = self.with(side, |s, now| {
                        (s.send_reliable(now, "app/msg", data), s.unacked_bytes())
                    });
                    match r {
                        Some((Ok(id), _)) => {
                            let prev = self.books[side].sent.insert(id, Sent::Msg(tag));
                            ensure!(
                                prev.is_none(),
                                "session-id-reused",
                                "reliable id {id} twice"
                            );
                        }
                        Some((Err(SendError::BufferFull), held)) => {
                            // Refused only when it really would not fit.
                            ensure!(
                                held > 0
                                    && held + self.cfg.max_message_bytes
                                        > self.cfg.resume_buffer_bytes,
                                "session-refused",
                                "side {side}: buffer_full with {held} of {} bytes held",
                                self.cfg.resume_buffer_bytes
                            );
                        }
                        _ => {}
                    }
                } else if let Some(Ok(())) = self.with(side, |s, now| s.send(now, "app/once", data))
                {
                    self.books[side].once_sent.insert(tag);
                }
            }
            Op::Request { server, timeout } => {
                let side = *server as usize;
                let tag = self.tag();
                let data = self.data(tag);
                let t = 1 + *timeout as u64;
                let before = self.session(side).map_or(0, |s| s.pending_requests());
                let r = self.with(side, |s, now| s.request(now, "app/req", data, t));
                if let Some(r) = r {
                    let max = self.cfg.max_pending_requests;
                    if before >= max || t > self.cfg.max_request_timeout_ms {
                        ensure!(
                            r.is_err(),
                            "session-limit",
                            "request accepted with {before} pending (max {max}), timeout {t}"
                        );
                    }
                    if let Ok(id) = r {
                        let b = &mut self.books[side];
                        let prev = b.sent.insert(id, Sent::Req(tag));
                        ensure!(
                            prev.is_none(),
                            "session-id-reused",
                            "reliable id {id} twice"
                        );
                        b.requests.insert(id, tag);
                    }
                }
            }
            Op::Answer {
                server,
                pick,
                error,
            } => {
                let side = *server as usize;
                let list = &self.books[side].to_answer;
                if list.is_empty() {
                    return Ok(());
                }
                let req = list[*pick as usize % list.len()];
                let tag = self.tag();
                let data = self.data(tag);
                let r = self.with(side, |s, now| {
                    if *error {
                        s.reply_error(now, req, data)
                    } else {
                        s.reply(now, req, data)
                    }
                });
                if let Some(Ok(())) = r {
                    let b = &mut self.books[side];
                    b.to_answer.retain(|&x| x != req);
                    let prev = b.answered.insert(req, (tag, *error));
                    ensure!(
                        prev.is_none(),
                        "session-double-reply",
                        "request {req} answered twice"
                    );
                } else {
                    self.books[side].to_answer.retain(|&x| x != req);
                }
            }
            Op::Deliver { to_server, n } => {
                for _ in 0..=*n % 16 {
                    if !self.deliver_one(*to_server)? {
                        break;
                    }
                    self.drain()?;
                }
            }
            Op::Cut {
                tell_client,
                tell_server,
            } => {
                self.cut();
                if *tell_client {
                    self.tell(C);
                }
                if *tell_server {
                    self.tell(S);
                }
            }
            Op::Tell { server } => self.tell(*server as usize),
            Op::Connect => self.connect(),
            Op::Advance(ms) => self.advance(self.now + *ms as u64),
            Op::ToDeadline => {
                if let Some(d) = self.deadline() {
                    self.advance(d);
                }
            }
            Op::Close { server } => {
                let side = *server as usize;
                self.with(side, |s, now| s.close(now));
            }
            Op::GoAway(ms) => {
                self.with(S, |s, now| s.go_away(now, *ms as u64));
            }
            Op::Forge { to_server, envs } => {
                if envs.is_empty() {
                    return Ok(());
                }
                let sid = self
                    .server
                    .as_ref()
                    .and_then(|s| s.session_id())
                    .unwrap_or("S1")
                    .to_string();
                let parts: Vec<String> = envs.iter().take(4).map(|e| e.json(&sid)).collect();
                let frame = if parts.len() == 1 {
                    parts[0].clone()
                } else {
                    format!("[{}]", parts.join(","))
                };
                self.inject(*to_server, MessageKind::Text, frame.into_bytes());
            }
            Op::Raw {
                to_server,
                binary,
                bytes,
            } => {
                let kind = if *binary {
                    MessageKind::Binary
                } else {
                    MessageKind::Text
                };
                self.inject(*to_server, kind, bytes.clone());
            }
        }
        Ok(())
    }

    /// Forged input goes into the current connection, as if the peer sent it.
    fn inject(&mut self, to_server: bool, kind: MessageKind, bytes: Vec<u8>) {
        if let Some(l) = self.link.as_mut() {
            self.tainted = true;
            let q = if to_server { &mut l.c2s } else { &mut l.s2c };
            q.push_back((kind, bytes));
        }
    }

    fn cut(&mut self) {
        if self.link.take().is_some() {
            self.untold = [true, true];
        }
    }

    fn tell(&mut self, side: usize) {
        if std::mem::take(&mut self.untold[side]) {
            self.with(side, |s, now| s.handle_disconnected(now));
        }
    }

    fn connect(&mut self) {
        if self.link.is_some() || self.closed[C] || !self.want_connect {
            return;
        }
        // A client host learns of the old connection's end before it
        // opens a new one; the server may not have yet.
        self.tell(C);
        self.untold[S] = false;
        self.want_connect = false;
        self.link = Some(Link {
            c2s: VecDeque::new(),
            s2c: VecDeque::new(),
            server_attached: false,
        });
        self.with(C, |s, now| s.handle_connected(now));
    }

    fn deadline(&self) -> Option<u64> {
        let c = self.client.poll_timeout();
        let s = self.server.as_ref().and_then(|s| s.poll_timeout());
        match (c, s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn advance(&mut self, to: u64) {
        self.now = self.now.max(to);
        for side in [C, S] {
            self.with(side, |s, now| s.handle_timeout(now));
        }
    }

    /// Hands the next in-flight message to its receiver. False if none.
    fn deliver_one(&mut self, to_server: bool) -> Result<bool, Stop> {
        let Some(l) = self.link.as_mut() else {
            return Ok(false);
        };
        let q = if to_server { &mut l.c2s } else { &mut l.s2c };
        let Some((kind, payload)) = q.pop_front() else {
            return Ok(false);
        };
        if !to_server {
            self.with(C, |s, now| s.handle_message(now, kind, &payload));
            return Ok(true);
        }
        if !l.server_attached {
            // The host looks the session up by the hello's id.
            let Ok(hello) = peek_hello(kind, &payload) else {
                // Not a hello: the host closes the connection.
                self.cut();
                self.tell(C);
                self.untold[S] = false;
                return Ok(true);
            };
            l.server_attached = true;
            // The host forgot sessions that expired or closed.
            let same = !self.closed[S]
                && hello.session_id.is_some()
                && self.server.as_ref().and_then(|s| s.session_id()) == hello.session_id.as_deref();
            if !same {
                if self.server.is_some() {
                    // The old one is dropped by the host: a new incarnation.
                    self.weak = true;
                }
                let id = new_session_id(&mut self.rng);
                let seed = self.rng.next_u64();
                self.meters[S] = Meter::default();
                let cfg = self.cfg.clone();
                let s = self.meters[S]
                    .run(|| Session::server(cfg, &id, Box::new(SeededRng::new(seed))).unwrap());
                self.server = Some(s);
                self.closed[S] = false;
                // The new server session numbers its stream from 1 and
                // expects the client's from its `lo` (the client restarts
                // its own only when told to reset).
                self.books[S].sent.clear();
                self.books[C].got.clear();
                self.books[S].last_id = 0;
                self.books[C].last_id = 0;
                // Its requests are numbered from 1 again, and what the old
                // one was asked or asked itself went with it (a request the
                // old one still had pending never ends: `weak` above).
                let b = &mut self.books[S];
                b.requests.clear();
                b.outcomes.clear();
                b.to_answer.clear();
                b.answered.clear();
            }
            self.untold[S] = false;
            self.with(S, |s, now| s.handle_connected(now));
        }
        self.with(S, |s, now| s.handle_message(now, kind, &payload));
        Ok(true)
    }

    /// Drains both sessions' outputs, acting as their hosts.
    fn drain(&mut self) -> Result<(), Stop> {
        for _ in 0..64 {
            let mut moved = false;
            for side in [C, S] {
                while let Some(o) = self.with(side, |s, _| s.poll_output()).flatten() {
                    moved = true;
                    match o {
                        Output::Send { kind, payload } => {
                            let v = payload.to_vec();
                            trace(|| {
                                format!("  side {side} sends {:?}", String::from_utf8_lossy(&v))
                            });
                            self.meters[side].run(|| drop(payload));
                            // A protocol envelope (a welcome with a lost
                            // range, say) may exceed a small
                            // max_message_bytes up to MIN_MESSAGE_BYTES,
                            // which every receiver accepts.
                            let control = v.windows(4).any(|w| w == b"evs/")
                                && !v.windows(4).any(|w| w == b"app/");
                            let max = if control {
                                self.cfg
                                    .max_message_bytes
                                    .max(evsock::session::MIN_MESSAGE_BYTES)
                            } else {
                                self.cfg.max_message_bytes
                            };
                            ensure!(
                                v.len() <= max,
                                if control {
                                    "session-control-too-large"
                                } else {
                                    "session-too-large"
                                },
                                "{} bytes sent, max {}: {:?}",
                                v.len(),
                                self.cfg.max_message_bytes,
                                String::from_utf8_lossy(&v)
                            );
                            let attached = self.link.as_ref().is_some_and(|l| l.server_attached);
                            if let Some(l) = self.link.as_mut() {
                                if side == C {
                                    l.c2s.push_back((kind, v));
                                } else if attached {
                                    l.s2c.push_back((kind, v));
                                }
                            }
                        }
                        Output::Event(e) => {
                            let r = self.event(side, &e);
                            self.meters[side].run(|| drop(e));
                            r?;
                        }
                    }
                }
            }
            if !moved {
                return Ok(());
            }
        }
        Ok(())
    }

    fn tag_of(&self, data: &[u8]) -> Option<u64> {
        self.cfg.format.decode::<u64>(data).ok()
    }

    fn event(&mut self, side: usize, e: &SessionEvent) -> Result<(), Stop> {
        trace(|| format!("  t={} side {side} event {e:?}", self.now));
        let peer = 1 - side;
        let tainted = self.tainted;
        match e {
            SessionEvent::Message { event, data, id } => {
                if event.as_str() == "inj/x" {
                    ensure!(tainted, "session-phantom", "{e:?} nobody sent");
                    return Ok(());
                }
                let tag = self.tag_of(data);
                match id {
                    Some(id) => self.reliable(side, *id, tag.map(Sent::Msg))?,
                    None => {
                        let fresh = tag.is_some_and(|t| self.books[side].once_got.insert(t));
                        ensure!(
                            tainted
                                || (fresh
                                    && tag
                                        .is_some_and(|t| self.books[peer].once_sent.contains(&t))),
                            "session-once",
                            "fire-and-forget {tag:?} delivered twice or never sent"
                        );
                    }
                }
            }
            SessionEvent::Request { req, data, .. } => {
                let tag = self.tag_of(data);
                self.reliable(side, *req, tag.map(Sent::Req))?;
                self.books[side].to_answer.push(*req);
            }
            SessionEvent::Reply { req, data } => {
                let tag = self.tag_of(data);
                self.outcome(side, *req, "reply")?;
                let want = self.books[peer].answered.get(req).copied();
                ensure!(
                    tainted || want == tag.map(|t| (t, false)),
                    "session-reply",
                    "reply {tag:?} to request {req}, the peer answered {want:?}"
                );
            }
            SessionEvent::RequestFailed { req, error } => {
                self.outcome(side, *req, error.code())?;
                if let RequestError::Remote(data) = error {
                    let tag = self.tag_of(data);
                    let want = self.books[peer].answered.get(req).copied();
                    ensure!(
                        tainted || want == tag.map(|t| (t, true)),
                        "session-reply",
                        "error reply {tag:?} to request {req}, the peer answered {want:?}"
                    );
                }
            }
            SessionEvent::Reconnect => {
                ensure!(side == C, "session-event", "server asked to reconnect");
                self.want_connect = true;
            }
            SessionEvent::CloseTransport { reason } => {
                ensure!(
                    tainted || *reason != CloseReason::ProtocolError,
                    "session-protocol-error",
                    "side {side} closed for a protocol error without bad input"
                );
                // The host closes the connection; the other end sees it
                // later, this end knows at once.
                if side == C || self.link.as_ref().is_some_and(|l| l.server_attached) {
                    self.cut();
                    self.untold[side] = false;
                }
            }
            SessionEvent::Gap { from, to } => {
                ensure!(from <= to, "session-gap", "gap {from}..{to}");
                self.books[side].gaps.push((*from, *to));
            }
            SessionEvent::Reset { .. } => {
                self.weak = true;
                // A reset fails every request the client still had pending
                // before it says so: none may end later, or twice.
                let b = &self.books[C];
                let open: Vec<u64> = b
                    .requests
                    .keys()
                    .filter(|r| !b.outcomes.contains_key(r))
                    .copied()
                    .collect();
                ensure!(
                    tainted || open.is_empty(),
                    "session-reset-pending",
                    "Reset with requests {open:?} still pending"
                );
                // The client forgets both streams; its ids start over, and
                // so do its request ids and the server's.
                self.books[C].sent.clear();
                self.books[S].got.clear();
                self.books[S].last_id = 0;
                self.books[C].last_id = 0;
                for b in &mut self.books {
                    b.to_answer.clear();
                    b.answered.clear();
                }
                self.books[C].requests.clear();
                self.books[C].outcomes.clear();
            }
            SessionEvent::Expired | SessionEvent::Closed { .. } => {
                self.weak = true;
                self.closed[side] = true;
            }
            SessionEvent::Established { .. } => {}
            SessionEvent::Error(err) => {
                ensure!(
                    tainted,
                    "session-error",
                    "side {side}: error {err:?} without bad input"
                );
            }
        }
        Ok(())
    }

    /// A reliable event (message or request) with id `id` reached `side`.
    fn reliable(&mut self, side: usize, id: u64, what: Option<Sent>) -> Result<(), Stop> {
        let peer = 1 - side;
        let b = &self.books[side];
        ensure!(
            id > b.last_id,
            "session-order",
            "side {side} got reliable id {id} after {}",
            b.last_id
        );
        self.books[side].last_id = id;
        if self.tainted || self.weak {
            return Ok(());
        }
        let sent = self.books[peer].sent.get(&id).copied();
        ensure!(
            sent.is_some() && sent == what,
            "session-delivery",
            "side {side} got id {id} as {what:?}, the peer sent {sent:?}"
        );
        ensure!(
            self.books[side].got.insert(id),
            "session-duplicate",
            "side {side} got id {id} twice"
        );
        Ok(())
    }

    fn outcome(&mut self, side: usize, req: u64, what: &str) -> Result<(), Stop> {
        let b = &mut self.books[side];
        ensure!(
            b.requests.contains_key(&req),
            "session-outcome",
            "side {side}: outcome {what} for request {req} never made"
        );
        let prev = b.outcomes.insert(req, what.to_string());
        ensure!(
            prev.is_none(),
            "session-outcome",
            "side {side}: request {req} ended twice ({prev:?}, then {what})"
        );
        Ok(())
    }

    fn check_bounds(&self) -> Result<(), Stop> {
        let c = &self.cfg;
        for side in [C, S] {
            let Some(s) = (if side == C {
                Some(&self.client)
            } else {
                self.server.as_ref()
            }) else {
                continue;
            };
            ensure!(
                s.pending_requests() <= c.max_pending_requests,
                "session-memory",
                "{} pending requests, max {}",
                s.pending_requests(),
                c.max_pending_requests
            );
            // Unsent envelopes cannot be evicted; at most a batch of them
            // (and the one message always kept) on top of the limit. Nor
            // can anything while handshaking: reliable sends are refused
            // then (`BufferFull`), but requests and replies are not, so
            // they wait on top, bounded by their counts.
            let unacked = c.resume_buffer_bytes
                + c.batch_max_bytes.max(c.max_message_bytes) * 2
                + (c.max_pending_requests + c.max_incoming_requests) * c.max_message_bytes;
            ensure!(
                s.unacked_bytes() <= unacked,
                "session-memory",
                "side {side}: {} unacknowledged bytes, bound {unacked}",
                s.unacked_bytes()
            );
            let heap = 32 * 1024
                + 8 * unacked
                + 512 * (c.max_pending_requests + c.max_incoming_requests)
                + 4 * c.max_message_bytes;
            ensure!(
                self.meters[side].held() <= heap as isize,
                "session-memory",
                "side {side} holds {} bytes of heap, bound {heap} ({s:?})",
                self.meters[side].held()
            );
        }
        Ok(())
    }

    /// The network heals and time runs on until everything settles.
    fn heal(&mut self) -> Result<(), Stop> {
        trace(|| "heal".into());
        self.tell(C);
        self.tell(S);
        self.drain()?;
        for round in 0..200u64 {
            if self.link.is_none() {
                self.connect();
                self.drain()?;
            }
            while self.deliver_one(true)? | self.deliver_one(false)? {
                self.drain()?;
            }
            self.drain()?;
            self.check_bounds()?;
            let idle = self
                .link
                .as_ref()
                .is_none_or(|l| l.c2s.is_empty() && l.s2c.is_empty());
            let settled = idle
                && self
                    .books
                    .iter()
                    .all(|b| b.requests.len() == b.outcomes.len())
                && self.client.unacked_messages() == 0
                && self
                    .server
                    .as_ref()
                    .is_none_or(|s| s.unacked_messages() == 0)
                && self.client.is_established();
            if settled || (self.closed[C] && idle) {
                break;
            }
            // Late hosts are legal: jump further each round, so that short
            // ping intervals do not keep long timeouts from coming due.
            match self.deadline() {
                Some(d) => self.advance(d.max(self.now + 25 * (round + 1))),
                None if self.link.is_none() && !self.want_connect => break,
                None => {}
            }
            self.drain()?;
        }
        if self.tainted || self.weak || self.closed.iter().any(|&x| x) {
            return Ok(());
        }
        for side in [C, S] {
            let peer = 1 - side;
            let b = &self.books[side];
            for &req in b.requests.keys() {
                ensure!(
                    b.outcomes.contains_key(&req),
                    "session-lost-request",
                    "side {side}: request {req} never ended"
                );
            }
            // Requests are bounded by their timeouts (checked above: each
            // ended); reliable messages must arrive.
            for (&id, _) in self.books[side]
                .sent
                .iter()
                .filter(|(_, s)| matches!(s, Sent::Msg(_)))
            {
                let p = &self.books[peer];
                ensure!(
                    p.got.contains(&id) || p.gaps.iter().any(|&(a, z)| (a..=z).contains(&id)),
                    "session-lost",
                    "side {side}'s reliable id {id} never arrived and is in no gap ({:?})",
                    p.gaps
                );
            }
        }
        Ok(())
    }
}

/// The decoded input, for triage (`FUZZ_EXPLAIN=1` with the replay example).
pub fn describe(data: &[u8]) -> String {
    match Input::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(i) => format!("{i:#?}"),
        Err(e) => format!("undecodable: {e}"),
    }
}
