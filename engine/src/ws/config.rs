//! Connection settings, with defaults suited to browser-facing servers.

use super::deflate::DeflateConfig;

/// Which `Origin` headers a server accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Accept any origin, and requests without one (non-browser clients).
    #[default]
    Any,
    /// Accept only these origins (compared ASCII case-insensitively, for
    /// example `https://chat.example.com`). Requests without an Origin
    /// header are accepted only if `allow_missing` is set.
    AllowList {
        /// The allowed origins.
        origins: Vec<String>,
        /// Whether a request without an Origin header is accepted.
        allow_missing: bool,
    },
}

impl OriginPolicy {
    /// Does the policy accept this Origin header value (or its absence)?
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (OriginPolicy::Any, _) => true,
            (OriginPolicy::AllowList { allow_missing, .. }, None) => *allow_missing,
            (OriginPolicy::AllowList { origins, .. }, Some(o)) => {
                origins.iter().any(|a| a.eq_ignore_ascii_case(o.trim()))
            }
        }
    }
}

/// Limits and timers of one connection. All durations are milliseconds of
/// the host's clock; `None` turns a timer off.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest frame payload accepted (1009 beyond it). Default 16 MiB.
    pub max_frame_size: usize,
    /// Largest message accepted, summed over its fragments (1009 beyond
    /// it). Default 16 MiB.
    pub max_message_size: usize,
    /// Most fragments in one message (1008 beyond it). Default 131,072,
    /// enough for 4 MiB sent in 32-byte fragments.
    pub max_fragments: usize,
    /// Largest HTTP upgrade request or response head (431). Default 16 KiB.
    pub max_handshake_bytes: usize,
    /// Most header fields in the upgrade request (431). Default 64.
    pub max_headers: usize,
    /// Most bytes queued for the host to write before `send` refuses with
    /// [`crate::ws::Error::OutboundFull`]. Default 64 MiB.
    pub max_outbound_bytes: usize,
    /// Send a ping this long after the last one was answered. Default 30 s.
    pub ping_interval_ms: Option<u64>,
    /// Fail the connection when a ping is unanswered this long. Default 30 s.
    pub pong_timeout_ms: Option<u64>,
    /// Close (1001) when nothing at all arrives for this long. Default off.
    pub idle_timeout_ms: Option<u64>,
    /// Give up on a handshake that takes longer. Default 10 s.
    pub handshake_timeout_ms: Option<u64>,
    /// Stop waiting for the peer's close frame (or, as a client, for the
    /// server to end TCP) after this long. Default 5 s.
    pub close_timeout_ms: Option<u64>,
    /// Answer pings automatically (coalescing a burst into one pong).
    /// Default on.
    pub auto_pong: bool,
    /// Server: subprotocols we speak, most preferred first. The first one
    /// the client also offers is selected unless the host overrides it.
    pub subprotocols: Vec<String>,
    /// Server: which Origin headers are accepted (403 otherwise).
    pub origin_policy: OriginPolicy,
    /// Bytes of read and write buffer a busy connection keeps between
    /// messages. Larger values avoid an allocation per read; smaller ones
    /// make busy connections cheaper (quiet ones keep nothing either way).
    /// A busy connection receiving in place
    /// ([`Connection::input_buffer`](crate::ws::Connection::input_buffer))
    /// also keeps the buffer its reads were sized for, up to 64 KiB, so
    /// that large messages do not allocate one each. Default 4 KiB.
    pub buffer_retain: usize,
    /// permessage-deflate (RFC 7692): `Some` to offer (client) or accept
    /// (server) it, `None` to turn it off. On by default, since browsers
    /// offer it on every connection; its memory is spent only once a
    /// message is actually compressed.
    pub deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_fragments: 1 << 17,
            max_handshake_bytes: 16 << 10,
            max_headers: 64,
            max_outbound_bytes: 64 << 20,
            ping_interval_ms: Some(30_000),
            pong_timeout_ms: Some(30_000),
            idle_timeout_ms: None,
            handshake_timeout_ms: Some(10_000),
            close_timeout_ms: Some(5_000),
            auto_pong: true,
            subprotocols: Vec::new(),
            origin_policy: OriginPolicy::Any,
            buffer_retain: 4 << 10,
            deflate: Some(DeflateConfig::default()),
        }
    }
}

impl Config {
    /// A configuration with every keep-alive and handshake timer off, for
    /// tests and for hosts that run their own timers.
    pub fn without_timers() -> Self {
        Config {
            ping_interval_ms: None,
            pong_timeout_ms: None,
            idle_timeout_ms: None,
            handshake_timeout_ms: None,
            close_timeout_ms: None,
            ..Config::default()
        }
    }
}
