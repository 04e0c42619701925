//! The [`Hub`] itself: connections, clients, users, rooms, timers, fan-out
//! and the cluster side. See the [module docs](super) for the model.

use super::bucket::Bucket;
use super::cluster::{self, Remote};
use super::outq::{Class, OutQueue};
use super::slab::Slab;
use super::timers::{is_current, tag, untag, Kind, Timers, NEVER};
use super::{
    is_valid_room, is_valid_user_id, ClientId, Config, ConnId, Delivery, HubError, HubEvent,
    HubOutput, HubProtocolError, Refused, SlowPolicy, CLOSE_RATE_LIMITED, CLOSE_REPLACED,
    CLOSE_SLOW_CONSUMER, MAX_NODE_ID_LEN,
};
use crate::rng::Rng;
use crate::session::{
    self, CloseReason, Codec, Format, MessageKind, Meta, Output as SessionOutput, SendError,
    Session, SessionError, SessionEvent, PROTOCOL_PREFIX, PROTOCOL_VERSION,
};
use crate::ws::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::ws::{self, CloseCode, Connection, Event as WsEvent, Message, Text};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Server sessions never draw random numbers (only a client's reconnect
/// backoff does), so they get this zero-sized source: boxing it allocates
/// nothing, which matters with a million sessions.
struct NoRng;

impl Rng for NoRng {
    fn fill(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading the upgrade request.
    Handshake,
    /// The host's auth hook decides ([`HubEvent::Upgrade`]).
    Deciding,
    /// Open; the first message must be the `evs/hello`.
    Hello,
    /// Carries this client's session.
    Bound(u64),
}

/// No user accepted yet (in [`Conn::user`]).
const NO_USER: u64 = u64::MAX;

struct Conn {
    ws: Connection,
    phase: Phase,
    /// The accepted user (users slab key), or [`NO_USER`].
    user: u64,
    outq: OutQueue,
    /// Bytes handed to the host and not yet reported written.
    inflight: usize,
    bucket: Bucket,
    /// The `evs/hello` must arrive by then ([`NEVER`]: not waiting).
    hello_deadline: u64,
    scheduled: u64,
}

impl Conn {
    /// The accepted user (users slab key).
    fn uid(&self) -> Option<u64> {
        (self.user != NO_USER).then_some(self.user)
    }
}

struct Client {
    session: Session,
    uid: u64,
    conn: Option<u64>,
    /// The session is established on `conn`.
    connected: bool,
    rooms: Vec<Arc<str>>,
    scheduled: u64,
}

/// A user's clients: almost always one, kept inline (no allocation).
#[derive(Default)]
enum ClientList {
    #[default]
    Empty,
    One(u64),
    Many(Vec<u64>),
}

impl ClientList {
    fn as_slice(&self) -> &[u64] {
        match self {
            ClientList::Empty => &[],
            ClientList::One(k) => std::slice::from_ref(k),
            ClientList::Many(v) => v,
        }
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    fn push(&mut self, k: u64) {
        *self = match std::mem::take(self) {
            ClientList::Empty => ClientList::One(k),
            ClientList::One(a) => ClientList::Many(vec![a, k]),
            ClientList::Many(mut v) => {
                v.push(k);
                ClientList::Many(v)
            }
        };
    }

    fn remove(&mut self, k: u64) {
        *self = match std::mem::take(self) {
            ClientList::One(a) if a != k => ClientList::One(a),
            ClientList::Many(mut v) => {
                v.retain(|&x| x != k);
                match v[..] {
                    [] => ClientList::Empty,
                    [a] => ClientList::One(a),
                    _ => ClientList::Many(v),
                }
            }
            ClientList::Empty | ClientList::One(_) => ClientList::Empty,
        };
    }
}

struct User {
    name: Arc<str>,
    clients: ClientList,
    /// Accepted live connections.
    conns: u32,
    /// Clients with an established session.
    connected: u32,
    online: bool,
    offline_at: Option<u64>,
    scheduled: u64,
}

#[derive(Default)]
struct Room {
    /// Local member clients.
    members: Vec<u64>,
    /// Local member clients per user.
    users: HashMap<Arc<str>, u32>,
    /// Nodes where the user is present, for users present elsewhere.
    remote: HashMap<Arc<str>, Vec<Arc<str>>>,
}

/// Counters of a hub, for monitoring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live connections (any phase).
    pub connections: usize,
    /// Sessions (connected or waiting for a resume).
    pub clients: usize,
    /// Users known here (with a connection, a session, or within the
    /// offline grace).
    pub users: usize,
    /// Rooms with local members.
    pub rooms: usize,
    /// Entries in the timer heap.
    pub timer_entries: usize,
    /// Bytes waiting in connection queues beyond the send windows.
    pub queued_bytes: usize,
}

/// One message for many recipients: validated once, encoded once per wire
/// format, framed once per wire format.
struct Fanout {
    event: Arc<str>,
    delivery: Delivery,
    json: Bytes,
    msgpack: Option<Bytes>,
    frames: [Option<Bytes>; 2],
}

impl Fanout {
    fn data(&mut self, f: Format) -> Result<Bytes, HubError> {
        match f {
            Format::Json => Ok(self.json.clone()),
            Format::MsgPack => {
                if self.msgpack.is_none() {
                    self.msgpack = Some(json_to_msgpack(&self.json)?);
                }
                Ok(self.msgpack.clone().unwrap_or_default())
            }
        }
    }

    fn frame(&mut self, f: Format) -> Result<Bytes, HubError> {
        let i = match f {
            Format::Json => 0,
            Format::MsgPack => 1,
        };
        if let Some(b) = &self.frames[i] {
            return Ok(b.clone());
        }
        let data = self.data(f)?;
        let b = shared_frame(f, &self.event, &data);
        self.frames[i] = Some(b.clone());
        Ok(b)
    }
}

/// Transcodes one JSON value to MessagePack (empty stays empty).
fn json_to_msgpack(json: &[u8]) -> Result<Bytes, HubError> {
    if json.is_empty() {
        return Ok(Bytes::new());
    }
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|_| HubError::InvalidData)?;
    rmp_serde::to_vec_named(&v)
        .map(Bytes::from)
        .map_err(|_| HubError::InvalidData)
}

/// A whole unmasked WebSocket frame carrying `[event, data]`, in one
/// allocation that every recipient shares.
fn shared_frame(f: Format, event: &str, data: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(MAX_HEADER_LEN + event.len() + data.len() + 16);
    buf.resize(MAX_HEADER_LEN, 0);
    f.codec()
        .write_envelope(&mut buf, event.as_bytes(), data, &Meta::default());
    let len = buf.len() - MAX_HEADER_LEN;
    let h = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: match f {
            Format::Json => OpCode::Text,
            Format::MsgPack => OpCode::Binary,
        },
        mask: None,
        len: len as u64,
    };
    let mut hb = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut hb);
    let start = MAX_HEADER_LEN - n;
    buf[start..MAX_HEADER_LEN].copy_from_slice(&hb[..n]);
    Bytes::from(buf).slice(start..)
}

/// Equality that takes the same time wherever the first difference is.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn close_code_for(reason: CloseReason) -> CloseCode {
    match reason {
        CloseReason::IdleTimeout => CloseCode::GOING_AWAY,
        CloseReason::HandshakeTimeout | CloseReason::ProtocolError => CloseCode::PROTOCOL_ERROR,
        CloseReason::GoAway => CloseCode::TRY_AGAIN_LATER,
        CloseReason::SessionClosed => CloseCode::NORMAL,
    }
}

/// Is this WebSocket failure the client's doing (worth reporting)?
fn reportable(e: &ws::Error) -> bool {
    !matches!(
        e,
        ws::Error::Handshake(ws::HandshakeError::Rejected { .. })
            | ws::Error::UnexpectedEof
            | ws::Error::CloseTimeout
            | ws::Error::InvalidState(_)
    )
}

/// A sans-IO hub of many connections, clients, users and rooms. See the
/// [module docs](super).
pub struct Hub {
    cfg: Config,
    ws_cfg: Arc<ws::Config>,
    /// Shared by every session (one copy, not one per client).
    session_cfg: Arc<session::Config>,
    rng: Box<dyn Rng + Send>,
    node: Option<Arc<str>>,
    now: u64,
    conns: Slab<Conn>,
    clients: Slab<Client>,
    users: Slab<User>,
    user_ids: HashMap<Arc<str>, u64>,
    rooms: HashMap<Arc<str>, Room>,
    #[allow(clippy::type_complexity)]
    room_policy: Option<Box<dyn FnMut(&str, &str) -> bool + Send>>,
    timers: Timers,
    hub_scheduled: u64,
    admission: Bucket,
    out: VecDeque<HubOutput>,
    /// Other nodes, and when each was last heard from.
    nodes: HashMap<Arc<str>, u64>,
    next_heartbeat: u64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.node)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with this configuration. `rng` makes session ids; back it with
    /// the operating system's generator in production.
    ///
    /// Fails with [`HubError::BadConfig`] for an invalid `node_id` (1 to
    /// [`MAX_NODE_ID_LEN`] bytes) or a zero send window.
    pub fn new(config: Config, rng: Box<dyn Rng + Send>) -> Result<Hub, HubError> {
        if let Some(n) = &config.node_id {
            if n.is_empty() || n.len() > MAX_NODE_ID_LEN {
                return Err(HubError::BadConfig("node_id must be 1 to 64 bytes"));
            }
        }
        if config.send_window_bytes == 0 {
            return Err(HubError::BadConfig("send_window_bytes must be above 0"));
        }
        if config.heartbeat_ms == 0 {
            return Err(HubError::BadConfig("heartbeat_ms must be above 0"));
        }
        let mut hub = Hub {
            ws_cfg: Arc::new(config.ws.clone()),
            session_cfg: Arc::new(config.session.clone()),
            node: config.node_id.as_deref().map(Arc::from),
            admission: Bucket::full(config.admission_burst, 0),
            cfg: config,
            rng,
            now: 0,
            conns: Slab::new(),
            clients: Slab::new(),
            users: Slab::new(),
            user_ids: HashMap::new(),
            rooms: HashMap::new(),
            room_policy: None,
            timers: Timers::default(),
            hub_scheduled: NEVER,
            out: VecDeque::new(),
            nodes: HashMap::new(),
            next_heartbeat: 0,
        };
        if hub.node.is_some() {
            let channel = hub.chan_all();
            hub.out.push_back(HubOutput::Subscribe { channel });
            hub.timers
                .arm(&mut hub.hub_scheduled, Some(0), tag(Kind::Hub, 0));
        }
        Ok(hub)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters, for monitoring.
    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.conns.len(),
            clients: self.clients.len(),
            users: self.users.len(),
            rooms: self.rooms.len(),
            timer_entries: self.timers.len(),
            queued_bytes: self
                .conns
                .keys()
                .filter_map(|k| self.conns.get(k))
                .map(|c| c.outq.bytes())
                .sum(),
        }
    }

    /// Bytes of the hub's own tables (slabs, timer heap), not counting what
    /// their entries point to. For the memory example.
    pub fn table_bytes(&self) -> usize {
        self.conns.capacity_bytes()
            + self.clients.capacity_bytes()
            + self.users.capacity_bytes()
            + self.timers.capacity_bytes()
    }

    // ------------------------------------------------------------ outputs

    /// The next thing the host must do, if any. Drain it after every call.
    pub fn poll_output(&mut self) -> Option<HubOutput> {
        let o = self.out.pop_front();
        if o.is_none() && self.out.capacity() > 1024 {
            self.out = VecDeque::new();
        }
        o
    }

    /// When [`Hub::handle_timeout`] must be called next, if ever. O(1). It
    /// may be early (a wake-up that finds nothing due), never late.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next()
    }

    // ------------------------------------------------------ connections

    /// A new transport connection arrived. Refused (write
    /// [`Refused::response`] and close) beyond [`Config::max_connections`]
    /// or the admission rate.
    pub fn new_connection(&mut self, now: u64) -> Result<ConnId, Refused> {
        self.tick(now);
        let full = self.conns.len() >= self.cfg.max_connections;
        if full
            || !self
                .admission
                .take(now, self.cfg.admission_rate, self.cfg.admission_burst)
        {
            return Err(self.refused());
        }
        let conn = Conn {
            ws: Connection::server(self.ws_cfg.clone(), now),
            phase: Phase::Handshake,
            user: NO_USER,
            outq: OutQueue::default(),
            inflight: 0,
            bucket: Bucket::full(self.cfg.message_burst, now),
            hello_deadline: NEVER,
            scheduled: NEVER,
        };
        let Some(k) = self.conns.insert(conn) else {
            return Err(self.refused());
        };
        self.arm_conn(k);
        Ok(ConnId(k))
    }

    fn refused(&self) -> Refused {
        let headers = [(
            "Retry-After".to_owned(),
            self.cfg.retry_after_secs.to_string(),
        )];
        let resp = ws::handshake::error_response(503, &headers, b"server busy, retry later\n");
        Refused {
            status: 503,
            response: Bytes::from(resp),
        }
    }

    /// Bytes arrived on a connection. Unknown (already closed) ids are
    /// ignored.
    pub fn handle_input(&mut self, conn: ConnId, now: u64, bytes: &[u8]) {
        self.tick(now);
        let Some(c) = self.conns.get_mut(conn.0) else {
            return;
        };
        c.ws.handle_input(now, bytes);
        self.process_conn(conn.0);
    }

    /// The connection's transport ended (EOF or error).
    pub fn handle_eof(&mut self, conn: ConnId, now: u64) {
        self.tick(now);
        let Some(c) = self.conns.get_mut(conn.0) else {
            return;
        };
        c.ws.handle_eof(now);
        self.process_conn(conn.0);
    }

    /// The host wrote `n` more bytes of the connection's transmits: the send
    /// window opens again.
    pub fn handle_written(&mut self, conn: ConnId, n: usize) {
        let Some(c) = self.conns.get_mut(conn.0) else {
            return;
        };
        c.inflight = c.inflight.saturating_sub(n);
        self.pump(conn.0);
    }

    /// Accepts the upgrade announced by [`HubEvent::Upgrade`] for `user`
    /// (the auth hook's answer).
    pub fn accept(&mut self, conn: ConnId, now: u64, user: &str) -> Result<(), HubError> {
        self.accept_with(conn, now, user, ws::Accept::default())
    }

    /// [`Hub::accept`] with a chosen subprotocol or extra response headers.
    pub fn accept_with(
        &mut self,
        conn: ConnId,
        now: u64,
        user: &str,
        accept: ws::Accept,
    ) -> Result<(), HubError> {
        self.tick(now);
        let k = conn.0;
        let c = self.conns.get(k).ok_or(HubError::UnknownConnection)?;
        if c.phase != Phase::Deciding {
            return Err(HubError::InvalidState(
                "no upgrade request is waiting for a decision",
            ));
        }
        if !is_valid_user_id(user) {
            return Err(HubError::BadUserId);
        }
        let uid = self.user_entry(user);
        let conns = self.users.get(uid).map_or(0, |u| u.conns as usize);
        if conns >= self.cfg.max_connections_per_user {
            let reject = ws::Reject {
                status: 429,
                headers: vec![(
                    "Retry-After".to_owned(),
                    self.cfg.retry_after_secs.to_string(),
                )],
                body: b"too many connections for this user\n".to_vec(),
            };
            if let Some(c) = self.conns.get_mut(k) {
                let _ = c.ws.reject(reject);
            }
            self.conn_ended(k);
            self.maybe_drop_user(uid);
            return Err(HubError::TooManyConnections);
        }
        let hello_by = now.saturating_add(self.cfg.session.handshake_timeout_ms);
        let c = self.conns.get_mut(k).ok_or(HubError::UnknownConnection)?;
        if let Err(e) = c.ws.accept(accept) {
            self.maybe_drop_user(uid);
            return Err(HubError::Ws(e));
        }
        c.phase = Phase::Hello;
        c.user = uid;
        c.hello_deadline = hello_by.min(NEVER - 1);
        if let Some(u) = self.users.get_mut(uid) {
            u.conns += 1;
        }
        self.process_conn(k);
        Ok(())
    }

    /// Refuses the upgrade announced by [`HubEvent::Upgrade`] with an HTTP
    /// response (e.g. `ws::Reject::new(401, "log in first")`). The
    /// connection is closed after it.
    pub fn reject(&mut self, conn: ConnId, now: u64, reject: ws::Reject) -> Result<(), HubError> {
        self.tick(now);
        let c = self
            .conns
            .get_mut(conn.0)
            .ok_or(HubError::UnknownConnection)?;
        if c.phase != Phase::Deciding {
            return Err(HubError::InvalidState(
                "no upgrade request is waiting for a decision",
            ));
        }
        c.ws.reject(reject).map_err(HubError::Ws)?;
        self.conn_ended(conn.0);
        Ok(())
    }

    /// Closes a connection (kicking it); its client stays resumable. Use
    /// [`Hub::close_client`] to end the session too.
    pub fn close_connection(
        &mut self,
        conn: ConnId,
        now: u64,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), HubError> {
        self.tick(now);
        if !code.is_sendable() || reason.len() > 123 {
            return Err(HubError::InvalidState("close code or reason not sendable"));
        }
        if self.conns.get(conn.0).is_none() {
            return Err(HubError::UnknownConnection);
        }
        self.close_conn(conn.0, code, reason);
        Ok(())
    }

    /// Ends a client's session for good (it is told so and its connection
    /// closes); [`HubEvent::ClientGone`] follows.
    pub fn close_client(&mut self, client: ClientId, now: u64) -> Result<(), HubError> {
        self.tick(now);
        let c = self
            .clients
            .get_mut(client.0)
            .ok_or(HubError::UnknownClient)?;
        c.session.close(self.now);
        self.drain_session(client.0);
        Ok(())
    }

    // ------------------------------------------------------------- timers

    /// Runs every timer due at `now`: connection handshakes and closes,
    /// session pings, acks, idle and resume expiry, offline grace, cluster
    /// heartbeats. Only due entries are touched.
    pub fn handle_timeout(&mut self, now: u64) {
        self.tick(now);
        let now = self.now;
        while let Some((at, tagged)) = self.timers.pop_due(now) {
            let (kind, masked) = untag(tagged);
            let idx = (masked & 0xffff_ffff) as u32;
            match kind {
                Kind::Conn => {
                    let Some(k) = self.conns.key_at(idx).filter(|&k| tag(kind, k) == tagged) else {
                        continue;
                    };
                    let Some(c) = self.conns.get_mut(k) else {
                        continue;
                    };
                    if !is_current(c.scheduled, at) {
                        continue;
                    }
                    c.scheduled = NEVER;
                    c.ws.handle_timeout(now);
                    if c.phase == Phase::Hello && c.hello_deadline <= now {
                        self.emit(HubEvent::ProtocolError {
                            conn: Some(ConnId(k)),
                            client: None,
                            error: HubProtocolError::Session(SessionError::UnexpectedHandshake),
                        });
                        self.close_conn(k, CloseCode::PROTOCOL_ERROR, "no evs/hello in time");
                        continue;
                    }
                    self.process_conn(k);
                }
                Kind::Client => {
                    let Some(k) = self.clients.key_at(idx).filter(|&k| tag(kind, k) == tagged)
                    else {
                        continue;
                    };
                    let Some(c) = self.clients.get_mut(k) else {
                        continue;
                    };
                    if !is_current(c.scheduled, at) {
                        continue;
                    }
                    c.scheduled = NEVER;
                    c.session.handle_timeout(now);
                    self.drain_session(k);
                }
                Kind::User => {
                    let Some(k) = self.users.key_at(idx).filter(|&k| tag(kind, k) == tagged) else {
                        continue;
                    };
                    let Some(u) = self.users.get_mut(k) else {
                        continue;
                    };
                    if !is_current(u.scheduled, at) {
                        continue;
                    }
                    u.scheduled = NEVER;
                    if u.connected == 0 && u.online && u.offline_at.is_some_and(|d| d <= now) {
                        u.offline_at = None;
                        self.set_online(k, false);
                        self.maybe_drop_user(k);
                    } else {
                        self.arm_user(k);
                    }
                }
                Kind::Hub => {
                    if !is_current(self.hub_scheduled, at) {
                        continue;
                    }
                    self.hub_scheduled = NEVER;
                    self.cluster_tick();
                }
            }
        }
    }

    fn tick(&mut self, now: u64) {
        self.now = self.now.max(now);
    }

    fn emit(&mut self, e: HubEvent) {
        self.out.push_back(HubOutput::Event(e));
    }

    fn arm_conn(&mut self, k: u64) {
        if let Some(c) = self.conns.get_mut(k) {
            let d = match (c.ws.poll_timeout(), c.hello_deadline) {
                (Some(a), b) => Some(a.min(b)),
                (None, NEVER) => None,
                (None, b) => Some(b),
            };
            self.timers.arm(&mut c.scheduled, d, tag(Kind::Conn, k));
        }
    }

    fn arm_client(&mut self, k: u64) {
        if let Some(c) = self.clients.get_mut(k) {
            let d = c.session.poll_timeout();
            self.timers.arm(&mut c.scheduled, d, tag(Kind::Client, k));
        }
    }

    fn arm_user(&mut self, k: u64) {
        if let Some(u) = self.users.get_mut(k) {
            self.timers
                .arm(&mut u.scheduled, u.offline_at, tag(Kind::User, k));
        }
    }

    // ------------------------------------------------- connection plumbing

    /// Handles every event the connection's input produced.
    fn process_conn(&mut self, k: u64) {
        loop {
            let Some(c) = self.conns.get_mut(k) else {
                return;
            };
            let Some(ev) = c.ws.poll_event() else {
                break;
            };
            match ev {
                WsEvent::Request(request) => {
                    c.phase = Phase::Deciding;
                    self.emit(HubEvent::Upgrade {
                        conn: ConnId(k),
                        request,
                    });
                }
                WsEvent::Message(m) => self.on_message(k, m),
                WsEvent::Open { .. } | WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                WsEvent::Closed(closed) => {
                    if let Some(e) = closed.error.filter(reportable) {
                        let client = match c.phase {
                            Phase::Bound(cl) => Some(ClientId(cl)),
                            _ => None,
                        };
                        self.emit(HubEvent::ProtocolError {
                            conn: Some(ConnId(k)),
                            client,
                            error: HubProtocolError::Ws(e),
                        });
                    }
                    self.conn_ended(k);
                    return;
                }
            }
            self.flush_ws(k);
        }
        self.flush_ws(k);
        if let Some(c) = self.conns.get_mut(k) {
            c.ws.shrink_idle();
        }
        self.arm_conn(k);
    }

    /// Moves the WebSocket's output into the connection's queue and hands
    /// what the send window allows to the host.
    fn flush_ws(&mut self, k: u64) {
        let window = self.cfg.send_window_bytes;
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let Some(first) = c.ws.poll_transmit() else {
            return;
        };
        match c.ws.poll_transmit() {
            // One chunk, nothing queued, the window open: exactly what the
            // queue would hand out, without boxing a queue for it.
            None if c.outq.is_empty() && c.inflight < window => {
                c.inflight += first.len();
                self.out.push_back(HubOutput::Transmit {
                    conn: ConnId(k),
                    bytes: first,
                });
                return;
            }
            second => {
                c.outq.push(first, Class::Keep);
                if let Some(b) = second {
                    c.outq.push(b, Class::Keep);
                }
                while let Some(b) = c.ws.poll_transmit() {
                    c.outq.push(b, Class::Keep);
                }
            }
        }
        self.pump(k);
        self.check_overflow(k, 0);
    }

    fn pump(&mut self, k: u64) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let window = self.cfg.send_window_bytes;
        while c.inflight < window {
            let Some(bytes) = c.outq.pop(window - c.inflight) else {
                break;
            };
            c.inflight += bytes.len();
            self.out.push_back(HubOutput::Transmit {
                conn: ConnId(k),
                bytes,
            });
        }
    }

    /// Applies the slow-consumer policy if the queue is over its bound.
    /// `dropped` counts volatile frames already lost to this push.
    fn check_overflow(&mut self, k: u64, dropped: usize) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let max = self.cfg.max_queued_bytes;
        let client = match c.phase {
            Phase::Bound(cl) => Some(ClientId(cl)),
            _ => None,
        };
        if c.outq.bytes() <= max {
            if dropped > 0 {
                self.emit(HubEvent::SlowConsumer {
                    conn: ConnId(k),
                    client,
                    dropped,
                    disconnected: false,
                });
            }
            return;
        }
        let mut dropped = dropped;
        if self.cfg.slow_policy == SlowPolicy::DropOldest {
            dropped += c.outq.shed(max);
        }
        let cut = c.outq.bytes() > max;
        if cut {
            c.outq.clear();
        }
        self.emit(HubEvent::SlowConsumer {
            conn: ConnId(k),
            client,
            dropped,
            disconnected: cut,
        });
        if cut {
            self.close_conn(k, CLOSE_SLOW_CONSUMER, "slow consumer");
        }
    }

    /// Queues a frame built by the hub (volatile fan-out).
    fn push_frame(&mut self, k: u64, bytes: Bytes, class: Class) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        // What the WebSocket queued (e.g. pongs) goes first.
        while let Some(b) = c.ws.poll_transmit() {
            c.outq.push(b, Class::Keep);
        }
        if c.outq.is_empty() && c.inflight < self.cfg.send_window_bytes {
            // What the queue would hand out at once, without boxing one.
            c.inflight += bytes.len();
            self.out.push_back(HubOutput::Transmit {
                conn: ConnId(k),
                bytes,
            });
            return;
        }
        c.outq.push(bytes, class);
        self.pump(k);
        self.check_overflow(k, 0);
    }

    /// Starts closing a connection and forgets it: everything queued is
    /// handed to the host, then [`HubOutput::Close`].
    fn close_conn(&mut self, k: u64, code: CloseCode, reason: &str) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let _ = c.ws.close(code, reason);
        self.conn_ended(k);
    }

    /// The connection is over: flush, tell the host, detach its client.
    fn conn_ended(&mut self, k: u64) {
        let Some(mut c) = self.conns.remove(k) else {
            return;
        };
        while let Some(b) = c.ws.poll_transmit() {
            c.outq.push(b, Class::Keep);
        }
        while let Some(bytes) = c.outq.pop(usize::MAX) {
            self.out.push_back(HubOutput::Transmit {
                conn: ConnId(k),
                bytes,
            });
        }
        self.out.push_back(HubOutput::Close { conn: ConnId(k) });
        if let Phase::Bound(cl) = c.phase {
            self.detach_client(cl, k);
        }
        if let Some(uid) = c.uid() {
            if let Some(u) = self.users.get_mut(uid) {
                u.conns = u.conns.saturating_sub(1);
            }
            self.maybe_drop_user(uid);
        }
    }

    fn on_message(&mut self, k: u64, m: Message) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        if !c
            .bucket
            .take(now, self.cfg.message_rate, self.cfg.message_burst)
        {
            let user = c
                .uid()
                .and_then(|u| self.users.get(u))
                .map(|u| u.name.clone());
            self.emit(HubEvent::RateLimited {
                conn: ConnId(k),
                user,
            });
            self.close_conn(k, CLOSE_RATE_LIMITED, "rate limited");
            return;
        }
        let (kind, payload) = match m {
            Message::Text(t) => (MessageKind::Text, t.into_bytes()),
            Message::Binary(b) => (MessageKind::Binary, b),
        };
        match c.phase {
            Phase::Hello => self.on_hello(k, kind, payload),
            Phase::Bound(cl) => {
                if let Some(client) = self.clients.get_mut(cl) {
                    client.session.handle_message_bytes(now, kind, payload);
                }
                self.drain_session(cl);
            }
            Phase::Handshake | Phase::Deciding => {}
        }
    }

    fn on_hello(&mut self, k: u64, kind: MessageKind, payload: Bytes) {
        let now = self.now;
        let hello = match session::peek_hello(kind, &payload) {
            Ok(h) => h,
            Err(e) => {
                self.emit(HubEvent::ProtocolError {
                    conn: Some(ConnId(k)),
                    client: None,
                    error: HubProtocolError::BadHello(e),
                });
                self.close_conn(k, CloseCode::PROTOCOL_ERROR, "expected evs/hello");
                return;
            }
        };
        if hello.version != PROTOCOL_VERSION {
            self.emit(HubEvent::ProtocolError {
                conn: Some(ConnId(k)),
                client: None,
                error: HubProtocolError::Session(SessionError::UnsupportedVersion(hello.version)),
            });
            self.close_conn(k, CloseCode::PROTOCOL_ERROR, "unsupported protocol version");
            return;
        }
        let Some(uid) = self.conns.get(k).and_then(Conn::uid) else {
            return;
        };
        // Resume only a session of the same user: a session id alone does
        // not let another user take it over.
        let existing = hello
            .session_id
            .as_deref()
            .and_then(|s| self.client_by_sid(s))
            .filter(|&cl| self.clients.get(cl).is_some_and(|c| c.uid == uid));
        let cl = match existing {
            Some(cl) => {
                if let Some(old) = self.clients.get(cl).and_then(|c| c.conn) {
                    self.close_conn(old, CLOSE_REPLACED, "replaced by a newer connection");
                }
                cl
            }
            None => {
                if self.clients.len() >= self.cfg.max_sessions {
                    let ra = u64::from(self.cfg.retry_after_secs) * 1000;
                    let bye = session::encode_go_away(hello.format, ra);
                    self.ws_send(k, hello.format.kind(), bye);
                    self.close_conn(k, CloseCode::TRY_AGAIN_LATER, "too many sessions");
                    return;
                }
                // The id names the client's slot after its random part, so
                // no map from ids to clients is needed (see client_by_sid).
                let Some(slot) = self.clients.vacant_key() else {
                    self.close_conn(k, CloseCode::TRY_AGAIN_LATER, "too many sessions");
                    return;
                };
                let sid = format!("{}.{slot:x}", session::new_session_id(&mut *self.rng));
                let session = match Session::server(self.session_cfg.clone(), &sid, Box::new(NoRng))
                {
                    Ok(s) => s,
                    Err(_) => {
                        self.close_conn(k, CloseCode::INTERNAL_ERROR, "bad session id");
                        return;
                    }
                };
                let client = Client {
                    session,
                    uid,
                    conn: None,
                    connected: false,
                    rooms: Vec::new(),
                    scheduled: NEVER,
                };
                let Some(cl) = self.clients.insert(client) else {
                    self.close_conn(k, CloseCode::TRY_AGAIN_LATER, "too many sessions");
                    return;
                };
                debug_assert_eq!(cl, slot, "vacant_key names the inserted slot");
                if let Some(u) = self.users.get_mut(uid) {
                    u.clients.push(cl);
                }
                cl
            }
        };
        if let Some(c) = self.conns.get_mut(k) {
            c.phase = Phase::Bound(cl);
            c.hello_deadline = NEVER;
        }
        if let Some(client) = self.clients.get_mut(cl) {
            client.conn = Some(k);
            client.session.handle_connected(now);
            client.session.handle_message_bytes(now, kind, payload);
        }
        self.drain_session(cl);
    }

    fn ws_send(&mut self, k: u64, kind: MessageKind, payload: Bytes) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let msg = match kind {
            // Sessions write JSON from validated UTF-8 data and ASCII
            // skeletons.
            MessageKind::Text => Message::Text(Text::from_validated(payload)),
            MessageKind::Binary => Message::Binary(payload),
        };
        if c.ws.send(msg).is_ok() {
            self.flush_ws(k);
        }
    }

    // ---------------------------------------------------- client plumbing

    /// Handles everything a client's session produced.
    fn drain_session(&mut self, cl: u64) {
        let mut gone = None;
        loop {
            let Some(c) = self.clients.get_mut(cl) else {
                return;
            };
            let Some(o) = c.session.poll_output() else {
                break;
            };
            let conn = c.conn;
            let uid = c.uid;
            let format = c.session.format();
            match o {
                SessionOutput::Send { kind, payload } => {
                    if let Some(k) = conn {
                        self.ws_send(k, kind, payload);
                    }
                }
                SessionOutput::Event(e) => match e {
                    SessionEvent::Established { resumed, .. } => self.established(cl, resumed),
                    SessionEvent::Message { event, data, .. } => {
                        let user = self.user_name(uid);
                        self.emit(HubEvent::Message {
                            client: ClientId(cl),
                            user,
                            event,
                            data,
                            format,
                        });
                    }
                    SessionEvent::Request {
                        req,
                        event,
                        data,
                        timeout_ms,
                        idempotency_key,
                    } => {
                        let user = self.user_name(uid);
                        self.emit(HubEvent::Request {
                            client: ClientId(cl),
                            user,
                            req,
                            event,
                            data,
                            format,
                            timeout_ms,
                            idempotency_key,
                        });
                    }
                    SessionEvent::Gap { from, to } => self.emit(HubEvent::Gap {
                        client: ClientId(cl),
                        from,
                        to,
                    }),
                    SessionEvent::CloseTransport { reason } => {
                        if let Some(k) = conn {
                            self.close_conn(k, close_code_for(reason), reason.code());
                        }
                    }
                    SessionEvent::Expired => gone = Some(true),
                    SessionEvent::Closed { .. } => gone = Some(false),
                    SessionEvent::Error(error) => self.emit(HubEvent::ProtocolError {
                        conn: conn.map(ConnId),
                        client: Some(ClientId(cl)),
                        error: HubProtocolError::Session(error),
                    }),
                    SessionEvent::Reset { .. }
                    | SessionEvent::Reconnect
                    | SessionEvent::Reply { .. }
                    | SessionEvent::RequestFailed { .. } => {}
                },
            }
        }
        match gone {
            Some(expired) => self.client_gone(cl, expired),
            None => {
                if let Some(c) = self.clients.get_mut(cl) {
                    c.session.shrink_idle();
                }
                self.arm_client(cl)
            }
        }
    }

    /// The live client whose session id is `sid`. Hub session ids are
    /// `RANDOM.SLOT` (22 random base64url characters, a dot, the client's
    /// slab key in hex): the slot is found without a map, and the whole id
    /// must match the one the session holds (compared in constant time), so
    /// the 128 random bits still decide.
    fn client_by_sid(&self, sid: &str) -> Option<u64> {
        let (_, hex) = sid.rsplit_once('.')?;
        let k = u64::from_str_radix(hex, 16).ok()?;
        let own = self.clients.get(k)?.session.session_id()?;
        ct_eq(own.as_bytes(), sid.as_bytes()).then_some(k)
    }

    fn user_name(&self, uid: u64) -> Arc<str> {
        self.users
            .get(uid)
            .map_or_else(|| Arc::from(""), |u| u.name.clone())
    }

    fn established(&mut self, cl: u64, resumed: bool) {
        let Some(c) = self.clients.get_mut(cl) else {
            return;
        };
        if c.connected {
            return;
        }
        c.connected = true;
        let uid = c.uid;
        let Some(conn) = c.conn.map(ConnId) else {
            return;
        };
        let Some(u) = self.users.get_mut(uid) else {
            return;
        };
        u.connected += 1;
        u.offline_at = None;
        let user = u.name.clone();
        let first = !u.online;
        self.emit(HubEvent::ClientConnected {
            client: ClientId(cl),
            conn,
            user,
            resumed,
        });
        if first {
            self.set_online(uid, true);
        }
    }

    /// The client's connection is gone; the session waits for a resume.
    fn detach_client(&mut self, cl: u64, k: u64) {
        let now = self.now;
        let grace = self.cfg.offline_grace_ms;
        let Some(c) = self.clients.get_mut(cl) else {
            return;
        };
        if c.conn != Some(k) {
            return;
        }
        c.conn = None;
        c.session.handle_disconnected(now);
        let was = std::mem::replace(&mut c.connected, false);
        let uid = c.uid;
        if was {
            let user = self.user_name(uid);
            self.emit(HubEvent::ClientDisconnected {
                client: ClientId(cl),
                user,
            });
            self.client_unconnected(uid, now, grace);
        }
        self.drain_session(cl);
    }

    /// One of the user's connected clients stopped being connected.
    fn client_unconnected(&mut self, uid: u64, now: u64, grace: u64) {
        if let Some(u) = self.users.get_mut(uid) {
            u.connected = u.connected.saturating_sub(1);
            if u.connected == 0 && u.online {
                u.offline_at = Some(now.saturating_add(grace));
                self.arm_user(uid);
            }
        }
    }

    fn client_gone(&mut self, cl: u64, expired: bool) {
        let rooms = match self.clients.get_mut(cl) {
            Some(c) => std::mem::take(&mut c.rooms),
            None => return,
        };
        for room in rooms {
            self.leave_inner(cl, &room);
        }
        if let Some(k) = self.clients.get(cl).and_then(|c| c.conn) {
            self.close_conn(k, CloseCode::NORMAL, "session ended");
        }
        let Some(c) = self.clients.remove(cl) else {
            return;
        };
        if c.connected {
            self.client_unconnected(c.uid, self.now, self.cfg.offline_grace_ms);
        }
        if let Some(u) = self.users.get_mut(c.uid) {
            u.clients.remove(cl);
        }
        let user = self.user_name(c.uid);
        self.emit(HubEvent::ClientGone {
            client: ClientId(cl),
            user,
            expired,
        });
        self.maybe_drop_user(c.uid);
    }

    // -------------------------------------------------------------- users

    fn user_entry(&mut self, name: &str) -> u64 {
        if let Some(&k) = self.user_ids.get(name) {
            return k;
        }
        let name: Arc<str> = Arc::from(name);
        let user = User {
            name: name.clone(),
            clients: ClientList::Empty,
            conns: 0,
            connected: 0,
            online: false,
            offline_at: None,
            scheduled: NEVER,
        };
        // A slab of 2^32 users cannot happen before memory runs out.
        let k = self.users.insert(user).unwrap_or(u64::MAX);
        self.user_ids.insert(name.clone(), k);
        if self.node.is_some() {
            let channel = self.chan_user(&name);
            self.out.push_back(HubOutput::Subscribe { channel });
        }
        k
    }

    fn maybe_drop_user(&mut self, uid: u64) {
        let Some(u) = self.users.get(uid) else {
            return;
        };
        if u.conns > 0 || !u.clients.is_empty() || u.online {
            return;
        }
        if let Some(u) = self.users.remove(uid) {
            self.user_ids.remove(&u.name);
            if self.node.is_some() {
                let channel = self.chan_user(&u.name);
                self.out.push_back(HubOutput::Unsubscribe { channel });
            }
        }
    }

    fn set_online(&mut self, uid: u64, online: bool) {
        let Some(u) = self.users.get(uid) else {
            return;
        };
        if u.online == online {
            return;
        }
        let name = u.name.clone();
        let mut rooms: Vec<Arc<str>> = Vec::new();
        for &cl in u.clients.as_slice() {
            if let Some(c) = self.clients.get(cl) {
                for r in &c.rooms {
                    if !rooms.contains(r) {
                        rooms.push(r.clone());
                    }
                }
            }
        }
        if online {
            self.emit(HubEvent::UserOnline { user: name.clone() });
        }
        let before: Vec<(bool, bool)> = rooms
            .iter()
            .map(|r| (self.present(r, &name), self.local_present(r, &name)))
            .collect();
        if let Some(u) = self.users.get_mut(uid) {
            u.online = online;
        }
        for (r, b) in rooms.iter().zip(before) {
            self.presence_changed(r, &name, b);
        }
        if !online {
            self.emit(HubEvent::UserOffline { user: name });
        }
    }

    /// Whether a user is online here (a client connected, or within the
    /// offline grace).
    pub fn is_online(&self, user: &str) -> bool {
        self.user_ids
            .get(user)
            .and_then(|&k| self.users.get(k))
            .is_some_and(|u| u.online)
    }

    /// The user's clients on this node.
    pub fn user_clients(&self, user: &str) -> Vec<ClientId> {
        self.user_ids
            .get(user)
            .and_then(|&k| self.users.get(k))
            .map_or_else(Vec::new, |u| {
                u.clients.as_slice().iter().map(|&c| ClientId(c)).collect()
            })
    }

    /// The user a client belongs to.
    pub fn client_user(&self, client: ClientId) -> Option<Arc<str>> {
        let c = self.clients.get(client.0)?;
        self.users.get(c.uid).map(|u| u.name.clone())
    }

    /// Whether a client's session is established on a connection now.
    pub fn is_connected(&self, client: ClientId) -> bool {
        self.clients.get(client.0).is_some_and(|c| c.connected)
    }

    /// The rooms a client is in.
    pub fn client_rooms(&self, client: ClientId) -> Vec<Arc<str>> {
        self.clients
            .get(client.0)
            .map_or_else(Vec::new, |c| c.rooms.clone())
    }

    // -------------------------------------------------------------- rooms

    /// Sets the authorization hook of [`Hub::join_room`]: called with the
    /// user id and the room name, `false` refuses the join. Without one
    /// every join is allowed.
    pub fn set_room_policy(&mut self, policy: impl FnMut(&str, &str) -> bool + Send + 'static) {
        self.room_policy = Some(Box::new(policy));
    }

    /// Puts a client in a room (after asking the room policy). `Ok(false)`
    /// if it was already a member.
    pub fn join_room(&mut self, client: ClientId, now: u64, room: &str) -> Result<bool, HubError> {
        self.tick(now);
        if !is_valid_room(room) {
            return Err(HubError::BadRoom);
        }
        let c = self.clients.get(client.0).ok_or(HubError::UnknownClient)?;
        if c.rooms.iter().any(|r| &**r == room) {
            return Ok(false);
        }
        if c.rooms.len() >= self.cfg.max_rooms_per_client {
            return Err(HubError::TooManyRooms);
        }
        let uid = c.uid;
        let user = self.user_name(uid);
        if let Some(p) = self.room_policy.as_mut() {
            if !p(&user, room) {
                return Err(HubError::Forbidden);
            }
        }
        let name: Arc<str> = match self.rooms.get_key_value(room) {
            Some((k, _)) => k.clone(),
            None => Arc::from(room),
        };
        let first_local = !matches!(self.rooms.get(room), Some(r) if !r.members.is_empty());
        if first_local && self.node.is_some() {
            let channel = self.chan_room(&name);
            self.out.push_back(HubOutput::Subscribe { channel });
        }
        let before = (self.present(&name, &user), self.local_present(&name, &user));
        let r = self.rooms.entry(name.clone()).or_default();
        r.members.push(client.0);
        *r.users.entry(user.clone()).or_insert(0) += 1;
        if let Some(c) = self.clients.get_mut(client.0) {
            c.rooms.push(name.clone());
        }
        self.presence_changed(&name, &user, before);
        if first_local && self.node.is_some() {
            self.publish_room(
                &name,
                Remote::SyncRequest {
                    room: name.to_string(),
                },
            );
        }
        Ok(true)
    }

    /// Takes a client out of a room. `Ok(false)` if it was not a member.
    pub fn leave_room(&mut self, client: ClientId, now: u64, room: &str) -> Result<bool, HubError> {
        self.tick(now);
        let c = self
            .clients
            .get_mut(client.0)
            .ok_or(HubError::UnknownClient)?;
        let Some(pos) = c.rooms.iter().position(|r| &**r == room) else {
            return Ok(false);
        };
        let name = c.rooms.swap_remove(pos);
        self.leave_inner(client.0, &name);
        Ok(true)
    }

    /// Removes the membership (the client's own list is already updated).
    fn leave_inner(&mut self, cl: u64, room: &Arc<str>) {
        let Some(uid) = self.clients.get(cl).map(|c| c.uid) else {
            return;
        };
        let user = self.user_name(uid);
        let before = (self.present(room, &user), self.local_present(room, &user));
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if let Some(p) = r.members.iter().position(|&m| m == cl) {
            r.members.swap_remove(p);
        }
        if let Some(n) = r.users.get_mut(&user) {
            *n -= 1;
            if *n == 0 {
                r.users.remove(&user);
            }
        }
        self.presence_changed(room, &user, before);
        let empty = self.rooms.get(room).is_some_and(|r| r.members.is_empty());
        if empty {
            // Without local members the room is not followed any more; the
            // presence learnt from other nodes goes with it.
            if let Some(r) = self.rooms.remove(room) {
                for u in r.remote.keys() {
                    self.emit(HubEvent::Presence {
                        room: room.clone(),
                        user: u.clone(),
                        online: false,
                    });
                }
            }
            if self.node.is_some() {
                let channel = self.chan_room(room);
                self.out.push_back(HubOutput::Unsubscribe { channel });
            }
        }
    }

    fn local_present(&self, room: &str, user: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.users.get(user).is_some_and(|&n| n > 0))
            && self.is_online(user)
    }

    fn present(&self, room: &str, user: &str) -> bool {
        self.local_present(room, user)
            || self
                .rooms
                .get(room)
                .is_some_and(|r| r.remote.get(user).is_some_and(|n| !n.is_empty()))
    }

    /// Emits presence (and publishes a local change) after a mutation;
    /// `before` is (present anywhere, present here) from before it.
    fn presence_changed(&mut self, room: &Arc<str>, user: &Arc<str>, before: (bool, bool)) {
        let after = (self.present(room, user), self.local_present(room, user));
        if before.0 != after.0 {
            self.emit(HubEvent::Presence {
                room: room.clone(),
                user: user.clone(),
                online: after.0,
            });
        }
        if before.1 != after.1 && self.node.is_some() {
            self.publish_room(
                room,
                Remote::Presence {
                    room: room.to_string(),
                    user: user.to_string(),
                    online: after.1,
                },
            );
        }
    }

    /// Users present in a room: online here with a member client, or
    /// reported present by another node. Sorted.
    pub fn room_users(&self, room: &str) -> Vec<Arc<str>> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        let mut v: Vec<Arc<str>> = r
            .users
            .keys()
            .filter(|u| self.is_online(u))
            .chain(
                r.remote
                    .iter()
                    .filter(|(_, n)| !n.is_empty())
                    .map(|(u, _)| u),
            )
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The local member clients of a room.
    pub fn room_clients(&self, room: &str) -> Vec<ClientId> {
        self.rooms.get(room).map_or_else(Vec::new, |r| {
            r.members.iter().map(|&c| ClientId(c)).collect()
        })
    }

    // ------------------------------------------------------------ sending

    fn fanout(
        event: &str,
        data: Bytes,
        delivery: Delivery,
        max: usize,
    ) -> Result<Fanout, HubError> {
        if !session::is_valid_event_id(event.as_bytes()) {
            return Err(HubError::Send(SendError::BadEventId));
        }
        if event.starts_with(PROTOCOL_PREFIX) {
            return Err(HubError::Send(SendError::ReservedEvent));
        }
        if !data.is_empty() && session::JsonCodec.validate_value(&data).is_err() {
            return Err(HubError::InvalidData);
        }
        if event.len() + data.len() + 64 > max {
            return Err(HubError::Send(SendError::TooLarge));
        }
        Ok(Fanout {
            event: Arc::from(event),
            delivery,
            json: data,
            msgpack: None,
            frames: [None, None],
        })
    }

    /// Hands the message to one local client. `Ok(false)` if a volatile
    /// message found it disconnected.
    fn deliver(&mut self, cl: u64, f: &mut Fanout) -> Result<bool, HubError> {
        let now = self.now;
        let c = self.clients.get_mut(cl).ok_or(HubError::UnknownClient)?;
        let format = c.session.format();
        match f.delivery {
            Delivery::Reliable => {
                let data = f.data(format)?;
                c.session
                    .send_reliable(now, &f.event, data)
                    .map_err(HubError::Send)?;
                self.drain_session(cl);
                Ok(true)
            }
            Delivery::Volatile | Delivery::Latest(_) => {
                let (true, Some(k)) = (c.connected, c.conn) else {
                    return Ok(false);
                };
                if self.cfg.session.batch_window_ms > 0 {
                    // Batching sessions interleave envelopes: no sharing.
                    let data = f.data(format)?;
                    c.session
                        .send(now, &f.event, data)
                        .map_err(HubError::Send)?;
                    self.drain_session(cl);
                    return Ok(true);
                }
                let frame = f.frame(format)?;
                let class = match f.delivery {
                    Delivery::Latest(key) => Class::Latest(key),
                    _ => Class::Volatile,
                };
                self.push_frame(k, frame, class);
                Ok(true)
            }
        }
    }

    fn deliver_all(&mut self, targets: &[u64], f: &mut Fanout) -> usize {
        let mut n = 0;
        for &cl in targets {
            if let Ok(true) = self.deliver(cl, f) {
                n += 1;
            }
        }
        n
    }

    /// Sends to one client. `data` is one encoded JSON value (or empty);
    /// MessagePack clients get it transcoded.
    pub fn send_to_client(
        &mut self,
        client: ClientId,
        now: u64,
        event: &str,
        data: Bytes,
        delivery: Delivery,
    ) -> Result<(), HubError> {
        self.tick(now);
        let mut f = Self::fanout(event, data, delivery, self.cfg.session.max_message_bytes)?;
        match self.deliver(client.0, &mut f)? {
            true => Ok(()),
            false => Err(HubError::Send(SendError::NotConnected)),
        }
    }

    /// Sends to every client of a user (all tabs), on every node. Returns
    /// how many local clients it was handed to.
    pub fn send_to_user(
        &mut self,
        user: &str,
        now: u64,
        event: &str,
        data: Bytes,
        delivery: Delivery,
    ) -> Result<usize, HubError> {
        self.tick(now);
        if !is_valid_user_id(user) {
            return Err(HubError::BadUserId);
        }
        let mut f = Self::fanout(event, data, delivery, self.cfg.session.max_message_bytes)?;
        if self.node.is_some() {
            let m = Remote::User {
                user: user.to_owned(),
                event: event.to_owned(),
                delivery,
                data: f.json.clone(),
            };
            let channel = self.chan_user(user);
            self.publish(channel, &m);
        }
        Ok(self.user_local(user, &mut f))
    }

    fn user_local(&mut self, user: &str, f: &mut Fanout) -> usize {
        let targets = self.user_clients(user);
        let targets: Vec<u64> = targets.into_iter().map(|c| c.0).collect();
        self.deliver_all(&targets, f)
    }

    /// Sends to every member of a room, on every node (each gets it once).
    /// Returns how many local clients it was handed to.
    pub fn broadcast_room(
        &mut self,
        room: &str,
        now: u64,
        event: &str,
        data: Bytes,
        delivery: Delivery,
    ) -> Result<usize, HubError> {
        self.tick(now);
        if !is_valid_room(room) {
            return Err(HubError::BadRoom);
        }
        let mut f = Self::fanout(event, data, delivery, self.cfg.session.max_message_bytes)?;
        if self.node.is_some() {
            let m = Remote::Room {
                room: room.to_owned(),
                event: event.to_owned(),
                delivery,
                data: f.json.clone(),
            };
            let channel = self.chan_room(room);
            self.publish(channel, &m);
        }
        Ok(self.room_local(room, &mut f))
    }

    fn room_local(&mut self, room: &str, f: &mut Fanout) -> usize {
        let targets = self.rooms.get(room).map(|r| r.members.clone());
        targets.map_or(0, |t| self.deliver_all(&t, f))
    }

    /// Sends to every client, on every node. Returns how many local clients
    /// it was handed to.
    pub fn broadcast_all(
        &mut self,
        now: u64,
        event: &str,
        data: Bytes,
        delivery: Delivery,
    ) -> Result<usize, HubError> {
        self.tick(now);
        let mut f = Self::fanout(event, data, delivery, self.cfg.session.max_message_bytes)?;
        if self.node.is_some() {
            let m = Remote::All {
                event: event.to_owned(),
                delivery,
                data: f.json.clone(),
            };
            let channel = self.chan_all();
            self.publish(channel, &m);
        }
        Ok(self.all_local(&mut f))
    }

    fn all_local(&mut self, f: &mut Fanout) -> usize {
        let targets: Vec<u64> = self.clients.keys().collect();
        self.deliver_all(&targets, f)
    }

    /// Answers a client's request ([`HubEvent::Request`]). `data` is one
    /// encoded JSON value (transcoded for MessagePack clients).
    pub fn reply(
        &mut self,
        client: ClientId,
        now: u64,
        req: u64,
        data: Bytes,
    ) -> Result<(), HubError> {
        self.reply_inner(client, now, req, data, false)
    }

    /// Answers a client's request with an error (its `RequestFailed` with
    /// the data).
    pub fn reply_error(
        &mut self,
        client: ClientId,
        now: u64,
        req: u64,
        data: Bytes,
    ) -> Result<(), HubError> {
        self.reply_inner(client, now, req, data, true)
    }

    fn reply_inner(
        &mut self,
        client: ClientId,
        now: u64,
        req: u64,
        data: Bytes,
        error: bool,
    ) -> Result<(), HubError> {
        self.tick(now);
        let now = self.now;
        if !data.is_empty() && session::JsonCodec.validate_value(&data).is_err() {
            return Err(HubError::InvalidData);
        }
        let c = self
            .clients
            .get_mut(client.0)
            .ok_or(HubError::UnknownClient)?;
        let data = match c.session.format() {
            Format::Json => data,
            Format::MsgPack => json_to_msgpack(&data)?,
        };
        let r = if error {
            c.session.reply_error(now, req, data)
        } else {
            c.session.reply(now, req, data)
        };
        r.map_err(HubError::Send)?;
        self.drain_session(client.0);
        Ok(())
    }

    // ------------------------------------------------------------ cluster

    fn chan_all(&self) -> String {
        format!("{}:all", self.cfg.channel_prefix)
    }

    fn chan_room(&self, room: &str) -> String {
        format!("{}:room:{room}", self.cfg.channel_prefix)
    }

    fn chan_user(&self, user: &str) -> String {
        format!("{}:user:{user}", self.cfg.channel_prefix)
    }

    fn publish(&mut self, channel: String, m: &Remote) {
        if let Some(node) = &self.node {
            let bytes = cluster::encode(node, m);
            self.out.push_back(HubOutput::Publish { channel, bytes });
        }
    }

    fn publish_room(&mut self, room: &str, m: Remote) {
        let channel = self.chan_room(room);
        self.publish(channel, &m);
    }

    fn cluster_tick(&mut self) {
        let Some(_) = self.node else {
            return;
        };
        let now = self.now;
        let hb = self.cfg.heartbeat_ms;
        if now >= self.next_heartbeat {
            let channel = self.chan_all();
            self.publish(channel, &Remote::Heartbeat);
            self.next_heartbeat = now.saturating_add(hb);
        }
        let silent: Vec<Arc<str>> = self
            .nodes
            .iter()
            .filter(|(_, &at)| now >= at.saturating_add(hb.saturating_mul(3)))
            .map(|(n, _)| n.clone())
            .collect();
        for n in silent {
            self.nodes.remove(&n);
            self.retire_node(&n);
        }
        let next = self
            .nodes
            .values()
            .map(|&at| at.saturating_add(hb.saturating_mul(3)))
            .min()
            .map_or(self.next_heartbeat, |d| d.min(self.next_heartbeat));
        self.timers
            .arm(&mut self.hub_scheduled, Some(next), tag(Kind::Hub, 0));
    }

    /// Drops every presence a node reported.
    fn retire_node(&mut self, node: &str) {
        let rooms: Vec<Arc<str>> = self.rooms.keys().cloned().collect();
        for room in rooms {
            let users: Vec<Arc<str>> = self
                .rooms
                .get(&room)
                .map(|r| r.remote.keys().cloned().collect())
                .unwrap_or_default();
            for user in users {
                self.set_remote(&room, &user, node, false);
            }
        }
    }

    /// Records whether `node` reports `user` present in `room`.
    fn set_remote(&mut self, room: &Arc<str>, user: &str, node: &str, on: bool) {
        let Some(r) = self.rooms.get(&**room) else {
            return;
        };
        let user: Arc<str> = match r.remote.get_key_value(user) {
            Some((k, _)) => k.clone(),
            None => match r.users.get_key_value(user) {
                Some((k, _)) => k.clone(),
                None => Arc::from(user),
            },
        };
        let before = (self.present(room, &user), self.local_present(room, &user));
        let node_arc = self.nodes.get_key_value(node).map(|(k, _)| k.clone());
        let Some(r) = self.rooms.get_mut(&**room) else {
            return;
        };
        let nodes = r.remote.entry(user.clone()).or_default();
        let has = nodes.iter().any(|n| &**n == node);
        if on && !has {
            nodes.push(node_arc.unwrap_or_else(|| Arc::from(node)));
        } else if !on && has {
            nodes.retain(|n| &**n != node);
        }
        if nodes.is_empty() {
            r.remote.remove(&user);
        }
        self.presence_changed(room, &user, before);
    }

    /// A message from the pub/sub bus. Own echoes are dropped; malformed
    /// messages are refused with [`HubError::Cluster`] and change nothing.
    pub fn handle_remote(&mut self, now: u64, bytes: &[u8]) -> Result<(), HubError> {
        self.tick(now);
        let Some(me) = self.node.clone() else {
            return Err(HubError::InvalidState("this hub has no node_id"));
        };
        let bytes = Bytes::copy_from_slice(bytes);
        let (node, m) = cluster::decode(&bytes)?;
        if node.is_empty() || node.len() > MAX_NODE_ID_LEN {
            return Err(HubError::Cluster(cluster::ClusterError::BadField("node")));
        }
        if *node == *me {
            return Ok(());
        }
        let known = self.nodes.contains_key(node.as_str());
        self.nodes.insert(Arc::from(node.as_str()), self.now);
        if !known {
            // A node we did not know (new, or back after being retired):
            // learn its presence in our rooms again.
            let rooms: Vec<Arc<str>> = self.rooms.keys().cloned().collect();
            for room in rooms {
                self.publish_room(
                    &room,
                    Remote::SyncRequest {
                        room: room.to_string(),
                    },
                );
            }
            if self.hub_scheduled == NEVER {
                let at = self.now.saturating_add(self.cfg.heartbeat_ms);
                self.timers
                    .arm(&mut self.hub_scheduled, Some(at), tag(Kind::Hub, 0));
            }
        }
        let max = self.cfg.session.max_message_bytes;
        match m {
            Remote::Room {
                room,
                event,
                delivery,
                data,
            } => {
                if !is_valid_room(&room) {
                    return Err(HubError::Cluster(cluster::ClusterError::BadField("room")));
                }
                let mut f = Self::fanout(&event, data, delivery, max)?;
                self.room_local(&room, &mut f);
            }
            Remote::User {
                user,
                event,
                delivery,
                data,
            } => {
                let mut f = Self::fanout(&event, data, delivery, max)?;
                self.user_local(&user, &mut f);
            }
            Remote::All {
                event,
                delivery,
                data,
            } => {
                let mut f = Self::fanout(&event, data, delivery, max)?;
                self.all_local(&mut f);
            }
            Remote::Presence { room, user, online } => {
                if !is_valid_user_id(&user) {
                    return Err(HubError::Cluster(cluster::ClusterError::BadField("user")));
                }
                if let Some((r, _)) = self.rooms.get_key_value(room.as_str()) {
                    let r = r.clone();
                    self.set_remote(&r, &user, &node, online);
                }
            }
            Remote::SyncRequest { room } => {
                if let Some((r, _)) = self.rooms.get_key_value(room.as_str()) {
                    let r = r.clone();
                    let users: Vec<String> = self
                        .rooms
                        .get(&r)
                        .map(|x| {
                            x.users
                                .keys()
                                .filter(|u| self.is_online(u))
                                .map(|u| u.to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    self.publish_room(&r, Remote::Snapshot { room, users });
                }
            }
            Remote::Snapshot { room, users } => {
                if users.iter().any(|u| !is_valid_user_id(u)) {
                    return Err(HubError::Cluster(cluster::ClusterError::BadField("user")));
                }
                if let Some((r, _)) = self.rooms.get_key_value(room.as_str()) {
                    let r = r.clone();
                    let had: Vec<Arc<str>> = self
                        .rooms
                        .get(&r)
                        .map(|x| {
                            x.remote
                                .iter()
                                .filter(|(_, ns)| ns.iter().any(|n| **n == *node))
                                .map(|(u, _)| u.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    for u in had {
                        if !users.iter().any(|x| **x == *u) {
                            self.set_remote(&r, &u, &node, false);
                        }
                    }
                    for u in &users {
                        self.set_remote(&r, u, &node, true);
                    }
                }
            }
            Remote::Heartbeat => {}
        }
        Ok(())
    }

    /// Other nodes heard from within three heartbeats.
    pub fn peer_nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.nodes.keys().map(|n| n.to_string()).collect();
        v.sort();
        v
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Hub>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_frame_is_one_valid_frame() {
        let b = shared_frame(Format::Json, "a/b", b"{\"x\":1}");
        let (h, n) = FrameHeader::decode(&b).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Text);
        assert!(h.fin && h.mask.is_none());
        assert_eq!(&b[n..], br#"["a/b",{"x":1}]"#);
        let big = vec![b'1'; 70_000];
        let b = shared_frame(Format::Json, "a/b", &big);
        let (h, n) = FrameHeader::decode(&b).unwrap().unwrap();
        assert_eq!(h.len as usize, b.len() - n);
        assert_eq!(n, 10, "64-bit length header");
    }

    #[test]
    fn msgpack_transcoding() {
        let m = json_to_msgpack(br#"{"a":[1,"x"]}"#).unwrap();
        let v: serde_json::Value = rmp_serde::from_slice(&m).unwrap();
        assert_eq!(v, serde_json::json!({"a":[1,"x"]}));
        assert!(json_to_msgpack(b"").unwrap().is_empty());
        assert_eq!(json_to_msgpack(b"{").unwrap_err(), HubError::InvalidData);
    }

    #[test]
    fn timer_tags_keep_kinds_apart() {
        let t = tag(Kind::User, super::super::slab::key(5, 9));
        assert_eq!(untag(t).0, Kind::User);
    }
}
#[cfg(test)]
mod size_probe {
    use std::mem::size_of;

    /// The hub's own per-connection and per-client state stays small next
    /// to the WebSocket connection and the session it wraps (see the
    /// hub-memory example for the whole measurement).
    #[test]
    fn hub_overhead_per_entity_is_small() {
        let conn = size_of::<super::Conn>() - size_of::<crate::ws::Connection>();
        let client = size_of::<super::Client>() - size_of::<crate::session::Session>();
        assert!(conn <= 72, "Conn adds {conn} bytes");
        assert!(client <= 64, "Client adds {client} bytes");
        assert!(size_of::<super::User>() <= 80);
        assert!(
            size_of::<super::OutQueue>() <= 8,
            "an empty queue is a null box"
        );
    }
}
