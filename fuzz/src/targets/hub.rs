//! The hub with many connections: up to six browser-like tabs (a
//! client-role WebSocket `Connection` plus a client `Session` each, for
//! three users) open, send, pause reading, reconnect, join and leave rooms
//! and write garbage, while the host sends to clients, users, rooms and
//! everyone with every delivery mode, rejects some upgrades and lets time
//! jump.
//!
//! Checked:
//! * every byte the hub hands out for a connection is valid: an HTTP head
//!   (101 or refusal) and then RFC 6455 server frames, read by the
//!   independent checkers in `http` and `wire`; nothing for a connection
//!   after the hub closed it, and a refusal from `new_connection` is a
//!   well-formed 503;
//! * a tab receives each hub message at most once, and only messages the
//!   hub was asked to send; each `Message` event the hub reports was sent
//!   by a tab of that user, at most once for reliable sends;
//! * the heap the hub holds stays within what its limits allow, and once
//!   every connection is gone and every session has expired it falls back
//!   to a small constant (no leak per connection, client, user or room).

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use evsock::hub::{ClientId, Config, ConnId, Delivery, Hub, HubEvent, HubOutput, SlowPolicy};
use evsock::session::{self, MessageKind, Output as SOut, Session, SessionEvent};
use evsock::ws::{self, ClientRequest, Connection, Event as WsEvent, Message};
use evsock::SeededRng;

use crate::http::{self, read_head};
use crate::mem::Meter;
use crate::wire::FrameChecker;
use crate::{ensure, Stop};

const USERS: [&str; 3] = ["ann", "bob", "cy"];
const ROOMS: [&str; 3] = ["lobby", "r/1", "r:2"];

#[derive(Arbitrary, Debug)]
struct Limits {
    max_connections: u8,
    admission_burst: u8,
    max_per_user: u8,
    max_sessions: u8,
    message_burst: u8,
    send_window: u16,
    max_queued: u16,
    drop_oldest: bool,
    grace: u16,
    max_rooms: u8,
    resume_window: u16,
    resume_bytes: u16,
    msgpack_tabs: u8,
}

impl Limits {
    fn config(&self) -> Config {
        let base = Config::default();
        let mut session = base.session.clone();
        session.resume_window_ms = self.resume_window as u64 % 5000;
        session.resume_buffer_bytes = self.resume_bytes as usize % 8192;
        session.ping_interval_ms = None;
        session.idle_timeout_ms = None;
        session.ack_delay_ms = 10;
        session.max_message_bytes = 4096;
        let mut ws = base.ws.clone();
        ws.max_frame_size = 4096;
        ws.max_message_size = 4096;
        Config {
            ws,
            session,
            max_connections: 1 + self.max_connections as usize % 8,
            admission_rate: 1000,
            admission_burst: 1 + self.admission_burst as u32 % 16,
            max_connections_per_user: 1 + self.max_per_user as usize % 4,
            max_sessions: 1 + self.max_sessions as usize % 8,
            message_rate: 1000,
            message_burst: 1 + self.message_burst as u32 % 64,
            send_window_bytes: 64 + self.send_window as usize % 8192,
            max_queued_bytes: 256 + self.max_queued as usize % 16384,
            slow_policy: if self.drop_oldest {
                SlowPolicy::DropOldest
            } else {
                SlowPolicy::Disconnect
            },
            offline_grace_ms: self.grace as u64 % 2000,
            max_rooms_per_client: 1 + self.max_rooms as usize % 4,
            ..base
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
    Open { tab: u8, reject: bool },
    Pump,
    Pause { tab: u8, paused: bool },
    TabSend { tab: u8, reliable: bool },
    ToClient { tab: u8, delivery: u8 },
    ToUser { user: u8, delivery: u8 },
    ToRoom { room: u8, delivery: u8 },
    ToAll { delivery: u8 },
    Join { tab: u8, room: u8 },
    Leave { tab: u8, room: u8 },
    Garbage { tab: u8, bytes: Vec<u8> },
    Eof { tab: u8 },
    CloseClient { tab: u8 },
    Advance(u16),
}

struct Tab {
    user: usize,
    conn: Option<ConnId>,
    ws: Option<Connection>,
    s: Session,
    client: Option<ClientId>,
    paused: bool,
    /// Hub bytes not yet delivered to the tab.
    inbox: Vec<u8>,
    /// Tags received from the hub.
    got: BTreeSet<u64>,
    /// Tags this tab sent, reliable or not.
    sent: BTreeMap<u64, bool>,
    want_reconnect: bool,
}

/// What the harness knows about one hub connection.
struct ConnLog {
    tab: usize,
    head: Vec<u8>,
    frames: Option<FrameChecker>,
    body_left: Option<usize>,
    closed: bool,
}

struct World {
    hub: Hub,
    meter: Meter,
    now: u64,
    seed: u64,
    tabs: Vec<Tab>,
    conns: BTreeMap<u64, ConnLog>,
    clients: BTreeMap<u64, usize>,
    /// Tags the hub was asked to send.
    hub_sent: BTreeSet<u64>,
    /// Reliable tab tags the hub reported, per client.
    reported: BTreeSet<(u64, u64)>,
    next_tag: u64,
    garbage: bool,
    max_conns_ever: usize,
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
    let mut meter = Meter::default();
    let Ok(hub) = meter.run(|| Hub::new(cfg.clone(), Box::new(SeededRng::new(input.seed)))) else {
        return Ok(());
    };
    let tabs = (0..6)
        .map(|i| Tab {
            user: i % USERS.len(),
            conn: None,
            ws: None,
            s: Session::client(
                session::Config {
                    format: if input.limits.msgpack_tabs >> i & 1 == 1 {
                        session::Format::MsgPack
                    } else {
                        session::Format::Json
                    },
                    ping_interval_ms: None,
                    idle_timeout_ms: None,
                    ack_delay_ms: 10,
                    max_message_bytes: 4096,
                    ..session::Config::default()
                },
                Box::new(SeededRng::new(input.seed ^ i as u64)),
            ),
            client: None,
            paused: false,
            inbox: Vec::new(),
            got: BTreeSet::new(),
            sent: BTreeMap::new(),
            want_reconnect: false,
        })
        .collect();
    let mut w = World {
        hub,
        meter,
        now: 0,
        seed: input.seed,
        tabs,
        conns: BTreeMap::new(),
        clients: BTreeMap::new(),
        hub_sent: BTreeSet::new(),
        reported: BTreeSet::new(),
        next_tag: 0,
        garbage: false,
        max_conns_ever: 0,
    };
    for op in input.ops.iter().take(128) {
        w.step(op)?;
        w.settle()?;
        w.check_memory()?;
    }
    w.wind_down()
}

impl World {
    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    fn step(&mut self, op: &Op) -> Result<(), Stop> {
        let n = self.tabs.len();
        let now = self.now;
        match op {
            Op::Open { tab, reject } => {
                let t = *tab as usize % n;
                if self.tabs[t].conn.is_none() {
                    self.open(t, *reject)?;
                }
            }
            Op::Pump => {}
            Op::Pause { tab, paused } => self.tabs[*tab as usize % n].paused = *paused,
            Op::TabSend { tab, reliable } => {
                let t = *tab as usize % n;
                let tag = self.tag();
                let tb = &mut self.tabs[t];
                let data = tb.s.encode(&tag).unwrap();
                let ok = if *reliable {
                    tb.s.send_reliable(now, "tab/msg", data).is_ok()
                } else {
                    tb.s.send(now, "tab/msg", data).is_ok()
                };
                if ok {
                    tb.sent.insert(tag, *reliable);
                }
            }
            Op::ToClient { tab, delivery } => {
                let t = *tab as usize % n;
                if let Some(c) = self.tabs[t].client {
                    let (tag, data) = self.hub_data();
                    let d = delivery_of(*delivery);
                    let hub = &mut self.hub;
                    let _ = self
                        .meter
                        .run(|| hub.send_to_client(c, now, "hub/msg", data, d));
                    self.hub_sent.insert(tag);
                }
            }
            Op::ToUser { user, delivery } => {
                let (tag, data) = self.hub_data();
                let u = USERS[*user as usize % USERS.len()];
                let d = delivery_of(*delivery);
                let hub = &mut self.hub;
                let _ = self
                    .meter
                    .run(|| hub.send_to_user(u, now, "hub/msg", data, d));
                self.hub_sent.insert(tag);
            }
            Op::ToRoom { room, delivery } => {
                let (tag, data) = self.hub_data();
                let r = ROOMS[*room as usize % ROOMS.len()];
                let d = delivery_of(*delivery);
                let hub = &mut self.hub;
                let _ = self
                    .meter
                    .run(|| hub.broadcast_room(r, now, "hub/msg", data, d));
                self.hub_sent.insert(tag);
            }
            Op::ToAll { delivery } => {
                let (tag, data) = self.hub_data();
                let d = delivery_of(*delivery);
                let hub = &mut self.hub;
                let _ = self
                    .meter
                    .run(|| hub.broadcast_all(now, "hub/msg", data, d));
                self.hub_sent.insert(tag);
            }
            Op::Join { tab, room } | Op::Leave { tab, room } => {
                let t = *tab as usize % n;
                let r = ROOMS[*room as usize % ROOMS.len()];
                if let Some(c) = self.tabs[t].client {
                    let hub = &mut self.hub;
                    let join = matches!(op, Op::Join { .. });
                    let _ = self.meter.run(|| {
                        if join {
                            hub.join_room(c, now, r)
                        } else {
                            hub.leave_room(c, now, r)
                        }
                    });
                }
            }
            Op::Garbage { tab, bytes } => {
                let t = *tab as usize % n;
                if let Some(c) = self.tabs[t].conn {
                    self.garbage = true;
                    let hub = &mut self.hub;
                    self.meter.run(|| hub.handle_input(c, now, bytes));
                }
            }
            Op::Eof { tab } => {
                let t = *tab as usize % n;
                if let Some(c) = self.tabs[t].conn.take() {
                    let hub = &mut self.hub;
                    self.meter.run(|| hub.handle_eof(c, now));
                    self.drop_tab_conn(t);
                }
            }
            Op::CloseClient { tab } => {
                let t = *tab as usize % n;
                if let Some(c) = self.tabs[t].client {
                    let hub = &mut self.hub;
                    let _ = self.meter.run(|| hub.close_client(c, now));
                }
            }
            Op::Advance(ms) => self.advance(self.now + *ms as u64),
        }
        Ok(())
    }

    fn hub_data(&mut self) -> (u64, Bytes) {
        let tag = self.tag();
        (tag, Bytes::from(tag.to_string()))
    }

    fn advance(&mut self, to: u64) {
        self.now = to.max(self.now);
        let now = self.now;
        let hub = &mut self.hub;
        self.meter.run(|| hub.handle_timeout(now));
        for t in &mut self.tabs {
            if let Some(ws) = t.ws.as_mut() {
                ws.handle_timeout(now);
            }
            t.s.handle_timeout(now);
        }
    }

    fn open(&mut self, t: usize, reject: bool) -> Result<(), Stop> {
        let now = self.now;
        let hub = &mut self.hub;
        let r = self.meter.run(|| hub.new_connection(now));
        let conn = match r {
            Ok(c) => c,
            Err(refused) => {
                let head = read_head(&refused.response);
                let ok = matches!(&head, Some(Ok(h)) if http::check_refusal(h).is_ok_and(|(s, n)| s == refused.status && h.len + n == refused.response.len()));
                ensure!(
                    ok,
                    "hub-refusal",
                    "refusal {:?} is not a well-formed HTTP answer",
                    String::from_utf8_lossy(&refused.response)
                );
                return Ok(());
            }
        };
        let prev = self.conns.insert(
            conn.as_u64(),
            ConnLog {
                tab: t,
                head: Vec::new(),
                frames: None,
                body_left: None,
                closed: false,
            },
        );
        ensure!(
            prev.is_none_or(|p| p.closed),
            "hub-conn-reused",
            "connection id {} handed out while still open",
            conn.as_u64()
        );
        self.max_conns_ever += 1;
        let seed = self.seed ^ (self.max_conns_ever as u64) << 8;
        let mut wcfg = ws::Config::without_timers();
        wcfg.max_message_size = 1 << 20;
        let tb = &mut self.tabs[t];
        tb.conn = Some(conn);
        tb.inbox.clear();
        let path = if reject { "/reject" } else { "/" };
        tb.ws = Some(Connection::client(
            wcfg,
            ClientRequest::new("hub", path),
            Box::new(SeededRng::new(seed)),
            now,
        ));
        tb.want_reconnect = false;
        Ok(())
    }

    fn drop_tab_conn(&mut self, t: usize) {
        let now = self.now;
        let tb = &mut self.tabs[t];
        tb.conn = None;
        tb.inbox.clear();
        if tb.ws.take().is_some() {
            tb.s.handle_disconnected(now);
        }
        tb.client = None;
    }

    /// Moves everything until nothing moves.
    fn settle(&mut self) -> Result<(), Stop> {
        for _ in 0..64 {
            let mut moved = self.drain_hub()?;
            for t in 0..self.tabs.len() {
                moved |= self.run_tab(t)?;
            }
            if !moved {
                return Ok(());
            }
        }
        Ok(())
    }

    fn drain_hub(&mut self) -> Result<bool, Stop> {
        let mut moved = false;
        loop {
            let hub = &mut self.hub;
            let Some(o) = self.meter.run(|| hub.poll_output()) else {
                return Ok(moved);
            };
            moved = true;
            match &o {
                HubOutput::Transmit { conn, bytes } => self.transmit(*conn, bytes)?,
                HubOutput::Close { conn } => {
                    let log = self.conns.get_mut(&conn.as_u64());
                    ensure!(
                        log.as_ref().is_some_and(|l| !l.closed),
                        "hub-close",
                        "Close for connection {} that is unknown or closed",
                        conn.as_u64()
                    );
                    let log = log.unwrap();
                    log.closed = true;
                    let t = log.tab;
                    if self.tabs[t].conn == Some(*conn) {
                        // The host closes the socket after its writes: the
                        // tab reads what is left, then sees EOF.
                        self.run_tab(t)?;
                        let now = self.now;
                        if let Some(ws) = self.tabs[t].ws.as_mut() {
                            ws.handle_eof(now);
                        }
                        self.run_tab(t)?;
                        self.drop_tab_conn(t);
                    }
                }
                HubOutput::Event(e) => self.event(e)?,
                _ => {}
            }
            self.meter.run(|| drop(o));
        }
    }

    fn transmit(&mut self, conn: ConnId, bytes: &Bytes) -> Result<(), Stop> {
        let Some(log) = self.conns.get_mut(&conn.as_u64()) else {
            return Err(crate::findings::violation(
                "hub-transmit",
                format!("bytes for unknown connection {}", conn.as_u64()),
            ));
        };
        ensure!(
            !log.closed,
            "hub-transmit",
            "{} bytes for connection {} after its Close",
            bytes.len(),
            conn.as_u64()
        );
        let mut rest: &[u8] = bytes;
        if log.frames.is_none() && log.body_left.is_none() {
            log.head.extend_from_slice(rest);
            rest = &[];
            match read_head(&log.head) {
                None => {}
                Some(Err(e)) => {
                    return Err(crate::findings::violation("hub-head", e));
                }
                Some(Ok(h)) => {
                    let after = log.head.split_off(h.len);
                    let st =
                        http::status(&h).map_err(|e| crate::findings::violation("hub-head", e))?;
                    if st == 101 {
                        // Tabs offer permessage-deflate (on by default):
                        // compressed frames are legal once it is agreed.
                        let deflate = h
                            .all("Sec-WebSocket-Extensions")
                            .iter()
                            .any(|v| v.contains("permessage-deflate"));
                        log.frames = Some(if deflate {
                            FrameChecker::with_deflate(false)
                        } else {
                            FrameChecker::new(false)
                        });
                    } else {
                        let (_, n) = http::check_refusal(&h)
                            .map_err(|e| crate::findings::violation("hub-head", e))?;
                        log.body_left = Some(n);
                    }
                    return self.transmit_rest(conn, after, bytes);
                }
            }
        }
        let rest = rest.to_vec();
        self.transmit_rest(conn, rest, bytes)
    }

    fn transmit_rest(&mut self, conn: ConnId, rest: Vec<u8>, all: &Bytes) -> Result<(), Stop> {
        let log = self.conns.get_mut(&conn.as_u64()).unwrap();
        if let Some(n) = log.body_left.as_mut() {
            ensure!(
                rest.len() <= *n,
                "hub-transmit",
                "{} bytes after a refusal body",
                rest.len() - *n
            );
            *n -= rest.len();
        } else if let Some(f) = log.frames.as_mut() {
            f.feed(&rest)
                .map_err(|e| crate::findings::violation("hub-frames", e))?;
        }
        let t = log.tab;
        if self.tabs[t].conn == Some(conn) {
            self.tabs[t].inbox.extend_from_slice(all);
        }
        Ok(())
    }

    fn event(&mut self, e: &HubEvent) -> Result<(), Stop> {
        let now = self.now;
        match e {
            HubEvent::Upgrade { conn, request } => {
                let log = self.conns.get(&conn.as_u64());
                ensure!(
                    log.is_some_and(|l| !l.closed),
                    "hub-event",
                    "Upgrade for a connection that is not open"
                );
                let t = log.unwrap().tab;
                let user = USERS[self.tabs[t].user];
                let hub = &mut self.hub;
                let c = *conn;
                if request.path == "/reject" {
                    let r = self
                        .meter
                        .run(|| hub.reject(c, now, ws::Reject::new(403, "no")));
                    ensure!(r.is_ok(), "hub-api", "reject failed: {r:?}");
                } else {
                    let _ = self.meter.run(|| hub.accept(c, now, user));
                }
            }
            HubEvent::ClientConnected {
                client, conn, user, ..
            } => {
                let t = self.conns.get(&conn.as_u64()).map(|l| l.tab);
                ensure!(
                    t.is_some_and(|t| USERS[self.tabs[t].user] == &**user),
                    "hub-event",
                    "client of {user} on connection {} of another tab",
                    conn.as_u64()
                );
                let t = t.unwrap();
                if self.tabs[t].conn == Some(*conn) {
                    self.tabs[t].client = Some(*client);
                }
                self.clients.insert(client.as_u64(), t);
            }
            HubEvent::Message {
                client,
                user,
                event,
                data,
                format,
            } => {
                if event.as_str() != "tab/msg" {
                    ensure!(self.garbage, "hub-phantom", "{e:?} nobody sent");
                    return Ok(());
                }
                let Some(&t) = self.clients.get(&client.as_u64()) else {
                    return Err(crate::findings::violation(
                        "hub-event",
                        format!("message from unknown client {}", client.as_u64()),
                    ));
                };
                ensure!(
                    USERS[self.tabs[t].user] == &**user,
                    "hub-event",
                    "message of {user} from a tab of {}",
                    USERS[self.tabs[t].user]
                );
                let tag: Option<u64> = format.decode(data).ok();
                let reliable = tag.and_then(|g| self.tabs[t].sent.get(&g).copied());
                ensure!(
                    self.garbage || reliable.is_some(),
                    "hub-phantom",
                    "tag {tag:?} from tab {t} it never sent"
                );
                if reliable == Some(true) {
                    let fresh = self.reported.insert((client.as_u64(), tag.unwrap()));
                    ensure!(
                        fresh || self.garbage,
                        "hub-duplicate",
                        "reliable tag {tag:?} of client {} reported twice",
                        client.as_u64()
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// One tab's network and session work. True if anything moved.
    fn run_tab(&mut self, t: usize) -> Result<bool, Stop> {
        let now = self.now;
        let mut moved = false;
        let conn = self.tabs[t].conn;
        // Read what the hub sent (unless the tab is slow).
        if !self.tabs[t].paused && !self.tabs[t].inbox.is_empty() {
            let bytes = std::mem::take(&mut self.tabs[t].inbox);
            if let Some(ws) = self.tabs[t].ws.as_mut() {
                ws.handle_input(now, &bytes);
            }
            if let Some(c) = conn {
                let hub = &mut self.hub;
                self.meter.run(|| hub.handle_written(c, bytes.len()));
            }
            moved = true;
        }
        let tb = &mut self.tabs[t];
        let mut to_hub = Vec::new();
        let mut opened = false;
        if let Some(ws) = tb.ws.as_mut() {
            loop {
                match ws.poll_output() {
                    ws::Output::Transmit(b) => to_hub.extend_from_slice(&b),
                    ws::Output::Event(WsEvent::Open { .. }) => opened = true,
                    ws::Output::Event(WsEvent::Message(m)) => {
                        let (kind, data) = match m {
                            Message::Text(s) => (MessageKind::Text, s.into_bytes()),
                            Message::Binary(b) => (MessageKind::Binary, b),
                        };
                        tb.s.handle_message(now, kind, &data[..]);
                    }
                    ws::Output::Event(WsEvent::Closed(_)) => {}
                    ws::Output::Event(_) => {}
                    ws::Output::Wait(_) => break,
                }
            }
        }
        if opened {
            tb.s.handle_connected(now);
        }
        while let Some(o) = tb.s.poll_output() {
            match o {
                SOut::Send { kind, payload } => {
                    if let Some(ws) = tb.ws.as_mut().filter(|w| w.state() == ws::State::Open) {
                        let _ = match kind {
                            MessageKind::Text => {
                                ws.send_text(std::str::from_utf8(&payload).unwrap_or(""))
                            }
                            MessageKind::Binary => ws.send_binary(payload),
                        };
                        while let ws::Output::Transmit(b) = ws.poll_output() {
                            to_hub.extend_from_slice(&b);
                        }
                    }
                }
                SOut::Event(SessionEvent::Message { event, data, .. }) => {
                    if event.as_str() == "hub/msg" {
                        let tag: Option<u64> = tb.s.format().decode(&data).ok();
                        let fresh = tag.is_some_and(|g| tb.got.insert(g));
                        let known = tag.is_some_and(|g| self.hub_sent.contains(&g));
                        ensure!(
                            known && fresh,
                            "hub-delivery",
                            "tab {t} got hub tag {tag:?} (sent by the hub: {known}, first time: {fresh})"
                        );
                    }
                }
                SOut::Event(SessionEvent::Reconnect) => tb.want_reconnect = true,
                SOut::Event(_) => {}
            }
            moved = true;
        }
        if !to_hub.is_empty() {
            moved = true;
            if let Some(c) = conn {
                let hub = &mut self.hub;
                self.meter.run(|| hub.handle_input(c, now, &to_hub));
            }
        }
        Ok(moved)
    }

    fn check_memory(&self) -> Result<(), Stop> {
        let c = self.hub.config();
        let open = self.conns.values().filter(|l| !l.closed).count();
        let per_conn = 4 * c.send_window_bytes
            + 2 * c.max_queued_bytes
            + 4 * c.ws.max_message_size
            + 16 * 1024;
        let per_session =
            8 * c.session.resume_buffer_bytes + 4 * c.session.max_message_bytes + 8192;
        let bound = 256 * 1024 + open * per_conn + c.max_sessions * per_session;
        ensure!(
            self.meter.held() <= bound as isize,
            "hub-memory",
            "hub holds {} bytes with {open} connections open (bound {bound})",
            self.meter.held()
        );
        Ok(())
    }

    /// Everyone leaves and time runs out: the hub must give back what the
    /// connections, clients, users and rooms took.
    fn wind_down(&mut self) -> Result<(), Stop> {
        let now = self.now;
        for t in 0..self.tabs.len() {
            if let Some(c) = self.tabs[t].conn.take() {
                let hub = &mut self.hub;
                self.meter.run(|| hub.handle_eof(c, now));
                self.drop_tab_conn(t);
            }
        }
        self.settle()?;
        for _ in 0..16 {
            let Some(d) = self.hub.poll_timeout() else {
                break;
            };
            self.advance(d.max(self.now));
            self.settle()?;
        }
        let c = self.hub.config();
        let idle = 64 * 1024 + 64 * c.max_connections + 64 * c.max_sessions;
        let st = self.hub.stats();
        ensure!(
            self.meter.held() <= idle as isize,
            "hub-leak",
            "hub holds {} bytes after everyone left and expired (bound {idle}; {st:?})",
            self.meter.held()
        );
        Ok(())
    }
}

fn delivery_of(d: u8) -> Delivery {
    match d % 3 {
        0 => Delivery::Reliable,
        1 => Delivery::Volatile,
        _ => Delivery::Latest(d as u64 % 2),
    }
}
