//! The [`Session`] state machine.

use super::backoff::Backoff;
use super::codec::Format;
use super::envelope::{is_valid_event_id, Envelope, EnvelopeError, EventId, Meta};
use super::envelope::{MAX_IDEMPOTENCY_KEY_LEN, PROTOCOL_PREFIX};
use super::proto::{self, ByeData, HelloData, RerrData, WelcomeData, PROTOCOL_VERSION};
use super::{CloseReason, Config, MessageKind, Output, RequestError, Role};
use super::{SendError, SessionError, SessionEvent};
use crate::rng::Rng;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Client before its first connection.
    Idle,
    /// Transport open, waiting for the hello (server) or welcome (client).
    Handshaking {
        since: u64,
    },
    Established,
    Disconnected {
        since: u64,
    },
    Closed,
}

/// An unacknowledged reliable message, kept for retransmission.
#[derive(Debug)]
struct OutMsg {
    id: u64,
    event: EventId,
    data: Bytes,
    meta: Meta,
    at: u64,
    size: usize,
}

/// An envelope waiting for the next flush.
#[derive(Debug)]
enum Queued {
    /// A reliable message, by id (its body lives in the resume buffer).
    Reliable(u64),
    /// A message sent at most once on this connection.
    Once { event: EventId, data: Bytes },
}

/// State a session needs only while something is in flight: the resume
/// buffer, requests both ways, queued envelopes, outputs not yet polled and
/// decoding scratch. Behind one box, allocated on first use and freed again
/// by [`Session::shrink_idle`] once everything in it is empty, so an idle
/// session does not carry it.
#[derive(Default)]
struct Cold {
    // Outgoing reliable stream: unacknowledged messages (the resume buffer).
    buf: VecDeque<OutMsg>,
    buf_bytes: usize,

    // Requests: outgoing (id -> deadline, plus a deadline-ordered index) and
    // incoming (id -> deadline).
    pending: BTreeMap<u64, u64>,
    timers: BTreeSet<(u64, u64)>,
    incoming: BTreeMap<u64, u64>,

    // Envelopes waiting to be written into a frame.
    outq: Vec<Queued>,
    outq_bytes: usize,
    batch_due: Option<u64>,

    out: VecDeque<Output>,
    scratch: Vec<Envelope>,
}

/// What every read of an absent [`Cold`] sees.
static EMPTY_COLD: Cold = Cold {
    buf: VecDeque::new(),
    buf_bytes: 0,
    pending: BTreeMap::new(),
    timers: BTreeSet::new(),
    incoming: BTreeMap::new(),
    outq: Vec::new(),
    outq_bytes: 0,
    batch_due: None,
    out: VecDeque::new(),
    scratch: Vec::new(),
};

impl Cold {
    /// Nothing in flight: the box can go.
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
            && self.pending.is_empty()
            && self.timers.is_empty()
            && self.incoming.is_empty()
            && self.outq.is_empty()
            && self.batch_due.is_none()
            && self.out.is_empty()
    }
}

/// Client-only state (reconnects), boxed: a server session has none.
struct ClientPart {
    rng: Box<dyn Rng + Send>,
    backoff: Backoff,
    retry_after: Option<u64>,
    reconnect_at: Option<u64>,
}

/// Inputs closer together than this count towards a busy streak.
const BUSY_GAP_MS: u64 = 1_000;

/// A session with this many such inputs in a row is busy: it keeps its
/// [`Cold`] box between messages instead of freeing it in
/// [`Session::shrink_idle`].
const BUSY_STREAK: u8 = 2;

/// One end of an evsock session. See the [module docs](super).
///
/// # Memory
///
/// An idle session is the struct (see the size test) plus its session id:
/// the configuration is shared (`Arc`), a server keeps no random source,
/// client-only reconnect state is boxed, and everything that exists only
/// while messages are in flight (resume buffer, requests, queued envelopes,
/// outputs) lives in one box that [`Session::shrink_idle`] frees once it is
/// empty and the session is not busy.
pub struct Session {
    cfg: Arc<Config>,
    sid: Option<Box<str>>,
    cold: Option<Box<Cold>>,
    client: Option<Box<ClientPart>>,
    state: State,
    now: u64,

    // Outgoing reliable stream.
    next_id: u64,
    flushed_upto: u64,

    // Incoming reliable stream.
    rx: u64,
    ack_sent: u64,
    ack_due: Option<u64>,

    // Liveness.
    last_rx_at: u64,
    last_ping_at: u64,
    /// When the last input or application send happened (busy streak).
    last_active: u64,

    role: Role,
    format: Format,
    ever_established: bool,
    /// Inputs in a row within [`BUSY_GAP_MS`] of each other (saturating).
    streak: u8,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("sid", &self.sid)
            .field("state", &self.state)
            .field("next_id", &self.next_id)
            .field("rx", &self.rx)
            .field("unacked", &self.c().buf.len())
            .field("pending", &self.c().pending.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    fn new(role: Role, cfg: Arc<Config>, sid: Option<String>, client: Option<ClientPart>) -> Self {
        Session {
            role,
            format: cfg.format,
            cfg,
            sid: sid.map(String::into_boxed_str),
            cold: None,
            client: client.map(Box::new),
            state: State::Idle,
            ever_established: false,
            now: 0,
            next_id: 1,
            flushed_upto: 0,
            rx: 0,
            ack_sent: 0,
            ack_due: None,
            last_rx_at: 0,
            last_ping_at: 0,
            last_active: u64::MAX,
            streak: 0,
        }
    }

    /// The in-flight state, or an empty one if none is allocated.
    #[inline]
    fn c(&self) -> &Cold {
        self.cold.as_deref().unwrap_or(&EMPTY_COLD)
    }

    /// The in-flight state, allocated on first use.
    #[inline]
    fn cm(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Box::default)
    }

    fn reconnect_at(&self) -> Option<u64> {
        self.client.as_ref().and_then(|c| c.reconnect_at)
    }

    fn set_reconnect_at(&mut self, at: Option<u64>) {
        if let Some(c) = self.client.as_deref_mut() {
            c.reconnect_at = at;
        }
    }

    /// A client session. Open a transport connection, then call
    /// [`Session::handle_connected`]; the session sends the hello.
    ///
    /// `cfg` may be a [`Config`] or an `Arc<Config>` shared by many
    /// sessions.
    pub fn client(cfg: impl Into<Arc<Config>>, rng: Box<dyn Rng + Send>) -> Self {
        let cfg = cfg.into();
        let client = ClientPart {
            rng,
            backoff: Backoff::new(cfg.backoff_base_ms, cfg.backoff_max_ms),
            retry_after: None,
            reconnect_at: None,
        };
        Session::new(Role::Client, cfg, None, Some(client))
    }

    /// A server session with the given id (normally from
    /// [`new_session_id`](super::new_session_id)). Call
    /// [`Session::handle_connected`] and then hand it the hello message.
    ///
    /// `cfg` may be a [`Config`] or an `Arc<Config>` shared by many
    /// sessions (a hub shares one). A server never draws random numbers
    /// (only a client's reconnect backoff does), so `rng` is dropped at
    /// once; it is taken for symmetry with [`Session::client`].
    ///
    /// Fails if `session_id` is not 1 to 64 printable ASCII characters
    /// without space, `"` or `\`.
    pub fn server(
        cfg: impl Into<Arc<Config>>,
        session_id: &str,
        rng: Box<dyn Rng + Send>,
    ) -> Result<Self, EnvelopeError> {
        drop(rng);
        if !proto::is_valid_session_id(session_id) {
            return Err(EnvelopeError::BadProtocolData("sid"));
        }
        Ok(Session::new(
            Role::Server,
            cfg.into(),
            Some(session_id.to_owned()),
            None,
        ))
    }

    // ------------------------------------------------------- accessors ---

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The session id (a client learns it from the first welcome).
    pub fn session_id(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// The wire format in use.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether a connection is open and the handshake is done.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the session has ended (closed or expired) for good.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Outgoing requests still waiting for a reply.
    pub fn pending_requests(&self) -> usize {
        self.c().pending.len()
    }

    /// Reliable messages not yet acknowledged by the peer.
    pub fn unacked_messages(&self) -> usize {
        self.c().buf.len()
    }

    /// Encoded size of the unacknowledged reliable messages.
    pub fn unacked_bytes(&self) -> usize {
        self.c().buf_bytes
    }

    /// Highest peer id received in order.
    pub fn last_received_id(&self) -> u64 {
        self.rx
    }

    /// Encodes an application value in the session's format, for the `data`
    /// argument of the send functions.
    pub fn encode<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<Bytes, super::DataError> {
        self.format.encode(value)
    }

    // --------------------------------------------------------- outputs ---

    /// The next thing the host must do, if any. Drain it after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.cold.as_deref_mut()?.out.pop_front()
    }

    /// Frees what is kept for reuse while it is empty. For hosts holding
    /// very many idle sessions (a hub): once nothing is in flight (every
    /// reliable message acknowledged, no request open either way, no
    /// output waiting) and the session is not busy (two inputs or sends in
    /// a row, each within a second of the previous one), the whole
    /// in-flight box is freed and the idle session is just its struct and
    /// its id. A busy session keeps it, so steady traffic does not allocate
    /// it per message; the next call after a quiet second frees it. The
    /// next message allocates again.
    pub fn shrink_idle(&mut self) {
        // (`streak` is 0 while `last_active` is still unset.)
        let busy =
            self.streak >= BUSY_STREAK && self.now.saturating_sub(self.last_active) < BUSY_GAP_MS;
        let Some(c) = self.cold.as_deref_mut() else {
            return;
        };
        if busy {
            return;
        }
        if c.is_empty() {
            self.cold = None;
            return;
        }
        if c.out.is_empty() {
            c.out = VecDeque::new();
        }
        if c.outq.is_empty() {
            c.outq = Vec::new();
        }
        c.scratch = Vec::new();
    }

    /// Counts an input or an application send at `self.now` towards the busy
    /// streak.
    #[inline]
    fn touch(&mut self) {
        if self.last_active != u64::MAX && self.now.saturating_sub(self.last_active) < BUSY_GAP_MS {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak = 0;
        }
        self.last_active = self.now;
    }

    /// When [`Session::handle_timeout`] must be called next (absolute
    /// milliseconds), or `None` if no timer is armed.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.state == State::Closed {
            return None;
        }
        let mut t: Option<u64> = None;
        let mut at = |x: u64| t = Some(t.map_or(x, |y| y.min(x)));
        if let Some(&(d, _)) = self.c().timers.first() {
            at(d);
        }
        if let Some(d) = self.ack_due {
            at(d);
        }
        if let Some(d) = self.c().batch_due {
            at(d);
        }
        match self.state {
            State::Established => {
                if let Some(i) = self.cfg.idle_timeout_ms {
                    at(self.last_rx_at.saturating_add(i));
                }
                if let Some(p) = self.cfg.ping_interval_ms {
                    at(self.last_rx_at.max(self.last_ping_at).saturating_add(p));
                }
            }
            State::Handshaking { since } => at(since.saturating_add(self.cfg.handshake_timeout_ms)),
            State::Disconnected { since } => match self.role {
                Role::Client => {
                    if let Some(r) = self.reconnect_at() {
                        at(r);
                    }
                }
                Role::Server => at(since.saturating_add(self.cfg.resume_window_ms)),
            },
            State::Idle | State::Closed => {}
        }
        if let Some(f) = self.c().buf.front() {
            if self.evictable(f.id) {
                at(f.at.saturating_add(self.cfg.resume_buffer_age_ms));
            }
        }
        t
    }

    // ---------------------------------------------------------- inputs ---

    /// A transport connection has opened. A client sends its hello now.
    pub fn handle_connected(&mut self, now: u64) {
        self.tick(now);
        if self.state == State::Closed {
            self.emit(SessionEvent::CloseTransport {
                reason: CloseReason::SessionClosed,
            });
            return;
        }
        if matches!(self.state, State::Established | State::Handshaking { .. }) {
            // The host did not report the old connection's end.
            self.transport_lost();
        }
        self.state = State::Handshaking { since: self.now };
        self.set_reconnect_at(None);
        self.last_rx_at = self.now;
        self.last_ping_at = self.now;
        self.flushed_upto = 0;
        if self.role == Role::Client {
            let hello = HelloData {
                v: PROTOCOL_VERSION,
                sid: self.sid.as_deref().map(str::to_owned),
                rx: self.rx,
                lo: self.lo(),
            };
            self.send_control(proto::HELLO, &hello);
        }
    }

    /// The transport connection closed or failed (also when a connection
    /// attempt failed). A client schedules a reconnect; a server starts its
    /// resume window.
    pub fn handle_disconnected(&mut self, now: u64) {
        self.tick(now);
        self.transport_lost();
    }

    /// A whole message arrived on the transport. Copies it once; see
    /// [`Session::handle_message_bytes`] to avoid the copy.
    pub fn handle_message(&mut self, now: u64, kind: MessageKind, payload: &[u8]) {
        if payload.len() > self.cfg.max_received_bytes() {
            self.tick(now);
            self.emit_error(SessionError::Envelope(EnvelopeError::TooLarge {
                len: payload.len(),
                max: self.cfg.max_received_bytes(),
            }));
            return;
        }
        self.handle_message_bytes(now, kind, Bytes::copy_from_slice(payload));
    }

    /// A whole message arrived on the transport. Event ids and data in the
    /// resulting events share `payload`'s memory.
    pub fn handle_message_bytes(&mut self, now: u64, kind: MessageKind, payload: Bytes) {
        self.tick(now);
        self.touch();
        match self.state {
            State::Established | State::Handshaking { .. } => {}
            _ => {
                self.emit_error(SessionError::NotConnected);
                return;
            }
        }
        if payload.len() > self.cfg.max_received_bytes() {
            self.emit_error(SessionError::Envelope(EnvelopeError::TooLarge {
                len: payload.len(),
                max: self.cfg.max_received_bytes(),
            }));
            return;
        }
        let fmt = Format::from_kind(kind);
        let server_hello = self.role == Role::Server && self.state != State::Established;
        if fmt != self.format && !server_hello {
            self.emit_error(SessionError::WrongKind);
            return;
        }
        self.last_rx_at = self.now;
        let mut envs = self
            .cold
            .as_deref_mut()
            .map(|c| std::mem::take(&mut c.scratch))
            .unwrap_or_default();
        envs.clear();
        match fmt
            .codec()
            .decode_frame(&payload, self.cfg.max_batch_envelopes, &mut envs)
        {
            Ok(()) => {
                for env in envs.drain(..) {
                    if !self.on_envelope(env, fmt) {
                        break;
                    }
                }
            }
            Err(e) => {
                self.emit_error(SessionError::Envelope(e));
                if self.state != State::Established {
                    self.protocol_drop(CloseReason::ProtocolError);
                }
            }
        }
        envs.clear();
        if envs.capacity() > 0 {
            self.cm().scratch = envs;
        }
        self.finish();
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        self.tick(now);
        let now = self.now;
        while let Some(&(d, id)) = self.c().timers.first() {
            if d > now {
                break;
            }
            let c = self.cm();
            c.timers.pop_first();
            c.pending.remove(&id);
            self.emit(SessionEvent::RequestFailed {
                req: id,
                error: RequestError::Timeout,
            });
        }
        match self.state {
            State::Established => {
                let idle = self
                    .cfg
                    .idle_timeout_ms
                    .is_some_and(|i| now >= self.last_rx_at.saturating_add(i));
                if idle {
                    self.protocol_drop(CloseReason::IdleTimeout);
                } else {
                    if let Some(p) = self.cfg.ping_interval_ms {
                        if now >= self.last_rx_at.max(self.last_ping_at).saturating_add(p) {
                            self.last_ping_at = now;
                            self.enqueue_once(EventId::from_static(proto::PING), Bytes::new());
                        }
                    }
                    if self.ack_due.is_some_and(|d| d <= now) {
                        if self.c().outq.is_empty() {
                            self.enqueue_once(EventId::from_static(proto::ACK), Bytes::new());
                        }
                        self.flush();
                    }
                    if self.c().batch_due.is_some_and(|d| d <= now) {
                        self.flush();
                    }
                }
            }
            State::Handshaking { since } => {
                if now >= since.saturating_add(self.cfg.handshake_timeout_ms) {
                    self.protocol_drop(CloseReason::HandshakeTimeout);
                }
            }
            State::Disconnected { since } => match self.role {
                Role::Client => {
                    if self.reconnect_at().is_some_and(|r| r <= now) {
                        self.set_reconnect_at(None);
                        self.emit(SessionEvent::Reconnect);
                    }
                }
                Role::Server => {
                    if now >= since.saturating_add(self.cfg.resume_window_ms) {
                        self.end(RequestError::SessionClosed);
                        self.emit(SessionEvent::Expired);
                    }
                }
            },
            State::Idle | State::Closed => {}
        }
        self.evict();
        self.finish();
    }

    // ------------------------------------------------ application calls ---

    /// Sends a fire-and-forget event: at most once, only on an established
    /// connection, not acknowledged. `data` is one encoded value in the
    /// session's format (or empty for none).
    pub fn send(&mut self, now: u64, event: &str, data: Bytes) -> Result<(), SendError> {
        self.tick(now);
        self.touch();
        let ev = self.check_app(event, &data)?;
        if self.state != State::Established {
            return Err(SendError::NotConnected);
        }
        self.enqueue_once(ev, data);
        self.finish();
        Ok(())
    }

    /// Sends a reliable event: numbered, acknowledged, retransmitted after a
    /// reconnect and delivered exactly once in order while the session can be
    /// resumed. Accepted while disconnected (it waits in the resume buffer).
    /// While the session handshakes nothing buffered may be evicted, so a
    /// send that would grow the buffer past `resume_buffer_bytes` is refused
    /// with [`SendError::BufferFull`]; retry once established. Returns its
    /// id.
    pub fn send_reliable(&mut self, now: u64, event: &str, data: Bytes) -> Result<u64, SendError> {
        self.tick(now);
        self.touch();
        let ev = self.check_app(event, &data)?;
        if matches!(self.state, State::Handshaking { .. }) && !self.c().buf.is_empty() {
            // Nothing can be evicted until the welcome (see `evictable`):
            // refuse rather than grow without bound. Requests are bounded
            // by their count and replies by the incoming requests.
            let size = self.format.codec().envelope_len_hint(
                ev.as_bytes(),
                &data,
                &Meta {
                    id: Some(self.next_id),
                    ..Meta::default()
                },
            );
            if self.c().buf_bytes + size > self.cfg.resume_buffer_bytes {
                return Err(SendError::BufferFull);
            }
        }
        let id = self.push_reliable(ev, data, Meta::default());
        self.finish();
        Ok(id)
    }

    /// Sends a reliable request. It ends in exactly one
    /// [`SessionEvent::Reply`] or [`SessionEvent::RequestFailed`] carrying
    /// the returned request id, at the latest `timeout_ms` from now.
    pub fn request(
        &mut self,
        now: u64,
        event: &str,
        data: Bytes,
        timeout_ms: u64,
    ) -> Result<u64, SendError> {
        self.request_inner(now, event, data, timeout_ms, None)
    }

    /// Like [`Session::request`], with an application idempotency key the
    /// server can use to answer a retry in a later session from its
    /// [`ReplyCache`](super::ReplyCache) instead of applying it twice.
    pub fn request_idempotent(
        &mut self,
        now: u64,
        event: &str,
        data: Bytes,
        timeout_ms: u64,
        idempotency_key: &str,
    ) -> Result<u64, SendError> {
        if idempotency_key.is_empty() || idempotency_key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(SendError::BadIdempotencyKey);
        }
        self.request_inner(now, event, data, timeout_ms, Some(idempotency_key.into()))
    }

    fn request_inner(
        &mut self,
        now: u64,
        event: &str,
        data: Bytes,
        timeout_ms: u64,
        ik: Option<Box<str>>,
    ) -> Result<u64, SendError> {
        self.tick(now);
        self.touch();
        let ev = self.check_app(event, &data)?;
        if timeout_ms == 0 || timeout_ms > self.cfg.max_request_timeout_ms {
            return Err(SendError::BadTimeout);
        }
        if self.c().pending.len() >= self.cfg.max_pending_requests {
            return Err(SendError::TooManyPending);
        }
        let meta = Meta {
            rq: Some(timeout_ms),
            ik,
            ..Meta::default()
        };
        let id = self.push_reliable(ev, data, meta);
        let deadline = self.now.saturating_add(timeout_ms);
        let c = self.cm();
        c.pending.insert(id, deadline);
        c.timers.insert((deadline, id));
        self.finish();
        Ok(id)
    }

    /// Answers incoming request `req` (reliably). Fails with
    /// [`SendError::UnknownRequest`] if it was already answered, never
    /// existed, or its requester has stopped waiting.
    pub fn reply(&mut self, now: u64, req: u64, data: Bytes) -> Result<(), SendError> {
        self.reply_inner(now, req, data, proto::REPLY)
    }

    /// Answers incoming request `req` with an error; the requester sees
    /// [`RequestError::Remote`] with `data`.
    pub fn reply_error(&mut self, now: u64, req: u64, data: Bytes) -> Result<(), SendError> {
        self.reply_inner(now, req, data, proto::RERR)
    }

    fn reply_inner(
        &mut self,
        now: u64,
        req: u64,
        data: Bytes,
        kind: &'static str,
    ) -> Result<(), SendError> {
        self.tick(now);
        self.touch();
        if self.state == State::Closed {
            return Err(SendError::Closed);
        }
        self.check_data(kind.as_bytes(), &data)?;
        match self.c().incoming.get(&req) {
            None => return Err(SendError::UnknownRequest),
            Some(&d) if d <= self.now => {
                self.cm().incoming.remove(&req);
                return Err(SendError::UnknownRequest);
            }
            Some(_) => {}
        }
        self.cm().incoming.remove(&req);
        let meta = Meta {
            re: Some(req),
            ..Meta::default()
        };
        self.push_reliable(EventId::from_static(kind), data, meta);
        self.finish();
        Ok(())
    }

    /// Ends the session for good: tells the peer (if connected), fails
    /// pending requests with [`RequestError::SessionClosed`], and asks the
    /// host to close the transport.
    pub fn close(&mut self, now: u64) {
        self.tick(now);
        if self.state == State::Closed {
            return;
        }
        let connected = matches!(self.state, State::Established | State::Handshaking { .. });
        if connected {
            self.flush();
            self.send_control(proto::BYE, &ByeData { ra: 0, end: true });
        }
        self.end(RequestError::SessionClosed);
        self.emit(SessionEvent::Closed { by_peer: false });
        if connected {
            self.emit(SessionEvent::CloseTransport {
                reason: CloseReason::SessionClosed,
            });
        }
    }

    /// Server: asks the client to disconnect and not reconnect for
    /// `retry_after_ms` (load shedding, deploys). The session stays
    /// resumable.
    pub fn go_away(&mut self, now: u64, retry_after_ms: u64) {
        self.tick(now);
        if !matches!(self.state, State::Established | State::Handshaking { .. }) {
            return;
        }
        self.flush();
        let ra = retry_after_ms.min(super::MAX_SAFE_INT);
        self.send_control(proto::BYE, &ByeData { ra, end: false });
        self.protocol_drop(CloseReason::GoAway);
    }

    // -------------------------------------------------------- internals ---

    fn tick(&mut self, now: u64) {
        // Time never goes backwards inside the session.
        self.now = self.now.max(now);
    }

    fn emit(&mut self, e: SessionEvent) {
        self.cm().out.push_back(Output::Event(e));
    }

    fn emit_error(&mut self, e: SessionError) {
        self.emit(SessionEvent::Error(e));
    }

    /// Lowest own id that can still be retransmitted.
    fn lo(&self) -> u64 {
        self.c().buf.front().map_or(self.next_id, |m| m.id)
    }

    fn evictable(&self, id: u64) -> bool {
        match self.state {
            // Sent on this connection: if it is lost, the resume shows it.
            State::Established => id <= self.flushed_upto,
            // The hello or welcome already told the peer our `lo`; evicting
            // past it now would lose the id without a gap on either side.
            State::Handshaking { .. } => false,
            State::Idle | State::Disconnected { .. } | State::Closed => true,
        }
    }

    fn check_data(&self, event: &[u8], data: &[u8]) -> Result<(), SendError> {
        if !data.is_empty() {
            self.format
                .codec()
                .validate_value(data)
                .map_err(SendError::InvalidData)?;
        }
        if event.len() + data.len() + 64 > self.cfg.max_message_bytes {
            return Err(SendError::TooLarge);
        }
        Ok(())
    }

    fn check_app(&self, event: &str, data: &[u8]) -> Result<EventId, SendError> {
        if self.state == State::Closed {
            return Err(SendError::Closed);
        }
        if !is_valid_event_id(event.as_bytes()) {
            return Err(SendError::BadEventId);
        }
        if event.starts_with(PROTOCOL_PREFIX) {
            return Err(SendError::ReservedEvent);
        }
        self.check_data(event.as_bytes(), data)?;
        EventId::new(event).map_err(|_| SendError::BadEventId)
    }

    fn push_reliable(&mut self, event: EventId, data: Bytes, mut meta: Meta) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        meta.id = Some(id);
        let size = self
            .format
            .codec()
            .envelope_len_hint(event.as_bytes(), &data, &meta);
        let at = self.now;
        self.cm().buf.push_back(OutMsg {
            id,
            event,
            data,
            meta,
            at,
            size,
        });
        let c = self.cm();
        c.buf_bytes += size;
        if self.state == State::Established {
            self.enqueue(Queued::Reliable(id), size);
        }
        self.evict();
        id
    }

    fn enqueue_once(&mut self, event: EventId, data: Bytes) {
        let size = self
            .format
            .codec()
            .envelope_len_hint(event.as_bytes(), &data, &Meta::default())
            + 16;
        self.enqueue(Queued::Once { event, data }, size);
    }

    fn enqueue(&mut self, q: Queued, size: usize) {
        let limit = self.cfg.batch_max_bytes.min(self.cfg.max_message_bytes);
        if !self.c().outq.is_empty() && self.c().outq_bytes + size > limit {
            self.flush();
        }
        let c = self.cm();
        c.outq.push(q);
        c.outq_bytes += size;
        if self.c().outq.len() >= self.cfg.max_batch_envelopes.max(1) {
            self.flush();
        } else if self.cfg.batch_window_ms > 0 && self.c().batch_due.is_none() {
            self.cm().batch_due = Some(self.now.saturating_add(self.cfg.batch_window_ms));
        }
    }

    /// End of every public call: without a batch window, everything queued
    /// goes out now (one frame per call, or more if it is large).
    fn finish(&mut self) {
        if self.cfg.batch_window_ms == 0 && !self.c().outq.is_empty() {
            self.flush();
        }
    }

    /// Writes the queued envelopes into one frame (a batch if more than one)
    /// and piggy-backs the current ack on the first envelope.
    fn flush(&mut self) {
        let Some(cold) = self.cold.as_deref_mut() else {
            return;
        };
        cold.batch_due = None;
        if cold.outq.is_empty() {
            return;
        }
        let mut queue = std::mem::take(&mut cold.outq);
        cold.outq_bytes = 0;
        if self.state != State::Established {
            return;
        }
        let codec = self.format.codec();
        let front = cold.buf.front().map_or(self.next_id, |m| m.id);
        let mut items: Vec<(&EventId, &Bytes, &Meta, usize)> = Vec::with_capacity(queue.len());
        let empty = Meta::default();
        let mut total = 0;
        let mut max_id = self.flushed_upto;
        for q in &queue {
            match q {
                Queued::Reliable(id) => {
                    if *id < front {
                        continue; // evicted before it could be sent
                    }
                    if let Some(m) = cold.buf.get((id - front) as usize) {
                        items.push((&m.event, &m.data, &m.meta, m.size));
                        total += m.size;
                        max_id = max_id.max(*id);
                    }
                }
                Queued::Once { event, data } => {
                    let size = event.as_bytes().len() + data.len() + 24;
                    items.push((event, data, &empty, size));
                    total += size;
                }
            }
        }
        let ack = (self.rx > self.ack_sent).then_some(self.rx);
        let mut frame: Vec<u8> = Vec::with_capacity(total + 32);
        let n = items.len();
        if n > 1 {
            codec.write_batch_start(&mut frame, n);
        }
        for (i, (event, data, meta, _)) in items.iter().enumerate() {
            if i > 0 {
                codec.write_batch_separator(&mut frame);
            }
            if i == 0 && ack.is_some() {
                let mut m = (*meta).clone();
                m.ack = ack;
                codec.write_envelope(&mut frame, event.as_bytes(), data, &m);
            } else {
                codec.write_envelope(&mut frame, event.as_bytes(), data, meta);
            }
        }
        if n > 1 {
            codec.write_batch_end(&mut frame);
        }
        drop(items);
        self.flushed_upto = max_id;
        if n == 0 {
            return;
        }
        if ack.is_some() {
            self.ack_sent = self.rx;
            self.ack_due = None;
        }
        cold.out.push_back(Output::Send {
            kind: self.format.kind(),
            payload: Bytes::from(frame),
        });
        // Reuse the queue's allocation.
        queue.clear();
        if cold.outq.is_empty() {
            cold.outq = queue;
        }
    }

    /// Sends a protocol event as its own frame, after anything queued.
    fn send_control<T: serde::Serialize>(&mut self, event: &'static str, data: &T) {
        self.flush();
        let data = match self.format.encode(data) {
            Ok(d) => d,
            Err(_) => return, // our own small structs always encode
        };
        let mut frame = Vec::with_capacity(event.len() + data.len() + 8);
        self.format
            .codec()
            .write_envelope(&mut frame, event.as_bytes(), &data, &Meta::default());
        let kind = self.format.kind();
        self.cm().out.push_back(Output::Send {
            kind,
            payload: Bytes::from(frame),
        });
    }

    /// Drops acknowledged-or-not messages beyond the resume buffer's byte
    /// and age bounds (never the newest one, never one still waiting to be
    /// written on the open connection).
    fn evict(&mut self) {
        while let Some(f) = self.c().buf.front() {
            let c = self.c();
            let over = c.buf_bytes > self.cfg.resume_buffer_bytes && c.buf.len() > 1;
            let old = f.at.saturating_add(self.cfg.resume_buffer_age_ms) <= self.now;
            if !(over || old) || !self.evictable(f.id) {
                break;
            }
            self.pop_buf();
        }
    }

    /// Drops the oldest message of the resume buffer.
    fn pop_buf(&mut self) {
        if let Some(c) = self.cold.as_deref_mut() {
            if let Some(f) = c.buf.pop_front() {
                c.buf_bytes -= f.size;
            }
        }
    }

    fn on_ack(&mut self, a: u64) -> bool {
        if a >= self.next_id {
            self.emit_error(SessionError::BadAck(a));
            return false;
        }
        while let Some(f) = self.c().buf.front() {
            if f.id > a {
                break;
            }
            self.pop_buf();
        }
        true
    }

    /// The connection is gone (reported, or given up on by us).
    fn transport_lost(&mut self) {
        match self.state {
            State::Closed => {}
            State::Disconnected { .. } => {
                // A reconnect attempt failed.
                if self.role == Role::Client && self.reconnect_at().is_none() {
                    self.schedule_reconnect();
                }
            }
            State::Idle | State::Handshaking { .. } | State::Established => {
                if let Some(c) = self.cold.as_deref_mut() {
                    c.outq.clear();
                    c.outq_bytes = 0;
                    c.batch_due = None;
                }
                self.ack_due = None;
                self.state = State::Disconnected { since: self.now };
                if self.role == Role::Client {
                    self.schedule_reconnect();
                }
            }
        }
    }

    fn schedule_reconnect(&mut self) {
        let now = self.now;
        if let Some(c) = self.client.as_deref_mut() {
            let ra = c.retry_after.take();
            let d = c.backoff.next_delay(&mut *c.rng, ra);
            c.reconnect_at = Some(now.saturating_add(d));
        }
    }

    /// We give up on the connection: tell the host to close it.
    fn protocol_drop(&mut self, reason: CloseReason) {
        self.emit(SessionEvent::CloseTransport { reason });
        self.transport_lost();
    }

    /// Ends the session: every pending request fails with `why`.
    fn end(&mut self, why: RequestError) {
        self.fail_pending(|_| true, why);
        self.state = State::Closed;
        if let Some(c) = self.cold.as_deref_mut() {
            c.buf.clear();
            c.buf_bytes = 0;
            c.outq.clear();
            c.outq_bytes = 0;
            c.incoming.clear();
            c.batch_due = None;
        }
        self.ack_due = None;
        self.set_reconnect_at(None);
    }

    fn fail_pending(&mut self, pred: impl Fn(u64) -> bool, why: RequestError) {
        let ids: Vec<u64> = self
            .c()
            .pending
            .keys()
            .copied()
            .filter(|&i| pred(i))
            .collect();
        for id in ids {
            let c = self.cm();
            if let Some(d) = c.pending.remove(&id) {
                c.timers.remove(&(d, id));
            }
            self.emit(SessionEvent::RequestFailed {
                req: id,
                error: why.clone(),
            });
        }
    }

    /// Forgets both reliable streams (the peer no longer knows them).
    fn reset_streams(&mut self) {
        self.fail_pending(|_| true, RequestError::ResumeFailed);
        if let Some(c) = self.cold.as_deref_mut() {
            c.buf.clear();
            c.buf_bytes = 0;
            c.incoming.clear();
        }
        self.next_id = 1;
        self.rx = 0;
        self.ack_sent = 0;
    }

    /// Applies the peer's view after a handshake on a resumed session:
    /// `peer_rx` acks our messages, `peer_lo` may reveal a hole in theirs.
    /// Returns the hole in our stream the peer will never get, if any.
    fn resume_streams(&mut self, peer_rx: u64, peer_lo: u64) -> Option<[u64; 2]> {
        if peer_rx >= self.next_id {
            self.emit_error(SessionError::BadAck(peer_rx));
        } else {
            self.on_ack(peer_rx);
        }
        let peer_rx = peer_rx.min(self.next_id - 1);
        let my_lo = self.lo();
        let mut lost_out = None;
        if my_lo > peer_rx + 1 {
            // Our messages peer_rx+1 .. my_lo-1 were evicted: requests among
            // them can never be answered.
            lost_out = Some([peer_rx + 1, my_lo - 1]);
            self.fail_pending(|i| i > peer_rx && i < my_lo, RequestError::ResumeFailed);
        }
        if peer_lo > self.rx + 1 {
            let (from, to) = (self.rx + 1, peer_lo - 1);
            self.rx = to;
            self.emit(SessionEvent::Gap { from, to });
            // Replies to requests the peer already had may be in the hole.
            self.fail_pending(|i| i <= peer_rx, RequestError::ResumeFailed);
        }
        lost_out
    }

    fn established(&mut self, resumed: bool) {
        self.state = State::Established;
        self.ever_established = true;
        self.ack_sent = self.rx;
        self.ack_due = None;
        if let Some(c) = self.client.as_deref_mut() {
            c.backoff.reset();
            c.retry_after = None;
        }
        let session_id = self.sid.as_deref().unwrap_or_default().to_owned();
        self.emit(SessionEvent::Established {
            session_id,
            resumed,
        });
    }

    fn retransmit_all(&mut self) {
        let items: Vec<(u64, usize)> = self.c().buf.iter().map(|m| (m.id, m.size)).collect();
        for (id, size) in items {
            self.enqueue(Queued::Reliable(id), size);
        }
    }

    fn on_hello(&mut self, env: &Envelope, fmt: Format) {
        let h: HelloData = match fmt.decode(&env.data) {
            Ok(h) => h,
            Err(_) => {
                self.emit_error(SessionError::Envelope(EnvelopeError::BadProtocolData(
                    "hello",
                )));
                return self.protocol_drop(CloseReason::ProtocolError);
            }
        };
        if let Err(e) = h.check() {
            self.emit_error(SessionError::Envelope(e));
            return self.protocol_drop(CloseReason::ProtocolError);
        }
        if h.v != PROTOCOL_VERSION {
            self.emit_error(SessionError::UnsupportedVersion(h.v));
            return self.protocol_drop(CloseReason::ProtocolError);
        }
        self.format = fmt;
        let own = self.sid.as_deref().unwrap_or_default().to_owned();
        let (st, resumed, lost) = if self.ever_established && h.sid.as_deref() == Some(&own) {
            let lost = self.resume_streams(h.rx, h.lo);
            ("resumed", true, lost)
        } else if h.sid.is_none() && !self.ever_established {
            let lost = self.resume_streams(h.rx, h.lo);
            ("new", false, lost)
        } else {
            if self.ever_established {
                self.reset_streams();
            }
            ("reset", false, None)
        };
        let welcome = WelcomeData {
            v: PROTOCOL_VERSION,
            sid: own,
            st: st.to_owned(),
            rx: self.rx,
            lo: self.lo(),
            lost,
        };
        self.state = State::Established;
        self.send_control(proto::WELCOME, &welcome);
        self.established(resumed);
        self.retransmit_all();
    }

    fn on_welcome(&mut self, env: &Envelope) {
        let w: WelcomeData = match self.format.decode(&env.data) {
            Ok(w) => w,
            Err(_) => {
                self.emit_error(SessionError::Envelope(EnvelopeError::BadProtocolData(
                    "welcome",
                )));
                return self.protocol_drop(CloseReason::ProtocolError);
            }
        };
        if let Err(e) = w.check() {
            self.emit_error(SessionError::Envelope(e));
            return self.protocol_drop(CloseReason::ProtocolError);
        }
        if w.v != PROTOCOL_VERSION {
            self.emit_error(SessionError::UnsupportedVersion(w.v));
            return self.protocol_drop(CloseReason::ProtocolError);
        }
        let resumed = self.sid.as_deref() == Some(w.sid.as_str()) && w.st == "resumed";
        if !resumed && self.sid.is_some() {
            let unconfirmed = match (self.c().buf.front(), self.c().buf.back()) {
                (Some(a), Some(b)) => Some((a.id, b.id)),
                _ => None,
            };
            self.reset_streams();
            self.emit(SessionEvent::Reset { unconfirmed });
        }
        // Also for a new session: the server may have evicted pushes it
        // queued before this first welcome.
        self.resume_streams(w.rx, w.lo);
        self.sid = Some(w.sid.into_boxed_str());
        self.established(resumed);
        self.retransmit_all();
    }

    fn on_bye(&mut self, env: &Envelope) {
        let b: ByeData = self.format.decode(&env.data).unwrap_or_default();
        if b.end {
            self.end(RequestError::SessionClosed);
            self.emit(SessionEvent::Closed { by_peer: true });
            self.emit(SessionEvent::CloseTransport {
                reason: CloseReason::SessionClosed,
            });
        } else {
            if b.ra > 0 {
                if let Some(c) = self.client.as_deref_mut() {
                    c.retry_after = Some(b.ra);
                }
            }
            self.protocol_drop(CloseReason::GoAway);
        }
    }

    /// Handles one envelope; returns whether to go on with the rest of the
    /// frame.
    fn on_envelope(&mut self, env: Envelope, fmt: Format) -> bool {
        let ev = env.event.as_bytes();
        if ev == proto::BYE.as_bytes() {
            self.on_bye(&env);
            return false;
        }
        match self.state {
            State::Established => {}
            State::Handshaking { .. } => {
                let expected = match self.role {
                    Role::Client => proto::WELCOME,
                    Role::Server => proto::HELLO,
                };
                if ev != expected.as_bytes() {
                    self.emit_error(SessionError::UnexpectedHandshake);
                    self.protocol_drop(CloseReason::ProtocolError);
                    return false;
                }
                match self.role {
                    Role::Client => self.on_welcome(&env),
                    Role::Server => self.on_hello(&env, fmt),
                }
                return self.state == State::Established;
            }
            _ => return false,
        }
        if let Some(a) = env.meta.ack {
            self.on_ack(a);
        }
        let is_reply = ev == proto::REPLY.as_bytes() || ev == proto::RERR.as_bytes();
        if env.event.is_protocol() && !is_reply {
            if ev == proto::PING.as_bytes() {
                self.enqueue_once(EventId::from_static(proto::PONG), Bytes::new());
                return true;
            }
            if ev == proto::PONG.as_bytes() || ev == proto::ACK.as_bytes() {
                return true;
            }
            if ev == proto::HELLO.as_bytes() || ev == proto::WELCOME.as_bytes() {
                self.emit_error(SessionError::UnexpectedHandshake);
                return true;
            }
            // Unknown protocol events still take their place in the reliable
            // stream, below.
        }
        if let Some(id) = env.meta.id {
            if id <= self.rx {
                return true; // duplicate: already delivered
            }
            if id != self.rx + 1 {
                self.emit_error(SessionError::OutOfOrder {
                    expected: self.rx + 1,
                    got: id,
                });
                self.protocol_drop(CloseReason::ProtocolError);
                return false;
            }
            self.rx = id;
            if self.rx - self.ack_sent >= self.cfg.ack_every.max(1) {
                self.ack_due = Some(self.now);
            } else if self.ack_due.is_none() {
                self.ack_due = Some(self.now.saturating_add(self.cfg.ack_delay_ms));
            }
        }
        if is_reply {
            let (Some(_), Some(re)) = (env.meta.id, env.meta.re) else {
                self.emit_error(SessionError::BadRequest);
                return true;
            };
            if let Some(d) = self.cm().pending.remove(&re) {
                self.cm().timers.remove(&(d, re));
                let e = if ev == proto::REPLY.as_bytes() {
                    SessionEvent::Reply {
                        req: re,
                        data: env.data,
                    }
                } else {
                    SessionEvent::RequestFailed {
                        req: re,
                        error: RequestError::Remote(env.data),
                    }
                };
                self.emit(e);
            }
            // A reply to a request that already ended is dropped.
            return true;
        }
        if env.event.is_protocol() {
            self.emit_error(SessionError::UnknownProtocolEvent(env.event));
            return true;
        }
        if let Some(rq) = env.meta.rq {
            let Some(id) = env.meta.id.filter(|_| rq > 0) else {
                self.emit_error(SessionError::BadRequest);
                return true;
            };
            let rq = rq.min(self.cfg.max_request_timeout_ms);
            if self.c().incoming.len() >= self.cfg.max_incoming_requests {
                let now = self.now;
                self.cm().incoming.retain(|_, d| *d > now);
            }
            if self.c().incoming.len() >= self.cfg.max_incoming_requests {
                let data = self
                    .format
                    .encode(&RerrData { code: "busy" })
                    .unwrap_or_default();
                let meta = Meta {
                    re: Some(id),
                    ..Meta::default()
                };
                self.push_reliable(EventId::from_static(proto::RERR), data, meta);
                return true;
            }
            let until = self.now.saturating_add(rq);
            self.cm().incoming.insert(id, until);
            self.emit(SessionEvent::Request {
                req: id,
                event: env.event,
                data: env.data,
                timeout_ms: rq,
                idempotency_key: env.meta.ik,
            });
            return true;
        }
        self.emit(SessionEvent::Message {
            event: env.event,
            data: env.data,
            id: env.meta.id,
        });
        true
    }
}
