//! `evsock_hub`: many WebSocket connections, sessions, users and rooms in
//! one sans-IO object (the engine's `evsock::hub::Hub`).

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};

use bytes::Bytes;
use evsock::hub::{
    ClientId, ConnId, Delivery, Hub, HubEvent, HubOutput, HubProtocolError, Refused,
};
use evsock::ws::{Accept, CloseCode, Reject, Request};

use crate::config::{config_ref, evsock_config};
use crate::conn::evsock_header;
use crate::event::data_ptr;
use crate::handle::{free_handle, with_handle, Handle};
use crate::rng::{evsock_fill_fn, rng_from};
use crate::session::{evsock_format, format_c};
use crate::status::{c_string, evsock_status, guard, Fail, FfiResult};
use crate::util::{bytes_arg, c_str_arg, headers_arg, is_token, opt_c_str_arg};

use evsock_status::{EVSOCK_EMPTY, EVSOCK_ERR_REFUSED, EVSOCK_OK};

/// An opaque hub: many server connections, their sessions ("clients", one
/// per browser tab), users, rooms and presence, driven by connection ids,
/// bytes and the time. Create with `evsock_hub_new`, free with
/// `evsock_hub_free`. Same threading rules as `evsock_conn` (one call at a
/// time; a concurrent or re-entrant call gets `EVSOCK_ERR_BUSY`).
///
/// Ids: connections and clients are named by `uint64_t` ids that the hub
/// hands out (`evsock_hub_new_connection`, the CLIENT_CONNECTED event).
/// A connection id dies with its `EVSOCK_HUB_OUTPUT_CLOSE`, a client id with
/// its CLIENT_GONE event; afterwards calls naming them fail with
/// `EVSOCK_ERR_UNKNOWN_CONNECTION` / `EVSOCK_ERR_UNKNOWN_CLIENT`, and input
/// for a dead connection is ignored.
pub struct evsock_hub {
    _opaque: [u8; 0],
}

const HUB_MAGIC: u64 = 0x6576_736f_636b_4842; // "evsockHB"

/// The object behind an `evsock_hub *`.
struct HubInner {
    hub: Hub,
    /// The live ids C may name. The engine's id types cannot be built from
    /// a number outside the engine, so the binding keeps the ones it handed
    /// out (this also lets it tell a stale id from a live one).
    conns: HashMap<u64, ConnId>,
    clients: HashMap<u64, ClientId>,
    /// What the last `evsock_hub_poll_output` pointed C at.
    held: Option<HeldHubOutput>,
    /// The response of the last refused `evsock_hub_new_connection`.
    refused: Option<Bytes>,
    /// Strings returned by the last string query.
    query: Vec<CString>,
    query_ptrs: Vec<*const c_char>,
}

// SAFETY: `query_ptrs` only points into `query`, owned by the same object;
// the handle's busy flag keeps calls (and so every use of the pointers) to
// one thread at a time.
unsafe impl Send for HubInner {}

/// An output kept alive for the pointers C holds into it.
struct HeldHubOutput {
    _payload: Bytes,
    _strings: Vec<CString>,
    /// UPGRADE: the request, for `evsock_hub_request_header`.
    request: Option<(u64, Box<Request>)>,
    /// UPGRADE: the offered subprotocols, for
    /// `evsock_hub_request_subprotocol`.
    offered: Vec<CString>,
}

/// What `evsock_hub_poll_output` returned.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_hub_output_kind {
    /// Nothing (the poll returned `EVSOCK_EMPTY`).
    EVSOCK_HUB_OUTPUT_NONE = 0,
    /// Write `data`/`len` to connection `conn`, in order, then report the
    /// bytes written with `evsock_hub_handle_written`.
    EVSOCK_HUB_OUTPUT_TRANSMIT = 1,
    /// Close connection `conn` once the bytes already given for it are
    /// written. The id is dead from now on.
    EVSOCK_HUB_OUTPUT_CLOSE = 2,
    /// Handle the event `event`.
    EVSOCK_HUB_OUTPUT_EVENT = 3,
    /// Publish `data`/`len` on the pub/sub channel `channel` (multi-node
    /// hubs only).
    EVSOCK_HUB_OUTPUT_PUBLISH = 4,
    /// Subscribe to `channel` and hand every message on it to
    /// `evsock_hub_handle_remote`.
    EVSOCK_HUB_OUTPUT_SUBSCRIBE = 5,
    /// Stop the subscription to `channel`.
    EVSOCK_HUB_OUTPUT_UNSUBSCRIBE = 6,
}

/// Hub events; the fields of `evsock_hub_output` each one uses are listed
/// with it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_hub_event_type {
    /// Not an event.
    EVSOCK_HUB_EVENT_NONE = 0,
    /// A WebSocket upgrade request on `conn`: the auth hook. Answer with
    /// `evsock_hub_accept` (naming the user) or `evsock_hub_reject`.
    /// `data`/`len`: the request path (for example `/chat?room=1`);
    /// `origin`: the Origin header or NULL; `subprotocol`: the one the
    /// config would select, or NULL. Headers through
    /// `evsock_hub_request_header`, offered subprotocols through
    /// `evsock_hub_request_subprotocol`.
    EVSOCK_HUB_EVENT_UPGRADE = 1,
    /// A client's session is established on connection `conn`: `client`,
    /// `user`, `resumed` (an earlier session continued).
    EVSOCK_HUB_EVENT_CLIENT_CONNECTED = 2,
    /// A client lost its connection; it may resume within the window:
    /// `client`, `user`.
    EVSOCK_HUB_EVENT_CLIENT_DISCONNECTED = 3,
    /// A client's session ended for good (its rooms were left): `client`,
    /// `user`, `expired` (the resume window passed; false: it was closed).
    /// The client id is dead from now on.
    EVSOCK_HUB_EVENT_CLIENT_GONE = 4,
    /// A user's first client connected: `user`.
    EVSOCK_HUB_EVENT_USER_ONLINE = 5,
    /// A user has had no connected client for the offline grace: `user`.
    EVSOCK_HUB_EVENT_USER_OFFLINE = 6,
    /// A user became present in a room, or stopped being present anywhere
    /// (cluster-wide): `room`, `user`, `online`.
    EVSOCK_HUB_EVENT_PRESENCE = 7,
    /// A fire-and-forget or reliable event from a client: `client`, `user`,
    /// `name` (the event id), `data`/`len` in `format`.
    EVSOCK_HUB_EVENT_MESSAGE = 8,
    /// A request from a client: `client`, `user`, `req` (pass it to
    /// `evsock_hub_reply`), `name`, `data`/`len` in `format`, `timeout_ms`,
    /// `idempotency_key` (or NULL).
    EVSOCK_HUB_EVENT_REQUEST = 9,
    /// Incoming reliable ids `from`..`to` of `client` were lost for good.
    EVSOCK_HUB_EVENT_GAP = 10,
    /// A slow consumer on `conn` (client `client` when `has_client`):
    /// `dropped` volatile frames were dropped, or the connection was cut
    /// (`disconnected`, close code 4013).
    EVSOCK_HUB_EVENT_SLOW_CONSUMER = 11,
    /// Connection `conn` exceeded its message rate and was closed (4029):
    /// `user` (NULL if it was not accepted yet).
    EVSOCK_HUB_EVENT_RATE_LIMITED = 12,
    /// A bad input from a client was ignored or closed its connection:
    /// `conn` when `has_conn`, `client` when `has_client`, `code` ("bad_hello",
    /// a session error code such as "envelope", or a WebSocket error kind
    /// such as "protocol") and `message`.
    EVSOCK_HUB_EVENT_PROTOCOL_ERROR = 13,
}

/// One output of a hub, filled in by `evsock_hub_poll_output`. Fields that
/// do not apply are 0 / NULL / false.
///
/// Every pointer in it borrows from the hub and stays valid until the next
/// `evsock_hub_poll_output` on that hub or its free, whichever comes first;
/// other calls (input, sends, accept) do not invalidate it. Copy what you
/// need longer, for example the unwritten rest of a partial write. Strings
/// are NUL-terminated; `data` is not (and is never NULL).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evsock_hub_output {
    /// What to do.
    pub kind: evsock_hub_output_kind,
    /// EVENT: which event.
    pub event: evsock_hub_event_type,
    /// TRANSMIT, CLOSE, and the events that name a connection: its id.
    pub conn: u64,
    /// Events that name a client: its id.
    pub client: u64,
    /// PROTOCOL_ERROR: `conn` is set. (Always true where `conn` is
    /// documented as always set.)
    pub has_conn: bool,
    /// SLOW_CONSUMER / PROTOCOL_ERROR: `client` is set. (Always true where
    /// `client` is documented as always set.)
    pub has_client: bool,
    /// TRANSMIT: the bytes to write; PUBLISH: the message; MESSAGE /
    /// REQUEST: the encoded data (JSON text, or MessagePack for MessagePack
    /// clients; possibly empty); UPGRADE: the request path.
    pub data: *const u8,
    /// Bytes at `data`.
    pub len: usize,
    /// PUBLISH / SUBSCRIBE / UNSUBSCRIBE: the channel name.
    pub channel: *const c_char,
    /// The user id, for the events that name one.
    pub user: *const c_char,
    /// PRESENCE: the room.
    pub room: *const c_char,
    /// MESSAGE / REQUEST: the event id, for example "chat/msg".
    pub name: *const c_char,
    /// REQUEST: the requester's idempotency key, or NULL.
    pub idempotency_key: *const c_char,
    /// UPGRADE: the Origin header, or NULL.
    pub origin: *const c_char,
    /// UPGRADE: the subprotocol the config would select, or NULL.
    pub subprotocol: *const c_char,
    /// PROTOCOL_ERROR: a stable snake_case code.
    pub code: *const c_char,
    /// PROTOCOL_ERROR: a description.
    pub message: *const c_char,
    /// MESSAGE / REQUEST: the client's wire format (the format of `data`).
    pub format: evsock_format,
    /// REQUEST: the request id.
    pub req: u64,
    /// REQUEST: how long the client waits, in ms.
    pub timeout_ms: u64,
    /// GAP: the first lost id.
    pub from: u64,
    /// GAP: the last lost id (inclusive).
    pub to: u64,
    /// SLOW_CONSUMER: volatile frames dropped.
    pub dropped: usize,
    /// CLIENT_CONNECTED: an earlier session was continued.
    pub resumed: bool,
    /// CLIENT_GONE: the resume window passed (false: closed).
    pub expired: bool,
    /// PRESENCE: present now?
    pub online: bool,
    /// SLOW_CONSUMER: the connection was cut.
    pub disconnected: bool,
}

/// How a hub message is delivered (`evsock_hub_send_to_client` and the
/// other sends).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_delivery {
    /// Numbered and acknowledged; buffered while a client is away and
    /// replayed exactly once when it resumes.
    EVSOCK_DELIVERY_RELIABLE = 0,
    /// At most once, only to clients connected now; may be dropped for a
    /// slow consumer.
    EVSOCK_DELIVERY_VOLATILE = 1,
    /// Like VOLATILE, and a message still queued for a client with the same
    /// `latest_key` is replaced by this one (positions, typing indicators).
    EVSOCK_DELIVERY_LATEST = 2,
}

/// Counters of a hub, filled in by `evsock_hub_get_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct evsock_hub_stats {
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

/// The room policy: called from inside `evsock_hub_join_room` with the
/// `user_ctx` given to `evsock_hub_set_room_policy`, the user id and the
/// room name (NUL-terminated, valid during the call only). Return true to
/// allow the join. It runs on the thread making the call; it must not call
/// into the same hub (that call fails with `EVSOCK_ERR_BUSY`), must not
/// unwind or `longjmp` out, and `user_ctx` must stay valid until the policy
/// is replaced or the hub freed.
pub type evsock_room_policy_fn = Option<
    unsafe extern "C" fn(user_ctx: *mut c_void, user: *const c_char, room: *const c_char) -> bool,
>;

/// The host's room policy callback plus its context pointer.
struct RoomPolicy {
    f: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> bool,
    ctx: *mut c_void,
}

// SAFETY: the hub needs its policy to be `Send` so hubs can move between
// threads. The callback and `ctx` are only used by the one thread inside a
// call on this hub (the busy flag forbids concurrent calls); the header
// tells hosts the policy runs on whichever thread drives the hub.
unsafe impl Send for RoomPolicy {}

impl RoomPolicy {
    fn allows(&self, user: &str, room: &str) -> bool {
        let (u, r) = (c_string(user), c_string(room));
        // SAFETY: both strings are live NUL-terminated buffers for the
        // call; the callback's contract is documented on
        // `evsock_room_policy_fn`, and `ctx` is the host's own pointer.
        unsafe { (self.f)(self.ctx, u.as_ptr(), r.as_ptr()) }
    }
}

/// # Safety
/// `ptr` is NULL or a live hub handle.
unsafe fn with_hub(
    ptr: *const evsock_hub,
    f: impl FnOnce(&mut HubInner) -> FfiResult,
) -> evsock_status {
    // SAFETY: forwarded from the caller's contract.
    unsafe { with_handle(ptr, HUB_MAGIC, "hub", f) }
}

impl HubInner {
    fn conn(&self, id: u64) -> Result<ConnId, Fail> {
        self.conns.get(&id).copied().ok_or_else(|| {
            Fail::new(
                evsock_status::EVSOCK_ERR_UNKNOWN_CONNECTION,
                format!("unknown connection {id} (never handed out, or closed)"),
            )
        })
    }

    fn client(&self, id: u64) -> Result<ClientId, Fail> {
        self.clients.get(&id).copied().ok_or_else(|| {
            Fail::new(
                evsock_status::EVSOCK_ERR_UNKNOWN_CLIENT,
                format!("unknown client {id} (never connected, or gone)"),
            )
        })
    }

    fn saw_client(&mut self, c: ClientId) {
        self.clients.insert(c.as_u64(), c);
    }

    /// Keeps `strings` for C and points `query_ptrs` at them.
    fn hold_strings(&mut self, strings: Vec<CString>) {
        self.query = strings;
        self.query_ptrs = self.query.iter().map(|s| s.as_ptr()).collect();
    }
}

/// Creates a hub. Its settings come from `cfg` (NULL: the defaults of
/// `evsock_config_new_hub`; the config may be freed afterwards): the hub
/// options `EVSOCK_OPT_HUB_*`, the connection options for every WebSocket
/// and the session options for every client. `fill` supplies randomness for
/// session ids: NULL uses the OS generator (what production wants); with a
/// callback, `fill_user` must stay valid until the hub is freed (see
/// `evsock_fill_fn`). On success `*out` receives a handle the caller owns
/// and frees with `evsock_hub_free`. A multi-node hub (with
/// `EVSOCK_OPT_HUB_NODE_ID`) starts with a SUBSCRIBE output to poll.
///
/// # Safety
/// `cfg` NULL or live; `out` NULL (an error) or writable; `fill` follows
/// the `evsock_fill_fn` contract.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_new(
    cfg: *const evsock_config,
    fill: evsock_fill_fn,
    fill_user: *mut c_void,
    out: *mut *mut evsock_hub,
) -> evsock_status {
    guard(|| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        let config = if cfg.is_null() {
            evsock::hub::Config::default()
        } else {
            // SAFETY: `cfg` is NULL or live (contract); checked non-NULL.
            unsafe { config_ref(cfg)? }.hub_config()
        };
        let hub = Hub::new(config, rng_from(fill, fill_user))?;
        let h = Handle::into_raw(
            HUB_MAGIC,
            HubInner {
                hub,
                conns: HashMap::new(),
                clients: HashMap::new(),
                held: None,
                refused: None,
                query: Vec::new(),
                query_ptrs: Vec::new(),
            },
        );
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { out.write(h.cast()) };
        Ok(EVSOCK_OK)
    })
}

/// Frees a hub and everything it holds (all its connections and sessions,
/// and the memory behind pointers its calls handed out). NULL is ignored.
/// Close the host's sockets yourself.
///
/// # Safety
/// `hub` NULL or live, not in use by another thread, not used after.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_free(hub: *mut evsock_hub) {
    // SAFETY: forwarded from this function's contract.
    unsafe { free_handle::<HubInner, _>(hub, HUB_MAGIC, "hub") }
}

/// Sets the room policy consulted by `evsock_hub_join_room` (see
/// `evsock_room_policy_fn`); NULL removes it (every join is allowed, the
/// default).
///
/// # Safety
/// `hub` NULL or live; `policy` follows the `evsock_room_policy_fn`
/// contract with `user_ctx`.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_set_room_policy(
    hub: *mut evsock_hub,
    policy: evsock_room_policy_fn,
    user_ctx: *mut c_void,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        match policy {
            Some(f) => {
                let p = RoomPolicy { f, ctx: user_ctx };
                h.hub.set_room_policy(move |u, r| p.allows(u, r));
            }
            None => h.hub.set_room_policy(|_, _| true),
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

// ----- transport -------------------------------------------------------------

/// A new transport connection arrived (the host accepted a socket).
/// `EVSOCK_OK` with `*conn_id` set: read from the socket and hand the bytes
/// to `evsock_hub_handle_input`. `EVSOCK_ERR_REFUSED` beyond
/// `EVSOCK_OPT_HUB_MAX_CONNECTIONS` or the admission rate: then, if
/// `response` and `response_len` are not NULL, they receive an HTTP 503
/// response with Retry-After; write it and close the socket. It stays valid
/// until the next `evsock_hub_new_connection` on this hub or its free.
///
/// # Safety
/// `hub` NULL or live; `conn_id` NULL (an error) or writable; `response` and
/// `response_len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_new_connection(
    hub: *mut evsock_hub,
    now_ms: u64,
    conn_id: *mut u64,
    response: *mut *const u8,
    response_len: *mut usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        if conn_id.is_null() {
            return Err(Fail::null("conn_id"));
        }
        h.refused = None;
        match h.hub.new_connection(now_ms) {
            Ok(c) => {
                h.conns.insert(c.as_u64(), c);
                // SAFETY: checked non-NULL; writable per the contract.
                unsafe { conn_id.write(c.as_u64()) };
                Ok(EVSOCK_OK)
            }
            Err(Refused {
                status,
                response: r,
            }) => {
                let b = h.refused.insert(r);
                if !response.is_null() && !response_len.is_null() {
                    // SAFETY: both non-NULL and writable per the contract;
                    // the pointer borrows `h.refused`, kept until the next
                    // call of this function or the free.
                    unsafe {
                        response.write(data_ptr(b));
                        response_len.write(b.len());
                    }
                }
                Err(Fail::new(
                    EVSOCK_ERR_REFUSED,
                    format!("connection refused with HTTP {status} (limit or admission rate)"),
                ))
            }
        }
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Feeds `len` bytes read from connection `conn_id` at `now_ms` (copied;
/// `data` may be NULL when `len` is 0). Input for a connection that is
/// already closed is ignored (`EVSOCK_OK`): its CLOSE may still be in the
/// output. `EVSOCK_ERR_UNKNOWN_CONNECTION` for an id never handed out or
/// whose CLOSE was polled. Drain `evsock_hub_poll_output` afterwards.
///
/// # Safety
/// `hub` NULL or live; `data` NULL (only with `len` 0) or `len` readable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_handle_input(
    hub: *mut evsock_hub,
    conn_id: u64,
    now_ms: u64,
    data: *const u8,
    len: usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.conn(conn_id)?;
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = unsafe { bytes_arg(data, len, "data")? };
        h.hub.handle_input(c, now_ms, data);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Connection `conn_id`'s transport ended (read returned 0, or the socket
/// failed). Its client stays resumable. A CLOSE output follows. Unknown ids
/// as for `evsock_hub_handle_input`.
///
/// # Safety
/// `hub` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_handle_eof(
    hub: *mut evsock_hub,
    conn_id: u64,
    now_ms: u64,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.conn(conn_id)?;
        h.hub.handle_eof(c, now_ms);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// The host wrote `n` more bytes of connection `conn_id`'s TRANSMIT outputs
/// to its socket. Required: it opens the connection's send window
/// (`EVSOCK_OPT_HUB_SEND_WINDOW_BYTES`); without it the hub holds frames
/// back and eventually treats the connection as a slow consumer. Unknown ids
/// as for `evsock_hub_handle_input`.
///
/// # Safety
/// `hub` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_handle_written(
    hub: *mut evsock_hub,
    conn_id: u64,
    n: usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.conn(conn_id)?;
        h.hub.handle_written(c, n);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Runs every timer due at `now_ms` (handshakes, session pings and acks,
/// resume expiry, offline grace, heartbeats). Call it when the deadline from
/// `evsock_hub_poll_timeout` passes; early or extra calls are harmless.
///
/// # Safety
/// `hub` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_handle_timeout(
    hub: *mut evsock_hub,
    now_ms: u64,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        h.hub.handle_timeout(now_ms);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// A message arrived from the pub/sub bus on a channel this hub subscribed
/// to (`len` bytes, copied). The hub's own echoes are dropped.
/// `EVSOCK_ERR_CLUSTER` for a malformed message (nothing changes);
/// `EVSOCK_ERR_INVALID_STATE` for a hub without `EVSOCK_OPT_HUB_NODE_ID`.
///
/// # Safety
/// `hub` NULL or live; `data` NULL (only with `len` 0) or `len` readable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_handle_remote(
    hub: *mut evsock_hub,
    now_ms: u64,
    data: *const u8,
    len: usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = unsafe { bytes_arg(data, len, "data")? };
        h.hub.handle_remote(now_ms, data)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

// ----- output ----------------------------------------------------------------

fn blank() -> evsock_hub_output {
    evsock_hub_output {
        kind: evsock_hub_output_kind::EVSOCK_HUB_OUTPUT_NONE,
        event: evsock_hub_event_type::EVSOCK_HUB_EVENT_NONE,
        conn: 0,
        client: 0,
        has_conn: false,
        has_client: false,
        data: data_ptr(&[]),
        len: 0,
        channel: std::ptr::null(),
        user: std::ptr::null(),
        room: std::ptr::null(),
        name: std::ptr::null(),
        idempotency_key: std::ptr::null(),
        origin: std::ptr::null(),
        subprotocol: std::ptr::null(),
        code: std::ptr::null(),
        message: std::ptr::null(),
        format: evsock_format::EVSOCK_FORMAT_JSON,
        req: 0,
        timeout_ms: 0,
        from: 0,
        to: 0,
        dropped: 0,
        resumed: false,
        expired: false,
        online: false,
        disconnected: false,
    }
}

/// Builds the C view of one output, keeping what it points into, and keeps
/// the id maps up to date.
fn view(h: &mut HubInner, o: HubOutput) -> (evsock_hub_output, HeldHubOutput) {
    use evsock_hub_event_type::*;
    use evsock_hub_output_kind::*;
    let mut v = blank();
    let mut strings = Vec::new();
    // Keeps a C string alive in `strings` and returns its pointer (the
    // CString's heap buffer does not move when the Vec grows).
    let mut keep = |s: &str| {
        let c = c_string(s);
        let p = c.as_ptr();
        strings.push(c);
        p
    };
    let mut payload = Bytes::new();
    let mut request = None;
    let mut offered = Vec::new();
    match o {
        HubOutput::Transmit { conn, bytes } => {
            v.kind = EVSOCK_HUB_OUTPUT_TRANSMIT;
            (v.conn, v.has_conn) = (conn.as_u64(), true);
            payload = bytes;
        }
        HubOutput::Close { conn } => {
            v.kind = EVSOCK_HUB_OUTPUT_CLOSE;
            (v.conn, v.has_conn) = (conn.as_u64(), true);
            h.conns.remove(&conn.as_u64());
        }
        HubOutput::Publish { channel, bytes } => {
            v.kind = EVSOCK_HUB_OUTPUT_PUBLISH;
            v.channel = keep(&channel);
            payload = bytes;
        }
        HubOutput::Subscribe { channel } => {
            v.kind = EVSOCK_HUB_OUTPUT_SUBSCRIBE;
            v.channel = keep(&channel);
        }
        HubOutput::Unsubscribe { channel } => {
            v.kind = EVSOCK_HUB_OUTPUT_UNSUBSCRIBE;
            v.channel = keep(&channel);
        }
        HubOutput::Event(e) => {
            v.kind = EVSOCK_HUB_OUTPUT_EVENT;
            match e {
                HubEvent::Upgrade { conn, request: r } => {
                    v.event = EVSOCK_HUB_EVENT_UPGRADE;
                    (v.conn, v.has_conn) = (conn.as_u64(), true);
                    payload = Bytes::copy_from_slice(r.path.as_bytes());
                    if let Some(o) = &r.origin {
                        v.origin = keep(o);
                    }
                    if let Some(s) = &r.selected_subprotocol {
                        v.subprotocol = keep(s);
                    }
                    offered = r.subprotocols.iter().map(|s| c_string(s)).collect();
                    request = Some((conn.as_u64(), r));
                }
                HubEvent::ClientConnected {
                    client,
                    conn,
                    user,
                    resumed,
                } => {
                    v.event = EVSOCK_HUB_EVENT_CLIENT_CONNECTED;
                    (v.client, v.has_client) = (client.as_u64(), true);
                    (v.conn, v.has_conn) = (conn.as_u64(), true);
                    v.user = keep(&user);
                    v.resumed = resumed;
                    h.saw_client(client);
                }
                HubEvent::ClientDisconnected { client, user } => {
                    v.event = EVSOCK_HUB_EVENT_CLIENT_DISCONNECTED;
                    (v.client, v.has_client) = (client.as_u64(), true);
                    v.user = keep(&user);
                }
                HubEvent::ClientGone {
                    client,
                    user,
                    expired,
                } => {
                    v.event = EVSOCK_HUB_EVENT_CLIENT_GONE;
                    (v.client, v.has_client) = (client.as_u64(), true);
                    v.user = keep(&user);
                    v.expired = expired;
                    h.clients.remove(&client.as_u64());
                }
                HubEvent::UserOnline { user } => {
                    v.event = EVSOCK_HUB_EVENT_USER_ONLINE;
                    v.user = keep(&user);
                }
                HubEvent::UserOffline { user } => {
                    v.event = EVSOCK_HUB_EVENT_USER_OFFLINE;
                    v.user = keep(&user);
                }
                HubEvent::Presence { room, user, online } => {
                    v.event = EVSOCK_HUB_EVENT_PRESENCE;
                    v.room = keep(&room);
                    v.user = keep(&user);
                    v.online = online;
                }
                HubEvent::Message {
                    client,
                    user,
                    event,
                    data,
                    format,
                } => {
                    v.event = EVSOCK_HUB_EVENT_MESSAGE;
                    (v.client, v.has_client) = (client.as_u64(), true);
                    v.user = keep(&user);
                    v.name = keep(event.as_str());
                    v.format = format_c(format);
                    payload = data;
                }
                HubEvent::Request {
                    client,
                    user,
                    req,
                    event,
                    data,
                    format,
                    timeout_ms,
                    idempotency_key,
                } => {
                    v.event = EVSOCK_HUB_EVENT_REQUEST;
                    (v.client, v.has_client) = (client.as_u64(), true);
                    v.user = keep(&user);
                    v.req = req;
                    v.name = keep(event.as_str());
                    v.format = format_c(format);
                    v.timeout_ms = timeout_ms;
                    if let Some(k) = idempotency_key {
                        v.idempotency_key = keep(&k);
                    }
                    payload = data;
                }
                HubEvent::Gap { client, from, to } => {
                    v.event = EVSOCK_HUB_EVENT_GAP;
                    (v.client, v.has_client) = (client.as_u64(), true);
                    (v.from, v.to) = (from, to);
                }
                HubEvent::SlowConsumer {
                    conn,
                    client,
                    dropped,
                    disconnected,
                } => {
                    v.event = EVSOCK_HUB_EVENT_SLOW_CONSUMER;
                    (v.conn, v.has_conn) = (conn.as_u64(), true);
                    if let Some(c) = client {
                        (v.client, v.has_client) = (c.as_u64(), true);
                    }
                    v.dropped = dropped;
                    v.disconnected = disconnected;
                }
                HubEvent::RateLimited { conn, user } => {
                    v.event = EVSOCK_HUB_EVENT_RATE_LIMITED;
                    (v.conn, v.has_conn) = (conn.as_u64(), true);
                    if let Some(u) = user {
                        v.user = keep(&u);
                    }
                }
                HubEvent::ProtocolError {
                    conn,
                    client,
                    error,
                } => {
                    v.event = EVSOCK_HUB_EVENT_PROTOCOL_ERROR;
                    if let Some(c) = conn {
                        (v.conn, v.has_conn) = (c.as_u64(), true);
                    }
                    if let Some(c) = client {
                        (v.client, v.has_client) = (c.as_u64(), true);
                    }
                    let (code, message) = match &error {
                        HubProtocolError::BadHello(e) => ("bad_hello", e.to_string()),
                        HubProtocolError::Session(e) => (e.code(), e.to_string()),
                        HubProtocolError::Ws(e) => (e.kind(), e.to_string()),
                    };
                    v.code = keep(code);
                    v.message = keep(&message);
                }
            }
        }
    }
    v.data = data_ptr(&payload);
    v.len = payload.len();
    (
        v,
        HeldHubOutput {
            _payload: payload,
            _strings: strings,
            request,
            offered,
        },
    )
}

/// Takes the next output: `EVSOCK_OK` with `*out` filled, or `EVSOCK_EMPTY`
/// (`out->kind == EVSOCK_HUB_OUTPUT_NONE`). Drain it after every call that
/// takes `now_ms` and after `evsock_hub_handle_written`. The pointers in
/// `*out` stay valid until the next `evsock_hub_poll_output` on this hub or
/// its free (see `evsock_hub_output`).
///
/// # Safety
/// `hub` NULL or live; `out` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_poll_output(
    hub: *mut evsock_hub,
    out: *mut evsock_hub_output,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        h.held = None;
        let (v, status) = match h.hub.poll_output() {
            Some(o) => {
                let (v, held) = view(h, o);
                h.held = Some(held);
                (v, EVSOCK_OK)
            }
            None => (blank(), EVSOCK_EMPTY),
        };
        // SAFETY: checked non-NULL, writable per the contract (`write` does
        // not read the old contents); the pointers in `v` borrow from
        // `h.held`, kept until the next poll or free.
        unsafe { out.write(v) };
        Ok(status)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// When `evsock_hub_handle_timeout` must next be called: `EVSOCK_OK` with
/// `*deadline_ms`, or `EVSOCK_EMPTY` when no timer is armed. It may be
/// early (a wake-up that finds nothing due), never late.
///
/// # Safety
/// `hub` NULL or live; `deadline_ms` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_poll_timeout(
    hub: *mut evsock_hub,
    deadline_ms: *mut u64,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        if deadline_ms.is_null() {
            return Err(Fail::null("deadline_ms"));
        }
        let Some(d) = h.hub.poll_timeout() else {
            return Ok(EVSOCK_EMPTY);
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { deadline_ms.write(d) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

// ----- the auth hook ---------------------------------------------------------

/// The upgrade request of the last output polled, which must be an UPGRADE
/// event (else `EVSOCK_ERR_INVALID_STATE`).
fn held_upgrade(h: &HubInner) -> Result<(&Request, &HeldHubOutput), Fail> {
    match &h.held {
        Some(
            held @ HeldHubOutput {
                request: Some((_, r)),
                ..
            },
        ) => Ok((r, held)),
        _ => Err(Fail::new(
            evsock_status::EVSOCK_ERR_INVALID_STATE,
            "the last output polled is not EVSOCK_HUB_EVENT_UPGRADE",
        )),
    }
}

/// Looks up a header of the upgrade request in the last output polled,
/// which must be an UPGRADE event (else `EVSOCK_ERR_INVALID_STATE`). `name`
/// is matched ASCII case-insensitively; the first match wins. `EVSOCK_OK`
/// with `*value`/`*len` (raw bytes, not NUL-terminated), or `EVSOCK_EMPTY`
/// (NULL, 0) if absent. The value lives as long as the output's pointers.
///
/// # Safety
/// `hub` NULL or live; `name` NULL (an error) or NUL-terminated; `value` and
/// `len` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_request_header(
    hub: *mut evsock_hub,
    name: *const c_char,
    value: *mut *const u8,
    len: *mut usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        // SAFETY: `name` is NULL or NUL-terminated (contract).
        let name = unsafe { c_str_arg(name, "name")? };
        if value.is_null() || len.is_null() {
            return Err(Fail::null("value/len"));
        }
        let (req, _) = held_upgrade(h)?;
        let found = req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        let (p, n, status) = match found {
            Some((_, v)) => (data_ptr(v), v.len(), EVSOCK_OK),
            None => (std::ptr::null(), 0, EVSOCK_EMPTY),
        };
        // SAFETY: both checked non-NULL; writable per the contract. `p`
        // points into the held UPGRADE output.
        unsafe {
            value.write(p);
            len.write(n);
        }
        Ok(status)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// The `index`-th subprotocol the client offered in the pending UPGRADE
/// (same rules as `evsock_hub_request_header`): `EVSOCK_OK` with a
/// NUL-terminated `*name`, or `EVSOCK_EMPTY` (NULL) past the end.
///
/// # Safety
/// `hub` NULL or live; `name` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_request_subprotocol(
    hub: *mut evsock_hub,
    index: usize,
    name: *mut *const c_char,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        if name.is_null() {
            return Err(Fail::null("name"));
        }
        let (_, held) = held_upgrade(h)?;
        let (p, status) = match held.offered.get(index) {
            Some(s) => (s.as_ptr(), EVSOCK_OK),
            None => (std::ptr::null(), EVSOCK_EMPTY),
        };
        // SAFETY: checked non-NULL; writable per the contract. `p` points
        // into the held UPGRADE output.
        unsafe { name.write(p) };
        Ok(status)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Accepts the upgrade request of connection `conn_id` (its UPGRADE event,
/// polled or not) for `user` (1 to 128 bytes of UTF-8 without control
/// characters; copied). The 101 response is queued; the client's session
/// follows (CLIENT_CONNECTED once its hello arrives). `subprotocol`: NULL
/// keeps the config's choice, "" selects none, anything else is sent as
/// given. `headers` (NULL when `headers_len` is 0) are extra response
/// headers; all strings are copied. Errors: `EVSOCK_ERR_UNKNOWN_CONNECTION`,
/// `_INVALID_STATE` (no upgrade waiting for a decision, e.g. accepted
/// twice), `_BAD_USER_ID`, `_TOO_MANY_CONNECTIONS` (the connection was
/// rejected with 429 instead; its bytes and CLOSE follow).
///
/// # Safety
/// `hub` NULL or live; `user` NULL (an error) or NUL-terminated;
/// `subprotocol` NULL or NUL-terminated; `headers` NULL or `headers_len`
/// readable entries with NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_accept(
    hub: *mut evsock_hub,
    conn_id: u64,
    now_ms: u64,
    user: *const c_char,
    subprotocol: *const c_char,
    headers: *const evsock_header,
    headers_len: usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.conn(conn_id)?;
        // SAFETY: `user` is NULL or NUL-terminated (contract).
        let user = unsafe { c_str_arg(user, "user")? };
        // SAFETY: `subprotocol` is NULL or NUL-terminated (contract).
        let subprotocol = unsafe { opt_c_str_arg(subprotocol, "subprotocol")? };
        if let Some(p) = subprotocol {
            if !p.is_empty() && !is_token(p) {
                return Err(Fail::arg(format!("subprotocol {p:?} is not an HTTP token")));
            }
        }
        // SAFETY: `headers` is NULL or `headers_len` entries (contract).
        let headers = unsafe { headers_arg(headers, headers_len)? };
        let accept = Accept {
            subprotocol: subprotocol.map(String::from),
            headers,
        };
        h.hub.accept_with(c, now_ms, user, accept)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Refuses the upgrade request of connection `conn_id` with an HTTP
/// response of `status` (200-599, except 101), a text/plain `body` of
/// `body_len` bytes (NULL when 0) and optional extra `headers`; all copied.
/// The response bytes and a CLOSE follow in the output. Errors as for
/// `evsock_hub_accept`, and `EVSOCK_ERR_INVALID_ARGUMENT` for the status.
///
/// # Safety
/// `hub` NULL or live; `headers` NULL or `headers_len` readable entries;
/// `body` NULL or `body_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_reject(
    hub: *mut evsock_hub,
    conn_id: u64,
    now_ms: u64,
    status: u16,
    headers: *const evsock_header,
    headers_len: usize,
    body: *const u8,
    body_len: usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.conn(conn_id)?;
        if !(200..=599).contains(&status) || status == 101 {
            return Err(Fail::arg(format!(
                "HTTP status {status} cannot reject an upgrade (use 200-599)"
            )));
        }
        // SAFETY: `headers` is NULL or `headers_len` entries (contract).
        let headers = unsafe { headers_arg(headers, headers_len)? };
        // SAFETY: `body` is NULL or `body_len` readable bytes (contract).
        let body = unsafe { bytes_arg(body, body_len, "body")? };
        let mut r = Reject::new(status, body);
        r.headers = headers;
        h.hub.reject(c, now_ms, r)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

// ----- rooms -----------------------------------------------------------------

/// Puts client `client_id` in `room` (1 to 128 bytes of printable ASCII
/// without spaces), after asking the room policy. `*joined` (if not NULL)
/// is true when it joined, false when it was already a member. PRESENCE
/// events may follow. Errors: `EVSOCK_ERR_UNKNOWN_CLIENT`, `_BAD_ROOM`,
/// `_FORBIDDEN`, `_TOO_MANY_ROOMS`.
///
/// # Safety
/// `hub` NULL or live; `room` NULL (an error) or NUL-terminated; `joined`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_join_room(
    hub: *mut evsock_hub,
    client_id: u64,
    now_ms: u64,
    room: *const c_char,
    joined: *mut bool,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.client(client_id)?;
        // SAFETY: `room` is NULL or NUL-terminated (contract).
        let room = unsafe { c_str_arg(room, "room")? };
        let j = h.hub.join_room(c, now_ms, room)?;
        if !joined.is_null() {
            // SAFETY: non-NULL; writable per the contract.
            unsafe { joined.write(j) };
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Takes client `client_id` out of `room`. `*left` (if not NULL) is false
/// when it was not a member. Errors: `EVSOCK_ERR_UNKNOWN_CLIENT`.
///
/// # Safety
/// As for `evsock_hub_join_room`.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_leave_room(
    hub: *mut evsock_hub,
    client_id: u64,
    now_ms: u64,
    room: *const c_char,
    left: *mut bool,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.client(client_id)?;
        // SAFETY: `room` is NULL or NUL-terminated (contract).
        let room = unsafe { c_str_arg(room, "room")? };
        let l = h.hub.leave_room(c, now_ms, room)?;
        if !left.is_null() {
            // SAFETY: non-NULL; writable per the contract.
            unsafe { left.write(l) };
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

// ----- sending -----------------------------------------------------------------

fn delivery_arg(delivery: u32, latest_key: u64) -> Result<Delivery, Fail> {
    match delivery {
        0 => Ok(Delivery::Reliable),
        1 => Ok(Delivery::Volatile),
        2 => Ok(Delivery::Latest(latest_key)),
        other => Err(Fail::arg(format!(
            "delivery {other} is not EVSOCK_DELIVERY_RELIABLE, _VOLATILE or _LATEST"
        ))),
    }
}

/// The event name, data and delivery of a send.
///
/// # Safety
/// `name` NULL or NUL-terminated; `data` NULL (only with `len` 0) or `len`
/// readable bytes.
unsafe fn send_args<'a>(
    name: *const c_char,
    data: *const u8,
    len: usize,
    delivery: u32,
    latest_key: u64,
) -> Result<(&'a str, Bytes, Delivery), Fail> {
    // SAFETY: forwarded from the caller's contract.
    let name = unsafe { c_str_arg(name, "name")? };
    // SAFETY: forwarded from the caller's contract.
    let data = Bytes::copy_from_slice(unsafe { bytes_arg(data, len, "data")? });
    Ok((name, data, delivery_arg(delivery, latest_key)?))
}

fn write_count(count: *mut usize, n: usize) {
    if !count.is_null() {
        // SAFETY: non-NULL; every caller's contract makes it writable.
        unsafe { count.write(n) };
    }
}

/// Sends event `name` with `data` (one encoded JSON value of `len` bytes,
/// or empty; MessagePack clients get it transcoded; both copied) to client
/// `client_id`, delivered as `delivery` (an `evsock_delivery`; `latest_key`
/// is used only by `EVSOCK_DELIVERY_LATEST`). A reliable message to a
/// disconnected client waits for its resume. Errors:
/// `EVSOCK_ERR_UNKNOWN_CLIENT`, `_BAD_EVENT_ID`, `_RESERVED_EVENT`,
/// `_INVALID_DATA`, `_TOO_LARGE`, `_NOT_CONNECTED` (volatile to a client
/// that is away), `_INVALID_ARGUMENT` (delivery).
///
/// # Safety
/// `hub` NULL or live; `name` NULL (an error) or NUL-terminated; `data`
/// NULL (only with `len` 0) or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_send_to_client(
    hub: *mut evsock_hub,
    client_id: u64,
    now_ms: u64,
    name: *const c_char,
    data: *const u8,
    len: usize,
    delivery: u32,
    latest_key: u64,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.client(client_id)?;
        // SAFETY: forwarded from this function's contract.
        let (name, data, d) = unsafe { send_args(name, data, len, delivery, latest_key)? };
        h.hub.send_to_client(c, now_ms, name, data, d)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Sends to every client of `user` (all its tabs), on every node. `*count`
/// (if not NULL) receives how many local clients it was handed to (0 is not
/// an error). Arguments and errors as for `evsock_hub_send_to_client`, plus
/// `EVSOCK_ERR_BAD_USER_ID`.
///
/// # Safety
/// As for `evsock_hub_send_to_client`; `user` NULL (an error) or
/// NUL-terminated; `count` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_send_to_user(
    hub: *mut evsock_hub,
    user: *const c_char,
    now_ms: u64,
    name: *const c_char,
    data: *const u8,
    len: usize,
    delivery: u32,
    latest_key: u64,
    count: *mut usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        // SAFETY: `user` is NULL or NUL-terminated (contract).
        let user = unsafe { c_str_arg(user, "user")? };
        // SAFETY: forwarded from this function's contract.
        let (name, data, d) = unsafe { send_args(name, data, len, delivery, latest_key)? };
        let n = h.hub.send_to_user(user, now_ms, name, data, d)?;
        write_count(count, n);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Sends to every member of `room`, on every node (each member gets it
/// once). `*count` as for `evsock_hub_send_to_user`. Arguments and errors
/// as for `evsock_hub_send_to_client`, plus `EVSOCK_ERR_BAD_ROOM`.
///
/// # Safety
/// As for `evsock_hub_send_to_user`, with `room` for `user`.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_broadcast_room(
    hub: *mut evsock_hub,
    room: *const c_char,
    now_ms: u64,
    name: *const c_char,
    data: *const u8,
    len: usize,
    delivery: u32,
    latest_key: u64,
    count: *mut usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        // SAFETY: `room` is NULL or NUL-terminated (contract).
        let room = unsafe { c_str_arg(room, "room")? };
        // SAFETY: forwarded from this function's contract.
        let (name, data, d) = unsafe { send_args(name, data, len, delivery, latest_key)? };
        let n = h.hub.broadcast_room(room, now_ms, name, data, d)?;
        write_count(count, n);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Sends to every client, on every node. `*count` as for
/// `evsock_hub_send_to_user`. Arguments and errors as for
/// `evsock_hub_send_to_client`.
///
/// # Safety
/// As for `evsock_hub_send_to_client`; `count` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_broadcast_all(
    hub: *mut evsock_hub,
    now_ms: u64,
    name: *const c_char,
    data: *const u8,
    len: usize,
    delivery: u32,
    latest_key: u64,
    count: *mut usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        // SAFETY: forwarded from this function's contract.
        let (name, data, d) = unsafe { send_args(name, data, len, delivery, latest_key)? };
        let n = h.hub.broadcast_all(now_ms, name, data, d)?;
        write_count(count, n);
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// # Safety
/// `hub` NULL or live; `data` NULL (only with `len` 0) or readable.
unsafe fn reply_impl(
    hub: *mut evsock_hub,
    client_id: u64,
    now_ms: u64,
    req: u64,
    data: *const u8,
    len: usize,
    error: bool,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.client(client_id)?;
        // SAFETY: `data` is NULL or `len` readable bytes (contract).
        let data = Bytes::copy_from_slice(unsafe { bytes_arg(data, len, "data")? });
        if error {
            h.hub.reply_error(c, now_ms, req, data)?;
        } else {
            h.hub.reply(c, now_ms, req, data)?;
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Answers request `req` of client `client_id` (from a REQUEST event) with
/// `data` (one encoded JSON value of `len` bytes, or empty; copied).
/// Errors: `EVSOCK_ERR_UNKNOWN_CLIENT`, `_UNKNOWN_REQUEST` (already
/// answered, never asked, or the requester stopped waiting), `_INVALID_DATA`.
///
/// # Safety
/// `hub` NULL or live; `data` NULL (only with `len` 0) or `len` readable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_reply(
    hub: *mut evsock_hub,
    client_id: u64,
    now_ms: u64,
    req: u64,
    data: *const u8,
    len: usize,
) -> evsock_status {
    // SAFETY: forwarded from this function's contract.
    unsafe { reply_impl(hub, client_id, now_ms, req, data, len, false) }
}

/// Answers request `req` with an error: the requester's request fails with
/// code "remote" and this data. As `evsock_hub_reply`.
///
/// # Safety
/// As for `evsock_hub_reply`.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_reply_error(
    hub: *mut evsock_hub,
    client_id: u64,
    now_ms: u64,
    req: u64,
    data: *const u8,
    len: usize,
) -> evsock_status {
    // SAFETY: forwarded from this function's contract.
    unsafe { reply_impl(hub, client_id, now_ms, req, data, len, true) }
}

// ----- management and queries ------------------------------------------------------

/// Closes connection `conn_id` (a kick) with `code` (1000-1003, 1007-1014 or
/// 3000-4999) and a UTF-8 `reason` of at most 123 bytes (NULL when
/// `reason_len` is 0; copied). Its client stays resumable; use
/// `evsock_hub_close_client` to end the session too. Errors:
/// `EVSOCK_ERR_UNKNOWN_CONNECTION`, `_INVALID_ARGUMENT` (reason not UTF-8),
/// `_INVALID_STATE` (code or reason not sendable).
///
/// # Safety
/// `hub` NULL or live; `reason` NULL (only with `reason_len` 0) or
/// `reason_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_close_connection(
    hub: *mut evsock_hub,
    conn_id: u64,
    now_ms: u64,
    code: u16,
    reason: *const c_char,
    reason_len: usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.conn(conn_id)?;
        // SAFETY: `reason` is NULL or `reason_len` readable bytes (contract).
        let bytes = unsafe { bytes_arg(reason.cast(), reason_len, "reason")? };
        let reason =
            std::str::from_utf8(bytes).map_err(|_| Fail::arg("close reason is not valid UTF-8"))?;
        h.hub.close_connection(c, now_ms, CloseCode(code), reason)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Ends client `client_id`'s session for good: it is told so, its
/// connection closes, and CLIENT_GONE follows. `EVSOCK_ERR_UNKNOWN_CLIENT`.
///
/// # Safety
/// `hub` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_close_client(
    hub: *mut evsock_hub,
    client_id: u64,
    now_ms: u64,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.client(client_id)?;
        h.hub.close_client(c, now_ms)?;
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Fills `*stats` with the hub's counters.
///
/// # Safety
/// `hub` NULL or live; `stats` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_get_stats(
    hub: *mut evsock_hub,
    stats: *mut evsock_hub_stats,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        if stats.is_null() {
            return Err(Fail::null("stats"));
        }
        let s = h.hub.stats();
        let v = evsock_hub_stats {
            connections: s.connections,
            clients: s.clients,
            users: s.users,
            rooms: s.rooms,
            timer_entries: s.timer_entries,
            queued_bytes: s.queued_bytes,
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { stats.write(v) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// `*online` receives whether `user` is online here (a client connected,
/// or within the offline grace).
///
/// # Safety
/// `hub` NULL or live; `user` NULL (an error) or NUL-terminated; `online`
/// NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_is_online(
    hub: *mut evsock_hub,
    user: *const c_char,
    online: *mut bool,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        // SAFETY: `user` is NULL or NUL-terminated (contract).
        let user = unsafe { c_str_arg(user, "user")? };
        if online.is_null() {
            return Err(Fail::null("online"));
        }
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { online.write(h.hub.is_online(user)) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// `*connected` receives whether client `client_id`'s session is
/// established on a connection now (false while it is away).
/// `EVSOCK_ERR_UNKNOWN_CLIENT` for a dead id.
///
/// # Safety
/// `hub` NULL or live; `connected` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_is_connected(
    hub: *mut evsock_hub,
    client_id: u64,
    connected: *mut bool,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.client(client_id)?;
        if connected.is_null() {
            return Err(Fail::null("connected"));
        }
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { connected.write(h.hub.is_connected(c)) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// Copies up to `cap` client ids into `ids` and writes how many there are
/// in all to `*count` (so a `count` above `cap` means the array was too
/// small).
///
/// # Safety
/// `ids` NULL (only with `cap` 0) or `cap` writable ids; `count` NULL (an
/// error) or writable.
unsafe fn write_ids(list: &[ClientId], ids: *mut u64, cap: usize, count: *mut usize) -> FfiResult {
    if count.is_null() {
        return Err(Fail::null("count"));
    }
    if cap > 0 && ids.is_null() {
        return Err(Fail::null("ids"));
    }
    for (i, c) in list.iter().take(cap).enumerate() {
        // SAFETY: `ids` is non-NULL when `cap` > 0 and has `cap` writable
        // slots (contract); `i < cap`.
        unsafe { ids.add(i).write(c.as_u64()) };
    }
    // SAFETY: checked non-NULL; writable per the contract.
    unsafe { count.write(list.len()) };
    Ok(EVSOCK_OK)
}

/// The local member clients of `room`: see `evsock_hub_user_clients` for
/// `ids`, `cap` and `*count`. An unknown (or invalid) room has none.
///
/// # Safety
/// `hub` NULL or live; `room` NULL (an error) or NUL-terminated; `ids` NULL
/// (only with `cap` 0) or `cap` writable ids; `count` NULL (an error) or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_room_clients(
    hub: *mut evsock_hub,
    room: *const c_char,
    ids: *mut u64,
    cap: usize,
    count: *mut usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        // SAFETY: `room` is NULL or NUL-terminated (contract).
        let room = unsafe { c_str_arg(room, "room")? };
        let list = h.hub.room_clients(room);
        // SAFETY: forwarded from this function's contract.
        unsafe { write_ids(&list, ids, cap, count) }
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// The clients of `user` on this node: up to `cap` ids are copied into
/// `ids` (NULL when `cap` is 0) and `*count` receives how many there are in
/// all (more than `cap`: call again with a larger array).
///
/// # Safety
/// As for `evsock_hub_room_clients`, with `user` for `room`.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_user_clients(
    hub: *mut evsock_hub,
    user: *const c_char,
    ids: *mut u64,
    cap: usize,
    count: *mut usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        // SAFETY: `user` is NULL or NUL-terminated (contract).
        let user = unsafe { c_str_arg(user, "user")? };
        let list = h.hub.user_clients(user);
        // SAFETY: forwarded from this function's contract.
        unsafe { write_ids(&list, ids, cap, count) }
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// The users present in `room` (online here with a member client, or
/// reported present by another node), sorted: `*users` receives an array of
/// `*count` NUL-terminated strings. The array and strings belong to the hub
/// and stay valid until the next `evsock_hub_room_users`,
/// `evsock_hub_client_rooms` or `evsock_hub_client_user` call on this hub,
/// or its free.
///
/// # Safety
/// `hub` NULL or live; `room` NULL (an error) or NUL-terminated; `users` and
/// `count` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_room_users(
    hub: *mut evsock_hub,
    room: *const c_char,
    users: *mut *const *const c_char,
    count: *mut usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        // SAFETY: `room` is NULL or NUL-terminated (contract).
        let room = unsafe { c_str_arg(room, "room")? };
        if users.is_null() || count.is_null() {
            return Err(Fail::null("users/count"));
        }
        let list = h.hub.room_users(room);
        h.hold_strings(list.iter().map(|u| c_string(u)).collect());
        // SAFETY: both checked non-NULL; writable per the contract. The
        // array points into `h.query_ptrs`, kept until the next string
        // query or the free.
        unsafe {
            users.write(h.query_ptrs.as_ptr());
            count.write(h.query_ptrs.len());
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// The rooms client `client_id` is in: `*rooms` and `*count` as for
/// `evsock_hub_room_users` (same lifetime). `EVSOCK_ERR_UNKNOWN_CLIENT`.
///
/// # Safety
/// `hub` NULL or live; `rooms` and `count` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_client_rooms(
    hub: *mut evsock_hub,
    client_id: u64,
    rooms: *mut *const *const c_char,
    count: *mut usize,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.client(client_id)?;
        if rooms.is_null() || count.is_null() {
            return Err(Fail::null("rooms/count"));
        }
        let list = h.hub.client_rooms(c);
        h.hold_strings(list.iter().map(|r| c_string(r)).collect());
        // SAFETY: both checked non-NULL; writable per the contract. The
        // array points into `h.query_ptrs`, kept until the next string
        // query or the free.
        unsafe {
            rooms.write(h.query_ptrs.as_ptr());
            count.write(h.query_ptrs.len());
        }
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// The user client `client_id` belongs to: `*user` receives a
/// NUL-terminated string with the lifetime described at
/// `evsock_hub_room_users`. `EVSOCK_ERR_UNKNOWN_CLIENT`.
///
/// # Safety
/// `hub` NULL or live; `user` NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_hub_client_user(
    hub: *mut evsock_hub,
    client_id: u64,
    user: *mut *const c_char,
) -> evsock_status {
    let run = |h: &mut HubInner| {
        let c = h.client(client_id)?;
        if user.is_null() {
            return Err(Fail::null("user"));
        }
        let u = h.hub.client_user(c).ok_or_else(|| {
            Fail::new(
                evsock_status::EVSOCK_ERR_UNKNOWN_CLIENT,
                format!("unknown client {client_id}"),
            )
        })?;
        h.hold_strings(vec![c_string(&u)]);
        // SAFETY: checked non-NULL; writable per the contract. The string
        // is in `h.query`, kept until the next string query or the free.
        unsafe { user.write(h.query[0].as_ptr()) };
        Ok(EVSOCK_OK)
    };
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, run) }
}

/// TESTING BUILDS ONLY (cargo feature `testing`): panics inside a call on
/// `hub`, to prove that panics are caught at the boundary. Returns
/// `EVSOCK_ERR_PANIC` and leaves the hub poisoned (only `evsock_hub_free`
/// works on it afterwards).
///
/// # Safety
/// `hub` NULL or live.
#[cfg(feature = "testing")]
#[no_mangle]
pub unsafe extern "C" fn evsock_testing_hub_panic(hub: *mut evsock_hub) -> evsock_status {
    // SAFETY: `hub` is NULL or live (contract).
    unsafe { with_hub(hub, |_| panic!("deliberate panic for tests")) }
}
