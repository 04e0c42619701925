//! `evsock_config`: connection settings, built up by the host and copied
//! into each connection it creates.

use std::ffi::c_char;
use std::sync::Arc;

use evsock::hub::{Config as HubConfig, SlowPolicy, MAX_NODE_ID_LEN};
use evsock::session::{Config as SessionConfig, Format};
use evsock::ws::{Config, DeflateConfig, OriginPolicy};

use crate::status::{evsock_status, guard, Fail, FfiResult};
use crate::util::{c_str_arg, is_token, opt_c_str_arg};

/// Opaque connection settings. Create with `evsock_config_new` (or
/// `evsock_config_new_without_timers`), change with `evsock_config_set` and
/// friends, free with `evsock_config_free`.
pub struct evsock_config {
    _opaque: [u8; 0],
}

const CONFIG_MAGIC: u64 = 0x6576_736f_636b_4346; // "evsockCF"

/// What an `evsock_config *` really points at.
#[repr(C)]
pub(crate) struct ConfigHandle {
    magic: u64,
    pub(crate) cfg: Arc<Config>,
    /// Settings of sessions created from this config.
    pub(crate) session: SessionConfig,
    /// Settings of hubs created from this config (its `ws` and `session`
    /// fields are unused: a hub takes `cfg` and `session` above).
    pub(crate) hub: HubConfig,
}

impl ConfigHandle {
    /// The hub configuration this handle describes.
    pub(crate) fn hub_config(&self) -> HubConfig {
        HubConfig {
            ws: (*self.cfg).clone(),
            session: self.session.clone(),
            ..self.hub.clone()
        }
    }
}

/// Keys for `evsock_config_set` / `evsock_config_get`.
///
/// Sizes are in bytes and must be at least 1. Timers are milliseconds of the
/// host's clock, and 0 turns a timer off. Flags are 0 or 1. Options 1-21
/// apply to WebSocket connections (`evsock_conn_*`), options from 100 to
/// sessions (`evsock_session_*`), options from 200 to hubs (`evsock_hub_*`,
/// which also use the connection and session options);
/// `evsock_config_new_without_timers` turns off the connection timers only.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_option {
    /// Largest frame payload accepted (1009 beyond it). Default 16 MiB.
    EVSOCK_OPT_MAX_FRAME_SIZE = 1,
    /// Largest message, summed over fragments (1009 beyond it). Default 16 MiB.
    EVSOCK_OPT_MAX_MESSAGE_SIZE = 2,
    /// Most fragments in one message (1008 beyond it). Default 131072.
    EVSOCK_OPT_MAX_FRAGMENTS = 3,
    /// Largest HTTP upgrade head (431 beyond it). Default 16 KiB.
    EVSOCK_OPT_MAX_HANDSHAKE_BYTES = 4,
    /// Most header fields in an upgrade request (431). Default 64.
    EVSOCK_OPT_MAX_HEADERS = 5,
    /// Most bytes queued for writing before sends fail with
    /// `EVSOCK_ERR_OUTBOUND_FULL`. Default 64 MiB.
    EVSOCK_OPT_MAX_OUTBOUND_BYTES = 6,
    /// Send a keep-alive ping this long after the last answer. Default 30000.
    EVSOCK_OPT_PING_INTERVAL_MS = 7,
    /// Fail the connection when a ping is unanswered this long. Default 30000.
    EVSOCK_OPT_PONG_TIMEOUT_MS = 8,
    /// Close (1001) when nothing arrives for this long. Default 0 (off).
    EVSOCK_OPT_IDLE_TIMEOUT_MS = 9,
    /// Give up on a handshake that takes longer. Default 10000.
    EVSOCK_OPT_HANDSHAKE_TIMEOUT_MS = 10,
    /// Stop waiting for the peer's side of the close this long. Default 5000.
    EVSOCK_OPT_CLOSE_TIMEOUT_MS = 11,
    /// Answer pings automatically (flag). Default 1.
    EVSOCK_OPT_AUTO_PONG = 12,
    /// Bytes of read/write buffer kept between messages. Default 4096; 0 is
    /// allowed (cheapest idle connections).
    EVSOCK_OPT_BUFFER_RETAIN = 13,
    /// With an origin allow-list (`evsock_config_allow_origin`), accept
    /// requests that carry no Origin header (flag). Default 0.
    EVSOCK_OPT_ALLOW_MISSING_ORIGIN = 14,
    /// permessage-deflate (RFC 7692): offer it (client) or accept it
    /// (server) (flag). Default 1; its memory is spent only once a message
    /// is compressed. Setting 1 restores the defaults of the options below,
    /// which may only be set while it is on.
    EVSOCK_OPT_DEFLATE = 15,
    /// Messages shorter than this many bytes are sent uncompressed.
    /// Default 256.
    EVSOCK_OPT_DEFLATE_THRESHOLD = 16,
    /// Compression level, 0-9. Default 3.
    EVSOCK_OPT_DEFLATE_LEVEL = 17,
    /// Largest LZ77 window of the server's compressor, as a power of two,
    /// 9-15. Default 15.
    EVSOCK_OPT_DEFLATE_SERVER_MAX_WINDOW_BITS = 18,
    /// Largest window of the client's compressor, 9-15. Default 15.
    EVSOCK_OPT_DEFLATE_CLIENT_MAX_WINDOW_BITS = 19,
    /// The server compresses each message on its own (flag). Default 1.
    EVSOCK_OPT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER = 20,
    /// The client compresses each message on its own (flag). Default 0.
    EVSOCK_OPT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER = 21,
    /// Sessions: the wire format a client speaks, `EVSOCK_FORMAT_JSON` (0,
    /// text messages, the default) or `EVSOCK_FORMAT_MSGPACK` (1, binary
    /// messages). A server answers in the format of the hello it receives.
    EVSOCK_OPT_SESSION_FORMAT = 100,
    /// Sessions: largest transport message accepted or produced. Default
    /// 1 MiB.
    EVSOCK_OPT_SESSION_MAX_MESSAGE_BYTES = 101,
    /// Sessions: most envelopes in one batch. Default 64.
    EVSOCK_OPT_SESSION_MAX_BATCH_ENVELOPES = 102,
    /// Sessions (server): how long a disconnected session stays resumable.
    /// Default 60000.
    EVSOCK_OPT_SESSION_RESUME_WINDOW_MS = 103,
    /// Sessions: most bytes of unacknowledged reliable messages kept for
    /// retransmission. Default 1 MiB.
    EVSOCK_OPT_SESSION_RESUME_BUFFER_BYTES = 104,
    /// Sessions: unacknowledged reliable messages older than this are
    /// evicted. Default 60000.
    EVSOCK_OPT_SESSION_RESUME_BUFFER_AGE_MS = 105,
    /// Sessions: most outstanding outgoing requests. Default 1024.
    EVSOCK_OPT_SESSION_MAX_PENDING_REQUESTS = 106,
    /// Sessions: most incoming requests awaiting a reply. Default 1024.
    EVSOCK_OPT_SESSION_MAX_INCOMING_REQUESTS = 107,
    /// Sessions: largest request timeout accepted. Default 600000.
    EVSOCK_OPT_SESSION_MAX_REQUEST_TIMEOUT_MS = 108,
    /// Sessions: delay before a standalone ack. Default 50.
    EVSOCK_OPT_SESSION_ACK_DELAY_MS = 109,
    /// Sessions: acknowledge at once after this many messages. Default 32.
    EVSOCK_OPT_SESSION_ACK_EVERY = 110,
    /// Sessions: ping after this long without hearing from the peer; 0 is
    /// off. Default 20000.
    EVSOCK_OPT_SESSION_PING_INTERVAL_MS = 111,
    /// Sessions: give up on a connection after this long without hearing
    /// from the peer; 0 is off. Default 45000.
    EVSOCK_OPT_SESSION_IDLE_TIMEOUT_MS = 112,
    /// Sessions: give up on a hello / welcome that takes longer. Default
    /// 10000.
    EVSOCK_OPT_SESSION_HANDSHAKE_TIMEOUT_MS = 113,
    /// Sessions: collect outgoing envelopes this long into one batch; 0
    /// sends each at once (the default).
    EVSOCK_OPT_SESSION_BATCH_WINDOW_MS = 114,
    /// Sessions: flush a batch early at this many bytes. Default 16 KiB.
    EVSOCK_OPT_SESSION_BATCH_MAX_BYTES = 115,
    /// Sessions (client): first reconnect delay cap. Default 500.
    EVSOCK_OPT_SESSION_BACKOFF_BASE_MS = 116,
    /// Sessions (client): largest reconnect delay cap. Default 30000.
    EVSOCK_OPT_SESSION_BACKOFF_MAX_MS = 117,
    /// Hubs: most connections at once; beyond it `evsock_hub_new_connection`
    /// refuses with `EVSOCK_ERR_REFUSED`. Default 1000000.
    EVSOCK_OPT_HUB_MAX_CONNECTIONS = 200,
    /// Hubs: new connections admitted per second (token bucket); 0 is
    /// unlimited. At most 4294967295. Default 2000.
    EVSOCK_OPT_HUB_ADMISSION_RATE = 201,
    /// Hubs: burst of new connections above the rate, 1-4000000. Default
    /// 10000.
    EVSOCK_OPT_HUB_ADMISSION_BURST = 202,
    /// Hubs: the Retry-After (seconds) of a refused connection. At most
    /// 4294967295. Default 5.
    EVSOCK_OPT_HUB_RETRY_AFTER_SECS = 203,
    /// Hubs: most live connections of one user (HTTP 429 beyond it).
    /// Default 32.
    EVSOCK_OPT_HUB_MAX_CONNECTIONS_PER_USER = 204,
    /// Hubs: most sessions, connected or waiting for a resume. Default
    /// 2000000.
    EVSOCK_OPT_HUB_MAX_SESSIONS = 205,
    /// Hubs: incoming messages per second per connection; 0 is unlimited.
    /// At most 4294967295. Default 100.
    EVSOCK_OPT_HUB_MESSAGE_RATE = 206,
    /// Hubs: burst of incoming messages above the rate, 1-4000000. Default
    /// 200.
    EVSOCK_OPT_HUB_MESSAGE_BURST = 207,
    /// Hubs: bytes handed to the host and not yet reported written
    /// (`evsock_hub_handle_written`) per connection before the hub holds
    /// frames back. Default 256 KiB.
    EVSOCK_OPT_HUB_SEND_WINDOW_BYTES = 208,
    /// Hubs: bytes a connection's queue may hold beyond the window.
    /// Default 1 MiB.
    EVSOCK_OPT_HUB_MAX_QUEUED_BYTES = 209,
    /// Hubs: what a full queue does, an `evsock_slow_policy`. Default
    /// `EVSOCK_SLOW_DROP_OLDEST`.
    EVSOCK_OPT_HUB_SLOW_POLICY = 210,
    /// Hubs: how long a user stays online after its last client dropped.
    /// Default 5000.
    EVSOCK_OPT_HUB_OFFLINE_GRACE_MS = 211,
    /// Hubs: most rooms one client may be in. Default 64.
    EVSOCK_OPT_HUB_MAX_ROOMS_PER_CLIENT = 212,
    /// Hubs: how often a node announces itself on the bus (a node not heard
    /// from for three periods has its presence retired), at least 1.
    /// Default 5000.
    EVSOCK_OPT_HUB_HEARTBEAT_MS = 213,
    /// Hubs, string (`evsock_config_set_string`): this node's id in a
    /// cluster, 1 to 64 bytes of printable ASCII without spaces; NULL (the
    /// default) for a single node, which publishes nothing.
    EVSOCK_OPT_HUB_NODE_ID = 250,
    /// Hubs, string (`evsock_config_set_string`): prefix of the pub/sub
    /// channel names, 1 to 64 bytes of printable ASCII without spaces.
    /// Default "evsock".
    EVSOCK_OPT_HUB_CHANNEL_PREFIX = 251,
}

/// What a hub does with a slow consumer's overflowing queue
/// (`EVSOCK_OPT_HUB_SLOW_POLICY`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum evsock_slow_policy {
    /// Cut the connection at once (close code 4013).
    EVSOCK_SLOW_DISCONNECT = 0,
    /// Drop the oldest volatile frames; cut the connection only if the
    /// session's own frames overflow the queue.
    EVSOCK_SLOW_DROP_OLDEST = 1,
}

use evsock_option::*;

impl evsock_option {
    fn from_u32(v: u32) -> Option<evsock_option> {
        const ALL: [evsock_option; 55] = [
            EVSOCK_OPT_MAX_FRAME_SIZE,
            EVSOCK_OPT_MAX_MESSAGE_SIZE,
            EVSOCK_OPT_MAX_FRAGMENTS,
            EVSOCK_OPT_MAX_HANDSHAKE_BYTES,
            EVSOCK_OPT_MAX_HEADERS,
            EVSOCK_OPT_MAX_OUTBOUND_BYTES,
            EVSOCK_OPT_PING_INTERVAL_MS,
            EVSOCK_OPT_PONG_TIMEOUT_MS,
            EVSOCK_OPT_IDLE_TIMEOUT_MS,
            EVSOCK_OPT_HANDSHAKE_TIMEOUT_MS,
            EVSOCK_OPT_CLOSE_TIMEOUT_MS,
            EVSOCK_OPT_AUTO_PONG,
            EVSOCK_OPT_BUFFER_RETAIN,
            EVSOCK_OPT_ALLOW_MISSING_ORIGIN,
            EVSOCK_OPT_DEFLATE,
            EVSOCK_OPT_DEFLATE_THRESHOLD,
            EVSOCK_OPT_DEFLATE_LEVEL,
            EVSOCK_OPT_DEFLATE_SERVER_MAX_WINDOW_BITS,
            EVSOCK_OPT_DEFLATE_CLIENT_MAX_WINDOW_BITS,
            EVSOCK_OPT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER,
            EVSOCK_OPT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER,
            EVSOCK_OPT_SESSION_FORMAT,
            EVSOCK_OPT_SESSION_MAX_MESSAGE_BYTES,
            EVSOCK_OPT_SESSION_MAX_BATCH_ENVELOPES,
            EVSOCK_OPT_SESSION_RESUME_WINDOW_MS,
            EVSOCK_OPT_SESSION_RESUME_BUFFER_BYTES,
            EVSOCK_OPT_SESSION_RESUME_BUFFER_AGE_MS,
            EVSOCK_OPT_SESSION_MAX_PENDING_REQUESTS,
            EVSOCK_OPT_SESSION_MAX_INCOMING_REQUESTS,
            EVSOCK_OPT_SESSION_MAX_REQUEST_TIMEOUT_MS,
            EVSOCK_OPT_SESSION_ACK_DELAY_MS,
            EVSOCK_OPT_SESSION_ACK_EVERY,
            EVSOCK_OPT_SESSION_PING_INTERVAL_MS,
            EVSOCK_OPT_SESSION_IDLE_TIMEOUT_MS,
            EVSOCK_OPT_SESSION_HANDSHAKE_TIMEOUT_MS,
            EVSOCK_OPT_SESSION_BATCH_WINDOW_MS,
            EVSOCK_OPT_SESSION_BATCH_MAX_BYTES,
            EVSOCK_OPT_SESSION_BACKOFF_BASE_MS,
            EVSOCK_OPT_SESSION_BACKOFF_MAX_MS,
            EVSOCK_OPT_HUB_MAX_CONNECTIONS,
            EVSOCK_OPT_HUB_ADMISSION_RATE,
            EVSOCK_OPT_HUB_ADMISSION_BURST,
            EVSOCK_OPT_HUB_RETRY_AFTER_SECS,
            EVSOCK_OPT_HUB_MAX_CONNECTIONS_PER_USER,
            EVSOCK_OPT_HUB_MAX_SESSIONS,
            EVSOCK_OPT_HUB_MESSAGE_RATE,
            EVSOCK_OPT_HUB_MESSAGE_BURST,
            EVSOCK_OPT_HUB_SEND_WINDOW_BYTES,
            EVSOCK_OPT_HUB_MAX_QUEUED_BYTES,
            EVSOCK_OPT_HUB_SLOW_POLICY,
            EVSOCK_OPT_HUB_OFFLINE_GRACE_MS,
            EVSOCK_OPT_HUB_MAX_ROOMS_PER_CLIENT,
            EVSOCK_OPT_HUB_HEARTBEAT_MS,
            EVSOCK_OPT_HUB_NODE_ID,
            EVSOCK_OPT_HUB_CHANNEL_PREFIX,
        ];
        ALL.iter().copied().find(|o| *o as u32 == v)
    }
}

/// Borrows the config behind a handle, checking NULL and the handle's tag.
///
/// # Safety
/// `ptr` is NULL or was returned by `evsock_config_new*` and not freed.
pub(crate) unsafe fn config_ref<'a>(ptr: *const evsock_config) -> Result<&'a ConfigHandle, Fail> {
    if ptr.is_null() {
        return Err(Fail::null("config"));
    }
    let h = ptr.cast::<ConfigHandle>();
    // SAFETY: the caller promises `ptr` came from `evsock_config_new*`, so it
    // points at a live `ConfigHandle`. The tag check catches some misuse
    // (another handle type passed in) on a best-effort basis.
    let h = unsafe { &*h };
    if h.magic != CONFIG_MAGIC {
        return Err(Fail::arg("not an evsock_config handle (or already freed)"));
    }
    Ok(h)
}

/// Mutable version of [`config_ref`].
///
/// # Safety
/// As for [`config_ref`], and no other reference to the handle is live.
unsafe fn config_mut<'a>(ptr: *mut evsock_config) -> Result<&'a mut ConfigHandle, Fail> {
    // SAFETY: forwarded contract; the check reads only the tag.
    unsafe { config_ref(ptr)? };
    // SAFETY: checked non-NULL and tagged above; the caller guarantees
    // exclusive access while a setter runs (documented in the header).
    Ok(unsafe { &mut *ptr.cast::<ConfigHandle>() })
}

fn new_handle(cfg: Config, out: *mut *mut evsock_config) -> FfiResult {
    let hub = HubConfig::default();
    new_handle_with(cfg, hub.session.clone(), hub, out)
}

fn new_handle_with(
    cfg: Config,
    session: SessionConfig,
    hub: HubConfig,
    out: *mut *mut evsock_config,
) -> FfiResult {
    if out.is_null() {
        return Err(Fail::null("out"));
    }
    let h = Box::new(ConfigHandle {
        magic: CONFIG_MAGIC,
        cfg: Arc::new(cfg),
        session,
        hub,
    });
    // SAFETY: `out` is non-NULL and the caller promises it is writable.
    unsafe { out.write(Box::into_raw(h).cast()) };
    Ok(evsock_status::EVSOCK_OK)
}

/// Creates a config with evsock's defaults (suited to browser-facing
/// servers: 16 MiB messages, 30 s keep-alive pings, 10 s handshake timeout).
///
/// On success `*out` receives a new handle that the caller owns and must
/// release with `evsock_config_free`. On failure `*out` is left untouched.
///
/// # Safety
/// `out` must be NULL (an error) or point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn evsock_config_new(out: *mut *mut evsock_config) -> evsock_status {
    guard(|| new_handle(Config::default(), out))
}

/// Creates a config like `evsock_config_new` but with every timer off (no
/// keep-alive, handshake, idle or close timeouts): for tests, and for hosts
/// that run their own timers. Ownership as for `evsock_config_new`.
///
/// # Safety
/// As for `evsock_config_new`.
#[no_mangle]
pub unsafe extern "C" fn evsock_config_new_without_timers(
    out: *mut *mut evsock_config,
) -> evsock_status {
    guard(|| new_handle(Config::without_timers(), out))
}

/// Creates a config with the defaults of a hub (`evsock_hub_new`): the
/// hub options at their defaults, and connection settings suited to many
/// browser tabs: WebSocket pings off (sessions ping), no idle buffers
/// (`EVSOCK_OPT_BUFFER_RETAIN` 0), frames and messages capped at the
/// session's 1 MiB, at most 1024 fragments. Ownership as for
/// `evsock_config_new`.
///
/// # Safety
/// As for `evsock_config_new`.
#[no_mangle]
pub unsafe extern "C" fn evsock_config_new_hub(out: *mut *mut evsock_config) -> evsock_status {
    guard(|| {
        let hub = HubConfig::default();
        new_handle_with(hub.ws.clone(), hub.session.clone(), hub, out)
    })
}

/// Frees a config. NULL is ignored. Connections created from it keep their
/// own copy and are not affected.
///
/// # Safety
/// `cfg` must be NULL or a handle from `evsock_config_new*` that was not
/// freed yet; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn evsock_config_free(cfg: *mut evsock_config) {
    let _ = guard(|| {
        if cfg.is_null() {
            return Ok(evsock_status::EVSOCK_OK);
        }
        // SAFETY: per the contract `cfg` is a live handle from
        // `evsock_config_new*`; `config_mut` checks its tag.
        let h = unsafe { config_mut(cfg)? };
        h.magic = 0;
        // SAFETY: the handle was made by `Box::into_raw` in `new_handle`
        // and is freed exactly once (the tag is cleared above).
        drop(unsafe { Box::from_raw(cfg.cast::<ConfigHandle>()) });
        Ok(evsock_status::EVSOCK_OK)
    });
}

fn size(v: u64) -> Result<usize, Fail> {
    match usize::try_from(v) {
        Ok(0) => Err(Fail::arg("size limits must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(Fail::arg("size does not fit in size_t")),
    }
}

fn deflate_off() -> Fail {
    Fail::new(
        evsock_status::EVSOCK_ERR_INVALID_STATE,
        "permessage-deflate is off: set EVSOCK_OPT_DEFLATE to 1 first",
    )
}

fn deflate_mut(c: &mut Config) -> Result<&mut DeflateConfig, Fail> {
    c.deflate.as_mut().ok_or_else(deflate_off)
}

fn deflate_ref(c: &Config) -> Result<&DeflateConfig, Fail> {
    c.deflate.as_ref().ok_or_else(deflate_off)
}

fn ranged(v: u64, lo: u64, hi: u64, what: &str) -> Result<u64, Fail> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(Fail::arg(format!("{what} must be {lo}-{hi}, not {v}")))
    }
}

fn rate(v: u64) -> Result<u32, Fail> {
    u32::try_from(v).map_err(|_| Fail::arg(format!("{v} does not fit in 32 bits")))
}

fn burst(v: u64) -> Result<u32, Fail> {
    Ok(ranged(v, 1, 4_000_000, "burst")? as u32)
}

fn string_option() -> Fail {
    Fail::arg("this option is a string: use evsock_config_set_string")
}

/// 1 to 64 bytes of printable ASCII without spaces (node ids and channel
/// prefixes end up in channel names and log lines).
fn check_name(v: &str, what: &str) -> Result<(), Fail> {
    if v.is_empty() || v.len() > MAX_NODE_ID_LEN || !v.bytes().all(|c| (0x21..=0x7e).contains(&c)) {
        return Err(Fail::arg(format!(
            "{what} must be 1 to {MAX_NODE_ID_LEN} bytes of printable ASCII without spaces"
        )));
    }
    Ok(())
}

fn timer(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn flag(v: u64) -> Result<bool, Fail> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Fail::arg("flags must be 0 or 1")),
    }
}

/// Sets one option (see `evsock_option` for units and defaults). Returns
/// `EVSOCK_ERR_INVALID_ARGUMENT` for an unknown option or a value out of
/// range, and `EVSOCK_ERR_INVALID_STATE` for
/// `EVSOCK_OPT_ALLOW_MISSING_ORIGIN` without an origin allow-list or a
/// deflate sub-option while `EVSOCK_OPT_DEFLATE` is 0.
///
/// # Safety
/// `cfg` must be NULL (an error) or a live config handle not used by another
/// thread during the call.
#[no_mangle]
pub unsafe extern "C" fn evsock_config_set(
    cfg: *mut evsock_config,
    option: u32,
    value: u64,
) -> evsock_status {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { config_mut(cfg)? };
        let opt = evsock_option::from_u32(option)
            .ok_or_else(|| Fail::arg(format!("unknown option {option}")))?;
        let c = Arc::make_mut(&mut h.cfg);
        let sc = &mut h.session;
        match opt {
            EVSOCK_OPT_MAX_FRAME_SIZE => c.max_frame_size = size(value)?,
            EVSOCK_OPT_MAX_MESSAGE_SIZE => c.max_message_size = size(value)?,
            EVSOCK_OPT_MAX_FRAGMENTS => c.max_fragments = size(value)?,
            EVSOCK_OPT_MAX_HANDSHAKE_BYTES => c.max_handshake_bytes = size(value)?,
            EVSOCK_OPT_MAX_HEADERS => c.max_headers = size(value)?,
            EVSOCK_OPT_MAX_OUTBOUND_BYTES => c.max_outbound_bytes = size(value)?,
            EVSOCK_OPT_PING_INTERVAL_MS => c.ping_interval_ms = timer(value),
            EVSOCK_OPT_PONG_TIMEOUT_MS => c.pong_timeout_ms = timer(value),
            EVSOCK_OPT_IDLE_TIMEOUT_MS => c.idle_timeout_ms = timer(value),
            EVSOCK_OPT_HANDSHAKE_TIMEOUT_MS => c.handshake_timeout_ms = timer(value),
            EVSOCK_OPT_CLOSE_TIMEOUT_MS => c.close_timeout_ms = timer(value),
            EVSOCK_OPT_AUTO_PONG => c.auto_pong = flag(value)?,
            EVSOCK_OPT_BUFFER_RETAIN => {
                c.buffer_retain =
                    usize::try_from(value).map_err(|_| Fail::arg("size does not fit in size_t"))?
            }
            EVSOCK_OPT_ALLOW_MISSING_ORIGIN => {
                let v = flag(value)?;
                match &mut c.origin_policy {
                    OriginPolicy::AllowList { allow_missing, .. } => *allow_missing = v,
                    OriginPolicy::Any => {
                        return Err(Fail::new(
                            evsock_status::EVSOCK_ERR_INVALID_STATE,
                            "EVSOCK_OPT_ALLOW_MISSING_ORIGIN needs an allow-list: \
                             call evsock_config_allow_origin first",
                        ))
                    }
                }
            }
            EVSOCK_OPT_DEFLATE => {
                c.deflate = flag(value)?.then(DeflateConfig::default);
            }
            EVSOCK_OPT_DEFLATE_THRESHOLD => {
                deflate_mut(c)?.threshold =
                    usize::try_from(value).map_err(|_| Fail::arg("size does not fit in size_t"))?
            }
            EVSOCK_OPT_DEFLATE_LEVEL => {
                deflate_mut(c)?.level = ranged(value, 0, 9, "level")? as u32
            }
            EVSOCK_OPT_DEFLATE_SERVER_MAX_WINDOW_BITS => {
                deflate_mut(c)?.server_max_window_bits = ranged(value, 9, 15, "window bits")? as u8
            }
            EVSOCK_OPT_DEFLATE_CLIENT_MAX_WINDOW_BITS => {
                deflate_mut(c)?.client_max_window_bits = ranged(value, 9, 15, "window bits")? as u8
            }
            EVSOCK_OPT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER => {
                deflate_mut(c)?.server_no_context_takeover = flag(value)?
            }
            EVSOCK_OPT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER => {
                deflate_mut(c)?.client_no_context_takeover = flag(value)?
            }
            EVSOCK_OPT_SESSION_FORMAT => {
                sc.format = match value {
                    0 => Format::Json,
                    1 => Format::MsgPack,
                    _ => return Err(Fail::arg("format must be EVSOCK_FORMAT_JSON or _MSGPACK")),
                }
            }
            EVSOCK_OPT_SESSION_MAX_MESSAGE_BYTES => sc.max_message_bytes = size(value)?,
            EVSOCK_OPT_SESSION_MAX_BATCH_ENVELOPES => sc.max_batch_envelopes = size(value)?,
            EVSOCK_OPT_SESSION_RESUME_WINDOW_MS => sc.resume_window_ms = value,
            EVSOCK_OPT_SESSION_RESUME_BUFFER_BYTES => {
                sc.resume_buffer_bytes =
                    usize::try_from(value).map_err(|_| Fail::arg("size does not fit in size_t"))?
            }
            EVSOCK_OPT_SESSION_RESUME_BUFFER_AGE_MS => sc.resume_buffer_age_ms = value,
            EVSOCK_OPT_SESSION_MAX_PENDING_REQUESTS => {
                sc.max_pending_requests =
                    usize::try_from(value).map_err(|_| Fail::arg("count does not fit in size_t"))?
            }
            EVSOCK_OPT_SESSION_MAX_INCOMING_REQUESTS => {
                sc.max_incoming_requests =
                    usize::try_from(value).map_err(|_| Fail::arg("count does not fit in size_t"))?
            }
            EVSOCK_OPT_SESSION_MAX_REQUEST_TIMEOUT_MS => {
                sc.max_request_timeout_ms = ranged(value, 1, u64::MAX, "timeout")?
            }
            EVSOCK_OPT_SESSION_ACK_DELAY_MS => sc.ack_delay_ms = value,
            EVSOCK_OPT_SESSION_ACK_EVERY => sc.ack_every = ranged(value, 1, u64::MAX, "ack_every")?,
            EVSOCK_OPT_SESSION_PING_INTERVAL_MS => sc.ping_interval_ms = timer(value),
            EVSOCK_OPT_SESSION_IDLE_TIMEOUT_MS => sc.idle_timeout_ms = timer(value),
            EVSOCK_OPT_SESSION_HANDSHAKE_TIMEOUT_MS => {
                sc.handshake_timeout_ms = ranged(value, 1, u64::MAX, "timeout")?
            }
            EVSOCK_OPT_SESSION_BATCH_WINDOW_MS => sc.batch_window_ms = value,
            EVSOCK_OPT_SESSION_BATCH_MAX_BYTES => sc.batch_max_bytes = size(value)?,
            EVSOCK_OPT_SESSION_BACKOFF_BASE_MS => sc.backoff_base_ms = value,
            EVSOCK_OPT_SESSION_BACKOFF_MAX_MS => sc.backoff_max_ms = value,
            EVSOCK_OPT_HUB_MAX_CONNECTIONS => h.hub.max_connections = size(value)?,
            EVSOCK_OPT_HUB_ADMISSION_RATE => h.hub.admission_rate = rate(value)?,
            EVSOCK_OPT_HUB_ADMISSION_BURST => h.hub.admission_burst = burst(value)?,
            EVSOCK_OPT_HUB_RETRY_AFTER_SECS => h.hub.retry_after_secs = rate(value)?,
            EVSOCK_OPT_HUB_MAX_CONNECTIONS_PER_USER => {
                h.hub.max_connections_per_user = size(value)?
            }
            EVSOCK_OPT_HUB_MAX_SESSIONS => h.hub.max_sessions = size(value)?,
            EVSOCK_OPT_HUB_MESSAGE_RATE => h.hub.message_rate = rate(value)?,
            EVSOCK_OPT_HUB_MESSAGE_BURST => h.hub.message_burst = burst(value)?,
            EVSOCK_OPT_HUB_SEND_WINDOW_BYTES => h.hub.send_window_bytes = size(value)?,
            EVSOCK_OPT_HUB_MAX_QUEUED_BYTES => h.hub.max_queued_bytes = size(value)?,
            EVSOCK_OPT_HUB_SLOW_POLICY => {
                h.hub.slow_policy = match value {
                    0 => SlowPolicy::Disconnect,
                    1 => SlowPolicy::DropOldest,
                    _ => {
                        return Err(Fail::arg(
                            "slow policy must be EVSOCK_SLOW_DISCONNECT or _DROP_OLDEST",
                        ))
                    }
                }
            }
            EVSOCK_OPT_HUB_OFFLINE_GRACE_MS => h.hub.offline_grace_ms = value,
            EVSOCK_OPT_HUB_MAX_ROOMS_PER_CLIENT => h.hub.max_rooms_per_client = size(value)?,
            EVSOCK_OPT_HUB_HEARTBEAT_MS => {
                h.hub.heartbeat_ms = ranged(value, 1, u64::MAX, "heartbeat")?
            }
            EVSOCK_OPT_HUB_NODE_ID | EVSOCK_OPT_HUB_CHANNEL_PREFIX => return Err(string_option()),
        }
        Ok(evsock_status::EVSOCK_OK)
    })
}

/// Reads one option into `*value`, in the units `evsock_config_set` takes
/// (a timer that is off reads as 0). `ALLOW_MISSING_ORIGIN` reads 1 when
/// there is no allow-list (every request is accepted). The deflate
/// sub-options give `EVSOCK_ERR_INVALID_STATE` while deflate is off.
///
/// # Safety
/// `cfg` must be NULL (an error) or a live config handle; `value` must be
/// NULL (an error) or writable.
#[no_mangle]
pub unsafe extern "C" fn evsock_config_get(
    cfg: *const evsock_config,
    option: u32,
    value: *mut u64,
) -> evsock_status {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { config_ref(cfg)? };
        if value.is_null() {
            return Err(Fail::null("value"));
        }
        let opt = evsock_option::from_u32(option)
            .ok_or_else(|| Fail::arg(format!("unknown option {option}")))?;
        let c = &*h.cfg;
        let sc = &h.session;
        let hc = &h.hub;
        let ms = |t: Option<u64>| t.unwrap_or(0);
        let v = match opt {
            EVSOCK_OPT_MAX_FRAME_SIZE => c.max_frame_size as u64,
            EVSOCK_OPT_MAX_MESSAGE_SIZE => c.max_message_size as u64,
            EVSOCK_OPT_MAX_FRAGMENTS => c.max_fragments as u64,
            EVSOCK_OPT_MAX_HANDSHAKE_BYTES => c.max_handshake_bytes as u64,
            EVSOCK_OPT_MAX_HEADERS => c.max_headers as u64,
            EVSOCK_OPT_MAX_OUTBOUND_BYTES => c.max_outbound_bytes as u64,
            EVSOCK_OPT_PING_INTERVAL_MS => ms(c.ping_interval_ms),
            EVSOCK_OPT_PONG_TIMEOUT_MS => ms(c.pong_timeout_ms),
            EVSOCK_OPT_IDLE_TIMEOUT_MS => ms(c.idle_timeout_ms),
            EVSOCK_OPT_HANDSHAKE_TIMEOUT_MS => ms(c.handshake_timeout_ms),
            EVSOCK_OPT_CLOSE_TIMEOUT_MS => ms(c.close_timeout_ms),
            EVSOCK_OPT_AUTO_PONG => c.auto_pong as u64,
            EVSOCK_OPT_BUFFER_RETAIN => c.buffer_retain as u64,
            EVSOCK_OPT_ALLOW_MISSING_ORIGIN => match &c.origin_policy {
                OriginPolicy::Any => 1,
                OriginPolicy::AllowList { allow_missing, .. } => *allow_missing as u64,
            },
            EVSOCK_OPT_DEFLATE => c.deflate.is_some() as u64,
            EVSOCK_OPT_DEFLATE_THRESHOLD => deflate_ref(c)?.threshold as u64,
            EVSOCK_OPT_DEFLATE_LEVEL => u64::from(deflate_ref(c)?.level),
            EVSOCK_OPT_DEFLATE_SERVER_MAX_WINDOW_BITS => {
                u64::from(deflate_ref(c)?.server_max_window_bits)
            }
            EVSOCK_OPT_DEFLATE_CLIENT_MAX_WINDOW_BITS => {
                u64::from(deflate_ref(c)?.client_max_window_bits)
            }
            EVSOCK_OPT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER => {
                deflate_ref(c)?.server_no_context_takeover as u64
            }
            EVSOCK_OPT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER => {
                deflate_ref(c)?.client_no_context_takeover as u64
            }
            EVSOCK_OPT_SESSION_FORMAT => match sc.format {
                Format::Json => 0,
                Format::MsgPack => 1,
            },
            EVSOCK_OPT_SESSION_MAX_MESSAGE_BYTES => sc.max_message_bytes as u64,
            EVSOCK_OPT_SESSION_MAX_BATCH_ENVELOPES => sc.max_batch_envelopes as u64,
            EVSOCK_OPT_SESSION_RESUME_WINDOW_MS => sc.resume_window_ms,
            EVSOCK_OPT_SESSION_RESUME_BUFFER_BYTES => sc.resume_buffer_bytes as u64,
            EVSOCK_OPT_SESSION_RESUME_BUFFER_AGE_MS => sc.resume_buffer_age_ms,
            EVSOCK_OPT_SESSION_MAX_PENDING_REQUESTS => sc.max_pending_requests as u64,
            EVSOCK_OPT_SESSION_MAX_INCOMING_REQUESTS => sc.max_incoming_requests as u64,
            EVSOCK_OPT_SESSION_MAX_REQUEST_TIMEOUT_MS => sc.max_request_timeout_ms,
            EVSOCK_OPT_SESSION_ACK_DELAY_MS => sc.ack_delay_ms,
            EVSOCK_OPT_SESSION_ACK_EVERY => sc.ack_every,
            EVSOCK_OPT_SESSION_PING_INTERVAL_MS => ms(sc.ping_interval_ms),
            EVSOCK_OPT_SESSION_IDLE_TIMEOUT_MS => ms(sc.idle_timeout_ms),
            EVSOCK_OPT_SESSION_HANDSHAKE_TIMEOUT_MS => sc.handshake_timeout_ms,
            EVSOCK_OPT_SESSION_BATCH_WINDOW_MS => sc.batch_window_ms,
            EVSOCK_OPT_SESSION_BATCH_MAX_BYTES => sc.batch_max_bytes as u64,
            EVSOCK_OPT_SESSION_BACKOFF_BASE_MS => sc.backoff_base_ms,
            EVSOCK_OPT_SESSION_BACKOFF_MAX_MS => sc.backoff_max_ms,
            EVSOCK_OPT_HUB_MAX_CONNECTIONS => hc.max_connections as u64,
            EVSOCK_OPT_HUB_ADMISSION_RATE => u64::from(hc.admission_rate),
            EVSOCK_OPT_HUB_ADMISSION_BURST => u64::from(hc.admission_burst),
            EVSOCK_OPT_HUB_RETRY_AFTER_SECS => u64::from(hc.retry_after_secs),
            EVSOCK_OPT_HUB_MAX_CONNECTIONS_PER_USER => hc.max_connections_per_user as u64,
            EVSOCK_OPT_HUB_MAX_SESSIONS => hc.max_sessions as u64,
            EVSOCK_OPT_HUB_MESSAGE_RATE => u64::from(hc.message_rate),
            EVSOCK_OPT_HUB_MESSAGE_BURST => u64::from(hc.message_burst),
            EVSOCK_OPT_HUB_SEND_WINDOW_BYTES => hc.send_window_bytes as u64,
            EVSOCK_OPT_HUB_MAX_QUEUED_BYTES => hc.max_queued_bytes as u64,
            EVSOCK_OPT_HUB_SLOW_POLICY => match hc.slow_policy {
                SlowPolicy::Disconnect => 0,
                SlowPolicy::DropOldest => 1,
            },
            EVSOCK_OPT_HUB_OFFLINE_GRACE_MS => hc.offline_grace_ms,
            EVSOCK_OPT_HUB_MAX_ROOMS_PER_CLIENT => hc.max_rooms_per_client as u64,
            EVSOCK_OPT_HUB_HEARTBEAT_MS => hc.heartbeat_ms,
            EVSOCK_OPT_HUB_NODE_ID | EVSOCK_OPT_HUB_CHANNEL_PREFIX => return Err(string_option()),
        };
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { value.write(v) };
        Ok(evsock_status::EVSOCK_OK)
    })
}

/// Sets a string option: `EVSOCK_OPT_HUB_NODE_ID` (NULL clears it: a
/// single node) or `EVSOCK_OPT_HUB_CHANNEL_PREFIX` (NULL restores
/// "evsock"). `value` is copied. `EVSOCK_ERR_INVALID_ARGUMENT` for another
/// option or a value out of its rules.
///
/// # Safety
/// `cfg` as for `evsock_config_set`; `value` NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn evsock_config_set_string(
    cfg: *mut evsock_config,
    option: u32,
    value: *const c_char,
) -> evsock_status {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { config_mut(cfg)? };
        // SAFETY: forwarded from this function's contract.
        let value = unsafe { opt_c_str_arg(value, "value")? };
        match evsock_option::from_u32(option) {
            Some(EVSOCK_OPT_HUB_NODE_ID) => {
                if let Some(v) = value {
                    check_name(v, "node id")?;
                }
                h.hub.node_id = value.map(str::to_owned);
            }
            Some(EVSOCK_OPT_HUB_CHANNEL_PREFIX) => {
                let v = value.unwrap_or("evsock");
                check_name(v, "channel prefix")?;
                h.hub.channel_prefix = v.to_owned();
            }
            Some(_) => {
                return Err(Fail::arg(format!(
                    "option {option} is a number: use evsock_config_set"
                )))
            }
            None => return Err(Fail::arg(format!("unknown option {option}"))),
        }
        Ok(evsock_status::EVSOCK_OK)
    })
}

/// Adds a subprotocol the server speaks, most preferred first. The first
/// one the client also offers is selected unless the host overrides it in
/// `evsock_conn_accept`. `name` is copied; it must be a non-empty HTTP token
/// (no spaces, commas or control characters).
///
/// # Safety
/// `cfg` as for `evsock_config_set`; `name` must be NULL (an error) or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn evsock_config_add_subprotocol(
    cfg: *mut evsock_config,
    name: *const c_char,
) -> evsock_status {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { config_mut(cfg)? };
        // SAFETY: forwarded from this function's contract.
        let name = unsafe { c_str_arg(name, "name")? };
        if !is_token(name) {
            return Err(Fail::arg(format!(
                "subprotocol {name:?} is not an HTTP token"
            )));
        }
        Arc::make_mut(&mut h.cfg)
            .subprotocols
            .push(name.to_string());
        Ok(evsock_status::EVSOCK_OK)
    })
}

/// Restricts servers to requests whose Origin header is one of the added
/// origins (compared ASCII case-insensitively, for example
/// `https://chat.example.com`); others get 403. The first call switches from
/// "any origin" to an allow-list; requests without an Origin header are then
/// refused unless `EVSOCK_OPT_ALLOW_MISSING_ORIGIN` is set. `origin` is
/// copied and must not contain control characters.
///
/// # Safety
/// As for `evsock_config_add_subprotocol`.
#[no_mangle]
pub unsafe extern "C" fn evsock_config_allow_origin(
    cfg: *mut evsock_config,
    origin: *const c_char,
) -> evsock_status {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let h = unsafe { config_mut(cfg)? };
        // SAFETY: forwarded from this function's contract.
        let origin = unsafe { c_str_arg(origin, "origin")? };
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(Fail::arg(
                "origin must be non-empty without control characters",
            ));
        }
        let c = Arc::make_mut(&mut h.cfg);
        match &mut c.origin_policy {
            OriginPolicy::AllowList { origins, .. } => origins.push(origin.to_string()),
            policy @ OriginPolicy::Any => {
                *policy = OriginPolicy::AllowList {
                    origins: vec![origin.to_string()],
                    allow_missing: false,
                }
            }
        }
        Ok(evsock_status::EVSOCK_OK)
    })
}
