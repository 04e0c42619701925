//! Deterministic simulation: a client and a server `Session` over a link that
//! drops connections, delays and duplicates deliveries, and a clock that
//! jumps. Every run is seeded; a failure prints its seed.
//!
//! Invariants checked (inside the resume window):
//! * every reliable event (messages and requests, both directions) is
//!   delivered exactly once and in send order;
//! * every request ends in exactly one reply or one error, and a reply
//!   carries the data its replier sent for that very request;
//! * no gap, reset or protocol error is ever reported.
//!
//! A second run shrinks the resume buffer so that messages get evicted and
//! checks that every id is either delivered (in order, once) or reported in
//! a gap.

use bytes::Bytes;
use evsock::session::*;
use evsock::{Rng, SeededRng};
use std::collections::{BTreeMap, VecDeque};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    C,
    S,
}

struct Link {
    id: u64,
    c2s: VecDeque<(u64, MessageKind, Bytes)>,
    s2c: VecDeque<(u64, MessageKind, Bytes)>,
    server_attached: bool,
}

#[derive(Default)]
struct Book {
    /// Payload numbers of reliable messages and requests, in send order.
    sent: Vec<u64>,
    /// Payload numbers delivered to the other side, in delivery order.
    got: Vec<u64>,
    /// Outgoing request id -> payload.
    requests: BTreeMap<u64, u64>,
    /// Outgoing request id -> outcome ("reply" / error code).
    outcomes: BTreeMap<u64, String>,
    /// Incoming requests to answer: (when, req, payload, as_error).
    to_answer: Vec<(u64, u64, u64, bool)>,
    /// Ids delivered (for the eviction run).
    got_ids: Vec<u64>,
    gaps: Vec<(u64, u64)>,
}

struct Sim {
    rng: SeededRng,
    seed: u64,
    now: u64,
    c: Session,
    s: Session,
    link: Option<Link>,
    next_link: u64,
    client_conn: Option<u64>,
    server_conn: Option<u64>,
    c_notify: Option<u64>,
    s_notify: Option<u64>,
    connect_at: Option<u64>,
    chaos: bool,
    dup_pct: u32,
    max_delay: u64,
    cb: Book,
    sb: Book,
    next_payload: u64,
    allow_gaps: bool,
    errors: Vec<String>,
    s_ever: bool,
    orphans: usize,
}

impl Sim {
    fn pct(&mut self, p: u32) -> bool {
        self.rng.next_u32() % 100 < p
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rng.next_u64() % n
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {}: at t={}: {}", self.seed, self.now, what)
    }

    fn session(&mut self, w: Who) -> &mut Session {
        match w {
            Who::C => &mut self.c,
            Who::S => &mut self.s,
        }
    }

    fn book(&mut self, w: Who) -> &mut Book {
        match w {
            Who::C => &mut self.cb,
            Who::S => &mut self.sb,
        }
    }

    fn decode_num(&self, w: Who, data: &Bytes) -> u64 {
        let f = match w {
            Who::C => self.c.format(),
            Who::S => self.s.format(),
        };
        f.decode::<u64>(data)
            .unwrap_or_else(|e| self.fail(format!("bad payload {data:?}: {e}")))
    }

    fn cut(&mut self, by: Who) {
        if self.link.take().is_none() {
            return;
        }
        let later = self.now + self.below(60);
        match by {
            Who::C => {
                if self.server_conn.is_some() {
                    self.s_notify = Some(later);
                }
            }
            Who::S => {
                if self.client_conn.is_some() {
                    self.c_notify = Some(later);
                }
            }
        }
    }

    /// Drains one side's outputs, acting as its host.
    fn drain(&mut self, w: Who) -> bool {
        let mut moved = false;
        while let Some(o) = self.session(w).poll_output() {
            moved = true;
            match o {
                Output::Send { kind, payload } => {
                    let conn = match w {
                        Who::C => self.client_conn,
                        Who::S => self.server_conn,
                    };
                    let copies = if self.chaos && self.pct(self.dup_pct) {
                        2
                    } else {
                        1
                    };
                    let delay = self.below(self.max_delay + 1);
                    let now = self.now;
                    if let Some(l) = self.link.as_mut().filter(|l| Some(l.id) == conn) {
                        let q = match w {
                            Who::C => &mut l.c2s,
                            Who::S => &mut l.s2c,
                        };
                        let at = q.back().map_or(0, |m| m.0).max(now + delay);
                        for _ in 0..copies {
                            q.push_back((at, kind, payload.clone()));
                        }
                    }
                }
                Output::Event(e) => self.on_event(w, e),
            }
        }
        moved
    }

    fn on_event(&mut self, w: Who, e: SessionEvent) {
        match e {
            SessionEvent::Message { data, id, .. } => {
                let n = self.decode_num(w, &data);
                let b = self.book(w);
                b.got.push(n);
                b.got_ids.extend(id);
            }
            SessionEvent::Request { req, data, .. } => {
                let n = self.decode_num(w, &data);
                self.book(w).got.push(n);
                let roll = self.below(100);
                let when = self.now + self.below(400);
                if roll < 90 {
                    self.book(w).to_answer.push((when, req, n, roll >= 80));
                }
            }
            SessionEvent::Reply { req, data }
            | SessionEvent::RequestFailed {
                req,
                error: RequestError::Remote(data),
            } => {
                let n = self.decode_num(w, &data);
                let b = self.book(w);
                let expect = b.requests.get(&req).copied();
                let prev = b.outcomes.insert(req, "answer".into());
                if expect != Some(n) {
                    self.fail(format!("{w:?} req {req}: answer {n}, expected {expect:?}"));
                }
                if let Some(p) = prev {
                    self.fail(format!("{w:?} req {req}: second outcome after {p}"));
                }
            }
            SessionEvent::RequestFailed { req, error } => {
                let b = self.book(w);
                if !b.requests.contains_key(&req) {
                    self.fail(format!("{w:?} unknown req {req} failed"));
                }
                if let Some(p) = b.outcomes.insert(req, error.code().into()) {
                    self.fail(format!(
                        "{w:?} req {req}: second outcome {error:?} after {p}"
                    ));
                }
                if error != RequestError::Timeout && !self.allow_gaps {
                    self.fail(format!("{w:?} req {req}: {error:?}"));
                }
            }
            SessionEvent::Reconnect => {
                assert_eq!(w, Who::C);
                self.connect_at = Some(self.now + self.below(30));
            }
            SessionEvent::CloseTransport { reason } => {
                if reason == CloseReason::ProtocolError {
                    self.fail(format!("{w:?} protocol error close"));
                }
                match w {
                    Who::C => self.client_conn = None,
                    Who::S => self.server_conn = None,
                }
                self.cut(w);
            }
            SessionEvent::Gap { from, to } => {
                if !self.allow_gaps {
                    self.fail(format!("{w:?} gap {from}..{to}"));
                }
                self.book(w).gaps.push((from, to));
            }
            SessionEvent::Reset { .. } | SessionEvent::Expired | SessionEvent::Closed { .. } => {
                self.fail(format!("{w:?} unexpected {e:?}"))
            }
            SessionEvent::Error(SessionError::UnexpectedHandshake) => {} // duplicated hello/welcome
            SessionEvent::Error(err) => self.errors.push(format!("{w:?} {err}")),
            SessionEvent::Established { .. } => {
                if w == Who::S {
                    self.s_ever = true;
                }
            }
        }
        if let Some(e) = self.errors.first() {
            self.fail(e.clone());
        }
    }

    /// Runs everything due at `self.now` until quiet.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = self.drain(Who::C) | self.drain(Who::S);
            let now = self.now;
            if self.c_notify.is_some_and(|t| t <= now) {
                self.c_notify = None;
                self.client_conn = None;
                self.c.handle_disconnected(now);
                moved = true;
            }
            if self.s_notify.is_some_and(|t| t <= now) {
                self.s_notify = None;
                self.server_conn = None;
                self.s.handle_disconnected(now);
                moved = true;
            }
            if self.connect_at.is_some_and(|t| t <= now) {
                self.connect_at = None;
                moved = true;
                if self.chaos && self.pct(15) {
                    self.c.handle_disconnected(now); // connect failed
                } else {
                    self.link = None;
                    self.next_link += 1;
                    self.link = Some(Link {
                        id: self.next_link,
                        c2s: VecDeque::new(),
                        s2c: VecDeque::new(),
                        server_attached: false,
                    });
                    self.client_conn = Some(self.next_link);
                    self.c_notify = None;
                    self.c.handle_connected(now);
                }
            }
            // Deliveries.
            let mut deliver: Option<(Who, MessageKind, Bytes)> = None;
            if let Some(l) = self.link.as_mut() {
                if l.c2s.front().is_some_and(|m| m.0 <= now) {
                    let (_, k, p) = l.c2s.pop_front().unwrap();
                    deliver = Some((Who::S, k, p));
                } else if l.s2c.front().is_some_and(|m| m.0 <= now) {
                    let (_, k, p) = l.s2c.pop_front().unwrap();
                    deliver = Some((Who::C, k, p));
                }
            }
            if let Some((to, kind, payload)) = deliver {
                moved = true;
                if to == Who::S {
                    let l = self.link.as_mut().unwrap();
                    if !l.server_attached {
                        // The host routes a new connection by its hello.
                        l.server_attached = true;
                        let id = l.id;
                        let h = peek_hello(kind, &payload)
                            .unwrap_or_else(|e| self.fail(format!("first message not hello: {e}")));
                        if h.session_id.is_some() && h.session_id.as_deref() != self.s.session_id()
                        {
                            self.fail(format!("hello for unknown session {h:?}"));
                        }
                        if h.session_id.is_none() && self.s_ever {
                            // The client never saw the welcome of the first
                            // session: a real host creates a new session and
                            // the orphan expires.
                            self.replace_server();
                        }
                        self.server_conn = Some(id);
                        self.s_notify = None;
                        self.s.handle_connected(now);
                    }
                }
                if std::env::var("EVS_TRACE").is_ok_and(|v| v == self.seed.to_string()) {
                    eprintln!(
                        "t={now} -> {to:?}: {} {:02x?}",
                        String::from_utf8_lossy(&payload),
                        &payload[..]
                    );
                }
                self.session(to).handle_message_bytes(now, kind, payload);
            }
            // Replies due.
            for w in [Who::C, Who::S] {
                let due: Vec<_> = {
                    let b = self.book(w);
                    let (due, keep): (Vec<_>, Vec<_>) =
                        b.to_answer.drain(..).partition(|a| a.0 <= now);
                    b.to_answer = keep;
                    due
                };
                for (_, req, n, as_err) in due {
                    moved = true;
                    let data = self.session(w).encode(&n).unwrap();
                    let r = if as_err {
                        self.session(w).reply_error(now, req, data)
                    } else {
                        self.session(w).reply(now, req, data)
                    };
                    if let Err(e) = r {
                        if e != SendError::UnknownRequest {
                            self.fail(format!("{w:?} reply: {e}"));
                        }
                    }
                }
            }
            // Timers.
            for w in [Who::C, Who::S] {
                if self.session(w).poll_timeout().is_some_and(|t| t <= now) {
                    self.session(w).handle_timeout(now);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        self.fail("did not settle (livelock)".into());
    }

    fn replace_server(&mut self) {
        let cfg = self.s.config().clone();
        let sid = format!("S{}", self.next_link);
        let fresh = Session::server(cfg, &sid, Box::new(SeededRng::new(self.seed ^ 77))).unwrap();
        let mut old = std::mem::replace(&mut self.s, fresh);
        old.close(self.now);
        while let Some(o) = old.poll_output() {
            if let Output::Event(SessionEvent::RequestFailed { req, error }) = o {
                if error != RequestError::SessionClosed
                    || self.sb.outcomes.insert(req, "closed".into()).is_some()
                {
                    self.fail(format!("orphan req {req}: {error:?}"));
                }
            }
        }
        if self.sb.requests.len() != self.sb.outcomes.len() {
            self.fail("orphan requests left hanging".into());
        }
        if !self.cb.got.is_empty() || !self.sb.got.is_empty() {
            self.fail("orphaned session had delivered data".into());
        }
        self.sb = Book::default();
        self.s_ever = false;
        self.orphans += 1;
    }

    fn send(&mut self, w: Who, request: bool) {
        let n = self.next_payload;
        let data = self.session(w).encode(&n).unwrap();
        let now = self.now;
        if request {
            let t = 100 + self.below(3000);
            match self.session(w).request(now, "sim/req", data, t) {
                Ok(id) => {
                    self.next_payload += 1;
                    let b = self.book(w);
                    b.sent.push(n);
                    b.requests.insert(id, n);
                }
                Err(e) => self.fail(format!("request refused: {e}")),
            }
        } else {
            match self.session(w).send_reliable(now, "sim/msg", data) {
                Ok(_) => {
                    self.next_payload += 1;
                    self.book(w).sent.push(n);
                }
                Err(e) => self.fail(format!("send refused: {e}")),
            }
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        let mut ts: Vec<u64> = [
            self.c.poll_timeout(),
            self.s.poll_timeout(),
            self.c_notify,
            self.s_notify,
            self.connect_at,
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(l) = &self.link {
            ts.extend(l.c2s.front().map(|m| m.0));
            ts.extend(l.s2c.front().map(|m| m.0));
        }
        ts.extend(self.cb.to_answer.iter().map(|a| a.0));
        ts.extend(self.sb.to_answer.iter().map(|a| a.0));
        ts.into_iter().min()
    }

    fn quiet(&self) -> bool {
        self.c.is_established()
            && self.s.is_established()
            && self.c.unacked_messages() == 0
            && self.s.unacked_messages() == 0
            && self.c.pending_requests() == 0
            && self.s.pending_requests() == 0
            && self.cb.to_answer.is_empty()
            && self.sb.to_answer.is_empty()
            && self
                .link
                .as_ref()
                .is_some_and(|l| l.c2s.is_empty() && l.s2c.is_empty())
    }
}

fn config(rng: &mut SeededRng, format: Format) -> Config {
    Config {
        format,
        resume_window_ms: 10_000_000,
        resume_buffer_age_ms: 10_000_000,
        ping_interval_ms: Some(500),
        idle_timeout_ms: Some(1500 + rng.next_u64() % 1000),
        handshake_timeout_ms: 1000,
        ack_delay_ms: rng.next_u64() % 40,
        ack_every: 1 + rng.next_u64() % 8,
        batch_window_ms: if rng.next_u32() % 2 == 0 {
            0
        } else {
            1 + rng.next_u64() % 10
        },
        max_batch_envelopes: 2 + (rng.next_u64() % 10) as usize,
        backoff_base_ms: 20,
        backoff_max_ms: 500,
        ..Config::default()
    }
}

fn new_sim(seed: u64) -> Sim {
    let mut rng = SeededRng::new(seed);
    let format = if rng.next_u32() % 2 == 0 {
        Format::Json
    } else {
        Format::MsgPack
    };
    let cc = config(&mut rng, format);
    let mut sc = config(&mut rng, format);
    // Peers must agree on the batch size limit.
    sc.max_batch_envelopes = cc.max_batch_envelopes;
    let mut sid_rng = SeededRng::new(seed ^ 0xabcdef);
    let sid = new_session_id(&mut sid_rng);
    let dup_pct = rng.next_u32() % 6;
    let max_delay = rng.next_u64() % 40;
    Sim {
        c: Session::client(cc, Box::new(SeededRng::new(seed.wrapping_mul(3) + 1))),
        s: Session::server(sc, &sid, Box::new(SeededRng::new(seed.wrapping_mul(5) + 2))).unwrap(),
        rng,
        seed,
        now: 0,
        link: None,
        next_link: 0,
        client_conn: None,
        server_conn: None,
        c_notify: None,
        s_notify: None,
        connect_at: Some(0),
        chaos: true,
        dup_pct,
        max_delay,
        cb: Book::default(),
        sb: Book::default(),
        next_payload: 1,
        allow_gaps: false,
        errors: vec![],
        s_ever: false,
        orphans: 0,
    }
}

fn run_chaos(sim: &mut Sim, steps: usize, only_server_push: bool) {
    for _ in 0..steps {
        let roll = sim.below(100);
        match roll {
            0..=29 => sim.now += sim.below(25),
            30..=32 => sim.now += sim.below(3000),
            33..=49 if !only_server_push => sim.send(Who::C, false),
            50..=64 => sim.send(Who::S, false),
            65..=72 if !only_server_push => sim.send(Who::C, true),
            73..=79 if !only_server_push => sim.send(Who::S, true),
            80..=83 => {
                let by = if sim.pct(50) { Who::C } else { Who::S };
                if by == Who::C {
                    sim.client_conn = None;
                    sim.c.handle_disconnected(sim.now);
                } else {
                    sim.server_conn = None;
                    sim.s.handle_disconnected(sim.now);
                }
                sim.cut(by);
            }
            _ => {}
        }
        sim.settle();
    }
}

fn heal(sim: &mut Sim) {
    sim.chaos = false;
    let limit = sim.now + 600_000;
    while !sim.quiet() {
        let next = sim.next_deadline().unwrap_or(sim.now + 10);
        sim.now = sim.now.max(next);
        if sim.now > limit {
            sim.fail(format!(
                "did not heal: c={:?} s={:?} link={}",
                sim.c,
                sim.s,
                sim.link.is_some()
            ));
        }
        sim.settle();
    }
}

fn check_exactly_once(sim: &Sim) {
    if sim.sb.got != sim.cb.sent {
        sim.fail(format!(
            "client->server stream differs:\n sent {:?}\n got  {:?}",
            sim.cb.sent, sim.sb.got
        ));
    }
    if sim.cb.got != sim.sb.sent {
        sim.fail(format!(
            "server->client stream differs:\n sent {:?}\n got  {:?}",
            sim.sb.sent, sim.cb.got
        ));
    }
    for (w, b) in [(Who::C, &sim.cb), (Who::S, &sim.sb)] {
        for req in b.requests.keys() {
            if !b.outcomes.contains_key(req) {
                sim.fail(format!("{w:?} request {req} never ended"));
            }
        }
    }
}

#[test]
fn reliable_streams_survive_chaos() {
    let seeds = 2000u64;
    let mut totals = (0usize, 0usize, 0usize, 0usize);
    for seed in 0..seeds {
        let mut sim = new_sim(seed);
        sim.settle();
        run_chaos(&mut sim, 120, false);
        heal(&mut sim);
        check_exactly_once(&sim);
        totals.0 += sim.cb.sent.len() + sim.sb.sent.len();
        totals.1 += sim.cb.requests.len() + sim.sb.requests.len();
        totals.2 += sim.next_link as usize;
        totals.3 += sim.orphans;
    }
    eprintln!(
        "session_sim: {seeds} schedules, {} reliable events, {} requests, {} connections, {} orphaned sessions",
        totals.0, totals.1, totals.2, totals.3
    );
    // The workload must actually exercise reconnects and requests.
    assert!(
        totals.2 > seeds as usize * 2,
        "too few reconnects: {}",
        totals.2
    );
    assert!(totals.1 > seeds as usize * 5);
}

/// With a tiny resume buffer some server pushes are evicted during outages:
/// each id must be delivered once in order or reported in a gap, never both.
#[test]
fn evicted_ids_are_delivered_or_reported() {
    let seeds = 500u64;
    let mut gaps = 0;
    for seed in 0..seeds {
        let mut sim = new_sim(seed ^ 0x5eed);
        sim.allow_gaps = true;
        let mut sc = sim.s.config().clone();
        sc.resume_buffer_bytes = 120 + (seed as usize % 5) * 60;
        sim.s = Session::server(sc, "S", Box::new(SeededRng::new(seed))).unwrap();
        sim.settle();
        // Count delivered ids through the events.
        run_chaos_ids(&mut sim, 150);
        let last = sim.sb.sent.len() as u64;
        let mut expect: Vec<u64> = Vec::new();
        let mut covered = vec![0u8; last as usize + 1];
        for &id in &sim.cb.got_ids {
            expect.push(id);
            covered[id as usize] += 1;
        }
        if !expect.windows(2).all(|w| w[0] < w[1]) {
            sim.fail(format!("ids out of order {expect:?}"));
        }
        for &(a, b) in &sim.cb.gaps {
            gaps += 1;
            for id in a..=b {
                covered[id as usize] += 1;
            }
        }
        if let Some(i) = (1..=last as usize).find(|&i| covered[i] != 1) {
            sim.fail(format!(
                "id {i} covered {} times; got {:?} gaps {:?}",
                covered[i], sim.cb.got_ids, sim.cb.gaps
            ));
        }
    }
    eprintln!("session_sim: {seeds} eviction schedules, {gaps} gaps reported");
    assert!(gaps > 0, "the eviction run never evicted anything");
}

fn run_chaos_ids(sim: &mut Sim, steps: usize) {
    for _ in 0..steps {
        let roll = sim.below(100);
        match roll {
            0..=39 => sim.now += sim.below(40),
            40..=44 => sim.now += sim.below(3000),
            45..=79 => sim.send(Who::S, false),
            80..=85 => {
                sim.server_conn = None;
                sim.s.handle_disconnected(sim.now);
                sim.cut(Who::S);
            }
            _ => {}
        }
        sim.settle();
    }
    sim.chaos = false;
    let limit = sim.now + 600_000;
    loop {
        let done = sim.c.is_established()
            && sim.s.is_established()
            && sim.s.unacked_messages() == 0
            && sim
                .link
                .as_ref()
                .is_some_and(|l| l.s2c.is_empty() && l.c2s.is_empty());
        if done {
            break;
        }
        let next = sim.next_deadline().unwrap_or(sim.now + 10);
        sim.now = sim.now.max(next);
        if sim.now > limit {
            sim.fail("eviction run did not heal".into());
        }
        sim.settle();
    }
}
