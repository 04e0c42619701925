//! A simulated world for hub tests: one or more hubs, browser-like clients
//! (a client-role WebSocket `Connection` plus a client `Session` each), a
//! fake clock and a fake pub/sub bus, all in memory.
#![allow(dead_code)]

use bytes::Bytes;
use evsock::hub::{ClientId, Config, ConnId, Hub, HubEvent, HubOutput};
use evsock::session::{self, MessageKind, Output as SOut, Session, SessionEvent};
use evsock::ws::{self, ClientRequest, CloseCode, Connection, Event as WsEvent, Message};
use evsock::SeededRng;

/// Settings for hub tests: no timers unless a test turns them on.
pub fn hub_config() -> Config {
    let mut c = Config::default();
    c.session.ping_interval_ms = None;
    c.session.idle_timeout_ms = None;
    c.session.ack_delay_ms = 10;
    c
}

pub fn client_session_config() -> session::Config {
    session::Config {
        ping_interval_ms: None,
        idle_timeout_ms: None,
        ack_delay_ms: 10,
        ..session::Config::default()
    }
}

/// One browser tab.
pub struct Tab {
    pub node: usize,
    pub user: String,
    pub conn: Option<ConnId>,
    pub ws: Connection,
    pub s: Session,
    pub events: Vec<SessionEvent>,
    /// Bytes the hub handed out that the "network" has not delivered yet
    /// (while `paused`).
    pub held: Vec<Bytes>,
    pub paused: bool,
    /// Every server frame's bytes as the hub handed them (for sharing
    /// checks).
    pub raw: Vec<Bytes>,
    /// The HTTP response / close the tab saw.
    pub closed: Option<ws::Closed>,
    pub http: Vec<u8>,
    /// The hub said Close for the connection.
    pub hub_closed: bool,
    pub session_id: Option<String>,
    /// The hub's id for this tab's client (from `ClientConnected`).
    pub client: Option<ClientId>,
}

impl Tab {
    /// Application messages received (event, data as text).
    pub fn messages(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Message { event, data, .. } => Some((
                    event.as_str().to_owned(),
                    String::from_utf8_lossy(data).into_owned(),
                )),
                _ => None,
            })
            .collect()
    }

    pub fn close_code(&self) -> Option<CloseCode> {
        self.closed.as_ref().map(|c| c.code)
    }
}

pub struct World {
    pub hubs: Vec<Hub>,
    pub now: u64,
    pub tabs: Vec<Tab>,
    pub events: Vec<Vec<HubEvent>>,
    /// Accept every upgrade, naming the user from the path `/?user=NAME`.
    pub auto_accept: bool,
    /// Fake bus: (channel, subscribers by node).
    pub subs: Vec<(String, Vec<usize>)>,
    /// Messages published (node, channel, bytes).
    pub published: Vec<(usize, String, Bytes)>,
    pub seed: u64,
    /// Transmits and closes for connections no tab holds any more.
    pub orphans: Vec<(usize, ConnId, Bytes)>,
    pub orphan_closes: Vec<(usize, ConnId)>,
}

impl World {
    pub fn new(cfg: Config) -> World {
        World::cluster(vec![cfg])
    }

    pub fn cluster(cfgs: Vec<Config>) -> World {
        let hubs: Vec<Hub> = cfgs
            .into_iter()
            .enumerate()
            .map(|(i, c)| Hub::new(c, Box::new(SeededRng::new(100 + i as u64))).unwrap())
            .collect();
        let n = hubs.len();
        let mut w = World {
            hubs,
            now: 1_000,
            tabs: Vec::new(),
            events: vec![Vec::new(); n],
            auto_accept: true,
            subs: Vec::new(),
            published: Vec::new(),
            seed: 1,
            orphans: Vec::new(),
            orphan_closes: Vec::new(),
        };
        w.pump();
        w
    }

    pub fn hub(&mut self) -> &mut Hub {
        &mut self.hubs[0]
    }

    /// Opens a tab for `user` on hub `node`; returns its index.
    pub fn open_on(&mut self, node: usize, user: &str, format: session::Format) -> usize {
        self.seed += 1;
        let conn = self.hubs[node].new_connection(self.now).ok();
        let req = ClientRequest::new("example.com", format!("/?user={user}"));
        let ws = Connection::client(
            ws::Config::without_timers(),
            req,
            Box::new(SeededRng::new(self.seed)),
            self.now,
        );
        let s = Session::client(
            session::Config {
                format,
                ..client_session_config()
            },
            Box::new(SeededRng::new(self.seed + 1000)),
        );
        self.tabs.push(Tab {
            node,
            user: user.to_owned(),
            conn,
            ws,
            s,
            events: Vec::new(),
            held: Vec::new(),
            paused: false,
            raw: Vec::new(),
            closed: None,
            http: Vec::new(),
            hub_closed: false,
            session_id: None,
            client: None,
        });
        let t = self.tabs.len() - 1;
        self.pump();
        t
    }

    pub fn open(&mut self, user: &str) -> usize {
        self.open_on(0, user, session::Format::Json)
    }

    /// Reconnects a tab (same client session) on a new connection.
    pub fn reconnect(&mut self, t: usize) {
        self.seed += 1;
        let node = self.tabs[t].node;
        let conn = self.hubs[node].new_connection(self.now).ok();
        let req = ClientRequest::new("example.com", format!("/?user={}", self.tabs[t].user));
        let tab = &mut self.tabs[t];
        if tab.closed.is_none() && tab.conn.is_some() {
            // The old transport is dropped without a goodbye.
            if let Some(c) = tab.conn {
                self.hubs[node].handle_eof(c, self.now);
            }
        }
        tab.s.handle_disconnected(self.now);
        while tab.s.poll_output().is_some() {}
        tab.conn = conn;
        tab.ws = Connection::client(
            ws::Config::without_timers(),
            req,
            Box::new(SeededRng::new(self.seed)),
            self.now,
        );
        tab.closed = None;
        tab.hub_closed = false;
        tab.held.clear();
        tab.paused = false;
        self.pump();
    }

    /// Reconnects a tab's session on a new connection without telling the
    /// hub that the old one ended (as when the old TCP is half-dead).
    pub fn reconnect_keep_old(&mut self, t: usize) {
        self.seed += 1;
        let node = self.tabs[t].node;
        let conn = self.hubs[node].new_connection(self.now).ok();
        let req = ClientRequest::new("example.com", format!("/?user={}", self.tabs[t].user));
        let tab = &mut self.tabs[t];
        tab.s.handle_disconnected(self.now);
        while tab.s.poll_output().is_some() {}
        tab.conn = conn;
        tab.ws = Connection::client(
            ws::Config::without_timers(),
            req,
            Box::new(SeededRng::new(self.seed)),
            self.now,
        );
        tab.closed = None;
        tab.hub_closed = false;
        self.pump();
    }

    /// The close code in the last close frame among these bytes.
    pub fn close_code_in(bytes: &[Bytes]) -> Option<u16> {
        let all: Vec<u8> = bytes.iter().flat_map(|b| b.iter().copied()).collect();
        let at = all.iter().rposition(|&x| x == 0x88)?;
        let c = all.get(at + 2..at + 4)?;
        Some(u16::from_be_bytes([c[0], c[1]]))
    }

    /// Drops a tab's transport (like a network failure).
    pub fn drop_tab(&mut self, t: usize) {
        let tab = &mut self.tabs[t];
        if let Some(c) = tab.conn.take() {
            self.hubs[tab.node].handle_eof(c, self.now);
        }
        tab.s.handle_disconnected(self.now);
        tab.closed.get_or_insert(ws::Closed {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            by_peer: false,
            clean: false,
            error: None,
        });
        self.pump();
    }

    pub fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        loop {
            let next = self
                .hubs
                .iter()
                .filter_map(|h| h.poll_timeout())
                .min()
                .filter(|&d| d <= end);
            let Some(d) = next else { break };
            self.now = self.now.max(d);
            let now = self.now;
            for h in &mut self.hubs {
                if h.poll_timeout().is_some_and(|x| x <= now) {
                    h.handle_timeout(now);
                }
            }
            for t in &mut self.tabs {
                if t.s.poll_timeout().is_some_and(|x| x <= now) {
                    t.s.handle_timeout(now);
                }
            }
            self.pump();
        }
        self.now = end;
        let now = self.now;
        for t in &mut self.tabs {
            if t.s.poll_timeout().is_some_and(|x| x <= now) {
                t.s.handle_timeout(now);
            }
        }
        self.pump();
    }

    /// Moves bytes and events until nothing moves.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            // Client side.
            for t in 0..self.tabs.len() {
                moved |= self.step_tab(t);
            }
            // Hubs.
            for n in 0..self.hubs.len() {
                while let Some(o) = self.hubs[n].poll_output() {
                    moved = true;
                    self.on_output(n, o);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("world did not settle");
    }

    fn tab_of(&self, node: usize, conn: ConnId) -> Option<usize> {
        self.tabs
            .iter()
            .position(|t| t.node == node && t.conn == Some(conn))
    }

    fn on_output(&mut self, n: usize, o: HubOutput) {
        let now = self.now;
        match o {
            HubOutput::Transmit { conn, bytes } => {
                if let Some(t) = self.tab_of(n, conn) {
                    let tab = &mut self.tabs[t];
                    tab.raw.push(bytes.clone());
                    if tab.paused {
                        tab.held.push(bytes);
                    } else {
                        tab.ws.handle_input(now, &bytes);
                        self.hubs[n].handle_written(conn, bytes.len());
                    }
                } else {
                    self.orphans.push((n, conn, bytes));
                }
            }
            HubOutput::Close { conn } => {
                if let Some(t) = self.tab_of(n, conn) {
                    self.tabs[t].hub_closed = true;
                    if !self.tabs[t].paused {
                        // Decode what arrived before the EOF.
                        self.step_tab(t);
                        self.tabs[t].ws.handle_eof(now);
                    }
                } else {
                    self.orphan_closes.push((n, conn));
                }
            }
            HubOutput::Event(e) => {
                if let HubEvent::Upgrade { conn, request } = &e {
                    if self.auto_accept {
                        let user = request
                            .path
                            .split("user=")
                            .nth(1)
                            .unwrap_or("anon")
                            .to_owned();
                        let _ = self.hubs[n].accept(*conn, now, &user);
                    }
                }
                if let HubEvent::ClientConnected { client, conn, .. } = &e {
                    if let Some(t) = self.tab_of(n, *conn) {
                        self.tabs[t].client = Some(*client);
                    }
                }
                self.events[n].push(e);
            }
            HubOutput::Publish { channel, bytes } => {
                self.published.push((n, channel.clone(), bytes.clone()));
                let targets: Vec<usize> = self
                    .subs
                    .iter()
                    .filter(|(c, _)| *c == channel)
                    .flat_map(|(_, s)| s.clone())
                    .collect();
                for m in targets {
                    self.hubs[m].handle_remote(now, &bytes).unwrap();
                }
            }
            HubOutput::Subscribe { channel } => {
                match self.subs.iter_mut().find(|(c, _)| *c == channel) {
                    Some((_, s)) => {
                        assert!(!s.contains(&n), "double subscription to {channel}");
                        s.push(n)
                    }
                    None => self.subs.push((channel, vec![n])),
                }
            }
            HubOutput::Unsubscribe { channel } => {
                if let Some((_, s)) = self.subs.iter_mut().find(|(c, _)| *c == channel) {
                    s.retain(|&x| x != n);
                }
            }
        }
    }

    fn step_tab(&mut self, t: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        let node = self.tabs[t].node;
        let tab = &mut self.tabs[t];
        loop {
            match tab.ws.poll_output() {
                ws::Output::Transmit(b) => {
                    moved = true;
                    if let Some(c) = tab.conn {
                        if !tab.hub_closed {
                            self.hubs[node].handle_input(c, now, &b);
                        }
                    }
                }
                ws::Output::Event(e) => {
                    moved = true;
                    match e {
                        WsEvent::Open { .. } => tab.s.handle_connected(now),
                        WsEvent::Message(m) => {
                            let (kind, p) = match m {
                                Message::Text(t) => (MessageKind::Text, t.into_bytes()),
                                Message::Binary(b) => (MessageKind::Binary, b),
                            };
                            tab.s.handle_message_bytes(now, kind, p);
                        }
                        WsEvent::Closed(c) if tab.closed.is_none() => {
                            tab.s.handle_disconnected(now);
                            tab.closed = Some(c);
                        }
                        _ => {}
                    }
                }
                ws::Output::Wait(_) => break,
            }
        }
        while let Some(o) = tab.s.poll_output() {
            moved = true;
            match o {
                SOut::Send { kind, payload } => {
                    let m = match kind {
                        MessageKind::Text => Message::Text(ws::Text::from_bytes(payload).unwrap()),
                        MessageKind::Binary => Message::Binary(payload),
                    };
                    let _ = tab.ws.send(m);
                }
                SOut::Event(e) => {
                    if let SessionEvent::Established { session_id, .. } = &e {
                        tab.session_id = Some(session_id.clone());
                    }
                    tab.events.push(e);
                }
            }
        }
        moved
    }

    /// Lets a paused tab's held bytes through.
    pub fn resume_reading(&mut self, t: usize) {
        let now = self.now;
        let tab = &mut self.tabs[t];
        tab.paused = false;
        let node = tab.node;
        for b in std::mem::take(&mut tab.held) {
            tab.ws.handle_input(now, &b);
            if let Some(c) = tab.conn {
                self.hubs[node].handle_written(c, b.len());
            }
        }
        if tab.hub_closed {
            self.step_tab(t);
            self.tabs[t].ws.handle_eof(now);
        }
        self.pump();
    }

    /// The client id the hub gave a tab.
    pub fn client_of(&self, t: usize) -> ClientId {
        self.tabs[t].client.expect("tab has a client")
    }

    pub fn take_events(&mut self, n: usize) -> Vec<HubEvent> {
        self.pump();
        std::mem::take(&mut self.events[n])
    }

    pub fn send_reliable(&mut self, t: usize, event: &str, data: &str) -> u64 {
        let now = self.now;
        let id = self.tabs[t]
            .s
            .send_reliable(now, event, Bytes::copy_from_slice(data.as_bytes()))
            .unwrap();
        self.pump();
        id
    }
}
