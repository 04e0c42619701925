//! The Hub: many WebSocket connections and sessions in one sans-IO object.
//!
//! Like quinn-proto's `Endpoint`, a [`Hub`] owns no sockets, threads or
//! clocks. The host gives it connection ids, bytes and the time; it gives
//! back bytes to write per connection, connections to close, application
//! events, messages to publish to other nodes, and its next deadline:
//!
//! ```text
//! on accept():            id = hub.new_connection(now)   (Err: write its 503, close)
//! on bytes from conn:     hub.handle_input(id, now, &bytes)
//! on EOF / socket error:  hub.handle_eof(id, now)
//! after writing n bytes:  hub.handle_written(id, n)
//! at the deadline:        hub.handle_timeout(now)
//! from the pub/sub bus:   hub.handle_remote(now, &bytes)
//! then drain:             while let Some(o) = hub.poll_output() { match o {
//!                             Transmit { conn, bytes } => write bytes to conn,
//!                             Close { conn }           => close conn after its writes,
//!                             Event(e)                 => the application acts,
//!                             Publish / Subscribe / Unsubscribe => the bus } }
//!                         and sleep until hub.poll_timeout().
//! ```
//!
//! # The model
//!
//! * A **connection** ([`ConnId`]) is one WebSocket: an upgrade request is
//!   surfaced as [`HubEvent::Upgrade`]; the host's auth hook answers with
//!   [`Hub::accept`] naming the **user** id, or [`Hub::reject`].
//! * A **client** ([`ClientId`]) is one evsock session (one browser tab). It
//!   outlives connections: a reconnect within the resume window continues
//!   it, with everything it missed replayed exactly once. A user may have
//!   many clients (Sente's connected-users model).
//! * A user is **online** while one of its clients is connected; when the
//!   last one drops, [`HubEvent::UserOffline`] follows only after
//!   [`Config::offline_grace_ms`] without a reconnect, so page reloads and
//!   network blips do not flap presence.
//! * **Rooms** hold clients; [`Hub::join_room`] asks the room policy
//!   ([`Hub::set_room_policy`]) first. A user is **present** in a room while
//!   it is online and one of its clients is a member, on any node; changes
//!   come as [`HubEvent::Presence`] and [`Hub::room_users`] lists them.
//! * Sending: [`Hub::send_to_client`], [`Hub::send_to_user`] (all tabs),
//!   [`Hub::broadcast_room`], [`Hub::broadcast_all`], each
//!   [`Delivery::Reliable`] (numbered, acknowledged, replayed on resume),
//!   [`Delivery::Volatile`] (at most once, only to open connections) or
//!   [`Delivery::Latest`] (volatile, and a queued older message with the same
//!   key is replaced).
//!
//! # Encode once, fan out N
//!
//! Application data is given once as encoded JSON and validated once. What
//! is shared between recipients, honestly:
//!
//! * **Volatile / Latest**: the envelope is written and framed **once per
//!   wire format**; every recipient's queue holds a reference to the same
//!   `Bytes`. Per recipient the cost is a queue push (and a memcpy when
//!   several small frames are coalesced into one write).
//! * **Reliable**: the envelope must differ per recipient (each session
//!   numbers its own stream: `{"id":N}`, maybe a piggy-backed ack), so the
//!   session writes a small envelope per recipient; the **data element is
//!   shared** (`Bytes`) by every recipient's resume buffer, which is where it
//!   lives for the resume window. Per recipient: the session validates the
//!   data (one pass), writes the envelope (one copy) and the hub adds the
//!   WebSocket header (one more copy for frames under 8 KiB; larger ones are
//!   queued as header + shared payload).
//! * MessagePack clients get the data transcoded once per broadcast.
//!
//! # Timers
//!
//! Every connection, client and user with a deadline has one entry in a
//! binary heap with lazy invalidation (see `timers.rs`): `poll_timeout` is
//! O(1), every reschedule O(log n), and a deadline that moves later (a ping
//! timer pushed back by traffic) costs nothing until it comes due. WebSocket
//! level pings are off by default: browsers cannot answer them from script,
//! and the session's `evs/ping` does the same job once, for both layers.
//!
//! # Memory
//!
//! An idle client (an upgraded connection, its session and its user) costs
//! about 640 bytes of heap in the default configuration: 611 MiB for
//! 1,000,000 idle clients in one hub (`cargo run --release -p evsock
//! --example hub-memory -- 1000000`). The slab entries hold a connection
//! that keeps no buffers while idle (88 bytes), a session that keeps
//! nothing but its id while nothing is in flight (144 bytes; the session
//! configuration is shared), the hub's own bookkeeping, a user entry with
//! its first client inline, and about two timer-heap entries (the
//! connection's expired handshake deadline is removed lazily, when it
//! comes due). Session ids name the client's slot, so no map from ids to
//! clients is kept. Busy connections and sessions keep their buffers and
//! queues while traffic flows (see [`ws::Connection`] and
//! [`Session::shrink_idle`](crate::session::Session::shrink_idle)).
//!
//! # Slow consumers
//!
//! Each connection has a send window ([`Config::send_window_bytes`]): bytes
//! handed to the host and not yet reported written with
//! [`Hub::handle_written`]. Beyond it frames wait in the hub's per-connection
//! queue, bounded by [`Config::max_queued_bytes`]. When it overflows the
//! [`SlowPolicy`] acts: volatile frames may be dropped (oldest first) or
//! replaced by key; frames of the session (which carry reliable messages)
//! are never silently dropped. If they alone overflow the queue, the
//! connection is cut with close code [`CLOSE_SLOW_CONSUMER`]; the session
//! stays resumable, so the client reconnects and gets the messages replayed
//! from the resume buffer, or, if that buffer overflowed meanwhile, learns
//! the exact range it lost as a gap (the protocol's `lo`/`lost`), never
//! silently.
//!
//! # Abuse
//!
//! * Admission: [`Config::max_connections`] and a global token bucket for
//!   new connections ([`Config::admission_rate`]); refused connections get
//!   an HTTP 503 with `Retry-After` ([`Refused`]). At most
//!   [`Config::max_connections_per_user`] connections per user (429).
//! * Each connection has a token bucket of incoming messages
//!   ([`Config::message_rate`]); a client that exceeds it is closed with
//!   [`CLOSE_RATE_LIMITED`] (its session stays resumable, and its reconnects
//!   go through admission again).
//! * Sessions are bounded ([`Config::max_sessions`]); beyond it a hello is
//!   answered with the protocol's `evs/bye` go-away and close code 1013.
//!
//! # Multi-node
//!
//! With [`Config::node_id`] set, the hub also publishes what other nodes must
//! see ([`HubOutput::Publish`]) and subscribes to what it needs
//! ([`HubOutput::Subscribe`]). The host wires these to a pub/sub bus (Redis
//! `SUBSCRIBE`/`PUBLISH` in the example host) and hands every message that
//! arrives to [`Hub::handle_remote`]. Channels (`P` is
//! [`Config::channel_prefix`], default `evsock`):
//!
//! | channel          | subscribed while                       | carries |
//! |------------------|----------------------------------------|---------|
//! | `P:all`          | always (from [`Hub::new`])             | [`Hub::broadcast_all`], node heartbeats |
//! | `P:room:ROOM`    | the room has a local member            | [`Hub::broadcast_room`], presence deltas, sync requests, snapshots |
//! | `P:user:USER`    | the user has a connection or client here | [`Hub::send_to_user`] |
//!
//! Payloads are the small binary format of `cluster.rs` (`"EV"`, version 1,
//! kind, sending node, fields; application data carried verbatim as JSON).
//! Every message names its node, so the hub drops its own echoes; a room
//! broadcast is delivered locally by the node that sent it and by every
//! other node to its own members, so each member gets it exactly once.
//! Reliable messages stay reliable end to end: each node hands them to its
//! own clients' sessions (numbered, replayed on resume). The bus itself is
//! at-most-once (Redis pub/sub), so a node that is cut from it misses what
//! was published meanwhile.
//!
//! Presence is shared the same way: a node publishes a delta when a user
//! becomes present or absent *on that node*; a node that starts following a
//! room (or hears from a node it did not know) asks for snapshots; every
//! node publishes a heartbeat each [`Config::heartbeat_ms`], and the
//! presence of a node not heard from for three periods is retired.
//! [`HubEvent::Presence`] reports changes of the cluster-wide state;
//! [`HubEvent::UserOnline`] / [`HubEvent::UserOffline`] are about this
//! node's clients only.

mod bucket;
mod cluster;
mod core;
mod outq;
mod slab;
mod timers;

pub use self::cluster::{ClusterError, MAX_NODE_ID_LEN};
pub use self::core::{Hub, Stats};

use crate::session::{self, EventId, Format, SendError, SessionError};
use crate::ws::{self, CloseCode, Request};
use bytes::Bytes;
use std::fmt;
use std::sync::Arc;

/// Close code for a connection whose reader fell too far behind.
pub const CLOSE_SLOW_CONSUMER: CloseCode = CloseCode(4013);
/// Close code for a connection that sent messages faster than allowed.
pub const CLOSE_RATE_LIMITED: CloseCode = CloseCode(4029);
/// Close code for a connection replaced by a newer one resuming the same
/// session.
pub const CLOSE_REPLACED: CloseCode = CloseCode(4009);

/// One WebSocket connection in a hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

/// One client (session, e.g. a browser tab) in a hub; it outlives
/// connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub(crate) u64);

impl ConnId {
    /// The id as a number (for the host's maps).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl ClientId {
    /// The id as a number (for the host's maps).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}.{}", self.0 & 0xffff_ffff, self.0 >> 32)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client#{}.{}", self.0 & 0xffff_ffff, self.0 >> 32)
    }
}

/// How a message is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Numbered and acknowledged; buffered while a client is away and
    /// replayed exactly once when it resumes.
    Reliable,
    /// At most once, only to clients connected now; may be dropped for a
    /// slow consumer.
    Volatile,
    /// Like `Volatile`, and a message still queued for a client with the same
    /// key is replaced by this one (positions, counters, typing indicators).
    Latest(u64),
}

/// What a slow consumer's overflowing queue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowPolicy {
    /// Cut the connection at once (close code [`CLOSE_SLOW_CONSUMER`]).
    Disconnect,
    /// Drop the oldest volatile frames; cut the connection only if the
    /// session's own frames overflow the queue.
    DropOldest,
}

/// Tunables of a [`Hub`]. Durations are milliseconds.
#[derive(Clone, Debug)]
pub struct Config {
    /// WebSocket settings of every connection. The default turns WebSocket
    /// pings off (sessions ping), keeps no idle buffers (`buffer_retain` 0)
    /// and caps messages at the session's `max_message_bytes`.
    pub ws: ws::Config,
    /// Session settings of every client. `batch_window_ms` must stay 0 for
    /// volatile fan-out to share frames (otherwise it falls back to one
    /// session send per recipient).
    pub session: session::Config,
    /// Most connections at once; beyond it [`Hub::new_connection`] refuses.
    pub max_connections: usize,
    /// New connections per second (token bucket; 0: unlimited).
    pub admission_rate: u32,
    /// Burst of new connections above the rate.
    pub admission_burst: u32,
    /// Retry-After (seconds) sent with a refused connection.
    pub retry_after_secs: u32,
    /// Most live connections of one user (429 beyond it).
    pub max_connections_per_user: usize,
    /// Most sessions (connected or waiting for a resume).
    pub max_sessions: usize,
    /// Incoming messages per second per connection (0: unlimited).
    pub message_rate: u32,
    /// Burst of incoming messages above the rate.
    pub message_burst: u32,
    /// Bytes handed to the host and not yet reported written, per
    /// connection, before the hub holds further frames back.
    pub send_window_bytes: usize,
    /// Bytes a connection's queue may hold beyond the window.
    pub max_queued_bytes: usize,
    /// What a full queue does.
    pub slow_policy: SlowPolicy,
    /// How long a user stays online after its last client dropped.
    pub offline_grace_ms: u64,
    /// Most rooms one client may be in.
    pub max_rooms_per_client: usize,
    /// This node's id in a cluster (1 to [`MAX_NODE_ID_LEN`] bytes); `None`
    /// for a single node (nothing is published).
    pub node_id: Option<String>,
    /// Prefix of the pub/sub channel names.
    pub channel_prefix: String,
    /// How often a node announces itself; a node not heard from for three
    /// periods has its presence retired.
    pub heartbeat_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        let session = session::Config::default();
        let ws = ws::Config {
            ping_interval_ms: None,
            pong_timeout_ms: None,
            idle_timeout_ms: None,
            max_frame_size: session.max_message_bytes,
            max_message_size: session.max_message_bytes,
            max_fragments: 1024,
            buffer_retain: 0,
            ..ws::Config::default()
        };
        Config {
            ws,
            session,
            max_connections: 1_000_000,
            admission_rate: 2_000,
            admission_burst: 10_000,
            retry_after_secs: 5,
            max_connections_per_user: 32,
            max_sessions: 2_000_000,
            message_rate: 100,
            message_burst: 200,
            send_window_bytes: 256 << 10,
            max_queued_bytes: 1 << 20,
            slow_policy: SlowPolicy::DropOldest,
            offline_grace_ms: 5_000,
            max_rooms_per_client: 64,
            node_id: None,
            channel_prefix: "evsock".to_owned(),
            heartbeat_ms: 5_000,
        }
    }
}

/// A connection the hub would not admit. Write `response` (an HTTP error
/// with `Retry-After`) and close the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The HTTP status (503).
    pub status: u16,
    /// The whole HTTP response to write.
    pub response: Bytes,
}

/// Something the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubOutput {
    /// Write these bytes to the connection, in order; report them with
    /// [`Hub::handle_written`] once written.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bytes: Bytes,
    },
    /// Close the connection once the bytes already given for it are
    /// written. The id is no longer valid.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Something for the application.
    Event(HubEvent),
    /// Publish these bytes on the pub/sub channel.
    Publish {
        /// Channel name.
        channel: String,
        /// Message, for [`Hub::handle_remote`] on the other nodes.
        bytes: Bytes,
    },
    /// Subscribe to the channel and hand its messages to
    /// [`Hub::handle_remote`].
    Subscribe {
        /// Channel name.
        channel: String,
    },
    /// Stop the subscription.
    Unsubscribe {
        /// Channel name.
        channel: String,
    },
}

/// Something that happened, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubEvent {
    /// A WebSocket upgrade request: the auth hook. Answer with
    /// [`Hub::accept`] (naming the user) or [`Hub::reject`].
    Upgrade {
        /// The connection.
        conn: ConnId,
        /// The request (path, headers, origin).
        request: Box<Request>,
    },
    /// A client's session is established on a connection.
    ClientConnected {
        /// The client.
        client: ClientId,
        /// The connection it is established on.
        conn: ConnId,
        /// Its user.
        user: Arc<str>,
        /// Whether an earlier session was continued (`false`: a fresh one).
        resumed: bool,
    },
    /// A client lost its connection; it may resume within the window.
    ClientDisconnected {
        /// The client.
        client: ClientId,
        /// Its user.
        user: Arc<str>,
    },
    /// A client's session ended for good (closed, or expired unresumed). Its
    /// rooms were left.
    ClientGone {
        /// The client.
        client: ClientId,
        /// Its user.
        user: Arc<str>,
        /// `true` if the resume window passed, `false` if it was closed.
        expired: bool,
    },
    /// A user's first client connected.
    UserOnline {
        /// The user.
        user: Arc<str>,
    },
    /// A user has had no connected client for the grace period.
    UserOffline {
        /// The user.
        user: Arc<str>,
    },
    /// A user became present in a room (online with a member client, on
    /// this or another node) or stopped being present anywhere.
    Presence {
        /// The room.
        room: Arc<str>,
        /// The user.
        user: Arc<str>,
        /// Present now?
        online: bool,
    },
    /// A fire-and-forget or reliable event from a client.
    Message {
        /// The client.
        client: ClientId,
        /// Its user.
        user: Arc<str>,
        /// Event id.
        event: EventId,
        /// Data element, encoded in `format`.
        data: Bytes,
        /// The client's wire format.
        format: Format,
    },
    /// A request from a client: answer with [`Hub::reply`] or
    /// [`Hub::reply_error`].
    Request {
        /// The client.
        client: ClientId,
        /// Its user.
        user: Arc<str>,
        /// Request id, for the reply.
        req: u64,
        /// Event id.
        event: EventId,
        /// Data element, encoded in `format`.
        data: Bytes,
        /// The client's wire format.
        format: Format,
        /// How long the client waits.
        timeout_ms: u64,
        /// Its idempotency key, if any.
        idempotency_key: Option<Box<str>>,
    },
    /// Incoming reliable ids from the client that were lost for good.
    Gap {
        /// The client.
        client: ClientId,
        /// First lost id.
        from: u64,
        /// Last lost id.
        to: u64,
    },
    /// A slow consumer: volatile frames were dropped, or the connection was
    /// cut (close code [`CLOSE_SLOW_CONSUMER`]).
    SlowConsumer {
        /// The connection.
        conn: ConnId,
        /// Its client, if bound.
        client: Option<ClientId>,
        /// Volatile frames dropped.
        dropped: usize,
        /// Whether the connection was cut.
        disconnected: bool,
    },
    /// A connection exceeded its message rate and was closed
    /// ([`CLOSE_RATE_LIMITED`]).
    RateLimited {
        /// The connection.
        conn: ConnId,
        /// Its user, if accepted.
        user: Option<Arc<str>>,
    },
    /// A bad input from a client was ignored (or closed its connection).
    ProtocolError {
        /// The connection, if any.
        conn: Option<ConnId>,
        /// The client, if any.
        client: Option<ClientId>,
        /// What was wrong.
        error: HubProtocolError,
    },
}

/// A client's protocol error, as reported in [`HubEvent::ProtocolError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubProtocolError {
    /// The first message was not a valid `evs/hello` (closed, 1002).
    BadHello(session::EnvelopeError),
    /// The session ignored a bad input.
    Session(SessionError),
    /// The WebSocket failed.
    Ws(ws::Error),
}

/// Why a hub call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubError {
    /// No such connection (never existed, or already closed).
    UnknownConnection,
    /// No such client (never existed, or its session ended).
    UnknownClient,
    /// The call does not fit the connection's state (e.g. `accept` twice).
    InvalidState(&'static str),
    /// User ids are 1 to 128 bytes of UTF-8 without control characters.
    BadUserId,
    /// Room names are 1 to 128 bytes of printable ASCII without spaces.
    BadRoom,
    /// The room policy refused the join.
    Forbidden,
    /// The client is in [`Config::max_rooms_per_client`] rooms already.
    TooManyRooms,
    /// The user has [`Config::max_connections_per_user`] connections; the
    /// connection was rejected with 429.
    TooManyConnections,
    /// The data is not one well-formed JSON value.
    InvalidData,
    /// The session refused the send.
    Send(SendError),
    /// The WebSocket refused the call.
    Ws(ws::Error),
    /// A message from another node was malformed.
    Cluster(ClusterError),
    /// The [`Config`] is not usable (what is wrong).
    BadConfig(&'static str),
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::UnknownConnection => f.write_str("unknown connection"),
            HubError::UnknownClient => f.write_str("unknown client"),
            HubError::InvalidState(s) => f.write_str(s),
            HubError::BadUserId => f.write_str("invalid user id"),
            HubError::BadRoom => f.write_str("invalid room name"),
            HubError::Forbidden => f.write_str("not allowed to join this room"),
            HubError::TooManyRooms => f.write_str("too many rooms"),
            HubError::TooManyConnections => f.write_str("too many connections for this user"),
            HubError::InvalidData => f.write_str("data is not one well-formed JSON value"),
            HubError::Send(e) => write!(f, "{e}"),
            HubError::Ws(e) => write!(f, "{e}"),
            HubError::Cluster(e) => write!(f, "{e}"),
            HubError::BadConfig(s) => write!(f, "bad hub configuration: {s}"),
        }
    }
}

impl std::error::Error for HubError {}

impl From<ClusterError> for HubError {
    fn from(e: ClusterError) -> Self {
        HubError::Cluster(e)
    }
}

/// Whether `s` is a valid user id: 1 to 128 bytes, no control characters.
pub fn is_valid_user_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control)
}

/// Whether `s` is a valid room name: 1 to 128 bytes of printable ASCII
/// without spaces.
pub fn is_valid_room(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|c| (0x21..=0x7e).contains(&c))
}
